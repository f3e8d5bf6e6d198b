"""CSV and JSON case reports, checked field by field against what was recorded."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest

from hemalens import RESEARCH_USE_STATEMENT
from inference.file_mode import new_file_mode
from review.report import (
    NOT_REVIEWED,
    ReportError,
    build_report,
    differential,
    moved_in_review,
    report_csv,
    report_dict,
    write_csv,
    write_json,
)
from review.store import ReviewStore

MODEL = {"model_name": "ALL subtypes", "model_version": "1.0.0", "model_sha256": "d" * 64}
CLASSES = ("benign", "early_pre_b", "pre_b")


def _probs(top: str) -> dict[str, float]:
    return {c: (0.8 if c == top else 0.1) for c in CLASSES}


UNLIKE = "unlike this model's training images: check the call (synthetic note)"


@pytest.fixture()
def case_setup(tmp_path: Path):
    folder = tmp_path / "smear 42"
    folder.mkdir()
    store = ReviewStore.open(tmp_path / "reviews.sqlite3")
    case = store.open_case(folder)
    images = {}
    for name, content, predicted in (
        ("a.png", b"A", "benign"),
        ("b.png", b"B", "early_pre_b"),
        ("sub/c.png", b"C", "pre_b"),
    ):
        path = folder / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
        h = hashlib.sha256(content).hexdigest()
        images[name] = (path, h)
        # a.png: only a faithful conversion (its camera's 12 bits scaled), which puts no call on weaker ground
        notes = (UNLIKE,) if name == "b.png" else ("12-bit image (largest value 4080) scaled to 8-bit",) if (
            name == "a.png") else ()
        case.record_prediction(path, h, predicted_id=predicted, probabilities=_probs(predicted), notes=notes, **MODEL)
    yield store, case, images
    store.close()


def _decide_all(case, images) -> None:
    a, b = images["a.png"], images["b.png"]
    case.record_decision(a[0], a[1], reviewed_id="benign", flagged=False, user="ann")
    case.record_decision(b[0], b[1], reviewed_id="benign", flagged=False, user="ann")
    case.record_decision(b[0], b[1], reviewed_id="pre_b", flagged=True, comment="=HYPERLINK(x), 'odd'", user="bob")
    # sub/c.png: classified but not reviewed yet


def test_csv_rows_field_by_field(case_setup) -> None:
    store, case, images = case_setup
    _decide_all(case, images)
    report = build_report(case)
    text = report_csv(report)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0].keys()) == [
        "sample_id", "file", "image_sha256", "model_name", "model_version", "model_sha256", "predicted_class",
        "p_benign", "p_early_pre_b", "p_pre_b", "uncertain", "notes",
        "reviewed_class", "flagged", "comment", "reviewer", "reviewed_at",
    ]  # fmt: skip
    assert [r["file"] for r in rows] == ["a.png", "b.png", "sub/c.png"]
    a, b, c = rows
    trail = case.decisions()
    assert a == {
        "sample_id": "",
        "file": "a.png",
        "image_sha256": images["a.png"][1],
        "model_name": "ALL subtypes",
        "model_version": "1.0.0",
        "model_sha256": "d" * 64,
        "predicted_class": "benign",
        "p_benign": "0.800000",
        "p_early_pre_b": "0.100000",
        "p_pre_b": "0.100000",
        "uncertain": "",  # built without the app's threshold: unknown, not "no"
        "notes": "12-bit image (largest value 4080) scaled to 8-bit",  # every note stays in the record
        "reviewed_class": "benign",
        "flagged": "no",
        "comment": "",
        "reviewer": "ann",
        "reviewed_at": trail[0].decided_at,
    }
    assert (b["predicted_class"], b["reviewed_class"]) == ("early_pre_b", "pre_b")
    assert (b["flagged"], b["reviewer"]) == ("yes", "bob")
    assert b["comment"] == "'=HYPERLINK(x), 'odd'"  # neutralised for spreadsheets, text kept
    assert b["notes"] == UNLIKE
    assert b["reviewed_at"] == trail[2].decided_at
    assert (c["predicted_class"], c["reviewed_class"], c["flagged"], c["reviewer"], c["reviewed_at"]) == (
        "pre_b", "", "no", "", ""
    )


def test_json_document_field_by_field(case_setup, tmp_path: Path) -> None:
    store, case, images = case_setup
    _decide_all(case, images)
    c_path, c_hash = images["sub/c.png"]
    case.record_decision(c_path, c_hash, reviewed_id="pre_b", flagged=False, user="ann")
    case.sign("carol")
    out = write_json(build_report(case), tmp_path / "out" / "report.json")
    assert out.stat().st_mode & 0o777 == new_file_mode()  # the user's usual mode, not the temp file's 0600
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["format"] == "hemalens-case-report" and doc["research_use"] == RESEARCH_USE_STATEMENT
    assert doc["case"]["folder"] == str(case.folder) and doc["case"]["id"] == case.id
    assert doc["signed"]["user"] == "carol" and doc["signed"]["at"] == case.signed_by()[1]
    assert [e["kind"] for e in doc["sign_off_history"]] == ["sign"]
    assert doc["models"] == [{"name": "ALL subtypes", "version": "1.0.0", "sha256": "d" * 64, "images": 3}]
    assert doc["counts"] == {
        "predicted": {"benign": 1, "early_pre_b": 1, "pre_b": 1},
        "reviewed": {"benign": 1, "pre_b": 2},
        "reviewed_in_groups": 0,
        "by_folder": [  # each folder's own counts: the case folder's a.png and b.png, then sub/c.png
            {"folder": "", "predicted": {"benign": 1, "early_pre_b": 1}, "reviewed": {"benign": 1, "pre_b": 1}},
            {"folder": "sub", "predicted": {"pre_b": 1}, "reviewed": {"pre_b": 1}},
        ],
    }
    b = next(i for i in doc["images"] if i["file"] == "b.png")
    assert b == {
        "file": "b.png",
        "path": str(images["b.png"][0]),
        "image_sha256": images["b.png"][1],
        "model_name": "ALL subtypes",
        "model_version": "1.0.0",
        "model_sha256": "d" * 64,
        "predicted_class": "early_pre_b",
        "probabilities": {"benign": 0.1, "early_pre_b": 0.8, "pre_b": 0.1},
        "reviewed_class": "pre_b",
        "flagged": True,
        "comment": "=HYPERLINK(x), 'odd'",  # JSON keeps the text verbatim
        "reviewer": "bob",
        "reviewed_at": case.decisions()[2].decided_at,
        "notes": [UNLIKE],
        "uncertain": None,
    }
    assert [(t["user"], t["reviewed_class"]) for t in doc["audit_trail"]] == [
        ("ann", "benign"), ("ann", "benign"), ("bob", "pre_b"), ("ann", "pre_b")
    ]  # fmt: skip
    assert doc["audit_trail"][1]["predicted_class"] == "early_pre_b"


def test_differential_counts_pre_and_post_review(case_setup) -> None:
    store, case, images = case_setup
    _decide_all(case, images)
    report = build_report(case)
    table = {name: (pre, post) for name, pre, _, post, _ in differential(report)}
    assert table == {"benign": (1, 1), "early_pre_b": (1, 0), "pre_b": (1, 1), NOT_REVIEWED: (0, 1)}
    assert report.reviewed_count == 2 and report.changed_count == 1
    assert [r.file for r in report.flagged_rows] == ["b.png"]
    assert [r.file for r in report.noted_rows] == ["b.png"]
    # What the reviewer moved: b.png from early_pre_b to pre_b. sub/c.png, not reviewed, moves nothing, though
    # pre_b's "after review" count lost it to "(not reviewed)".
    assert {k: v for k, v in moved_in_review(report).items() if v} == {"early_pre_b": -1, "pre_b": 1}
    # An uncertain call (shown as Unidentified) given its own top class moved out of Unidentified.
    moved = moved_in_review(build_report(case, uncertain_below=0.81))
    assert {k: v for k, v in moved.items() if v} == {"unidentified": -2, "benign": 1, "pre_b": 1}


def test_report_follows_a_renamed_image_and_drops_replaced_content(case_setup) -> None:
    store, case, images = case_setup
    a_path, a_hash = images["a.png"]
    moved = a_path.with_name("renamed.png")
    a_path.rename(moved)
    case.record_decision(moved, a_hash, reviewed_id="benign", flagged=False, user="ann")
    b_path, b_hash = images["b.png"]
    b_path.write_bytes(b"new pixels")
    new_hash = hashlib.sha256(b"new pixels").hexdigest()
    case.record_prediction(b_path, new_hash, predicted_id="benign", probabilities=_probs("benign"), **MODEL)
    rows = {r.file: r for r in build_report(case).rows}
    assert set(rows) == {"renamed.png", "b.png", "sub/c.png"}
    assert rows["renamed.png"].reviewed_class == "benign"
    assert rows["b.png"].image_sha256 == new_hash and rows["b.png"].reviewed_class is None


def test_unknown_image_and_unwritable_destination_are_report_errors(case_setup, tmp_path: Path) -> None:
    store, case, images = case_setup
    with pytest.raises(ReportError, match="no record"):
        build_report(case, ["e" * 64])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ReportError, match="Cannot write the report"):
        write_csv(build_report(case), blocker / "report.csv")


def test_csv_file_opens_in_excel_encoding(case_setup, tmp_path: Path) -> None:
    store, case, images = case_setup
    out = write_csv(build_report(case), tmp_path / "r.csv")
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: spreadsheet programs read UTF-8 correctly
    assert list(tmp_path.glob(".r.csv.*")) == []  # no temp file left behind
    assert len(list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))) == 4


def test_files_that_could_not_be_classified_are_listed_apart(case_setup, tmp_path: Path) -> None:
    store, case, images = case_setup
    broken = case.folder / "sub" / "broken.png"
    broken.write_bytes(b"not a png")
    case.record_unclassified(broken, hashlib.sha256(b"not a png").hexdigest(), "not an image file")
    case.record_unclassified(case.folder / "locked.png", None, "permission denied")
    report = build_report(case)
    assert [(u.file, u.reason) for u in report.unclassified] == [
        ("locked.png", "permission denied"), ("sub/broken.png", "not an image file")
    ]  # fmt: skip
    assert len(report.rows) == 3 and sum(report.counts_predicted.values()) == 3  # counted nowhere else
    doc = json.loads(write_json(report, tmp_path / "r.json").read_text(encoding="utf-8"))
    assert doc["unclassified"][1] == {
        "file": "sub/broken.png", "path": str(broken),
        "image_sha256": hashlib.sha256(b"not a png").hexdigest(), "reason": "not an image file",
    }  # fmt: skip
    # The app passes the files it has open: a file no longer in the folder is not listed.
    only_open = build_report(case, open_paths=[str(broken), *(str(p) for p, _ in images.values())])
    assert [u.file for u in only_open.unclassified] == ["sub/broken.png"]


def test_calls_under_the_threshold_count_as_unidentified_as_the_app_shows_them(case_setup) -> None:
    store, case, images = case_setup
    plain = build_report(case)
    assert plain.uncertain_below is None and plain.uncertain_rows == []
    assert plain.counts_predicted == {"benign": 1, "early_pre_b": 1, "pre_b": 1}
    # Every top probability here is 0.8: at the threshold it is not under it, just above it all are.
    assert build_report(case, uncertain_below=0.8).uncertain_rows == []
    report = build_report(case, uncertain_below=0.81)
    assert [r.file for r in report.uncertain_rows] == ["a.png", "b.png", "sub/c.png"]
    assert report.counts_predicted == {"unidentified": 3}
    def column(rep):
        return {r["uncertain"] for r in csv.DictReader(io.StringIO(report_csv(rep)))}

    assert column(report) == {"yes"} and column(build_report(case, uncertain_below=0.5)) == {"no"}
    assert [r.predicted_class for r in report.rows] == ["benign", "early_pre_b", "pre_b"]  # the top class is kept
    assert [(name, pre) for name, pre, *_ in differential(report)] == [
        ("benign", 0), ("early_pre_b", 0), ("pre_b", 0), ("unidentified", 3), (NOT_REVIEWED, 0)
    ]  # fmt: skip


def test_the_sample_id_and_note_go_into_every_format(case_setup) -> None:
    store, case, images = case_setup
    assert report_dict(build_report(case))["case"]["sample_id"] == ""
    case.set_details("S-24-1173", "EDTA, 2 h after draw", user="ann")
    report = build_report(case)
    doc = report_dict(report)
    assert (doc["case"]["sample_id"], doc["case"]["note"]) == ("S-24-1173", "EDTA, 2 h after draw")
    assert doc["case"]["details_set"]["user"] == "ann"
    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert {r["sample_id"] for r in rows} == {"S-24-1173"}  # pooled CSVs keep each row's sample
    case.set_details("=cmd|x", "", user="ann")
    rows = list(csv.DictReader(io.StringIO(report_csv(build_report(case)))))
    assert rows[0]["sample_id"] == "'=cmd|x"  # neutralised for spreadsheets


def test_the_mode_of_written_files_follows_the_umask_in_force() -> None:
    import os

    old = os.umask(0o027)
    try:
        assert new_file_mode() == 0o640
        os.umask(0o002)
        assert new_file_mode() == 0o664
    finally:
        os.umask(old)


def test_images_added_after_the_sign_off_are_named_as_not_covered(case_setup) -> None:
    store, case, images = case_setup
    _decide_all(case, images)
    c_path, c_hash = images["sub/c.png"]
    case.record_decision(c_path, c_hash, reviewed_id="pre_b", flagged=False, user="ann")
    case.sign("carol")
    assert build_report(case).not_signed_rows == []
    new = case.folder / "late.png"
    new.write_bytes(b"L")
    late_hash = hashlib.sha256(b"L").hexdigest()
    case.record_prediction(new, late_hash, predicted_id="benign", probabilities=_probs("benign"), **MODEL)
    report = build_report(case)
    assert [r.file for r in report.not_signed_rows] == ["late.png"] and len(report.signed_images) == 3
    signed = report_dict(report)["signed"]
    assert signed["user"] == "carol" and signed["images"] == 3 and signed["not_covered"] == ["late.png"]
    assert signed["no_longer_present"] == 0
    open_now = [h for _, h in images.values() if h != images["a.png"][1]] + [late_hash]  # a.png deleted
    assert build_report(case, image_hashes=open_now).signed_but_gone == 1
