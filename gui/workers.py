"""Background workers: the batch classifier and the detail loader, each living on its own QThread.

ONNX Runtime sessions are created here, on a worker thread, never on the GUI thread; ORT releases
the GIL while it runs, so the window keeps painting. The batch worker checks a per-job
cancellation flag between images and sends results in small bundles (at most ~10 per second)
so that a fast model cannot flood the GUI thread with signals.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QImage

from gui.items import ItemResult, ModelInfo
from gui.qimage import heatmap_rgba, rgb_to_qimage, rgba_to_qimage
from gui.thread_priority import lower_current_thread_priority

EMIT_INTERVAL_S = 0.1
LIST_SETTLE_S = 0.1  # pause between listing a folder and classifying it

# The longest side of the heatmap computed for the screen: a 9000 px scan's full-size map (81 million values,
# then coloured) took half a minute on 2 cores, while the image on screen stayed the previous one. The view
# stretches the map over the image; from an 8x8 Grad-CAM grid the result looks the same.
HEATMAP_MAX_SIDE = 2048


def load_model_info(path: Path) -> ModelInfo:
    """Create the ONNX Runtime session (call only from a worker thread)."""
    from inference.session import ModelSession

    session = ModelSession.load(path)
    return ModelInfo(
        path=Path(session.path),
        spec=session.spec,
        sha256=session.sha256,
        cam_method=session.cam_method,
        providers=tuple(session.providers),
        session=session,
    )


@dataclass
class BatchJob:
    """One run over the open set. ``paths`` None means: list ``sources`` first (recursively)."""

    job_id: int
    model: ModelInfo | None
    sources: list[Path]
    paths: list[Path] | None = None
    skip_rows: frozenset[int] = frozenset()
    recorder: Any = None  # gui.review_bridge.PredictionRecorder or None
    cancel: threading.Event = field(default_factory=threading.Event)


class BatchWorker(QObject):
    """Loads models and classifies the open set, one image at a time, on its own thread."""

    modelLoaded = Signal(int, object)  # request id, ModelInfo
    modelFailed = Signal(int, str)  # request id, message
    listed = Signal(int, object)  # job id, list[Path]
    results = Signal(int, object)  # job id, list[ItemResult]
    progress = Signal(int, int, int)  # job id, done, total
    finished = Signal(int, bool, str)  # job id, cancelled, message (empty when fine)

    @Slot(int, object)
    def load_model(self, request_id: int, path: Path) -> None:
        lower_current_thread_priority()  # before ONNX Runtime creates its threads, so they inherit it
        try:
            info = load_model_info(Path(path))
        except Exception as exc:  # noqa: BLE001 - any failure becomes a message, never a dead thread
            self.modelFailed.emit(request_id, str(exc) or exc.__class__.__name__)
            return
        self.modelLoaded.emit(request_id, info)

    @Slot(object)
    def run(self, job: BatchJob) -> None:
        lower_current_thread_priority()
        try:
            self._run(job)
        except Exception as exc:  # noqa: BLE001
            self.finished.emit(job.job_id, job.cancel.is_set(), f"Batch stopped: {exc}")

    def _run(self, job: BatchJob) -> None:
        from inference.images import load_image

        if job.cancel.is_set():
            self.finished.emit(job.job_id, True, "")
            return
        if job.paths is None:
            from inference.batch import iter_image_paths

            paths = list(iter_image_paths(job.sources, recursive=True))
            for p in paths:
                hash(p)  # pathlib caches it: the GUI thread indexes rows by path without computing 10,000 hashes
            self.listed.emit(job.job_id, paths)
            # The window now lays out and paints the new list (its heaviest moment, tens of ms on the GUI
            # thread); starting to classify right away would make it wait for the GIL and the CPU.
            job.cancel.wait(LIST_SETTLE_S)
        else:
            paths = job.paths
        if job.model is None:
            self.finished.emit(job.job_id, False, "No model is loaded: the images are listed but not classified.")
            return
        todo = [i for i in range(len(paths)) if i not in job.skip_rows]
        total = len(todo)
        self.progress.emit(job.job_id, 0, total)
        session = job.model.session
        recorder = job.recorder.open_in_thread() if job.recorder is not None else None
        message = ""
        buffer: list[ItemResult] = []
        last_emit = time.monotonic()
        done = 0
        try:
            for row in todo:
                if job.cancel.is_set():
                    break
                path = paths[row]
                result = self._classify_one(row, path, session, job.model, recorder, load_image)
                buffer.append(result)
                done += 1
                now = time.monotonic()
                if now - last_emit >= EMIT_INTERVAL_S:
                    self.results.emit(job.job_id, buffer)
                    self.progress.emit(job.job_id, done, total)
                    buffer, last_emit = [], now
        finally:
            if recorder is not None:
                message = recorder.close() or ""
        if buffer:
            self.results.emit(job.job_id, buffer)
        self.progress.emit(job.job_id, done, total)
        self.finished.emit(job.job_id, job.cancel.is_set(), message)

    @staticmethod
    def _classify_one(row: int, path: Path, session: Any, model: ModelInfo, recorder: Any, load_image) -> ItemResult:
        image_hash = None
        try:
            if recorder is not None and not path.is_dir():  # a folder listed as unreadable: load_image says so
                image_hash = recorder.hash_file(path)
                cached = recorder.cached(image_hash, model)
                if cached is not None:
                    probs, notes = cached
                    return ItemResult(row, path, image_hash, probs, None, notes, cached=True)
            loaded = load_image(path)
            prediction = session.predict(loaded.rgb)
            probs = np.asarray(prediction.probabilities, dtype=np.float32).copy()
            notes = tuple(dict.fromkeys((*loaded.notes, *prediction.notes)))
            if recorder is not None and image_hash is not None:
                recorder.record(path, image_hash, model, probs, notes)
            return ItemResult(row, path, image_hash, probs, None, notes)
        except Exception as exc:  # noqa: BLE001 - one bad image is one row's error, the batch goes on
            reason = str(exc) or exc.__class__.__name__
            if recorder is not None:
                recorder.record_unclassified(path, image_hash, reason)  # so the case report names it
            return ItemResult(row, path, image_hash, None, reason)


@dataclass(frozen=True)
class DetailRequest:
    token: int
    path: Path
    model: ModelInfo | None
    class_index: int | None = None
    colormap: str = "jet"
    ahead: bool = False  # loaded before it is asked for: the image the technician will most likely see next


@dataclass(frozen=True)
class HeatmapRequest:
    token: int
    prediction: Any
    class_index: int
    colormap: str = "jet"


@dataclass(frozen=True)
class DetailResult:
    """Everything the image view and probability panel need for the image on screen."""

    token: int
    path: Path
    image: QImage | None = None
    prediction: Any = None
    heatmap: QImage | None = None
    class_index: int | None = None
    notes: tuple[str, ...] = ()
    error: str | None = None
    heatmap_only: bool = False  # a class switch on the image already on screen
    ahead: bool = False  # answers a request made ahead of time (DetailRequest.ahead)


class DetailWorker(QObject):
    """Loads the image on screen at full size, predicts it and colours its heatmap, off the GUI thread.

    Requests superseded while waiting (the user moved on) are skipped: only ``latest_token`` is served.
    """

    ready = Signal(object)  # DetailResult

    def __init__(self) -> None:
        super().__init__()
        self.latest_token = 0

    @Slot(object)
    def load(self, req: DetailRequest) -> None:
        if req.token != self.latest_token:
            return
        result = self._result(req)
        self.ready.emit(replace(result, ahead=True) if req.ahead else result)

    def _result(self, req: DetailRequest) -> DetailResult:
        from inference.images import load_image

        try:
            loaded = load_image(req.path)
        except Exception as exc:  # noqa: BLE001
            return DetailResult(req.token, req.path, error=str(exc))
        # In the format the screen's pixmaps use, converted here: the GUI thread then only copies it (a 20 MP
        # image: 65 -> 11 ms on the GUI thread, 81 MP: 215 -> 28 ms, measured here).
        image = rgb_to_qimage(loaded.rgb).convertToFormat(QImage.Format.Format_RGB32)
        if req.model is None or req.model.session is None or req.token != self.latest_token:
            return DetailResult(req.token, req.path, image=image, notes=loaded.notes)
        try:
            prediction = req.model.session.predict(loaded.rgb)
        except Exception as exc:  # noqa: BLE001
            return DetailResult(req.token, req.path, image=image, notes=loaded.notes, error=str(exc))
        index = prediction.top_index if req.class_index is None else req.class_index
        notes = tuple(dict.fromkeys((*loaded.notes, *prediction.notes)))
        try:
            heat = self._heatmap_image(prediction, index, req.colormap)
        except Exception as exc:  # noqa: BLE001 - the image and its call still show; the map's absence is said
            return DetailResult(req.token, req.path, image, prediction, None, index, notes, error=f"No heatmap: {exc}")
        return DetailResult(req.token, req.path, image, prediction, heat, index, notes)

    @Slot(object)
    def heatmap(self, req: HeatmapRequest) -> None:
        if req.token != self.latest_token:
            return
        try:
            heat = self._heatmap_image(req.prediction, req.class_index, req.colormap)
        except Exception:  # noqa: BLE001 - a class switch that fails leaves no overlay rather than a stale one
            heat = None
        self.ready.emit(DetailResult(req.token, Path(), None, req.prediction, heat, req.class_index, heatmap_only=True))

    @staticmethod
    def _heatmap_image(prediction: Any, class_index: int, colormap: str) -> QImage | None:
        cam = prediction.heatmap(class_index, max_side=HEATMAP_MAX_SIDE)
        if cam is None:
            return None
        rgba = rgba_to_qimage(heatmap_rgba(np.asarray(cam, dtype=np.float32), colormap))
        return rgba.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)  # a pixmap's format, as above
