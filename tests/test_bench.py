"""Smoke tests of the benchmark's code paths on a tiny model and a handful of generated images.

No timing is asserted here (speed is measured by ``python bench/run.py``, never by tests); what is
checked is that each workload computes what it claims: the no-Grad-CAM twin gives the same scores,
the MAC count is exact, the PyTorch baseline matches ONNX Runtime, and the table has all five parts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from bench import report
from bench.flops import count_macs
from bench.models import prepare_models, strip_gradcam
from bench.pipeline import RawOrt, output_names, predecode, run_pipeline
from inference.cam import GRAD_CAM, weighted_cam
from inference.images import load_image
from inference.registry import read_spec
from inference.session import ModelSession
from tests.model_factory import CHANNELS, classifier_weights, make_classifier


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HEMALENS_BENCH_DATA", str(tmp_path / "no-shared-data"))  # generated images only
    monkeypatch.setenv("HEMALENS_BENCH_CHECKPOINTS", str(tmp_path / "no-checkpoints"))
    return make_classifier(tmp_path / "models" / "tiny.onnx", num_classes=3, size=32)


def _images(tmp_path: Path, n: int = 6) -> list[Path]:
    from bench.data import generate_images

    return generate_images(tmp_path / "imgs", n, size=64)


def test_no_gradcam_twin_keeps_scores_and_drops_cam(tiny: Path, tmp_path: Path) -> None:
    twin = strip_gradcam(tiny, tmp_path / "twin.onnx")
    graph = onnx.load(str(twin)).graph
    assert [o.name for o in graph.output] == ["logits"]
    assert not any(n.op_type in ("Expand", "Div") for n in graph.node)  # the Grad-CAM weight nodes are pruned
    assert read_spec(twin).gradcam is None
    full, bare = ModelSession.load(tiny), ModelSession.load(twin)
    assert full.cam_method == GRAD_CAM and bare.cam_method != GRAD_CAM
    rgb = np.random.default_rng(3).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    np.testing.assert_allclose(full.predict(rgb).probabilities, bare.predict(rgb).probabilities, atol=1e-6)


def test_mac_count_is_exact_for_the_tiny_model(tiny: Path) -> None:
    macs = count_macs(tiny, read_spec(tiny))
    conv = CHANNELS * 16 * 16 * 3 * 3 * 3  # 32x32 input, stride 2 -> 16x16 output, 3x3x3 kernel per output value
    gemm = 3 * CHANNELS
    assert (macs.inference, macs.gradcam, macs.unknown_nodes) == (conv + gemm, 0, 0)


def test_pipeline_and_raw_ort_process_every_image(tiny: Path, tmp_path: Path) -> None:
    paths = _images(tmp_path)
    session = ModelSession.load(tiny)
    assert run_pipeline(session, paths, batch=4) == len(paths)
    assert run_pipeline(session, paths, batch=4, cam=False) == len(paths)
    raw = RawOrt(tiny, session.spec, output_names(session.spec))
    tensor = predecode(paths, session.spec)
    assert tensor.shape == (len(paths), 3, 32, 32)
    assert raw.run(tensor, batch=4) == len(paths)
    scores = raw.session.run(["logits"], {"input": tensor})[0]
    np.testing.assert_allclose(session.calibrate(scores)[0], session.predict(load_image(paths[0]).rgb).probabilities,
                               atol=1e-5)


def test_pytorch_baseline_matches_onnx_runtime(tiny: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from bench.torch_baseline import TorchModel, TorchRunner

    w = classifier_weights(3, 0)

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            conv = torch.nn.Conv2d(3, CHANNELS, 3, 2, 1)
            conv.weight.data = torch.from_numpy(w["conv_w"])
            conv.bias.data = torch.from_numpy(w["conv_b"])
            self.features = torch.nn.Sequential(conv, torch.nn.ReLU())
            self.fc = torch.nn.Linear(CHANNELS, 3)
            self.fc.weight.data = torch.from_numpy(w["fc_w"])
            self.fc.bias.data = torch.from_numpy(w["fc_b"])

        def forward(self, x):  # noqa: ANN001, ANN202
            return self.fc(self.features(x).mean(dim=(2, 3)))

    module = Tiny().eval()
    runner = TorchRunner(TorchModel(module, module.features, "test"), threads=1)
    session = ModelSession.load(tiny)
    paths = _images(tmp_path)
    tensor = predecode(paths, session.spec)
    scores, acts, weights = RawOrt(tiny, session.spec, output_names(session.spec)).session.run(
        output_names(session.spec), {"input": tensor})
    np.testing.assert_allclose(runner.logits(tensor), scores, atol=1e-4)
    probs, cams = runner.gradcam(tensor)
    for i in range(len(tensor)):
        top = int(np.argmax(scores[i]))
        np.testing.assert_allclose(cams[i], weighted_cam(acts[i], weights[i, top]), atol=1e-4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert runner.infer(tensor, batch=4) == len(paths)
    assert runner.pipeline(paths, session.spec, batch=4) == len(paths)


def test_missing_checkpoint_is_reported_not_fatal(tiny: Path, tmp_path: Path) -> None:
    from bench.torch_baseline import load_checkpoint, torch_status

    model, why = load_checkpoint("tiny")
    assert model is None
    assert ("no training checkpoint" in why) if torch_status() is None else ("PyTorch not importable" in why)


def test_targets_use_per_run_ratios() -> None:
    assert report.per_run_ratio([10.0, 30.0], [20.0, 30.0]) == [0.5, 1.0]
    model = {"name": "m", "torch_note": "", "rates": {
        "pipeline": [90.0, 80.0, 85.0], "raw_ort": [100.0, 100.0, 100.0],
        "no_cam_pipeline": [95.0, 84.0, 90.0], "raw_ort_scores_only": [101.0, 99.0, 100.0],
        "torch_pipeline": [40.0, 50.0, 45.0], "torch_infer": [50.0, 50.0, 50.0]}}
    lines = report.render_targets({"models": [model], "gui": {
        "stall": [{"stalls_ms": [1.0, 70.0]}], "stall_stepping": [{"stalls_ms": [1.0, 20.0]}],
        "memory": {"images": 10, "rss_peak_mib": 200.0}}})
    text = "\n".join(lines)
    assert "[PASS] m pipeline >= 0.8x raw ORT: 0.85x" in text
    assert "[MISS] m pipeline >= 2x PyTorch eager: 1.89x" in text  # median of 2.25, 1.6, 1.89
    assert "[PASS] m Grad-CAM overhead <= 10%" in text
    assert "[MISS] longest GUI stall <= 50 ms during a batch:" in text
    assert "[PASS] longest GUI stall <= 50 ms during a batch, user stepping" in text
    assert "[PASS] peak RSS <= 600 MB at 10 images" in text


def test_quick_run_prints_all_five_parts(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.run import main

    probe_tmp = tmp_path / "probe-tmp"  # the GUI probes' temporary folders (a subprocess reads TMPDIR afresh)
    probe_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(probe_tmp))
    out = tmp_path / "result.json"
    code = main(["--quick", "--models", str(tiny), "--images", "6", "--runs", "1", "--gui-images", "6",
                 "--memory-images", "8", "--json", str(out), "--scratch", str(tmp_path / "scratch")])
    assert code == 0
    assert not list(probe_tmp.glob("hemalens-*"))  # each probe removed its scratch folder, and nothing made it again
    text = capsys.readouterr().out
    for part in ("1. Throughput", "2. Latency", "3. GUI", "4. Memory", "5. Physical limit", "Targets"):
        assert part in text
    saved = json.loads(out.read_text())
    (model,) = saved["models"]
    assert all(len(v) == 1 and v[0] > 0 for v in model["rates"].values())
    assert "no training checkpoint" in model["torch_note"] or "not importable" in model["torch_note"]
    gui = saved["gui"]
    assert gui["launch"][0]["first_paint"] > 0, gui["launch"]
    assert gui["stall"][0]["classified"] == 6, gui["stall"]
    assert gui["stall_stepping"][0]["classified"] == 6 and gui["stall_stepping"][0]["step_ms"] == 300
    assert gui["memory"].get("classified") == 8 and gui["memory"]["rss_peak_mib"] > 0, gui["memory"]
    assert gui["memory"]["thumbnails_decoded"] <= 8
    review = gui["review"]  # 6 images: Enter on the first five, each moving on to the next
    assert review["decisions"] == 5 and review["reviewed"] == 5, review
    assert all(0 < saved <= shown for saved, shown in zip(review["saved_ms"], review["next_shown_ms"], strict=True))
    assert "keyboard review, 5 x Enter" in text
    group = gui["group"]  # the biggest class section of the 6, decided at once
    assert group["group"] >= 2 and group["reviewed_after"] == group["group"], group
    assert all(group[k] > 0 for k in ("enter_ms", "undo_ms", "class_key_ms"))
    assert f"class group at once, {group['group']} thumbnails" in text


def test_prepare_models_names_hemalens_ids(tmp_path: Path) -> None:
    path = make_classifier(tmp_path / "hemalens-demo.onnx")
    (m,) = prepare_models([path], tmp_path / "work")
    assert m.name == read_spec(path).id.removeprefix("hemalens-") and m.no_cam_path.is_file()
