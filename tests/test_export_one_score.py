"""Yes/no models with one score per image (a sigmoid, or its logit) export as two classes that run in HemaLens."""

from __future__ import annotations

import os
import warnings

import numpy as np
import onnx
import pytest
import torch
from torch import nn

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from export.augment import augment_model  # noqa: E402
from export.errors import ExportError  # noqa: E402
from export.pytorch import export_pytorch  # noqa: E402
from inference.cam import weighted_cam  # noqa: E402
from inference.preprocess import map_to_image, preprocess  # noqa: E402
from inference.session import ModelSession  # noqa: E402
from tests.model_factory import make_one_score_classifier  # noqa: E402

SIZE = 32
LABELS = ["other", "blast"]


def _yes_no_cnn(sigmoid: bool) -> nn.Module:
    torch.manual_seed(3)
    layers = [nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(),
              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 1)]
    model = nn.Sequential(*layers, *([nn.Sigmoid()] if sigmoid else []))
    with torch.no_grad():  # scores on both sides of 0.5 for images of different brightness
        bright = torch.ones(16, 3, SIZE, SIZE) * torch.linspace(0.1, 0.9, 16).reshape(-1, 1, 1, 1)
        model[7].bias.fill_(-float(model[:7](bright).matmul(model[7].weight.T).median()))
        model[7].weight.mul_(100.0)
        model[7].bias.mul_(100.0)
    return model.eval()


def _image(seed: int) -> np.ndarray:
    """A field of one random brightness with some texture, so the score falls on either side of 0.5."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.uniform(25, 230) + rng.normal(0, 20, (40, 52, 3)), 0, 255).astype(np.uint8)


def _score_and_cam(model: nn.Module, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The model's pre-sigmoid score z, and textbook Grad-CAM of z at the last ReLU (activations, weights)."""
    store = {}
    handle = model[4].register_forward_hook(lambda _m, _i, out: store.setdefault("a", out))
    try:
        z = model[:8](torch.tensor(x))
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(z.sum(), store["a"])
    return float(z[0, 0].detach()), store["a"][0].detach().numpy(), grad.mean(dim=(2, 3))[0].detach().numpy()


class Squeezed(nn.Module):
    """The usual BCEWithLogitsLoss shape: one score per image as (N,), not (N, 1)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


@pytest.mark.parametrize(("sigmoid", "squeeze"), [(True, False), (False, False), (True, True), (False, True)],
                         ids=["sigmoid", "logit", "sigmoid-squeezed", "logit-squeezed"])
def test_pytorch_one_score_model_runs_as_two_classes_with_its_own_probability(tmp_path, sigmoid, squeeze):
    net = _yes_no_cnn(sigmoid)
    model = Squeezed(net).eval() if squeeze else net
    report = export_pytorch(model, tmp_path / "yesno.onnx", labels=LABELS, input_size=SIZE, name="Yes/no",
                            temperature=1.5, sample_images=[_image(1)], log=None)
    assert report.figures["cam_correlation"] >= 0.99 and report.figures["max_abs_score_diff"] <= 1e-4
    assert any("one score per image" in note for note in report.notes)
    session = ModelSession.load(report.path)
    assert session.spec.labels == LABELS and session.cam_method == "grad-cam"
    called = set()
    for seed in range(2, 8):
        rgb = _image(seed)
        pred = session.predict(rgb)
        x, geom = preprocess(rgb, session.spec.input)
        z, acts, weights = _score_and_cam(net, x)
        p = 1.0 / (1.0 + np.exp(-z / 1.5))  # the temperature scales the score as Platt scaling would
        np.testing.assert_allclose(pred.probabilities, [1.0 - p, p], atol=1e-5)
        called.add(pred.top_label)
        for c, sign in ((1, 0.5), (0, -0.5)):
            expected = map_to_image(weighted_cam(acts, sign * weights), geom)
            if expected.std() > 1e-6:
                assert np.corrcoef(pred.heatmap(c).ravel(), expected.ravel())[0, 1] > 0.999
    assert called == set(LABELS)


def test_torchscript_one_score_model_is_checked_by_finite_differences(tmp_path):
    model = _yes_no_cnn(sigmoid=True)
    torch.jit.script(model).save(str(tmp_path / "m.ts"))
    report = export_pytorch(tmp_path / "m.ts", tmp_path / "m.onnx", labels=LABELS, input_size=SIZE, name="TS",
                            log=None)
    assert report.figures["fd_max_rel_error"] < 1e-2
    rgb = _image(9)
    x, _ = preprocess(rgb, report.spec.input)
    with torch.no_grad():
        p = float(model(torch.tensor(x))[0, 0])
    np.testing.assert_allclose(ModelSession.load(report.path).predict(rgb).probabilities, [1 - p, p], atol=1e-5)


def test_one_score_model_needs_two_labels(tmp_path):
    with pytest.raises(ExportError, match="one score per image.*two labels"):
        export_pytorch(_yes_no_cnn(True), tmp_path / "x.onnx", labels=["blast"], input_size=SIZE, name="x", log=None)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("head", ["dense_sigmoid", "squeezed_then_sigmoid", "sigmoid_then_squeezed"])
def test_keras_sigmoid_dense_exports_as_two_classes(tmp_path, head):
    """Dense(1, sigmoid) as most Keras yes/no models end, and the score squeezed to (N,) before or after its sigmoid."""
    import keras

    keras.utils.set_random_seed(0)
    squeeze = keras.layers.Lambda(lambda t: keras.ops.squeeze(t, axis=-1), name="squeeze")
    tail = {
        "dense_sigmoid": [keras.layers.Dense(1, activation="sigmoid")],
        "squeezed_then_sigmoid": [keras.layers.Dense(1), squeeze, keras.layers.Activation("sigmoid")],
        "sigmoid_then_squeezed": [keras.layers.Dense(1, activation="sigmoid"), squeeze],
    }[head]
    model = keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="last_conv"),
        keras.layers.GlobalAveragePooling2D(),
        *tail,
    ])
    from export.keras import export_keras

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = export_keras(model, tmp_path / "k.onnx", labels=LABELS, scale=1 / 255, name="Keras yes/no",
                              log=None)
    assert report.figures["cam_correlation"] >= 0.99 and report.figures["max_abs_score_diff"] <= 1e-4
    session = ModelSession.load(report.path)
    for seed in (4, 5):
        rgb = _image(seed)
        x, _ = preprocess(rgb, session.spec.input)
        p = float(np.asarray(model(x, training=False)).reshape(-1)[0])
        np.testing.assert_allclose(session.predict(rgb).probabilities, [1 - p, p], atol=1e-5)


def test_plain_onnx_with_one_sigmoid_output_is_augmented_as_two_classes(tmp_path):
    make_one_score_classifier(tmp_path / "plain.onnx", size=SIZE)
    original = onnx.load(str(tmp_path / "plain.onnx"))
    report = augment_model(tmp_path / "plain.onnx", tmp_path / "ready.onnx", labels=LABELS, log=None)
    assert report.figures["fd_max_rel_error"] < 1e-2 and report.figures["max_abs_score_diff"] <= 1e-5
    assert onnx.load(str(tmp_path / "plain.onnx")) == original  # the original is left untouched
    import onnxruntime as ort

    plain = ort.InferenceSession(str(tmp_path / "plain.onnx"))
    session = ModelSession.load(report.path)
    for seed in (1, 2, 3):
        rgb = _image(seed)
        x, _ = preprocess(rgb, session.spec.input)
        p = float(plain.run(None, {"x": x})[0][0, 0])
        pred = session.predict(rgb)
        np.testing.assert_allclose(pred.probabilities, [1 - p, p], atol=1e-5)
        assert pred.heatmap(1).shape == rgb.shape[:2]


def test_a_sigmoid_hidden_behind_a_squeeze_is_found_and_a_bounded_score_is_refused():
    """A missed sigmoid would pass verification (the framework gives p too) and show sigmoid(p): it must be found."""
    from onnx import TensorProto, helper

    from export.one_score import as_two_classes

    def graph(*ops: str) -> onnx.ModelProto:
        nodes, current = [], "x"
        for i, op in enumerate(ops):
            extra = {"axes": [1]} if op == "Squeeze" else {}
            nodes.append(helper.make_node(op, [current], [f"t{i}"], **extra))
            current = f"t{i}"
        nodes[-1].output[0] = "y"
        return helper.make_model(helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"] if "Squeeze" in ops else ["N", 1])]),
            opset_imports=[helper.make_opsetid("", 11)])

    model = graph("Relu", "Sigmoid", "Squeeze")
    head = as_two_classes(model)
    assert head is not None and head.had_sigmoid
    assert [n.op_type for n in model.graph.node] == ["Relu", "Squeeze", "Unsqueeze", "Mul"]
    import onnxruntime as ort

    x = np.array([[-2.0], [0.5], [3.0]], np.float32)
    out = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(out, np.maximum(x, 0) * [-0.5, 0.5], atol=1e-6)
    with pytest.raises(ExportError, match="ends in Tanh"):
        as_two_classes(graph("Relu", "Tanh"))


def test_augmenting_a_one_score_model_with_other_than_two_labels_says_why(tmp_path):
    make_one_score_classifier(tmp_path / "plain.onnx", size=SIZE)
    with pytest.raises(ExportError, match="one score per image.*two labels"):
        augment_model(tmp_path / "plain.onnx", tmp_path / "ready.onnx", labels=["a", "b", "c"], log=None)
    assert not (tmp_path / "ready.onnx").exists()
