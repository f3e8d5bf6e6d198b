"""Build the HemaLens spec for an exported graph and write the single self-describing ONNX file."""

from __future__ import annotations

import datetime as _dt
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import onnx

from export.errors import ExportError
from export.gradcam_graph import GradCamGraphInfo
from hemalens import __version__
from inference.contract import (
    METADATA_KEY,
    ClassLabel,
    GradCamSpec,
    InputSpec,
    ModelSpec,
    OutputSpec,
    Provenance,
    spec_from_json,
)
from inference.file_mode import new_file_mode

_MAX_SINGLE_FILE = 2 * 1024**3 - 1


def class_labels(labels: list[str] | tuple[str, ...]) -> tuple[ClassLabel, ...]:
    """Display names -> labels with stable ids (lower-case slug, made unique)."""
    out, seen = [], set()
    for name in labels:
        name = str(name).strip()
        if not name:
            raise ExportError("class labels must not be empty")
        base = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "class"
        ident, k = base, 2
        while ident in seen:
            ident, k = f"{base}_{k}", k + 1
        seen.add(ident)
        out.append(ClassLabel(id=ident, name=name))
    return tuple(out)


def read_labels_file(path: str | Path) -> list[str]:
    """One label per line (blank lines and # comments skipped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"cannot read labels file {path}: {exc.strerror or exc}") from None
    labels = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not labels:
        raise ExportError(f"labels file {path} holds no labels")
    return labels


def build_spec(
    info: GradCamGraphInfo,
    *,
    input_name: str,
    labels: list[str] | tuple[str, ...],
    layout: str,
    input_size: tuple[int, int],
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    scale: float,
    color_order: str,
    resize: str,
    name: str,
    model_id: str,
    version: str,
    temperature: float,
    description: str = "",
    provenance: dict[str, Any] | None = None,
    source_framework: str = "",
    target_layer: str = "",
) -> ModelSpec:
    """Everything the runtime needs, validated through the contract's own reader."""
    if len(labels) != info.num_classes:
        raise ExportError(f"{len(labels)} labels given but the model has {info.num_classes} outputs")
    prov = dict(provenance or {})
    known = set(Provenance.__dataclass_fields__)
    unknown = sorted(set(prov) - known)
    if unknown:
        raise ExportError(f"unknown provenance fields: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    prov.setdefault("created", _dt.date.today().isoformat())
    prov["source_framework"] = source_framework or prov.get("source_framework", "")
    prov["exporter"] = f"hemalens-export {__version__}"
    height, width = (int(input_size[0]), int(input_size[1]))
    spec = ModelSpec(
        name=name,
        id=model_id,
        version=version,
        description=description,
        classes=class_labels(labels),
        input=InputSpec(name=input_name, layout=layout, height=height, width=width,  # type: ignore[arg-type]
                        color_order=color_order, scale=float(scale),  # type: ignore[arg-type]
                        mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std),  # type: ignore[arg-type]
                        resize=resize),  # type: ignore[arg-type]
        output=OutputSpec(name=info.scores_output, kind=info.scores_kind,  # type: ignore[arg-type]
                          temperature=float(temperature)),
        gradcam=GradCamSpec(activations=info.activations, weights=info.weights,
                            target_layer=target_layer or info.target, class_input=info.class_input),
        provenance=Provenance(**prov),
    )
    # Round-trip through the reader so a bad value is refused here, not in the app.
    try:
        return spec_from_json(spec.to_json())
    except Exception as exc:
        raise ExportError(f"the model description is invalid: {exc}") from None


def write_model(model: onnx.ModelProto, spec: ModelSpec, out_path: str | Path) -> Path:
    """Store the spec in the metadata and write one ONNX file atomically (no external data)."""
    out_path = Path(out_path)
    props = {p.key: p.value for p in model.metadata_props if p.key != METADATA_KEY}
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    model.metadata_props.add(key=METADATA_KEY, value=spec.to_json())
    data = model.SerializeToString()
    if len(data) > _MAX_SINGLE_FILE:
        raise ExportError("the model is over 2 GB and cannot be stored as a single ONNX file")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out_path.name, suffix=".tmp", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, new_file_mode())  # mkstemp makes 0600; a model is meant to be shared
        os.replace(tmp, out_path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ExportError(f"cannot write {out_path}: {exc.strerror or exc}") from None
    return out_path
