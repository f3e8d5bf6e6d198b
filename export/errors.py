"""Typed export failures: what went wrong and why, so the exporter never ends in a bare traceback."""

from __future__ import annotations

from inference.errors import HemaLensError


class ExportError(HemaLensError):
    """A model could not be exported or augmented; the message says why."""


class UnsupportedGraphError(ExportError):
    """The classifier head uses an operator the Grad-CAM gradient builder cannot differentiate."""


class VerificationError(ExportError):
    """The exported model disagreed with its source model; it was not written."""

    def __init__(self, reason: str, figures: dict | None = None) -> None:
        self.reason = reason
        self.figures = dict(figures or {})
        super().__init__(f"Export refused: {reason}")
