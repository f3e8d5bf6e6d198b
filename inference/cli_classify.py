"""Classify images or folders headlessly and write a CSV or JSON table (hemalens classify)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from hemalens import RESEARCH_USE_STATEMENT, __version__
from inference.batch import BatchResult, classify_paths, iter_image_paths
from inference.errors import HemaLensError
from inference.familiarity import UNFAMILIAR_NOTE, folder_unlike_warning
from inference.file_mode import NAME_BYTES, write_file_atomically
from inference.images import load_image
from inference.model_fit import suggest_model
from inference.overlay import render_overlay
from inference.registry import list_models, resolve_model
from inference.session import ModelSession
from inference.uncertainty import UNIDENTIFIED_NAME, add_threshold_option, is_uncertain


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", help="image files and/or folders")
    parser.add_argument("--model", "-m", help="model file, id or name (default: the first bundled model)")
    parser.add_argument("--out", "-o", help="results file, .csv or .json (default: a table on standard output)")
    parser.add_argument("--cam-dir", help="folder to write a heatmap overlay PNG per image")
    parser.add_argument("--recursive", "-r", action="store_true", help="also look inside sub-folders")
    parser.add_argument("--opacity", type=float, default=0.45, help="heatmap overlay opacity (default 0.45)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per ONNX Runtime call (default 8)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_threshold_option(parser, "calls (marked '?')")


class Progress:
    """A one-line progress bar on a terminal; silent when stderr is not a terminal."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total, self.stream, self.enabled = total, stream, enabled and stream.isatty()
        self.done, self.started = 0, time.monotonic()

    def step(self, name: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.done / max(1, self.total))
        rate = self.done / max(1e-6, time.monotonic() - self.started)
        label = name if len(name) <= 30 else "…" + name[-29:]
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                          f"{rate:5.1f} img/s  {label:<30}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _row(result: BatchResult, class_ids: list[str], threshold: float) -> dict[str, Any]:
    row: dict[str, Any] = {"path": str(result.path), "status": "ok" if result.ok else "error"}
    pred = result.prediction
    row["top_class_id"] = pred.top_class_id if pred else ""
    row["top_label"] = pred.top_label if pred else ""
    row["top_probability"] = round(pred.top_probability, 6) if pred else ""
    row["uncertain"] = is_uncertain(pred.top_probability, threshold) if pred else ""
    for i, cid in enumerate(class_ids):
        row[f"p_{cid}"] = round(float(pred.probabilities[i]), 6) if pred else ""
    row["cam_method"] = (pred.cam_method or "") if pred else ""
    row["notes"] = "; ".join([*result.image_notes, *(pred.notes if pred else ())])
    row["error"] = result.error or ""
    return row


def _cam_file(cam_dir: Path, path: Path, used: set[str]) -> Path:
    stem = path.stem
    name, n = f"{stem}.cam.png", 2
    while name.lower() in used:
        name, n = f"{stem}-{n}.cam.png", n + 1
    used.add(name.lower())
    return cam_dir / name


def _write_cam(result: BatchResult, target: Path, opacity: float) -> str | None:
    """Save the overlay; returns an error note instead of raising."""
    pred = result.prediction
    heat = pred.heatmap() if pred else None
    if heat is None:
        return None
    try:
        rgb = result.rgb if result.rgb is not None else load_image(result.path).rgb
        overlay = render_overlay(rgb, heat, opacity=opacity)
        ok, buf = cv2.imencode(".png", cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
        if not ok:
            return "heatmap could not be encoded"
        target.write_bytes(buf.tobytes())  # bytes write: works with non-ASCII paths everywhere
    except (OSError, HemaLensError) as exc:
        return f"heatmap not saved: {exc}"
    return None


def run(args: argparse.Namespace, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out_stream, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        if args.model:
            model_path = resolve_model(args.model)
        else:
            entries = list_models()
            if not entries:
                err.write("hemalens classify: no model given and none installed; use --model FILE.onnx\n")
                return 2
            model_path = entries[0].path
        session = ModelSession.load(model_path)
    except HemaLensError as exc:
        err.write(f"hemalens classify: {exc}\n")
        return 2
    threshold = args.uncertain_below
    if args.out and Path(args.out).suffix.lower() not in (".csv", ".json"):
        err.write("hemalens classify: --out must end in .csv or .json\n")
        return 2
    for note in session.notes:
        err.write(f"note: {note}\n")
    cam_dir = Path(args.cam_dir) if args.cam_dir else None
    if cam_dir is not None:
        if session.cam_method is None:
            err.write("note: this model offers no heatmap; --cam-dir ignored\n")
            cam_dir = None
        else:
            cam_dir.mkdir(parents=True, exist_ok=True)

    total = sum(1 for _ in iter_image_paths(args.paths, recursive=args.recursive))
    progress = Progress(total, err, not args.no_progress)
    class_ids = [c.id for c in session.spec.classes]
    rows: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    failures: list[tuple[str, str]] = []
    used_names: set[str] = set()
    started = time.monotonic()
    results = classify_paths(session, args.paths, recursive=args.recursive, batch_size=args.batch_size,
                             keep_images=cam_dir is not None)
    for result in results:
        row = _row(result, class_ids, threshold)
        if result.prediction is not None:
            counts[UNIDENTIFIED_NAME if row["uncertain"] else result.prediction.top_label] += 1
            if cam_dir is not None:
                target = _cam_file(cam_dir, result.path, used_names)
                problem = _write_cam(result, target, args.opacity)
                row["cam_file"] = "" if problem else str(target)
                if problem:
                    row["notes"] = "; ".join(filter(None, [row["notes"], problem]))
        else:
            failures.append((str(result.path), result.error or "unknown error"))
        rows.append(row)
        progress.step(result.path.name)
    progress.close()
    elapsed = time.monotonic() - started

    write_error = None
    if args.out:
        try:
            _write_results(Path(args.out), rows, session, counts, failures, threshold)
        except OSError as exc:  # a full disk, a read-only or vanished folder: the calls are printed instead
            write_error = f"hemalens classify: cannot write {args.out}: {exc.strerror or exc}"
            err.write(f"{write_error}; the results follow\n")
    if not args.out or write_error:
        _print_table(out_stream, rows)
    classified = sum(counts.values())
    summary = [f"Classified {classified} of {len(rows)} image(s) with {session.spec.name} in {elapsed:.1f} s."]
    for label in session.spec.labels:
        if counts[label]:
            summary.append(f"  {label}: {counts[label]}")
    if counts[UNIDENTIFIED_NAME]:
        summary.append(f"  {UNIDENTIFIED_NAME} (top probability under {100 * threshold:g} %, marked ?): "
                       f"{counts[UNIDENTIFIED_NAME]}")
    if failures:
        summary.append(f"Failed: {len(failures)}")
        summary += [f"  {Path(p).name}: {reason}" for p, reason in failures[:20]]
        if len(failures) > 20:
            summary.append(f"  … and {len(failures) - 20} more (see the results file)")
    summary += _unlike_training_lines(rows, session, model_path)
    if args.out and not write_error:
        summary.append(f"Results written to {args.out}")
    summary.append(RESEARCH_USE_STATEMENT)
    (err if not args.out or write_error else out_stream).write("\n".join(summary) + "\n")
    if write_error:
        err.write(f"{write_error}; the results are above\n")  # again, last: the table is all there is of the run
        return 2
    if not rows:
        err.write("hemalens classify: no images found\n")
    return 0 if classified else 1


def _unlike_training_lines(rows: list[dict[str, Any]], session: ModelSession, model_path: Path) -> list[str]:
    """The app's folder warning when many images are unlike the model's training images, and which
    installed model they look like instead, if one clearly fits (inference.model_fit)."""
    done = [row for row in rows if row["status"] == "ok"]
    unlike = sum(UNFAMILIAR_NOTE in row["notes"] for row in done)
    warning = folder_unlike_warning(unlike, len(done), session.spec.name)
    if warning is None:
        return []
    lines = [warning]
    others = [e.path for e in list_models() if e.path.resolve() != Path(model_path).resolve()]
    fit = suggest_model([Path(row["path"]) for row in done], [Path(model_path), *others], Path(model_path))
    if fit is not None:
        lines.append(f"They look like the images {fit.name} was trained on ({round(fit.like_training * fit.sampled)} "
                     f"of {fit.sampled} sampled; it tells apart only {', '.join(fit.labels)}): "
                     f"try --model {fit.path.stem}.")
    return lines


def _print_table(stream: TextIO, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        if row["status"] == "ok":
            mark = "?" if row["uncertain"] else ""
            stream.write(f"{row['path']}\t{row['top_label']}{mark}\t{row['top_probability']:.3f}\n")
        else:
            stream.write(f"{row['path']}\tERROR\t{row['error']}\n")


def _write_results(out: Path, rows: list[dict[str, Any]], session: ModelSession, counts: Counter[str],
                   failures: list[tuple[str, str]], threshold: float) -> None:
    if out.suffix.lower() == ".json":
        doc = {
            "hemalens_version": __version__,
            "model": {"name": session.spec.name, "id": session.spec.id, "version": session.spec.version,
                      "file": str(session.path), "sha256": session.sha256,
                      "assumed_preprocessing": session.spec.assumed,
                      "classes": [{"id": c.id, "name": c.name} for c in session.spec.classes],
                      "cam_method": session.cam_method},
            "summary": {"images": len(rows), "classified": sum(counts.values()), "failed": len(failures),
                        "per_class": dict(counts), "uncertain_below": threshold},
            "results": rows,
            "disclaimer": RESEARCH_USE_STATEMENT,
        }
        text = json.dumps(doc, indent=2, ensure_ascii=False, default=_json_default)
        write_file_atomically(out, text.encode("utf-8", NAME_BYTES))
        return
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    if not fields:
        fields = ["path", "status", "top_class_id", "top_label", "top_probability", "error"]
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows({k: _csv_safe(v) for k, v in row.items()} for row in rows)
    write_file_atomically(out, table.getvalue().encode("utf-8", NAME_BYTES))


def _csv_safe(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula (=, +, -, @ first) is quoted with a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
