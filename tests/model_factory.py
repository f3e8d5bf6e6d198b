"""Tiny, real, deterministic ONNX classifiers for tests (conv -> relu -> GAP -> Gemm).

The Grad-CAM outputs are genuine graph computations: for this head the logit is
``logit_c = sum_k W[c, k] * mean_{i,j} A[k, i, j] + b_c``, so ``d logit_c / d A[k, i, j] = W[c, k] / (h*w)``
and the Grad-CAM weight (spatial mean of that gradient) is ``W[c, k] / (h*w)``; the graph reads ``h*w`` from the
activation tensor's shape and broadcasts the result to ``(N, C, K)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inference.contract import ClassLabel, GradCamSpec, InputSpec, ModelSpec, OutputSpec

OPSET = 17
IR_VERSION = 8
CHANNELS = 8


def classifier_weights(num_classes: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """The deterministic weights make_classifier uses (so tests can recompute everything in numpy)."""
    rng = np.random.default_rng(seed)
    return {
        "conv_w": (rng.standard_normal((CHANNELS, 3, 3, 3)) * 0.4).astype(np.float32),
        "conv_b": (rng.standard_normal(CHANNELS) * 0.1).astype(np.float32),
        "fc_w": rng.standard_normal((num_classes, CHANNELS)).astype(np.float32),
        "fc_b": (rng.standard_normal(num_classes) * 0.1).astype(np.float32),
    }


def build_classifier_model(
    *,
    num_classes: int = 3,
    size: int | tuple[int, int] = 32,
    layout: str = "NCHW",
    with_gradcam: bool = True,
    with_metadata: bool = True,
    labels: list[str] | None = None,
    seed: int = 0,
    softmax_output: bool = False,
    resize: str = "stretch",
    temperature: float = 1.0,
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
    std: tuple[float, float, float] = (0.25, 0.25, 0.25),
    color_order: str = "RGB",
    dynamic_size: bool = False,
    batch_dim: int | str = "N",
    class_input: bool = False,
) -> onnx.ModelProto:
    """Build the model in memory; see make_classifier."""
    height, width = (size, size) if isinstance(size, int) else size
    w = classifier_weights(num_classes, seed)
    hdim: int | str = "H" if dynamic_size else height
    wdim: int | str = "W" if dynamic_size else width
    in_shape = [batch_dim, 3, hdim, wdim] if layout == "NCHW" else [batch_dim, hdim, wdim, 3]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)]
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    inits += [
        numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "hw_idx"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "n_idx"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"),
        numpy_helper.from_array(np.array(list(w["fc_w"].shape), dtype=np.int64), "ck_shape"),
    ]
    nodes = []
    x = "input"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", ["input"], ["input_nchw"], perm=[0, 3, 1, 2]))
        x = "input_nchw"
    nodes += [
        helper.make_node("Conv", [x, "conv_w", "conv_b"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         strides=[2, 2], name="conv1"),
        helper.make_node("Relu", ["conv"], ["activations"], name="relu1"),
        helper.make_node("GlobalAveragePool", ["activations"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1, name="fc"),
    ]
    score = "logits"
    if softmax_output:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
        score = "probabilities"
    outputs = [helper.make_tensor_value_info(score, TensorProto.FLOAT, [batch_dim, num_classes])]
    if with_gradcam and class_input:
        # Per-class variant: an int64 input names the class; weights are (N, 1, K) for that class only.
        inputs.append(helper.make_tensor_value_info("class_index", TensorProto.INT64, [batch_dim]))
        nodes += [
            helper.make_node("Shape", ["activations"], ["act_shape"]),
            helper.make_node("Gather", ["act_shape", "hw_idx"], ["act_hw"], axis=0),
            helper.make_node("ReduceProd", ["act_hw"], ["act_area_i"], keepdims=0),
            helper.make_node("Cast", ["act_area_i"], ["act_area"], to=TensorProto.FLOAT),
            helper.make_node("Gather", ["fc_w", "class_index"], ["w_rows"], axis=0),  # (N, K)
            helper.make_node("Div", ["w_rows", "act_area"], ["w_scaled"]),
            helper.make_node("Unsqueeze", ["w_scaled", "one_axis"], ["gradcam_weights"]),
            helper.make_node("Identity", ["activations"], ["gradcam_activations"]),
        ]
        inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "one_axis"))
        outputs += [
            helper.make_tensor_value_info("gradcam_activations", TensorProto.FLOAT, [batch_dim, CHANNELS, None, None]),
            helper.make_tensor_value_info("gradcam_weights", TensorProto.FLOAT, [batch_dim, 1, CHANNELS]),
        ]
    elif with_gradcam:
        nodes += [
            # h*w read from the activation tensor itself, as float.
            helper.make_node("Shape", ["activations"], ["act_shape"]),
            helper.make_node("Gather", ["act_shape", "hw_idx"], ["act_hw"], axis=0),
            helper.make_node("ReduceProd", ["act_hw"], ["act_area_i"], keepdims=0),
            helper.make_node("Cast", ["act_area_i"], ["act_area"], to=TensorProto.FLOAT),
            # d logit_c / d A[k,i,j] = W[c,k] / (h*w); its spatial mean is the same value.
            helper.make_node("Div", ["fc_w", "act_area"], ["cam_w"]),
            helper.make_node("Unsqueeze", ["cam_w", "axis0"], ["cam_w1"]),
            helper.make_node("Gather", ["act_shape", "n_idx"], ["act_n"], axis=0),
            helper.make_node("Concat", ["act_n", "ck_shape"], ["ncK"], axis=0),
            helper.make_node("Expand", ["cam_w1", "ncK"], ["gradcam_weights"]),
            helper.make_node("Identity", ["activations"], ["gradcam_activations"]),
        ]
        outputs += [
            helper.make_tensor_value_info("gradcam_activations", TensorProto.FLOAT, [batch_dim, CHANNELS, None, None]),
            helper.make_tensor_value_info("gradcam_weights", TensorProto.FLOAT, [batch_dim, num_classes, CHANNELS]),
        ]
    graph = helper.make_graph(nodes, "tiny_classifier", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="hemalens-tests")
    model.ir_version = IR_VERSION
    if with_metadata:
        names = list(labels) if labels is not None else [f"Cell type {i}" for i in range(num_classes)]
        spec = ModelSpec(
            name="Tiny test classifier",
            id=f"tiny-{num_classes}-{seed}",
            version="0.0.1",
            description="Random-weight test model",
            classes=tuple(ClassLabel(id=f"c{i}", name=n) for i, n in enumerate(names)),
            input=InputSpec(name="input", layout=layout, height=height, width=width,  # type: ignore[arg-type]
                            color_order=color_order, scale=1 / 255, mean=mean, std=std,  # type: ignore[arg-type]
                            resize=resize),  # type: ignore[arg-type]
            output=OutputSpec(name=score, kind="probabilities" if softmax_output else "logits",
                              temperature=temperature),
            gradcam=GradCamSpec("gradcam_activations", "gradcam_weights", target_layer="relu1",
                                class_input="class_index" if class_input else None) if with_gradcam else None,
        ).with_provenance(intended_use="tests only", license="MIT")
        helper.set_model_props(model, {"hemalens": spec.to_json()})
    onnx.checker.check_model(model)
    return model


def make_classifier(
    path: str | Path,
    *,
    num_classes: int = 3,
    size: int = 32,
    layout: str = "NCHW",
    with_gradcam: bool = True,
    with_metadata: bool = True,
    labels: list[str] | None = None,
    seed: int = 0,
    **options,
) -> Path:
    """Write a tiny real ONNX CNN classifier to ``path``; extra ``options`` go to build_classifier_model."""
    model = build_classifier_model(num_classes=num_classes, size=size, layout=layout, with_gradcam=with_gradcam,
                                   with_metadata=with_metadata, labels=labels, seed=seed, **options)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def reference_forward(x_nchw: np.ndarray, num_classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Independent numpy forward pass: (logits (N,C), activations (N,K,h,w)) for the factory's model."""
    w = classifier_weights(num_classes, seed)
    n, _, height, width = x_nchw.shape
    padded = np.pad(x_nchw.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    oh, ow = (height - 1) // 2 + 1, (width - 1) // 2 + 1
    acts = np.zeros((n, CHANNELS, oh, ow))
    for i in range(3):
        for j in range(3):
            patch = padded[:, :, i:i + 2 * oh:2, j:j + 2 * ow:2]  # (N,3,oh,ow)
            acts += np.einsum("nchw,kc->nkhw", patch, w["conv_w"][:, :, i, j].astype(np.float64))
    acts += w["conv_b"][None, :, None, None]
    acts = np.maximum(acts, 0)
    logits = acts.mean(axis=(2, 3)) @ w["fc_w"].T.astype(np.float64) + w["fc_b"]
    return logits, acts


def make_one_score_classifier(path: str | Path, size: int = 32, seed: int = 0) -> Path:
    """A yes/no model without HemaLens metadata: Conv -> Relu -> GlobalAveragePool -> Gemm -> Sigmoid, (N, 1)."""
    rng = np.random.default_rng(seed)
    conv, dense = rng.standard_normal((4, 3, 3, 3)).astype(np.float32), rng.standard_normal((1, 4)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "d", "b"], ["z"], transB=1), helper.make_node("Sigmoid", ["z"], ["p"])]
    graph = helper.make_graph(
        nodes, "yes_no", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", 1])],
        [numpy_helper.from_array(conv, "w"), numpy_helper.from_array(dense, "d"),
         numpy_helper.from_array(np.array([-0.3], np.float32), "b")])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path
