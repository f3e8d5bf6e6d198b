"""The review store: every technician decision committed to SQLite before the call returns.

Why it is built this way:

- stdlib ``sqlite3`` in WAL mode with ``synchronous=FULL``: each write is its own
  ``BEGIN IMMEDIATE ... COMMIT`` and the WAL is fsynced on commit, so a decision that was
  acknowledged (the call returned) survives a crash or a power cut.
- Records are keyed by the image's content hash: a renamed or moved image keeps its history,
  and an image whose pixels changed (new hash) starts clean.
- Decisions, predictions and sign-off events are append-only (triggers refuse UPDATE/DELETE);
  the current state of a case is derived from them.
- Any write failure (disk full, read-only folder, database locked by another instance) raises
  :class:`ReviewStoreError` with a message a technician can act on, and the store then refuses
  every further write until it is reopened, so nothing is ever silently dropped or recorded
  out of order. Source images are only ever opened for reading (to hash them).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import stat
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from inference.errors import HemaLensError
from inference.file_mode import NAME_BYTES, odd_name_bytes
from review.records import (
    CaseDetails,
    CaseEvent,
    Decision,
    ImageState,
    StoredPrediction,
    UnclassifiedImage,
    readable_time,
)
from review.schema import MIGRATIONS, latest_version

DB_FILENAME = "reviews.sqlite3"
DB_ENV_VAR = "HEMALENS_REVIEW_DB"
DEFAULT_UNIDENTIFIED_IDS: frozenset[str] = frozenset({"unidentified"})
DEFAULT_BUSY_TIMEOUT_S = 5.0

# SQLite primary result codes (https://www.sqlite.org/rescode.html).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR = 5, 6, 8, 10
_SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_PERM = 13, 14, 3


class ReviewStoreError(HemaLensError):
    """A review record could not be saved or read; the caller must stop accepting decisions."""


class ReviewInputError(HemaLensError, ValueError):
    """A caller passed a value the store will not record (empty user, bad probabilities...)."""


class ReviewConflictError(HemaLensError):
    """The image was decided meanwhile by someone else (another window, another program): the decision
    was made against a state that is no longer the latest, so it is not recorded. ``latest`` is what is."""

    def __init__(self, message: str, latest: Decision, count: int) -> None:
        super().__init__(message)
        self.latest = latest
        self.count = count


def default_db_path() -> Path:
    """``$HEMALENS_REVIEW_DB`` if set, else ``user_data_dir("HemaLens")/reviews.sqlite3``."""
    override = os.environ.get(DB_ENV_VAR)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("HemaLens", appauthor=False)) / DB_FILENAME


def file_sha256(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, streamed so large images never sit in memory twice. A pipe, socket or
    device is refused (OSError) before it is opened: reading a pipe would wait for a writer forever."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(f"{Path(path).name} is not a regular file (a pipe, socket or device), so it is not read")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _db_path(path: str | Path) -> str | bytes:
    """A path as stored: its text, or its raw bytes (kept as a BLOB) when the name is not valid UTF-8, as
    files from old Windows shares can be. SQLite text must be UTF-8, and one such name used to stop the
    whole case from saving; the bytes give the exact name back."""
    raw = odd_name_bytes(path)
    return str(path) if raw is None else raw


def _py_path(value: str | bytes) -> str:
    """The stored path back as Python text (undecodable bytes as surrogates, as os.listdir gives them)."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _error_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def explain_sqlite_error(exc: sqlite3.Error, db_path: Path, action: str) -> str:
    """Turn an SQLite failure into a sentence saying what happened and what to do."""
    code, text = _error_code(exc), str(exc).lower()
    where = f"the review database {db_path}"
    if code == _SQLITE_FULL or "full" in text:
        why = f"the disk holding {where} is full. Free some space, then reopen the case"
    elif code in (_SQLITE_READONLY, _SQLITE_PERM) or "readonly" in text or "read-only" in text:
        why = f"{where} is read-only (or its folder is). Make it writable or choose another data folder"
    elif code in (_SQLITE_BUSY, _SQLITE_LOCKED) or "locked" in text or "busy" in text:
        why = (
            f"{where} is locked by another HemaLens instance or another program. "
            "Close the other instance, then reopen the case"
        )
    elif code == _SQLITE_CANTOPEN or "unable to open" in text:
        why = f"{where} cannot be opened or created (missing or read-only folder?)"
    elif code == _SQLITE_IOERR or "i/o" in text:
        why = f"the disk reported an I/O error on {where}"
    else:
        why = f"{where} failed ({exc})"
    return f"Could not {action}: {why}. Nothing was recorded; no further decisions will be accepted until it is fixed."


def _refuse_newer_schema(conn: sqlite3.Connection, path: Path, known: int | None = None) -> None:
    known = latest_version(MIGRATIONS) if known is None else known
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > known:
        raise ReviewStoreError(
            f"The review database {path} was written by a newer HemaLens (schema {version}, "
            f"this one knows {known}). Update HemaLens; the database was left untouched."
        )


def _check_probabilities(probabilities: dict[str, float]) -> dict[str, float]:
    if not isinstance(probabilities, dict) or not probabilities:
        raise ReviewInputError("probabilities must be a non-empty dict of class id -> probability")
    out: dict[str, float] = {}
    for key, value in probabilities.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ReviewInputError(f"probability for {key!r} is not a number: {value!r}") from None
        if not math.isfinite(number) or not 0.0 <= number <= 1.0:
            raise ReviewInputError(f"probability for {key!r} must be within [0, 1], got {value!r}")
        out[str(key)] = number
    return out


def _check_text(value: Any, what: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise ReviewInputError(f"{what} must be a {'' if allow_empty else 'non-empty '}string, got {value!r}")
    value = value.encode("utf-8", NAME_BYTES).decode("utf-8")  # e.g. an odd file name in a reason
    return value.strip() if not allow_empty else value


def _known_notes(pred: StoredPrediction | None, latest: StoredPrediction | None) -> tuple[str, ...]:
    """The notes of the call a decision was made against; for a call recorded before notes were kept,
    those of a later run of the same model file on the same content (notes depend on nothing else)."""
    if pred is not None and pred.notes is None and latest is not None and latest.model_sha256 == pred.model_sha256:
        pred = latest
    return (pred.notes or ()) if pred is not None else ()


def _check_hash(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ReviewInputError(f"image hash must be a lower-case hex SHA-256, got {value!r}")
    return value


class ReviewStore:
    """One SQLite review database; open it with :meth:`open`, then :meth:`open_case` per folder."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.RLock()
        self._failure: str | None = None
        self.journal_mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, db_path: Path | str | None = None, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> ReviewStore:
        """Open (creating and migrating as needed) the database; raises ReviewStoreError."""
        path = Path(db_path).expanduser() if db_path is not None else default_db_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ReviewStoreError(
                f"Could not create the review data folder {path.parent}: {exc.strerror or exc}. "
                "No decisions can be recorded."
            ) from exc
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            _refuse_newer_schema(conn, path)  # before anything (even the WAL switch) touches the file
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            store = cls(path, conn)
            store._migrate()
            return store
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise ReviewStoreError(explain_sqlite_error(exc, path, "open the review database")) from exc
        except ReviewStoreError:
            if conn is not None:
                conn.close()
            raise
        except OSError as exc:  # the pre-migration backup could not be written
            if conn is not None:
                conn.close()
            raise ReviewStoreError(
                f"Could not back up the review database {path} before upgrading it: {exc.strerror or exc}. "
                "It was left unchanged."
            ) from exc

    def _migrate(self, migrations: dict[int, str] | None = None) -> None:
        """Bring the schema up to date; a write probe even when nothing is to do, so a
        read-only or locked database is reported at open time, not at the first decision."""
        migrations = migrations or MIGRATIONS
        target = latest_version(migrations)
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            _refuse_newer_schema(conn, self.path, target)
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version == target:
                conn.execute(f"PRAGMA user_version = {target}")  # a real write: proves we can write
                conn.execute("COMMIT")
                return
            conn.execute("ROLLBACK")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if version > 0:
            self._backup(f".v{version}.bak")
        script = "".join(migrations[v] for v in range(version + 1, target + 1))
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {target};\nCOMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if int(conn.execute("PRAGMA user_version").fetchone()[0]) == target:
                return  # another HemaLens instance upgraded it at the same moment
            raise

    def _backup(self, suffix: str) -> None:
        """Copy the database (consistently, through SQLite) before changing its schema."""
        target = self.path.with_name(self.path.name + suffix)
        tmp = target.with_name(target.name + ".tmp")
        dest = sqlite3.connect(str(tmp))
        try:
            self._conn.backup(dest)
        finally:
            dest.close()
        os.replace(tmp, target)

    # -- state ------------------------------------------------------------------------------
    @property
    def failure(self) -> str | None:
        """The message of the write failure that stopped this store, or None while healthy."""
        return self._failure

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        """One committed transaction; on any database error the store stops accepting writes."""
        with self._lock:
            if self._failure is not None:
                raise ReviewStoreError(f"Could not {action}: an earlier write failed. {self._failure}")
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                self._failure = explain_sqlite_error(exc, self.path, action)
                raise ReviewStoreError(self._failure) from exc
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite rolls back by itself when the connection closes

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                cursor = self._conn.execute(sql, tuple(params))
                cursor.row_factory = sqlite3.Row
                return cursor.fetchall()
            except sqlite3.Error as exc:
                raise ReviewStoreError(explain_sqlite_error(exc, self.path, "read review records")) from exc

    # -- cases -------------------------------------------------------------------------------
    def open_case(self, folder: str | Path) -> Case:
        """The case for this folder: resumed when it exists, created otherwise."""
        resolved = Path(folder).expanduser().resolve()
        existing = self.find_case(resolved)
        if existing is not None:
            return existing
        with self._write("start a review case") as conn:
            conn.execute("INSERT OR IGNORE INTO cases(folder, created_at) VALUES (?, ?)", (_db_path(resolved), _now()))
        found = self.find_case(resolved)
        assert found is not None
        return found

    def find_case(self, folder: str | Path) -> Case | None:
        """The case for this folder without creating one."""
        key = _db_path(Path(folder).expanduser().resolve())
        rows = self._read("SELECT id, folder, created_at FROM cases WHERE folder = ?", (key,))
        return Case(self, rows[0]["id"], Path(_py_path(rows[0]["folder"])), rows[0]["created_at"]) if rows else None

    def get_case(self, case_id: int) -> Case:
        rows = self._read("SELECT id, folder, created_at FROM cases WHERE id = ?", (int(case_id),))
        if not rows:
            raise ReviewInputError(f"There is no review case with id {case_id} in {self.path}")
        return Case(self, rows[0]["id"], Path(_py_path(rows[0]["folder"])), rows[0]["created_at"])

    def list_cases(self) -> list[Case]:
        rows = self._read("SELECT id, folder, created_at FROM cases ORDER BY id")
        return [Case(self, r["id"], Path(_py_path(r["folder"])), r["created_at"]) for r in rows]

    def recent_comments(self, limit: int = 30) -> list[str]:
        """The comments written lately, newest first, each once (every case): the words a lab keeps using."""
        rows = self._read(
            "SELECT comment FROM decisions WHERE comment != '' GROUP BY comment ORDER BY MAX(id) DESC LIMIT ?",
            (int(limit),),
        )
        return [r["comment"] for r in rows]

    def image_history(self, image_hash: str) -> list[Decision]:
        """Every decision on this image content in any case (e.g. after moving it to another folder)."""
        rows = self._read("SELECT * FROM decisions WHERE image_hash = ? ORDER BY id", (_check_hash(image_hash),))
        return [self._decision(r) for r in rows]

    # -- row mapping ---------------------------------------------------------------------------
    def _prediction(self, row: sqlite3.Row) -> StoredPrediction:
        return StoredPrediction(
            id=row["id"],
            image_hash=row["image_hash"],
            image_path=_py_path(row["image_path"]),
            model_name=row["model_name"],
            model_version=row["model_version"],
            model_sha256=row["model_sha256"],
            predicted_id=row["predicted_id"],
            probabilities=json.loads(row["probabilities"]),
            recorded_at=row["recorded_at"],
            notes=None if row["notes"] is None else tuple(json.loads(row["notes"])),
        )

    def _prediction_by_id(self, prediction_id: int | None) -> StoredPrediction | None:
        if prediction_id is None:
            return None
        rows = self._read("SELECT * FROM predictions WHERE id = ?", (prediction_id,))
        return self._prediction(rows[0]) if rows else None

    def _decision(self, row: sqlite3.Row, predictions: dict[int, StoredPrediction] | None = None) -> Decision:
        pid = row["prediction_id"]
        prediction = predictions.get(pid) if predictions is not None and pid is not None else None
        if prediction is None and pid is not None:
            prediction = self._prediction_by_id(pid)
        return Decision(
            id=row["id"],
            case_id=row["case_id"],
            image_hash=row["image_hash"],
            image_path=_py_path(row["image_path"]),
            reviewed_id=row["reviewed_id"],
            flagged=bool(row["flagged"]),
            comment=row["comment"],
            user=row["user"],
            decided_at=row["decided_at"],
            prediction=prediction,
            decided_together=row["decided_together"],
        )


@dataclass(frozen=True)
class DecisionRequest:
    """One decision as a caller asks for it; ``expect_count`` as in :meth:`Case.record_decision`."""

    image_path: str | Path
    image_hash: str
    reviewed_id: str | None
    flagged: bool
    comment: str = ""
    expect_count: int | None = None


class Case:
    """One reviewed folder. All methods write through to the store immediately."""

    def __init__(self, store: ReviewStore, case_id: int, folder: Path, created_at: str) -> None:
        self._store = store
        self.id = int(case_id)
        self.folder = folder
        self.created_at = created_at

    def __repr__(self) -> str:
        return f"Case(id={self.id}, folder={str(self.folder)!r})"

    # -- predictions ---------------------------------------------------------------------------
    def record_prediction(
        self,
        image_path: str | Path,
        image_hash: str,
        *,
        model_name: str,
        model_version: str,
        model_sha256: str,
        predicted_id: str,
        probabilities: dict[str, float],
        notes: Sequence[str] = (),
    ) -> None:
        """Remember what a model said about an image, with the notes shown beside the call (image
        quality, unlike the training images), so a resumed case need not re-run it."""
        row = (
            self.id,
            _check_hash(image_hash),
            _db_path(image_path),
            _check_text(model_name, "model_name"),
            _check_text(model_version, "model_version", allow_empty=True),
            _check_text(model_sha256, "model_sha256"),
            _check_text(predicted_id, "predicted_id"),
            json.dumps(_check_probabilities(probabilities), sort_keys=False),
            _now(),
            json.dumps([_check_text(n, "note") for n in notes], ensure_ascii=False),
        )
        with self._store._write("save the prediction") as conn:
            conn.execute(
                "INSERT INTO predictions(case_id, image_hash, image_path, model_name, model_version, "
                "model_sha256, predicted_id, probabilities, recorded_at, notes) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

    def cached_prediction(self, image_hash: str, model_sha256: str) -> StoredPrediction | None:
        """The latest prediction for this image content by this exact model file, if any."""
        rows = self._store._read(
            "SELECT * FROM predictions WHERE case_id = ? AND image_hash = ? AND model_sha256 = ? "
            "ORDER BY id DESC LIMIT 1",
            (self.id, _check_hash(image_hash), model_sha256),
        )
        return self._store._prediction(rows[0]) if rows else None

    def record_unclassified(self, image_path: str | Path, image_hash: str | None, reason: str) -> None:
        """Remember that a file could not be classified, so reports name it instead of leaving it out
        silently. The same file failing again for the same reason, with no call at its path since, adds nothing."""
        row = (
            self.id,
            None if image_hash is None else _check_hash(image_hash),
            _db_path(image_path),
            _check_text(reason, "reason"),
        )
        with self._store._write("save the unclassified image") as conn:
            if conn.execute(
                "SELECT 1 FROM unclassified WHERE case_id = ? AND image_hash IS ? AND image_path = ? AND reason = ? "
                "AND recorded_at >= COALESCE((SELECT MAX(recorded_at) FROM predictions "
                "WHERE case_id = ? AND image_path = ?), '')",
                (*row, self.id, row[2]),
            ).fetchone():
                return
            conn.execute(
                "INSERT INTO unclassified(case_id, image_hash, image_path, reason, recorded_at) VALUES (?, ?, ?, ?, ?)",
                (*row, _now()),
            )

    def unclassified_images(self) -> list[UnclassifiedImage]:
        """Files whose latest record at their path is a failure: a file classified at that path since
        (fixed, new content) or a content classified anywhere in the case no longer counts. By path."""
        rows = self._store._read("SELECT * FROM unclassified WHERE case_id = ? ORDER BY id", (self.id,))
        latest_at_path: dict[str, str] = {}
        classified: set[str] = set()
        for p in self.predictions():  # decisions do not count: a flag on an unreadable file classifies nothing
            latest_at_path[p.image_path] = max(latest_at_path.get(p.image_path, ""), p.recorded_at)
            classified.add(p.image_hash)
        found: dict[str, UnclassifiedImage] = {}
        for r in rows:
            path, image_hash = _py_path(r["image_path"]), r["image_hash"]
            if r["recorded_at"] < latest_at_path.get(path, "") or image_hash in classified:
                continue
            found[path] = UnclassifiedImage(path, image_hash, r["reason"], r["recorded_at"])
        return [found[p] for p in sorted(found)]

    # -- decisions ------------------------------------------------------------------------------
    def record_decision(
        self,
        image_path: str | Path,
        image_hash: str,
        *,
        reviewed_id: str | None,
        flagged: bool,
        comment: str = "",
        user: str,
        expect_count: int | None = None,
    ) -> Decision:
        """Append a decision (committed before returning); raises ReviewStoreError when the
        case is signed or the database cannot be written.

        ``expect_count`` is how many decisions on this image the caller has seen. When more are on
        record (another window on the same case decided it since), nothing is written and
        ReviewConflictError says what the latest one is: a window that was not looking at it must not
        overwrite it. Decisions are append-only, so the count is a version number."""
        request = DecisionRequest(image_path, image_hash, reviewed_id, flagged, comment, expect_count)
        return self.record_decisions([request], user=user)[0]

    def record_decisions(self, requests: Sequence[DecisionRequest], *, user: str) -> list[Decision]:
        """Append several decisions in one transaction: all are recorded or none is (a group confirmed at
        once is one act; a conflict or a full disk halfway must not leave half of it on record). Each records how
        many were decided together, so the audit trail tells them from decisions made one image at a time."""
        user = _check_text(user, "user")
        checked = [
            DecisionRequest(
                r.image_path,
                _check_hash(r.image_hash),
                None if r.reviewed_id is None else _check_text(r.reviewed_id, "reviewed_id"),
                bool(r.flagged),
                _check_text(r.comment, "comment", allow_empty=True),
                r.expect_count,
            )
            for r in requests
        ]
        at = _now()
        together = len(checked) if len(checked) > 1 else None  # recorded with each, for the audit trail
        written: list[tuple[DecisionRequest, int, int | None]] = []
        with self._store._write("save the decision" if len(checked) == 1 else "save the decisions") as conn:
            self._refuse_if_signed(conn)
            for r in checked:
                if r.expect_count is not None:
                    self._refuse_if_changed(r.image_hash, r.expect_count)
                found = conn.execute(
                    "SELECT id FROM predictions WHERE case_id = ? AND image_hash = ? ORDER BY id DESC LIMIT 1",
                    (self.id, r.image_hash),
                ).fetchone()
                prediction_id = found[0] if found else None
                cursor = conn.execute(
                    "INSERT INTO decisions(case_id, image_hash, image_path, prediction_id, reviewed_id, flagged, "
                    "comment, user, decided_at, decided_together) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (self.id, r.image_hash, _db_path(r.image_path), prediction_id, r.reviewed_id,
                     int(r.flagged), r.comment, user, at, together),
                )
                written.append((r, int(cursor.lastrowid or 0), prediction_id))
        return [
            Decision(
                id=decision_id,
                case_id=self.id,
                image_hash=r.image_hash,
                image_path=str(r.image_path),
                reviewed_id=r.reviewed_id,
                flagged=r.flagged,
                comment=r.comment,
                user=user,
                decided_at=at,
                prediction=self._store._prediction_by_id(prediction_id),
                decided_together=together,
            )
            for r, decision_id, prediction_id in written
        ]

    def _refuse_if_changed(self, image_hash: str, expect_count: int) -> None:
        """Inside the write transaction (the same connection, so no other writer can slip in between)."""
        count = int(self._store._read(
            "SELECT COUNT(*) FROM decisions WHERE case_id = ? AND image_hash = ?", (self.id, image_hash)
        )[0][0])
        if count == expect_count:
            return
        if not count:  # fewer on record than the caller saw: the caller's count is wrong, not the record
            raise ReviewInputError(f"expect_count {expect_count} but no decision on this image is on record")
        latest = self.history(image_hash)[-1]
        raise ReviewConflictError(
            f"{Path(latest.image_path).name} was decided meanwhile by {latest.user} at "
            f"{readable_time(latest.decided_at)} (another HemaLens window on this case?)",
            latest,
            count,
        )

    def _refuse_if_signed(self, conn: sqlite3.Connection) -> None:
        last = conn.execute(
            "SELECT kind, user, at FROM case_events WHERE case_id = ? ORDER BY id DESC LIMIT 1", (self.id,)
        ).fetchone()
        if last is not None and last[0] == "sign":
            raise ReviewStoreError(
                f"This case was signed by {last[1]} at {readable_time(last[2])}; "
                "reopen it (with a reason) before changing it."
            )

    def decisions(self) -> list[Decision]:
        """The full audit trail of this case, oldest first."""
        return self._decisions({p.id: p for p in self.predictions()})

    def _decisions(self, predictions: dict[int, StoredPrediction]) -> list[Decision]:
        rows = self._store._read("SELECT * FROM decisions WHERE case_id = ? ORDER BY id", (self.id,))
        return [self._store._decision(r, predictions) for r in rows]

    def record_counts(self) -> tuple[int, int]:
        """(decisions, sign-off events + case details) on record: one cheap query that tells a window
        whether another one has changed the case since it last looked (the records are append-only)."""
        row = self._store._read(
            "SELECT (SELECT COUNT(*) FROM decisions WHERE case_id = ?), "
            "(SELECT COUNT(*) FROM case_events WHERE case_id = ?) "
            "+ (SELECT COUNT(*) FROM case_details WHERE case_id = ?)",
            (self.id, self.id, self.id),
        )[0]
        return int(row[0]), int(row[1])

    def history(self, image_hash: str) -> list[Decision]:
        """Every decision on this image content in this case, oldest first (one indexed query: the window
        asks for it each time an image is shown)."""
        rows = self._store._read(
            "SELECT * FROM decisions WHERE case_id = ? AND image_hash = ? ORDER BY id",
            (self.id, _check_hash(image_hash)),
        )
        return [self._store._decision(r) for r in rows]

    def predictions(self) -> list[StoredPrediction]:
        rows = self._store._read("SELECT * FROM predictions WHERE case_id = ? ORDER BY id", (self.id,))
        return [self._store._prediction(r) for r in rows]

    def current_state(self) -> dict[str, ImageState]:
        """Per image hash: the latest decision over the prediction it was made against."""
        with self._store._lock:  # one consistent view even while a worker thread records predictions
            return self._current_state()

    def _current_state(self) -> dict[str, ImageState]:
        predictions = self.predictions()
        by_id = {p.id: p for p in predictions}
        decisions = self._decisions(by_id)
        latest_pred: dict[str, StoredPrediction] = {}
        last_seen: dict[str, tuple[str, str]] = {}  # hash -> (time, path)
        for p in predictions:
            latest_pred[p.image_hash] = p
            last_seen[p.image_hash] = max(last_seen.get(p.image_hash, ("", "")), (p.recorded_at, p.image_path))
        latest_dec: dict[str, Decision] = {}
        counts: dict[str, int] = {}
        for d in decisions:
            latest_dec[d.image_hash] = d
            counts[d.image_hash] = counts.get(d.image_hash, 0) + 1
            last_seen[d.image_hash] = max(last_seen.get(d.image_hash, ("", "")), (d.decided_at, d.image_path))
        states: dict[str, ImageState] = {}
        for image_hash, (_, path) in last_seen.items():
            dec = latest_dec.get(image_hash)
            pred = (by_id.get(dec.prediction.id) if dec and dec.prediction else None) or latest_pred.get(image_hash)
            states[image_hash] = ImageState(
                image_hash=image_hash,
                last_path=path,
                predicted_id=pred.predicted_id if pred else None,
                probabilities=dict(pred.probabilities) if pred else {},
                reviewed_id=dec.reviewed_id if dec else None,
                flagged=dec.flagged if dec else False,
                comment=dec.comment if dec else "",
                reviewer=dec.user if dec else None,
                decided_at=dec.decided_at if dec else None,
                model_name=pred.model_name if pred else None,
                model_version=pred.model_version if pred else None,
                model_sha256=pred.model_sha256 if pred else None,
                decision_count=counts.get(image_hash, 0),
                notes=_known_notes(pred, latest_pred.get(image_hash)),
            )
        return states

    def current_hashes(self) -> list[str]:
        """The image set the case is about now: the latest content seen at each path.

        A changed image replaces its old hash at that path; a moved image (same hash at a new
        path) counts once. The GUI normally passes the hashes of the files it sees instead.
        """
        latest_at_path: dict[str, tuple[str, str]] = {}
        for state_time, path, image_hash in self._path_sightings():
            if path not in latest_at_path or state_time >= latest_at_path[path][0]:
                latest_at_path[path] = (state_time, image_hash)
        return sorted({h for _, h in latest_at_path.values()})

    def _path_sightings(self) -> list[tuple[str, str, str]]:
        rows = self._store._read(
            "SELECT recorded_at AS at, image_path, image_hash FROM predictions WHERE case_id = ? "
            "UNION ALL SELECT decided_at AS at, image_path, image_hash FROM decisions WHERE case_id = ? ORDER BY at",
            (self.id, self.id),
        )
        return [(r["at"], _py_path(r["image_path"]), r["image_hash"]) for r in rows]

    # -- details --------------------------------------------------------------------------------
    def set_details(self, sample_id: str, note: str, *, user: str) -> CaseDetails:
        """Record the case's sample or slide ID and note (both may be empty); refused once signed, as the
        signed report names them."""
        details = CaseDetails(
            _check_text(sample_id, "sample_id", allow_empty=True).strip(),
            _check_text(note, "note", allow_empty=True).strip(),
            _check_text(user, "user"),
            _now(),
        )
        with self._store._write("save the case details") as conn:
            self._refuse_if_signed(conn)
            conn.execute(
                "INSERT INTO case_details(case_id, sample_id, note, user, at) VALUES (?, ?, ?, ?, ?)",
                (self.id, details.sample_id, details.note, details.user, details.at),
            )
        return details

    def details(self) -> CaseDetails | None:
        """The details in force (the latest set), or None when none were ever set."""
        rows = self._store._read(
            "SELECT sample_id, note, user, at FROM case_details WHERE case_id = ? ORDER BY id DESC LIMIT 1", (self.id,)
        )
        return CaseDetails(*rows[0]) if rows else None

    # -- sign-off ---------------------------------------------------------------------------------
    def events(self) -> list[CaseEvent]:
        rows = self._store._read("SELECT * FROM case_events WHERE case_id = ? ORDER BY id", (self.id,))
        return [
            CaseEvent(
                id=r["id"],
                kind=r["kind"],
                user=r["user"],
                reason=r["reason"],
                at=r["at"],
                detail=json.loads(r["detail"]),
            )
            for r in rows
        ]

    def signed_by(self) -> tuple[str, str] | None:
        """(user, ISO time) of the sign-off in force, or None when the case is open."""
        events = self.events()
        if events and events[-1].kind == "sign":
            return events[-1].user, events[-1].at
        return None

    def can_sign(
        self,
        paths_hashes: list[str] | None = None,
        unidentified_ids: set[str] | frozenset[str] = DEFAULT_UNIDENTIFIED_IDS,
    ) -> tuple[bool, str]:
        """Whether the case may be signed: every listed image reviewed, none left Unidentified.

        ``paths_hashes`` are the content hashes of the images in the case now (default:
        :meth:`current_hashes`). The message says what blocks signing, or what will be signed.
        """
        signed = self.signed_by()
        if signed is not None:
            return False, f"Already signed by {signed[0]} at {readable_time(signed[1])}."
        hashes = list(dict.fromkeys(paths_hashes if paths_hashes is not None else self.current_hashes()))
        if not hashes:
            return False, "There are no images in this case to sign."
        unidentified = {u.lower() for u in unidentified_ids}
        states = self.current_state()
        unreviewed = [h for h in hashes if h not in states or states[h].reviewed_id is None]
        stuck = [h for h in hashes if h in states and (states[h].reviewed_id or "").lower() in unidentified]
        problems = []
        if unreviewed:
            problems.append(f"{len(unreviewed)} of {len(hashes)} images not reviewed yet")
        if stuck:
            problems.append(f"{len(stuck)} image{'s' if len(stuck) != 1 else ''} still in Unidentified")
        if problems:
            return False, "Cannot sign: " + "; ".join(problems) + "."
        return True, f"All {len(hashes)} images reviewed; ready to sign."

    def sign(
        self,
        user: str,
        paths_hashes: list[str] | None = None,
        unidentified_ids: set[str] | frozenset[str] = DEFAULT_UNIDENTIFIED_IDS,
    ) -> None:
        """Sign the case (name and time recorded); raises ReviewStoreError when not allowed."""
        user = _check_text(user, "user")
        hashes = list(dict.fromkeys(paths_hashes if paths_hashes is not None else self.current_hashes()))
        ok, message = self.can_sign(hashes, unidentified_ids)
        if not ok:
            raise ReviewStoreError(message)
        detail = json.dumps({"images": len(hashes), "image_hashes": sorted(hashes)})
        with self._store._write("sign the case") as conn:
            self._refuse_if_signed(conn)
            conn.execute(
                "INSERT INTO case_events(case_id, kind, user, reason, detail, at) VALUES (?, 'sign', ?, '', ?, ?)",
                (self.id, user, detail, _now()),
            )

    def reopen(self, user: str, reason: str) -> None:
        """Reopen a signed case for changes; who and why are kept in the trail."""
        user = _check_text(user, "user")
        reason = _check_text(reason, "reason")
        if self.signed_by() is None:
            raise ReviewStoreError("This case is not signed, so there is nothing to reopen.")
        with self._store._write("reopen the case") as conn:
            conn.execute(
                "INSERT INTO case_events(case_id, kind, user, reason, detail, at) VALUES (?, 'reopen', ?, ?, '{}', ?)",
                (self.id, user, reason, _now()),
            )


__all__ = [
    "Case",
    "CaseEvent",
    "Decision",
    "ImageState",
    "ReviewInputError",
    "ReviewStore",
    "ReviewStoreError",
    "StoredPrediction",
    "default_db_path",
    "file_sha256",
]
