"""The GUI thread's handle on the two worker threads (batch classification and detail loading).

Everything that touches ONNX Runtime or decodes full-size images goes through here, by queued
signals, so the window never waits on a model. Each batch has its own job id and cancellation
flag, so results from a cancelled or superseded run are recognised and dropped.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal

from gui.items import ModelInfo
from gui.workers import BatchJob, BatchWorker, DetailRequest, DetailResult, DetailWorker, HeatmapRequest


class Engine(QObject):
    """Starts models, batches and detail loads on worker threads and re-emits their results."""

    modelLoaded = Signal(object)  # ModelInfo
    modelFailed = Signal(object, str)  # path, message
    listed = Signal(object)  # list[Path]
    results = Signal(object)  # list[ItemResult]
    progress = Signal(int, int)  # done, total
    batchFinished = Signal(bool, str)  # cancelled, message
    detailReady = Signal(object)  # DetailResult

    _runBatch = Signal(object)
    _loadModel = Signal(int, object)
    _loadDetail = Signal(object)
    _loadHeatmap = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._batch_thread = QThread()
        self._batch_thread.setObjectName("hemalens-batch")
        self._batch = BatchWorker()
        self._batch.moveToThread(self._batch_thread)
        self._detail_thread = QThread()
        self._detail_thread.setObjectName("hemalens-detail")
        self._detail = DetailWorker()
        self._detail.moveToThread(self._detail_thread)

        self._runBatch.connect(self._batch.run)
        self._loadModel.connect(self._batch.load_model)
        self._loadDetail.connect(self._detail.load)
        self._loadHeatmap.connect(self._detail.heatmap)
        self._batch.modelLoaded.connect(self._on_model_loaded)
        self._batch.modelFailed.connect(self._on_model_failed)
        self._batch.listed.connect(self._on_listed)
        self._batch.results.connect(self._on_results)
        self._batch.progress.connect(self._on_progress)
        self._batch.finished.connect(self._on_finished)
        self._detail.ready.connect(self._on_detail)

        self._job: BatchJob | None = None
        self._job_seq = 0
        self._model_seq = 0
        self._model_paths: dict[int, Path] = {}
        self._detail_seq = 0
        self.colormap = "jet"  # the heatmap's colours (gui.settings.HEATMAP_COLOURS)
        self._ahead_key: tuple[Path, str | None] | None = None  # (path, model hash) loaded ahead of time
        self._ahead_result: DetailResult | None = None  # its result, once it is here
        self._ahead_adopted = False  # asked for while still on its way: delivered as the answer on arrival
        self._batch_thread.start()
        self._detail_thread.start()

    # --- models --------------------------------------------------------------------------------
    def load_model(self, path: Path) -> None:
        """Create a session for ``path`` on the batch thread; answers with modelLoaded/modelFailed."""
        self.cancel_batch()
        self._model_seq += 1
        self._model_paths[self._model_seq] = Path(path)
        self._loadModel.emit(self._model_seq, Path(path))

    def _on_model_loaded(self, request_id: int, info: ModelInfo) -> None:
        self._model_paths.pop(request_id, None)
        if request_id == self._model_seq:
            self.modelLoaded.emit(info)

    def _on_model_failed(self, request_id: int, message: str) -> None:
        path = self._model_paths.pop(request_id, Path())
        if request_id == self._model_seq:
            self.modelFailed.emit(path, message)

    # --- batches -------------------------------------------------------------------------------
    @property
    def batch_running(self) -> bool:
        return self._job is not None

    def start_batch(
        self,
        model: ModelInfo | None,
        sources: list[Path],
        paths: list[Path] | None = None,
        skip_rows: frozenset[int] = frozenset(),
        recorder: Any = None,
    ) -> int:
        self.cancel_batch()
        self._job_seq += 1
        self._job = BatchJob(self._job_seq, model, list(sources), paths, skip_rows, recorder)
        self._runBatch.emit(self._job)
        return self._job_seq

    def cancel_batch(self) -> None:
        """Ask the running batch to stop after the current image; its late results are ignored."""
        if self._job is not None:
            self._job.cancel.set()
            self._job = None

    def _current(self, job_id: int) -> bool:
        return self._job is not None and self._job.job_id == job_id

    def _on_listed(self, job_id: int, paths: list[Path]) -> None:
        if self._current(job_id):
            self.listed.emit(paths)

    def _on_results(self, job_id: int, results: list) -> None:
        if self._current(job_id):
            self.results.emit(results)

    def _on_progress(self, job_id: int, done: int, total: int) -> None:
        if self._current(job_id):
            self.progress.emit(done, total)

    def _on_finished(self, job_id: int, cancelled: bool, message: str) -> None:
        if self._current(job_id):
            self._job = None
            self.batchFinished.emit(cancelled, message)

    # --- the image on screen -------------------------------------------------------------------
    def request_detail(self, path: Path, model: ModelInfo | None, class_index: int | None = None) -> int:
        """Load ``path`` for the screen; answers with detailReady. The image loaded ahead of time is used
        when it is this one (delivered at once, or adopted while still on its way)."""
        if class_index is None and self._ahead_key == _ahead_key(path, model):
            if self._ahead_result is None:
                self._ahead_adopted = True
                return self._detail_seq
            result = self._ahead_result
            token = self._next_detail_token()
            QTimer.singleShot(0, lambda: self._on_detail(replace(result, token=token, ahead=False)))
            return token
        token = self._next_detail_token()
        self._loadDetail.emit(DetailRequest(token, Path(path), model, class_index, colormap=self.colormap))
        return token

    def load_ahead(self, path: Path, model: ModelInfo | None) -> None:
        """While the technician looks at one image, load the one they will most likely see next, so a large
        photo shows at once instead of after its decode; dropped the moment anything else is asked for."""
        key = _ahead_key(path, model)
        if self._ahead_key == key:
            return
        self._ahead_key, self._ahead_result, self._ahead_adopted = key, None, False
        self._loadDetail.emit(DetailRequest(self._detail_seq, Path(path), model, None, colormap=self.colormap,
                                            ahead=True))

    def request_heatmap(self, prediction: Any, class_index: int) -> int:
        token = self._next_detail_token()
        self._loadHeatmap.emit(HeatmapRequest(token, prediction, class_index, self.colormap))
        return token

    def _next_detail_token(self) -> int:
        """A new request supersedes every earlier one, the image loaded ahead included."""
        self._detail_seq += 1
        self._detail.latest_token = self._detail_seq  # plain int store: read by the worker between steps
        self._ahead_key, self._ahead_result, self._ahead_adopted = None, None, False
        return self._detail_seq

    def _on_detail(self, result: DetailResult) -> None:
        if result.token != self._detail_seq:
            return
        if result.ahead:
            if self._ahead_key is None or result.path != self._ahead_key[0]:
                return
            if not self._ahead_adopted:
                self._ahead_result = result
                return
            self._ahead_key, self._ahead_adopted = None, False
            result = replace(result, ahead=False)
        self.detailReady.emit(result)

    # --- shutdown ------------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 10000) -> None:
        self.cancel_batch()
        self._detail.latest_token = -1
        for thread in (self._batch_thread, self._detail_thread):
            thread.quit()
        for thread in (self._batch_thread, self._detail_thread):
            thread.wait(timeout_ms)


def _ahead_key(path: Path, model: ModelInfo | None) -> tuple[Path, str | None]:
    return Path(path), None if model is None else model.sha256
