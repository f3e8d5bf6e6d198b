"""Typed errors that carry a message a technician can act on (what, which file, why)."""

from __future__ import annotations

from pathlib import Path


class HemaLensError(Exception):
    """Base class: every expected failure in HemaLens is one of these, never a bare traceback."""


class ImageLoadError(HemaLensError):
    """An image file could not be turned into an RGB array."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path.name}: {reason}")


class ModelLoadError(HemaLensError):
    """A model file was refused before any inference ran."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"Model {self.path.name}: {reason}")


class ModelContractError(HemaLensError):
    """The HemaLens metadata inside a model is malformed or disagrees with the graph."""


class InferenceError(HemaLensError):
    """A prediction could not be made (bad input array, or the model failed at run time)."""


class ModelNotFoundError(HemaLensError):
    """A model name or path given by the user matches no model file."""
