"""Undo and redo of review decisions made in this window.

Why: with "advance after decision" a mis-typed key files the wrong class and moves on. Undo puts
back what the image had before, as a new decision: the review store is append-only, so the audit
trail keeps both the slip and its correction. The history lives only as long as the open folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HISTORY_LIMIT = 500


@dataclass(frozen=True)
class ReviewState:
    """What a technician has said about one image: reviewed class, flag and comment."""

    reviewed_id: str | None
    flagged: bool
    comment: str


@dataclass(frozen=True)
class DecisionChange:
    """One recorded decision: the image and its state before and after."""

    path: Path
    image_hash: str
    before: ReviewState
    after: ReviewState


class DecisionHistory:
    """A linear undo/redo list; the caller moves the cursor only after the store accepted the write."""

    def __init__(self, limit: int = HISTORY_LIMIT) -> None:
        self._changes: list[DecisionChange] = []
        self._done = 0  # changes[:done] are in effect; changes[done:] were undone and can be redone
        self._limit = limit

    def record(self, change: DecisionChange) -> None:
        """A new decision: it ends whatever could have been redone."""
        if change.before == change.after:
            return
        del self._changes[self._done :]
        self._changes.append(change)
        if len(self._changes) > self._limit:
            del self._changes[0]
        self._done = len(self._changes)

    def to_undo(self) -> DecisionChange | None:
        return self._changes[self._done - 1] if self._done else None

    def to_redo(self) -> DecisionChange | None:
        return self._changes[self._done] if self._done < len(self._changes) else None

    def undone(self) -> None:
        """The change from :meth:`to_undo` has been reverted in the store."""
        if self._done:
            self._done -= 1

    def redone(self) -> None:
        """The change from :meth:`to_redo` has been recorded again."""
        if self._done < len(self._changes):
            self._done += 1

    def forget(self, change: DecisionChange) -> None:
        """Drop a change that can no longer be applied (its image is gone) and everything after it."""
        if change in self._changes:
            index = self._changes.index(change)
            del self._changes[index:]
            self._done = min(self._done, index)

    def clear(self) -> None:
        self._changes.clear()
        self._done = 0
