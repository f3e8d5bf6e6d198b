"""Qt-free rules for turning probabilities into a call and a differential count.

Kept apart from the widgets so the "uncertain goes to Unidentified" rule and the
before/after-review differential are one small, testable piece of logic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

UNIDENTIFIED_ID = "unidentified"
UNIDENTIFIED_NAME = "Unidentified"
DEFAULT_THRESHOLD = 0.60


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


def is_uncertain(top_probability: float, threshold: float) -> bool:
    """Under the threshold; float32 probabilities equal to it (70 % vs 0.7) are not uncertain."""
    return top_probability < threshold - 1e-6


def class_name(class_id: str | None, class_ids: Sequence[str], labels: Sequence[str]) -> str:
    """Display name of a class id (including the Unidentified bin); empty for None."""
    if class_id is None:
        return ""
    if class_id == UNIDENTIFIED_ID:
        return UNIDENTIFIED_NAME
    try:
        return labels[list(class_ids).index(class_id)]
    except ValueError:
        return class_id  # a class from another model, recorded earlier: show its id rather than hide it


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


def differential(
    entries: Iterable[tuple[str | None, str | None, bool, bool]],
    class_ids: Sequence[str],
    labels: Sequence[str],
) -> Differential:
    """Count per class before review (AI call) and after review (reviewed class, else the AI call).

    ``entries`` yields ``(ai_call_id, reviewed_id, flagged, failed)`` per image. Percentages are of
    the classified images, so the column sums to 100 % whatever is still queued.
    """
    order = [*class_ids, UNIDENTIFIED_ID]
    names = [*labels, UNIDENTIFIED_NAME]
    ai: dict[str, int] = dict.fromkeys(order, 0)
    after: dict[str, int] = dict.fromkeys(order, 0)
    classified = reviewed = flagged = failed = 0
    for ai_id, reviewed_id, is_flagged, is_failed in entries:
        failed += int(is_failed)
        flagged += int(is_flagged)
        if ai_id is None:
            continue
        classified += 1
        ai[ai_id] = ai.get(ai_id, 0) + 1
        final = reviewed_id if reviewed_id is not None else ai_id
        reviewed += int(reviewed_id is not None)
        if final not in after:
            order.append(final)
            names.append(final)
            ai.setdefault(final, 0)
        after[final] = after.get(final, 0) + 1
    denom = max(classified, 1)
    rows = tuple(
        DifferentialRow(cid, name, ai[cid], 100.0 * ai[cid] / denom, after[cid], 100.0 * after[cid] / denom)
        for cid, name in zip(order, names, strict=False)
    )
    return Differential(rows=rows, classified=classified, reviewed=reviewed, flagged=flagged, failed=failed)


def format_percent(p: float) -> str:
    """Exact-enough percentage that never rounds a non-zero value down to a bare 0."""
    value = 100.0 * p
    if 0.0 < value < 0.05:
        return "<0.1 %"
    if 99.95 <= value < 100.0:
        return ">99.9 %"
    return f"{value:.1f} %"
