"""Find a gradient-free CAM in a plain graph: a global-average-pool -> linear head before the scores.

For ``logits = W @ mean_ij(A) + b`` the class activation map (Zhou et al., CVPR 2016) is
``sum_k W[c, k] * A[k]``; it needs only the activations A exposed as an extra graph output, which an
in-memory copy of the model does. The file on disk is never changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

_PASS_THROUGH = ("Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Dropout", "Softmax", "Cast", "LogSoftmax")


@dataclass(frozen=True)
class GapHead:
    """The activation tensor feeding the pool and the (C, K) linear weights; channels_last for NHWC pools."""

    activations: str
    weights: np.ndarray
    channels_last: bool = False


def _constant(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    for init in model.graph.initializer:
        if init.name == name:
            try:
                return numpy_helper.to_array(init)
            except Exception:  # noqa: BLE001 - external data not loaded, or exotic type
                return None
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
    return None


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def find_gap_head(model: onnx.ModelProto, score_output: str) -> GapHead | None:
    """Walk back from the score output through a linear layer to a global average pool; None if absent."""
    producers = {out: node for node in model.graph.node for out in node.output}

    def back(tensor: str) -> tuple[str, onnx.NodeProto | None]:
        for _ in range(16):
            node = producers.get(tensor)
            if node is None or node.op_type not in _PASS_THROUGH:
                return tensor, node
            tensor = node.input[0]
        return tensor, None

    tensor, node = back(score_output)
    if node is not None and node.op_type == "Add":  # MatMul + Add bias
        consts = [_constant(model, i) for i in node.input]
        if consts[0] is None and consts[1] is not None:
            tensor, node = back(node.input[0])
        elif consts[1] is None and consts[0] is not None:
            tensor, node = back(node.input[1])
        else:
            return None
    if node is None:
        return None
    if node.op_type == "Gemm":
        b = _constant(model, node.input[1])
        if b is None or b.ndim != 2 or _attr(node, "transA", 0):
            return None
        w = (b if _attr(node, "transB", 0) else b.T) * float(_attr(node, "alpha", 1.0))  # type: ignore[arg-type]
    elif node.op_type == "MatMul":
        b = _constant(model, node.input[1])
        if b is None or b.ndim != 2:
            return None
        w = b.T
    else:
        return None
    pooled, pool = back(node.input[0])
    if pool is None:
        return None
    if pool.op_type == "GlobalAveragePool":
        return GapHead(pool.input[0], np.ascontiguousarray(w, dtype=np.float32), channels_last=False)
    if pool.op_type == "ReduceMean":
        axes = _attr(pool, "axes", None)
        if axes is None and len(pool.input) > 1:
            const = _constant(model, pool.input[1])
            axes = None if const is None else [int(a) for a in const.ravel()]
        if axes is not None and sorted(int(a) for a in axes) == [2, 3]:  # type: ignore[union-attr]
            return GapHead(pool.input[0], np.ascontiguousarray(w, dtype=np.float32), channels_last=False)
        if axes is not None and sorted(int(a) for a in axes) == [1, 2]:  # type: ignore[union-attr]
            return GapHead(pool.input[0], np.ascontiguousarray(w, dtype=np.float32), channels_last=True)
    return None


def with_extra_output(model: onnx.ModelProto, tensor: str) -> onnx.ModelProto:
    """A copy of the model that also outputs ``tensor`` (the original proto is left untouched)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    if tensor not in {o.name for o in copy.graph.output}:
        copy.graph.output.append(helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    return copy


_ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "HardSwish", "Sigmoid", "Elu", "Selu", "PRelu", "BatchNormalization")


def find_last_conv_activation(model: onnx.ModelProto) -> str | None:
    """Output of the last Conv (after its activation when one follows directly): always (N, K, h, w)."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    last = None
    for node in model.graph.node:
        if node.op_type == "Conv":
            last = node.output[0]
    if last is None:
        return None
    for _ in range(3):  # Conv -> BatchNormalization -> Relu
        users = consumers.get(last, [])
        if len(users) != 1 or users[0].op_type not in _ACTIVATIONS:
            break
        last = users[0].output[0]
    return last
