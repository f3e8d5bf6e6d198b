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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("case", help="the case folder (as opened in HemaLens), or the case number")
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


def _model_sessions(wanted: set[str], extra: list[Path]) -> dict[str, Any]:
    """Load the model files whose SHA-256 is one of ``wanted`` (explicit files first, then installed)."""
    from inference.registry import list_models
    from inference.session import ModelSession
    from review.store import file_sha256

    candidates = list(extra)
    with contextlib.suppress(HemaLensError):  # an unreadable models folder only means fewer candidates
        candidates += [entry.path for entry in list_models()]
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


def run(args: argparse.Namespace) -> int:
    if not (args.pdf or args.csv or args.json):
        print("hemalens report: error: give at least one of --pdf, --csv, --json", file=sys.stderr)
        return 2
    from review.report import ReportError, build_report, write_csv, write_json
    from review.store import ReviewStore, default_db_path

    db = args.db or default_db_path()
    try:
        if not Path(db).exists():
            raise ReportError(f"There is no review database at {db}; nothing has been reviewed yet.")
        with ReviewStore.open(db) as store:
            case = _find_case(store, args.case)
            report = build_report(case)
        written = []
        if args.csv:
            written.append(write_csv(report, args.csv))
        if args.json:
            written.append(write_json(report, args.json))
        if args.pdf:
            from gui.report_pdf import ModelCardSummary, heatmap_thumbnails, write_pdf

            sessions = _model_sessions({m.sha256 for m in report.models}, args.model)
            thumbnails = {}
            if not args.no_heatmaps:
                for sha in {r.model_sha256 for r in report.flagged_rows}:
                    rows = [r for r in report.flagged_rows if r.model_sha256 == sha]
                    thumbnails.update(heatmap_thumbnails(rows, sessions.get(sha or "")))
            cards = [ModelCardSummary.from_session(s) for s in sessions.values()]
            written.append(write_pdf(report, args.pdf, thumbnails=thumbnails, model_cards=cards))
    except HemaLensError as exc:
        print(f"hemalens report: error: {exc}", file=sys.stderr)
        return 1
    status = f"signed by {report.signed_by[0]}" if report.signed_by else "NOT SIGNED (draft)"
    print(f"Case #{report.case_id} ({report.folder}): {len(report.rows)} images, {status}")
    for path in written:
        print(f"wrote {path}")
    return 0
