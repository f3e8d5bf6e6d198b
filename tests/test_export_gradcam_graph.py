"""Per-op checks of the ONNX Grad-CAM gradient builder against PyTorch autograd.

Each case is a hand-built ONNX head whose input ``A`` is the Grad-CAM target, plus the same
function written in PyTorch; the graph's ``gradcam_weights`` must equal the spatial mean of
d logit_c / d A that autograd computes, for every class.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from export.errors import ExportError, UnsupportedGraphError
from export.gradcam_graph import add_gradcam, find_target

N, K, H, W, C = 2, 4, 6, 6, 3
RNG = np.random.default_rng(7)


def _w(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.5).astype(np.float32)


class Head:
    """A tiny ONNX graph under construction plus its PyTorch twin."""

    def __init__(self, opset: int = 17, layout: str = "NCHW") -> None:
        self.opset = opset
        self.layout = layout
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, value: np.ndarray) -> str:
        self.count += 1
        name = f"w{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], n_out: int = 1, **attrs) -> str:
        self.count += 1
        outs = [f"t{self.count}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=f"{op}_{self.count}", **attrs))
        return outs[0]

    def model(self, logits: str, final_softmax: bool = False) -> onnx.ModelProto:
        shape = ["N", K, H, W] if self.layout == "NCHW" else ["N", H, W, K]
        out_name = logits
        nodes = list(self.nodes)
        if final_softmax:
            out_name = "probs"
            nodes.append(helper.make_node("Softmax", [logits], ["probs"], axis=-1))
        else:
            nodes.append(helper.make_node("Identity", [logits], ["scores"]))
            out_name = "scores"
        graph = helper.make_graph(
            nodes, "head", [helper.make_tensor_value_info("A", TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", C])], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def _torch_weights(fn, a: np.ndarray, layout: str = "NCHW") -> np.ndarray:
    at = torch.tensor(a, requires_grad=True)
    logits = fn(at)
    axes = (2, 3) if layout == "NCHW" else (1, 2)
    rows = []
    for c in range(logits.shape[1]):
        (grad,) = torch.autograd.grad(logits[:, c].sum(), at, retain_graph=True)
        rows.append(grad.mean(dim=axes))
    return torch.stack(rows, dim=1).detach().numpy()


def _run(model: onnx.ModelProto, a: np.ndarray, **feeds) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"A": a, **feeds}), strict=True))


def _check(head: Head, logits: str, fn, *, final_softmax: bool = False, a: np.ndarray | None = None):
    model = head.model(logits, final_softmax)
    if a is None:
        shape = (N, K, H, W) if head.layout == "NCHW" else (N, H, W, K)
        a = RNG.standard_normal(shape).astype(np.float32)
    augmented, info = add_gradcam(model, target="A", input_layout=head.layout)
    out = _run(augmented, a)
    expected = _torch_weights(fn, a, head.layout)
    assert out["gradcam_weights"].shape == (N, C, K)
    np.testing.assert_allclose(out["gradcam_weights"], expected, rtol=1e-4, atol=1e-6)
    acts = a if head.layout == "NCHW" else a.transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(out["gradcam_activations"], acts)
    return info, out


def _gemm_head(h: Head, x: str, fn_in, features: int, trans_b: int = 1):
    wt = _w(C, features)
    b = _w(C)
    y = h.node("Gemm", [x, h.const(wt if trans_b else wt.T.copy()), h.const(b)], transB=trans_b)
    return y, lambda t: F.linear(fn_in(t), torch.tensor(wt), torch.tensor(b))


def test_gap_flatten_gemm():
    h = Head()
    y = h.node("Flatten", [h.node("GlobalAveragePool", ["A"])], axis=1)
    logits, fn = _gemm_head(h, y, lambda t: t.mean(dim=(2, 3)), K)
    info, _ = _check(h, logits, fn)
    assert info.head_ops == ("GlobalAveragePool", "Flatten", "Gemm", "Identity")[: len(info.head_ops)]


def test_global_max_pool_gemm_without_transpose():
    h = Head()
    y = h.node("Flatten", [h.node("GlobalMaxPool", ["A"])], axis=1)
    logits, fn = _gemm_head(h, y, lambda t: t.amax(dim=(2, 3)), K, trans_b=0)
    _check(h, logits, fn)


@pytest.mark.parametrize("opset", [13, 17, 18])
def test_reduce_mean_matmul_add_across_opsets(opset):
    h = Head(opset=opset)
    if opset >= 18:
        pooled = h.node("ReduceMean", ["A", h.const(np.array([2, 3], np.int64))], keepdims=0)
    else:
        pooled = h.node("ReduceMean", ["A"], axes=[2, 3], keepdims=0)
    wt, b = _w(K, C), _w(C)
    logits = h.node("Add", [h.node("MatMul", [pooled, h.const(wt)]), h.const(b)])
    _check(h, logits, lambda t: t.mean(dim=(2, 3)) @ torch.tensor(wt) + torch.tensor(b))


def test_relu_conv_batchnorm_leaky_relu():
    h = Head()
    cw, cb = _w(6, K // 2, 3, 3), _w(6)
    scale, bias, mean, var = _w(6), _w(6), _w(6), np.abs(_w(6)) + 0.5
    r = h.node("Relu", ["A"])
    conv = h.node("Conv", [r, h.const(cw), h.const(cb)], strides=[2, 2], pads=[1, 1, 1, 1], group=2)
    bn = h.node("BatchNormalization", [conv, h.const(scale), h.const(bias), h.const(mean), h.const(var)],
                epsilon=1e-3)
    act = h.node("LeakyRelu", [bn], alpha=0.2)
    flat = h.node("Flatten", [h.node("GlobalAveragePool", [act])])

    def body(t):
        x = F.conv2d(F.relu(t), torch.tensor(cw), torch.tensor(cb), stride=2, padding=1, groups=2)
        x = F.batch_norm(x, torch.tensor(mean), torch.tensor(var), torch.tensor(scale), torch.tensor(bias),
                         training=False, eps=1e-3)
        return F.leaky_relu(x, 0.2).mean(dim=(2, 3))

    logits, fn = _gemm_head(h, flat, body, 6)
    _check(h, logits, fn)


def test_conv_same_upper_auto_pad_with_stride():
    h = Head()
    cw = _w(5, K, 3, 3)
    conv = h.node("Conv", ["A", h.const(cw)], auto_pad="SAME_UPPER", strides=[2, 2])
    flat = h.node("Flatten", [h.node("GlobalAveragePool", [conv])])
    logits, fn = _gemm_head(
        h, flat, lambda t: F.conv2d(F.pad(t, (0, 1, 0, 1)), torch.tensor(cw), stride=2).mean(dim=(2, 3)), 5)
    _check(h, logits, fn)


def test_conv_dilation_and_stride_with_uneven_output():
    h = Head()
    cw = _w(5, K, 2, 2)
    conv = h.node("Conv", ["A", h.const(cw)], pads=[1, 0, 1, 0], dilations=[2, 1], strides=[2, 2])
    flat = h.node("Flatten", [h.node("GlobalMaxPool", [h.node("Relu", [conv])])])
    logits, fn = _gemm_head(
        h, flat,
        lambda t: F.relu(F.conv2d(F.pad(t, (0, 0, 1, 1)), torch.tensor(cw), dilation=(2, 1), stride=2)).amax((2, 3)), 5)
    _check(h, logits, fn)


def test_vgg_style_max_pool_flatten_dense():
    h = Head()
    pooled = h.node("MaxPool", ["A"], kernel_shape=[2, 2], strides=[2, 2])
    flat = h.node("Flatten", [pooled])
    hidden_w, hidden_b = _w(8, K * 9), _w(8)
    hidden = h.node("Relu", [h.node("Gemm", [flat, h.const(hidden_w), h.const(hidden_b)], transB=1)])
    drop = h.node("Dropout", [hidden])
    logits, fn = _gemm_head(
        h, drop,
        lambda t: F.relu(F.linear(F.max_pool2d(t, 2).flatten(1), torch.tensor(hidden_w), torch.tensor(hidden_b))), 8)
    _check(h, logits, fn)


def test_overlapping_max_pool_then_average_pool_with_padding():
    h = Head()
    mp = h.node("MaxPool", ["A"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    ap = h.node("AveragePool", [mp], kernel_shape=[2, 2], strides=[1, 1], pads=[1, 1, 0, 0], count_include_pad=0)
    flat = h.node("Reshape", [ap, h.const(np.array([-1, K * 9], np.int64))])

    def body(t):
        x = F.max_pool2d(t, 3, 2, 1)
        x = F.avg_pool2d(F.pad(x, (1, 0, 1, 0)), 2, 1, count_include_pad=True)
        ones = F.avg_pool2d(F.pad(torch.ones_like(x[:, :1, :3, :3]), (1, 0, 1, 0)), 2, 1)
        return (x / ones).reshape(x.shape[0], -1)

    logits, fn = _gemm_head(h, flat, body, K * 9)
    _check(h, logits, fn)


def test_average_pool_counting_padding():
    h = Head()
    ap = h.node("AveragePool", ["A"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)
    flat = h.node("Flatten", [ap])
    logits, fn = _gemm_head(h, flat, lambda t: F.avg_pool2d(t, 3, 2, 1, count_include_pad=True).flatten(1), K * 9)
    _check(h, logits, fn)


def test_swish_tanh_clip_sub_div_neg():
    h = Head()
    sw = h.node("Mul", ["A", h.node("Sigmoid", ["A"])])
    th = h.node("Tanh", [sw])
    cl = h.node("Clip", [th, h.const(np.array(-0.5, np.float32)), h.const(np.array(0.6, np.float32))])
    sub = h.node("Sub", [h.const(np.array(1.0, np.float32)), cl])
    div = h.node("Div", [sub, h.node("Add", [h.node("Mul", ["A", "A"]), h.const(np.array(1.0, np.float32))])])
    neg = h.node("Neg", [div])
    flat = h.node("Flatten", [h.node("GlobalAveragePool", [neg])])

    def body(t):
        x = torch.clamp(torch.tanh(t * torch.sigmoid(t)), -0.5, 0.6)
        return (-((1.0 - x) / (t * t + 1.0))).mean(dim=(2, 3))

    logits, fn = _gemm_head(h, flat, body, K)
    _check(h, logits, fn)


def test_keras_style_nhwc_target_transpose_reshape_matmul():
    h = Head(layout="NHWC")
    r = h.node("Relu", ["A"])
    nchw = h.node("Transpose", [r], perm=[0, 3, 1, 2])
    nhwc = h.node("Transpose", [nchw], perm=[0, 2, 3, 1])
    flat = h.node("Reshape", [nhwc, h.const(np.array([-1, H * W * K], np.int64))])
    wt = _w(H * W * K, C)
    logits = h.node("MatMul", [flat, h.const(wt)])
    info, _ = _check(h, logits, lambda t: F.relu(t).reshape(t.shape[0], -1) @ torch.tensor(wt))
    assert info.target_layout == "NHWC"


def test_squeeze_excite_broadcast_mul_and_concat_branches():
    h = Head()
    squeeze = h.node("GlobalAveragePool", ["A"])
    gate = h.node("Sigmoid", [h.node("Conv", [squeeze, h.const(w1 := _w(K, K, 1, 1))])])
    scaled = h.node("Mul", ["A", gate])
    branch = h.node("Conv", ["A", h.const(w2 := _w(2, K, 1, 1))])
    cat = h.node("Concat", [scaled, branch], axis=1)
    pooled = h.node("Squeeze", [h.node("GlobalAveragePool", [cat]), h.const(np.array([2, 3], np.int64))])

    def body(t):
        g = torch.sigmoid(F.conv2d(t.mean(dim=(2, 3), keepdim=True), torch.tensor(w1)))
        x = torch.cat([t * g, F.conv2d(t, torch.tensor(w2))], dim=1)
        return x.mean(dim=(2, 3))

    logits, fn = _gemm_head(h, pooled, body, K + 2)
    _check(h, logits, fn)


def test_softmax_output_uses_logits_and_inner_softmax():
    h = Head()
    pooled = h.node("Flatten", [h.node("GlobalAveragePool", ["A"])])
    attn = h.node("Softmax", [pooled], axis=1)
    mixed = h.node("Mul", [attn, pooled])
    logits, fn = _gemm_head(h, mixed, lambda t: torch.softmax(t.mean(dim=(2, 3)), 1) * t.mean(dim=(2, 3)), K)
    info, out = _check(h, logits, fn, final_softmax=True)
    assert info.scores_kind == "probabilities"
    assert info.logits == logits
    np.testing.assert_allclose(out["probs"].sum(axis=1), 1.0, rtol=1e-5)


def test_class_input_mode_for_many_classes():
    h = Head()
    flat = h.node("Flatten", [h.node("GlobalAveragePool", ["A"])])
    logits, fn = _gemm_head(h, flat, lambda t: t.mean(dim=(2, 3)), K)
    model = h.model(logits)
    augmented, info = add_gradcam(model, target="A", max_all_classes=2)
    assert info.class_input == "gradcam_class"
    a = RNG.standard_normal((N, K, H, W)).astype(np.float32)
    classes = np.array([2, 0], dtype=np.int64)
    out = _run(augmented, a, gradcam_class=classes)
    expected = _torch_weights(fn, a)
    assert out["gradcam_weights"].shape == (N, 1, K)
    for n in range(N):
        np.testing.assert_allclose(out["gradcam_weights"][n, 0], expected[n, classes[n]], rtol=1e-4, atol=1e-6)


def test_dynamic_batch_is_kept():
    h = Head()
    flat = h.node("Flatten", [h.node("GlobalAveragePool", ["A"])])
    logits, _ = _gemm_head(h, flat, lambda t: t, K)
    augmented, _ = add_gradcam(h.model(logits), target="A")
    for batch in (1, 5):
        out = _run(augmented, RNG.standard_normal((batch, K, H, W)).astype(np.float32))
        assert out["gradcam_weights"].shape == (batch, C, K)
        assert out["gradcam_activations"].shape == (batch, K, H, W)


def test_unsupported_op_is_refused_with_the_op_named():
    h = Head()
    odd = h.node("Sin", ["A"])
    flat = h.node("Flatten", [h.node("GlobalAveragePool", [odd])])
    logits, _ = _gemm_head(h, flat, lambda t: t, K)
    with pytest.raises(UnsupportedGraphError, match="Sin"):
        add_gradcam(h.model(logits), target="A")


def test_already_augmented_and_unknown_target_are_refused():
    h = Head()
    flat = h.node("Flatten", [h.node("GlobalAveragePool", ["A"])])
    logits, _ = _gemm_head(h, flat, lambda t: t, K)
    model = h.model(logits)
    with pytest.raises(ExportError, match="not a tensor"):
        add_gradcam(model, target="nope")
    augmented, _ = add_gradcam(model, target="A")
    with pytest.raises(ExportError, match="already has Grad-CAM"):
        add_gradcam(augmented, target="A")


def test_auto_target_steps_back_through_trailing_pool():
    h = Head()
    conv = h.node("Conv", ["A", h.const(_w(K, K, 3, 3))], pads=[1, 1, 1, 1])
    act = h.node("Relu", [conv])
    pooled = h.node("MaxPool", [act], kernel_shape=[2, 2], strides=[2, 2])
    flat = h.node("Flatten", [pooled])
    logits, _ = _gemm_head(h, flat, lambda t: t, K * 9)
    model = h.model(logits)
    assert find_target(model, logits) == act
