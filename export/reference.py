"""Store, in a model file, the statistics of the images it was trained on (inference/familiarity.py),
so HemaLens can tell technicians when an image is unlike them. Used by the exporters' and `augment`'s
``--reference-folder`` and by the default models' recipe."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx

from export.errors import ExportError
from export.modelfile import write_model
from inference.cli_evaluate import labelled_items
from inference.contract import ModelSpec, TrainingReference
from inference.errors import HemaLensError
from inference.familiarity import features_of_images, fit_reference
from inference.images import load_image
from inference.model_file import metadata_spec

CHUNK = 64


def fit_folder_reference(model_path: Path, folder: Path, split: str = "all") -> TrainingReference:
    """Per-class statistics of a labelled folder (``folder/<class>/<image>``, matched to the model's
    classes as `hemalens evaluate` matches them), seen through the model's own resizing."""
    spec = _spec(model_path)
    try:
        items = labelled_items(folder, split, spec)
        feats = [features_of_images([load_image(p).rgb for p, _ in items[i : i + CHUNK]], spec.input)
                 for i in range(0, len(items), CHUNK)]
        return fit_reference(np.concatenate(feats), np.asarray([y for _, y in items]), spec.num_classes)
    except (HemaLensError, ValueError) as exc:
        raise ExportError(f"training reference from {folder}: {exc}") from None


def write_reference(model_path: Path, reference: TrainingReference) -> None:
    """Put ``reference`` into the model's HemaLens metadata in place (the graph is untouched)."""
    model = onnx.load(str(model_path))
    write_model(model, replace(_spec(model_path, model), training_reference=reference), model_path)


def _spec(model_path: Path, model: onnx.ModelProto | None = None) -> ModelSpec:
    model = model if model is not None else onnx.load(str(model_path), load_external_data=False)
    spec = metadata_spec(model, Path(model_path))
    if spec is None:
        raise ExportError(f"{model_path} has no HemaLens metadata: export or augment it first")
    return spec
