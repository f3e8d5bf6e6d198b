"""Make any ONNX classifier Grad-CAM-ready: a new single file, the original left untouched.

No source framework is available here, so the check is framework-independent: the scores must be
unchanged by the augmentation and the Grad-CAM weights must match central finite differences of
the logits with respect to the target activation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from export.errors import ExportError, VerificationError
from export.gradcam_graph import DEFAULT_MAX_ALL_CLASSES, add_gradcam, find_scores, opset_version
from export.modelfile import class_labels, write_model
from export.one_score import NOTE, OneScoreHead, as_two_classes
from export.onnx_tools import finite_difference_check
from export.report import ExportReport
from export.verify import MAX_FD_REL_ERROR, check, format_figures, ort_session, run_outputs
from hemalens import __version__
from inference.contract import GradCamSpec, ModelSpec, assumed_spec, spec_from_metadata
from inference.errors import ModelContractError
from inference.model_file import producer_op
from inference.preprocess import preprocess_batch


def _load(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise ExportError(f"model file not found: {path}")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf/onnx raise several types for bad files
        raise ExportError(f"{path.name} is not a readable ONNX model ({exc})") from None


def _base_spec(model: onnx.ModelProto, path: Path) -> tuple[ModelSpec, bool]:
    """The model's own HemaLens spec, or one assumed from the graph; and whether it was assumed."""
    try:
        spec = spec_from_metadata({p.key: p.value for p in model.metadata_props})
    except ModelContractError as exc:
        raise ExportError(f"{path.name}: {exc}") from None
    if spec is not None:
        return spec, False
    graph_inputs = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in graph_inputs]
    if len(inputs) != 1:
        raise ExportError(f"{path.name} has {len(inputs)} inputs; an image classifier has one")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    scores, _kind, _ = find_scores(model)
    out = next(o for o in model.graph.output if o.name == scores)
    out_dims = [d.dim_value if d.HasField("dim_value") else None for d in out.type.tensor_type.shape.dim]
    if len(out_dims) != 2 or not out_dims[1]:
        raise ExportError(f"{path.name}: the output '{scores}' is not (batch, classes)")
    try:
        spec = assumed_spec(input_name=inputs[0].name, input_shape=dims, output_name=scores,
                            num_classes=int(out_dims[1]), output_op=producer_op(model, scores),
                            name=path.stem)
    except ModelContractError as exc:
        raise ExportError(f"{path.name}: {exc}") from None
    return spec, True


def augment_model(
    in_path: str | Path,
    out_path: str | Path,
    *,
    spec: ModelSpec | None = None,
    labels: list[str] | None = None,
    input_changes: dict[str, Any] | None = None,
    name: str | None = None,
    target: str | None = None,
    max_all_classes: int = DEFAULT_MAX_ALL_CLASSES,
    log: Callable[[str], None] | None = print,
) -> ExportReport:
    """Write a Grad-CAM-ready copy of ``in_path`` to ``out_path`` with HemaLens metadata.

    The spec is ``spec`` if given, else the model's own metadata, else one assumed from the graph
    (RGB, 1/255, stretch; say otherwise with ``input_changes`` such as ``{"mean": (...)}``) with
    ``labels`` when given. ``target`` names the Grad-CAM tensor (default: found automatically).
    """
    say = log or (lambda _msg: None)
    in_path, out_path = Path(in_path), Path(out_path)
    if in_path.resolve() == out_path.resolve():
        raise ExportError("the augmented model must be written to a new file; the original is never overwritten")
    original = _load(in_path)
    model = onnx.ModelProto()
    model.CopyFrom(original)
    head = as_two_classes(model, labels)
    if head is not None:
        say(NOTE)
    base, assumed = (spec, False) if spec is not None else _base_spec(model, in_path)
    notes = list(base.notes) + ([NOTE] if head else [])
    if labels is not None:
        if len(labels) != base.num_classes:
            raise ExportError(f"{len(labels)} labels given but the model has {base.num_classes} outputs")
        base = replace(base, classes=class_labels(labels))
        notes = [n for n in notes if "Class names" not in n]
    if input_changes:
        try:
            base = replace(base, input=replace(base.input, **input_changes))
        except TypeError as exc:
            raise ExportError(f"bad input setting: {exc}") from None
    if name:
        base = replace(base, name=name)

    augmented, info = add_gradcam(model, target=target, scores_output=base.output.name,
                                  input_layout=base.input.layout, max_all_classes=max_all_classes)
    say(f"Grad-CAM target: ONNX tensor '{info.target}' ({info.channels} channels, {info.height}x{info.width}, "
        f"{info.target_layout}); head ops: {', '.join(info.head_ops)}"
        + (f"; {info.num_classes} classes, so the class is an input ('{info.class_input}')" if info.class_input
           else ""))
    figures = _verify(original, augmented, info, base, head)
    say(format_figures(figures))
    check(figures)
    description = base.description
    if assumed:
        description = (description + " " if description else "") + "Augmented by hemalens-export: " + " ".join(notes)
    result = replace(
        base, description=description.strip(),
        gradcam=GradCamSpec(activations=info.activations, weights=info.weights, target_layer=info.target,
                            class_input=info.class_input))
    result = replace(result, assumed=assumed and bool(notes), notes=tuple(notes) if assumed else ())
    result = result.with_provenance(verification=figures, exporter=f"hemalens-export {__version__} (augment)")
    path = write_model(augmented, result, out_path)
    say(f"wrote {path}")
    return ExportReport(path=path, spec=result, figures=figures, target_tensor=info.target,
                        opset=opset_version(augmented), converter="augment", notes=tuple(notes))


def _verify(original: onnx.ModelProto, augmented: onnx.ModelProto, info, spec: ModelSpec,
            head: OneScoreHead | None) -> dict[str, Any]:
    try:
        onnx.checker.check_model(augmented, full_check=True)
    except Exception as exc:  # noqa: BLE001 - checker raises several types
        raise ExportError(f"onnx.checker rejected the augmented model: {exc}") from None
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (spec.input.height, spec.input.width, 3), dtype=np.uint8) for _ in range(3)]
    batch = preprocess_batch(images, spec.input)[0]
    feeds = {spec.input.name: batch}
    if info.class_input:
        feeds[info.class_input] = np.arange(len(images), dtype=np.int64) % info.num_classes
    try:
        before = run_outputs(ort_session(original), {spec.input.name: batch})[info.scores_output]
        after = run_outputs(ort_session(augmented), feeds)
    except Exception as exc:  # noqa: BLE001 - onnxruntime errors are not typed usefully
        raise VerificationError(f"the model does not run on a {batch.shape} input ({exc})") from None
    scores = after[info.scores_output]
    if head is not None:
        scores, before = head.comparable(scores), head.two_classes(before)
    figures: dict[str, Any] = {
        "images": len(images),
        "max_abs_score_diff": float(np.max(np.abs(scores - before))),
        "top1_agreement": float(np.mean(np.argmax(scores, 1) == np.argmax(before, 1))),
        "fd_max_rel_error": finite_difference_check(augmented, info, feeds),
        "reference": "the original model's scores; Grad-CAM weights against finite differences of the ONNX head",
        "onnx_checker": "passed",
        "fd_limit": MAX_FD_REL_ERROR,
    }
    return figures
