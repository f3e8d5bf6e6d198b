"""The Qt-free review rules behind the window: the call, the Unidentified bin, the differential."""

from __future__ import annotations

import numpy as np
import pytest

from gui.calls import (
    UNIDENTIFIED_ID,
    DifferentialCounts,
    ai_call,
    class_name,
    format_percent,
    remember_class_names,
)
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
    d = DifferentialCounts(entries).result(IDS, LABELS)
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
    d = DifferentialCounts([("lym", "blast", False, False)]).result(IDS, LABELS)
    assert [r.class_id for r in d.rows][-1] == "blast"
    assert d.rows[-1].reviewed_count == 1


def test_classes_from_other_installed_models_keep_their_names() -> None:
    remember_class_names({"ig": "Immature granulocyte", "neu": "not this one"})
    try:
        assert class_name("ig", IDS, LABELS) == "Immature granulocyte"  # was shown as "ig"
        assert class_name("neu", IDS, LABELS) == "Neutrophil"  # the model in use names its own classes
        assert class_name("blast", IDS, LABELS) == "blast"  # known to no model: the id, never hidden
        row = DifferentialCounts([("lym", "ig", False, False)]).result(IDS, LABELS).rows[-1]
        assert (row.class_id, row.name) == ("ig", "Immature granulocyte")
    finally:
        remember_class_names({})


def test_running_counts_match_a_fresh_count_after_each_change() -> None:
    """The window moves one image's entry at a time (remove the old, add the new); the result must be
    what counting the current entries from scratch gives, and a class nobody holds any more disappears."""
    entries = [("lym", None, False, False), ("neu", None, False, False), (None, None, False, False)]
    running = DifferentialCounts(entries)
    changes = [
        (0, ("lym", "blast", True, False)),  # reassigned to a class from another model, flagged
        (2, (None, None, False, True)),  # failed
        (1, (UNIDENTIFIED_ID, None, False, False)),  # re-run under a higher threshold
        (0, ("lym", None, False, False)),  # decision undone: "blast" leaves the table
    ]
    for row, new in changes:
        running.remove(entries[row])
        running.add(new)
        entries[row] = new
        assert running.result(IDS, LABELS) == DifferentialCounts(entries).result(IDS, LABELS)
    assert "blast" not in [r.class_id for r in running.result(IDS, LABELS).rows]


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
