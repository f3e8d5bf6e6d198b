"""Qt-free rules for turning probabilities into a call and a differential count.

Kept apart from the widgets so the "uncertain goes to Unidentified" rule and the
before/after-review differential are one small, testable piece of logic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from inference.uncertainty import (  # noqa: F401 - re-exported: the window's modules take the rule from here
    DEFAULT_THRESHOLD,
    UNIDENTIFIED_ID,
    UNIDENTIFIED_NAME,
    is_uncertain,
)


def ai_call(probabilities: np.ndarray | None, class_ids: Sequence[str], threshold: float) -> str | None:
    """The model's call as a class id: the top class, or Unidentified when the top is under threshold.

    None when there is no prediction (not yet classified, or the image failed).
    """
    if probabilities is None or len(probabilities) == 0:
        return None
    top = int(np.argmax(probabilities))
    if is_uncertain(float(probabilities[top]), threshold):
        return UNIDENTIFIED_ID
    return class_ids[top]


_OTHER_MODELS_NAMES: dict[str, str] = {}  # class id -> name over the installed models (see remember_class_names)


def remember_class_names(names: dict[str, str]) -> None:
    """The installed models' class names, so a decision recorded under another model (before a model
    switch) reads "Immature granulocyte", not its id "ig"."""
    _OTHER_MODELS_NAMES.clear()
    _OTHER_MODELS_NAMES.update(names)


def known_class_names() -> dict[str, str]:
    """A copy of the installed models' class names (remember_class_names), e.g. for the report."""
    return dict(_OTHER_MODELS_NAMES)


def class_name(class_id: str | None, class_ids: Sequence[str], labels: Sequence[str]) -> str:
    """Display name of a class id (including the Unidentified bin); empty for None."""
    if class_id is None:
        return ""
    if class_id == UNIDENTIFIED_ID:
        return UNIDENTIFIED_NAME
    try:
        return labels[list(class_ids).index(class_id)]
    except ValueError:  # a class from another model, recorded earlier: its name there, else its id, never hidden
        return _OTHER_MODELS_NAMES.get(class_id, class_id)


@dataclass(frozen=True)
class DifferentialRow:
    """One line of the differential: a class, its count and share before and after review."""

    class_id: str
    name: str
    ai_count: int
    ai_percent: float
    reviewed_count: int
    reviewed_percent: float


@dataclass(frozen=True)
class Differential:
    rows: tuple[DifferentialRow, ...]
    classified: int
    reviewed: int
    flagged: int
    failed: int


Entry = tuple[str | None, str | None, bool, bool]  # (ai_call_id, reviewed_id, flagged, failed) of one image


class DifferentialCounts:
    """Running per-class counts behind the differential, kept up to date one image at a time.

    The window adds and removes single images' entries as results and decisions arrive, so a result
    bundle costs O(bundle) and showing the differential costs O(classes), whatever the number of rows.
    """

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self.ai: dict[str, int] = {}
        self.after: dict[str, int] = {}  # reviewed class if reviewed, else the AI call; insertion order kept
        self.classified = self.reviewed = self.flagged = self.failed = 0
        for entry in entries:
            self.add(entry)

    def add(self, entry: Entry, sign: int = 1) -> None:
        ai_id, reviewed_id, is_flagged, is_failed = entry
        self.failed += sign * int(is_failed)
        self.flagged += sign * int(is_flagged)
        if ai_id is None:
            return
        self.classified += sign
        self.reviewed += sign * int(reviewed_id is not None)
        final = reviewed_id if reviewed_id is not None else ai_id
        for counts, key in ((self.ai, ai_id), (self.after, final)):
            counts[key] = counts.get(key, 0) + sign
            if counts[key] == 0:
                del counts[key]  # a class from another model leaves the table when nobody holds it any more

    def remove(self, entry: Entry) -> None:
        self.add(entry, -1)

    def result(self, class_ids: Sequence[str], labels: Sequence[str]) -> Differential:
        """Count per class before review (AI call) and after review (reviewed class, else the AI call):
        the model's classes, Unidentified, then other reviewed classes seen. Percentages are of the
        classified images, so each column sums to 100 % whatever is still queued."""
        order = [*class_ids, UNIDENTIFIED_ID]
        names = [*labels, UNIDENTIFIED_NAME]
        known = set(order)
        for cid in self.after:
            if cid not in known:
                order.append(cid)
                names.append(_OTHER_MODELS_NAMES.get(cid, cid))
                known.add(cid)
        denom = max(self.classified, 1)
        rows = tuple(
            DifferentialRow(
                cid,
                name,
                self.ai.get(cid, 0),
                100.0 * self.ai.get(cid, 0) / denom,
                self.after.get(cid, 0),
                100.0 * self.after.get(cid, 0) / denom,
            )
            for cid, name in zip(order, names, strict=False)
        )
        return Differential(
            rows=rows, classified=self.classified, reviewed=self.reviewed, flagged=self.flagged, failed=self.failed
        )


def format_percent(p: float) -> str:
    """Exact-enough percentage that never rounds a non-zero value down to a bare 0."""
    value = 100.0 * p
    if 0.0 < value < 0.05:
        return "<0.1 %"
    if 99.95 <= value < 100.0:
        return ">99.9 %"
    return f"{value:.1f} %"
