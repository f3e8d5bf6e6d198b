"""Batch lanes (inference.batch): chunks decoded and classified side by side must still give every file's
result in input order, per-file errors in place, honour cancellation between images and keep at most
a few chunks in flight however long the folder is."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

import inference.batch as batch
from inference.batch import classify_paths, iter_image_paths
from inference.errors import InferenceError
from inference.images import load_image
from inference.session import ModelSession
from tests.model_factory import make_classifier


def _png(path, seed, size=(12, 16)):
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return ModelSession.load(make_classifier(tmp_path_factory.mktemp("m") / "m.onnx"))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """23 files: good images of several sizes with unreadable ones at the start, middle and end."""
    root = tmp_path_factory.mktemp("mixed")
    for i in range(20):
        _png(root / f"img_{i:02d}.png", i, size=(10 + i, 30 - i))
    (root / "img_00a.png").write_bytes(b"")  # second file: before most good ones
    (root / "img_09a.jpg").write_text("not a jpeg")  # in the middle of a chunk
    (root / "img_99.png").write_bytes(b"\x89PNG\r\n")  # last file
    return root


@pytest.fixture
def counted(monkeypatch):
    """Count decodes (from the lane threads)."""
    calls = {"n": 0}
    lock = threading.Lock()

    def counting(path, **kw):
        with lock:
            calls["n"] += 1
        return load_image(path, **kw)

    monkeypatch.setattr(batch, "load_image", counting)
    return calls


@pytest.mark.parametrize("lanes", [1, 2, 3])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_results_in_input_order_with_errors_in_place(mixed, session, lanes, batch_size):
    expected = [p.name for p in iter_image_paths([mixed])]
    results = list(classify_paths(session, [mixed], batch_size=batch_size, lanes=lanes))
    assert [r.path.name for r in results] == expected
    errors = {r.path.name: r.error for r in results if not r.ok}
    assert set(errors) == {"img_00a.png", "img_09a.jpg", "img_99.png"}
    assert "empty" in errors["img_00a.png"]
    for r in results:
        if r.ok:
            single = session.predict(load_image(r.path).rgb)
            np.testing.assert_allclose(r.prediction.probabilities, single.probabilities, atol=1e-6)
            assert r.prediction.image_size == load_image(r.path).size


def test_a_failing_model_run_fails_only_its_own_image(mixed, session, monkeypatch):
    original = ModelSession.predict_batch

    def picky(self, images):
        if any(im.shape[:2] == (15, 25) for im in images):  # img_05.png
            raise InferenceError("the model failed while running: test")
        return original(self, images)

    monkeypatch.setattr(ModelSession, "predict_batch", picky)
    results = list(classify_paths(session, [mixed], batch_size=4, lanes=2))
    failed = [r.path.name for r in results if not r.ok]
    assert failed == ["img_00a.png", "img_05.png", "img_09a.jpg", "img_99.png"]
    assert "failed while running" in next(r.error for r in results if r.path.name == "img_05.png")
    assert all(r.prediction is not None for r in results if r.path.name in ("img_04.png", "img_06.png"))


def test_cancel_stops_between_images_and_stops_decoding(mixed, session, counted):
    cancel = threading.Event()
    results = classify_paths(session, [mixed], batch_size=2, lanes=2, cancel=cancel)
    got = [next(results), next(results), next(results)]
    cancel.set()
    assert list(results) == []  # nothing more once cancelled, and the generator ends
    decoded = counted["n"]
    assert decoded <= len(got) + (2 + 2) * 2  # what was in flight, never the whole folder (23 files)
    assert [r.path.name for r in got] == [p.name for p in iter_image_paths([mixed])][:3]


def test_cancel_before_start_yields_nothing(mixed, session, counted):
    cancel = threading.Event()
    cancel.set()
    assert list(classify_paths(session, [mixed], cancel=cancel, lanes=2)) == []
    assert counted["n"] == 0


def test_at_most_lanes_plus_two_chunks_in_flight(tmp_path, session, counted):
    for i in range(120):
        _png(tmp_path / f"f{i:03d}.png", i, size=(8, 8))
    lanes, size = 2, 4
    bound = (lanes + 2) * size
    seen = 0
    for result in classify_paths(session, [tmp_path], batch_size=size, lanes=lanes):
        assert result.ok
        seen += 1
        if seen in (1, 50):
            time.sleep(0.2)  # a slow consumer: the lanes must wait for it, not decode the whole folder
        assert counted["n"] <= seen + bound
    assert seen == 120 and counted["n"] == 120


def test_closing_early_joins_the_lanes(mixed, session):
    results = classify_paths(session, [mixed], keep_images=True, batch_size=2, lanes=3)
    first = next(results)
    assert first.rgb is not None
    results.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("hemalens-lane")]


def test_lanes_run_on_a_one_thread_twin_with_identical_results(session, mixed):
    twin = session.with_threads(1)
    assert twin is session.with_threads(1)  # created once
    assert twin.ort_session is not session.ort_session and twin.spec is session.spec
    rgb = load_image(mixed / "img_03.png").rgb
    a, b = session.predict(rgb), twin.predict(rgb)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)
    np.testing.assert_allclose(a.heatmap(), b.heatmap(), atol=1e-5)
    assert twin.with_threads(2) is twin  # a twin makes no twins of its own
