"""List the bundled and user-installed models with their metadata (hemalens models)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from inference.registry import bundled_models_dir, list_models, user_models_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


_SUMMARISED = {"accuracy", "balanced_accuracy", "ece", "evaluated_on", "n", "per_class", "confusion_matrix"}


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _figure_lines(metrics: dict[str, Any]) -> list[str]:
    """The measured figures in words: test accuracy, every class's recall (the weak class in sight), another
    lab's images; the other scalar figures as they are stored (--json and the model card have them all)."""
    lines = []
    if isinstance(metrics.get("accuracy"), (int, float)):
        extra = [f"balanced {_pct(metrics[k])}" for k in ("balanced_accuracy",) if isinstance(metrics.get(k), float)]
        extra += [f"ECE {_pct(metrics['ece'])}"] if isinstance(metrics.get("ece"), float) else []
        where = metrics.get("evaluated_on") or (f"{metrics['n']} test images" if "n" in metrics else "its test set")
        lines.append(f"tested:  accuracy {_pct(metrics['accuracy'])}"
                     + (f" ({', '.join(extra)})" if extra else "") + f" on {where}")
    per_class = metrics.get("per_class")
    if isinstance(per_class, dict):
        recalls = [f"{c} {_pct(v['recall'])}" for c, v in per_class.items()
                   if isinstance(v, dict) and isinstance(v.get("recall"), (int, float))]
        if recalls:
            lines.append(f"recall:  {', '.join(recalls)}")
    other = metrics.get("other_lab")
    if isinstance(other, dict) and {"accuracy", "n", "classes"} <= other.keys():
        lines.append(f"other lab: {_pct(other['accuracy'])} of {other['n']} {', '.join(other['classes'])} images "
                     "from another lab called right (only that class; see the model card)")
    rest = [f"{k}={v}" for k, v in metrics.items() if k not in _SUMMARISED and not isinstance(v, (dict, list))]
    if rest:
        lines.append(f"figures: {', '.join(rest)}")
    return lines


def run(args: argparse.Namespace, *, stdout: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    problems: list[tuple[Path, str]] = []
    entries = list_models(problems)
    if args.json:
        doc = {
            "bundled_dir": str(bundled_models_dir()),
            "user_dir": str(user_models_dir()),
            "models": [{"name": e.name, "id": e.spec.id, "version": e.spec.version, "path": str(e.path),
                        "bundled": e.bundled, "assumed_preprocessing": e.spec.assumed,
                        "classes": [{"id": c.id, "name": c.name} for c in e.spec.classes],
                        "input": {"size": [e.spec.input.height, e.spec.input.width], "layout": e.spec.input.layout,
                                  "resize": e.spec.input.resize},
                        "gradcam": e.spec.gradcam is not None,
                        "metrics": e.spec.provenance.metrics,
                        "intended_use": e.spec.provenance.intended_use} for e in entries],
            "unreadable": [{"path": str(p), "reason": r} for p, r in problems],
        }
        out.write(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
        return 0
    out.write(f"Bundled models: {bundled_models_dir()}\nUser models:    {user_models_dir()}\n\n")
    if not entries:
        out.write("No models found.\n")
    for e in entries:
        spec = e.spec
        where = "bundled" if e.bundled else "user"
        out.write(f"{spec.name}  [{spec.id or e.path.stem}]  v{spec.version or '?'}  ({where})\n")
        out.write(f"  file:    {e.path}\n")
        out.write(f"  classes: {', '.join(spec.labels) or 'unknown'}\n")
        out.write(f"  input:   {spec.input.width}x{spec.input.height} {spec.input.layout}, {spec.input.resize}"
                  f"{' (assumed)' if spec.assumed else ''}\n")
        out.write(f"  heatmap: {'Grad-CAM outputs' if spec.gradcam else 'none in metadata'}\n")
        for line in _figure_lines(spec.provenance.metrics):
            out.write(f"  {line}\n")
        if spec.provenance.intended_use:
            out.write(f"  use:     {spec.provenance.intended_use}\n")
        out.write("\n")
    for path, reason in problems:
        out.write(f"Unreadable: {path}: {reason}\n")
    return 0
