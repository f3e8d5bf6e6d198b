"""Unit tests for the evaluation figures and the shared block split (known inputs, hand-checked)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.metrics import (
    MetricsError,
    confusion_matrix,
    evaluate_predictions,
    expected_calibration_error,
    threshold_figures,
)
from inference.splits import SplitError, block_bounds, labelled_folder, numeric_key, split_files, split_fingerprint


def test_confusion_matrix_counts_rows_true_columns_predicted() -> None:
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_confusion_matrix_rejects_out_of_range_and_mismatched() -> None:
    with pytest.raises(MetricsError):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(MetricsError):
        confusion_matrix([0, 1], [0], 3)


def test_ece_zero_when_confidence_matches_accuracy() -> None:
    # 4 predictions at 0.75 confidence, 3 right: accuracy 0.75 in that bin -> ECE 0
    probs = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(probs, [0, 0, 0, 1]) == pytest.approx(0.0)


def test_ece_known_value_two_bins() -> None:
    # bin (0.9,1]: conf 0.95 x2, both right -> |1-0.95|=0.05, weight 0.5
    # bin (0.6,0.667]: conf 0.6 x2 (bins=15: 0.6 in (0.5333,0.6]), one right -> |0.5-0.6|=0.1, weight 0.5
    probs = np.array([[0.95, 0.05], [0.05, 0.95], [0.6, 0.4], [0.6, 0.4]])
    ece = expected_calibration_error(probs, [0, 1, 0, 1])
    assert ece == pytest.approx(0.5 * 0.05 + 0.5 * 0.1)


def test_ece_overconfident_wrong_is_large() -> None:
    probs = np.array([[0.99, 0.01]] * 10)
    assert expected_calibration_error(probs, [1] * 10) == pytest.approx(0.99)


def test_evaluate_predictions_per_class_and_balanced_accuracy() -> None:
    probs = np.eye(3)[[0, 1, 1, 2, 0, 2]] * 0.8 + 0.2 / 3
    ev = evaluate_predictions(probs, [0, 0, 1, 2, 2, 2], ["a", "b", "c"])
    assert ev.accuracy == pytest.approx(4 / 6)
    assert ev.balanced_accuracy == pytest.approx((0.5 + 1.0 + 2 / 3) / 3)
    a, b, c = ev.per_class
    assert (a.precision, a.recall, a.support) == (pytest.approx(0.5), pytest.approx(0.5), 2)
    assert b.precision == pytest.approx(0.5) and b.recall == pytest.approx(1.0)
    assert c.precision == pytest.approx(1.0) and c.f1 == pytest.approx(0.8)
    doc = ev.to_dict()
    assert doc["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert set(doc["per_class"]) == {"a", "b", "c"}


def test_balanced_accuracy_ignores_absent_classes() -> None:
    probs = np.eye(3)[[0, 0, 1]]
    ev = evaluate_predictions(probs, [0, 0, 1], ["a", "b", "c"])
    assert ev.balanced_accuracy == pytest.approx(1.0)


def test_numeric_key_uses_last_number_not_text_order() -> None:
    names = ["WBC-Benign-010.jpg", "WBC-Benign-2.jpg", "WBC-Benign-001.jpg"]
    assert sorted(names, key=numeric_key) == ["WBC-Benign-001.jpg", "WBC-Benign-2.jpg", "WBC-Benign-010.jpg"]
    assert numeric_key("IG_5.jpg") < numeric_key("MMY_40.jpg") < numeric_key("nodigits.jpg")


def test_block_split_is_contiguous_disjoint_and_complete() -> None:
    files = [f"C_{i}.jpg" for i in range(100, 0, -1)]  # given in reverse order
    train, val, test = (split_files(files, s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (70, 15, 15)
    assert [numeric_key(p)[0] for p in test] == list(range(86, 101))
    assert [numeric_key(p)[0] for p in train] == list(range(1, 71))
    assert {p.name for p in train + val + test} == set(files)
    assert split_files(files, "all")[0].name == "C_1.jpg"


def test_block_split_small_class_gets_every_split_and_bad_args_raise() -> None:
    assert block_bounds(3) == (1, 2)
    with pytest.raises(SplitError):
        split_files(["a1.jpg"], "holdout")
    with pytest.raises(SplitError):
        block_bounds(10, (0.5, 0.5, 0.5))


def test_labelled_folder_and_fingerprint(tmp_path: Path) -> None:
    for cls in ("b", "a"):
        (tmp_path / cls).mkdir()
        for i in range(20):
            (tmp_path / cls / f"img_{i}.png").write_bytes(b"x")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    folder = labelled_folder(tmp_path, "test")
    assert list(folder) == ["a", "b"] and [p.name for p in folder["a"]] == ["img_17.png", "img_18.png", "img_19.png"]
    fp = split_fingerprint(folder)
    (tmp_path / "b" / "img_99.png").write_bytes(b"x")
    assert split_fingerprint(labelled_folder(tmp_path, "test")) != fp
    with pytest.raises(SplitError):
        labelled_folder(tmp_path / "missing")


def test_threshold_figures_count_what_the_threshold_catches_and_lets_through() -> None:
    top = [0.95, 0.59, 0.60, 0.45, 0.99, 0.55]
    right = [True, False, False, True, False, True]
    fig = threshold_figures(top, right, 0.6)
    # 0.59, 0.45, 0.55 are under 60 %; 0.60 itself is not (the app's rule).
    assert (fig.uncertain, fig.kept, fig.wrong_uncertain, fig.wrong_kept) == (3, 3, 1, 2)
    assert fig.kept_accuracy == pytest.approx(1 / 3)
    assert "3 of 6 calls (50.0%) would be Unidentified, catching 1 of 3 wrong calls" in fig.line()
    everything = threshold_figures(top, right, 1.0)
    assert everything.kept == 0 and everything.to_dict()["kept_accuracy"] is None
