"""Where models live: bundled with the app (assets/models) and added by the user (user data folder).

Models are found by file path, by their metadata id, or by their display name.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from platformdirs import user_data_dir

from inference.contract import ModelSpec, assumed_spec
from inference.errors import HemaLensError, ModelContractError, ModelLoadError, ModelNotFoundError
from inference.model_file import graph_input_names, metadata_spec, producer_op, read_model_file

APP_NAME = "HemaLens"
USER_MODELS_ENV = "HEMALENS_USER_MODELS_DIR"  # override, for portable installs and tests
BUNDLED_MODELS_ENV = "HEMALENS_BUNDLED_MODELS_DIR"


@dataclass(frozen=True)
class ModelEntry:
    """A model file found on disk with its spec (assumed from the graph when it has no metadata)."""

    name: str
    path: Path
    spec: ModelSpec
    bundled: bool


def bundled_models_dir() -> Path:
    """assets/models next to the code, or inside the PyInstaller bundle when frozen."""
    override = os.environ.get(BUNDLED_MODELS_ENV)
    if override:
        return Path(override)
    base = getattr(sys, "_MEIPASS", None)
    if base:
        return Path(base) / "assets" / "models"
    return Path(__file__).resolve().parent.parent / "assets" / "models"


def user_models_dir() -> Path:
    """The per-user folder where added models are kept (not created here)."""
    override = os.environ.get(USER_MODELS_ENV)
    if override:
        return Path(override)
    return Path(user_data_dir(APP_NAME, appauthor=False)) / "models"


def read_spec(path: str | Path) -> ModelSpec:
    """The spec of a model file without starting ONNX Runtime; plain graphs get a minimal assumed spec."""
    path = Path(path)
    model, _, _ = read_model_file(path)
    spec = metadata_spec(model, path)
    if spec is not None:
        return spec
    try:
        first = next(i for i in model.graph.input if i.name in set(graph_input_names(model)))
        out = model.graph.output[0]
        in_dims = [d.dim_value if d.HasField("dim_value") else None for d in first.type.tensor_type.shape.dim]
        out_dims = [d.dim_value if d.HasField("dim_value") else None for d in out.type.tensor_type.shape.dim]
        count = int(np.prod(out_dims[1:])) if len(out_dims) >= 2 and all(out_dims[1:]) else 0
        return assumed_spec(input_name=first.name, input_shape=in_dims, output_name=out.name, num_classes=count,
                            output_op=producer_op(model, out.name), name=path.stem)
    except (StopIteration, ModelContractError) as exc:
        raise ModelLoadError(path, str(exc) or "the model has no image input") from None


def _scan(folder: Path, bundled: bool, problems: list[tuple[Path, str]] | None) -> list[ModelEntry]:
    if not folder.is_dir():
        return []
    entries = []
    for path in sorted(folder.glob("*.onnx"), key=lambda p: p.name.lower()):
        try:
            spec = read_spec(path)
        except HemaLensError as exc:
            if problems is not None:
                problems.append((path, getattr(exc, "reason", str(exc))))
            continue
        entries.append(ModelEntry(name=spec.name, path=path, spec=spec, bundled=bundled))
    return entries


def list_models(problems: list[tuple[Path, str]] | None = None) -> list[ModelEntry]:
    """Bundled models first, then user models; unreadable files are skipped (and added to ``problems``)."""
    return _scan(bundled_models_dir(), True, problems) + _scan(user_models_dir(), False, problems)


def class_names(entries: list[ModelEntry]) -> dict[str, str]:
    """Class id -> name over ``entries``; where two models share an id, the first listed (bundled) wins."""
    return {c.id: c.name for e in reversed(entries) for c in e.spec.classes}


def resolve_model(name_or_path: str) -> Path:
    """A model file from a path, a metadata id or a display name (case-insensitive); ModelNotFoundError if none."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_file():
        return candidate
    entries = list_models()
    wanted = name_or_path.strip().lower()
    for key in ("id", "name", "stem"):
        for e in entries:
            value = {"id": e.spec.id, "name": e.spec.name, "stem": e.path.stem}[key]
            if value and value.lower() == wanted:
                return e.path
    if candidate.suffix.lower() == ".onnx" or os.sep in name_or_path or "/" in name_or_path:
        raise ModelNotFoundError(f"model file not found: {name_or_path}")
    known = ", ".join(sorted({e.spec.id or e.path.stem for e in entries})) or "none installed"
    raise ModelNotFoundError(f"no model called {name_or_path!r}; known models: {known} (see `hemalens models`)")

