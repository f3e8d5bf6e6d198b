"""The live differential: count and share per class from the AI calls and after review."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.calls import Differential
from gui.table_look import apply_table_look

COLUMNS = ("Class", "AI", "AI %", "After review", "%")
COLUMN_TIPS = (
    "",
    "Images the model called this class",
    "Share of the classified images the model called this class",
    "The class each image has now: the reviewed class where it was reviewed, otherwise still the AI call",
    "Share of the classified images in this class after review",
)


class DifferentialPanel(QWidget):
    """A compact table that updates as results and decisions arrive."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 4, 12, 12)
        title = QLabel("Differential")
        title.setObjectName("sectionTitle")
        self.summary = QLabel("")
        self.summary.setObjectName("callDetail")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for c, tip in enumerate(COLUMN_TIPS):
            self.table.horizontalHeaderItem(c).setToolTip(tip)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        apply_table_look(self.table)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in range(1, len(COLUMNS)):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        layout.addWidget(title)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)

    def show_differential(self, diff: Differential, total: int, copies: int = 0, folders: int = 1) -> None:
        """Write only the cells whose text changed; resize only when the number of classes did.

        Called a few times a second while a batch runs: rewriting every cell and re-measuring the
        rows each time cost the GUI thread several milliseconds per call.
        """
        rows = diff.rows
        resized = self.table.rowCount() != len(rows)
        if resized:
            self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            values = (
                row.name,
                str(row.ai_count),
                f"{row.ai_percent:.1f}",
                str(row.reviewed_count),
                f"{row.reviewed_percent:.1f}",
            )
            for c, text in enumerate(values):
                cell = self.table.item(r, c)
                if cell is None:
                    cell = QTableWidgetItem()
                    if c:
                        cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    self.table.setItem(r, c, cell)
                    resized = True
                if cell.text() != text:
                    cell.setText(text)
        if resized:
            self.table.resizeRowsToContents()
            self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            self.table.setFixedHeight(
                self.table.horizontalHeader().sizeHint().height()
                + sum(self.table.rowHeight(r) for r in range(len(rows)))
                + 4
            )
        parts = [f"{diff.classified} of {total} classified", f"{diff.reviewed} reviewed"]
        if diff.flagged:
            parts.append(f"{diff.flagged} flagged")
        if diff.failed:
            parts.append(f"{diff.failed} failed")
        if copies:  # identical files: their first counts for them, as in the report
            parts.append(f"{copies} identical {'copy' if copies == 1 else 'copies'} not counted")
        if folders > 1:  # one sub-folder per slide or patient is common: one count over them all is easily misread
            parts.append(f"{folders} folders counted as one case")
        summary = " · ".join(parts)
        if self.summary.text() != summary:
            self.summary.setText(summary)

    def row_values(self, class_name: str) -> tuple[int, int] | None:
        """(AI count, reviewed count) of a class as shown; for tests and reports."""
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).text() == class_name:
                return int(self.table.item(r, 1).text()), int(self.table.item(r, 3).text())
        return None
