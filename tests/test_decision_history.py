"""The undo list behind Ctrl+Z: linear, bounded, and moved only when the caller says a write happened."""

from __future__ import annotations

from pathlib import Path

from gui.decision_history import DecisionChange, DecisionHistory, ReviewState

NONE = ReviewState(None, False, "")


def _change(name: str, to: str | None, flagged: bool = False) -> DecisionChange:
    return DecisionChange(Path(name), f"hash-{name}", NONE, ReviewState(to, flagged, ""))


def test_undo_then_redo_walks_the_same_changes_and_a_new_one_ends_the_redo_list() -> None:
    history = DecisionHistory()
    a, b, c = _change("a", "x"), _change("b", "y"), _change("c", "z")
    history.record(a)
    history.record(b)
    assert history.to_undo() == (b,) and history.to_redo() is None
    history.undone()
    assert history.to_undo() == (a,) and history.to_redo() == (b,)
    history.redone()
    assert history.to_undo() == (b,)
    history.undone()
    history.record(c)
    assert history.to_redo() is None and history.to_undo() == (c,)
    history.undone()
    assert history.to_undo() == (a,)  # b was dropped when c came


def test_a_refused_write_leaves_the_cursor_where_it_was() -> None:
    history = DecisionHistory()
    history.record(_change("a", "x"))
    assert history.to_undo() is not None  # the caller failed to write: it does not call undone()
    assert history.to_undo() == history.to_undo() and history.to_redo() is None


def test_no_change_is_not_recorded_and_the_list_is_bounded() -> None:
    history = DecisionHistory(limit=3)
    history.record(DecisionChange(Path("a"), "h", NONE, NONE))
    assert history.to_undo() is None
    for i in range(5):
        history.record(_change(str(i), "x"))
    undone = []
    while (change := history.to_undo()) is not None:
        undone.append(change[0].path.name)
        history.undone()
    assert undone == ["4", "3", "2"]


def test_forgetting_a_change_drops_it_and_everything_after_it() -> None:
    history = DecisionHistory()
    a, b, c = _change("a", "x"), _change("b", "y"), _change("c", "z")
    for change in (a, b, c):
        history.record(change)
    history.undone()
    history.forget((b,))
    assert history.to_undo() == (a,) and history.to_redo() is None
    history.clear()
    assert history.to_undo() is None


def test_a_group_decided_at_once_is_one_step_and_unchanged_images_are_left_out_of_it() -> None:
    history = DecisionHistory()
    a, b = _change("a", "x"), _change("b", "x")
    same = DecisionChange(Path("c"), "hash-c", NONE, NONE)
    history.record(a, same, b)
    assert history.to_undo() == (a, b)
    history.undone()
    assert history.to_undo() is None and history.to_redo() == (a, b)
    history.record(same)
    assert history.to_redo() == (a, b)  # a step that changed nothing ends nothing
