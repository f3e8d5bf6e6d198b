"""Classification figures for `hemalens evaluate` and the model cards.

Plain numpy, no scikit-learn: accuracy, balanced accuracy, per-class precision/recall/F1, the
confusion matrix (rows = true class, columns = predicted) and the expected calibration error
(Guo et al., 2017: top-1 confidence binned into equal-width bins, weighted |accuracy - confidence|).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.errors import HemaLensError


class MetricsError(HemaLensError):
    """Inputs to a metric are inconsistent (shapes, empty, labels out of range)."""


def confusion_matrix(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, num_classes: int
) -> np.ndarray:
    """(C, C) int64 counts; entry [t, p] = images of true class t predicted as p."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape or t.ndim != 1:
        raise MetricsError(f"true and predicted labels must be 1-D and equal length, got {t.shape} and {p.shape}")
    if t.size and (t.min() < 0 or p.min() < 0 or t.max() >= num_classes or p.max() >= num_classes):
        raise MetricsError(f"labels must lie in 0..{num_classes - 1}")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def expected_calibration_error(probabilities: np.ndarray, y_true: Sequence[int] | np.ndarray, bins: int = 15) -> float:
    """ECE with ``bins`` equal-width confidence bins over (0, 1]; 0 is perfectly calibrated."""
    probs = np.asarray(probabilities, dtype=np.float64)
    t = np.asarray(y_true, dtype=np.int64)
    if probs.ndim != 2 or probs.shape[0] != t.shape[0]:
        raise MetricsError(f"probabilities must be (N, C) matching {t.shape[0]} labels, got {probs.shape}")
    if probs.shape[0] == 0:
        raise MetricsError("no predictions to calibrate")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == t).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


@dataclass(frozen=True)
class ClassFigures:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Evaluation:
    """All figures for one labelled set; ``to_dict`` is the JSON written by `hemalens evaluate --json`."""

    labels: tuple[str, ...]
    n: int
    accuracy: float
    balanced_accuracy: float
    ece: float
    per_class: tuple[ClassFigures, ...]
    confusion: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, 5),
            "balanced_accuracy": round(self.balanced_accuracy, 5),
            "ece": round(self.ece, 5),
            "labels": list(self.labels),
            "per_class": {
                c.label: {"precision": round(c.precision, 5), "recall": round(c.recall, 5), "f1": round(c.f1, 5),
                          "support": c.support}
                for c in self.per_class
            },
            "confusion_matrix": self.confusion.tolist(),
        }


def evaluate_predictions(probabilities: np.ndarray, y_true: Sequence[int] | np.ndarray, labels: Sequence[str],
                         ece_bins: int = 15) -> Evaluation:
    """Every figure from calibrated probabilities (N, C) and true class indices (N,).

    Balanced accuracy averages recall over the classes present in ``y_true`` (absent classes would
    otherwise count as 0 and punish a lab for not having them).
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    t = np.asarray(y_true, dtype=np.int64)
    k = len(labels)
    if probs.ndim != 2 or probs.shape[1] != k:
        raise MetricsError(f"probabilities must be (N, {k}), got {probs.shape}")
    if t.size == 0:
        raise MetricsError("no labelled images to evaluate")
    pred = probs.argmax(axis=1)
    cm = confusion_matrix(t, pred, k)
    per_class = []
    recalls = []
    for c in range(k):
        tp = cm[c, c]
        support = int(cm[c].sum())
        predicted = int(cm[:, c].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(ClassFigures(labels[c], float(precision), float(recall), float(f1), support))
        if support:
            recalls.append(recall)
    return Evaluation(
        labels=tuple(labels),
        n=int(t.size),
        accuracy=float((pred == t).mean()),
        balanced_accuracy=float(np.mean(recalls)),
        ece=expected_calibration_error(probs, t, ece_bins),
        per_class=tuple(per_class),
        confusion=cm,
    )


def format_report(ev: Evaluation) -> str:
    """Human-readable table for the terminal."""
    width = max(12, *(len(lb) for lb in ev.labels)) + 2
    lines = [
        f"images: {ev.n}   accuracy: {ev.accuracy:.4f}   balanced accuracy: {ev.balanced_accuracy:.4f}   "
        f"ECE: {ev.ece:.4f}",
        "",
        f"{'class':<{width}}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>9}",
    ]
    called = ev.confusion.sum(axis=0)
    for c, n_called in zip(ev.per_class, called, strict=True):
        # A class with no images here is not measured: "-", not a 0.0000 that reads as a failing class.
        precision = f"{c.precision:>10.4f}" if n_called else f"{'-':>10}"
        recall, f1 = (f"{c.recall:>10.4f}", f"{c.f1:>10.4f}") if c.support else (f"{'-':>10}", f"{'-':>10}")
        lines.append(f"{c.label:<{width}}{precision}{recall}{f1}{c.support:>9}")
    if not all(c.support for c in ev.per_class) or not called.all():
        lines.append("- : not measured (no images of that class here, or never called)")
    lines += ["", "confusion matrix (rows = true, columns = predicted):"]
    short = [lb[:8] for lb in ev.labels]
    lines.append(" " * width + "".join(f"{s:>9}" for s in short))
    for lb, row in zip(ev.labels, ev.confusion, strict=True):
        lines.append(f"{lb:<{width}}" + "".join(f"{v:>9}" for v in row))
    return "\n".join(lines)


@dataclass(frozen=True)
class ThresholdFigures:
    """What the app's uncertainty threshold does on a labelled set: how many calls it sends to
    Unidentified, and how right the calls it keeps are (what a lab tunes the threshold by)."""

    threshold: float
    uncertain: int
    kept: int
    kept_accuracy: float  # NaN when every call is uncertain
    wrong_uncertain: int  # wrong calls the threshold catches
    wrong_kept: int  # wrong calls it lets through as confident

    def to_dict(self) -> dict[str, Any]:
        accuracy = None if np.isnan(self.kept_accuracy) else round(self.kept_accuracy, 5)
        return {"uncertain_below": self.threshold, "uncertain": self.uncertain, "kept": self.kept,
                "kept_accuracy": accuracy, "wrong_uncertain": self.wrong_uncertain, "wrong_kept": self.wrong_kept}

    def line(self) -> str:
        n = self.uncertain + self.kept
        text = (f"at the app's threshold ({self.threshold:.0%}): {self.uncertain} of {n} calls "
                f"({self.uncertain / max(n, 1):.1%}) would be Unidentified, catching {self.wrong_uncertain} of "
                f"{self.wrong_uncertain + self.wrong_kept} wrong calls")
        if self.kept:
            text += f"; accuracy of the other calls {self.kept_accuracy:.4f} ({self.wrong_kept} wrong)"
        return text


def threshold_figures(
    top_probabilities: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, threshold: float
) -> ThresholdFigures:
    """Split calls by the uncertainty rule (inference.uncertainty) and count right and wrong on each side."""
    from inference.uncertainty import is_uncertain

    uncertain = np.array([is_uncertain(float(p), threshold) for p in top_probabilities], dtype=bool)
    wrong = ~np.asarray(correct, dtype=bool)
    kept = int((~uncertain).sum())
    return ThresholdFigures(
        threshold=threshold,
        uncertain=int(uncertain.sum()),
        kept=kept,
        kept_accuracy=float((~wrong[~uncertain]).mean()) if kept else float("nan"),
        wrong_uncertain=int((wrong & uncertain).sum()),
        wrong_kept=int((wrong & ~uncertain).sum()),
    )
