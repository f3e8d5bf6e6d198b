"""Core behaviour of the review store: recording, resume, content-hash keying, sign-off."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from review.store import ReviewConflictError, ReviewInputError, ReviewStore, ReviewStoreError, file_sha256

MODEL = {"model_name": "Tiny", "model_version": "1.0", "model_sha256": "a" * 64}
PROBS = {"benign": 0.7, "early_pre_b": 0.2, "unidentified": 0.1}


def _image(folder: Path, name: str, content: bytes) -> tuple[Path, str]:
    path = folder / name
    path.write_bytes(content)
    return path, hashlib.sha256(content).hexdigest()


@pytest.fixture()
def store(tmp_path: Path):
    with ReviewStore.open(tmp_path / "data" / "reviews.sqlite3") as opened:
        yield opened


def test_file_sha256_streams_the_whole_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10_000
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert file_sha256(path, chunk_size=4096) == hashlib.sha256(data).hexdigest()


def test_pragmas_are_wal_and_full_sync(store: ReviewStore) -> None:
    assert store.journal_mode == "wal"
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_decisions_survive_reopen_and_current_state_is_latest(tmp_path: Path) -> None:
    db = tmp_path / "reviews.sqlite3"
    folder = tmp_path / "case"
    folder.mkdir()
    img, h = _image(folder, "a.png", b"cell-a")
    with ReviewStore.open(db) as store:
        case = store.open_case(folder)
        case.record_prediction(img, h, predicted_id="benign", probabilities=PROBS, **MODEL)
        first = case.record_decision(img, h, reviewed_id="benign", flagged=False, user="ann")
        case.record_decision(img, h, reviewed_id="early_pre_b", flagged=True, comment="odd nucleus", user="bob")
        assert first.prediction is not None and first.prediction.predicted_id == "benign"
    with ReviewStore.open(db) as store:
        case = store.open_case(folder)
        state = case.current_state()[h]
        assert (state.reviewed_id, state.flagged, state.comment, state.reviewer) == (
            "early_pre_b",
            True,
            "odd nucleus",
            "bob",
        )
        assert state.predicted_id == "benign" and state.probabilities == PROBS
        assert state.model_sha256 == "a" * 64 and state.decision_count == 2
        trail = case.decisions()
        assert [(d.user, d.reviewed_id) for d in trail] == [("ann", "benign"), ("bob", "early_pre_b")]


def test_records_are_append_only_even_with_raw_sql(store: ReviewStore, tmp_path: Path) -> None:
    case = store.open_case(tmp_path)
    img, h = _image(tmp_path, "a.png", b"x")
    case.record_decision(img, h, reviewed_id="benign", flagged=False, user="ann")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store._conn.execute("UPDATE decisions SET reviewed_id = 'blast'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store._conn.execute("DELETE FROM decisions")
    assert case.current_state()[h].reviewed_id == "benign"


def test_same_folder_resumes_same_case_and_other_folder_is_new(store: ReviewStore, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    first = store.open_case(a)
    assert store.open_case(a / "." / "").id == first.id
    assert store.open_case(b).id != first.id
    assert store.get_case(first.id).folder == a.resolve()
    with pytest.raises(ReviewInputError):
        store.get_case(999)


def test_cached_prediction_is_per_model_hash(store: ReviewStore, tmp_path: Path) -> None:
    case = store.open_case(tmp_path)
    img, h = _image(tmp_path, "a.png", b"x")
    assert case.cached_prediction(h, "a" * 64) is None
    case.record_prediction(img, h, predicted_id="benign", probabilities=PROBS, **MODEL)
    cached = case.cached_prediction(h, "a" * 64)
    assert cached is not None and cached.predicted_id == "benign" and cached.probabilities == PROBS
    assert case.cached_prediction(h, "b" * 64) is None


def test_renamed_image_keeps_history_changed_image_does_not(store: ReviewStore, tmp_path: Path) -> None:
    case = store.open_case(tmp_path)
    img, h = _image(tmp_path, "a.png", b"original pixels")
    case.record_prediction(img, h, predicted_id="benign", probabilities=PROBS, **MODEL)
    case.record_decision(img, h, reviewed_id="benign", flagged=True, comment="check", user="ann")
    moved = tmp_path / "sub" / "renamed.png"
    moved.parent.mkdir()
    img.rename(moved)
    h_moved = file_sha256(moved)
    assert h_moved == h
    state = case.current_state()[h_moved]
    assert state.reviewed_id == "benign" and state.flagged and state.comment == "check"
    assert case.cached_prediction(h_moved, "a" * 64) is not None
    # Same path, different pixels: a new hash with no inherited decision or cached prediction.
    img.write_bytes(b"edited pixels")
    h_new = file_sha256(img)
    assert h_new != h
    assert h_new not in case.current_state()
    assert case.cached_prediction(h_new, "a" * 64) is None
    assert case.history(h_new) == []
    # The move is visible in the history once the image is seen at its new path.
    case.record_decision(moved, h_moved, reviewed_id="benign", flagged=False, user="ann")
    assert case.current_state()[h].last_path == str(moved)
    assert [d.image_path for d in case.history(h)] == [str(img), str(moved)]


def test_history_follows_image_into_another_case(store: ReviewStore, tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    img, h = _image(tmp_path / "one", "a.png", b"x")
    store.open_case(tmp_path / "one").record_decision(img, h, reviewed_id="benign", flagged=False, user="ann")
    assert [d.reviewed_id for d in store.image_history(h)] == ["benign"]


def test_sign_requires_every_image_reviewed_and_none_unidentified(store: ReviewStore, tmp_path: Path) -> None:
    case = store.open_case(tmp_path)
    a, ha = _image(tmp_path, "a.png", b"a")
    b, hb = _image(tmp_path, "b.png", b"b")
    for img, h in ((a, ha), (b, hb)):
        case.record_prediction(img, h, predicted_id="benign", probabilities=PROBS, **MODEL)
    ok, msg = case.can_sign([ha, hb])
    assert not ok and "2 of 2 images not reviewed" in msg
    case.record_decision(a, ha, reviewed_id="benign", flagged=False, user="ann")
    case.record_decision(b, hb, reviewed_id="Unidentified", flagged=True, user="ann")
    ok, msg = case.can_sign([ha, hb])
    assert not ok and "1 image still in Unidentified" in msg
    with pytest.raises(ReviewStoreError, match="Unidentified"):
        case.sign("ann", [ha, hb])
    assert case.signed_by() is None
    # A flag without a class is not a review.
    case.record_decision(b, hb, reviewed_id=None, flagged=True, user="ann")
    assert case.can_sign([ha, hb]) == (False, "Cannot sign: 1 of 2 images not reviewed yet.")
    case.record_decision(b, hb, reviewed_id="early_pre_b", flagged=True, user="ann")
    assert case.can_sign([ha, hb])[0]
    case.sign("ann")  # default image set: the latest content seen at each path
    user, at = case.signed_by()
    assert user == "ann" and at.startswith("20")
    with pytest.raises(ReviewStoreError, match="signed by ann"):
        case.record_decision(a, ha, reviewed_id="early_pre_b", flagged=False, user="bob")
    assert case.can_sign([ha, hb])[0] is False
    assert store.failure is None  # refusing a change to a signed case does not break the store


def test_reopen_is_recorded_and_allows_changes(store: ReviewStore, tmp_path: Path) -> None:
    case = store.open_case(tmp_path)
    a, ha = _image(tmp_path, "a.png", b"a")
    case.record_decision(a, ha, reviewed_id="benign", flagged=False, user="ann")
    with pytest.raises(ReviewStoreError, match="not signed"):
        case.reopen("bob", "fix")
    case.sign("ann", [ha])
    with pytest.raises(ReviewInputError):
        case.reopen("bob", "  ")
    case.reopen("bob", "pathologist asked for a second look")
    assert case.signed_by() is None
    case.record_decision(a, ha, reviewed_id="early_pre_b", flagged=False, user="bob")
    case.sign("bob", [ha])
    events = case.events()
    assert [(e.kind, e.user) for e in events] == [("sign", "ann"), ("reopen", "bob"), ("sign", "bob")]
    assert events[1].reason == "pathologist asked for a second look"
    assert events[2].detail["image_hashes"] == [ha]


def test_empty_case_cannot_be_signed(store: ReviewStore, tmp_path: Path) -> None:
    ok, msg = store.open_case(tmp_path).can_sign([])
    assert not ok and "no images" in msg


@pytest.mark.parametrize(
    "kwargs",
    [
        {"user": ""},
        {"user": "ann", "comment": None},
        {"user": "ann", "image_hash": "not-a-hash"},
    ],
)
def test_bad_decision_input_is_a_typed_error(store: ReviewStore, tmp_path: Path, kwargs: dict) -> None:
    case = store.open_case(tmp_path)
    image_hash = kwargs.pop("image_hash", "c" * 64)
    with pytest.raises(ReviewInputError):
        case.record_decision(tmp_path / "a.png", image_hash, reviewed_id="benign", flagged=False, **kwargs)
    assert store.failure is None and case.decisions() == []


def test_bad_probabilities_are_refused(store: ReviewStore, tmp_path: Path) -> None:
    case = store.open_case(tmp_path)
    for probs in ({}, {"a": float("nan")}, {"a": 1.5}, {"a": "x"}):
        with pytest.raises(ReviewInputError):
            case.record_prediction(tmp_path / "a.png", "c" * 64, predicted_id="a", probabilities=probs, **MODEL)


def test_source_images_are_never_written(store: ReviewStore, tmp_path: Path) -> None:
    img, h = _image(tmp_path, "a.png", b"pixels")
    before = (img.read_bytes(), img.stat().st_mtime_ns, sorted(p.name for p in tmp_path.iterdir()))
    case = store.open_case(tmp_path)
    case.record_prediction(img, file_sha256(img), predicted_id="benign", probabilities=PROBS, **MODEL)
    case.record_decision(img, h, reviewed_id="benign", flagged=False, user="ann")
    case.sign("ann", [h])
    after = (img.read_bytes(), img.stat().st_mtime_ns, sorted(p.name for p in tmp_path.iterdir()))
    assert before == after


def test_default_path_uses_platformdirs_or_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import platformdirs

    from review.store import DB_ENV_VAR, default_db_path

    monkeypatch.delenv(DB_ENV_VAR, raising=False)
    expected = Path(platformdirs.user_data_dir("HemaLens", appauthor=False)) / "reviews.sqlite3"
    assert default_db_path() == expected
    monkeypatch.setenv(DB_ENV_VAR, str(tmp_path / "x.sqlite3"))
    assert default_db_path() == tmp_path / "x.sqlite3"


def test_worker_thread_predictions_and_gui_thread_decisions_interleave_safely(store: ReviewStore, tmp_path) -> None:
    """The app records predictions from a worker thread while the technician decides on the GUI thread."""
    import threading

    case = store.open_case(tmp_path)
    errors: list[BaseException] = []

    def predict() -> None:
        try:
            for i in range(150):
                case.record_prediction(f"{i}.png", f"{i:064x}", predicted_id="benign", probabilities=PROBS, **MODEL)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    worker = threading.Thread(target=predict)
    worker.start()
    for i in range(150):
        case.record_decision(f"{i}.png", f"{i + 1000:064x}", reviewed_id="benign", flagged=False, user="ann")
        if i % 50 == 0:
            case.current_state()
    worker.join()
    assert errors == []
    assert len(case.predictions()) == 150 and len(case.decisions()) == 150
    assert len(case.current_state()) == 300


def test_unclassified_files_are_kept_until_classified_at_their_path(tmp_path: Path) -> None:
    db = tmp_path / "reviews.sqlite3"
    with ReviewStore.open(db) as store:
        case = store.open_case(tmp_path)
        bad, bad_hash = _image(tmp_path, "bad.png", b"not a png")
        gone = tmp_path / "gone.png"
        case.record_unclassified(bad, bad_hash, "not an image file")
        case.record_unclassified(bad, bad_hash, "not an image file")  # failed again on reopening: no new record
        case.record_unclassified(gone, None, "permission denied")  # not even its bytes: no hash
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store._conn.execute("DELETE FROM unclassified")
        assert store._conn.execute("SELECT COUNT(*) FROM unclassified").fetchone()[0] == 2
    with ReviewStore.open(db) as store:  # survives reopening
        case = store.open_case(tmp_path)
        found = case.unclassified_images()
        assert [(Path(u.image_path).name, u.image_hash, u.reason) for u in found] == [
            ("bad.png", bad_hash, "not an image file"),
            ("gone.png", None, "permission denied"),
        ]
        # A flag on the unreadable file classifies nothing: still listed.
        case.record_decision(bad, bad_hash, reviewed_id=None, flagged=True, comment="rescan", user="ann")
        assert [Path(u.image_path).name for u in case.unclassified_images()] == ["bad.png", "gone.png"]
        # The file replaced by a readable one and classified at the same path: no longer listed.
        fixed, fixed_hash = _image(tmp_path, "bad.png", b"a real image now")
        case.record_prediction(fixed, fixed_hash, predicted_id="benign", probabilities=PROBS, **MODEL)
        assert [Path(u.image_path).name for u in case.unclassified_images()] == ["gone.png"]
        # Broken again, with the same bytes and reason as before: listed again.
        case.record_unclassified(bad, bad_hash, "not an image file")
        assert [Path(u.image_path).name for u in case.unclassified_images()] == ["bad.png", "gone.png"]


def test_case_details_are_kept_with_who_set_them_and_refused_once_signed(tmp_path) -> None:
    folder = tmp_path / "case"
    folder.mkdir()
    with ReviewStore.open(tmp_path / "db.sqlite3") as store:
        case = store.open_case(folder)
        assert case.details() is None
        case.set_details("  S-24-1173 ", "left arm, EDTA", user="ann")
        set_again = case.set_details("S-24-1174", "", user="bob")
        assert case.details() == set_again and (set_again.sample_id, set_again.user) == ("S-24-1174", "bob")
        rows = store._conn.execute("SELECT sample_id, user FROM case_details ORDER BY id").fetchall()
        assert rows == [("S-24-1173", "ann"), ("S-24-1174", "bob")]  # the earlier value stays in the trail
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            store._conn.execute("UPDATE case_details SET sample_id = 'x'")
        image = folder / "a.png"
        image.write_bytes(b"A")
        h = file_sha256(image)
        case.record_decision(image, h, reviewed_id="benign", flagged=False, user="ann")
        case.sign("carol", [h])
        with pytest.raises(ReviewStoreError, match="signed"):
            case.set_details("S-other", "", user="ann")
        assert case.details().sample_id == "S-24-1174"


def test_a_file_name_that_is_not_utf8_is_kept_exactly_and_does_not_stop_the_case(tmp_path) -> None:
    """Files from old Windows shares can carry Latin-1 names; Python gives them as lone surrogates, which
    SQLite text cannot hold. One such name used to stop every later decision of the case."""
    import json

    from review.report import build_report, write_csv, write_json

    folder = tmp_path / "Probe_\udce9"  # b"Probe_\xe9"
    odd = str(folder / "Zelle_\udce9.png")
    h1, h2 = hashlib.sha256(b"1").hexdigest(), hashlib.sha256(b"2").hexdigest()
    with ReviewStore.open(tmp_path / "db.sqlite3") as store:
        case = store.open_case(folder)
        case.record_prediction(odd, h1, model_name="M", model_version="1", model_sha256="f" * 64,
                               predicted_id="benign", probabilities={"benign": 1.0})
        case.record_decision(odd, h1, reviewed_id="benign", flagged=True, user="ann")
        case.record_unclassified(str(folder / "kaputt_\udcfc.png"), None, "kaputt_\udcfc.png: the file is damaged")
        case.record_decision(folder / "ok.png", h2, reviewed_id="benign", flagged=False, user="ann")  # still saved
        assert store.find_case(folder).id == case.id and store.list_cases()[0].folder == folder
        assert case.current_state()[h1].last_path == odd  # the exact name, to open the file again
        (unclassified,) = case.unclassified_images()
        assert unclassified.image_path == str(folder / "kaputt_\udcfc.png")
        assert "\\udcfc" in unclassified.reason  # a message is text: the odd byte shows as an escape
        report = build_report(case)
        doc = json.loads(write_json(report, tmp_path / "r.json").read_text(encoding="utf-8"))
        assert {i["path"] for i in doc["images"]} == {odd, str(folder / "ok.png")}
        assert "Zelle_\\udce9.png" in write_csv(report, tmp_path / "r.csv").read_text(encoding="utf-8-sig")


def test_a_decision_made_against_an_out_of_date_state_is_refused_and_names_the_latest(tmp_path: Path) -> None:
    """Two windows (two connections) on one case: the one that had not seen the other's decision is
    refused, nothing is written, and it learns what is on record; the store stays writable."""
    db, folder = tmp_path / "reviews.sqlite3", tmp_path / "case"
    folder.mkdir()
    img, h = _image(folder, "a.png", b"cell-a")
    with ReviewStore.open(db) as first, ReviewStore.open(db) as second:
        mine, theirs = first.open_case(folder), second.open_case(folder)
        mine.record_decision(img, h, reviewed_id="benign", flagged=False, user="ann", expect_count=0)
        assert mine.record_counts() == (1, 0) and theirs.record_counts() == (1, 0)
        with pytest.raises(ReviewConflictError) as refused:
            theirs.record_decision(img, h, reviewed_id="pre_b", flagged=True, user="bob", expect_count=0)
        assert refused.value.count == 1 and refused.value.latest.user == "ann"
        assert refused.value.latest.reviewed_id == "benign"
        assert "a.png was decided meanwhile by ann" in str(refused.value)
        assert [d.reviewed_id for d in mine.decisions()] == ["benign"]  # nothing of bob's was written
        theirs.record_decision(img, h, reviewed_id="pre_b", flagged=True, user="bob", expect_count=1)
        assert mine.current_state()[h].reviewed_id == "pre_b" and mine.record_counts() == (2, 0)
        mine.record_decision(img, h, reviewed_id="benign", flagged=False, user="ann")  # no count: no check
        assert first.failure is None and second.failure is None
        with pytest.raises(ReviewInputError):
            other, other_hash = _image(folder, "b.png", b"cell-b")
            mine.record_decision(other, other_hash, reviewed_id="benign", flagged=False, user="ann", expect_count=2)


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("UTC0", "2026-12-07 16:45:00 UTC"),
        ("CET-1", "2026-12-07 17:45:00 (UTC+01:00)"),  # POSIX zones: no tz database needed
        ("NST+3:30", "2026-12-07 13:15:00 (UTC-03:30)"),
    ],
)
def test_recorded_times_read_in_the_local_zone_with_its_offset(monkeypatch, zone: str, expected: str) -> None:
    import time

    from review.records import readable_time

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        assert readable_time("2026-12-07T16:45:00.145870+00:00") == expected
        assert readable_time("") == "" and readable_time("not a time") == "not a time"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_recent_comments_are_the_newest_first_each_once_from_every_case(store: ReviewStore, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = store.open_case(tmp_path / "a"), store.open_case(tmp_path / "b")
    p1, h1 = _image(tmp_path / "a", "1.png", b"one")
    p2, h2 = _image(tmp_path / "b", "2.png", b"two")
    first.record_decision(p1, h1, reviewed_id="x", flagged=False, comment="smudge cell", user="t")
    first.record_decision(p1, h1, reviewed_id="x", flagged=False, comment="poor stain", user="t")
    second.record_decision(p2, h2, reviewed_id="y", flagged=False, comment="", user="t")
    second.record_decision(p2, h2, reviewed_id="y", flagged=False, comment="smudge cell", user="u")
    assert store.recent_comments() == ["smudge cell", "poor stain"]
    assert store.recent_comments(limit=1) == ["smudge cell"]
