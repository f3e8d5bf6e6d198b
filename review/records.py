"""Plain records read back from the review store (no database or Qt types leak out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class StoredPrediction:
    """One model call on one image, as recorded; used to skip re-classifying on resume."""

    id: int
    image_hash: str
    image_path: str
    model_name: str
    model_version: str
    model_sha256: str
    predicted_id: str
    probabilities: dict[str, float]
    recorded_at: str
    notes: tuple[str, ...] | None = None  # None: recorded before notes were kept (schema v1)


@dataclass(frozen=True)
class Decision:
    """One technician decision, exactly as appended to the audit trail.

    ``prediction`` is the model call the technician saw when deciding (None when none was
    recorded for that image yet).
    """

    id: int
    case_id: int
    image_hash: str
    image_path: str
    reviewed_id: str | None
    flagged: bool
    comment: str
    user: str
    decided_at: str
    prediction: StoredPrediction | None = None
    decided_together: int | None = None  # images decided in the same act (a gallery group); None: this one alone


@dataclass(frozen=True)
class ImageState:
    """The current state of one image in a case, derived from the append-only records.

    The prediction fields come from the prediction the latest decision was made against, or
    from the latest prediction when the image has not been decided yet. ``reviewed_id`` is None
    until someone has given the image a class.
    """

    image_hash: str
    last_path: str
    predicted_id: str | None
    probabilities: dict[str, float]
    reviewed_id: str | None
    flagged: bool
    comment: str
    reviewer: str | None
    decided_at: str | None
    model_name: str | None = None
    model_version: str | None = None
    model_sha256: str | None = None
    decision_count: int = 0
    notes: tuple[str, ...] = ()  # what the app noted with the model's call (quality, unlike training)

    @property
    def reviewed(self) -> bool:
        return self.reviewed_id is not None


@dataclass(frozen=True)
class CaseEvent:
    """A sign-off or a reopen of a case (both are kept: the trail shows every change of state)."""

    id: int
    kind: str
    user: str
    reason: str
    at: str
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class UnclassifiedImage:
    """A file of the case that no model could classify (unreadable, corrupt), and why."""

    image_path: str
    image_hash: str | None  # None when not even its bytes could be read
    reason: str
    recorded_at: str


@dataclass(frozen=True)
class CaseDetails:
    """What identifies a case on paper (sample or slide ID, a note), and who set it when."""

    sample_id: str
    note: str
    user: str
    at: str


def signed_hashes(events: Sequence[CaseEvent]) -> frozenset[str] | None:
    """The image hashes the sign-off in force covers, from a case's events (None when it is not signed)."""
    if not events or events[-1].kind != "sign":
        return None
    return frozenset(events[-1].detail.get("image_hashes", ()))


def sample_id_of(details: CaseDetails | None) -> str:
    """The case's sample or slide ID, or "" when none was ever set."""
    return details.sample_id if details is not None else ""


def readable_time(iso: str | None) -> str:
    """A recorded time (ISO 8601 UTC, as the store writes it) for people: to the second, in this
    computer's time zone with its offset, e.g. ``2026-12-07 17:45:00 (UTC+01:00)``, or ``... UTC`` where
    the offset is zero. With the offset the time stays unambiguous in a report read elsewhere."""
    if not iso:
        return ""
    try:
        when = datetime.fromisoformat(iso)
        if when.tzinfo is None:
            return iso
        when = when.astimezone()
    except (ValueError, OverflowError, OSError):
        return iso  # not a time this code wrote: shown as it is rather than hidden
    offset = when.utcoffset() or timedelta(0)
    text = when.strftime("%Y-%m-%d %H:%M:%S")
    if not offset:
        return f"{text} UTC"
    sign, minutes = ("+" if offset >= timedelta(0) else "-"), int(abs(offset).total_seconds()) // 60
    return f"{text} (UTC{sign}{minutes // 60:02d}:{minutes % 60:02d})"
