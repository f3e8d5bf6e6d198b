"""Report export from the real window (offscreen): decisions made with keys end up in the PDF, CSV
and JSON; the export runs off the GUI thread; an unwritable destination gives a clear message."""

from __future__ import annotations

import csv
import json
import threading
import unicodedata
from pathlib import Path

import cv2
import numpy as np
import pypdf
import pytest
from PySide6.QtCore import QElapsedTimer, QSettings, Qt, QTimer

import gui.report_action
from gui.calls import UNIDENTIFIED_ID
from gui.main_window import MainWindow
from gui.report_action import ReportOutcome, ReportTargets, check_destination, default_report_name
from gui.review_bridge import ReviewBridge
from gui.settings import AppSettings
from tests.model_factory import make_classifier

LABELS = ["Lymphocyte", "Monocyte", "Neutrophil"]


def _write_images(folder: Path, count: int, seed: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        img = (rng.uniform(0, 255, (40, 44, 3)) * rng.uniform(0.2, 1.0, 3)).astype(np.uint8)
        path = folder / f"cell_{i:03d}.png"
        cv2.imwrite(str(path), img)
        paths.append(path)
    return paths


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch) -> MainWindow:
    models = tmp_path / "models"
    make_classifier(models / "tiny.onnx", num_classes=3, size=32, labels=LABELS)
    monkeypatch.setenv("HEMALENS_BUNDLED_MODELS_DIR", str(models))
    monkeypatch.setenv("HEMALENS_USER_MODELS_DIR", str(tmp_path / "user-models"))
    settings = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    win = MainWindow(settings, ReviewBridge(tmp_path / "reviews.sqlite3"))
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()
    return win


def _open_and_review(qtbot, window: MainWindow, folder: Path) -> dict[str, tuple[str | None, bool]]:
    """Open ``folder``, review the first four images with keys; returns {file: (reviewed id, flagged)}."""
    with qtbot.waitSignal(window.batchFinished, timeout=30000):
        window.start([str(folder)])
    table = window.batch_panel.table
    table.setFocus()
    assert window.current_row() == 0
    ai_call_0 = window.model.ai_call_of(window.model.item(0))
    _press(qtbot, window, table, Qt.Key.Key_Return)  # confirm row 0, advance
    _press(qtbot, window, table, Qt.Key.Key_2)  # row 1 -> Monocyte, advance
    _press(qtbot, window, table, Qt.Key.Key_0)  # row 2 -> Unidentified, advance
    _press(qtbot, window, table, Qt.Key.Key_3)  # row 3 -> Neutrophil, advance to row 4
    _press(qtbot, window, table, Qt.Key.Key_PageUp)  # back to row 3
    _press(qtbot, window, table, Qt.Key.Key_F)  # flag row 3 for the pathologist
    assert window.model.item(3).flagged
    ids = window.model.class_ids
    return {
        "cell_000.png": (ai_call_0, False),
        "cell_001.png": (ids[1], False),
        "cell_002.png": (UNIDENTIFIED_ID, False),
        "cell_003.png": (ids[2], True),
        "cell_004.png": (None, False),
    }


class _EventLoopGaps:
    """The longest time the GUI thread went without serving a 5 ms timer (the event-loop stall)."""

    def __init__(self) -> None:
        self.clock = QElapsedTimer()
        self.clock.start()
        self.worst = 0
        self.timer = QTimer(interval=5, timeout=self._tick)
        self.timer.start()

    def _tick(self) -> None:
        self.worst = max(self.worst, self.clock.restart())

    def stop(self) -> float:
        self.timer.stop()
        return float(max(self.worst, self.clock.elapsed()))


def _pdf_text(path: Path) -> str:
    text = " ".join(page.extract_text() or "" for page in pypdf.PdfReader(str(path)).pages)
    return " ".join(unicodedata.normalize("NFKC", text).split())



def _press(qtbot, window, widget, key, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    """A key as a technician presses it: once the current image is on screen (a class key is refused before)."""
    qtbot.waitUntil(window.image_shown, timeout=10000)
    qtbot.keyClick(widget, key, modifiers)

def test_export_writes_pdf_csv_json_with_the_keyboard_decisions(qtbot, tmp_path, window, monkeypatch) -> None:
    folder = tmp_path / "smear"
    _write_images(folder, 5)
    expected = _open_and_review(qtbot, window, folder)

    # The export runs on the report thread, not the GUI thread.
    threads: list[str] = []
    real_run = gui.report_action.run_report_job

    def spy(job):
        threads.append(threading.current_thread().name)
        return real_run(job)

    monkeypatch.setattr(gui.report_action, "run_report_job", spy)
    out = tmp_path / "reports" / "case.pdf"  # the folder does not exist yet: created
    window.reports.warm_up()  # what the file dialog does
    qtbot.wait(300)
    gaps = _EventLoopGaps()
    with qtbot.waitSignal(window.reportExported, timeout=60000) as signal:
        assert window.export_report(out)
        assert not window.act_export_report.isEnabled()  # one export at a time
    print(f"\nreport export: {signal.args[0].seconds * 1000:.0f} ms on the report thread; "
          f"longest GUI event-loop gap {gaps.stop():.0f} ms")  # fmt: skip
    assert threads and threads[0] != threading.main_thread().name
    outcome: ReportOutcome = signal.args[0]
    assert outcome.targets == ReportTargets(out, out.with_suffix(".csv"), out.with_suffix(".json"))
    assert window.act_export_report.isEnabled()
    assert "Report written (5 images, not signed" in window.status_label.text()

    # CSV: one row per image with the decision made with the keys.
    with out.with_suffix(".csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = {r["file"]: r for r in csv.DictReader(handle)}
    assert set(rows) == set(expected)
    for name, (reviewed, flagged) in expected.items():
        assert rows[name]["reviewed_class"] == (reviewed or ""), name
        assert rows[name]["flagged"] == ("yes" if flagged else "no")
        assert rows[name]["model_name"] and rows[name]["predicted_class"] in window.model.class_ids
        assert rows[name]["reviewer"] == (window.review.user if reviewed else "")

    # JSON: the same decisions, and the audit trail has every key press that recorded something.
    doc = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    images = {Path(i["file"]).name: i for i in doc["images"]}
    for name, (reviewed, flagged) in expected.items():
        assert images[name]["reviewed_class"] == reviewed and images[name]["flagged"] is flagged
    assert len(doc["audit_trail"]) == 5  # 4 classes given + 1 flag
    assert doc["signed"] is None

    # PDF: a real PDF whose text names the flagged cell and the reviewed counts.
    assert out.read_bytes().startswith(b"%PDF")
    text = _pdf_text(out)
    assert "cell_003.png" in text
    assert "Neutrophil" in text and "research use" in text.lower()
    assert outcome.result.missing_heatmaps == 0  # the flagged cell got its heatmap from the loaded model


def test_unwritable_destination_gives_a_clear_message_and_no_files(qtbot, tmp_path, window) -> None:
    folder = tmp_path / "smear"
    _write_images(folder, 3)
    with qtbot.waitSignal(window.batchFinished, timeout=30000):
        window.start([str(folder)])
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the report folder should be")
    with qtbot.waitSignal(window.reportFailed, timeout=60000) as signal:
        assert window.export_report(blocker / "report.pdf")
    message = signal.args[0]
    assert message == f"Cannot write the report: {blocker} is a file, not a folder."
    assert window.error_banner.text() == f"The report was not written: {blocker} is a file, not a folder."
    assert window.error_banner.isVisible()
    assert window.act_export_report.isEnabled()
    # A later export to a good place works and clears the old failure from the banner.
    with qtbot.waitSignal(window.reportExported, timeout=60000):
        window.export_report(tmp_path / "ok" / "r")
    assert (tmp_path / "ok" / "r.pdf").is_file() and (tmp_path / "ok" / "r.json").is_file()
    assert not window.error_banner.isVisible()


def test_export_is_refused_without_a_case_and_while_classifying(qtbot, tmp_path, window) -> None:
    assert not window.export_report(tmp_path / "x.pdf")
    assert "Open a folder first" in window.status_label.text()
    folder = tmp_path / "smear"
    _write_images(folder, 40)
    with qtbot.waitSignal(window.batchFinished, timeout=30000):
        window.start([str(folder)])
    window._start_batch(paths=[item.path for item in window.model.items()])  # classify again
    assert window.engine.batch_running  # set synchronously; the worker has not answered yet
    assert not window.export_report(tmp_path / "y.pdf")
    assert "Wait until classification has finished" in window.status_label.text()
    window.cancel_batch()
    assert not (tmp_path / "x.pdf").exists() and not (tmp_path / "y.pdf").exists()


def test_destination_check_names_the_problem_before_writing(tmp_path, monkeypatch) -> None:
    from review.report import ReportError

    check_destination(ReportTargets.from_pdf(tmp_path / "new" / "deeper" / "r.pdf"))  # folders get created
    (tmp_path / "r.csv").mkdir()
    with pytest.raises(ReportError, match="r.csv is a folder"):
        check_destination(ReportTargets.from_pdf(tmp_path / "r.pdf"))
    # A read-only folder (simulated: the tests may run as root, who may write anywhere).
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = gui.report_action.os.access
    monkeypatch.setattr(gui.report_action.os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    with pytest.raises(ReportError, match=f"no permission to create files in {locked}"):
        check_destination(ReportTargets.from_pdf(locked / "r.pdf"))
    with pytest.raises(ReportError, match=f"no permission to create the folder {locked / 'sub'} in {locked}"):
        check_destination(ReportTargets.from_pdf(locked / "sub" / "r.pdf"))


def test_default_report_name_is_safe_and_names_the_case() -> None:
    from review.records import CaseDetails

    class _Case:
        id = 12
        folder = Path("/data/Smear 2026/ward #4")
        sample = ""

        def details(self):
            return CaseDetails(self.sample, "", "ann", "t") if self.sample else None

    case = _Case()
    name = default_report_name(case, __import__("datetime").date(2026, 11, 23))
    assert name == "hemalens-case12-ward_4-2026-11-23.pdf"
    case.sample = "S/24 1173"  # the sample ID names the file when it is set
    name = default_report_name(case, __import__("datetime").date(2026, 11, 23))
    assert name == "hemalens-case12-S_24_1173-2026-11-23.pdf"
    assert ReportTargets.from_pdf("/x/r").pdf == Path("/x/r.pdf")
    assert ReportTargets.from_pdf("/x/r.PDF").json == Path("/x/r.json")


def test_an_unreadable_file_gets_no_class_is_left_out_of_the_sign_off_and_listed_in_the_report(
    qtbot, tmp_path, window, monkeypatch
) -> None:
    import gui.main_window

    folder = tmp_path / "smear"
    _write_images(folder, 2)
    (folder / "zz_broken.png").write_bytes(b"this is not a PNG")
    with qtbot.waitSignal(window.batchFinished, timeout=30000):
        window.start([str(folder)])
    told: list[str] = []
    monkeypatch.setattr(gui.main_window, "tell", lambda parent, title, text, **kw: told.append(text))
    window.sign_case()  # nothing reviewed yet: refused, with where to find what is left
    assert told and told[0].startswith("Cannot sign: 2 of 2 images not reviewed") and "To review" in told[0]
    table = window.batch_panel.table
    table.setFocus()
    _press(qtbot, window, table, Qt.Key.Key_Return)
    _press(qtbot, window, table, Qt.Key.Key_Return)
    assert window.current_row() == 2 and window.model.item(2).status == "Failed"
    qtbot.waitUntil(lambda: window.heatmap_bar.full_caption().startswith("No heatmap: the image could not"))
    panel = window.prob_panel
    assert panel.review.text().startswith("Nothing to review") and not panel.hint.isVisible()
    assert not panel.warnings.isVisible() and "not an image" in panel.detail.text()  # the reason, said once

    # No class for a file nobody could see: before, a key press here was recorded as a review.
    _press(qtbot, window, table, Qt.Key.Key_1)
    assert window.model.item(2).reviewed_id is None and "could not be classified" in window.status_label.text()
    _press(qtbot, window, table, Qt.Key.Key_Return)
    assert window.model.item(2).reviewed_id is None and "no AI call to confirm" in window.status_label.text()
    _press(qtbot, window, table, Qt.Key.Key_F)  # a flag (and a comment) still go on record
    assert window.model.item(2).flagged

    # The sign-off covers the two classified images and names the unreadable file.
    asked: list[str] = []

    def answer_yes(parent, title, text):
        asked.append(text)
        return True

    monkeypatch.setattr(gui.main_window, "ask", answer_yes)
    window.sign_case()
    assert asked and "All 2 images reviewed" in asked[0] and "zz_broken.png" in asked[0]
    assert "No sample or slide ID is set" in asked[0]  # said before signing, while it can still be set
    assert window.review.signed_by() is not None
    assert window.review.case.events()[-1].detail["images"] == 2

    out = tmp_path / "reports" / "case.pdf"
    with qtbot.waitSignal(window.reportExported, timeout=60000):
        assert window.export_report(out)
    assert "lists 1 file(s) that could not be classified" in window.status_label.text()
    opened: list = []  # "Open report" hands the PDF just written to the system's viewer
    monkeypatch.setattr(gui.main_window.QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    assert window.open_report_button.isVisible()
    window.open_report_button.click()
    assert [u.toLocalFile() for u in opened] == [str(out)]
    text = _pdf_text(out)
    assert "Files not classified 1" in text and "Files that could not be classified (1)" in text
    assert "zz_broken.png" in text
    doc = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert [u["file"] for u in doc["unclassified"]] == ["zz_broken.png"] and doc["unclassified"][0]["reason"]


def test_the_report_counts_uncertain_calls_as_the_window_does(qtbot, tmp_path, window) -> None:
    folder = tmp_path / "smear"
    _write_images(folder, 6)
    with qtbot.waitSignal(window.batchFinished, timeout=30000):
        window.start([str(folder)])
    top = sorted(float(window.model.item(r).probabilities.max()) for r in range(6))
    window.prob_panel.set_threshold((top[2] + top[3]) / 2)  # three calls under it, three over
    window._on_threshold((top[2] + top[3]) / 2)
    on_screen = [window.model.ai_call_of(window.model.item(r)) for r in range(6)]
    assert on_screen.count(UNIDENTIFIED_ID) == 3
    out = tmp_path / "case.pdf"
    with qtbot.waitSignal(window.reportExported, timeout=60000):
        assert window.export_report(out)
    doc = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert doc["uncertain_below"] == pytest.approx((top[2] + top[3]) / 2)
    assert doc["counts"]["predicted"].get(UNIDENTIFIED_ID) == 3
    assert sum(doc["counts"]["predicted"].values()) == 6
    text = _pdf_text(out)
    assert "Uncertain model calls (3)" in text and "? (uncertain)" not in text  # none flagged or noted


def test_a_reviewer_name_is_recorded_with_the_login_and_remembered(qtbot, tmp_path, window, monkeypatch) -> None:
    import gui.main_window

    login = window.review.login
    monkeypatch.setattr(gui.main_window, "ask_text", lambda *a, **k: ("  Ann   Tech ", True))
    window.choose_reviewer_name()
    assert window.review.user == f"Ann Tech ({login})" and window.reviewer_label.text().endswith(window.review.user)
    assert window.settings.reviewer_name() == "Ann   Tech"

    folder = tmp_path / "smear"
    _write_images(folder, 2)
    with qtbot.waitSignal(window.batchFinished, timeout=30000):
        window.start([str(folder)])
    window.batch_panel.table.setFocus()
    _press(qtbot, window, window.batch_panel.table, Qt.Key.Key_Return)
    assert [d.user for d in window.review.case.decisions()] == [f"Ann Tech ({login})"]

    # A new window (the next start) records under the remembered name; an empty name means the login.
    again = MainWindow(window.settings, ReviewBridge(tmp_path / "other.sqlite3"))
    qtbot.addWidget(again)
    assert again.review.user == f"Ann Tech ({login})"
    monkeypatch.setattr(gui.main_window, "ask_text", lambda *a, **k: ("", True))
    again.choose_reviewer_name()
    assert again.review.user == login


def test_the_report_dialog_starts_in_a_folder_that_exists(qtbot, window, tmp_path, monkeypatch) -> None:
    """Without a Documents folder the save dialog opened in the program's working folder."""
    folder = tmp_path / "case"
    _write_images(folder, 2)
    with qtbot.waitSignal(window.batchFinished, timeout=30000):
        window.start([str(folder)])
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setattr(gui.main_window.QStandardPaths, "writableLocation", lambda _kind: str(tmp_path / "Documents"))
    monkeypatch.setattr(gui.main_window.Path, "home", staticmethod(lambda: home))
    asked: list[str] = []
    monkeypatch.setattr(gui.main_window.QFileDialog, "getSaveFileName",
                        lambda parent, title, start, filters: (asked.append(start), ("", ""))[1])
    window.choose_report_file()
    assert Path(asked[0]).parent == home and Path(asked[0]).name.startswith("hemalens-case")
    if not window.image_view.has_image():
        qtbot.waitSignal(window.detailShown, timeout=10000).wait()
    window.choose_view_file()  # "Save image with heatmap" starts in the same place
    assert Path(asked[1]).parent == home and Path(asked[1]).name.endswith("_heatmap.png")
    (tmp_path / "Documents").mkdir()
    window.choose_report_file()
    assert Path(asked[2]).parent == tmp_path / "Documents"
