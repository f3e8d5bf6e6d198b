"""Dialog texts carry file names, sample IDs and reviewer names: they must show as typed, never as markup."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QLabel, QLineEdit, QMessageBox

from gui.plain_dialogs import TEXT_BOX_MIN_WIDTH, ask, message_box, text_dialog

ODD = "<b>S-12</b> <i>cell.png"


def test_a_message_box_shows_markup_like_text_as_it_is(qtbot) -> None:
    box = message_box(None, "Sign off case", f"Not classified: {ODD}")
    qtbot.addWidget(box)
    assert box.textFormat() == Qt.TextFormat.PlainText and box.text().endswith(ODD)
    shown = [label for label in box.findChildren(QLabel) if ODD in label.text()]
    assert shown and all(label.textFormat() == Qt.TextFormat.PlainText for label in shown)


def test_a_text_prompt_label_is_plain_and_keeps_its_value(qtbot) -> None:
    dialog = text_dialog(None, "Comment", f"Comment on {ODD}:", "earlier note")
    qtbot.addWidget(dialog)
    labels = [label for label in dialog.findChildren(QLabel) if ODD in label.text()]
    assert labels and labels[0].textFormat() == Qt.TextFormat.PlainText
    assert dialog.textValue() == "earlier note"
    dialog.show()  # room for a sentence: the box was as narrow as its label before
    assert dialog.findChild(QLineEdit).width() >= TEXT_BOX_MIN_WIDTH
    dialog.reject()


def test_a_question_is_yes_only_when_yes_is_pressed_and_enter_alone_answers_no(qtbot) -> None:
    def press(button: QMessageBox.StandardButton | None) -> None:
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox)
        if button is None:
            qtbot.keyClick(box, Qt.Key.Key_Return)  # a key still held from reviewing does not sign
        else:
            box.button(button).click()

    for button, expected in ((QMessageBox.StandardButton.Yes, True), (QMessageBox.StandardButton.No, False),
                             (None, False)):
        QTimer.singleShot(50, lambda b=button: press(b))
        assert ask(None, "Sign off case", f"Sign as {ODD}?") is expected


def test_a_text_prompt_offers_the_suggestions_containing_what_is_typed(qtbot) -> None:
    dialog = text_dialog(None, "Comment", "Comment on cell.png:", "", ["Smudge cell", "poor stain", "smudged edge"])
    qtbot.addWidget(dialog)
    dialog.show()
    box = dialog.findChild(QLineEdit)
    qtbot.keyClicks(box, "smudge")
    completer = box.completer()
    assert completer is not None and completer.completionCount() == 2  # any case, anywhere in the comment
    assert {completer.completionModel().index(i, 0).data() for i in range(2)} == {"Smudge cell", "smudged edge"}
    dialog.reject()
    assert text_dialog(None, "Reason", "Why?").findChild(QLineEdit).completer() is None  # none without suggestions
