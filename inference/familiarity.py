"""Tell when an image is unlike the images a model was trained on.

A model's measured accuracy holds for images like its training data. Another lab's stain, white
balance, focus, camera resolution or magnification can take an image outside that, where the model
still answers, often confidently and wrongly. So each shipped model carries, in its metadata, a small
statistical reference of its training images, and every prediction is checked against it.

The check uses twelve cheap statistics of the image as the model sees it (after resizing, in RGB):
mean and spread of each colour channel, the share of pixels clearly darker than the image's median
(stained cells), and the log energy of four Laplacian-pyramid bands (sharpness and the size of
structures, which moves with magnification). For the class the model called, the squared Mahalanobis
distance to that class's training images is compared with the distance that only 0.5 % of them
exceed. Above it, the prediction gets a note. It is a warning, not a verdict: colour and scale
changes it catches well, other changes it may miss (measured figures are in each model card).
"""

from __future__ import annotations

import cv2
import numpy as np

from inference.contract import ClassReference, InputSpec, TrainingReference
from inference.preprocess import normalisation, preprocess_batch

FEATURE_SET = "colour-texture-v1"
FEATURE_NAMES = (
    "mean R", "mean G", "mean B", "std R", "std G", "std B",
    "share darker than 0.8 x median", "share darker than 0.6 x median",
    "band energy 1 px", "band energy 2 px", "band energy 4 px", "band energy 8 px",
)
QUANTILE = 0.995
UNFAMILIAR_NOTE = (
    "unlike this model's training images (colour, focus or magnification differ): "
    "its measured accuracy may not hold here; verify the model on your lab's images"
)


def pixels_from_tensor(tensor: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Undo the normalisation of a preprocessed batch: (N, H, W, 3) RGB in [0, 1], float32."""
    mul, add = normalisation(spec)
    x = tensor.transpose(0, 2, 3, 1) if spec.layout == "NCHW" else tensor
    x = (x - add) / mul
    if spec.color_order == "BGR":
        x = x[..., ::-1]
    return np.clip(x / 255.0, 0.0, 1.0).astype(np.float32)


def image_features(pixels: np.ndarray) -> np.ndarray:
    """(N, 12) statistics of (N, H, W, 3) RGB images in [0, 1] (see the module docstring).

    OpenCV primitives and a Laplacian pyramid (each band: a level minus its blurred, upsampled
    half-size copy) keep this near 0.1 ms per 128 px image; wide Gaussian blurs cost 20 times that."""
    out = np.empty((len(pixels), len(FEATURE_NAMES)), dtype=np.float64)
    for i, x in enumerate(pixels):
        x = np.ascontiguousarray(x, dtype=np.float32)
        mean, std = cv2.meanStdDev(x)
        grey = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)
        median = float(np.partition(grey.ravel(), grey.size // 2)[grey.size // 2])
        bands, level = [], grey
        for _ in range(4):
            if min(level.shape) < 2:
                bands.append(np.log(1e-8))
                continue
            half = cv2.pyrDown(level)
            detail = level - cv2.pyrUp(half, dstsize=(level.shape[1], level.shape[0]))
            bands.append(np.log(float(cv2.meanStdDev(detail)[1][0, 0]) ** 2 + 1e-8))
            level = half
        dark = grey.size
        out[i] = [*mean.ravel(), *std.ravel(), np.count_nonzero(grey < 0.8 * median) / dark,
                  np.count_nonzero(grey < 0.6 * median) / dark, *bands]
    return out


def features_of_images(rgbs: list[np.ndarray], spec: InputSpec) -> np.ndarray:
    """Features of RGB uint8 images as the model sees them (resized per ``spec``, as at run time)."""
    tensor, _ = preprocess_batch(rgbs, spec)
    return image_features(pixels_from_tensor(tensor, spec))


def _squared_distances(features: np.ndarray, ref: ClassReference) -> np.ndarray:
    d = features - np.asarray(ref.mean)
    return np.einsum("ni,ij,nj->n", d, np.asarray(ref.inv_cov), d)


def fit_reference(features: np.ndarray, labels: np.ndarray, num_classes: int, quantile: float = QUANTILE
                  ) -> TrainingReference:
    """Per-class statistics of training-image ``features`` (N, 12) with class ``labels`` (N,)."""
    classes = []
    for c in range(num_classes):
        f = features[labels == c]
        if len(f) <= 2 * f.shape[1]:
            raise ValueError(f"class {c}: {len(f)} images are too few for a reference ({2 * f.shape[1] + 1} needed)")
        cov = np.cov(f.T) + 1e-6 * np.eye(f.shape[1])  # a ridge keeps near-constant features invertible
        ref = ClassReference(tuple(map(float, f.mean(0))), tuple(map(tuple, np.linalg.inv(cov).tolist())), 0.0)
        limit = float(np.quantile(_squared_distances(f, ref), quantile))
        classes.append(ClassReference(ref.mean, ref.inv_cov, limit))
    return TrainingReference(FEATURE_SET, tuple(classes), quantile, int(len(labels)))


def unfamiliar(reference: TrainingReference, features: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """True where an image is farther from its called class's training images than the limit."""
    out = np.zeros(len(features), dtype=bool)
    for c in np.unique(classes):
        rows = classes == c
        ref = reference.classes[int(c)]
        out[rows] = _squared_distances(features[rows], ref) > ref.limit
    return out
