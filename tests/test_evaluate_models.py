"""The shipped default models, checked on a small slice of their held-out test block (real images).

Each model's card figures live in its metadata (provenance.metrics); here a subset of the same test
block (every 4th image per class) is run through the runtime and must land near the card's
accuracy. The images come from ../shared/data next to the repository; without it there is nothing
real to check against, and the test says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.cli_evaluate import match_folders
from inference.familiarity import UNFAMILIAR_NOTE
from inference.images import load_image
from inference.metrics import evaluate_predictions
from inference.registry import bundled_models_dir
from inference.session import ModelSession
from inference.splits import labelled_folder, split_fingerprint

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MODELS = {"hemalens-all4": "all4", "hemalens-pbc": "pbc", "hemalens-aml": "aml"}
STRIDE = 4


@pytest.mark.parametrize("model_id", sorted(MODELS))
def test_shipped_model_card_and_contract(model_id: str) -> None:
    path = bundled_models_dir() / f"{model_id}.onnx"
    assert path.is_file(), f"{path} is missing"
    assert path.stat().st_size < 20e6
    session = ModelSession.load(path)
    prov = session.spec.provenance
    metrics = prov.metrics
    for key in ("accuracy", "balanced_accuracy", "ece", "per_class", "confusion_matrix", "robustness",
                "latency_ms_2_threads", "test_split_fingerprint"):
        assert key in metrics, key
    assert prov.citation and prov.license and "not a diagnosis" in prov.intended_use
    assert "patient" in prov.limitations and "block" in prov.split
    assert session.cam_method == "grad-cam"
    card = path.with_suffix(".md").read_text()
    assert f"{metrics['accuracy']:.4f}" in card and "not a diagnosis" in card
    assert (path.parent / f"{model_id}-gradcam.jpg").is_file()
    # The card and the file the app reads must state the same limits (both are written from one text).
    assert f"- Limits: {prov.limitations}\n" in card
    assert f"| version | {session.spec.version} |\n" in card  # the card says which file it describes


@pytest.mark.parametrize("model_id", sorted(MODELS))
def test_shipped_model_reproduces_card_on_test_subset(model_id: str) -> None:
    data = DATA / MODELS[model_id]
    if not data.is_dir():
        pytest.skip(f"real data not present at {data} (see shared/data/README.md)")
    session = ModelSession.load(bundled_models_dir() / f"{model_id}.onnx")
    folder = labelled_folder(data, "test")
    metrics = session.spec.provenance.metrics
    assert split_fingerprint(folder) == metrics["test_split_fingerprint"], "test block differs from the card's"
    index = match_folders(list(folder), [c.id for c in session.spec.classes], session.spec.labels, {})
    images, truth = [], []
    for cls, paths in folder.items():
        for p in paths[::STRIDE]:
            images.append(load_image(p).rgb)
            truth.append(index[cls])
    preds = [p for i in range(0, len(images), 32) for p in session.predict_batch(images[i : i + 32])]
    probs = np.stack([p.probabilities for p in preds])
    ev = evaluate_predictions(probs, truth, session.spec.labels)
    # The same lab's unseen images are seldom flagged as unlike the training images; a warm camera
    # white balance (R x1.15, B x0.85) mostly is.
    assert session.spec.training_reference is not None
    assert np.mean([UNFAMILIAR_NOTE in p.notes for p in preds]) <= 0.1  # all4: 4 % (val 0.5 %), others < 1 %
    warm = [np.clip(im * np.array([1.15, 1.0, 0.85]), 0, 255).astype(np.uint8) for im in images[::2]]
    assert np.mean([UNFAMILIAR_NOTE in p.notes for p in session.predict_batch(warm)]) >= 0.5
    # A quarter of the test block: allow for sampling noise, but not for a broken model or preprocessing.
    tolerance = max(0.02, 3 * np.sqrt(metrics["accuracy"] * (1 - metrics["accuracy"]) / len(truth)))
    assert ev.accuracy >= metrics["accuracy"] - tolerance, (ev.accuracy, metrics["accuracy"])
    assert ev.balanced_accuracy >= metrics["balanced_accuracy"] - 2 * tolerance


@pytest.mark.parametrize(("model_id", "data_set", "folder", "label"), [
    ("hemalens-pbc", "aml", "seg_neutrophil", "Neutrophil"),
    ("hemalens-aml", "pbc", "neutrophil", "Segmented neutrophil"),
])
def test_single_cell_model_on_another_labs_neutrophils_reproduces_its_card(model_id, data_set, folder, label) -> None:
    """The card's real other-lab figure (the other data set's neutrophils), on every 4th image."""
    session = ModelSession.load(bundled_models_dir() / f"{model_id}.onnx")
    other = session.spec.provenance.metrics["other_lab"]
    card = (bundled_models_dir() / f"{model_id}.md").read_text()
    assert "## Real images from another lab" in card and f"{other['accuracy']:.4f}" in card
    assert other["command"].startswith(f"hemalens evaluate ../shared/data/{data_set} ")
    if not (DATA / data_set / folder).is_dir():
        pytest.skip(f"real data not present at {DATA / data_set} (see shared/data/README.md)")
    split = other.get("split", "all")  # test only where the model's start network saw the rest
    assert other["command"].endswith(f"--split {split}")
    paths = labelled_folder(DATA / data_set, split)[folder][::STRIDE]
    preds = [p for i in range(0, len(paths), 32)
             for p in session.predict_batch([load_image(x).rgb for x in paths[i:i + 32]])]
    accuracy = float(np.mean([p.top_label == label for p in preds]))
    tolerance = max(0.02, 3 * np.sqrt(other["accuracy"] * (1 - other["accuracy"]) / len(paths)))
    assert abs(accuracy - other["accuracy"]) <= tolerance, (accuracy, other["accuracy"])
    assert np.mean([UNFAMILIAR_NOTE in p.notes for p in preds]) >= 0.9  # the app warns: another lab's images


def test_blood_cell_limits_quote_the_measured_magnification_and_white_balance_figures() -> None:
    """The limits are written by hand; they must say what the shipped file measured, not an older model's figures."""
    prov = ModelSession.load(bundled_models_dir() / "hemalens-pbc.onnx").spec.provenance
    rob = prov.metrics["robustness"]

    def acc(row: str) -> str:
        return f"{rob[row]['accuracy']:.2f}"

    assert (f"as large as in training: {acc('magnification: cell 0.6x as large')} and "
            f"{acc('magnification: cell 1.6x as large')}") in prov.limitations
    assert f"warm white balance: {acc('camera: warm white balance (R x1.15, B x0.85)')}" in prov.limitations
    assert f"hue +20 degrees: {acc('hue +20 deg')}" in prov.limitations


def test_other_lab_card_section_says_which_classes_it_checks() -> None:
    from training.report import other_lab_section

    assert other_lab_section(None) == ""
    text = other_lab_section({"source": "Munich neutrophils.", "n": 10, "accuracy": 0.9, "ece": 0.05, "flagged": 7,
                              "classes": ["Neutrophil"], "calls": {"Neutrophil": 9, "Monocyte": 1, "Basophil": 0},
                              "command": "hemalens evaluate X"})
    assert "accuracy **0.9000**" in text and "flagged unlike training: 7 (70.0%)" in text
    assert "Neutrophil 9, Monocyte 1." in text and "Basophil" not in text and "Neutrophil only" in text
