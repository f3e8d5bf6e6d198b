"""Figures and pictures for a shipped model: latency, Grad-CAM grid, metadata update, markdown card.

Everything here runs on the exported ONNX file through the runtime (inference/), never on the
PyTorch model, so the card describes exactly what ships.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

from inference.cli_evaluate import match_folders
from inference.contract import METADATA_KEY, ClassLabel, spec_from_metadata
from inference.images import load_image
from inference.overlay import render_overlay
from inference.session import ModelSession, session_options
from inference.splits import labelled_folder


class OtherProcessLoad:
    """The share of all CPUs' time that processes other than this one used since construction (Linux /proc/stat).

    A latency figure from a shared machine means little without it; None where /proc/stat is missing.
    """

    def __init__(self) -> None:
        self._start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        hz = float(os.sysconf("SC_CLK_TCK"))
        busy = (sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0.0)) / hz  # minus idle, iowait
        own = sum(os.times()[:2])  # this process, all its threads
        return time.monotonic(), busy, own

    def share(self) -> float | None:
        end = self._sample()
        if self._start is None or end is None:
            return None
        wall = (end[0] - self._start[0]) * (os.cpu_count() or 1)
        others = (end[1] - self._start[1]) - (end[2] - self._start[2])
        return round(min(max(others / wall, 0.0), 1.0), 3) if wall > 0 else None


def measure_latency(model_path: Path, threads: int = 2, runs: int = 200) -> dict[str, float]:
    """Median / p90 / fastest milliseconds at batch 1 on ``threads`` CPU threads, runtime session options.

    ``scores_ms``: the class scores only; ``with_gradcam_ms``: scores plus the two Grad-CAM outputs;
    ``predict_ms``: ModelSession.predict on a 224x224 image, preprocessing and calibration included.
    """
    other_load = OtherProcessLoad()  # the card says how busy the machine was: timings on a shared box vary
    sess = ort.InferenceSession(str(model_path), session_options(threads), providers=["CPUExecutionProvider"])
    spec = spec_from_metadata({p.key: p.value for p in onnx.load(str(model_path)).metadata_props})
    assert spec is not None
    x = np.random.default_rng(0).normal(size=(1, 3, spec.input.height, spec.input.width)).astype(np.float32)
    feeds = {spec.input.name: x}

    def timed(outputs: list[str] | None, n: int) -> list[float]:
        for _ in range(10):
            sess.run(outputs, feeds)
        out = []
        for _ in range(n):
            t = time.perf_counter()
            sess.run(outputs, feeds)
            out.append((time.perf_counter() - t) * 1000)
        return out

    scores = timed([spec.output.name], runs)
    full = timed(None, runs)
    session = ModelSession.load(model_path, threads=threads)
    img = np.random.default_rng(1).integers(0, 255, size=(224, 224, 3), dtype=np.uint8)
    for _ in range(5):
        session.predict(img)
    e2e = []
    for _ in range(runs // 2):
        t = time.perf_counter()
        session.predict(img)
        e2e.append((time.perf_counter() - t) * 1000)

    def p90(v: list[float]) -> float:
        return float(np.percentile(v, 90))

    return {"threads": threads, "scores_ms": round(statistics.median(scores), 2),
            "scores_p90_ms": round(p90(scores), 2),
            "with_gradcam_ms": round(statistics.median(full), 2), "predict_ms": round(statistics.median(e2e), 2),
            "scores_min_ms": round(min(scores), 2), "predict_min_ms": round(min(e2e), 2),
            "other_processes_cpu_share": other_load.share()}


# The grids ship next to the models in every package: as JPEG the three are 0.56 MB (as PNG they
# were 2.4 MB of the package together). No chroma subsampling, so the red error captions stay sharp.
CAM_GRID_SUFFIX = "-gradcam.jpg"
CAM_GRID_JPEG_QUALITY = 90


def cam_grid_name(model_id: str) -> str:
    """File name of a model's Grad-CAM grid next to its .onnx file and card."""
    return f"{model_id}{CAM_GRID_SUFFIX}"


def save_cam_grid(rgb: np.ndarray, path: Path) -> None:
    """Write an RGB grid as the JPEG the model card links to."""
    if path.suffix.lower() not in (".jpg", ".jpeg"):
        raise ValueError(f"{path.name}: Grad-CAM grids are written as JPEG (.jpg)")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(
        path, "JPEG", quality=CAM_GRID_JPEG_QUALITY, subsampling=0, optimize=True)


def cam_grid(model_path: Path, data: Path, out_path: Path, per_class: int = 6, tile: int = 128) -> dict[str, Any]:
    """A grid of Grad-CAM overlays (rows: classes, columns: evenly spaced test images) saved as JPEG.

    Each tile shows the image with the heatmap of the predicted class; the caption is the prediction
    and its probability, red when wrong. Returns how much heatmap mass fell on darker-than-background
    (stained) pixels, a rough numeric companion to looking at the grid.
    """
    session = ModelSession.load(model_path, threads=2)
    folder = labelled_folder(data, "test")
    index = match_folders(list(folder), [c.id for c in session.spec.classes], session.spec.labels, {})
    rows = []
    on_cell = []
    for cls, paths in folder.items():
        picks = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, per_class)]
        label_index = index[cls]
        tiles = []
        for p in picks:
            rgb = load_image(p).rgb
            pred = session.predict(rgb)
            heat = pred.heatmap()
            small = cv2.resize(rgb, (tile, tile), interpolation=cv2.INTER_AREA)
            if heat is None:
                over = small
            else:
                over = render_overlay(small, cv2.resize(heat, (tile, tile)))
                grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
                stained = grey < np.percentile(grey, 60)
                on_cell.append(float((heat * stained).sum() / max(heat.sum(), 1e-6)))
            canvas = np.full((tile + 16, tile, 3), 255, np.uint8)
            canvas[16:] = over
            ok = pred.top_index == label_index
            text = f"{pred.top_label[:12]} {pred.top_probability:.2f}"
            cv2.putText(canvas, text, (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0) if ok else (220, 0, 0), 1,
                        cv2.LINE_AA)
            tiles.append(canvas)
        head = np.full((tile + 16, 110, 3), 255, np.uint8)
        cv2.putText(head, session.spec.labels[label_index][:16], (2, tile // 2 + 8), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                    (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.concatenate([head, *tiles], axis=1))
    grid = np.concatenate(rows, axis=0)
    save_cam_grid(grid, out_path)
    return {"heatmap_mass_on_stained_pixels": round(float(np.mean(on_cell)), 3) if on_cell else None,
            "tiles": len(on_cell)}


def update_metadata(model_path: Path, class_ids: list[str] | None = None, **changes: Any) -> None:
    """Rewrite the HemaLens metadata in place (the graph is untouched): provenance fields, and class ids.

    The exporter derives ids from display names ("Immature granulocyte" -> "immature_granulocyte");
    we set them to the data set's folder names ("ig") so `hemalens evaluate` matches those folders
    without a --map, and review records keep the short, stable id.
    """
    model = onnx.load(str(model_path))
    props = {p.key: p.value for p in model.metadata_props}
    spec = spec_from_metadata(props)
    assert spec is not None, f"{model_path} has no HemaLens metadata"
    spec = spec.with_provenance(**changes)
    if class_ids is not None:
        assert len(class_ids) == len(spec.classes)
        spec = replace(spec, classes=tuple(ClassLabel(id=i, name=c.name)
                                           for i, c in zip(class_ids, spec.classes, strict=True)))
    for p in model.metadata_props:
        if p.key == METADATA_KEY:
            p.value = spec.to_json()
    onnx.save(model, str(model_path))


def _table(ev: dict[str, Any]) -> str:
    lines = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, c in ev["per_class"].items():
        lines.append(f"| {name} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |")
    lines += ["", "Confusion matrix (rows = true, columns = predicted):", "",
              "| true \\ predicted | " + " | ".join(ev["labels"]) + " |", "|---" * (len(ev["labels"]) + 1) + "|"]
    for name, row in zip(ev["labels"], ev["confusion_matrix"], strict=True):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def _maybe(value: float | None) -> str:
    return "n/a (none)" if value is None else f"{value:.4f}"


def unlike_training_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """On `hemalens evaluate` rows: how many images were flagged unlike the training images, and the
    accuracy on those and on the rest (does the flag pick out the images the model gets wrong?)."""
    def accuracy(sel: list[dict[str, Any]]) -> float | None:
        return round(sum(r["true"] == r["predicted"] for r in sel) / len(sel), 4) if sel else None

    flagged = [r for r in rows if r["unlike_training"]]
    rest = [r for r in rows if not r["unlike_training"]]
    return {"images": len(rows), "flagged": len(flagged), "share": round(len(flagged) / max(len(rows), 1), 4),
            "accuracy_flagged": accuracy(flagged), "accuracy_rest": accuracy(rest)}


def other_lab_section(other_lab: dict[str, Any] | None) -> str:
    """Card text for real images of some classes from another lab (empty when there are none)."""
    if not other_lab:
        return ""
    calls = ", ".join(f"{label} {n}" for label, n in other_lab["calls"].items() if n)
    return f"""
## Real images from another lab
{other_lab['source']}

`{other_lab['command']}`: {other_lab['n']} images, accuracy **{other_lab['accuracy']:.4f}**, ECE
{other_lab['ece']:.4f}; flagged unlike training: {other_lab['flagged']} ({other_lab['flagged'] / other_lab['n']:.1%}).
Calls: {calls}. These images cover {', '.join(other_lab['classes'])} only, so they check those classes, not the
whole model.
"""


def _load_note(latency: dict[str, float]) -> str:
    """How busy the machine was while the latency was measured (older measurements did not record it)."""
    share = latency.get("other_processes_cpu_share")
    if share is None:
        return ", other load not recorded"
    return f"; other processes used {share:.0%} of its CPU time meanwhile"


def write_card(path: Path, *, title: str, model_file: str, facts: dict[str, Any], evaluation: dict[str, Any],
               robustness: dict[str, dict[str, float]], unlike: dict[str, Any], latency: dict[str, float],
               cam: dict[str, Any], cam_image: str, observations: str,
               other_lab: dict[str, Any] | None = None) -> None:
    """The markdown model card shipped next to the .onnx file."""
    rob = ["| copy of the test block | accuracy | balanced accuracy | ECE | flagged unlike training |",
           "|---|---|---|---|---|"]
    rob += [f"| {k} | {v['accuracy']:.4f} | {v['balanced_accuracy']:.4f} | {v['ece']:.4f} | "
            f"{v['flagged_unlike_training']:.1%} |" for k, v in robustness.items()]
    lat = (f"{latency['scores_ms']} ms scores only; {latency['with_gradcam_ms']} ms with Grad-CAM outputs; "
           f"{latency['predict_ms']} ms `ModelSession.predict` incl. preprocessing "
           f"(medians on a 2-core machine{_load_note(latency)}; p90 scores only {latency['scores_p90_ms']} ms; "
           f"fastest run {latency['scores_min_ms']} ms scores only, {latency['predict_min_ms']} ms predict)")
    headline = (f"Images: {evaluation['n']} · accuracy **{evaluation['accuracy']:.4f}** · balanced accuracy "
                f"**{evaluation['balanced_accuracy']:.4f}** · ECE (15 bins, after temperature scaling) "
                f"**{evaluation['ece']:.4f}**")
    flag_line = (f"Original test block: {unlike['flagged']} of {unlike['images']} images flagged "
                 f"({unlike['flagged'] / max(unlike['images'], 1):.1%}); "
                 f"accuracy {_maybe(unlike['accuracy_flagged'])} on them, "
                 f"{_maybe(unlike['accuracy_rest'])} on the rest.")
    target_lines = "\n".join(target_report(evaluation, latency, facts))
    text = f"""# {title}

`{model_file}` — {facts['description']}

> **Screening aid for research, not a diagnosis.** Every call must be reviewed by a qualified person.
> Verify the model on your own lab's images first: `hemalens evaluate YOUR_FOLDER --model {facts['id']}`.

| | |
|---|---|
| version | {facts['version']} |
| classes | {', '.join(evaluation['labels'])} |
| input | {facts['input']} |
| network | {facts['network']} |
| size | {facts['size_mb']:.2f} MB |
| latency (2 CPU threads, ONNX Runtime, batch 1) | {lat} |
| temperature ({facts['temperature_how']}) | {facts['temperature']:.3f} |
| training | {facts['training']} |

## Data
{facts['training_data']}

**Citation.** {facts['citation']}

**Licence.** {facts['license']}

**Split.** {facts['split']}

## Test-set figures (`hemalens evaluate`, held-out block)
`{facts['evaluate_command']}`

{headline}

{_table(evaluation)}

## Robustness to another lab (simulated)
Another lab changes stain, camera (resolution, white balance, frame shape), magnification and focus. No other
lab's images {"of every class " if other_lab else ""}were available, so the test block was re-rendered with
fixed transforms (`python -m training.robustness`, see its docstring) and scored through the runtime. This is a
proxy: real images from another lab can still fail.

The last column is the share of images HemaLens marks "unlike this model's training images" (per-class
colour, focus and scale statistics of the train block, stored in the model's metadata; the limit is
what 0.5 % of training images exceed; `inference/familiarity.py`). The app shows that note on the image
and warns when a folder has many such images.
{flag_line}

{chr(10).join(rob)}
{other_lab_section(other_lab)}
## Grad-CAM
![Grad-CAM overlays]({cam_image})

`{cam_image}`: evenly spaced test images per class (rows), heatmap of the predicted class; red captions are errors.
Share of heatmap mass on stained pixels (darker than the image's 60th grey percentile, i.e. 40 % of the
pixels, so 0.40 would mean no preference): {cam['heatmap_mass_on_stained_pixels']}.

{observations}

## Against the project's targets
{target_lines}

## Intended use and limits
- Intended use: {facts['intended_use']}
- Limits: {facts['limitations']}

Reproduce: `{facts['train_command']}` then `{facts['export_command']}`.
"""
    path.write_text(text)


def target_report(evaluation: dict[str, Any], latency: dict[str, float], facts: dict[str, Any]) -> list[str]:
    """One line per project target: the figure reached and whether it meets the target."""
    def line(what: str, value: float, target: float, higher_is_better: bool = True, fmt: str = ".4f") -> str:
        ok = value >= target if higher_is_better else value <= target
        sign = ">=" if higher_is_better else "<="
        return f"- {what}: {value:{fmt}} (target {sign} {target:{fmt}}) — **{'met' if ok else 'NOT met'}**"

    out = [line("test accuracy", evaluation["accuracy"], facts["target_accuracy"]),
           line("ECE", evaluation["ece"], 0.015, higher_is_better=False)]
    for cls, minimum in facts.get("target_recall", {}).items():
        out.append(line(f"{cls} recall", evaluation["per_class"][cls]["recall"], minimum))
    out.append(line("size (MB)", facts["size_mb"], 20.0, higher_is_better=False, fmt=".2f"))
    out.append(line("latency, scores only, median (ms)", latency["scores_ms"], 10.0, higher_is_better=False,
                    fmt=".2f"))
    return out


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1))
