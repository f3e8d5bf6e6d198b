"""The result of classifying one image: calibrated probabilities, the top class and heatmaps on request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inference.cam import CamSource


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class Prediction:
    """Per-class calibrated probabilities for one image.

    ``heatmap(c)`` returns a float32 (H, W) map in [0, 1] at the ORIGINAL image size (computed on first
    request, then cached), or None when the model offers no heatmap (``cam_method`` is None then).
    """

    labels: tuple[str, ...]
    class_ids: tuple[str, ...]
    probabilities: np.ndarray
    top_index: int
    cam_method: str | None = None
    notes: tuple[str, ...] = ()
    scores: np.ndarray | None = field(default=None, repr=False, compare=False)
    image_size: tuple[int, int] = (0, 0)
    unseen_edges: str = ""  # edges a centre crop left out, in words, see ResizeGeometry.unseen_edges
    _cam: CamSource | None = field(default=None, repr=False, compare=False)

    @property
    def top_label(self) -> str:
        return self.labels[self.top_index]

    @property
    def top_class_id(self) -> str:
        return self.class_ids[self.top_index]

    @property
    def top_probability(self) -> float:
        return float(self.probabilities[self.top_index])

    def ranked(self) -> list[tuple[int, str, float]]:
        """(index, label, probability) from most to least likely."""
        order = np.argsort(-self.probabilities, kind="stable")
        return [(int(i), self.labels[i], float(self.probabilities[i])) for i in order]

    def heatmap(self, class_index: int | None = None, max_side: int | None = None) -> np.ndarray | None:
        """Heatmap for ``class_index`` (default: the top class) at the original image size, or None. With
        ``max_side`` it is at most that many pixels on its longer side (the image's aspect ratio kept)."""
        if self._cam is None:
            return None
        index = self.top_index if class_index is None else int(class_index)
        if not 0 <= index < len(self.labels):
            raise IndexError(f"class index {index} out of range for {len(self.labels)} classes")
        return self._cam.heatmap(index, max_side)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON reports."""
        return {
            "top_class_id": self.top_class_id,
            "top_label": self.top_label,
            "top_probability": self.top_probability,
            "probabilities": {cid: float(p) for cid, p in zip(self.class_ids, self.probabilities, strict=True)},
            "cam_method": self.cam_method,
            "notes": list(self.notes),
        }
