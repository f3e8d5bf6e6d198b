"""The Qt-free review rules behind the window: the call, the Unidentified bin, the differential."""

from __future__ import annotations

import numpy as np
import pytest

from gui.calls import UNIDENTIFIED_ID, ai_call, class_name, differential, format_percent
from gui.review_bridge import case_folder

IDS = ("lym", "mono", "neu")
LABELS = ("Lymphocyte", "Monocyte", "Neutrophil")


def test_ai_call_is_top_class_or_unidentified_under_threshold() -> None:
    probs = np.array([0.2, 0.7, 0.1], dtype=np.float32)
    assert ai_call(probs, IDS, 0.6) == "mono"
    assert ai_call(probs, IDS, 0.75) == UNIDENTIFIED_ID
    assert ai_call(probs, IDS, 0.7) == "mono"  # at the threshold is not uncertain
    assert ai_call(None, IDS, 0.5) is None


def test_class_name_covers_unidentified_and_foreign_ids() -> None:
    assert class_name("neu", IDS, LABELS) == "Neutrophil"
    assert class_name(UNIDENTIFIED_ID, IDS, LABELS) == "Unidentified"
    assert class_name("blast", IDS, LABELS) == "blast"
    assert class_name(None, IDS, LABELS) == ""


def test_differential_counts_before_and_after_review() -> None:
    entries = [
        ("lym", None, False, False),
        ("lym", "mono", True, False),  # reassigned and flagged
        (UNIDENTIFIED_ID, "neu", False, False),  # uncertain, resolved by the reviewer
        ("neu", "neu", False, False),  # confirmed
        (None, None, False, True),  # failed image: not in the percentages
    ]
    d = differential(entries, IDS, LABELS)
    rows = {r.class_id: r for r in d.rows}
    assert (d.classified, d.reviewed, d.flagged, d.failed) == (4, 3, 1, 1)
    assert (rows["lym"].ai_count, rows["lym"].reviewed_count) == (2, 1)
    assert (rows["mono"].ai_count, rows["mono"].reviewed_count) == (0, 1)
    assert (rows["neu"].ai_count, rows["neu"].reviewed_count) == (1, 2)
    assert (rows[UNIDENTIFIED_ID].ai_count, rows[UNIDENTIFIED_ID].reviewed_count) == (1, 0)
    assert sum(r.ai_percent for r in d.rows) == pytest.approx(100.0)
    assert sum(r.reviewed_percent for r in d.rows) == pytest.approx(100.0)
    assert rows["neu"].reviewed_percent == pytest.approx(50.0)


def test_differential_keeps_classes_from_other_models() -> None:
    d = differential([("lym", "blast", False, False)], IDS, LABELS)
    assert [r.class_id for r in d.rows][-1] == "blast"
    assert d.rows[-1].reviewed_count == 1


def test_format_percent_never_hides_small_values() -> None:
    assert format_percent(0.0) == "0.0 %"
    assert format_percent(0.0001) == "<0.1 %"
    assert format_percent(0.99999) == ">99.9 %"
    assert format_percent(1.0) == "100.0 %"
    assert format_percent(0.4567) == "45.7 %"


def test_case_folder_is_the_folder_or_the_common_parent(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    f1, f2 = tmp_path / "a" / "x.png", tmp_path / "b" / "y.png"
    f1.write_bytes(b"")
    f2.write_bytes(b"")
    assert case_folder([tmp_path / "a"]) == (tmp_path / "a").resolve()
    assert case_folder([f1]) == (tmp_path / "a").resolve()
    assert case_folder([f1, f2]) == tmp_path.resolve()
