"""Classify a folder (or a list of files) as a generator: one result or one error per image, never a crash.

Images go to the model a few at a time (a chunk of ``batch_size`` files). Chunks are classified on
helper threads, one per CPU core ("lanes"), each decoding, preprocessing and running its chunk on a
one-thread ONNX Runtime session: while one lane runs the model another decodes the next files (Pillow,
OpenCV and ONNX Runtime all release the GIL), so the cores are never idle waiting for the other kind of
work. At most ``lanes + 2`` chunks are in flight (one being handed out, ``lanes + 1`` waiting or
running), so memory stays flat however many files there are.
Results come in the stable, sorted order of ``iter_image_paths``.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference.errors import HemaLensError
from inference.file_order import natural_key
from inference.images import LoadedImage, is_image_path, load_image
from inference.prediction import Prediction
from inference.session import ModelSession, available_cpu_count

DEFAULT_BATCH_SIZE = 8
MAX_PENDING_PIXELS = 40_000_000  # flush early for large scans to bound memory
MAX_LANES = 8
LANE_THREADS = 1  # ONNX Runtime intra-op threads per lane


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


def iter_image_paths(paths: Iterable[str | Path], *, recursive: bool = False) -> Iterator[Path]:
    """Image files named or inside the given folders, in a stable sorted order, each once.

    Non-image files are skipped quietly; a named path that does not exist, and a folder that cannot be read
    (its images cannot be listed), are still yielded so the caller reports them as errors rather than silently
    dropping them. Hidden files and folders are skipped.
    """
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found: list[Path] = []
            if recursive:
                unreadable: list[OSError] = []
                for root, dirs, files in os.walk(path, onerror=unreadable.append):
                    dirs[:] = [d for d in dirs if not d.startswith(".")]
                    found += [Path(root) / f for f in files if not f.startswith(".") and is_image_path(f)
                              and _not_special(Path(root) / f)]
                found += [Path(exc.filename) for exc in unreadable if exc.filename]
            else:
                try:
                    found = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                             and is_image_path(p)]
                except OSError:
                    found = [path]
            candidates = sorted(found, key=lambda p: natural_key(str(p)))
        elif path.exists():
            candidates = [path] if is_image_path(path) else []
        else:
            candidates = [path]
        for p in candidates:
            key = p.resolve() if p.exists() else p
            if key not in seen:
                seen.add(key)
                yield p


def _not_special(path: Path) -> bool:
    """False for a pipe, socket or device in a folder: not an image file, and reading one can block forever.
    A broken link stays listed, so its row says the file is missing."""
    return path.is_file() or not path.exists()


def _load(path: Path) -> LoadedImage | str:
    """Decode one image; an error message instead of raising (this runs on a lane thread)."""
    try:
        return load_image(path)
    except HemaLensError as exc:
        return getattr(exc, "reason", str(exc))
    except Exception as exc:  # noqa: BLE001 - a per-file failure must never end the batch
        return f"unexpected error: {type(exc).__name__}: {exc}"


def _predict(session: ModelSession, loaded: list[tuple[Path, LoadedImage]], keep_images: bool) -> list[BatchResult]:
    """One model run for the decoded images; when it fails, one run per image so a bad one sinks only itself."""
    if not loaded:
        return []
    try:
        preds: list[Prediction] | None = session.predict_batch([img.rgb for _, img in loaded])
    except HemaLensError:
        preds = None
    out = []
    for k, (p, img) in enumerate(loaded):
        kept = img.rgb if keep_images else None
        if preds is not None:
            out.append(BatchResult(p, preds[k], None, img.notes, kept))
            continue
        try:
            out.append(BatchResult(p, session.predict(img.rgb), None, img.notes, kept))
        except HemaLensError as exc:
            out.append(BatchResult(p, None, str(exc), img.notes, kept))
    return out


def _classify_chunk(session: ModelSession, paths: list[Path], keep_images: bool,
                    stopped: Callable[[], bool]) -> list[BatchResult]:
    """Decode and classify one chunk in order (on a lane thread); stops early, incomplete, when ``stopped()``.

    An unreadable file ends the model batch before it, and very large images end it early (memory).
    """
    out: list[BatchResult] = []
    pending: list[tuple[Path, LoadedImage]] = []
    pixels = 0
    for path in paths:
        if stopped():
            return out
        image = _load(path)
        if isinstance(image, str):
            out += _predict(session, pending, keep_images)
            pending, pixels = [], 0
            out.append(BatchResult(path, None, image))
            continue
        pending.append((path, image))
        pixels += image.rgb.shape[0] * image.rgb.shape[1]
        if pixels > MAX_PENDING_PIXELS:
            out += _predict(session, pending, keep_images)
            pending, pixels = [], 0
    out += _predict(session, pending, keep_images)
    return out


def lane_count(session: ModelSession) -> int:
    """Chunks classified side by side: one per CPU core (ONNX Runtime then runs one thread per lane)."""
    return 1 if session.providers[0] != "CPUExecutionProvider" else max(1, min(MAX_LANES, available_cpu_count()))


def _chunks(paths: Iterator[Path], size: int) -> Iterator[list[Path]]:
    chunk: list[Path] = []
    for path in paths:
        chunk.append(path)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def classify_paths(
    session: ModelSession,
    paths: Iterable[str | Path],
    *,
    recursive: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    keep_images: bool = False,
    cancel: threading.Event | None = None,
    lanes: int | None = None,
) -> Iterator[BatchResult]:
    """Yield one BatchResult per image found under ``paths``, in order; unreadable images yield an error.

    ``cancel`` (set from any thread) stops the run between images: nothing more is yielded, and the
    lanes stop decoding. Closing the generator early also stops and joins the lanes. ``lanes``
    overrides ``lane_count(session)``; with one lane, ONNX Runtime keeps the session's own threads.
    """
    batch_size = max(1, batch_size)
    lanes = max(1, lanes if lanes is not None else lane_count(session))
    worker = session.with_threads(LANE_THREADS) if lanes > 1 else session
    closing = threading.Event()

    def stopped() -> bool:
        return closing.is_set() or (cancel is not None and cancel.is_set())

    chunks = _chunks(iter_image_paths(paths, recursive=recursive), batch_size)
    pool = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="hemalens-lane")
    queue: deque[Future[list[BatchResult]]] = deque()

    def top_up() -> None:
        while len(queue) <= lanes and not stopped():  # bounded: lanes + 1 chunks waiting or running
            chunk = next(chunks, None)
            if chunk is None:
                return
            queue.append(pool.submit(_classify_chunk, worker, chunk, keep_images, stopped))

    try:
        top_up()
        while queue:
            done = queue.popleft()
            top_up()  # before the caller works through this chunk, so no lane waits for it
            for result in done.result():
                if stopped():
                    return
                yield result
    finally:
        closing.set()
        for fut in queue:
            fut.cancel()
        pool.shutdown(wait=True)
