"""The review database schema and its migrations.

The schema version lives in SQLite's ``PRAGMA user_version``. ``MIGRATIONS[n]`` turns a
version ``n - 1`` database into version ``n``; they run in order inside one transaction, after
a backup copy of the old file has been written next to it, so an interrupted or failed upgrade
never costs a record. Records are append-only: triggers refuse UPDATE and DELETE on them, so
even a buggy caller cannot overwrite a technician's decision.
"""

from __future__ import annotations


def _append_only(table: str) -> str:
    """Triggers that refuse UPDATE and DELETE on ``table``: its rows are records, never edited."""
    return f"""
CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, 'review records are append-only: {table} rows cannot be changed'); END;
CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, 'review records are append-only: {table} rows cannot be deleted'); END;
"""


SCHEMA_V1 = """
CREATE TABLE cases (
    id INTEGER PRIMARY KEY,
    folder TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE predictions (
    id INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases(id),
    image_hash TEXT NOT NULL,
    image_path TEXT NOT NULL,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    predicted_id TEXT NOT NULL,
    probabilities TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX predictions_by_image ON predictions(case_id, image_hash, model_sha256);

CREATE TABLE decisions (
    id INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases(id),
    image_hash TEXT NOT NULL,
    image_path TEXT NOT NULL,
    prediction_id INTEGER REFERENCES predictions(id),
    reviewed_id TEXT,
    flagged INTEGER NOT NULL CHECK (flagged IN (0, 1)),
    comment TEXT NOT NULL,
    user TEXT NOT NULL,
    decided_at TEXT NOT NULL
);
CREATE INDEX decisions_by_image ON decisions(case_id, image_hash);
CREATE INDEX decisions_by_hash ON decisions(image_hash);

CREATE TABLE case_events (
    id INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases(id),
    kind TEXT NOT NULL CHECK (kind IN ('sign', 'reopen')),
    user TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX case_events_by_case ON case_events(case_id);
""" + "".join(_append_only(table) for table in ("cases", "predictions", "decisions", "case_events"))

# v2: what the app noted about the image with the model's call (image quality, unlike the model's
# training images), a JSON list of sentences. NULL on calls recorded before v2: unknown, so the app
# classifies those images again instead of reusing the call without its notes.
SCHEMA_V2 = "ALTER TABLE predictions ADD COLUMN notes TEXT;"

# v3: images the app could not classify (unreadable or corrupt files) and why, so a report says which
# files of the case were never assessed. image_hash is NULL when the file could not even be read.
SCHEMA_V3 = """
CREATE TABLE unclassified (
    id INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases(id),
    image_hash TEXT,
    image_path TEXT NOT NULL,
    reason TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX unclassified_by_case ON unclassified(case_id);
""" + _append_only("unclassified")

# v4: what identifies the case on paper: the sample or slide ID and a note, set by the technician. The
# latest row is in force; earlier ones stay as the trail of who changed them.
SCHEMA_V4 = """
CREATE TABLE case_details (
    id INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases(id),
    sample_id TEXT NOT NULL,
    note TEXT NOT NULL,
    user TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX case_details_by_case ON case_details(case_id);
""" + _append_only("case_details")

# v5: how many images were decided together in one act (a class group accepted at once in the gallery, or the
# undo of one), so the audit trail tells a decision made on one image on screen from one of a group made on
# thumbnails. NULL: one image (and every decision recorded before v5).
SCHEMA_V5 = "ALTER TABLE decisions ADD COLUMN decided_together INTEGER;"

# version -> SQL script that upgrades the previous version to it. Add new versions at the end;
# never edit a released one.
MIGRATIONS: dict[int, str] = {1: SCHEMA_V1, 2: SCHEMA_V2, 3: SCHEMA_V3, 4: SCHEMA_V4, 5: SCHEMA_V5}


def latest_version(migrations: dict[int, str] | None = None) -> int:
    """The schema version this code writes."""
    return max((migrations or MIGRATIONS).keys())
