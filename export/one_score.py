"""A yes/no classifier with one score per image, exported as the two classes HemaLens needs.

A Keras ``Dense(1, activation="sigmoid")`` or a PyTorch head trained with ``BCEWithLogitsLoss`` gives
one number per image; HemaLens needs one score per class. The graph's output becomes the logits
``[-z/2, z/2]`` of the pre-sigmoid score ``z``: their softmax is ``[1 - sigmoid(z), sigmoid(z)]``, the
model's own probability and its complement, a temperature ``T`` gives ``sigmoid(z / T)`` as Platt
scaling would, and the Grad-CAM gradient of each class is the score's gradient times -1/2 or +1/2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from export.errors import ExportError
from export.gradcam_graph import opset_version, tensor_infos
from export.onnx_tools import rename_tensor

RESHAPES = ("Identity", "Dropout", "Squeeze", "Unsqueeze", "Reshape", "Flatten")  # sigmoid commutes with these
BOUNDED = ("HardSigmoid", "Tanh", "Softsign")  # squashed scores whose logit the graph does not give
HALVES = np.array([-0.5, 0.5], dtype=np.float32)
LABELS_HINT = ("the model gives one score per image (a yes/no output): give two labels, the class of a low score "
               "first and the class its score is for second (e.g. --labels other,blast)")
NOTE = "The model gives one score per image (p): its two classes show 1 - p and p."


@dataclass(frozen=True)
class OneScoreHead:
    """Where the rewritten graph keeps the model's own score, and how to compare it with the framework."""

    logit: str  # the pre-sigmoid score z, shape (N, 1) or (N,), a tensor of the rewritten graph
    had_sigmoid: bool  # the framework model outputs sigmoid(z); otherwise z itself

    def two_classes(self, framework_scores: np.ndarray) -> np.ndarray:
        """The framework's (N, 1) output as the exported output compares with it (probabilities or logits)."""
        score = np.asarray(framework_scores, dtype=np.float64).reshape(-1, 1)
        if self.had_sigmoid:
            return np.concatenate([1.0 - score, score], axis=1)
        return score * HALVES.astype(np.float64)

    def comparable(self, exported_scores: np.ndarray) -> np.ndarray:
        """The exported two-class logits in the form :meth:`two_classes` gives."""
        logits = np.asarray(exported_scores, dtype=np.float64)
        if not self.had_sigmoid:
            return logits
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)


def as_two_classes(model: onnx.ModelProto, labels: Sequence[str] | None = None) -> OneScoreHead | None:
    """Rewrite ``model`` in place when its first output is one score per image, (N, 1) or squeezed to (N,);
    else leave it and return None. ``labels``, when given, must then be two (ExportError with the hint)."""
    if not model.graph.output:
        return None
    output = model.graph.output[0]
    info = tensor_infos(model).get(output.name)
    shape = info.dims if info is not None else None
    if shape is None or not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        return None
    if labels is not None and len(labels) != 2:
        raise ExportError(LABELS_HINT)
    producers = {name: node for node in model.graph.node for name in node.output}
    chain, current = [output.name], output.name
    while current in producers and producers[current].op_type in RESHAPES:
        current = producers[current].input[0]
        chain.append(current)
    node = producers.get(current)
    if node is not None and node.op_type == "Softmax":
        raise ExportError("the model ends in a softmax over one class, which is 1.0 for every image; export the "
                          "scores before that softmax")
    if node is not None and node.op_type in BOUNDED:
        raise ExportError(f"the model's one score ends in {node.op_type}, which is not a probability HemaLens can "
                          "read: export the score before it")
    had_sigmoid = node is not None and node.op_type == "Sigmoid"
    readers = [name for n in model.graph.node for name in n.input]
    if had_sigmoid and (readers.count(output.name) or any(readers.count(t) != 1 for t in chain[1:])):
        raise ExportError("the model's sigmoid output is also used inside the graph; export its score before it")
    if had_sigmoid:  # drop it; the reshapes after it (a squeeze, say) then carry the score z itself
        model.graph.node.remove(node)
        rename_tensor(model, node.output[0], node.input[0])
    logit = f"{output.name}_one_score"
    rename_tensor(model, output.name, logit)
    if not any(logit in n.output for n in model.graph.node):  # the sigmoid was the output itself
        logit = node.input[0]
    column = logit
    if len(shape) == 1:  # (N,) -> (N, 1)
        column = f"{output.name}_column"
        if opset_version(model) >= 13:
            axes = f"{output.name}_axes"
            model.graph.initializer.append(numpy_helper.from_array(np.array([1], dtype=np.int64), axes))
            model.graph.node.append(helper.make_node("Unsqueeze", [logit, axes], [column]))
        else:
            model.graph.node.append(helper.make_node("Unsqueeze", [logit], [column], axes=[1]))
        output.type.tensor_type.shape.dim.add()
    halves = f"{output.name}_halves"
    model.graph.initializer.append(numpy_helper.from_array(HALVES, halves))
    model.graph.node.append(helper.make_node("Mul", [column, halves], [output.name], name="hemalens_two_classes"))
    batch = output.type.tensor_type.shape.dim[0]
    output.type.tensor_type.shape.dim[1].Clear()
    output.type.tensor_type.shape.dim[1].dim_value = 2
    if not (batch.dim_param or batch.dim_value):
        batch.dim_param = "N"
    return OneScoreHead(logit=logit, had_sigmoid=had_sigmoid)

