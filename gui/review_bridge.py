"""Every call the app makes to the review store, in one place.

The store (review/store.py) commits each decision before returning and raises ReviewStoreError
when it cannot; this module turns that into a state the window can show, and after a failure
refuses further decisions (the store's own rule) instead of pretending they were saved.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gui.calls import UNIDENTIFIED_ID
from gui.items import ModelInfo, names_folder
from inference.images import STALE_DECODING_NOTES
from review.records import sample_id_of, signed_hashes
from review.store import DecisionRequest, ReviewConflictError, ReviewInputError, ReviewStore, file_sha256


def current_user() -> str:
    """The reviewer's name as recorded with each decision (the OS login name)."""
    try:
        return getpass.getuser() or "unknown"
    except Exception:  # noqa: BLE001 - no login name in some sandboxes
        return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


REVIEWER_NAME_MAX = 80


def reviewer_label(name: str, login: str) -> str:
    """Who a decision is recorded for: the name the reviewer gave, with the login beside it, so a shared
    workstation account still tells technicians apart and a typed name never hides who was logged in."""
    name = " ".join(name.split())[:REVIEWER_NAME_MAX]
    return login if not name or name == login else f"{name} ({login})"


def case_folder(sources: Sequence[Path]) -> Path:
    """The folder a set of opened paths belongs to: the folder itself, or the files' common parent, symbolic links
    resolved (one folder is one case, however it was reached); the list's ``names_folder`` of the resolved paths."""
    return names_folder([Path(p).resolve() for p in sources])


class PredictionRecorder:
    """Used by the batch worker thread: hashes images, reuses and records predictions for one case.

    A failed write stops recording (the classification itself goes on) and is reported once.
    """

    def __init__(self, case: Any) -> None:
        self._case = case
        self._failure: str | None = None

    def open_in_thread(self) -> PredictionRecorder:
        return self  # the store's connection is shared across threads behind its own lock

    @staticmethod
    def hash_file(path: Path) -> str:
        return file_sha256(path)

    def cached(self, image_hash: str, model: ModelInfo) -> tuple[np.ndarray, tuple[str, ...]] | None:
        """Probabilities (in class order) and notes this exact model file gave this image content before.

        A call recorded without its notes (before they were kept) is a miss: the image is classified
        again rather than shown without a warning it may have had."""
        if self._failure is not None:
            return None
        try:
            stored = self._case.cached_prediction(image_hash, model.sha256)
        except Exception:  # noqa: BLE001 - a cache miss is harmless: the image is classified again
            return None
        if stored is None or stored.notes is None or not STALE_DECODING_NOTES.isdisjoint(stored.notes):
            return None  # no notes kept, or the image was decoded by an earlier, wrong rule: classified again
        probs = stored.probabilities
        if set(probs) != set(model.class_ids):
            return None
        return np.array([probs[c] for c in model.class_ids], dtype=np.float32), stored.notes

    def record(self, path: Path, image_hash: str, model: ModelInfo, probabilities: np.ndarray,
               notes: Sequence[str] = ()) -> None:
        self._write(lambda: self._case.record_prediction(
            path,
            image_hash,
            model_name=model.name,
            model_version=model.version,
            model_sha256=model.sha256,
            predicted_id=model.class_ids[int(np.argmax(probabilities))],
            probabilities={c: float(p) for c, p in zip(model.class_ids, probabilities, strict=False)},
            notes=notes,
        ))

    def record_unclassified(self, path: Path, image_hash: str | None, reason: str) -> None:
        self._write(lambda: self._case.record_unclassified(path, image_hash, reason))

    def _write(self, write: Callable[[], Any]) -> None:
        """Run one store write; after the first failure, stop writing (reported once by close())."""
        if self._failure is not None:
            return
        try:
            write()
        except Exception as exc:  # noqa: BLE001
            self._failure = f"Predictions are not being saved: {exc}"

    def close(self) -> str | None:
        return self._failure


class ReviewBridge:
    """The app's review session: one store, one case per opened folder, decisions by this user."""

    def __init__(self, db_path: Path | None = None) -> None:
        self._db_path = db_path
        self._store: Any = None
        self._case: Any = None
        self.error: str | None = None
        self.login = current_user()
        self.user = self.login

    def set_reviewer_name(self, name: str) -> None:
        """Record later decisions and sign-offs under this name (with the login; empty: the login alone)."""
        self.user = reviewer_label(name, self.login)

    @property
    def active(self) -> bool:
        """True when decisions can be recorded now."""
        return self._case is not None and self.error is None

    @property
    def case(self) -> Any:
        return self._case

    @property
    def db_path(self) -> Path | None:
        return None if self._store is None else Path(self._store.path)

    def open_store(self) -> str | None:
        """Open the database ahead of the first folder (at start-up, not while a folder opens)."""
        if self._store is None:
            try:
                self._store = ReviewStore.open(self._db_path)
            except Exception as exc:  # noqa: BLE001 - shown in the window; decisions are then refused
                self.error = f"Review records unavailable: {exc}"
        return self.error

    def open_case(self, folder: Path) -> str | None:
        """Open (or resume) the case for a folder; returns an error message, or None when fine."""
        self._case = None
        self.error = None
        try:
            if self._store is None:
                self._store = ReviewStore.open(self._db_path)
            self._case = self._store.open_case(folder)
        except Exception as exc:  # noqa: BLE001 - shown in the window; decisions are then refused
            self.error = f"Review records unavailable: {exc}"
        return self.error

    def _read(self, read: Callable[[Any], Any], default: Any) -> Any:
        """``read(case)``, or ``default`` when no case is open or the read fails: what the window shows from
        the records is then missing, never wrong; writes report their own errors."""
        if self._case is None:
            return default
        try:
            return read(self._case)
        except Exception:  # noqa: BLE001
            return default

    def details(self) -> Any:
        """The case's sample ID and note (review.records.CaseDetails), or None when not set or unavailable."""
        return self._read(lambda case: case.details(), None)

    def sample_id(self) -> str:
        """The case's sample or slide ID ("" when none is set or the records cannot be read)."""
        return sample_id_of(self.details())

    def history(self, image_hash: str) -> list[Any]:
        """This image's decisions in the open case, oldest first (empty when unavailable)."""
        return self._read(lambda case: case.history(image_hash), [])

    def recent_comments(self) -> list[str]:
        """Comments written lately in any case, newest first (empty when unavailable): the comment prompt's
        suggestions."""
        store = self._store
        return self._read(lambda _case: store.recent_comments(), [])

    def record_counts(self) -> tuple[int, int] | None:
        """(decisions, sign-off events + case details) on record; None when no case is open or unreadable."""
        return self._read(lambda case: case.record_counts(), None)

    def set_details(self, sample_id: str, note: str) -> None:
        """Record the case's details, committed before returning; raises the store's error (signed case...)."""
        if self._case is None:
            raise RuntimeError(self.error or "No review case is open.")
        self._guarded(lambda: self._case.set_details(sample_id, note, user=self.user))

    def states(self) -> dict[str, Any]:
        """Current state per image hash (decisions restored on resume); empty when unavailable."""
        if self._case is None:
            return {}
        try:
            return dict(self._case.current_state())
        except Exception as exc:  # noqa: BLE001
            self.error = f"Review records unavailable: {exc}"
            return {}

    def recorder(self) -> PredictionRecorder | None:
        return PredictionRecorder(self._case) if self.active else None

    def decide(self, requests: Sequence[DecisionRequest]) -> None:
        """Record decisions on one or more images in one transaction, committed before returning (all or
        none); raises ReviewStoreError-like errors, and ReviewConflictError when an image has more decisions
        on record than its request's ``expect_count``."""
        if not self.active:
            raise RuntimeError(self.error or "No review case is open.")
        self._guarded(lambda: self._case.record_decisions(requests, user=self.user))

    def _guarded(self, write: Callable[[], Any]) -> None:
        """Run one store write; a failure other than bad input or a signed case stops further decisions."""
        try:
            write()
        except Exception as exc:
            if not isinstance(exc, (ReviewInputError, ReviewConflictError)) and self.signed_by() is None:
                self.error = f"Decisions can no longer be saved: {exc}"
            raise

    def signed_by(self) -> tuple[str, str] | None:
        return self._read(lambda case: case.signed_by(), None)

    def signed_images(self) -> frozenset[str]:
        """The content hashes the sign-off in force covers (empty when not signed)."""
        return self._read(lambda case: signed_hashes(case.events()), None) or frozenset()

    def can_sign(self, hashes: list[str]) -> tuple[bool, str]:
        if self._case is None:
            return False, self.error or "No review case is open."
        return self._case.can_sign(hashes, {UNIDENTIFIED_ID})

    def sign(self, hashes: list[str]) -> None:
        self._case.sign(self.user, hashes, {UNIDENTIFIED_ID})

    def reopen(self, reason: str) -> None:
        self._case.reopen(self.user, reason)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        self._store = self._case = None
