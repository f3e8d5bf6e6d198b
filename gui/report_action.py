"""The app's "Export report…": writes the open case's PDF, CSV and JSON on a worker thread.

The PDF runs the model on every flagged cell for its heatmap thumbnail, which takes from a
fraction of a second to minutes on a big case, so it never runs on the GUI thread. The worker
reads the review store (whose connection is shared across threads behind its own lock) and
answers with ``finished(ReportOutcome)`` or ``failed(str)``; it never raises into Qt.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from gui.job_thread import SingleJobThread
from inference.errors import HemaLensError
from review.records import sample_id_of


@dataclass(frozen=True)
class ReportTargets:
    """The three files of one report: the chosen PDF name and its CSV/JSON siblings."""

    pdf: Path
    csv: Path
    json: Path

    @classmethod
    def from_pdf(cls, pdf: str | Path) -> ReportTargets:
        pdf = Path(pdf)
        if pdf.suffix.lower() != ".pdf":
            pdf = pdf.with_name(pdf.name + ".pdf")
        return cls(pdf, pdf.with_suffix(".csv"), pdf.with_suffix(".json"))

    def paths(self) -> tuple[Path, Path, Path]:
        return self.pdf, self.csv, self.json


def default_report_name(case: Any, today: date | None = None) -> str:
    """``hemalens-case12-<sample ID or folder>-2026-11-23.pdf``: sortable, and says which case it is."""
    name = sample_id_of(case.details()) or Path(str(case.folder)).name
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_.") or "case"
    return f"hemalens-case{case.id}-{name[:40]}-{(today or date.today()).isoformat()}.pdf"


@dataclass(frozen=True)
class ReportJob:
    """What to export: the case, the images open in the window, and models that may draw heatmaps.

    ``sessions`` are ModelSessions already loaded (the current model); ``model_files`` are other
    model files to search (by SHA-256) when a flagged image was classified by a different model.
    """

    case: Any
    targets: ReportTargets
    image_hashes: tuple[str, ...]
    sessions: tuple[Any, ...] = ()
    open_paths: tuple[str, ...] | None = None  # the files open in the app: limits the "not classified" list
    uncertain_below: float | None = None  # the app's threshold: calls under it are reported as Unidentified
    class_names: tuple[tuple[str, str], ...] = ()  # (id, name) over the installed models, for foreign classes
    model_files: tuple[Path, ...] = ()
    heatmaps: bool = True
    colormap: str = "jet"  # the heatmap colours chosen in the app (gui.settings.HEATMAP_COLOURS)


@dataclass(frozen=True)
class ReportOutcome:
    """What the worker wrote (``result`` is gui.report_export.ExportResult) and what it left out."""

    result: Any
    targets: ReportTargets
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())


def _extra_sessions(wanted: set[str], have: set[str], files: Sequence[Path]) -> tuple[list[Any], list[str]]:
    """Load the model files whose SHA-256 a flagged image was classified with (not loaded yet)."""
    from inference.session import ModelSession
    from review.store import file_sha256

    missing = wanted - have
    sessions: list[Any] = []
    notes: list[str] = []
    for path in dict.fromkeys(files):
        if not missing:
            break
        try:
            if file_sha256(path) not in missing:
                continue
            session = ModelSession.load(path)
        except (OSError, HemaLensError) as exc:
            notes.append(f"model {Path(path).name} skipped: {exc}")
            continue
        sessions.append(session)
        missing.discard(session.sha256)
    return sessions, notes


def check_destination(targets: ReportTargets) -> None:
    """Refuse, before anything is written, a destination that cannot take all three files.

    The report writers would fail too, but only after writing the first file and with the
    operating system's wording ("File exists", "Not a directory"); this says what is wrong.
    """
    from review.report import ReportError

    folder = targets.pdf.parent
    for ancestor in (folder, *folder.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise ReportError(f"Cannot write the report: {ancestor} is a file, not a folder.")
            if not os.access(ancestor, os.W_OK | os.X_OK):
                what = "files" if ancestor == folder else f"the folder {folder}"
                raise ReportError(f"Cannot write the report: no permission to create {what} in {ancestor}.")
            break
    for path in targets.paths():
        if path.is_dir():
            raise ReportError(f"Cannot write the report: {path} is a folder.")


def run_report_job(job: ReportJob) -> ReportOutcome:
    """Write the report files for ``job`` (any thread). Raises HemaLensError with a clear message."""
    from gui.report_export import export_case_report
    from review.report import ReportError

    started = time.monotonic()
    check_destination(job.targets)
    states = job.case.current_state()
    hashes = [h for h in dict.fromkeys(job.image_hashes) if h in states]
    if not hashes:
        raise ReportError("Nothing to report yet: no image of this case has been classified and recorded.")
    sessions = list(job.sessions)
    notes: list[str] = []
    if job.heatmaps:
        wanted = {states[h].model_sha256 for h in hashes if states[h].flagged and states[h].model_sha256}
        extra, notes = _extra_sessions(wanted, {s.sha256 for s in sessions}, job.model_files)
        sessions += extra
    result = export_case_report(
        job.case,
        pdf=job.targets.pdf,
        csv=job.targets.csv,
        json=job.targets.json,
        image_hashes=hashes,
        open_paths=job.open_paths,
        uncertain_below=job.uncertain_below,
        class_names=dict(job.class_names),
        sessions=sessions,
        heatmaps=job.heatmaps,
        colormap=job.colormap,
    )
    return ReportOutcome(result, job.targets, time.monotonic() - started, tuple(notes))


def warm_up_report_modules() -> None:
    """Import the report writers and lay out one line of report text (fonts), on the report thread.

    A first import compiles and executes modules while holding the GIL, and the first text layout
    loads fonts under Qt's font lock; either stalls the GUI thread for a few hundred ms when it
    happens on the user's click. Done while the file dialog is open instead, nobody notices.
    """
    import gui.report_export  # noqa: F401
    import review.report  # noqa: F401
    from gui.report_pdf import ensure_gui_application

    ensure_gui_application()
    from PySide6.QtGui import QFont, QTextDocument

    doc = QTextDocument()
    doc.setDefaultFont(QFont("DejaVu Sans", 9))
    doc.setHtml("<h1>HemaLens</h1><p><b>warm-up</b> 0123456789 %</p>")
    doc.size()


class ReportExporter(SingleJobThread):
    """Owns the report thread; one export at a time. ``finished(ReportOutcome)``/``failed(str)`` arrive on the
    GUI thread.

    ``shutdown`` lets a running export finish (its files are written atomically)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__("hemalens-report", warm_up_report_modules, parent, unexpected_prefix="Report not written: ")

    def export(self, job: ReportJob) -> bool:
        """Start writing; False (nothing started) while another export is still running."""
        return self._submit(lambda: run_report_job(job))
