"""Model → Check on labelled images…: the model in use measured on a lab's labelled folder in the app (offscreen):
figures computed independently, folders matching no class left out and named, Cancel, a folder that fits no
class, and the figures saved as JSON."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt

from gui.main_window import MainWindow
from gui.model_check import run_check
from gui.review_bridge import ReviewBridge
from gui.settings import AppSettings
from inference.cli_evaluate import CANCELLED
from inference.errors import HemaLensError
from inference.images import load_image
from inference.session import ModelSession
from tests.model_factory import make_classifier

LABELS = ["Lymphocyte", "Monocyte", "Neutrophil"]


@pytest.fixture
def env(tmp_path, monkeypatch) -> dict[str, Path]:
    bundled = tmp_path / "bundled"
    model = make_classifier(bundled / "tiny.onnx", num_classes=3, size=32, labels=LABELS)
    monkeypatch.setenv("HEMALENS_BUNDLED_MODELS_DIR", str(bundled))
    monkeypatch.setenv("HEMALENS_USER_MODELS_DIR", str(tmp_path / "user-models"))
    labelled = tmp_path / "our-lab"
    rng = np.random.default_rng(4)
    for folder, count in (("lymphocyte", 7), ("Monocyte", 5), ("smudge cells", 3)):
        (labelled / folder).mkdir(parents=True)
        for i in range(count):
            cv2.imwrite(str(labelled / folder / f"img_{i}.png"), rng.uniform(0, 255, (40, 40, 3)).astype(np.uint8))
    (labelled / "Monocyte" / "broken.png").write_bytes(b"not an image")
    asked: list[list[str]] = []
    answer: dict[str, dict[str, str] | None] = {"mapping": {}}  # the technician leaves unnamed folders out

    def ask(_parent, folders, labels):
        asked.append(folders)
        return answer["mapping"]

    monkeypatch.setattr("gui.main_window.ask_folder_classes", ask)
    return {"model": model, "labelled": labelled, "tmp": tmp_path, "asked": asked, "answer": answer}


def _window(qtbot, tmp_path: Path) -> MainWindow:
    settings = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    window = MainWindow(settings, ReviewBridge(tmp_path / "reviews.sqlite3"))
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.modelReady, timeout=30000):
        window.start([])
    return window


def _expected(model: Path, labelled: Path) -> tuple[int, int]:
    """(right, counted): the model's own calls on the two matching folders, one image at a time."""
    session = ModelSession.load(model)
    right = counted = 0
    for folder, label in (("lymphocyte", "Lymphocyte"), ("Monocyte", "Monocyte")):
        for path in sorted((labelled / folder).glob("img_*.png")):
            counted += 1
            right += session.predict(load_image(path).rgb).top_label == label
    return right, counted


def test_check_measures_the_model_in_use_on_a_labelled_folder(qtbot, env) -> None:
    window = _window(qtbot, env["tmp"])
    assert window.act_check.isEnabled() and window.act_check in window.menuBar().actions()[2].menu().actions()
    dialog = window.check_model_on_folder(env["labelled"])
    assert dialog.isVisible() and dialog.windowModality() == Qt.WindowModality.NonModal  # the review goes on
    with qtbot.waitSignal(dialog.checker.finished, timeout=60000):
        pass
    assert env["asked"] == [["smudge cells"]]  # its name says no class: asked, and left out
    right, counted = _expected(env["model"], env["labelled"])
    figures = dialog.outcome.figures
    assert figures["n"] == counted == 12
    assert figures["accuracy"] == pytest.approx(right / counted, abs=1e-4)
    assert figures["per_class"]["Lymphocyte"]["support"] == 7 and figures["per_class"]["Monocyte"]["support"] == 5
    text = dialog.browser.toPlainText()
    assert f"Accuracy {100 * right / counted:.1f} %" in text and "12 images" in text
    assert "Left out, matching no class of this model: smudge cells" in text  # named, never silently dropped
    assert "Unreadable, not counted (1)" in text and "broken.png" in text
    assert "Wrong calls, surest first" in text  # the confident wrong calls a lab most needs to see, by name
    some_wrong = next(r for r in dialog.outcome.rows if r["predicted"] != r["true"])
    assert Path(some_wrong["path"]).relative_to(env["labelled"]).as_posix() in text  # under its class folder
    assert "Confusion matrix" in text and "model card states no measured accuracy" in text
    called_neutrophil = "Neutrophil" in {r["predicted"] for r in dialog.outcome.rows}
    # No Neutrophil folder: unless the model called some, the class is said to be unmeasured, not shown at 0 %.
    assert ("so not measured: Neutrophil." in text) is not called_neutrophil
    assert text.count("\nAt the app's threshold (60%)") == 1
    assert not dialog.bar.isVisible() and dialog.save_button.isVisible()

    out = env["tmp"] / "check.json"
    assert dialog.save_json(out)
    saved = json.loads(out.read_text())
    assert saved["accuracy"] == figures["accuracy"] and saved["left_out_folders"] == ["smudge cells"]
    assert len(saved["images"]) == 12 and saved["model_sha256"] == window.model_info.sha256

    wrong = sorted(Path(r["path"]) for r in saved["images"] if r["predicted"] != r["true"])
    assert len(wrong) == counted - right > 0  # the tiny model on noise: some calls are wrong
    assert dialog.wrong_button.isVisible() and dialog.wrong_button.text() == f"Open the {len(wrong)} wrong calls"
    with qtbot.waitSignal(window.batchFinished, timeout=30000):
        dialog.wrong_button.click()  # they open in the window, to be looked at with their heatmaps
    assert not dialog.isVisible() and not dialog.checker._thread.isRunning()
    assert sorted(item.path for item in window.model.items()) == wrong
    labelled = env["labelled"]
    # Each is named under the labelled folder, so its class folder shows beside the AI call.
    assert {item.name for item in window.model.items()} == {p.relative_to(labelled).as_posix() for p in wrong}
    one_folder = sorted(labelled.glob("lymphocyte/img_*.png"))[:2]  # also when every wrong call is in one folder
    with qtbot.waitSignal(window.batchFinished, timeout=30000):
        dialog.openWrongCalls.emit(one_folder, dialog.folder)
    assert {item.name for item in window.model.items()} == {"lymphocyte/img_0.png", "lymphocyte/img_1.png"}


def test_a_folder_that_fits_no_class_says_what_it_needs(qtbot, env) -> None:
    window = _window(qtbot, env["tmp"])
    dialog = window.check_model_on_folder(env["labelled"] / "smudge cells")  # images, but no class sub-folders
    with qtbot.waitSignal(dialog.checker.failed, timeout=60000) as failed:
        pass
    assert "no class sub-folders" in failed.args[0]
    assert "did not finish" in dialog.heading.text()
    assert "Lymphocyte, Monocyte, Neutrophil" in dialog.browser.toPlainText()
    assert not dialog.save_button.isVisible()
    dialog.reject()


def test_cancel_stops_the_check_between_batches(env) -> None:
    from inference.cli_evaluate import evaluate_folder

    session = ModelSession.load(env["model"])
    cancel = threading.Event()
    seen = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        cancel.set()  # the user presses Cancel while the first batch runs

    with pytest.raises(HemaLensError, match=CANCELLED):
        evaluate_folder(session, env["labelled"], "all", {}, skip_unknown=True, batch_size=5, progress=progress,
                        cancel=cancel)
    assert seen == [(5, 13)]  # one batch of 5 (of 13 files, the broken one included), then it stopped
    with pytest.raises(HemaLensError, match=CANCELLED):  # what the dialog's worker runs, cancelled at once
        run_check(env["model"], env["labelled"], 0.6, cancel=cancel)


def test_closing_the_dialog_while_it_runs_stops_the_check(qtbot, env) -> None:
    window = _window(qtbot, env["tmp"])
    dialog = window.check_model_on_folder(env["labelled"])
    dialog.reject()  # Cancel at once: the worker stops at its next batch and its thread is joined
    assert not dialog.checker._thread.isRunning()
    again = window.check_model_on_folder(env["labelled"])  # a new check still runs to the end
    with qtbot.waitSignal(again.checker.finished, timeout=60000):
        pass
    assert again.outcome is not None and again.outcome.figures["n"] == 12
    window.close()  # with the dialog still open: its thread is stopped, no "QThread destroyed" abort
    assert not again.checker._thread.isRunning()


def test_a_folder_named_otherwise_is_counted_as_the_class_chosen_for_it(qtbot, env) -> None:
    (env["labelled"] / "lymphocyte").rename(env["labelled"] / "Lymphs")
    env["answer"]["mapping"] = {"Lymphs": "Lymphocyte"}
    window = _window(qtbot, env["tmp"])
    dialog = window.check_model_on_folder(env["labelled"])
    with qtbot.waitSignal(dialog.checker.finished, timeout=60000):
        pass
    assert env["asked"] == [["Lymphs", "smudge cells"]]
    assert dialog.outcome.figures["per_class"]["Lymphocyte"]["support"] == 7
    assert dialog.left_out == ["smudge cells"]
    out = env["tmp"] / "c.json"
    assert dialog.save_json(out) and json.loads(out.read_text())["folder_classes"] == {"Lymphs": "Lymphocyte"}
    dialog.reject()
    env["answer"]["mapping"] = None  # Cancel on the question: no check
    assert window.check_model_on_folder(env["labelled"]) is None


def test_the_question_proposes_the_closest_class_and_leaves_the_choice_to_the_technician(qtbot) -> None:
    from gui.model_check import LEAVE_OUT, FolderClassesDialog

    dialog = FolderClassesDialog(["Neutrophils", "smudge cells"], LABELS)
    qtbot.addWidget(dialog)
    assert dialog.choices["Neutrophils"].currentText() == "Neutrophil"
    assert dialog.choices["smudge cells"].currentText() == LEAVE_OUT
    assert dialog.mapping() == {"Neutrophils": "Neutrophil"}
    dialog.choices["smudge cells"].setCurrentText("Monocyte")
    assert dialog.mapping() == {"Neutrophils": "Neutrophil", "smudge cells": "Monocyte"}


def test_on_its_own_training_folder_a_shipped_model_is_checked_on_its_test_block_only() -> None:
    """The AML screen on ../shared/data/aml: the held-out block, and the card's figures come back."""
    from tests.test_evaluate_models import DATA

    if not (DATA / "aml").is_dir():
        pytest.skip(f"real data not present at {DATA / 'aml'} (see shared/data/README.md)")
    model = Path(__file__).resolve().parents[1] / "assets" / "models" / "hemalens-aml.onnx"
    outcome = run_check(model, DATA / "aml", 0.6)
    card = ModelSession.load(model).spec.provenance.metrics
    assert outcome.split == "test" and "held-out test block" in outcome.why and "--split" not in outcome.why
    assert outcome.figures["n"] == card["n"] and outcome.figures["accuracy"] == pytest.approx(card["accuracy"])
