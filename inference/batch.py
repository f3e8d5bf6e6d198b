"""Classify a folder (or a list of files) as a generator: one result or one error per image, never a crash.

Images are decoded and classified in small batches so ONNX Runtime runs a few images per call; the
order of results is the stable, sorted order of ``iter_image_paths``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from inference.errors import HemaLensError
from inference.images import LoadedImage, is_image_path, load_image
from inference.prediction import Prediction
from inference.session import ModelSession

DEFAULT_BATCH_SIZE = 8
MAX_PENDING_PIXELS = 40_000_000  # flush early for large scans to bound memory


@dataclass(frozen=True)
class BatchResult:
    """One file's outcome: a prediction, or an error message a technician can read."""

    path: Path
    prediction: Prediction | None
    error: str | None = None
    image_notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.prediction is not None


def _sort_key(path: Path) -> tuple[str, str]:
    return (str(path).lower(), str(path))


def iter_image_paths(paths: Iterable[str | Path], *, recursive: bool = False) -> Iterator[Path]:
    """Image files named or inside the given folders, in a stable sorted order, each once.

    Non-image files are skipped quietly; a named path that does not exist is still yielded so the
    caller reports it as an error rather than silently dropping it. Hidden files and folders are skipped.
    """
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            if recursive:
                found = []
                for root, dirs, files in os.walk(path):
                    dirs[:] = [d for d in dirs if not d.startswith(".")]
                    found += [Path(root) / f for f in files if not f.startswith(".") and is_image_path(f)]
            else:
                found = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                         and is_image_path(p)]
            candidates = sorted(found, key=_sort_key)
        elif path.exists():
            candidates = [path] if is_image_path(path) else []
        else:
            candidates = [path]
        for p in candidates:
            key = p.resolve() if p.exists() else p
            if key not in seen:
                seen.add(key)
                yield p


def classify_paths(
    session: ModelSession,
    paths: Iterable[str | Path],
    *,
    recursive: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[BatchResult]:
    """Yield one BatchResult per image found under ``paths``; unreadable images yield an error and the batch goes on."""
    pending: list[tuple[Path, LoadedImage]] = []

    def flush() -> Iterator[BatchResult]:
        loaded = list(pending)
        pending.clear()
        if not loaded:
            return
        try:
            preds = session.predict_batch([img.rgb for _, img in loaded])
        except HemaLensError:
            preds = None  # retry one by one so a single bad image does not sink its neighbours
        for k, (p, img) in enumerate(loaded):
            notes = img.notes
            if preds is not None:
                yield BatchResult(p, preds[k], None, notes)
                continue
            try:
                yield BatchResult(p, session.predict(img.rgb), None, notes)
            except HemaLensError as exc:
                yield BatchResult(p, None, str(exc), notes)

    for path in iter_image_paths(paths, recursive=recursive):
        try:
            image = load_image(path)
        except HemaLensError as exc:
            yield from flush()
            yield BatchResult(path, None, getattr(exc, "reason", str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - a per-file failure must never end the batch
            yield from flush()
            yield BatchResult(path, None, f"unexpected error: {type(exc).__name__}: {exc}")
            continue
        pending.append((path, image))
        if len(pending) >= max(1, batch_size) or sum(i.rgb.size for _, i in pending) > 3 * MAX_PENDING_PIXELS:
            yield from flush()
    yield from flush()
