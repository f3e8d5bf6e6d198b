"""The PDF case report: it opens, has the expected pages, and each page says what it should.

Uses a tiny real ONNX model (tests/model_factory.py) and generated images, classified through
inference.session.ModelSession exactly as the app does, so heatmap thumbnails are real.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pypdf  # dev dependency: reads the PDFs back
import pytest
from PIL import Image

from hemalens import RESEARCH_USE_STATEMENT
from hemalens.cli import main as hemalens_main
from review.report import build_report, differential, differential_by_folder
from review.store import ReviewStore, file_sha256

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["Benign", "Pre-B", "Pro-B"]

# pytest-qt's QApplication first: the report writer would otherwise make a bare QGuiApplication, and any
# widget test run after this module in the same process (e.g. -k or another order) would abort.
pytestmark = pytest.mark.usefixtures("qapp")


def _make_images(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(7)
    paths = []
    for i in range(n):
        rgb = (rng.random((48 + 8 * i, 64, 3)) * 255).astype(np.uint8)
        rgb[10:30, 10 + 3 * i : 30 + 3 * i] = (120, 40, 160)  # a "cell" that moves from image to image
        path = folder / f"cell_{i:02d}.png"
        Image.fromarray(rgb).save(path)
        paths.append(path)
    return paths


NOTE = "unlike this model's training images (synthetic note for the test)"


@pytest.fixture(scope="module")
def reviewed_case(tmp_path_factory: pytest.TempPathFactory):
    """A case of 5 classified images, all reviewed, 2 flagged (one corrected), signed."""
    from inference.images import load_image
    from inference.session import ModelSession
    from tests.model_factory import make_classifier

    root = tmp_path_factory.mktemp("pdfcase")
    folder = root / "smear 7"
    folder.mkdir()
    paths = _make_images(folder, 5)
    model_path = make_classifier(root / "tiny.onnx", num_classes=3, size=32, labels=LABELS)
    session = ModelSession.load(model_path)
    ids = [c.id for c in session.spec.classes]
    db = root / "reviews.sqlite3"
    with ReviewStore.open(db) as store:
        case = store.open_case(folder)
        for i, path in enumerate(paths):
            h = file_sha256(path)
            pred = session.predict(load_image(path).rgb)
            case.record_prediction(
                path,
                h,
                model_name=session.spec.name,
                model_version=session.spec.version,
                model_sha256=session.sha256,
                predicted_id=pred.top_class_id,
                probabilities={c: float(p) for c, p in zip(ids, pred.probabilities, strict=True)},
                notes=pred.notes + ((NOTE,) if i == 3 else ()),
            )
            other = ids[(ids.index(pred.top_class_id) + 1) % 3]
            reviewed = other if i == 1 else pred.top_class_id
            case.record_decision(
                path, h, reviewed_id=reviewed, flagged=i in (1, 3), comment=f"comment for cell {i}", user="tech1"
            )
        case.sign("Dr. Signer")
        case_id = case.id
    return {"root": root, "folder": folder, "db": db, "model": model_path, "session": session, "case_id": case_id}


def _pages(pdf: Path) -> list[str]:
    reader = pypdf.PdfReader(str(pdf))
    return [page.extract_text() or "" for page in reader.pages]


def _parts(pdf: Path) -> tuple[str, str, str]:
    """The summary, the flagged cells and the model card, each flattened, whatever number of pages each takes."""
    pages = [_flat(p) for p in _pages(pdf)]
    flagged = next(i for i, p in enumerate(pages) if p.startswith("Flagged cells"))
    card = next(i for i, p in enumerate(pages) if p.startswith("Model card summary"))
    assert 0 < flagged < card
    return " ".join(pages[:flagged]), " ".join(pages[flagged:card]), " ".join(pages[card:])


def _flat(text: str) -> str:
    """Whitespace collapsed and ligatures (Qt sets "fl", "fi" as one glyph) spelled out."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def _write(case_info: dict, out: Path, *, thumbs: bool = True) -> Path:
    from gui.report_pdf import ModelCardSummary, heatmap_thumbnails, write_pdf

    with ReviewStore.open(case_info["db"]) as store:
        report = build_report(store.get_case(case_info["case_id"]))
    session = case_info["session"]
    thumbnails = heatmap_thumbnails(report.flagged_rows, session) if thumbs else {}
    return write_pdf(report, out, thumbnails=thumbnails, model_cards=[ModelCardSummary.from_session(session)])


def test_pdf_has_summary_flagged_and_model_card_pages(reviewed_case, tmp_path: Path) -> None:
    pdf = _write(reviewed_case, tmp_path / "report.pdf")
    assert pdf.read_bytes().startswith(b"%PDF-")
    pages = [_flat(p) for p in _pages(pdf)]
    summary, flagged, card = _parts(pdf)
    assert "HemaLens case report" in summary
    assert "Signed by Dr. Signer" in summary
    assert "Differential count" in summary and "Total" in summary
    assert "Images 5" in summary and "Reviewed 5 of 5" in summary
    assert "Changed by the reviewer 1" in summary and "Flagged for a second look 2" in summary
    assert _flat(RESEARCH_USE_STATEMENT) in summary
    assert "Model calls with a note 1 (listed below)" in summary and "Model calls with a note (1)" in summary
    assert "cell_03.png" in summary and _flat(NOTE) in summary
    assert f"Note: {_flat(NOTE)}" in flagged
    assert "Flagged cells (2)" in flagged
    assert "cell_01.png" in flagged and "cell_03.png" in flagged and "cell_00.png" not in flagged
    assert "comment for cell 1" in flagged and "comment for cell 3" in flagged
    # What reviewers wrote on the cells they did not flag is on the summary (before, only in the CSV and JSON).
    assert "Comments on images not flagged (3)" in summary
    assert all(f"comment for cell {i}" in summary for i in (0, 2, 4))
    assert "comment for cell 1" not in summary and "comment for cell 3" not in summary
    assert "grad-cam for" in flagged.lower()
    assert "Model card summary" in card and "Tiny" in card and reviewed_case["session"].sha256 in card
    assert "Benign, Pre-B, Pro-B" in card
    for n, page in enumerate(pages, start=1):
        assert f"Page {n} of {len(pages)}" in page and "case #" in page and "signed by Dr. Signer" in page


def test_flagged_page_shows_each_flagged_cell_plain_and_with_its_heatmap(reviewed_case, tmp_path: Path) -> None:
    pdf = _write(reviewed_case, tmp_path / "report.pdf")
    page = next(p for p in pypdf.PdfReader(str(pdf)).pages if _flat(p.extract_text()).startswith("Flagged cells"))
    images = [img.data for img in page.images]
    pictures = [d for d in images if Image.open(io.BytesIO(d)).size[1] > 20]  # the 10 px legend excluded
    assert len(pictures) == 4 and len(set(pictures)) == 4  # two cells, each as it is and with its heatmap
    shown = [Image.open(io.BytesIO(d)).convert("RGB") for d in pictures]
    sources = [Image.open(reviewed_case["folder"] / f"cell_0{i}.png").convert("RGB") for i in (1, 3)]

    def like_source(picture: Image.Image) -> bool:  # the plain picture is the cell itself, scaled down
        return any(
            picture.size[1] == round(picture.size[0] * src.size[1] / src.size[0])
            and np.abs(np.asarray(picture, float) - np.asarray(src.resize(picture.size), float)).mean() < 30
            for src in sources
        )

    assert sorted(like_source(p) for p in shown) == [False, False, True, True]


def test_the_heatmap_colours_chosen_in_the_app_are_the_reports(reviewed_case, tmp_path: Path) -> None:
    """A reader who chose cividis in the app (View → Heatmap colours) gets the report's heatmaps, their scale and
    its words in the same colours."""
    from gui.report_pdf import heatmap_thumbnails, write_pdf

    with ReviewStore.open(reviewed_case["db"]) as store:
        report = build_report(store.get_case(reviewed_case["case_id"]))
    session = reviewed_case["session"]
    jet = heatmap_thumbnails(report.flagged_rows, session)
    cividis = heatmap_thumbnails(report.flagged_rows, session, colormap="cividis")
    for sha, thumb in jet.items():
        assert thumb.has_heatmap and not np.array_equal(thumb.rgb, cividis[sha].rgb)
        np.testing.assert_array_equal(thumb.plain, cividis[sha].plain)  # only the overlay's colours differ
    pdf = write_pdf(report, tmp_path / "cividis.pdf", thumbnails=cividis, colormap="cividis")
    flagged = next(_flat(t) for t in _pages(pdf) if _flat(t).startswith("Flagged cells"))
    assert "(yellow = most weight)" in flagged
    assert "(red = most weight)" in next(_flat(t) for t in _pages(_write(reviewed_case, tmp_path / "jet.pdf"))
                                         if _flat(t).startswith("Flagged cells"))


def test_differential_rows_name_the_classes(reviewed_case, tmp_path: Path) -> None:
    summary = _parts(_write(reviewed_case, tmp_path / "r.pdf", thumbs=False))[0]
    with ReviewStore.open(reviewed_case["db"]) as store:
        report = build_report(store.get_case(reviewed_case["case_id"]))
    names = {c.id: c.name for c in reviewed_case["session"].spec.classes}
    rows = differential(report)
    assert [r[0] for r in rows] == list(names)
    for class_id, pre, pre_pct, post, post_pct in rows:
        assert f"{names[class_id]} {pre} {pre_pct:.1f}% {post} {post_pct:.1f}%" in summary


def test_unsigned_case_without_flags_is_a_marked_draft(tmp_path: Path) -> None:
    from gui.report_pdf import write_pdf

    folder = tmp_path / "case"
    folder.mkdir()
    (path,) = _make_images(folder, 1)
    with ReviewStore.open(tmp_path / "db.sqlite3") as store:
        case = store.open_case(folder)
        case.record_decision(path, file_sha256(path), reviewed_id="benign", flagged=False, user="t")
        case.set_details("S-24-0042", "smear made 2 h after draw", user="t")
        pdf = write_pdf(build_report(case), tmp_path / "draft.pdf")
    pages = [_flat(p) for p in _pages(pdf)]
    summary, flagged, card = _parts(pdf)
    assert "DRAFT" in summary and "Not signed" in summary
    assert "Changed in review" in summary
    assert "Sample / slide ID S-24-0042" in summary and "Case note smear made 2 h after draw" in summary
    assert all("case report - S-24-0042 - case #" in page for page in pages)  # every page's footer
    assert "No cells were flagged" in flagged
    assert "No model predictions were recorded" in card or "not available" in card


def test_thumbnails_refuse_changed_or_missing_images_and_other_models(reviewed_case, tmp_path: Path) -> None:
    from gui.report_pdf import heatmap_thumbnails

    with ReviewStore.open(reviewed_case["db"]) as store:
        rows = list(build_report(store.get_case(reviewed_case["case_id"])).flagged_rows)
    good = heatmap_thumbnails(rows[:1], reviewed_case["session"])[rows[0].image_sha256]
    assert good.rgb is not None and good.rgb.dtype == np.uint8 and max(good.rgb.shape[:2]) <= 200
    assert good.caption.startswith("grad-cam for")
    no_model = heatmap_thumbnails(rows[:1], None)[rows[0].image_sha256]
    assert no_model.rgb is not None and "model file is not available" in no_model.caption
    changed = Path(rows[0].path).read_bytes()
    copy = tmp_path / "changed.png"
    copy.write_bytes(changed + b"extra")
    moved = rows[0].__class__(**{**rows[0].__dict__, "path": str(copy)})
    assert "changed since review" in heatmap_thumbnails([moved], reviewed_case["session"])[moved.image_sha256].caption
    gone = rows[0].__class__(**{**rows[0].__dict__, "path": str(tmp_path / "gone.png")})
    missing = heatmap_thumbnails([gone], reviewed_case["session"])[gone.image_sha256]
    assert missing.rgb is None and "not available" in missing.caption


def test_cli_writes_all_three_by_folder_and_by_case_number(reviewed_case, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    db, folder = str(reviewed_case["db"]), str(reviewed_case["folder"])
    rc = hemalens_main(
        ["report", folder, "--db", db, "--model", str(reviewed_case["model"]),
         "--pdf", str(out / "r.pdf"), "--csv", str(out / "r.csv"), "--json", str(out / "r.json")]
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert "signed by Dr. Signer" in capsys.readouterr().out
    assert "grad-cam for" in _parts(out / "r.pdf")[1].lower()
    assert (out / "r.csv").read_text(encoding="utf-8-sig").count("\n") == 6
    assert hemalens_main(["report", str(reviewed_case["case_id"]), "--db", db, "--json", str(out / "n.json")]) == 0


def test_cli_errors_are_clear(reviewed_case, tmp_path: Path, capsys) -> None:
    db = str(reviewed_case["db"])
    assert hemalens_main(["report", str(tmp_path), "--db", db, "--pdf", str(tmp_path / "x.pdf")]) == 1
    assert "No review case for" in capsys.readouterr().err
    assert hemalens_main(["report", "999", "--db", db, "--csv", str(tmp_path / "x.csv")]) == 1
    assert "no review case with id 999" in capsys.readouterr().err
    assert hemalens_main(["report", "1", "--db", str(tmp_path / "none.sqlite3"), "--csv", "x.csv"]) == 1
    assert "no review database" in capsys.readouterr().err
    assert hemalens_main(["report", "1", "--db", db]) == 2
    assert not (tmp_path / "x.pdf").exists()


def test_cli_runs_headless_without_qt_platform_set(reviewed_case, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run(
        [sys.executable, "-m", "hemalens", "report", str(reviewed_case["folder"]), "--db", str(reviewed_case["db"]),
         "--no-heatmaps", "--pdf", str(tmp_path / "h.pdf")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary, flagged, card = _parts(tmp_path / "h.pdf")
    assert "Case summary" in summary and "Flagged cells (2)" in flagged and "Model card summary" in card


def test_export_case_report_one_call_for_the_app(reviewed_case, tmp_path: Path) -> None:
    from gui.report_export import export_case_report

    with ReviewStore.open(reviewed_case["db"]) as store:
        case = store.get_case(reviewed_case["case_id"])
        hashes = case.current_hashes()
        result = export_case_report(
            case, pdf=tmp_path / "a.pdf", json=tmp_path / "a.json", image_hashes=hashes,
            sessions=[reviewed_case["session"]],
        )  # fmt: skip
        assert result.images == 5 and result.signed_by[0] == "Dr. Signer" and result.missing_heatmaps == 0
        assert [p.name for p in result.written] == ["a.json", "a.pdf"]
        bare = export_case_report(case, pdf=tmp_path / "b.pdf", image_hashes=hashes[:4])  # no model session given
    assert bare.images == 4 and bare.missing_heatmaps >= 1
    assert bare.missing_heatmaps == sum(1 for h in hashes[:4] if h in _flagged(reviewed_case))
    card = _parts(tmp_path / "b.pdf")[2]
    assert "model file was not available" in card


def _flagged(case_info: dict) -> set[str]:
    with ReviewStore.open(case_info["db"]) as store:
        return {r.image_sha256 for r in build_report(store.get_case(case_info["case_id"])).flagged_rows}


def test_cli_lists_cases_with_their_sign_off_state(reviewed_case, capsys) -> None:
    assert hemalens_main(["report", "--list", "--db", str(reviewed_case["db"])]) == 0
    line = capsys.readouterr().out.strip().splitlines()[0]
    assert line.startswith(f"#{reviewed_case['case_id']}\tsigned by Dr. Signer")
    assert line.endswith(str(reviewed_case["folder"]))
    assert hemalens_main(["report", "--db", str(reviewed_case["db"]), "--pdf", "x.pdf"]) == 2


def test_uncertain_calls_are_listed_and_marked_wherever_the_call_is_shown(reviewed_case, tmp_path: Path) -> None:
    from gui.report_pdf import write_pdf

    with ReviewStore.open(reviewed_case["db"]) as store:
        report = build_report(store.get_case(reviewed_case["case_id"]), uncertain_below=1.0)  # every call under it
    parts = _parts(write_pdf(report, tmp_path / "r.pdf"))
    text = " ".join(parts)
    assert "Uncertain model calls (top under 100%) 5 (listed below)" in parts[0]
    assert "Uncertain model calls (5)" in text and "Unidentified 5" in text
    assert text.count("? (uncertain)") == 3  # the noted call and both flagged cells' calls carry the mark


def test_cli_report_uses_the_apps_threshold_unless_given_one(reviewed_case, tmp_path: Path, monkeypatch) -> None:
    import gui.cli_report

    db, folder = str(reviewed_case["db"]), str(reviewed_case["folder"])
    monkeypatch.setattr(gui.cli_report, "app_threshold", lambda: 1.0)  # as if the user had set 100 % in the app
    assert hemalens_main(["report", folder, "--db", db, "--json", str(tmp_path / "app.json")]) == 0
    doc = json.loads((tmp_path / "app.json").read_text(encoding="utf-8"))
    assert doc["uncertain_below"] == 1.0 and doc["counts"]["predicted"] == {"unidentified": 5}
    assert hemalens_main(["report", folder, "--db", db, "--json", str(tmp_path / "given.json"),
                          "--uncertain-below", "0"]) == 0  # fmt: skip
    doc = json.loads((tmp_path / "given.json").read_text(encoding="utf-8"))
    assert doc["uncertain_below"] == 0.0 and "unidentified" not in doc["counts"]["predicted"]


def test_a_class_from_another_installed_model_is_named_in_the_report(reviewed_case) -> None:
    from dataclasses import replace

    from gui.report_pdf import ModelCardSummary, report_html

    with ReviewStore.open(reviewed_case["db"]) as store:
        report = build_report(store.get_case(reviewed_case["case_id"]))
    row = replace(report.flagged_rows[0], reviewed_class="ig")  # reviewed under another model before a switch
    report = replace(report, rows=(row, *report.rows[1:]), counts_reviewed={"ig": 1})
    assert "Immature granulocyte" not in report_html(report)
    card = ModelCardSummary.from_session(reviewed_case["session"])
    named = report_html(report, model_cards=[card], class_names={"ig": "Immature granulocyte", "c0": "not this"})
    assert "Immature granulocyte" in named and "not this" not in named  # the model cards' own names win


def test_the_model_page_states_a_shipped_models_figures_in_words_not_its_raw_metrics(tmp_path: Path) -> None:
    from gui.report_pdf import ModelCardSummary, report_html
    from inference.images import load_image
    from inference.session import ModelSession

    session = ModelSession.load(Path(__file__).parents[1] / "assets" / "models" / "hemalens-pbc.onnx")
    (path,) = _make_images(tmp_path, 1)
    pred = session.predict(load_image(path).rgb)
    with ReviewStore.open(tmp_path / "db.sqlite3") as store:
        case = store.open_case(tmp_path)
        case.record_prediction(
            path, file_sha256(path), model_name=session.spec.name, model_version=session.spec.version,
            model_sha256=session.sha256, predicted_id=pred.top_class_id,
            probabilities={c.id: float(p) for c, p in zip(session.spec.classes, pred.probabilities, strict=True)},
        )
        report = build_report(case)
    page = report_html(report, model_cards=[ModelCardSummary.from_session(session)]).split("Model card summary", 1)[1]
    metrics = session.spec.provenance.metrics
    assert f"accuracy <b>{100 * metrics['accuracy']:.1f} %</b>" in page
    neutrophil = metrics["per_class"]["Neutrophil"]["recall"]
    assert f"Neutrophil {100 * neutrophil:.1f} %" in page  # every class's recall, in words
    assert "confusion_matrix" not in page and "robustness" not in page and "{" not in page  # no raw dump
    assert len(page) < 8000


def test_a_signed_case_with_images_added_since_does_not_claim_they_were_signed(reviewed_case, tmp_path: Path) -> None:
    import shutil

    from gui.report_pdf import write_pdf

    db = shutil.copy(reviewed_case["db"], tmp_path / "copy.sqlite3")  # the module's case stays as it is
    with ReviewStore.open(db) as store:
        case = store.get_case(reviewed_case["case_id"])
        late = tmp_path / "late_cell.png"
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(late)
        case.record_prediction(late, file_sha256(late), model_name="Tiny", model_version="1", model_sha256="e" * 64,
                               predicted_id="benign", probabilities={"benign": 1.0})
        pdf = write_pdf(build_report(case), tmp_path / "late.pdf")
        deleted = sorted(build_report(case).signed_images)[0]  # as if one signed file had been deleted
        one_gone = [h for h in case.current_hashes() if h != deleted]
        gone = _parts(write_pdf(build_report(case, image_hashes=one_gone), tmp_path / "gone.pdf"))[0]
    assert "1 of the signed images are no longer among the case's files" in gone
    first = _parts(pdf)[0]
    assert "Signed by Dr. Signer" in first and "but 1 image(s) were added or changed since" in first
    assert "Not covered by the sign-off 1" in first and "Not covered by this sign-off (1)" in first
    assert "late_cell.png" in first and "(1 image(s) not covered)" in first


def test_a_note_many_images_share_is_written_once_and_cited_by_number(tmp_path: Path) -> None:
    from gui.report_pdf import report_html

    shared, own = "unlike this model's training images (test note)", "image quality: only 8 x 8 pixels"
    with ReviewStore.open(tmp_path / "db.sqlite3") as store:
        case = store.open_case(tmp_path)
        for i, path in enumerate(_make_images(tmp_path, 3)):
            case.record_prediction(path, file_sha256(path), model_name="M", model_version="1", model_sha256="f" * 64,
                                   predicted_id="benign", probabilities={"benign": 1.0},
                                   notes=[shared, own] if i == 2 else [shared])
        section = report_html(build_report(case)).split("Model calls with a note (3)", 1)[1].split("<h2>", 1)[0]
    assert section.count("unlike this model&#x27;s training images (test note)") == 1  # once, above the table
    assert "[1] unlike this model" in section and "&mdash; 3 images" in section
    assert section.count('%">[1]') == 3 and own in section  # a note of one image only stays in its row


def test_the_summary_says_how_many_were_accepted_in_gallery_groups(tmp_path: Path) -> None:
    """A reader of the report knows how much of the review was done on thumbnails, a group at a time."""
    from gui.report_pdf import write_pdf
    from review.report import report_dict
    from review.store import DecisionRequest

    folder = tmp_path / "case"
    folder.mkdir()
    paths = _make_images(folder, 3)
    hashes = [file_sha256(p) for p in paths]
    with ReviewStore.open(tmp_path / "db.sqlite3") as store:
        case = store.open_case(folder)
        case.record_decisions([DecisionRequest(p, h, "benign", False, "", 0) for p, h in zip(paths, hashes,
                                                                                          strict=True)], user="t")
        case.record_decision(paths[2], hashes[2], reviewed_id="pre_b", flagged=False, user="t")  # looked at alone
        report = build_report(case)
        pdf = write_pdf(report, tmp_path / "groups.pdf")
    assert report.reviewed_in_groups == 2 and report_dict(report)["counts"]["reviewed_in_groups"] == 2
    assert "Reviewed 3 of 3 (2 of them accepted on their thumbnails, in gallery groups)" in _parts(pdf)[0]


def test_probabilities_read_as_the_app_writes_them_never_a_rounded_100_or_0(tmp_path: Path) -> None:
    """The flagged page said "Basophil 100%, Neutrophil 0%" for a call the app showed as >99.9 % and <0.1 %."""
    from gui.report_pdf import report_html

    with ReviewStore.open(tmp_path / "db.sqlite3") as store:
        case = store.open_case(tmp_path)
        (path,) = _make_images(tmp_path, 1)
        h = file_sha256(path)
        probabilities = {"benign": 0.9996, "pre_b": 0.0003, "pro_b": 0.0001}
        case.record_prediction(path, h, model_name="M", model_version="1", model_sha256="f" * 64,
                               predicted_id="benign", probabilities=probabilities)
        case.record_decision(path, h, reviewed_id=None, flagged=True, comment="", user="t")
        html = report_html(build_report(case))
    flagged = html.split("Flagged cells (1)", 1)[1]
    assert "(benign &gt;99.9 %, pre_b &lt;0.1 %, pro_b &lt;0.1 %)" in flagged
    assert " 100%" not in flagged and " 0%" not in flagged


def test_the_report_lists_numbered_files_as_the_table_does(tmp_path: Path) -> None:
    """"Image 10" came before "Image 2" in the report, and "Z" before "a": not the order the technician reviewed."""
    with ReviewStore.open(tmp_path / "db.sqlite3") as store:
        case = store.open_case(tmp_path)
        for i, name in enumerate(("Image 10.png", "image 2.png", "Z 1.png", "a 1.png")):
            path = tmp_path / name
            Image.fromarray(np.full((8, 8, 3), i * 40, np.uint8)).save(path)
            case.record_prediction(path, file_sha256(path), model_name="M", model_version="1", model_sha256="f" * 64,
                                   predicted_id="benign", probabilities={"benign": 0.9, "pre_b": 0.1})
        files = [r.file for r in build_report(case).rows]
    assert files == ["a 1.png", "image 2.png", "Image 10.png", "Z 1.png"]


def test_a_flagged_cell_carries_the_record_of_its_models_calls_of_that_class(tmp_path: Path) -> None:
    """The pathologist reading a flagged cell weighs its call as the technician did in the app: with how the
    model's calls of that class fared on its test images (from the confusion matrix on its card)."""
    from gui.report_pdf import ModelCardSummary, report_html

    with ReviewStore.open(tmp_path / "db.sqlite3") as store:
        case = store.open_case(tmp_path)
        (path,) = _make_images(tmp_path, 1)
        h = file_sha256(path)
        case.record_prediction(path, h, model_name="M", model_version="1", model_sha256="f" * 64,
                               predicted_id="pre_b", probabilities={"benign": 0.1, "pre_b": 0.9})
        case.record_decision(path, h, reviewed_id=None, flagged=True, comment="", user="t")
        report = build_report(case)
    card = ModelCardSummary(name="M", version="1", sha256="f" * 64, class_names={"benign": "Benign", "pre_b": "Pre-B"},
                            metrics={"confusion_matrix": [[8, 2], [0, 10]]})
    flagged = report_html(report, model_cards=[card]).split("Flagged cells (1)", 1)[1]
    assert "On its test images, 10 of its 12 Pre-B calls were right (83.3 %); the other 2 were Benign." in flagged
    other = ModelCardSummary(name="N", version="1", sha256="e" * 64, class_names=card.class_names, metrics=card.metrics)
    assert "On its test images" not in report_html(report, model_cards=[other])  # another model's record: never


def test_the_summary_says_when_images_of_several_folders_are_counted_as_one_case(tmp_path: Path) -> None:
    """One sub-folder per slide or patient is common; a differential over all of them is easily misread as one's."""
    from gui.report_pdf import write_pdf
    from review.store import DecisionRequest

    folder = tmp_path / "case"
    for slide in ("slide 1", "slide 2"):
        (folder / slide).mkdir(parents=True)
    paths = [*_make_images(folder / "slide 1", 2), *_make_images(folder / "slide 2", 1)]
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(paths[2])  # not a copy of slide 1's first image
    with ReviewStore.open(tmp_path / "db.sqlite3") as store:
        case = store.open_case(folder)
        case.record_decisions([DecisionRequest(p, file_sha256(p), "benign", False, "", 0) for p in paths[:2]],
                              user="t")
        case.record_decision(paths[2], file_sha256(paths[2]), reviewed_id="pre_b", flagged=False, user="t")
        report = build_report(case)
        pdf = write_pdf(report, tmp_path / "slides.pdf")
        single = store.open_case(folder / "slide 1")
        single.record_decision(paths[0], file_sha256(paths[0]), reviewed_id="benign", flagged=False, user="t")
        one = write_pdf(build_report(single), tmp_path / "one.pdf")
    text = " ".join(_flat(t) for t in _pages(pdf))
    assert "Images 3 in 2 folders, counted as one case" in text
    # Each folder's own count, as model call / after review (the tiny model's calls are not known here).
    assert "Per folder" in text and "slide 1" in text and "slide 2" in text
    by_folder = {f: (sum(pre.values()), post) for f, pre, post in differential_by_folder(report)}
    assert by_folder == {"slide 1": (2, {"benign": 2}), "slide 2": (1, {"pre_b": 1})}
    assert "Images 2 1" in text  # the table's last row: each folder's number of images
    from review.report import report_dict

    assert [(f["folder"], f["reviewed"]) for f in report_dict(report)["counts"]["by_folder"]] == [
        ("slide 1", {"benign": 2}), ("slide 2", {"pre_b": 1})]
    one_text = " ".join(_flat(t) for t in _pages(one))
    assert "counted as one case" not in one_text and "Per folder" not in one_text
