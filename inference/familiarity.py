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
    """Undo the normalisation of a preprocessed batch: (N, H, W, 3) RGB uint8, as the model saw it.

    NCHW planes go through OpenCV (which releases the GIL: the batch threads share it with the GUI)."""
    mul, add = normalisation(spec)
    alpha, beta = 1.0 / mul, -add / mul
    if spec.layout == "NCHW":
        order = (2, 1, 0) if spec.color_order == "BGR" else (0, 1, 2)
        return np.stack([
            cv2.merge([cv2.convertScaleAbs(t[c], alpha=float(alpha[c]), beta=float(beta[c])) for c in order])
            for t in tensor
        ])
    x = np.clip(np.rint(tensor * alpha + beta), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(x[..., ::-1] if spec.color_order == "BGR" else x)


def image_features(pixels: np.ndarray) -> np.ndarray:
    """(N, 12) statistics of (N, H, W, 3) RGB uint8 images (see the module docstring).

    OpenCV primitives (a grey histogram for the median and dark shares, a Laplacian pyramid whose
    bands are a level minus its blurred, upsampled half-size copy) keep this near 0.1 ms per 128 px
    image and mostly outside the GIL; wide Gaussian blurs cost 20 times that."""
    out = np.empty((len(pixels), len(FEATURE_NAMES)), dtype=np.float64)
    for i, x in enumerate(pixels):
        x = np.ascontiguousarray(x)
        mean, std = cv2.meanStdDev(x)
        grey = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)
        cdf = np.cumsum(cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel())
        median = int(np.searchsorted(cdf, cdf[-1] / 2))
        bands, level = [], grey.astype(np.float32)
        for _ in range(4):
            if min(level.shape) < 2:
                bands.append(np.log(1e-8))
                continue
            half = cv2.pyrDown(level)
            detail = cv2.subtract(level, cv2.pyrUp(half, dstsize=(level.shape[1], level.shape[0])))
            bands.append(np.log((float(cv2.meanStdDev(detail)[1][0, 0]) / 255.0) ** 2 + 1e-8))
            level = half
        out[i] = [*(mean.ravel() / 255.0), *(std.ravel() / 255.0), _share_below(cdf, 0.8 * median),
                  _share_below(cdf, 0.6 * median), *bands]
    return out


def _share_below(cdf: np.ndarray, value: float) -> float:
    """Share of grey levels v < ``value``, from the cumulative histogram of an image."""
    limit = int(np.ceil(value))
    return float(cdf[limit - 1] / cdf[-1]) if limit > 0 else 0.0


def features_of_images(rgbs: list[np.ndarray], spec: InputSpec) -> np.ndarray:
    """Features of RGB uint8 images as the model sees them (resized per ``spec``, as at run time)."""
    tensor, _ = preprocess_batch(rgbs, spec)
    return image_features(pixels_from_tensor(tensor, spec))


def _squared_distances(features: np.ndarray, mean: np.ndarray, inv_cov: np.ndarray) -> np.ndarray:
    d = features - mean
    return np.einsum("ni,ij,nj->n", d, inv_cov, d)


def fit_reference(features: np.ndarray, labels: np.ndarray, num_classes: int, quantile: float = QUANTILE
                  ) -> TrainingReference:
    """Per-class statistics of training-image ``features`` (N, 12) with class ``labels`` (N,)."""
    classes = []
    for c in range(num_classes):
        f = features[labels == c]
        if len(f) <= 2 * f.shape[1]:
            raise ValueError(f"class {c}: {len(f)} images are too few for a reference ({2 * f.shape[1] + 1} needed)")
        mean = f.mean(0)
        ridge = 1e-6 * np.eye(f.shape[1])  # keeps near-constant features invertible
        inv_cov = np.linalg.inv(np.cov(f.T) + ridge)
        limit = float(np.quantile(_squared_distances(f, mean, inv_cov), quantile))
        classes.append(ClassReference(tuple(map(float, mean)), tuple(map(tuple, inv_cov.tolist())), limit))
    return TrainingReference(FEATURE_SET, tuple(classes), quantile, int(len(labels)))


def unfamiliar(reference: TrainingReference, features: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """True where an image is farther from its called class's training images than the limit."""
    out = np.zeros(len(features), dtype=bool)
    for c in np.unique(classes):
        rows = classes == c
        ref = reference.classes[int(c)]
        out[rows] = _squared_distances(features[rows], np.asarray(ref.mean), np.asarray(ref.inv_cov)) > ref.limit
    return out


def share_like_training(reference: TrainingReference, features: np.ndarray) -> float:
    """Share of images within the limit of at least one class's training images, whatever the call: how much
    of a folder looks like what this model was trained on (0 for no images)."""
    if not len(features):
        return 0.0
    like = np.zeros(len(features), dtype=bool)
    for ref in reference.classes:
        like |= _squared_distances(features, np.asarray(ref.mean), np.asarray(ref.inv_cov)) <= ref.limit
    return float(like.mean())


def folder_unlike_warning(unlike: int, classified: int, model_name: str) -> str | None:
    """A folder-level warning when many images were flagged as unlike the model's training images
    (more than 10 %, at least 3): the model card's accuracy may not hold for this lab's images."""
    if unlike < 3 or unlike <= 0.1 * classified:
        return None
    return (f"⚠ {unlike} of {classified} images look unlike the images {model_name} was trained on (colour, focus "
            "or magnification differ). Its measured accuracy may not hold for them: check the model on your lab's "
            "labelled images (Model → Check on labelled images… in the app, or hemalens evaluate) before relying on "
            "its calls.")
