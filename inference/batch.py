"""Classify a folder (or a list of files) as a generator: one result or one error per image, never a crash.

The next images are decoded on a helper thread while ONNX Runtime classifies the current ones (both
release the GIL), and images go to the model a few at a time; results come in the stable, sorted
order of ``iter_image_paths``.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference.errors import HemaLensError
from inference.images import LoadedImage, is_image_path, load_image
from inference.prediction import Prediction
from inference.session import ModelSession

DEFAULT_BATCH_SIZE = 8
MAX_PENDING_PIXELS = 40_000_000  # flush early for large scans to bound memory


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class BatchResult:
    """One file's outcome: a prediction, or an error message a technician can read.

    ``rgb`` holds the decoded image only when ``classify_paths(..., keep_images=True)``.
    """

    path: Path
    prediction: Prediction | None
    error: str | None = None
    image_notes: tuple[str, ...] = ()
    rgb: np.ndarray | None = field(default=None, repr=False, compare=False)

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


def _load(path: Path) -> LoadedImage | str:
    """Decode one image; an error message instead of raising (this runs on the helper thread)."""
    try:
        return load_image(path)
    except HemaLensError as exc:
        return getattr(exc, "reason", str(exc))
    except Exception as exc:  # noqa: BLE001 - a per-file failure must never end the batch
        return f"unexpected error: {type(exc).__name__}: {exc}"


def _prefetched(paths: Iterator[Path], lookahead: int) -> Iterator[tuple[Path, LoadedImage | str]]:
    """Decode up to ``lookahead`` images ahead on one helper thread, yielding in order."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hemalens-decode") as pool:
        queue: deque[tuple[Path, Future[LoadedImage | str]]] = deque()
        for path in paths:
            queue.append((path, pool.submit(_load, path)))
            if len(queue) > lookahead:
                p, fut = queue.popleft()
                yield p, fut.result()
        while queue:
            p, fut = queue.popleft()
            yield p, fut.result()


def classify_paths(
    session: ModelSession,
    paths: Iterable[str | Path],
    *,
    recursive: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    keep_images: bool = False,
) -> Iterator[BatchResult]:
    """Yield one BatchResult per image found under ``paths``; unreadable images yield an error and the batch goes on."""
    batch_size = max(1, batch_size)
    pending: list[tuple[Path, LoadedImage]] = []

    def flush() -> Iterator[BatchResult]:
        loaded = list(pending)
        pending.clear()
        if not loaded:
            return
        try:
            preds: list[Prediction] | None = session.predict_batch([img.rgb for _, img in loaded])
        except HemaLensError:
            preds = None  # retry one by one so a single bad image does not sink its neighbours
        for k, (p, img) in enumerate(loaded):
            kept = img.rgb if keep_images else None
            if preds is not None:
                yield BatchResult(p, preds[k], None, img.notes, kept)
                continue
            try:
                yield BatchResult(p, session.predict(img.rgb), None, img.notes, kept)
            except HemaLensError as exc:
                yield BatchResult(p, None, str(exc), img.notes, kept)

    pixels = 0
    for path, image in _prefetched(iter_image_paths(paths, recursive=recursive), lookahead=batch_size):
        if isinstance(image, str):
            yield from flush()
            pixels = 0
            yield BatchResult(path, None, image)
            continue
        pending.append((path, image))
        pixels += image.rgb.shape[0] * image.rgb.shape[1]
        if len(pending) >= batch_size or pixels > MAX_PENDING_PIXELS:
            yield from flush()
            pixels = 0
    yield from flush()
