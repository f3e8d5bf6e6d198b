"""Write a reviewed case's report (PDF, CSV, JSON) from the review records.

``hemalens report CASE --pdf out.pdf [--csv f] [--json f]``; CASE is the case's folder or its
number. Heatmap thumbnails of flagged cells and the model card come from the model file the
images were classified with, found by its SHA-256 among the installed models and any given
with ``--model``; without it the report still has everything else and says why a heatmap is
missing. Runs headless (Qt's offscreen platform) when there is no display.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from inference.errors import HemaLensError
from inference.uncertainty import add_threshold_option


def app_threshold() -> float:
    """The uncertainty threshold this user set in the app, so the command line reports what the window
    showed (the app's default when it was never changed)."""
    from gui.settings import AppSettings

    return AppSettings().threshold()


def app_heatmap_colours() -> str:
    """The heatmap colours this user chose in the app (View → Heatmap colours), for the PDF's heatmaps."""
    from gui.settings import AppSettings

    return AppSettings().heatmap_colours()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("case", nargs="?", help="the case folder (as opened in HemaLens), or the case number")
    parser.add_argument("--list", action="store_true", help="list the recorded cases and their sign-off state")
    parser.add_argument("--pdf", type=Path, help="write the PDF report here")
    parser.add_argument("--csv", type=Path, help="write the per-image CSV here")
    parser.add_argument("--json", type=Path, help="write the JSON report (with the audit trail) here")
    parser.add_argument("--db", type=Path, help="review database (default: the HemaLens data folder)")
    parser.add_argument(
        "--model",
        type=Path,
        action="append",
        default=[],
        help="model file to take heatmaps and the model card from (repeatable; installed models are searched too)",
    )
    parser.add_argument("--no-heatmaps", action="store_true", help="do not run the model for heatmap thumbnails")
    add_threshold_option(parser, "model calls (listed in the PDF)", "the threshold set in the app")


def _find_case(store: Any, case_arg: str) -> Any:
    from review.report import ReportError

    folder = Path(case_arg).expanduser()
    if folder.exists():
        case = store.find_case(folder)
        if case is None:
            known = ", ".join(f"#{c.id} {c.folder}" for c in store.list_cases()[-5:]) or "none"
            raise ReportError(
                f"No review case for {folder.resolve()} in {store.path}; open it in HemaLens first "
                f"(recent cases: {known})."
            )
        return case
    if case_arg.isdigit():
        return store.get_case(int(case_arg))
    raise ReportError(f"{case_arg} is neither an existing folder nor a case number.")


def _model_sessions(wanted: set[str], extra: list[Path], names: dict[str, str]) -> dict[str, Any]:
    """Load the model files whose SHA-256 is one of ``wanted`` (explicit files first, then installed);
    ``names`` gets every installed model's class names, for decisions recorded under another model."""
    from inference.registry import class_names, list_models
    from inference.session import ModelSession
    from review.store import file_sha256

    candidates = list(extra)
    with contextlib.suppress(HemaLensError):  # an unreadable models folder only means fewer candidates
        entries = list_models()
        candidates += [entry.path for entry in entries]
        names.update(class_names(entries))
    sessions: dict[str, Any] = {}
    for path in dict.fromkeys(candidates):
        if len(sessions) == len(wanted):
            break
        try:
            if file_sha256(path) not in wanted:
                continue
            session = ModelSession.load(path)
        except (OSError, HemaLensError) as exc:
            print(f"hemalens report: skipping model {path}: {exc}", file=sys.stderr)
            continue
        sessions[session.sha256] = session
    return sessions


def _list_cases(store: Any) -> None:
    from review.records import readable_time, sample_id_of

    for case in store.list_cases():
        signed = case.signed_by()
        state = f"signed by {signed[0]} {readable_time(signed[1])}" if signed else "open"
        print(f"#{case.id}\t{state}\t{sample_id_of(case.details())}\t{case.folder}")


def run(args: argparse.Namespace) -> int:
    if args.list:
        from review.store import ReviewStore, default_db_path

        db = args.db or default_db_path()
        if not Path(db).exists():
            print(f"No review database at {db}.")
            return 0
        try:
            with ReviewStore.open(db) as store:
                _list_cases(store)
        except HemaLensError as exc:
            print(f"hemalens report: error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.case is None:
        print("hemalens report: error: give a CASE (folder or number), or --list", file=sys.stderr)
        return 2
    if not (args.pdf or args.csv or args.json):
        print("hemalens report: error: give at least one of --pdf, --csv, --json", file=sys.stderr)
        return 2
    from gui.report_export import export_case_report
    from review.records import sample_id_of
    from review.report import ReportError
    from review.store import ReviewStore, default_db_path

    db = args.db or default_db_path()
    try:
        if not Path(db).exists():
            raise ReportError(f"There is no review database at {db}; nothing has been reviewed yet.")
        with ReviewStore.open(db) as store:
            case = _find_case(store, args.case)
            sample = sample_id_of(case.details())
            wanted = {p.model_sha256 for p in case.predictions()}
            names: dict[str, str] = {}
            sessions = _model_sessions(wanted, args.model, names) if args.pdf else {}  # heatmaps, model card
            result = export_case_report(
                case,
                pdf=args.pdf,
                csv=args.csv,
                json=args.json,
                sessions=sessions.values(),
                heatmaps=not args.no_heatmaps,
                uncertain_below=app_threshold() if args.uncertain_below is None else args.uncertain_below,
                class_names=names,
                colormap=app_heatmap_colours(),
            )
    except HemaLensError as exc:
        print(f"hemalens report: error: {exc}", file=sys.stderr)
        return 1
    status = f"signed by {result.signed_by[0]}" if result.signed_by else "NOT SIGNED (draft)"
    if result.not_signed:
        status += f", but {result.not_signed} image(s) added or changed since are NOT covered by the sign-off"
    print(f"Case #{case.id} ({case.folder}): {f'sample {sample}, ' if sample else ''}{result.images} images, {status}")
    if result.unclassified:
        print(f"note: {result.unclassified} file(s) could not be classified; the PDF and JSON list them and why")
    if result.missing_heatmaps:
        print(f"note: {result.missing_heatmaps} flagged cell(s) without a heatmap (see the captions in the PDF)")
    for path in result.written:
        print(f"wrote {path}")
    return 0
