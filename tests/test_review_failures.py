"""The store fails loudly, never silently: read-only folder, locked database, full disk, schema.

Each test checks three things: a ReviewStoreError with a message that says what to do, the
store refusing further decisions afterwards, and every decision acknowledged before the
failure still being there when the database is reopened.
"""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import review.store as store_module
from review.schema import SCHEMA_V1
from review.store import ReviewStore, ReviewStoreError

ROOT = Path(__file__).resolve().parents[1]
HASHES = [f"{i:064x}" for i in range(1, 400)]


def _decide(case, i: int, comment: str = "") -> None:
    case.record_decision(f"img{i}.png", HASHES[i], reviewed_id="benign", flagged=False, comment=comment, user="ann")


def _acknowledged(db: Path) -> list[str]:
    with ReviewStore.open(db) as store:
        return [d.image_hash for case in store.list_cases() for d in case.decisions()]


# Runs as an unprivileged user when the tests run as root (root ignores file permissions):
# everything is imported first, then the process drops to "nobody" before touching the store.
_READONLY_CHILD = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from review.store import ReviewStore, ReviewStoreError
if os.geteuid() == 0:
    os.setgid(65534)
    os.setuid(65534)
try:
    store = ReviewStore.open(sys.argv[2])
    case = store.open_case(sys.argv[3])
    case.record_decision("a.png", "c" * 64, reviewed_id="benign", flagged=False, user="ann")
    print(json.dumps({"error": None}))
except ReviewStoreError as exc:
    print(json.dumps({"error": str(exc)}))
"""


@pytest.fixture()
def shared_tmp() -> Iterator[Path]:
    """A temp folder an unprivileged child process can traverse (pytest's tmp_path is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="hemalens-ro-"))
    folder.chmod(0o755)
    yield folder
    for path in sorted(folder.rglob("*"), reverse=True):
        path.chmod(0o755 if path.is_dir() else 0o644)
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    folder.rmdir()


def _run_readonly_child(db: Path, case_folder: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _READONLY_CHILD, str(ROOT), str(db), str(case_folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_read_only_data_folder_is_refused_at_open(shared_tmp: Path) -> None:
    data = shared_tmp / "data"
    data.mkdir(mode=0o555)
    data.chmod(0o555)
    result = _run_readonly_child(data / "reviews.sqlite3", shared_tmp)
    assert result["error"] is not None
    assert "Could not open the review database" in result["error"]
    assert str(data / "reviews.sqlite3") in result["error"]
    assert "no further decisions will be accepted" in result["error"]
    assert list(data.iterdir()) == []


def test_existing_database_made_read_only_is_refused_and_keeps_records(shared_tmp: Path) -> None:
    data = shared_tmp / "data"
    data.mkdir()
    db = data / "reviews.sqlite3"
    with ReviewStore.open(db) as store:
        _decide(store.open_case(shared_tmp), 1)
    for path in data.iterdir():
        path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    data.chmod(0o555)
    result = _run_readonly_child(db, shared_tmp)
    assert result["error"] is not None and "read-only" in result["error"]
    data.chmod(0o755)
    for path in data.iterdir():
        path.chmod(0o644)
    assert _acknowledged(db) == [HASHES[1]]


def test_locked_by_another_instance_refuses_and_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "reviews.sqlite3"
    store = ReviewStore.open(db, busy_timeout_s=0.2)
    case = store.open_case(tmp_path)
    _decide(case, 1)
    other = sqlite3.connect(str(db), isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    with pytest.raises(ReviewStoreError, match="locked by another HemaLens instance") as caught:
        _decide(case, 2)
    assert "Nothing was recorded" in str(caught.value)
    # A second instance cannot even open the store while the lock is held.
    with pytest.raises(ReviewStoreError, match="locked"):
        ReviewStore.open(db, busy_timeout_s=0.2)
    other.execute("ROLLBACK")
    other.close()
    # Once a write failed the store refuses further decisions, even though the lock is gone.
    assert store.failure is not None
    with pytest.raises(ReviewStoreError, match="an earlier write failed"):
        _decide(case, 3)
    store.close()
    assert _acknowledged(db) == [HASHES[1]]
    with ReviewStore.open(db) as reopened:  # reopening after the fix works again
        _decide(reopened.open_case(tmp_path), 4)
    assert _acknowledged(db) == [HASHES[1], HASHES[4]]


def test_disk_full_refuses_and_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "reviews.sqlite3"
    store = ReviewStore.open(db)
    case = store.open_case(tmp_path)
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages + 3}")  # the "disk" has 3 pages left
    acknowledged = []
    with pytest.raises(ReviewStoreError, match="disk holding the review database .* is full") as caught:
        for i in range(1, 200):
            _decide(case, i, comment="x" * 2000)
            acknowledged.append(HASHES[i])
    assert acknowledged, "some decisions must fit before the disk is full"
    assert "Free some space" in str(caught.value)
    with pytest.raises(ReviewStoreError, match="an earlier write failed"):
        _decide(case, 300)
    store.close()
    assert _acknowledged(db) == acknowledged


def test_database_from_a_newer_hemalens_is_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "reviews.sqlite3"
    raw = sqlite3.connect(str(db))
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    before = db.read_bytes()
    with pytest.raises(ReviewStoreError, match="newer HemaLens"):
        ReviewStore.open(db)
    assert db.read_bytes() == before


def _v1_database(db: Path, folder: Path) -> None:
    """A database as the first release wrote it: one prediction (no notes column yet) and one decision."""
    raw = sqlite3.connect(str(db))
    raw.executescript(SCHEMA_V1 + "PRAGMA user_version = 1;")
    at = "2026-01-01T00:00:00+00:00"
    with raw:
        raw.execute("INSERT INTO cases(id, folder, created_at) VALUES (1, ?, ?)", (str(folder.resolve()), at))
        raw.execute(
            "INSERT INTO predictions(id, case_id, image_hash, image_path, model_name, model_version, model_sha256, "
            "predicted_id, probabilities, recorded_at) VALUES (1, 1, ?, 'img1.png', 'M', '1', ?, 'benign', "
            "'{\"benign\": 1.0}', ?)", (HASHES[1], "f" * 64, at))
        raw.execute(
            "INSERT INTO decisions(case_id, image_hash, image_path, prediction_id, reviewed_id, flagged, comment, "
            "user, decided_at) VALUES (1, ?, 'img1.png', 1, 'benign', 0, '', 'ann', ?)", (HASHES[1], at))
    raw.close()


def test_migration_upgrades_keeps_records_and_writes_a_backup(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "reviews.sqlite3"
    _v1_database(db, tmp_path)
    with ReviewStore.open(db) as store:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == 5
        assert "notes" in [r[1] for r in store._conn.execute("PRAGMA table_info(predictions)")]
        assert [r[1] for r in store._conn.execute("PRAGMA table_info(unclassified)")][1:4] == [
            "case_id", "image_hash", "image_path"]
        case = store.open_case(tmp_path)
        assert [d.image_hash for d in case.decisions()] == [HASHES[1]]
        assert case.decisions()[0].decided_together is None  # v5: an older decision was one image's
        assert case.details() is None  # v4: no sample ID set on a case from before it existed
        old = case.cached_prediction(HASHES[1], "f" * 64)
        assert old is not None and old.predicted_id == "benign" and old.notes is None  # unknown, not "none"
        case.record_prediction("img1.png", HASHES[1], model_name="M", model_version="1", model_sha256="f" * 64,
                               predicted_id="benign", probabilities={"benign": 1.0}, notes=["a note"])
        assert case.cached_prediction(HASHES[1], "f" * 64).notes == ("a note",)
        assert case.current_state()[HASHES[1]].notes == ("a note",)
    backup = sqlite3.connect(str(tmp_path / "reviews.sqlite3.v1.bak"))
    assert backup.execute("PRAGMA user_version").fetchone()[0] == 1
    assert backup.execute("SELECT image_hash FROM decisions").fetchall() == [(HASHES[1],)]
    backup.close()


def test_failed_migration_rolls_back_to_the_old_schema(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "reviews.sqlite3"
    _v1_database(db, tmp_path)
    broken = "CREATE TABLE extra (x INTEGER); ALTER TABLE no_such_table ADD COLUMN y TEXT;"
    monkeypatch.setattr(store_module, "MIGRATIONS", {1: SCHEMA_V1, 2: broken})
    with pytest.raises(ReviewStoreError, match="Could not open the review database"):
        ReviewStore.open(db)
    monkeypatch.undo()
    raw = sqlite3.connect(str(db))
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
    assert "extra" not in {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    raw.close()
    assert _acknowledged(db) == [HASHES[1]]  # and the real upgrade then goes through


def test_no_stray_files_next_to_images(tmp_path: Path) -> None:
    """The database lives in the data folder, never in the case folder."""
    folder = tmp_path / "case"
    folder.mkdir()
    with ReviewStore.open(tmp_path / "data" / "reviews.sqlite3") as store:
        _decide(store.open_case(folder), 1)
    assert list(folder.iterdir()) == []


def test_a_file_that_is_not_a_database_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "reviews.sqlite3"
    db.write_bytes(b"this is not an SQLite database, it is a stray text file" * 100)
    before = db.read_bytes()
    with pytest.raises(ReviewStoreError, match="Could not open the review database"):
        ReviewStore.open(db)
    assert db.read_bytes() == before
