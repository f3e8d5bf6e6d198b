"""hemalens-export augment / pytorch from the command line, and augment_model on plain ONNX classifiers."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from export.augment import augment_model
from export.cli import main
from export.errors import ExportError
from inference.session import ModelSession
from tests.model_factory import classifier_weights, make_classifier
from tests.test_export_pytorch import VggStyle


def test_augment_plain_onnx_matches_the_analytic_gradient(tmp_path, capsys):
    plain = make_classifier(tmp_path / "plain.onnx", num_classes=3, with_gradcam=False, with_metadata=False)
    original_bytes = plain.read_bytes()
    out = tmp_path / "ready.onnx"
    code = main(["augment", str(plain), str(out), "--labels", "Blast,Lymphocyte,Other", "--mean", "0.5",
                 "--std", "0.25", "--name", "Custom"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Grad-CAM target" in printed and "finite differences" in printed
    assert plain.read_bytes() == original_bytes  # the original is never touched

    session = ModelSession.load(out)
    assert session.cam_method == "grad-cam"
    assert session.spec.labels == ["Blast", "Lymphocyte", "Other"]
    assert session.spec.input.mean == (0.5, 0.5, 0.5) and session.spec.name == "Custom"
    assert "assumed" in session.spec.description.lower()
    assert session.spec.assumed and any("assumed" in n for n in session.spec.notes)  # the banner still shows
    verification = session.spec.provenance.verification
    assert verification["max_abs_score_diff"] == 0.0 and verification["fd_max_rel_error"] < 1e-3

    # For conv -> relu -> GAP -> Gemm the Grad-CAM weight is W[c, k] / (h*w), whatever the input.
    model = onnx.load(str(out))
    fc_w = classifier_weights(3)["fc_w"]
    weights_init = [numpy_helper.to_array(i) for i in model.graph.initializer]
    assert any(w.shape == fc_w.shape and np.allclose(w, fc_w) for w in weights_init)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out))
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    acts, weights = sess.run(["gradcam_activations", "gradcam_weights"], {sess.get_inputs()[0].name: x})
    hw = acts.shape[2] * acts.shape[3]
    np.testing.assert_allclose(weights, np.broadcast_to(fc_w / hw, weights.shape), rtol=1e-5, atol=1e-8)


def test_augment_with_many_classes_adds_a_class_input(tmp_path):
    plain = make_classifier(tmp_path / "plain.onnx", num_classes=5, with_gradcam=False, with_metadata=True)
    report = augment_model(plain, tmp_path / "ready.onnx", max_all_classes=4, log=None)
    assert report.spec.gradcam.class_input == "gradcam_class"
    session = ModelSession.load(report.path)
    pred = session.predict(np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    assert pred.heatmap() is not None and pred.heatmap().shape == (40, 40)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_written_model_is_readable_by_others_as_umask_allows(tmp_path):
    """mkstemp creates 0600 files; a model written for a lab share must follow the umask instead."""
    plain = make_classifier(tmp_path / "plain.onnx", num_classes=3, with_gradcam=False, with_metadata=True)
    old = os.umask(0o022)
    try:
        report = augment_model(plain, tmp_path / "ready.onnx", log=None)
        assert stat.S_IMODE(report.path.stat().st_mode) == 0o644
        os.umask(0o077)
        private = augment_model(plain, tmp_path / "private.onnx", log=None)
        assert stat.S_IMODE(private.path.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_augment_refusals(tmp_path, capsys):
    ready = make_classifier(tmp_path / "ready.onnx", with_gradcam=True)
    assert main(["augment", str(ready), str(tmp_path / "again.onnx")]) == 2
    assert "already has Grad-CAM" in capsys.readouterr().err
    plain = make_classifier(tmp_path / "plain.onnx", with_gradcam=False)
    with pytest.raises(ExportError, match="never overwritten"):
        augment_model(plain, plain, log=None)
    assert main(["augment", str(tmp_path / "missing.onnx"), str(tmp_path / "o.onnx")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage")
    assert main(["augment", str(tmp_path / "junk.onnx"), str(tmp_path / "o.onnx")]) == 2
    assert not (tmp_path / "o.onnx").exists()


def test_pytorch_command_line_export(tmp_path, capsys):
    torch.save(VggStyle().eval(), tmp_path / "vgg.pt")
    (tmp_path / "labels.txt").write_text("# classes\nBasophil\nMonocyte\nNeutrophil\n", encoding="utf-8")
    (tmp_path / "prov.json").write_text(json.dumps({"metrics": {"accuracy": 0.91}}), encoding="utf-8")
    out = tmp_path / "vgg.onnx"
    code = main(["pytorch", str(tmp_path / "vgg.pt"), str(out), "--labels-file", str(tmp_path / "labels.txt"),
                 "--input-size", "32", "--mean", "0.5,0.5,0.5", "--std", "0.25", "--scale", "1/255",
                 "--converter", "legacy", "--name", "VGG", "--id", "vgg-test",
                 "--provenance", str(tmp_path / "prov.json"), "--license", "CC-BY-4.0"])
    assert code == 0, capsys.readouterr().err
    assert "heatmap correlation" in capsys.readouterr().out
    spec = ModelSession.load(out).spec
    assert spec.labels == ["Basophil", "Monocyte", "Neutrophil"] and spec.id == "vgg-test"
    assert spec.provenance.metrics == {"accuracy": 0.91} and spec.provenance.license == "CC-BY-4.0"
    assert spec.provenance.verification["cam_correlation"] >= 0.99
    assert main(["pytorch", str(tmp_path / "vgg.pt"), str(tmp_path / "x.onnx"), "--labels", "a,b"]) == 2
