"""Measure a model on a labelled folder: accuracy, balanced accuracy, per-class P/R/F1, confusion, ECE.

Labs must verify a model on their own images before use; this is that tool. The folder holds one
sub-folder per class (``FOLDER/<class>/<image>``). Folder names are matched to the model's classes by
id or name (case, spaces, '-' and '_' ignored); ``--map Folder=label`` says the rest. ``--split test``
keeps only the held-out block that training never saw (inference/splits.py); the default ``auto``
does that by itself when FOLDER is the model's own training set (recognised by a fingerprint of the
test-block file names stored in the model's provenance) and uses every image otherwise.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from inference.errors import HemaLensError, ImageLoadError
from inference.familiarity import UNFAMILIAR_NOTE
from inference.file_mode import write_file_atomically
from inference.metrics import Evaluation, ThresholdFigures, evaluate_predictions, format_report, threshold_figures
from inference.splits import labelled_folder, split_fingerprint
from inference.uncertainty import add_threshold_option

CANCELLED = "the check was cancelled"


class EvaluateError(HemaLensError):
    """The folder or the label mapping cannot be evaluated against this model."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", text.lower())


def parse_mapping(items: list[str] | None) -> dict[str, str]:
    """``["Folder=label", ...]`` -> {folder: label}; raises EvaluateError on a malformed item."""
    out: dict[str, str] = {}
    for item in items or []:
        folder, sep, label = item.partition("=")
        if not sep or not folder.strip() or not label.strip():
            raise EvaluateError(f"--map expects Folder=label, got {item!r}")
        out[folder.strip()] = label.strip()
    return out


def closest_label(folder: str, labels: list[str]) -> str | None:
    """The class a lab's folder name most likely means ("Neutrophils", "lympho"), as a proposal only (the
    error's hint, the app's question): the mapping itself stays the user's explicit choice."""
    slugs = {_slug(label): label for label in labels}
    key = _slug(folder)
    starts = [label for slug, label in slugs.items() if slug and (slug.startswith(key) or key.startswith(slug))]
    if len(starts) == 1 and len(key) >= 3:
        return starts[0]
    close = difflib.get_close_matches(key, list(slugs), n=1, cutoff=0.75)
    return slugs[close[0]] if close else None


def _quoted(text: str) -> str:
    return f'"{text}"' if " " in text else text


def _class_lookup(class_ids: list[str], labels: list[str]) -> dict[str, int]:
    """Slug of each class id and name -> class index: what a folder name has to say to match a class."""
    lookup: dict[str, int] = {}
    for i, (cid, name) in enumerate(zip(class_ids, labels, strict=True)):
        lookup.setdefault(_slug(cid), i)
        lookup.setdefault(_slug(name), i)
    return lookup


def unmatched_folders(folders: list[str], class_ids: list[str], labels: list[str]) -> list[str]:
    """The folders whose names match no class by themselves (they need a mapping, or are left out)."""
    lookup = _class_lookup(class_ids, labels)
    return [folder for folder in folders if _slug(folder) not in lookup]


def match_folders(folders: list[str], class_ids: list[str], labels: list[str], mapping: dict[str, str],
                  skip_unknown: bool = False) -> dict[str, int]:
    """Folder name -> class index; folders that match no class raise EvaluateError (or are skipped)."""
    lookup = _class_lookup(class_ids, labels)
    result: dict[str, int] = {}
    unknown = []
    for folder in folders:
        target = mapping.get(folder, folder)
        index = lookup.get(_slug(target))
        if index is None:
            if folder in mapping:
                raise EvaluateError(f"--map {folder}={target}: the model has no class {target!r} "
                                    f"(classes: {', '.join(labels)})")
            unknown.append(folder)
        else:
            result[folder] = index
    if unknown and not skip_unknown:
        guesses = [f"--map {_quoted(f)}={_quoted(g)}" for f in unknown if (g := closest_label(f, labels))]
        hint = f" (perhaps: {' '.join(guesses)})" if guesses else ""
        raise EvaluateError(
            f"folder(s) {', '.join(unknown)} match no class of the model ({', '.join(labels)}); "
            f"use --map Folder=label{hint}, or --skip-unknown to leave them out"
        )
    stale = set(mapping) - set(folders)
    if stale:
        raise EvaluateError(f"--map names folder(s) that do not exist: {', '.join(sorted(stale))}")
    if not result:
        raise EvaluateError("no class folder matches the model's classes")
    return result


def resolve_split(requested: str, folder: Path, spec_metrics: dict[str, Any]) -> tuple[str, str]:
    """The split to use and why: 'auto' becomes 'test' only for the model's own training folder."""
    if requested != "auto":
        return requested, f"--split {requested}"
    expected = spec_metrics.get("test_split_fingerprint")
    if expected and split_fingerprint(labelled_folder(folder, "test")) == expected:
        return "test", "this folder is the model's training set: only its held-out test block is used"
    return "all", "every image in the folder is used"


def labelled_items(folder: Path, split: str, spec: Any, mapping: dict[str, str] | None = None, *,
                   skip_unknown: bool = False) -> list[tuple[Path, int]]:
    """(image path, class index of the model) for each image of a labelled folder's split; the class
    sub-folders are matched to the model's classes as `hemalens evaluate` matches them."""
    files = labelled_folder(folder, split)
    if not files:
        raise EvaluateError(f"{folder} has no class sub-folders with images (expected FOLDER/<class>/<image>)")
    index = match_folders(list(files), [c.id for c in spec.classes], spec.labels, mapping or {}, skip_unknown)
    return [(p, index[cls]) for cls, paths in files.items() if cls in index for p in paths]


def evaluate_folder(session: Any, folder: Path, split: str, mapping: dict[str, str], *, skip_unknown: bool = False,
                    batch_size: int = 32, progress: Callable[[int, int], None] | None = None,
                    cancel: threading.Event | None = None) -> tuple[Evaluation, list[dict[str, Any]], list[str]]:
    """Run the model over the folder; returns the figures, per-image rows and the load errors.

    ``progress(done, total)`` is called after each batch; ``cancel`` (set from any thread) stops the run
    between batches with EvaluateError.
    """
    from inference.images import load_image

    spec = session.spec
    items = labelled_items(folder, split, spec, mapping, skip_unknown=skip_unknown)
    probs: list[np.ndarray] = []
    truth: list[int] = []
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    for start in range(0, len(items), batch_size):
        if cancel is not None and cancel.is_set():
            raise EvaluateError(CANCELLED)
        chunk = items[start:start + batch_size]
        images, kept = [], []
        for path, label in chunk:
            try:
                images.append(load_image(path).rgb)
                kept.append((path, label))
            except ImageLoadError as exc:
                errors.append(str(exc))
        for (path, label), pred in zip(kept, session.predict_batch(images), strict=True):
            probs.append(np.asarray(pred.probabilities, dtype=np.float64))
            truth.append(label)
            rows.append({"path": str(path), "true": spec.labels[label], "predicted": pred.top_label,
                         "probability": float(pred.top_probability),  # unrounded: the threshold rule compares it
                         "unlike_training": UNFAMILIAR_NOTE in pred.notes})
        if progress is not None:
            progress(min(start + batch_size, len(items)), len(items))
    if not probs:
        raise EvaluateError("none of the images could be read")
    return evaluate_predictions(np.stack(probs), np.asarray(truth), spec.labels), rows, errors


def _counter(done: int, total: int) -> None:
    sys.stderr.write(f"\r{done}/{total} images")
    sys.stderr.flush()


def threshold_of_rows(rows: list[dict[str, Any]], threshold: float) -> ThresholdFigures:
    """The threshold figures from the per-image rows: each row's top probability and whether it was right."""
    return threshold_figures([r["probability"] for r in rows], [r["predicted"] == r["true"] for r in rows], threshold)


def unlike_training_line(rows: list[dict[str, Any]]) -> str:
    """How many images the runtime flagged as unlike the model's training images, and what that means."""
    flagged = sum(r["unlike_training"] for r in rows)
    line = f"unlike the training images: {flagged} of {len(rows)} ({flagged / max(len(rows), 1):.1%})"
    if flagged > 0.1 * len(rows):
        line += (" - these images differ from the model's training data (colour, focus or magnification); "
                 "the model card's figures may not hold for them")
    return line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="labelled folder: FOLDER/<class>/<image>")
    parser.add_argument("--model", required=True, help="model file, id or name (see `hemalens models`)")
    parser.add_argument("--map", action="append", metavar="FOLDER=LABEL", help="map a folder name to a model class")
    parser.add_argument("--split", choices=["auto", "test", "all"], default="auto",
                        help="test: only the held-out block (last 15%% by file number per class); all: every image; "
                             "auto (default): test for the model's own training folder, else all")
    parser.add_argument("--skip-unknown", action="store_true", help="leave out folders that match no class")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the figures (and per-image rows) as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress counter (none is shown off a terminal)")
    add_threshold_option(parser, "calls (counted apart, as the app would show them)")


def run(args: argparse.Namespace) -> int:
    from inference.registry import resolve_model
    from inference.session import ModelSession

    try:
        session = ModelSession.load(resolve_model(str(args.model)))
        split, why = resolve_split(args.split, args.folder, dict(session.spec.provenance.metrics or {}))
        counter = not args.quiet and sys.stderr.isatty()  # a log gets no \r run-on
        ev, rows, errors = evaluate_folder(session, args.folder, split, parse_mapping(args.map),
                                           skip_unknown=args.skip_unknown, progress=_counter if counter else None)
        if counter:
            sys.stderr.write("\n")
    except HemaLensError as exc:
        print(f"hemalens evaluate: {exc}", file=sys.stderr)
        return 2
    try:
        hint = "; --split all to override" if args.split == "auto" and split == "test" else ""
        print(f"model: {session.spec.name} ({session.path.name})\nfolder: {args.folder}  split: {split} ({why}{hint})")
        print(format_report(ev))
        thresholded = threshold_of_rows(rows, args.uncertain_below)
        print(thresholded.line())
        if session.spec.training_reference is not None:
            print(unlike_training_line(rows))
        sys.stdout.flush()
    except BrokenPipeError:  # output piped into `head` and closed early: not an error worth a traceback
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keep interpreter shutdown from flushing into the pipe
    for err in errors:
        print(f"skipped: {err}", file=sys.stderr)
    if args.json:
        doc = {"model": session.spec.name, "model_id": session.spec.id, "model_sha256": session.sha256,
               "folder": str(args.folder), "split": split, **ev.to_dict(), "threshold": thresholded.to_dict(),
               "unreadable": errors, "images": rows}
        try:
            write_file_atomically(args.json, json.dumps(doc, indent=1).encode("utf-8"))
        except OSError as exc:
            print(f"hemalens evaluate: cannot write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    return 0
