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


DecisionStep = tuple[DecisionChange, ...]


class DecisionHistory:
    """A linear undo/redo list of steps (one key press each: one image, or a group decided at once); the
    caller moves the cursor only after the store accepted the write."""

    def __init__(self, limit: int = HISTORY_LIMIT) -> None:
        self._steps: list[DecisionStep] = []
        self._done = 0  # steps[:done] are in effect; steps[done:] were undone and can be redone
        self._limit = limit

    def record(self, *changes: DecisionChange) -> None:
        """A new step (the changes that changed something): it ends whatever could have been redone."""
        step = tuple(c for c in changes if c.before != c.after)
        if not step:
            return
        del self._steps[self._done :]
        self._steps.append(step)
        if len(self._steps) > self._limit:
            del self._steps[0]
        self._done = len(self._steps)

    def to_undo(self) -> DecisionStep | None:
        return self._steps[self._done - 1] if self._done else None

    def to_redo(self) -> DecisionStep | None:
        return self._steps[self._done] if self._done < len(self._steps) else None

    def undone(self) -> None:
        """The step from :meth:`to_undo` has been reverted in the store."""
        if self._done:
            self._done -= 1

    def redone(self) -> None:
        """The step from :meth:`to_redo` has been recorded again."""
        if self._done < len(self._steps):
            self._done += 1

    def forget(self, step: DecisionStep) -> None:
        """Drop a step that can no longer be applied (an image is gone) and everything after it."""
        if step in self._steps:
            index = self._steps.index(step)
            del self._steps[index:]
            self._done = min(self._done, index)

    def clear(self) -> None:
        self._steps.clear()
        self._done = 0
