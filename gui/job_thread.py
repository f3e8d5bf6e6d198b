"""One worker thread that runs one job at a time, for actions such as report export and augmenting.

Owning the thread, the warm-up (importing heavy code on the worker before the first click) and the
busy flag in one place keeps each action's class down to its own signals and job.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QThread, Signal


class SingleJobThread(QObject):
    """Base for a job runner: the worker needs a ``warm_up()`` slot; subclasses wire their own signals."""

    _warm = Signal()

    def __init__(self, worker: QObject, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName(name)
        self._worker = worker
        self._worker.moveToThread(self._thread)
        self._warm.connect(self._worker.warm_up)
        self._busy = False
        self._warmed = False

    @property
    def busy(self) -> bool:
        return self._busy

    def warm_up(self) -> None:
        """Load the job's code on the worker thread ahead of the first job (once; cheap afterwards)."""
        if not self._warmed:
            self._warmed = True
            self._warm.emit()

    def _claim(self) -> bool:
        """Mark a job as started; False while another one is still running."""
        if self._busy:
            return False
        self._busy = True
        return True

    def _release(self) -> None:
        self._busy = False

    def shutdown(self, timeout_ms: int = 60000) -> None:
        """Let a running job finish and stop the thread."""
        self._thread.quit()
        self._thread.wait(timeout_ms)
