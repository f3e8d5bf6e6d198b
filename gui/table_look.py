"""The tables' colours, set through the palette instead of a style-sheet rule.

Any style-sheet rule that matches a QTableView makes Qt paint its viewport's background through the
style sheet, so the viewport is no longer opaque and scrolling by one row repaints the whole table
(16 rows of Python cell data and text, 20-35 ms on the GUI thread) instead of moving the pixels
and painting the one row that comes into view. tests/test_gui_window.py checks that it stays so.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QAbstractItemView, QFrame

BASE = "#ffffff"
ALTERNATE = "#f8fafc"
SELECTION = "#cfe0f5"
SELECTION_TEXT = "#111827"


def apply_table_look(view: QAbstractItemView) -> None:
    """White rows, faint alternate rows, a light-blue selection with dark text, no frame."""
    palette = view.palette()
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        palette.setColor(group, QPalette.ColorRole.Base, QColor(BASE))
        palette.setColor(group, QPalette.ColorRole.AlternateBase, QColor(ALTERNATE))
        palette.setColor(group, QPalette.ColorRole.Highlight, QColor(SELECTION))
        palette.setColor(group, QPalette.ColorRole.HighlightedText, QColor(SELECTION_TEXT))
    view.setPalette(palette)
    view.setFrameShape(QFrame.Shape.NoFrame)
    view.viewport().setAutoFillBackground(True)
