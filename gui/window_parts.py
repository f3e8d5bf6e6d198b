"""The main window's small parts: the notice banner, the image pane, the guard that keeps Enter and Esc
in text boxes, the empty window's text and the pane widths. Kept apart so main_window.py holds the
window's behaviour, not its pieces."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QAbstractSpinBox, QLabel, QVBoxLayout, QWidget

from gui.heatmap_bar import HeatmapBar
from gui.image_view import ImageView

SIDE_MIN_WIDTH = 340
IMAGE_MIN_WIDTH = 320


class Banner(QLabel):
    """A visible, non-modal notice at the top of the window (warning or error)."""

    def __init__(self, kind: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(f"banner_{kind}")
        self.setTextFormat(Qt.TextFormat.PlainText)  # file names and messages, never markup
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setVisible(False)

    def show_text(self, text: str | None) -> None:
        self.setText(text or "")
        self.setVisible(bool(text))


class ImagePane(QWidget):
    """The image view with its heatmap strip; arrow keys step through images."""

    stepRequested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = ImageView()
        self.bar = HeatmapBar()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.bar)
        self.view.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        if obj is self.view and event.type() == event.Type.KeyPress and isinstance(event, QKeyEvent):
            steps = {Qt.Key.Key_Left: -1, Qt.Key.Key_Up: -1, Qt.Key.Key_Right: 1, Qt.Key.Key_Down: 1}
            if event.key() in steps and not event.modifiers():
                self.stepRequested.emit(steps[event.key()])
                return True
        return super().eventFilter(obj, event)


class TypingGuard(QObject):
    """Keeps Enter and Esc in a text box (file-name filter, threshold) for the box: as window shortcuts Enter
    confirmed the image on screen, a decision nobody meant to record, and Esc stopped the running batch.
    Either key ends the typing: ``leave`` hands the keyboard back to the review. So does a click on a spin box's
    arrows (a click into its number is for typing): after one, Down lowered the threshold instead of going on to
    the next image."""

    KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Escape)

    def __init__(self, leave: Callable[[], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._leave = leave

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        if isinstance(event, QKeyEvent) and event.key() in self.KEYS:
            if event.type() == QEvent.Type.ShortcutOverride:
                event.accept()  # the focused box takes the key; no window shortcut fires
                return True
            if event.type() == QEvent.Type.KeyPress:
                self._leave()
                return event.key() == Qt.Key.Key_Escape  # Enter still commits a typed threshold
        if event.type() == QEvent.Type.MouseButtonRelease and isinstance(obj, QAbstractSpinBox):
            QTimer.singleShot(0, self._leave)  # the arrows are the box itself; its number is a child line edit
        return super().eventFilter(obj, event)


def welcome_text(model_name: str, descriptions: dict[str, str]) -> str:
    """What the empty window says: how to start, and which installed model is for which images, so the first
    folder is opened with the right one."""
    def line(name: str) -> str:
        return f"{name}: {descriptions[name]}" if descriptions.get(name) else name

    others = [line(name) for name in descriptions if name != model_name]
    text = f"Open an image or a folder (Ctrl+O, Ctrl+Shift+O) or drop files here.\n\nModel in use: {line(model_name)}"
    if others:
        text += "\n\nAlso installed (Model list):\n" + "\n".join(f"•  {o}" for o in others)
    return text + "\n\nA screening aid for research use, not a diagnosis: a qualified person reviews every call."


def pane_widths(width: int, table_width: int) -> list[int]:
    """Table, image and side pane widths for a window ``width`` wide: 38/40/22 % on a wide screen;
    on a narrow one (1366 px) the table first gets the width its columns need, so the Reviewed and
    Flag columns show without sideways scrolling, and the image pane gives way (down to 320 px)."""
    width = max(width, 900)
    side = max(SIDE_MIN_WIDTH, int(width * 0.22))
    table = min(max(int(width * 0.38), table_width), width - side - IMAGE_MIN_WIDTH)
    return [table, width - side - table, side]


def duration_text(seconds: float) -> str:
    """A running time as people say it: 4.2 s, 37 s, 3 min 05 s, 1 h 02 min."""
    if seconds < 9.95:  # "in 0 s" for a quick folder read as if nothing ran
        return f"{max(0.0, seconds):.1f} s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
