"""Which installed model was trained on images like these? Behind the app's "Use <model>" suggestion.

Opened with the wrong model (single white cells under the ALL subtypes model, trained on whole smear
fields), a folder still gets confident calls, and most images are flagged as unlike the model's
training images. The same twelve statistics (inference.familiarity), held against every installed
model's training reference, whatever the class, tell which model these images look like; the app then
offers that model instead of leaving the technician with a warning alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.errors import HemaLensError
from inference.familiarity import FEATURE_SET, features_of_images, share_like_training
from inference.images import load_image
from inference.registry import read_spec

SAMPLE = 24  # images held against each model: enough to see a folder's kind, quick to decode
SUGGEST_AT = 0.75  # at least this share of the sampled images like the other model's training images
MARGIN = 0.4  # ... and this much more than like the model in use


@dataclass(frozen=True)
class ModelFit:
    """How much of a sample of images looks like one model's training images."""

    path: Path
    name: str
    like_training: float
    sampled: int
    labels: tuple[str, ...] = ()


def fit_of_models(rgbs: list[np.ndarray], paths: list[Path]) -> list[ModelFit]:
    """Each model file's share of ``rgbs`` that looks like its training images; files without a training
    reference (or that cannot be read) are left out."""
    fits = []
    for path in paths:
        try:
            spec = read_spec(path)
        except HemaLensError:
            continue
        reference = spec.training_reference
        if reference is None or reference.features != FEATURE_SET or not rgbs:
            continue
        share = share_like_training(reference, features_of_images(rgbs, spec.input))
        fits.append(ModelFit(Path(path), spec.name, share, len(rgbs), tuple(spec.labels)))
    return fits


def better_fit(fits: list[ModelFit], current: Path) -> ModelFit | None:
    """The model to suggest instead of ``current``, or None when no other model fits clearly better."""
    here = Path(current).resolve()
    now = next((f.like_training for f in fits if f.path.resolve() == here), 0.0)
    others = [f for f in fits if f.path.resolve() != here]
    best = max(others, key=lambda f: f.like_training, default=None)
    if best is None or best.like_training < SUGGEST_AT or best.like_training < now + MARGIN:
        return None
    return best


def sample_evenly(paths: list[Path], size: int = SAMPLE) -> list[Path]:
    """Up to ``size`` paths spread over the whole list (folders are often sorted by class)."""
    if len(paths) <= size:
        return list(paths)
    step = len(paths) / size
    return [paths[int(i * step)] for i in range(size)]


def suggest_model(images: list[Path], models: list[Path], current: Path) -> ModelFit | None:
    """The installed model that a sample of ``images`` looks like far more than ``current`` (None if none);
    unreadable images are skipped (they are reported where they were classified)."""
    rgbs = []
    for path in sample_evenly(images):
        try:
            rgbs.append(load_image(path).rgb)
        except HemaLensError:
            continue
    return better_fit(fit_of_models(rgbs, models), current)
