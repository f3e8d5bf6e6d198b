"""The case details dialog: the sample or slide ID and a note, which the report prints with the case.

Why: a folder path does not identify a specimen on paper. The ID names the report file, heads the PDF
and goes into every CSV row, so pooled results keep their sample.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QPlainTextEdit, QWidget

SAMPLE_ID_MAX = 80


class CaseDetailsDialog(QDialog):
    """Edit the sample ID and note; ``values()`` after ``exec()`` returned Accepted."""

    def __init__(self, sample_id: str, note: str, folder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Case details")
        self.sample = QLineEdit(sample_id)
        self.sample.setMaxLength(SAMPLE_ID_MAX)
        self.sample.setPlaceholderText("e.g. the lab's accession or slide number")
        self.note = QPlainTextEdit(note)
        self.note.setPlaceholderText("Optional: anything the report's reader should know about this case")
        self.note.setTabChangesFocus(True)
        self.note.setFixedHeight(90)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        where = QLabel(folder)
        where.setTextFormat(Qt.TextFormat.PlainText)  # a folder name, never markup
        where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Folder", where)
        form.addRow("Sample / slide ID", self.sample)
        form.addRow("Note", self.note)
        form.addRow(buttons)
        self.setMinimumWidth(480)
        self.sample.setFocus()

    def values(self) -> tuple[str, str]:
        return self.sample.text().strip(), self.note.toPlainText().strip()
