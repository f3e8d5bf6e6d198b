"""Small ONNX helpers the exporters share: run with intermediate outputs, match tensors by value, FD check."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from export.gradcam_graph import GradCamGraphInfo, tensor_infos
from export.verify import ort_session, run_outputs


def rename_tensor(model: onnx.ModelProto, old: str, new: str) -> None:
    """Give the tensor ``old`` a new name wherever the graph's nodes produce or read it (graph outputs keep theirs)."""
    for node in model.graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def run_with_intermediates(model: onnx.ModelProto, feeds: dict[str, np.ndarray],
                           names: list[str]) -> dict[str, np.ndarray]:
    """Run ``model`` and also return the listed intermediate tensors."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    infos = tensor_infos(model)
    present = {o.name for o in probe.graph.output}
    for name in names:
        if name not in present:
            info = infos.get(name)
            elem = info.elem_type if info and info.elem_type else TensorProto.FLOAT
            probe.graph.output.append(helper.make_tensor_value_info(name, elem, None))
    return run_outputs(ort_session(probe), feeds)


def rank4_float_tensors(model: onnx.ModelProto) -> list[str]:
    """Rank-4 float node outputs in graph order (the candidates for a Grad-CAM target)."""
    infos = tensor_infos(model)
    out = []
    for node in model.graph.node:
        for name in node.output:
            info = infos.get(name)
            if info and info.rank == 4 and info.elem_type == TensorProto.FLOAT:
                out.append(name)
    return out


def values_match(a: np.ndarray, b: np.ndarray, rtol: float = 1e-4) -> bool:
    """Same shape and equal up to float32 exporter noise, relative to the tensor's magnitude."""
    if a.shape != b.shape:
        return False
    scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
    return bool(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))) <= rtol * scale)


def finite_difference_check(model: onnx.ModelProto, info: GradCamGraphInfo, feeds: dict[str, np.ndarray],
                            *, directions: int = 3, seed: int = 0) -> float:
    """Worst relative error of the Grad-CAM weights against central differences of the logits.

    The target tensor becomes a graph input (its producer removed), and the logits are evaluated at
    A +/- eps*V for spatially constant directions V; the exact directional derivative is
    h*w * sum_k weights[c, k] * v_k. Framework-independent, so it also checks ``augment`` models.
    """
    base = run_outputs(ort_session(model), feeds)
    acts = base[info.activations]
    weights = base[info.weights]
    head = onnx.ModelProto()
    head.CopyFrom(model)
    graph = head.graph
    nodes = [n for n in graph.node if info.target not in n.output]
    del graph.node[:]
    graph.node.extend(nodes)
    target_shape = acts.shape if info.target_layout == "NCHW" else (acts.shape[0], *acts.shape[2:], acts.shape[1])
    graph.input.append(helper.make_tensor_value_info(info.target, TensorProto.FLOAT, list(target_shape)))
    keep = [o for o in graph.output if o.name == info.scores_output]
    del graph.output[:]
    graph.output.extend(keep)
    if info.logits != info.scores_output:
        graph.output.append(helper.make_tensor_value_info(info.logits, TensorProto.FLOAT, None))
    session = ort_session(head)
    rng = np.random.default_rng(seed)
    target = acts if info.target_layout == "NCHW" else acts.transpose(0, 2, 3, 1)
    eps = 1e-2 * max(float(np.std(target)), 1e-3)
    hw = acts.shape[2] * acts.shape[3]
    worst = 0.0
    extra = {k: v for k, v in feeds.items() if k in {i.name for i in graph.input}}
    for _ in range(directions):
        v = rng.standard_normal((acts.shape[0], acts.shape[1])).astype(np.float32)
        vt = v[:, :, None, None] if info.target_layout == "NCHW" else v[:, None, None, :]
        outs = []
        for sign in (1.0, -1.0):
            feed = dict(extra)
            feed[info.target] = (target + sign * eps * vt).astype(np.float32)
            result = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed), strict=True))
            outs.append(result[info.logits].astype(np.float64))
        numeric = (outs[0] - outs[1]) / (2 * eps)
        classes = range(weights.shape[1]) if info.class_input is None else [None]
        exact = np.stack([hw * np.einsum("nk,nk->n", weights[:, i if i is not None else 0].astype(np.float64), v)
                          for i in classes], axis=1)
        if info.class_input is not None:
            numeric = np.take_along_axis(numeric, feeds[info.class_input][:, None], axis=1)
        denom = max(float(np.max(np.abs(numeric))), 1e-6)
        worst = max(worst, float(np.max(np.abs(exact - numeric)) / denom))
    return worst
