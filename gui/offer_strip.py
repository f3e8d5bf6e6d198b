"""The light-blue strip under the banners that offers one action: a text, the action's button, "Not now"."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget


class OfferStrip(QWidget):
    """Non-modal and hidden until used; its buttons never take focus, so the review keys stay with the table.
    Subclasses connect ``button`` and ``later`` to their own signals."""

    def __init__(self, object_name: str, button_text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 4, 8, 4)
        self.text = QLabel("")
        self.text.setWordWrap(True)
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.button = QPushButton(button_text)
        self.later = QPushButton("Not now")
        for b in (self.button, self.later):
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.button)
        layout.addWidget(self.later)
        self.setVisible(False)
