"""Class activation maps at the model's resolution: Grad-CAM from the model's own outputs, or CAM.

Grad-CAM (Selvaraju et al., ICCV 2017): ``cam_c = ReLU(sum_k alpha[c, k] * A[k])`` with
``alpha[c, k] = mean_ij d logit_c / d A[k, i, j]``, provided by the model graph (see docs/model-contract.md).
CAM (Zhou et al., CVPR 2016) is the gradient-free variant for a GAP -> linear head: ``alpha = W`` of the
linear layer. Both are normalised by their maximum; a map that is nowhere positive stays all zero.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from inference.preprocess import ResizeGeometry, downscaled, map_to_image

GRAD_CAM = "grad-cam"
GAP_CAM = "gradient-free CAM (class activation map from the GAP → linear head, Zhou et al. 2016)"


def weighted_cam(activations: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``ReLU(sum_k weights[k] * activations[k])`` divided by its maximum; (K,h,w),(K,) -> (h,w) float32."""
    acts = activations.astype(np.float32, copy=False)
    k = acts.shape[0]
    # np.tensordot(weights, acts, axes=1) is exactly this one dot product; written out it skips ~10 us of
    # axis bookkeeping per heatmap.
    cam = np.dot(weights.astype(np.float32, copy=False).reshape(1, k), acts.reshape(k, -1)).reshape(acts.shape[1:])
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
        self._cache: dict[tuple[int, int | None], np.ndarray] = {}
        self._lock = threading.Lock()  # the GUI asks for heatmaps from worker threads

    def class_weights(self, class_index: int) -> np.ndarray:
        if self._weights is not None:
            return self._weights[class_index]
        if self._weights_for_class is None:
            raise ValueError("no CAM weights available")
        return self._weights_for_class(class_index)

    def low_res(self, class_index: int) -> np.ndarray:
        """The normalised map at the activation resolution (h, w)."""
        return weighted_cam(self.activations, self.class_weights(class_index))

    def heatmap(self, class_index: int, max_side: int | None = None) -> np.ndarray:
        """The normalised map at the original image size, values in [0, 1]; with ``max_side``, at that size
        shrunk so its longer side is at most ``max_side`` (same aspect ratio, for drawing on screen)."""
        key = (class_index, max_side)
        with self._lock:
            cached = self._cache.get(key)
            if cached is None:
                geometry = self.geometry if max_side is None else downscaled(self.geometry, max_side)
                cached = map_to_image(self.low_res(class_index), geometry)
                np.maximum(cached, 0.0, out=cached)  # np.clip(cached, 0, 1), NaN kept alike, in half the time
                np.minimum(cached, 1.0, out=cached)
                if len(self._cache) >= 4:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = cached
            return cached


SCORE_CAM_CHANNELS = 32
SCORE_CAM = f"gradient-free CAM (Score-CAM, Wang et al. 2020, top {SCORE_CAM_CHANNELS} channels)"


def score_cam_weights(
    activations: np.ndarray,
    image: np.ndarray,
    to_tensor: Callable[[np.ndarray], np.ndarray],
    class_probabilities: Callable[[np.ndarray], np.ndarray],
    channels: int = SCORE_CAM_CHANNELS,
) -> np.ndarray:
    """Score-CAM channel weights for every class at once, (C, K).

    Each of the most active channels is upsampled, min-max normalised and used as a mask on the
    model-input image; the weight is how much the masked image raises each class probability over
    a black image (Wang et al., CVPR-W 2020). Channels not evaluated get weight 0.
    """
    import cv2

    k = activations.shape[0]
    height, width = image.shape[:2]
    order = np.argsort(-activations.reshape(k, -1).mean(axis=1))[: min(channels, k)]
    masked = []
    for ch in order:
        m = cv2.resize(activations[ch].astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
        lo, hi = float(m.min()), float(m.max())
        m = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
        masked.append(image * m[:, :, None])
    baseline = class_probabilities(to_tensor(np.zeros_like(image)[None]))[0]
    probs = class_probabilities(to_tensor(np.stack(masked)))  # (n, C)
    weights = np.zeros((probs.shape[1], k), dtype=np.float32)
    weights[:, order] = (probs - baseline[None, :]).T
    return weights
