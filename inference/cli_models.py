"""List the bundled and user-installed models with their metadata (hemalens models)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from inference.model_figures import HELD_OUT_KEYS, held_out_result, number, other_lab_result, percent
from inference.registry import bundled_models_dir, list_models, user_models_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _figure_lines(metrics: dict[str, Any]) -> list[str]:
    """The measured figures in words: test accuracy, every class's recall (the weak class in sight), another
    lab's images; the other scalar figures as they are stored (--json and the model card have them all)."""
    lines = []
    held_out = held_out_result(metrics)
    if held_out:
        bal, ece = held_out.balanced_accuracy, held_out.ece
        extra = [f"balanced {percent(bal)}"] if bal is not None else []
        extra += [f"ECE {percent(ece)}"] if ece is not None else []
        lines.append(f"tested:  accuracy {percent(held_out.accuracy)}"
                     + (f" ({', '.join(extra)})" if extra else "") + f" on {held_out.where}")
    per_class = metrics.get("per_class")
    if isinstance(per_class, dict):
        recalls = [f"{c} {percent(v['recall'])}" for c, v in per_class.items()
                   if isinstance(v, dict) and number(v.get("recall")) is not None]
        if recalls:
            lines.append(f"recall:  {', '.join(recalls)}")
    lab = other_lab_result(metrics)
    if lab:
        cells = ", ".join(lab.classes)
        lines.append(f"other lab: {percent(lab.accuracy)} of {lab.n} {cells + ' ' if cells else ''}images "
                     "from another lab called right (only that class; see the model card)")
    shown = (HELD_OUT_KEYS if held_out else set()) | {"per_class", "confusion_matrix"}
    rest = [f"{k}={v}" for k, v in metrics.items() if k not in shown and not isinstance(v, (dict, list))]
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
