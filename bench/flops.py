"""The physical limit: a model's multiply-accumulates per image, counted from its ONNX graph, against
the float32 FLOP/s this CPU reaches on a large matrix multiply.

Only Conv, ConvTranspose, Gemm and MatMul are counted (they are >99 % of a CNN's arithmetic);
FLOPs = 2 x MACs. Nodes are split into "inference" (needed for the scores) and "Grad-CAM" (needed
only for the Grad-CAM outputs).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference

from bench.models import needed_nodes
from inference.contract import ModelSpec


@dataclass(frozen=True)
class MacCount:
    inference: int  # MACs per image for the scores
    gradcam: int  # extra MACs per image for the Grad-CAM outputs
    counted_nodes: int
    unknown_nodes: int  # Conv/Gemm/MatMul nodes whose shapes could not be inferred (not counted)


def _shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    shapes: dict[str, list[int | None]] = {}
    vis = [*model.graph.value_info, *model.graph.input, *model.graph.output]
    for vi in vis:
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _fix_batch(model: onnx.ModelProto, input_name: str) -> None:
    for vi in model.graph.input:
        if vi.name == input_name and vi.type.tensor_type.shape.dim:
            vi.type.tensor_type.shape.dim[0].ClearField("dim_param")
            vi.type.tensor_type.shape.dim[0].dim_value = 1


def _prod(xs: list[int | None]) -> int | None:
    out = 1
    for x in xs:
        if x is None:
            return None
        out *= x
    return out


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(onnx.helper.get_attribute_value(a))
    return default


def node_macs(node: onnx.NodeProto, shapes: dict[str, list[int | None]]) -> int | None:
    """MACs of one node at batch 1, or None when its shapes are unknown; 0 for uncounted op types."""
    if node.op_type in ("Conv", "ConvTranspose"):
        out, w = shapes.get(node.output[0]), shapes.get(node.input[1])
        if not out or not w:
            return None
        group = _attr(node, "group", 1)
        if node.op_type == "Conv":  # each output element: C_in/group * kernel MACs
            per = _prod(w[1:])
            total = _prod(out)
        else:  # each input element scatters C_out/group * kernel MACs
            per = _prod(w[1:])
            total = _prod(shapes.get(node.input[0]) or [None])
        _ = group  # the weight shape already holds C_in/group (Conv) or C_out/group (ConvTranspose)
        return None if per is None or total is None else per * total
    if node.op_type in ("Gemm", "MatMul"):
        a, b, out = shapes.get(node.input[0]), shapes.get(node.input[1]), shapes.get(node.output[0])
        if not a or not b or not out:
            return None
        transposed = node.op_type == "Gemm" and _attr(node, "transA", 0)
        k = a[0] if transposed else a[-1]
        total = _prod(out)
        return None if k is None or total is None else total * k
    return 0


def count_macs(path: Path, spec: ModelSpec) -> MacCount:
    """MACs per image of the scores and of the Grad-CAM extra, from the graph with batch fixed at 1."""
    model = onnx.load(str(path))
    _fix_batch(model, spec.input.name)
    with contextlib.suppress(Exception):  # fall back to whatever shapes the file declares
        model = shape_inference.infer_shapes(model, data_prop=True)
    shapes = _shapes(model)
    score_nodes = {tuple(n.output) for n in needed_nodes(model.graph, [spec.output.name])}
    inference = gradcam = counted = unknown = 0
    for node in model.graph.node:
        macs = node_macs(node, shapes)
        if macs is None:
            unknown += 1
            continue
        if macs:
            counted += 1
        if tuple(node.output) in score_nodes:
            inference += macs
        else:
            gradcam += macs
    return MacCount(inference, gradcam, counted, unknown)


def ort_matmul_flops(size: int = 2048, repeats: int = 5) -> list[float]:
    """FLOP/s of the same product run by ONNX Runtime's own kernels (MLAS), HemaLens's session options."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from inference.session import session_options

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=session_options(),
                                providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal((size, size), dtype=np.float32) for n in ("a", "b")}
    sess.run(None, feeds)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        sess.run(None, feeds)
        rates.append(2.0 * size ** 3 / (time.perf_counter() - start))
    return rates


def matmul_flops(size: int = 2048, repeats: int = 5) -> list[float]:
    """FLOP/s of ``repeats`` float32 (size x size) @ (size x size) products with numpy's BLAS (all cores)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)  # warm-up: threads started, pages touched
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        rates.append(2.0 * size ** 3 / (time.perf_counter() - start))
    return rates


def machine_flops(repeats: int = 5) -> tuple[list[float], list[float]]:
    """(numpy, ONNX Runtime) matmul FLOP/s measured in a fresh process: no PyTorch/ORT worker threads of
    earlier measurements around to share the cores with (they halved the figure in-process)."""
    import json
    import subprocess
    import sys

    code = ("import json; from bench.flops import matmul_flops, ort_matmul_flops; "
            f"print(json.dumps([matmul_flops(repeats={repeats}), ort_matmul_flops(repeats={repeats})]))")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=600)
    numpy_rates, ort_rates = json.loads(out.stdout.strip().splitlines()[-1])
    return numpy_rates, ort_rates
