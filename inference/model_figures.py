"""Read the measured figures a model file carries (its provenance metrics) into the few facts people read first.

The model card dialog and `hemalens models` both open with the test accuracy and another lab's result; they
word them differently (HTML sentences, terminal lines) but must read the same keys with the same checks, so
the reading lives here once. A user model's metrics may hold anything: a figure is used only when it is a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The keys `held_out_result` reads; renderers list the model's other figures after it.
HELD_OUT_KEYS = frozenset({"accuracy", "balanced_accuracy", "ece", "evaluated_on", "n"})


def percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def number(value: Any) -> float | None:
    """The value as a float when it is a number (not a bool), else None."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class HeldOutResult:
    """Accuracy on the model's own test images, and where that was measured."""

    where: str
    accuracy: float
    balanced_accuracy: float | None
    ece: float | None


@dataclass(frozen=True)
class OtherLabResult:
    """Share of another lab's images called right; ``other_calls``: the wrong calls, class -> count."""

    accuracy: float
    n: int
    classes: tuple[str, ...]
    source: str
    other_calls: dict[str, int] = field(default_factory=dict)


def held_out_result(metrics: dict[str, Any]) -> HeldOutResult | None:
    accuracy = number(metrics.get("accuracy"))
    if accuracy is None:
        return None
    n = metrics.get("n")
    where = metrics.get("evaluated_on") or (f"{n} test images" if isinstance(n, int) else "its test images")
    return HeldOutResult(str(where), accuracy, number(metrics.get("balanced_accuracy")), number(metrics.get("ece")))


def other_lab_result(metrics: dict[str, Any]) -> OtherLabResult | None:
    lab = metrics.get("other_lab")
    if not isinstance(lab, dict) or number(lab.get("accuracy")) is None or not isinstance(lab.get("n"), int):
        return None
    classes = tuple(map(str, lab.get("classes") or ()))
    calls = lab.get("calls") if isinstance(lab.get("calls"), dict) else {}
    wrong = {str(k): n for k, n in calls.items() if n and k not in classes}
    return OtherLabResult(float(lab["accuracy"]), lab["n"], classes, str(lab.get("source", "")), wrong)


def per_class_recall(metrics: dict[str, Any]) -> dict[str, float]:
    """Class name -> recall on the test images (the share of that class the model found), where stated."""
    per_class = metrics.get("per_class")
    if not isinstance(per_class, dict):
        return {}
    found = {str(name): number(row.get("recall")) for name, row in per_class.items() if isinstance(row, dict)}
    return {name: recall for name, recall in found.items() if recall is not None}


def call_records(metrics: dict[str, Any], labels: list[str]) -> dict[str, str]:
    """Class name -> how often the model's calls of that class were right on its test images, and what the wrong
    ones were, read from the confusion matrix (rows: true class, columns: the call), for the reader of one call.

    Why: a calibrated probability says how sure the model is of this image; the class's record says how such
    calls fared, e.g. that 9 of 135 "Early Pre-B" calls were Benign fields.
    """
    matrix = metrics.get("confusion_matrix")
    if not (isinstance(matrix, list) and len(matrix) == len(labels)
            and all(isinstance(row, list) and len(row) == len(labels) for row in matrix)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for row in matrix for v in row)):
        return {}
    records = {}
    for k, name in enumerate(labels):
        column = [row[k] for row in matrix]
        calls, right = sum(column), column[k]
        if not calls:
            continue
        if right == calls:
            records[name] = (f"On its test images, its one {name} call was right." if calls == 1 else
                             f"On its test images, all {calls} of its {name} calls were right.")
            continue
        wrong = sorted(((n, labels[i]) for i, n in enumerate(column) if i != k and n), key=lambda t: (-t[0], t[1]))
        if len(wrong) == 1:
            others = wrong[0][1]
        else:
            others = ", ".join(f"{label} ({n})" for n, label in wrong[:3])
            if len(wrong) > 3:
                others += f" and {sum(n for n, _ in wrong[3:])} more"
        rest = calls - right
        share = percent(right / calls)
        records[name] = (f"On its test images, {right} of its {calls} {name} calls were right ({share}); "
                         f"{'the other one was' if rest == 1 else f'the other {rest} were'} {others}.")
    return records
