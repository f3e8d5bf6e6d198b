"""Class activation maps at the model's resolution: Grad-CAM from the model's own outputs, or CAM.

Grad-CAM (Selvaraju et al., ICCV 2017): ``cam_c = ReLU(sum_k alpha[c, k] * A[k])`` with
``alpha[c, k] = mean_ij d logit_c / d A[k, i, j]``, provided by the model graph (see docs/model-contract.md).
CAM (Zhou et al., CVPR 2016) is the gradient-free variant for a GAP -> linear head: ``alpha = W`` of the
linear layer. Both are normalised by their maximum; a map that is nowhere positive stays all zero.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from inference.preprocess import ResizeGeometry, map_to_image

GRAD_CAM = "grad-cam"
GAP_CAM = "gradient-free CAM (class activation map from the GAP → linear head, Zhou et al. 2016)"


def weighted_cam(activations: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``ReLU(sum_k weights[k] * activations[k])`` divided by its maximum; (K,h,w),(K,) -> (h,w) float32."""
    cam = np.tensordot(weights.astype(np.float32, copy=False), activations.astype(np.float32, copy=False), axes=1)
    np.maximum(cam, 0.0, out=cam)
    peak = float(cam.max(initial=0.0))
    if peak > 0.0 and np.isfinite(peak):
        cam /= peak
    else:
        cam[...] = 0.0
    return cam.astype(np.float32, copy=False)


class CamSource:
    """Holds what one prediction needs to draw a heatmap for any class, computed lazily and cached."""

    def __init__(
        self,
        method: str,
        activations: np.ndarray,
        geometry: ResizeGeometry,
        weights: np.ndarray | None = None,
        weights_for_class: Callable[[int], np.ndarray] | None = None,
    ) -> None:
        self.method = method
        self.activations = activations  # (K, h, w)
        self.geometry = geometry
        self._weights = weights  # (C, K) or None when computed per class on request
        self._weights_for_class = weights_for_class
        self._cache: dict[int, np.ndarray] = {}

    def class_weights(self, class_index: int) -> np.ndarray:
        if self._weights is not None:
            return self._weights[class_index]
        if self._weights_for_class is None:
            raise ValueError("no CAM weights available")
        return self._weights_for_class(class_index)

    def low_res(self, class_index: int) -> np.ndarray:
        """The normalised map at the activation resolution (h, w)."""
        return weighted_cam(self.activations, self.class_weights(class_index))

    def heatmap(self, class_index: int) -> np.ndarray:
        """The normalised map at the original image size, values in [0, 1]."""
        if class_index not in self._cache:
            full = map_to_image(self.low_res(class_index), self.geometry)
            np.clip(full, 0.0, 1.0, out=full)
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[class_index] = full
        return self._cache[class_index]
