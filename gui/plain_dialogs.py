"""Message boxes and text prompts whose text is shown as written, never as markup.

Why: Qt guesses whether a dialog's text is HTML. A file name, sample ID or reviewer name such as
``<b>12`` then turns bold or vanishes from the very question a technician answers (which files a
sign-off leaves out, whose name it is signed with). Every dialog that carries such text goes here.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCompleter, QInputDialog, QLabel, QLineEdit, QMessageBox, QWidget

TEXT_BOX_MIN_WIDTH = 440


def message_box(parent: QWidget | None, title: str, text: str,
                icon: QMessageBox.Icon = QMessageBox.Icon.Information) -> QMessageBox:
    """A message box with plain text (not shown yet: the caller adds buttons or just calls exec())."""
    box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    return box


def tell(parent: QWidget | None, title: str, text: str, *, warning: bool = False) -> None:
    """Say something the user must read before going on."""
    icon = QMessageBox.Icon.Warning if warning else QMessageBox.Icon.Information
    message_box(parent, title, text, icon).exec()


def ask(parent: QWidget | None, title: str, text: str) -> bool:
    """A yes/no question; True only for an explicit Yes (closing the box answers No)."""
    box = message_box(parent, title, text, QMessageBox.Icon.Question)
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes


def text_dialog(parent: QWidget | None, title: str, label: str, text: str = "",
                suggestions: Sequence[str] = ()) -> QInputDialog:
    """A one-line text prompt whose label is plain text (not shown yet); typing offers the ``suggestions`` that
    contain the words typed so far."""
    dialog = QInputDialog(parent)
    dialog.setWindowTitle(title)
    dialog.setLabelText(label)
    dialog.setTextValue(text)
    for child in dialog.findChildren(QLabel):  # QInputDialog keeps its label private; it is its only QLabel
        child.setTextFormat(Qt.TextFormat.PlainText)
    for box in dialog.findChildren(QLineEdit):  # the dialog sizes itself to its parts: widen the text box
        box.setMinimumWidth(TEXT_BOX_MIN_WIDTH)  # a comment or a reason is a sentence, not a word
        if suggestions:
            completer = QCompleter(list(suggestions), box)
            completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
            completer.setFilterMode(Qt.MatchFlag.MatchContains)
            box.setCompleter(completer)
    return dialog


def ask_text(parent: QWidget | None, title: str, label: str, text: str = "",
             suggestions: Sequence[str] = ()) -> tuple[str, bool]:
    """The text typed and whether OK was pressed, as QInputDialog.getText gives them."""
    dialog = text_dialog(parent, title, label, text, suggestions)
    accepted = dialog.exec() == QInputDialog.DialogCode.Accepted
    return (dialog.textValue() if accepted else text), accepted
