"""Telling images unlike a model's training images: features, the per-class reference, the metadata
round trip, and the note a prediction gets at run time."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from export.reference import write_reference
from inference.contract import InputSpec, ModelContractError, spec_from_json
from inference.familiarity import (
    FEATURE_NAMES,
    UNFAMILIAR_NOTE,
    features_of_images,
    fit_reference,
    image_features,
    pixels_from_tensor,
    unfamiliar,
)
from inference.preprocess import preprocess_batch, resize_for_model
from inference.session import ModelSession
from tests.model_factory import make_classifier


def smear(rng: np.random.Generator, size: int = 96, tint=(1.0, 1.0, 1.0), cell: float = 1.0) -> np.ndarray:
    """A pale pink field with a few purple discs (cells) of random position and size."""
    img = np.empty((size, size, 3), np.float32)
    img[:] = (235, 205, 215)
    img += rng.normal(0, 4, img.shape)
    for _ in range(rng.integers(2, 5)):
        centre = tuple(int(v) for v in rng.integers(10, size - 10, 2))
        cv2.circle(img, centre, int(rng.uniform(6, 11) * cell), (120, 60, 150), -1)
    return np.clip(img * np.asarray(tint, np.float32), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_pixels_from_tensor_undoes_the_models_normalisation(layout: str, order: str) -> None:
    spec = InputSpec(name="x", layout=layout, height=40, width=40, color_order=order,
                     mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), scale=1 / 255)
    rgb = smear(np.random.default_rng(0), 64)
    tensor, _ = preprocess_batch([rgb], spec)
    resized, _ = resize_for_model(rgb, spec)
    back = pixels_from_tensor(tensor, spec)[0]
    assert back.dtype == np.uint8 and np.abs(back.astype(int) - resized).max() <= 1


def test_features_see_colour_and_scale() -> None:
    rng = np.random.default_rng(1)
    base = image_features(np.stack([smear(rng)]))[0]
    assert base.shape == (len(FEATURE_NAMES),)
    warm = image_features(np.stack([smear(np.random.default_rng(1), tint=(1.15, 1.0, 0.85))]))[0]
    assert warm[0] > base[0] and warm[2] < base[2]  # mean R up, mean B down


def _reference(rng: np.random.Generator, n: int = 150):
    spec = InputSpec(name="x", height=48, width=48)
    images = [smear(rng) for _ in range(n)] + [smear(rng, cell=1.3) for _ in range(n)]
    labels = np.array([0] * n + [1] * n)
    return spec, fit_reference(features_of_images(images, spec), labels, 2)


def test_reference_flags_shifted_images_and_seldom_the_training_kind() -> None:
    rng = np.random.default_rng(2)
    spec, ref = _reference(rng)
    assert len(ref.classes) == 2 and ref.images == 300 and all(c.limit > 0 for c in ref.classes)
    same = features_of_images([smear(rng) for _ in range(200)], spec)
    assert unfamiliar(ref, same, np.zeros(200, int)).mean() <= 0.05
    shifted = features_of_images([smear(rng, tint=(1.15, 1.0, 0.85)) for _ in range(50)], spec)
    assert unfamiliar(ref, shifted, np.zeros(50, int)).mean() >= 0.9
    blurred = features_of_images([cv2.GaussianBlur(smear(rng), (0, 0), 2.0) for _ in range(50)], spec)
    assert unfamiliar(ref, blurred, np.zeros(50, int)).mean() >= 0.9


def test_too_few_images_for_a_class_is_refused() -> None:
    with pytest.raises(ValueError, match="too few"):
        fit_reference(np.zeros((10, len(FEATURE_NAMES))), np.zeros(10, int), 1)


def test_reference_round_trips_through_the_metadata_and_bad_ones_are_refused(tmp_path) -> None:
    path = make_classifier(tmp_path / "m.onnx", num_classes=2, size=48)
    spec, ref = _reference(np.random.default_rng(3))
    write_reference(path, ref)
    loaded = ModelSession.load(path).spec
    assert loaded.training_reference == ref
    data = json.loads(loaded.to_json())
    data["training_reference"]["classes"] = data["training_reference"]["classes"][:1]
    with pytest.raises(ModelContractError, match="1 classes, the model 2"):
        spec_from_json(json.dumps(data))
    data["training_reference"]["classes"] = [{"mean": [1.0, 2.0], "inv_cov": [[1.0]], "limit": 3.0}] * 2
    with pytest.raises(ModelContractError, match="malformed"):
        spec_from_json(json.dumps(data))


def test_a_prediction_on_an_unlike_image_carries_the_note(tmp_path) -> None:
    rng = np.random.default_rng(4)
    path = make_classifier(tmp_path / "m.onnx", num_classes=2, size=48)
    session = ModelSession.load(path)
    images = [smear(rng) for _ in range(300)]
    called = np.array([p.top_index for p in session.predict_batch(images)])
    if len(set(called)) < 2:  # the random tiny model may call one class only: give the other class images too
        called[:150] = 1 - called[0]
    ref = fit_reference(features_of_images(images, session.spec.input), called, 2)
    write_reference(path, ref)
    session = ModelSession.load(path)
    fresh = session.predict_batch([smear(rng) for _ in range(40)])
    assert np.mean([UNFAMILIAR_NOTE in p.notes for p in fresh]) <= 0.1
    warm = session.predict_batch([smear(rng, tint=(1.2, 1.0, 0.8)) for _ in range(20)])
    assert all(UNFAMILIAR_NOTE in p.notes for p in warm)
    plain = ModelSession.load(make_classifier(tmp_path / "plain.onnx", num_classes=2, size=48))
    assert plain.spec.training_reference is None  # no reference: no check, no note
    assert not any(UNFAMILIAR_NOTE in p.notes for p in plain.predict_batch([smear(rng, tint=(1.2, 1.0, 0.8))]))


def test_evaluate_counts_the_images_unlike_the_training_images(tmp_path, capsys) -> None:
    from hemalens.cli import main

    rng = np.random.default_rng(5)
    path = make_classifier(tmp_path / "m.onnx", num_classes=2, size=48, labels=["Cell A", "Cell B"])
    spec = ModelSession.load(path).spec
    images = [smear(rng) for _ in range(300)]
    write_reference(path, fit_reference(features_of_images(images, spec.input), np.arange(300) % 2, 2))
    for cls, tint in (("cell_a", (1.0, 1.0, 1.0)), ("cell_b", (1.2, 1.0, 0.8))):
        (tmp_path / "lab" / cls).mkdir(parents=True)
        for i in range(10):
            cv2.imwrite(str(tmp_path / "lab" / cls / f"{i}.png"), smear(rng, tint=tint)[:, :, ::-1])
    out = tmp_path / "figures.json"
    assert main(["evaluate", str(tmp_path / "lab"), "--model", str(path), "--json", str(out), "--quiet"]) == 0
    flags = {Path(r["path"]).parent.name: [] for r in json.loads(out.read_text())["images"]}
    for r in json.loads(out.read_text())["images"]:
        flags[Path(r["path"]).parent.name].append(r["unlike_training"])
    assert all(flags["cell_b"]) and sum(flags["cell_a"]) <= 1
    printed = capsys.readouterr().out
    assert f"unlike the training images: {sum(flags['cell_a']) + 10} of 20" in printed
    assert "may not hold" in printed


def test_export_cli_stores_a_reference_from_a_labelled_folder(tmp_path, capsys) -> None:
    from export.cli import main

    rng = np.random.default_rng(6)
    for cls in ("blast", "lymphocyte"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i in range(30):
            cv2.imwrite(str(tmp_path / "train" / cls / f"{i}.png"), smear(rng)[:, :, ::-1])
    plain = make_classifier(tmp_path / "plain.onnx", num_classes=2, with_gradcam=False, with_metadata=False)
    out = tmp_path / "ready.onnx"
    assert main(["augment", str(plain), str(out), "--labels", "Blast,Lymphocyte",
                 "--reference-folder", str(tmp_path / "train")]) == 0
    assert "training reference: 60 images" in capsys.readouterr().out
    session = ModelSession.load(out)
    assert session.spec.training_reference is not None and len(session.spec.training_reference.classes) == 2
    assert all(UNFAMILIAR_NOTE in p.notes for p in session.predict_batch([smear(rng, tint=(1.2, 1.0, 0.8))] * 3))
    (tmp_path / "train" / "monocyte").mkdir()  # a folder that is no class of the model: a clear refusal
    cv2.imwrite(str(tmp_path / "train" / "monocyte" / "0.png"), smear(rng))
    assert main(["augment", str(plain), str(tmp_path / "again.onnx"), "--labels", "Blast,Lymphocyte",
                 "--reference-folder", str(tmp_path / "train")]) == 2
    assert "match no class" in capsys.readouterr().err


def test_card_summary_splits_accuracy_by_the_flag() -> None:
    from training.report import unlike_training_summary

    rows = [{"true": "A", "predicted": "A", "unlike_training": False}] * 8 + [
        {"true": "A", "predicted": "B", "unlike_training": True},
        {"true": "B", "predicted": "B", "unlike_training": True},
    ]
    assert unlike_training_summary(rows) == {"images": 10, "flagged": 2, "share": 0.2, "accuracy_flagged": 0.5,
                                             "accuracy_rest": 1.0}
    assert unlike_training_summary(rows[:8])["accuracy_flagged"] is None
