"""One call that writes a case's reports (PDF, CSV, JSON): used by the app's export action and the CLI.

``export_case_report(case, pdf=..., csv=..., json=..., image_hashes=..., sessions=[...])``
builds the report once from the store, makes heatmap thumbnails of the flagged cells with the
model session that classified them (when it is among ``sessions``), and writes each file
atomically. Raises a HemaLensError subclass (ReportError, ReviewStoreError) with a clear message.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ExportResult:
    """What was written, and the sign-off state it was written in."""

    written: tuple[Path, ...]
    images: int
    signed_by: tuple[str, str] | None
    missing_heatmaps: int
    unclassified: int = 0  # files listed as never classified (unreadable, corrupt)
    not_signed: int = 0  # images of a signed case added or changed after the sign-off


def export_case_report(
    case: Any,
    *,
    pdf: str | Path | None = None,
    csv: str | Path | None = None,
    json: str | Path | None = None,
    image_hashes: list[str] | None = None,
    open_paths: Collection[str] | None = None,
    uncertain_below: float | None = None,
    class_names: Mapping[str, str] | None = None,
    sessions: Iterable[Any] = (),
    heatmaps: bool = True,
    colormap: str = "jet",
) -> ExportResult:
    """Write the requested report files for ``case`` (a ``review.store.Case``); the PDF's heatmaps in
    ``colormap`` (gui.settings.HEATMAP_COLOURS), as the app shows them."""
    from review.report import build_report, write_csv, write_json

    report = build_report(case, image_hashes, open_paths, uncertain_below)
    written: list[Path] = []
    if csv:
        written.append(write_csv(report, csv))
    if json:
        written.append(write_json(report, json))
    missing = 0
    if pdf:
        from gui.report_pdf import ModelCardSummary, Thumbnail, heatmap_thumbnails, write_pdf

        by_sha = {s.sha256: s for s in sessions}
        thumbnails: dict[str, Thumbnail] = {}
        if heatmaps:
            for sha in {r.model_sha256 for r in report.flagged_rows}:
                rows = [r for r in report.flagged_rows if r.model_sha256 == sha]
                thumbnails.update(heatmap_thumbnails(rows, by_sha.get(sha or ""), colormap=colormap))
        missing = sum(
            1 for r in report.flagged_rows if not getattr(thumbnails.get(r.image_sha256), "has_heatmap", False)
        )
        used = {m.sha256 for m in report.models}
        cards = [ModelCardSummary.from_session(s) for s in by_sha.values() if s.sha256 in used]
        written.append(write_pdf(report, pdf, thumbnails=thumbnails, model_cards=cards, class_names=class_names,
                                 colormap=colormap))
    return ExportResult(tuple(written), len(report.rows), report.signed_by, missing, len(report.unclassified),
                        len(report.not_signed_rows))
