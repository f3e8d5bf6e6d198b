"""Case reports as data: per-image rows, differential counts, and CSV / JSON files.

The PDF (gui/report_pdf.py) is drawn from the same :class:`CaseReport`, so the three formats
can never disagree. Files are written to a temporary name and moved into place, so a crash or
a full disk never leaves a half-written report that looks complete.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hemalens import RESEARCH_USE_STATEMENT, __version__
from inference.errors import HemaLensError
from inference.file_mode import NAME_BYTES, write_file_atomically
from inference.file_order import natural_key
from inference.images import needs_attention
from inference.uncertainty import UNIDENTIFIED_ID, is_uncertain
from review.records import CaseDetails, CaseEvent, Decision, sample_id_of, signed_hashes
from review.store import Case

REPORT_FORMAT_VERSION = 5  # 2: per-image "notes" (JSON images, CSV column); 3: "unclassified" files and
# "uncertain_below" (JSON), uncertain model calls counted as Unidentified; 4: the case's "sample_id" and "note"
# (JSON "case"; CSV first column "sample_id", so rows pooled from several cases keep their sample); 5: JSON
# "counts" "by_folder", the counts of each folder of the case (one sub-folder per slide or patient is common)
CSV_FIXED_COLUMNS = (
    "sample_id",
    "file",
    "image_sha256",
    "model_name",
    "model_version",
    "model_sha256",
    "predicted_class",
)
CSV_TAIL_COLUMNS = ("uncertain", "notes", "reviewed_class", "flagged", "comment", "reviewer", "reviewed_at")
NOT_REVIEWED = "(not reviewed)"
NOT_CLASSIFIED = "(not classified)"


class ReportError(HemaLensError):
    """A report could not be built or written (unknown case, unwritable destination...)."""


@dataclass(frozen=True)
class ReportRow:
    """One image in the report, as the technician left it."""

    file: str
    path: str
    image_sha256: str
    model_name: str | None
    model_version: str | None
    model_sha256: str | None
    predicted_class: str | None
    probabilities: dict[str, float]
    reviewed_class: str | None
    flagged: bool
    comment: str
    reviewer: str | None
    reviewed_at: str | None
    notes: tuple[str, ...] = ()  # shown with the model's call: image quality, unlike the training images


@dataclass(frozen=True)
class UnclassifiedRow:
    """A file of the case no model could classify: never assessed, so the report names it."""

    file: str
    path: str
    image_sha256: str | None
    reason: str


@dataclass(frozen=True)
class ModelUsed:
    name: str
    version: str
    sha256: str
    images: int


@dataclass(frozen=True)
class CaseReport:
    """Everything a report shows, built once from the store by :func:`build_report`."""

    case_id: int
    folder: str
    created_at: str
    generated_at: str
    rows: tuple[ReportRow, ...]
    class_ids: tuple[str, ...]
    counts_predicted: dict[str, int]
    counts_reviewed: dict[str, int]
    models: tuple[ModelUsed, ...]
    signed_by: tuple[str, str] | None
    events: tuple[CaseEvent, ...]
    trail: tuple[Decision, ...] = field(default=(), repr=False)
    unclassified: tuple[UnclassifiedRow, ...] = ()
    uncertain_below: float | None = None  # the app's threshold: calls under it count as Unidentified
    details: CaseDetails | None = None  # sample or slide ID and note, as set by the technician

    @property
    def sample_id(self) -> str:
        return sample_id_of(self.details)

    @property
    def case_note(self) -> str:
        return self.details.note if self.details is not None else ""

    @property
    def signed_images(self) -> frozenset[str] | None:
        """Content hashes the sign-off in force covers (None when the case is not signed)."""
        return None if self.signed_by is None else signed_hashes(self.events)

    @property
    def not_signed_rows(self) -> list[ReportRow]:
        """In a signed case, images added or changed since the sign-off: nobody signed for them."""
        signed = self.signed_images
        return [] if signed is None else [r for r in self.rows if r.image_sha256 not in signed]

    @property
    def signed_but_gone(self) -> int:
        """Images the sign-off in force covered that are no longer among the report's files (deleted, moved)."""
        return len((self.signed_images or frozenset()) - {r.image_sha256 for r in self.rows})

    @property
    def uncertain_rows(self) -> list[ReportRow]:
        """Images whose model call was under the threshold: the app showed them as Unidentified."""
        return [r for r in self.rows if is_uncertain_call(r, self.uncertain_below)]

    @property
    def flagged_rows(self) -> list[ReportRow]:
        return [r for r in self.rows if r.flagged]

    @property
    def commented_unflagged_rows(self) -> list[ReportRow]:
        """Images with a reviewer's comment but no flag (a flagged cell's comment is with its picture)."""
        return [r for r in self.rows if r.comment and not r.flagged]

    @property
    def noted_rows(self) -> list[ReportRow]:
        """Images whose model call came with a note that needs attention (quality, unlike the training images);
        a faithful conversion (bit depth, EXIF rotation) alone does not put a call on weaker ground."""
        return [r for r in self.rows if any(needs_attention(n) for n in r.notes)]

    @property
    def reviewed_count(self) -> int:
        return sum(1 for r in self.rows if r.reviewed_class is not None)

    @property
    def reviewed_in_groups(self) -> int:
        """Reviewed images whose decision in force was made together with others (a gallery group, on its
        thumbnails), so the reader knows how much of the review was done image by image."""
        latest = {d.image_hash: d for d in self.trail}  # the trail is in the order recorded
        return sum(1 for r in self.rows if r.reviewed_class is not None
                   and (d := latest.get(r.image_sha256)) is not None and d.decided_together)

    @property
    def changed_count(self) -> int:
        """Images where the technician's class differs from the model's call."""
        return sum(1 for r in self.rows if r.reviewed_class is not None and r.reviewed_class != r.predicted_class)


def is_uncertain_call(row: ReportRow, threshold: float | None) -> bool:
    """Whether the app showed this row's call as Unidentified (inference.uncertainty)."""
    if threshold is None or not row.probabilities:
        return False
    return is_uncertain(max(row.probabilities.values()), threshold)


def _model_call(row: ReportRow, threshold: float | None) -> str:
    if row.predicted_class is None:
        return NOT_CLASSIFIED
    return UNIDENTIFIED_ID if is_uncertain_call(row, threshold) else row.predicted_class


def _relative(path: str, folder: Path) -> str:
    try:
        return Path(path).resolve().relative_to(folder).as_posix()
    except ValueError:
        return path


def build_report(
    case: Case,
    image_hashes: list[str] | None = None,
    open_paths: Collection[str] | None = None,
    uncertain_below: float | None = None,
) -> CaseReport:
    """Gather the case's current state into a report (default image set: ``case.current_hashes()``).

    ``open_paths`` (the files the app has open) limits the files listed as not classified to those;
    by default every file the case recorded as not classified, and not classified since, is listed.
    ``uncertain_below``: the app's uncertainty threshold; model calls under it count as Unidentified
    in the counts, as the app showed them (each row keeps the model's top class and probabilities)."""
    states = case.current_state()
    hashes = list(dict.fromkeys(image_hashes if image_hashes is not None else case.current_hashes()))
    rows = []
    for image_hash in hashes:
        state = states.get(image_hash)
        if state is None:
            raise ReportError(f"Image {image_hash[:12]}... has no record in case {case.id} ({case.folder})")
        rows.append(
            ReportRow(
                file=_relative(state.last_path, case.folder),
                path=state.last_path,
                image_sha256=image_hash,
                model_name=state.model_name,
                model_version=state.model_version,
                model_sha256=state.model_sha256,
                predicted_class=state.predicted_id,
                probabilities=dict(state.probabilities),
                reviewed_class=state.reviewed_id,
                flagged=state.flagged,
                comment=state.comment,
                reviewer=state.reviewer,
                reviewed_at=state.decided_at,
                notes=tuple(state.notes),
            )
        )
    rows.sort(key=lambda r: natural_key(r.file))  # as the app's table lists them
    class_ids: list[str] = []
    for row in rows:
        for cid in (*row.probabilities, row.predicted_class, row.reviewed_class):
            if cid is not None and cid not in class_ids:
                class_ids.append(cid)
    model_counts = Counter((r.model_name, r.model_version, r.model_sha256) for r in rows if r.model_sha256)
    return CaseReport(
        case_id=case.id,
        folder=str(case.folder),
        created_at=case.created_at,
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        rows=tuple(rows),
        class_ids=tuple(class_ids),
        counts_predicted=dict(Counter(_model_call(r, uncertain_below) for r in rows)),
        counts_reviewed=dict(Counter(r.reviewed_class or NOT_REVIEWED for r in rows)),
        models=tuple(ModelUsed(n or "", v or "", s or "", c) for (n, v, s), c in model_counts.items()),
        signed_by=case.signed_by(),
        events=tuple(case.events()),
        trail=tuple(case.decisions()),
        unclassified=tuple(
            UnclassifiedRow(_relative(u.image_path, case.folder), u.image_path, u.image_hash, u.reason)
            for u in case.unclassified_images()
            if open_paths is None or u.image_path in open_paths
        ),
        uncertain_below=uncertain_below,
        details=case.details(),
    )


def differential(report: CaseReport) -> list[tuple[str, int, float, int, float]]:
    """(class, predicted count, %, reviewed count, %) per class, classes in model order."""
    total = len(report.rows) or 1
    names = list(report.class_ids)
    for extra in (*report.counts_predicted, *report.counts_reviewed):
        if extra not in names:
            names.append(extra)
    out = []
    for name in names:
        pre, post = report.counts_predicted.get(name, 0), report.counts_reviewed.get(name, 0)
        if pre or post or name in report.class_ids:
            out.append((name, pre, 100.0 * pre / total, post, 100.0 * post / total))
    return out


def folder_of(row: ReportRow) -> str:
    """The folder of the case a row's file is in, as a path under the case folder ("" for the case folder)."""
    return row.file.rpartition("/")[0]


def differential_by_folder(report: CaseReport) -> list[tuple[str, dict[str, int], dict[str, int]]]:
    """(folder, model-call counts, after-review counts) for each folder of the case, in file order: a case opened
    on a parent folder counts all its slides together, and each slide's own count is what a reader wants."""
    by_folder: dict[str, tuple[Counter[str], Counter[str]]] = {}
    for row in report.rows:
        predicted, reviewed = by_folder.setdefault(folder_of(row), (Counter(), Counter()))
        predicted[_model_call(row, report.uncertain_below)] += 1
        reviewed[row.reviewed_class or NOT_REVIEWED] += 1
    return [(folder, dict(predicted), dict(reviewed)) for folder, (predicted, reviewed) in by_folder.items()]


def moved_in_review(report: CaseReport) -> Counter[str]:
    """Per class, reviewed images the technician moved into it minus those moved out of it (against the
    model-call column). Images not reviewed yet move nothing: in a draft they are not the reviewer's change."""
    moved: Counter[str] = Counter()
    for row in report.rows:
        call = _model_call(row, report.uncertain_below)
        if row.reviewed_class is not None and row.reviewed_class != call:
            moved[row.reviewed_class] += 1
            moved[call] -= 1
    return moved


def _uncertain_or_none(row: ReportRow, report: CaseReport) -> bool | None:
    """None when the report was built without a threshold: unknown, not "certain"."""
    return None if report.uncertain_below is None else is_uncertain_call(row, report.uncertain_below)


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _csv_safe(text: str) -> str:
    """Keep spreadsheet programs from running a comment as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_columns(report: CaseReport) -> list[str]:
    return [*CSV_FIXED_COLUMNS, *(f"p_{cid}" for cid in report.class_ids), *CSV_TAIL_COLUMNS]


def report_csv(report: CaseReport) -> str:
    """One row per image; probabilities as one ``p_<class id>`` column per class."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(csv_columns(report))
    for row in report.rows:
        probs = [("" if cid not in row.probabilities else f"{row.probabilities[cid]:.6f}") for cid in report.class_ids]
        writer.writerow(
            [
                _csv_safe(report.sample_id),
                _csv_safe(row.file),
                row.image_sha256,
                row.model_name or "",
                row.model_version or "",
                row.model_sha256 or "",
                row.predicted_class or "",
                *probs,
                "" if (uncertain := _uncertain_or_none(row, report)) is None else _yes_no(uncertain),
                _csv_safe("; ".join(row.notes)),
                row.reviewed_class or "",
                _yes_no(row.flagged),
                _csv_safe(row.comment),
                row.reviewer or "",
                row.reviewed_at or "",
            ]
        )
    return buffer.getvalue()


def report_dict(report: CaseReport) -> dict[str, Any]:
    """The JSON document: case, sign-off, per-image rows, counts, and the full audit trail."""
    return {
        "format": "hemalens-case-report",
        "format_version": REPORT_FORMAT_VERSION,
        "hemalens_version": __version__,
        "research_use": RESEARCH_USE_STATEMENT,
        "generated_at": report.generated_at,
        "case": {
            "id": report.case_id,
            "folder": report.folder,
            "created_at": report.created_at,
            "sample_id": report.sample_id,
            "note": report.case_note,
            "details_set": None if report.details is None else {"user": report.details.user, "at": report.details.at},
        },
        "signed": None if report.signed_by is None else {
            "user": report.signed_by[0],
            "at": report.signed_by[1],
            "images": len(report.signed_images or ()),
            "not_covered": [r.file for r in report.not_signed_rows],  # added or changed since the sign-off
            "no_longer_present": report.signed_but_gone,  # signed then, gone from the files now
        },
        "sign_off_history": [asdict(e) for e in report.events],
        "models": [asdict(m) for m in report.models],
        "uncertain_below": report.uncertain_below,
        "counts": {"predicted": report.counts_predicted, "reviewed": report.counts_reviewed,
                   "reviewed_in_groups": report.reviewed_in_groups,
                   "by_folder": [{"folder": folder, "predicted": predicted, "reviewed": reviewed}
                                 for folder, predicted, reviewed in differential_by_folder(report)]},
        "images": [{**asdict(r), "uncertain": _uncertain_or_none(r, report)} for r in report.rows],
        "unclassified": [asdict(u) for u in report.unclassified],
        "audit_trail": [
            {
                "id": d.id,
                "image_sha256": d.image_hash,
                "file": d.image_path,
                "reviewed_class": d.reviewed_id,
                "flagged": d.flagged,
                "comment": d.comment,
                "user": d.user,
                "at": d.decided_at,
                "decided_together": d.decided_together,  # null: one image; N: one of N decided at once
                "predicted_class": d.prediction.predicted_id if d.prediction else None,
                "model_sha256": d.prediction.model_sha256 if d.prediction else None,
            }
            for d in report.trail
        ],
    }


def report_json(report: CaseReport) -> str:
    return json.dumps(report_dict(report), indent=2, ensure_ascii=False)


def write_atomically(path: str | Path, data: bytes, what: str = "the report") -> Path:
    """``inference.file_mode.write_file_atomically``, its failure said as a ReportError naming ``what``.

    The file gets the permissions any new file of the user gets (the umask), not the owner-only mode of
    the temporary file, so a colleague can open a report or picture left in a shared folder."""
    try:
        return write_file_atomically(path, data)
    except OSError as exc:
        raise ReportError(f"Cannot write {what} {path}: {exc.strerror or exc}") from exc


def write_csv(report: CaseReport, path: str | Path) -> Path:
    return write_atomically(path, report_csv(report).encode("utf-8-sig", NAME_BYTES))


def write_json(report: CaseReport, path: str | Path) -> Path:
    return write_atomically(path, report_json(report).encode("utf-8", NAME_BYTES))
