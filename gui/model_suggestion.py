"""The offer to switch to a model trained on images like the open folder's, and the thread that finds it.

When most of a batch is flagged as unlike the model's training images, a sample of the folder is held
against every installed model's training reference (inference.model_fit) on a worker thread: decoding
the sample and reading the model files' metadata would stall the GUI. If another model clearly fits,
a strip under the warning names it and the classes it tells apart and offers "Use <model>"; the switch reclassifies
the folder the same way choosing the model in the picker does.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from gui.job_thread import SingleJobThread
from gui.offer_strip import OfferStrip


def _import_model_fit() -> None:
    import inference.model_fit  # noqa: F401


def _best_fit_or_none(images: list[Path], models: list[Path], current: Path) -> object:
    from inference.model_fit import suggest_model

    try:
        return suggest_model(images, models, current)
    except Exception:  # noqa: BLE001 - an offer that cannot be worked out is simply not made
        return None


class ModelSuggester(SingleJobThread):
    """Owns the thread; one look at a time, and of the requests made meanwhile only the latest runs next.
    ``found(tag, fit)`` arrives on the GUI thread with the request's tag (fit may be None)."""

    found = Signal(object, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__("hemalens-model-fit", _import_model_fit, parent)
        self._next: tuple | None = None

    def start(self, images: list[Path], models: list[Path], current: Path, tag: object = None) -> None:
        request = (list(images), list(models), Path(current), tag)
        if not self._submit_request(request):
            self._next = request

    def _submit_request(self, request: tuple) -> bool:
        images, models, current, tag = request
        return self._submit(lambda: (tag, _best_fit_or_none(images, models, current)))

    def _on_done(self, answer: object) -> None:
        super()._on_done(answer)
        self.found.emit(*answer)
        if self._next is not None:
            request, self._next = self._next, None
            self._submit_request(request)


class ModelSuggestionBar(OfferStrip):
    """A non-modal strip under the warning: which model these images look like, "Use <model>", "Not now"."""

    accepted = Signal(object)  # the suggested model's path
    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("modelSuggestion", "Use", parent)
        self._path: Path | None = None
        self.button.clicked.connect(lambda: self.accepted.emit(self._path))
        self.later.clicked.connect(self.dismissed)

    @property
    def suggested(self) -> Path | None:
        return self._path if self.isVisible() else None

    def offer(self, fit, current_name: str) -> None:  # fit: inference.model_fit.ModelFit
        self._path = fit.path
        liked = round(fit.like_training * fit.sampled)
        classes = html.escape(", ".join(fit.labels))
        self.text.setText(
            f"These images look like the ones <b>{html.escape(fit.name)}</b> was trained on ({liked} of "
            f"{fit.sampled} sampled), not like {html.escape(current_name)}'s. It tells apart only: {classes}. "
            "Switching classifies the folder again with it; your review decisions are kept."
        )
        self.button.setText(f"Use {fit.name}")
        self.button.setToolTip(str(fit.path))
        self.setVisible(True)

    def withdraw(self) -> None:
        self._path = None
        self.setVisible(False)
