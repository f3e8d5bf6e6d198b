"""PyTorch round trips: export, load with the runtime, and compare heatmaps with PyTorch's own Grad-CAM."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn
from torch.fx.experimental.proxy_tensor import make_fx

from export.errors import ExportError, VerificationError
from export.pytorch import export_pytorch
from inference.cam import weighted_cam
from inference.contract import spec_from_metadata
from inference.preprocess import map_to_image, preprocess
from inference.session import ModelSession

SIZE = 32
MEAN, STD = (0.5, 0.45, 0.4), (0.25, 0.2, 0.3)


def gap_cnn(num_classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3),
        nn.Linear(16, num_classes))
    bn = model[1]
    with torch.no_grad():
        bn.running_mean.uniform_(-0.3, 0.3)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
    return model.eval()


class VggStyle(nn.Module):
    """Conv blocks, then flatten -> dense -> dense, as in VGG."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(8 * 8 * 8, 32), nn.ReLU(), nn.Dropout(), nn.Linear(32, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class BranchyOutput(nn.Module):
    """Traced control flow: ONNX keeps one branch, so the export must be refused."""

    def __init__(self) -> None:
        super().__init__()
        self.body = gap_cnn(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * (3.0 if float(x.mean()) > 10 else 1.0)


def _image(seed: int, shape=(45, 61, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _torch_gradcam(model: nn.Module, x: np.ndarray, layer: nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Textbook Grad-CAM with a hook on ``layer``: logits, activations, per-class weights."""
    store = {}
    handle = layer.register_forward_hook(lambda _m, _i, out: store.setdefault("a", out))
    try:
        logits = model(torch.tensor(x))
    finally:
        handle.remove()
    acts = store["a"]
    weights = [torch.autograd.grad(logits[:, c].sum(), acts, retain_graph=True)[0].mean(dim=(2, 3))
               for c in range(logits.shape[1])]
    return logits.detach().numpy(), acts.detach().numpy(), torch.stack(weights, 1).detach().numpy()


def _check_session_against_torch(path, model: nn.Module, layer: nn.Module, labels: list[str]) -> None:
    session = ModelSession.load(path)
    assert session.cam_method == "grad-cam"
    assert session.spec.labels == labels
    for seed in (11, 12):
        rgb = _image(seed)
        pred = session.predict(rgb)
        x, geom = preprocess(rgb, session.spec.input)
        logits, acts, weights = _torch_gradcam(model, x, layer)
        probs = torch.softmax(torch.tensor(logits[0]), 0).numpy()
        np.testing.assert_allclose(pred.probabilities, probs, atol=1e-5)
        assert pred.top_label == labels[int(np.argmax(logits[0]))]
        for c in range(len(labels)):
            expected = map_to_image(weighted_cam(acts[0], weights[0, c]), geom)
            got = pred.heatmap(c)
            assert got.shape == rgb.shape[:2]
            if expected.std() > 1e-6:
                assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.999
            else:
                np.testing.assert_allclose(got, expected, atol=1e-5)


def test_gap_cnn_round_trip_with_dynamo_exporter(tmp_path):
    model = gap_cnn()
    labels = ["Benign", "Early Pre-B", "Pre-B", "Pro-B"]
    report = export_pytorch(
        model, tmp_path / "gap.onnx", labels=labels, input_size=SIZE, mean=MEAN, std=STD, name="GAP test",
        model_id="gap-test", version="0.1", temperature=1.0, provenance={"training_data": "synthetic"},
        sample_images=[_image(3), _image(4, (20, 90, 3))], log=None)
    assert "dynamo=True" in report.converter
    figures = report.figures
    assert figures["max_abs_score_diff"] <= 1e-4 and figures["top1_agreement"] == 1.0
    assert figures["cam_correlation"] >= 0.99 and figures["images"] == 6
    assert report.spec.gradcam.target_layer == "5"  # the ReLU module after the last conv, found by itself
    stored = onnx.load(str(report.path))
    assert not list(tmp_path.glob("*.data"))
    spec = spec_from_metadata({p.key: p.value for p in stored.metadata_props})
    assert spec.provenance.verification["cam_correlation"] == figures["cam_correlation"]
    assert spec.provenance.training_data == "synthetic" and spec.provenance.source_framework.startswith("pytorch")
    assert stored.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    _check_session_against_torch(report.path, model, model[5], labels)


def test_vgg_style_head_from_pickled_file_with_named_target(tmp_path):
    model = VggStyle().eval()
    torch.save(model, tmp_path / "vgg.pt")
    labels = ["a", "b", "c"]
    report = export_pytorch(
        tmp_path / "vgg.pt", tmp_path / "vgg.onnx", labels=labels, input_size=SIZE, mean=MEAN, std=STD,
        name="VGG test", target_layer="features.4", converter="legacy", log=None)
    assert report.spec.gradcam.target_layer == "features.4"
    assert report.figures["cam_correlation"] >= 0.99 and report.figures["max_abs_score_diff"] <= 1e-4
    _check_session_against_torch(report.path, model, model.features[4], labels)


def test_torchscript_file_is_checked_by_finite_differences(tmp_path):
    model = gap_cnn(3)
    scripted = torch.jit.script(model)
    scripted.save(str(tmp_path / "m.ts"))
    report = export_pytorch(tmp_path / "m.ts", tmp_path / "m.onnx", labels=["x", "y", "z"], input_size=SIZE,
                            name="TS", log=None)
    assert report.figures["fd_max_rel_error"] < 1e-2
    assert report.figures["max_abs_score_diff"] <= 1e-4
    _check_session_against_torch(report.path, model, model[5], ["x", "y", "z"])


def test_make_fx_forward_backward_trace_agrees(tmp_path):
    """Independent cross-check: PyTorch's own backward, traced with make_fx and exported to ONNX."""
    model = VggStyle().eval()
    layer = model.features[4]
    report = export_pytorch(model, tmp_path / "v.onnx", labels=["a", "b", "c"], input_size=SIZE, name="v",
                            converter="legacy", log=None)

    def forward_backward(x):
        store = {}
        handle = layer.register_forward_hook(lambda _m, _i, out: store.setdefault("a", out))
        logits = model(x)
        handle.remove()
        eye = torch.eye(3)  # (logits * one-hot).sum(): the legacy exporters lack select_backward
        grads = [torch.autograd.grad((logits * eye[c]).sum(), store["a"], retain_graph=True)[0].mean(dim=(2, 3))
                 for c in range(3)]
        return torch.stack(grads, 1)

    x = torch.tensor(np.random.default_rng(5).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32))
    traced = make_fx(forward_backward)(x)
    fx_path = tmp_path / "fx.onnx"
    torch.onnx.export(traced, (x,), str(fx_path), dynamo=True, external_data=False, input_names=["input"],
                      opset_version=18)
    import onnxruntime as ort

    fx_weights = ort.InferenceSession(str(fx_path)).run(None, {"input": x.numpy()})[0]
    ours = ort.InferenceSession(str(report.path)).run(["gradcam_weights"], {"input": x.numpy()})[0]
    np.testing.assert_allclose(ours, fx_weights, rtol=1e-4, atol=1e-7)


def test_refusals_write_nothing(tmp_path):
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match="3 labels given but the model has 4"):
        export_pytorch(gap_cnn(), out, labels=["a", "b", "c"], input_size=SIZE, name="x", converter="legacy", log=None)
    torch.save(gap_cnn().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ExportError, match="state_dict.*torch.save\\(model\\)"):  # says how to save what it can use
        export_pytorch(tmp_path / "weights.pt", out, labels=list("abcd"), input_size=SIZE, name="x", log=None)
    torch.save({"epoch": 3, "model": gap_cnn().state_dict()}, tmp_path / "checkpoint.pt")
    with pytest.raises(ExportError, match=r"holds a dict \(epoch, model\): a state_dict or training checkpoint"):
        export_pytorch(tmp_path / "checkpoint.pt", out, labels=list("abcd"), input_size=SIZE, name="x", log=None)
    with pytest.raises(ExportError, match="neither a module"):
        export_pytorch(gap_cnn(), out, labels=list("abcd"), input_size=SIZE, name="x", target_layer="nope",
                       converter="legacy", log=None)
    with pytest.raises(VerificationError, match="scores differ") as info:
        export_pytorch(BranchyOutput().eval(), out, labels=["a", "b"], input_size=SIZE, name="x", scale=1.0,
                       converter="legacy", log=None)
    assert info.value.figures["max_abs_score_diff"] > 1e-4
    assert not out.exists()


def test_a_sigmoid_per_class_exports_as_probabilities_with_grad_cam_on_its_logits(tmp_path):
    model = nn.Sequential(gap_cnn(3), nn.Sigmoid()).eval()
    report = export_pytorch(model, tmp_path / "s.onnx", labels=["a", "b", "c"], input_size=SIZE, name="sigmoid",
                            log=None)
    assert report.spec.output.kind == "probabilities" and report.figures["cam_correlation"] >= 0.99
    session = ModelSession.load(report.path)
    rgb = _image(7)
    x, _ = preprocess(rgb, session.spec.input)
    with torch.no_grad():
        p = model(torch.tensor(x))[0].numpy().astype(np.float64)
    np.testing.assert_allclose(session.predict(rgb).probabilities, p / p.sum(), atol=1e-5)
