"""`hemalens evaluate` end to end on a generated labelled folder and a tiny real ONNX model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hemalens.cli import main
from inference.cli_evaluate import EvaluateError, match_folders, parse_mapping, resolve_split
from inference.images import load_image
from inference.session import ModelSession
from inference.splits import labelled_folder, split_fingerprint
from tests.model_factory import make_classifier

LABELS = ["Blast cell", "Neutrophil"]


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    return make_classifier(tmp_path / "tiny.onnx", num_classes=2, labels=LABELS, seed=3)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "lab"
    for cls in ("blast_cell", "Neutro"):
        (root / cls).mkdir(parents=True)
        for i in range(10):
            img = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
            cv2.imwrite(str(root / cls / f"cell_{i:03d}.png"), img)
    (root / "Neutro" / "broken_999.png").write_bytes(b"not a png")
    return root


def test_evaluate_matches_independent_predictions(model: Path, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    rc = main(["evaluate", str(folder), "--model", str(model), "--map", "Neutro=neutrophil", "--json", str(out),
               "--quiet"])
    assert rc == 0
    doc = json.loads(out.read_text())
    # Recompute the expected confusion matrix directly with the runtime, image by image.
    session = ModelSession.load(model)
    expected = np.zeros((2, 2), dtype=int)
    for truth, cls in enumerate(("blast_cell", "Neutro")):
        for p in sorted((folder / cls).glob("cell_*.png")):
            expected[truth, session.predict(load_image(p).rgb).top_index] += 1
    assert doc["confusion_matrix"] == expected.tolist()
    assert doc["n"] == 20 and doc["split"] == "all"
    assert doc["accuracy"] == pytest.approx(np.trace(expected) / 20, abs=1e-5)
    assert len(doc["unreadable"]) == 1 and "broken_999.png" in doc["unreadable"][0]
    assert 0.0 <= doc["ece"] <= 1.0
    # The app's uncertainty threshold on the same calls (default 60 %).
    tops = [r["probability"] for r in doc["images"]]
    assert doc["threshold"]["uncertain_below"] == 0.6
    assert doc["threshold"]["uncertain"] == sum(p < 0.6 - 1e-6 for p in tops)
    assert doc["threshold"]["uncertain"] + doc["threshold"]["kept"] == 20
    assert doc["threshold"]["wrong_uncertain"] + doc["threshold"]["wrong_kept"] == 20 - np.trace(expected)


def test_evaluate_unknown_folder_is_a_clear_error(model: Path, folder: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", str(folder), "--model", str(model), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Neutro" in err and "(perhaps: --map Neutro=Neutrophil)" in err  # a hint; the mapping stays explicit
    assert main(["evaluate", str(folder), "--model", str(model), "--quiet", "--map", "Neutro=Platelet"]) == 2
    assert main(["evaluate", str(folder / "missing"), "--model", str(model), "--quiet"]) == 2


def test_skip_unknown_evaluates_the_rest(model: Path, folder: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", str(folder), "--model", str(model), "--quiet", "--skip-unknown"]) == 0
    out = capsys.readouterr().out
    assert "images: 10" in out
    # No Neutrophil images here: its recall is not measured, not a 0.0000 that reads as a class the model fails.
    neutrophil = next(line for line in out.splitlines() if line.startswith("Neutrophil")).split()
    assert neutrophil[2:] == ["-", "-", "0"] and neutrophil[1] in ("-", "0.0000")
    assert "- : not measured (no images of that class here, or never called)" in out


def test_split_test_uses_last_block(model: Path, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    rc = main(["evaluate", str(folder), "--model", str(model), "--map", "Neutro=Neutrophil", "--split", "test",
               "--json", str(out), "--quiet"])
    assert rc == 0
    doc = json.loads(out.read_text())
    names = sorted(Path(r["path"]).name for r in doc["images"])
    # blast_cell: 10 files -> last 2 (cell_008, cell_009); Neutro: 11 -> last 2 by number (cell_009 is 9, broken 999)
    assert names.count("cell_008.png") == 1 and names.count("cell_009.png") == 2
    assert len(doc["unreadable"]) == 1


def test_mapping_and_matching_rules() -> None:
    assert parse_mapping(["A=b", " C = d "]) == {"A": "b", "C": "d"}
    with pytest.raises(EvaluateError):
        parse_mapping(["nolabel"])
    got = match_folders(["Early_Pre-B", "benign"], ["early_pre_b", "benign"], ["Early Pre-B", "Benign"], {})
    assert got == {"Early_Pre-B": 0, "benign": 1}
    with pytest.raises(EvaluateError):
        match_folders(["x"], ["a"], ["A"], {"y": "A"})
    labels = ["Basophil", "Immature granulocyte", "Lymphocyte", "Neutrophil"]
    with pytest.raises(EvaluateError) as caught:
        match_folders(["Neutrophils", "lympho", "IG cells", "xyz"], ["b", "ig", "l", "n"], labels, {})
    assert '--map Neutrophils=Neutrophil --map lympho=Lymphocyte)' in str(caught.value)
    assert "IG cells=" not in str(caught.value) and "xyz=" not in str(caught.value)  # no guess is better than a bad one


def test_auto_split_recognises_training_folder(folder: Path) -> None:
    fp = split_fingerprint(labelled_folder(folder, "test"))
    assert resolve_split("auto", folder, {"test_split_fingerprint": fp})[0] == "test"
    assert resolve_split("auto", folder, {})[0] == "all"
    assert resolve_split("all", folder, {"test_split_fingerprint": fp})[0] == "all"


def test_run_reports_unwritable_json(model: Path, folder: Path, tmp_path: Path, monkeypatch,
                                     capsys: pytest.CaptureFixture) -> None:
    import errno
    import os

    from inference import cli_evaluate

    parser = argparse.ArgumentParser()
    cli_evaluate.add_arguments(parser)
    (tmp_path / "a file").write_text("")
    args = parser.parse_args([str(folder), "--model", str(model), "--skip-unknown", "--quiet",
                              "--json", str(tmp_path / "a file" / "x.json")])  # under a file: no folder can be made
    assert cli_evaluate.run(args) == 2
    assert "cannot write" in capsys.readouterr().err

    earlier = tmp_path / "figures.json"  # a full disk leaves the figures written before whole, not half new ones
    earlier.write_text('{"accuracy": 0.9}')

    def full_disk(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    args = parser.parse_args([str(folder), "--model", str(model), "--skip-unknown", "--quiet", "--json", str(earlier)])
    assert cli_evaluate.run(args) == 2
    assert earlier.read_text() == '{"accuracy": 0.9}' and len(list(tmp_path.glob(".figures.json.*"))) == 0
    assert "No space left on device" in capsys.readouterr().err
