"""One worker thread that runs one job at a time, for actions such as report export and augmenting.

Owning the thread, the warm-up (importing heavy code on the worker before the first click), the busy flag and
turning any failure into a message in one place keeps each action's class down to the job it submits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot

from inference.errors import HemaLensError


class _JobWorker(QObject):
    """Lives on the job thread and runs the callables it is sent; a failure becomes a message, never a dead thread."""

    done = Signal(object)  # what the job returned
    failed = Signal(str)

    def __init__(self, warm_up: Callable[[], object], unexpected_prefix: str) -> None:
        super().__init__()
        self._warm_up = warm_up
        self._prefix = unexpected_prefix

    @Slot()
    def warm_up(self) -> None:
        with contextlib.suppress(Exception):  # only an optimisation: the job itself reports any problem
            self._warm_up()

    @Slot(object)
    def run(self, job: Callable[[], object]) -> None:
        try:
            result = job()
        except HemaLensError as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - any failure becomes a message, never a dead thread
            self.failed.emit(f"{self._prefix}{exc.__class__.__name__}: {exc}")
            return
        self.done.emit(result)


class SingleJobThread(QObject):
    """Base for a job runner. ``finished(result)`` and ``failed(message)`` arrive on the GUI thread.

    ``warm_up`` runs on the worker thread when asked (imports the job's code); ``unexpected_prefix`` leads the
    message of a failure that is not a HemaLensError (whose text is already written for the user).
    """

    finished = Signal(object)
    failed = Signal(str)
    _run = Signal(object)
    _warm = Signal()

    def __init__(self, name: str, warm_up: Callable[[], object] = lambda: None, parent: QObject | None = None,
                 unexpected_prefix: str = "") -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName(name)
        self._worker = _JobWorker(warm_up, unexpected_prefix)
        self._worker.moveToThread(self._thread)
        self._warm.connect(self._worker.warm_up)
        self._run.connect(self._worker.run)
        self._worker.done.connect(self._on_done)
        self._worker.failed.connect(self._on_failed)
        self._busy = False
        self._warmed = False
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._busy

    def warm_up(self) -> None:
        """Load the job's code on the worker thread ahead of the first job (once; cheap afterwards)."""
        if not self._warmed:
            self._warmed = True
            self._warm.emit()

    def _submit(self, job: Callable[[], object]) -> bool:
        """Start ``job`` on the worker thread; False (nothing started) while another one is still running."""
        if self._busy:
            return False
        self._busy = True
        self._run.emit(job)
        return True

    def _on_done(self, result: object) -> None:
        self._busy = False
        self.finished.emit(result)

    def _on_failed(self, message: str) -> None:
        self._busy = False
        self.failed.emit(message)

    def shutdown(self, timeout_ms: int = 60000) -> None:
        """Let a running job finish and stop the thread."""
        self._thread.quit()
        self._thread.wait(timeout_ms)
