"""Model → Check on labelled images…: how the model in use does on the lab's own labelled folder, in the app.

A model card says how a model did on its makers' test images; a lab has to know how it does on its own before
relying on it. This runs what `hemalens evaluate` runs (``inference.cli_evaluate.evaluate_folder``: one
sub-folder per class, matched to the model's classes by name) on a worker thread, with progress and Cancel,
and shows the figures beside the card's. The session is loaded on the worker too, so the window stays free.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from gui.items import ModelInfo, shown_name
from gui.job_thread import SingleJobThread
from gui.model_card import metrics_sections, table_html
from inference.errors import HemaLensError
from inference.file_mode import write_file_atomically
from inference.model_figures import held_out_result, percent

LEAVE_OUT = "Leave out"
WRONG_CALLS_LISTED = 20  # a confident wrong call is what a lab most needs to see


@dataclass(frozen=True)
class CheckOutcome:
    """What a finished check found: figures, unreadable files, and the per-image rows for the JSON."""

    folder: Path
    split: str
    why: str
    figures: dict[str, Any]  # inference.metrics.Evaluation.to_dict()
    threshold_line: str
    unlike_line: str | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def run_check(model_path: Path, folder: Path, threshold: float, mapping: dict[str, str] | None = None,
              progress: Callable[[int, int], None] | None = None,
              cancel: threading.Event | None = None) -> CheckOutcome:
    """Load the model and measure it on ``folder`` (any thread); ``mapping`` names the class of folders whose
    names say none, and the other such folders are left out. Raises HemaLensError with the reason."""
    from inference.cli_evaluate import evaluate_folder, resolve_split, threshold_of_rows, unlike_training_line
    from inference.session import ModelSession

    session = ModelSession.load(model_path)
    spec = session.spec
    split, why = resolve_split("auto", folder, dict(spec.provenance.metrics or {}))
    ev, rows, errors = evaluate_folder(session, folder, split, dict(mapping or {}), skip_unknown=True,
                                       progress=progress, cancel=cancel)
    return CheckOutcome(
        folder=folder, split=split, why=why, figures=ev.to_dict(),
        threshold_line=threshold_of_rows(rows, threshold).line(),
        unlike_line=unlike_training_line(rows) if spec.training_reference is not None else None,
        rows=rows, unreadable=errors)


def _import_evaluation() -> None:
    import inference.cli_evaluate  # noqa: F401 - a first import on the click would stall the worker's start


class ModelChecker(SingleJobThread):
    """Owns the check's thread; one check at a time. ``progress(done, total)`` and ``finished(CheckOutcome)`` or
    ``failed(message)`` arrive on the GUI thread; ``cancel()`` stops the running check between images."""

    progress = Signal(int, int)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__("hemalens-model-check", _import_evaluation, parent)
        self._cancel = threading.Event()

    def start(self, model_path: Path, folder: Path, threshold: float, mapping: dict[str, str] | None = None) -> bool:
        if self.busy:
            return False
        self._cancel.clear()
        model_path, folder, threshold, mapping = Path(model_path), Path(folder), float(threshold), dict(mapping or {})
        return self._submit(lambda: run_check(model_path, folder, threshold, mapping, self.progress.emit, self._cancel))

    def cancel(self) -> None:
        self._cancel.set()


def outcome_html(info: ModelInfo, outcome: CheckOutcome, left_out: list[str]) -> str:
    """The figures on the lab's folder, the card's for comparison, and the folders ``left_out``."""
    fig = outcome.figures
    esc = html.escape
    parts = [f"<p><b>{esc(info.name)}</b> on <b>{esc(str(outcome.folder))}</b>: {fig['n']} images "
             f"({esc(outcome.why)}).</p>",
             f"<p>Accuracy <b>{percent(fig['accuracy'])}</b>, balanced accuracy {percent(fig['balanced_accuracy'])}, "
             f"calibration error (ECE) {percent(fig['ece'])}.</p>"]
    card = held_out_result(dict(info.spec.provenance.metrics or {}))
    if card is not None:
        gap = fig["accuracy"] - card.accuracy
        verdict = ("lower than on its makers' test images: check the confusion matrix for the classes it mixes up "
                   "before relying on its calls") if gap < -0.02 else "in line with its makers' test images"
        parts.append(f"<p>Its model card: accuracy {percent(card.accuracy)} on {esc(card.where)}. Here it is "
                     f"{abs(gap) * 100:.1f} points {'lower' if gap < 0 else 'higher'}: {verdict}.</p>")
    else:
        parts.append("<p>Its model card states no measured accuracy to compare with.</p>")
    for line in (outcome.threshold_line, outcome.unlike_line or ""):
        if line:
            parts.append(f"<p>{esc(line[:1].upper() + line[1:])}</p>")
    called = [sum(row[i] for row in fig["confusion_matrix"]) for i in range(len(fig["labels"]))]
    present = {c: v for (c, v), n in zip(fig["per_class"].items(), called, strict=True) if v["support"] or n}
    tables, _ = metrics_sections({"per_class": present, "confusion_matrix": fig["confusion_matrix"]},
                                 list(fig["labels"]))
    parts.append(tables)
    absent = [c for c in fig["per_class"] if c not in present]
    if absent:
        parts.append(f"<p>Not in this folder and never called, so not measured: {esc(', '.join(absent))}.</p>")
    wrong = sorted((r for r in outcome.rows if r["predicted"] != r["true"]), key=lambda r: -r["probability"])
    if wrong:
        shown = wrong[:WRONG_CALLS_LISTED]
        rows = [[esc(shown_name(Path(r["path"]), outcome.folder)), esc(r["true"]), esc(r["predicted"]),
                 percent(r["probability"])] for r in shown]  # as the window names them once opened
        more = f" (the {len(shown)} surest of {len(wrong)})" if len(wrong) > len(shown) else ""
        parts.append(f"<p><b>Wrong calls</b>, surest first{more}</p>"
                     + table_html(["image", "folder's class", "AI call", "probability"], rows))
    if left_out:
        parts.append(f"<p>Left out, matching no class of this model: {esc(', '.join(left_out))} "
                     f"(its classes: {esc(', '.join(info.labels))}). Rename a folder to its class to include it.</p>")
    if outcome.unreadable:
        parts.append(f"<p>Unreadable, not counted ({len(outcome.unreadable)}): "
                     f"{esc('; '.join(outcome.unreadable[:5]))}{' …' if len(outcome.unreadable) > 5 else ''}</p>")
    return "".join(parts)


def folders_needing_a_class(folder: Path, info: ModelInfo) -> list[str]:
    """The labelled folder's class sub-folders whose names match none of the model's classes; [] when the
    folder cannot be read as one (the check itself then says why)."""
    from inference.cli_evaluate import unmatched_folders
    from inference.splits import labelled_folder

    try:
        names = list(labelled_folder(folder, "all"))
    except (HemaLensError, OSError):
        return []
    return unmatched_folders(names, [c.id for c in info.spec.classes], list(info.labels))


class FolderClassesDialog(QDialog):
    """Which class each folder holds, for folders whose names say none ("Neutrophils", "Lymphs"): the closest
    class is proposed, the choice is the technician's; "Leave out" keeps a folder out of the figures."""

    def __init__(self, folders: list[str], labels: list[str], parent: QWidget | None = None) -> None:
        from inference.cli_evaluate import closest_label

        super().__init__(parent)
        self.setWindowTitle("Which class is in each folder?")
        self.setMinimumWidth(460)  # the question on two lines, not five
        intro = QLabel("These folders are not named as a class of the model. Choose the class each one holds, or "
                       "leave it out of the figures:")
        intro.setWordWrap(True)
        form = QFormLayout()
        self.choices: dict[str, QComboBox] = {}
        for name in folders:
            box = QComboBox()
            box.addItems([LEAVE_OUT, *labels])
            guess = closest_label(name, labels)
            box.setCurrentText(guess or LEAVE_OUT)
            form.addRow(QLabel(html.escape(name)), box)
            self.choices[name] = box
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def mapping(self) -> dict[str, str]:
        """Folder -> class for every folder given a class (left-out folders are not in it)."""
        return {name: box.currentText() for name, box in self.choices.items() if box.currentText() != LEAVE_OUT}


def ask_folder_classes(parent: QWidget, folders: list[str], labels: list[str]) -> dict[str, str] | None:
    """The technician's folder -> class choices, or None when they cancel."""
    dialog = FolderClassesDialog(folders, labels, parent)
    return dialog.mapping() if dialog.exec() == QDialog.DialogCode.Accepted else None


class ModelCheckDialog(QDialog):
    """Progress while the check runs (Cancel stops it), then the figures, which can be saved as JSON, and the
    wrong calls, which can be opened in the window to look at with their heatmaps."""

    openWrongCalls = Signal(list, object)  # the image paths the model called wrong, the labelled folder

    def __init__(self, info: ModelInfo, folder: Path, threshold: float, mapping: dict[str, str] | None = None,
                 left_out: list[str] | None = None, parent: QWidget | None = None) -> None:
        """``mapping``: the classes chosen for folders named otherwise; ``left_out``: the folders left out."""
        super().__init__(parent)
        self.info, self.folder, self.threshold = info, Path(folder), threshold
        self.mapping, self.left_out = dict(mapping or {}), list(left_out or [])
        self.outcome: CheckOutcome | None = None
        self.setWindowTitle(f"Check {info.name} on labelled images")
        self.resize(760, 620)
        self.heading = QLabel(f"Classifying the labelled images in {self.folder} with {info.name}…")
        self.heading.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # busy until the first batch says how many images there are
        self.browser = QTextBrowser()
        self.browser.setPlainText("The figures appear here once every image is classified.")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.save_button = QPushButton("Save figures…")
        self.save_button.setToolTip("Write the figures and every image's call as JSON (as hemalens evaluate --json)")
        self.buttons.addButton(self.save_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.save_button.setVisible(False)  # until there are figures to save
        self.wrong_button = QPushButton()
        self.wrong_button.setToolTip("Open the images it called wrong in the window, to look at them with their "
                                     "heatmaps (they replace the images open now; decisions made are kept)")
        self.buttons.addButton(self.wrong_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.wrong_button.setVisible(False)
        self.wrong_button.clicked.connect(self._open_wrong_calls)
        self.buttons.rejected.connect(self.reject)
        self.save_button.clicked.connect(self.choose_json_file)
        layout = QVBoxLayout(self)
        for widget in (self.heading, self.bar, self.browser, self.buttons):
            layout.addWidget(widget)
        self.checker = ModelChecker(self)
        self.checker.progress.connect(self._on_progress)
        self.checker.finished.connect(self._on_finished)
        self.checker.failed.connect(self._on_failed)

    def start(self) -> None:
        self.checker.start(self.info.path, self.folder, self.threshold, self.mapping)

    def _on_progress(self, done: int, total: int) -> None:
        self.bar.setRange(0, total)
        self.bar.setValue(done)
        self.heading.setText(f"Classifying the labelled images in {self.folder} with {self.info.name}: "
                             f"{done} of {total}…")

    def _finish(self, heading: str) -> None:
        self.heading.setText(heading)
        self.bar.setVisible(False)
        self.buttons.setStandardButtons(QDialogButtonBox.StandardButton.Close)
        self.save_button.setVisible(self.outcome is not None)  # the button box shows every button it lays out
        wrong = len(self.wrong_calls())
        self.wrong_button.setText(f"Open the {wrong} wrong call{'s' if wrong != 1 else ''}")
        self.wrong_button.setVisible(wrong > 0)

    def _on_finished(self, outcome: CheckOutcome) -> None:
        self.outcome = outcome
        self._finish(f"{self.info.name} on your labelled images: a screening aid for research use; these figures "
                     "are for this folder only.")
        self.browser.setHtml(outcome_html(self.info, outcome, self.left_out))

    def _on_failed(self, message: str) -> None:
        self._finish(f"The check did not finish: {message}.")
        self.browser.setPlainText(
            "The folder needs one sub-folder per class, named as the model's classes "
            f"({', '.join(self.info.labels)}), each holding that class's images.")

    def wrong_calls(self) -> list[Path]:
        """The images the model called wrong, in the folder's order."""
        rows = self.outcome.rows if self.outcome is not None else []
        return [Path(r["path"]) for r in rows if r["predicted"] != r["true"]]

    def _open_wrong_calls(self) -> None:
        paths = self.wrong_calls()
        self.checker.shutdown()  # the check is over: its thread goes with the dialog
        self.accept()
        self.openWrongCalls.emit(paths, self.folder)

    def reject(self) -> None:
        """Cancel (or Close): a running check stops between batches; the thread is joined before the dialog goes."""
        self.checker.cancel()
        self.checker.shutdown()
        super().reject()

    def choose_json_file(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Save the check's figures", str(self.folder / "check.json"),
                                              "JSON (*.json)")
        if name:
            self.save_json(Path(name))

    def save_json(self, path: Path) -> bool:
        """Write the figures and per-image rows; says so in the heading when the file cannot be written."""
        if self.outcome is None:
            return False
        o = self.outcome
        doc = {"model": self.info.name, "model_id": self.info.spec.id, "model_sha256": self.info.sha256,
               "folder": str(o.folder), "split": o.split, "folder_classes": self.mapping, **o.figures,
               "threshold": o.threshold_line, "unreadable": o.unreadable, "left_out_folders": self.left_out,
               "images": o.rows}
        try:
            write_file_atomically(path, json.dumps(doc, indent=1).encode("utf-8"))
        except OSError as exc:
            self.heading.setText(f"Could not save {path}: {exc.strerror or exc}")
            return False
        self.heading.setText(f"Figures saved to {path}.")
        return True
