"""Export a trained PyTorch classifier to a verified, Grad-CAM-ready HemaLens ONNX model.

PyTorch is imported here only (an exporter extra); the app never needs it. The graph comes from
``torch.onnx.export`` (the torch.export-based exporter, or the TorchScript one as a fallback and for
TorchScript files), the Grad-CAM gradient from :mod:`export.gradcam_graph`, and the reference for
verification from PyTorch autograd on the same layer, found by matching activations by value.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from export.errors import ExportError
from export.gradcam_graph import DEFAULT_MAX_ALL_CLASSES, GradCamGraphInfo, add_gradcam, opset_version
from export.modelfile import build_spec, write_model
from export.one_score import HALVES, NOTE, OneScoreHead, as_two_classes
from export.onnx_tools import rank4_float_tensors, run_with_intermediates, values_match
from export.report import ExportReport
from export.source_check import check_batches, verify_against_source
from export.verify import Reference, check, format_figures
from inference.contract import ModelSpec

INPUT_NAME = "input"
OUTPUT_NAME = "scores"
DEFAULT_OPSET = 18


def load_torch_model(model: nn.Module | str | Path) -> nn.Module:
    """An ``nn.Module`` as given, or loaded from a TorchScript file or a whole pickled model."""
    if isinstance(model, nn.Module):
        return model
    path = Path(model)
    if not path.is_file():
        raise ExportError(f"PyTorch model file not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.load(str(path), map_location="cpu")
    except Exception:  # noqa: BLE001 - not TorchScript; try a pickled module next
        pass
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for unreadable files
        raise ExportError(f"{path.name} is neither a TorchScript file nor a pickled PyTorch model ({exc})") from None
    if isinstance(loaded, nn.Module):
        return loaded
    if isinstance(loaded, dict):
        keys = ", ".join(list(map(str, loaded))[:4]) + (", ..." if len(loaded) > 4 else "")
        raise ExportError(f"{path.name} holds a dict ({keys}): a state_dict or training checkpoint, weights without "
                          "the network's code. Build your model class and load the weights into it "
                          "(model.load_state_dict(...)), then save the whole model (torch.save(model)) or a "
                          "TorchScript file (torch.jit.script(model).save(...)) for hemalens-export, or pass the "
                          "module to export.pytorch.export_pytorch")
    raise ExportError(f"{path.name} holds a {type(loaded).__name__}, not a PyTorch model")


def _is_scripted(model: nn.Module) -> bool:
    return isinstance(model, torch.jit.ScriptModule)


def _to_onnx(model: nn.Module, size: tuple[int, int], opset: int, converter: str) -> tuple[onnx.ModelProto, str]:
    """Run a torch.onnx exporter; returns the in-memory model and the converter actually used."""
    dummy = torch.randn(2, 3, *size)
    errors = []
    order = ["legacy"] if _is_scripted(model) or converter == "legacy" else ["dynamo", "legacy"]
    for kind in order:
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                if kind == "dynamo":
                    program = torch.onnx.export(
                        model, (dummy,), dynamo=True, external_data=False, input_names=[INPUT_NAME],
                        output_names=[OUTPUT_NAME], dynamic_shapes=({0: torch.export.Dim("batch")},),
                        opset_version=opset, verbose=False)
                    return program.model_proto, f"torch.onnx.export(dynamo=True), torch {torch.__version__}"
                buffer = io.BytesIO()
                torch.onnx.export(
                    model, (dummy,), buffer, dynamo=False, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                    opset_version=min(opset, 20), do_constant_folding=True)
                used = f"torch.onnx.export(dynamo=False), torch {torch.__version__}"
                return onnx.load_from_string(buffer.getvalue()), used
        except Exception as exc:  # noqa: BLE001 - exporter failures come in many types
            errors.append(f"{kind}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")
    raise ExportError("torch.onnx.export failed: " + " | ".join(errors))


class _Recorder:
    """Forward hooks that keep every module's input and output tensors, in execution order."""

    def __init__(self, model: nn.Module) -> None:
        self.records: list[tuple[str, str, torch.Tensor]] = []
        self._handles = []
        for name, module in model.named_modules():
            if not name:
                continue
            self._handles.append(module.register_forward_pre_hook(self._pre(name)))
            self._handles.append(module.register_forward_hook(self._post(name)))

    def _pre(self, name: str) -> Callable:
        def hook(_module, args):
            if args and isinstance(args[0], torch.Tensor):
                self.records.append((name, "input", args[0]))
        return hook

    def _post(self, name: str) -> Callable:
        def hook(_module, _args, output):
            if isinstance(output, torch.Tensor):
                self.records.append((name, "output", output))
        return hook

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    def find(self, value: np.ndarray) -> tuple[str, str, torch.Tensor] | None:
        """The earliest recorded tensor equal to ``value`` (the most upstream of equal candidates)."""
        for record in self.records:
            tensor = record[2]
            if tuple(tensor.shape) == value.shape and values_match(tensor.detach().numpy(), value):
                return record
        return None


def _reference_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy without in-place activations, so hooked tensors keep their values."""
    try:
        ref = copy.deepcopy(model)
    except Exception:  # noqa: BLE001 - some modules cannot be copied; use the original
        ref = model
    for module in ref.modules():
        if hasattr(module, "inplace") and isinstance(module.inplace, bool):
            module.inplace = False
    return ref.eval()


def torch_reference(model: nn.Module, x: np.ndarray, onnx_target: np.ndarray, onnx_logits: np.ndarray | None,
                    module_name: str | None = None) -> tuple[Reference, str]:
    """PyTorch autograd Grad-CAM at the layer whose activation equals the ONNX target (or the named module)."""
    ref_model = _reference_copy(model)
    recorder = _Recorder(ref_model)
    try:
        with torch.enable_grad():
            xt = torch.tensor(x, requires_grad=True)
            scores = ref_model(xt)
            if not isinstance(scores, torch.Tensor):
                raise ExportError("the model's forward must return one tensor of class scores")
            if module_name:
                hits = [r for r in recorder.records if r[0] == module_name and r[1] == "output"]
                record = hits[0] if hits else None
            else:
                record = recorder.find(onnx_target)
            if record is None:
                raise ExportError("no PyTorch module output or input equals the ONNX Grad-CAM target activation, so "
                                  "the heatmap cannot be verified; pass target_layer as a module name")
            logits = scores
            if onnx_logits is not None:
                hit = recorder.find(onnx_logits)
                if hit is None:
                    raise ExportError("the model ends in softmax or sigmoid and no module input equals the scores "
                                      "before it; export the model without that last activation")
                logits = hit[2]
            if logits.dim() == 1 or logits.shape[1] == 1:  # one score per image, as two classes (export.one_score)
                logits = logits.reshape(-1, 1) * torch.tensor(HALVES)
            acts = record[2]
            rows = []
            for c in range(logits.shape[1]):
                (grad,) = torch.autograd.grad(logits[:, c].sum(), acts, retain_graph=True)
                rows.append(grad.mean(dim=(2, 3)))
    finally:
        recorder.close()
    reference = Reference(scores=scores.detach().numpy(), activations=acts.detach().numpy(),
                          weights=torch.stack(rows, dim=1).detach().numpy())
    return reference, f"{record[0]} ({record[1]})"


def _onnx_target_for_module(model: nn.Module, graph: onnx.ModelProto, module_name: str, x: np.ndarray) -> str:
    """The ONNX tensor whose value equals the named module's output on ``x``."""
    ref = _reference_copy(model)
    modules = dict(ref.named_modules())
    if module_name not in modules:
        raise ExportError(f"'{module_name}' is neither a module of the model nor an ONNX tensor")
    captured: dict[str, torch.Tensor] = {}
    handle = modules[module_name].register_forward_hook(lambda _m, _a, out: captured.setdefault("out", out))
    try:
        with torch.no_grad():
            ref(torch.tensor(x))
    finally:
        handle.remove()
    out = captured.get("out")
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        raise ExportError(f"module '{module_name}' does not produce a 4-D activation")
    value = out.detach().numpy()
    candidates = rank4_float_tensors(graph)
    found = run_with_intermediates(graph, {INPUT_NAME: x}, candidates)
    for name in candidates:
        if values_match(found[name], value):
            return name
    raise ExportError(f"the output of module '{module_name}' was not found in the ONNX graph (the exporter may have "
                      "fused it); choose a neighbouring layer")


def export_pytorch(
    model: nn.Module | str | Path,
    out_path: str | Path,
    *,
    labels: list[str],
    input_size: int | tuple[int, int],
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
    std: tuple[float, float, float] = (1.0, 1.0, 1.0),
    scale: float = 1.0 / 255.0,
    color_order: str = "RGB",
    resize: str = "stretch",
    name: str,
    model_id: str = "",
    version: str = "1.0.0",
    temperature: float = 1.0,
    provenance: dict[str, Any] | None = None,
    target_layer: str | None = None,
    sample_images: list[np.ndarray] | None = None,
    opset: int = DEFAULT_OPSET,
    description: str = "",
    converter: str = "auto",
    max_all_classes: int = DEFAULT_MAX_ALL_CLASSES,
    random_images: int = 4,
    log: Callable[[str], None] | None = print,
) -> ExportReport:
    """Export, augment with Grad-CAM, verify against PyTorch, and write one HemaLens ONNX file.

    ``target_layer`` is a module name (``"features.7"``) or an ONNX tensor name; by default the last
    4-D spatial activation is found and printed. Raises ExportError / VerificationError (nothing is
    written) when anything fails.
    """
    say = log or (lambda _msg: None)
    size = (input_size, input_size) if isinstance(input_size, int) else (int(input_size[0]), int(input_size[1]))
    torch_model = load_torch_model(model).eval()
    graph, converter_used = _to_onnx(torch_model, size, opset, converter)
    say(f"exported the graph with {converter_used}, opset {opset_version(graph)}")
    head = as_two_classes(graph, labels)
    if head is not None:
        say(NOTE)

    probe = np.random.default_rng(1).standard_normal((2, 3, *size)).astype(np.float32)
    onnx_target = None
    if target_layer:
        tensors = {t for n in graph.graph.node for t in n.output}
        onnx_target = target_layer if target_layer in tensors else _onnx_target_for_module(
            torch_model, graph, target_layer, probe)
    augmented, info = add_gradcam(graph, target=onnx_target, input_layout="NCHW",
                                  max_all_classes=max_all_classes)
    if info.class_input is not None:
        raise ExportError(f"{info.num_classes} classes is more than max_all_classes={max_all_classes}; "
                          "raise it to export Grad-CAM weights for all classes")
    say(f"Grad-CAM target: ONNX tensor '{info.target}' ({info.channels} channels, {info.height}x{info.width}); "
        f"head ops: {', '.join(info.head_ops)}")

    fw = f"pytorch {torch.__version__}"
    spec = build_spec(info, input_name=INPUT_NAME, labels=labels, layout="NCHW", input_size=size, mean=mean, std=std,
                      scale=scale, color_order=color_order, resize=resize, name=name, model_id=model_id,
                      version=version, temperature=temperature, description=description, provenance=provenance,
                      source_framework=fw, target_layer=target_layer or info.target)
    figures, torch_layer = _verify(torch_model, augmented, info, spec, sample_images, random_images, head)
    figures["converter"] = converter_used
    figures["reference"] = (torch_layer if _is_scripted(torch_model)
                            else f"PyTorch autograd Grad-CAM at {torch_layer}")
    say(format_figures(figures))
    check(figures)
    if not target_layer and not _is_scripted(torch_model):
        spec = build_spec(info, input_name=INPUT_NAME, labels=labels, layout="NCHW", input_size=size, mean=mean,
                          std=std, scale=scale, color_order=color_order, resize=resize, name=name,
                          model_id=model_id, version=version, temperature=temperature, description=description,
                          provenance=provenance, source_framework=fw,
                          target_layer=torch_layer.split(" (")[0] or info.target)
    spec = spec.with_provenance(verification=figures)
    path = write_model(augmented, spec, out_path)
    report = ExportReport(path=path, spec=spec, figures=figures, target_tensor=info.target,
                          opset=opset_version(augmented), converter=converter_used,
                          notes=(NOTE,) if head else ())
    say(f"wrote {path}")
    return report


def _verify(torch_model: nn.Module, augmented: onnx.ModelProto, info: GradCamGraphInfo, spec: ModelSpec,
            sample_images: list[np.ndarray] | None, random_images: int,
            head: OneScoreHead | None) -> tuple[dict[str, Any], str]:
    """Run both models on random and given images and compare scores, top-1 and Grad-CAM."""

    def reference(batch: np.ndarray, acts: np.ndarray, logits: np.ndarray | None) -> tuple[Reference, str]:
        ref, layer = torch_reference(torch_model, batch, acts if info.target_layout == "NCHW"
                                     else acts.transpose(0, 2, 3, 1), logits)
        if ref.activations.shape != acts.shape:
            ref = Reference(ref.scores, ref.activations.transpose(0, 3, 1, 2), ref.weights)
        return ref, layer

    def source_scores(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch_model(torch.tensor(batch)).numpy()

    return verify_against_source(
        augmented, info, INPUT_NAME, check_batches(spec, sample_images, random_images), head,
        reference=None if _is_scripted(torch_model) else reference, source_scores=source_scores,
        without_layers="finite differences of the ONNX head (TorchScript models have no layer hooks)")
