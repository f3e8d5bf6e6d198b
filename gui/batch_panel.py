"""The batch table page: a sortable table of images, and the filter bar (text, review state, class) that the
window shows above both the table and the gallery."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from PySide6.QtCore import QItemSelectionModel, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from gui.batch_model import (
    COL_AI,
    COL_CONF,
    COL_FLAG,
    COL_IMAGE,
    COL_REVIEWED,
    COL_STATUS,
    SHOW_LABELS,
    BatchFilterProxy,
    BatchTableModel,
)
from gui.calls import UNIDENTIFIED_ID, UNIDENTIFIED_NAME
from gui.table_look import apply_table_look

FIXED_COLUMNS = ((COL_IMAGE, 190), (COL_STATUS, 58), (COL_CONF, 84), (COL_REVIEWED, 116), (COL_FLAG, 44))
AI_COLUMN_MIN = 120  # "Immature granulocyte" elides below this; the AI call column takes the rest
SLOW_FILTER_S = 0.05  # a name filter slower than this holds the next keystrokes...
TYPING_PAUSE_MS = 250  # ...until typing pauses this long (Enter or leaving the box applies it at once)


class BatchTable(QTableView):
    """Up/Down (and PageUp/PageDown, Home/End) move between images; Left/Right too, as in a viewer."""

    stepRequested = Signal(int)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Left and not event.modifiers():
            self.stepRequested.emit(-1)
        elif event.key() == Qt.Key.Key_Right and not event.modifiers():
            self.stepRequested.emit(1)
        else:
            super().keyPressEvent(event)


class BatchPanel(QWidget):
    """Table of every opened image; emits ``currentRowChanged(source_row)``."""

    currentRowChanged = Signal(int)

    def __init__(self, model: BatchTableModel, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.proxy = BatchFilterProxy(self)
        self.proxy.setSourceModel(model)
        self.filter_text = QLineEdit()
        self.filter_text.setPlaceholderText("Filter by file or folder name (Ctrl+F)")
        self.filter_text.setClearButtonEnabled(True)
        self.show_combo = QComboBox()
        self.show_combo.addItems(SHOW_LABELS)
        self.class_combo = QComboBox()
        self.class_combo.addItem("All classes", None)
        for combo in (self.show_combo, self.class_combo):  # chosen with the mouse, they leave the keys to the images
            combo.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        # The window puts the bar above the Table and Gallery tabs: it filters both.
        self.filter_bar = QWidget()
        bar = QHBoxLayout(self.filter_bar)
        bar.setContentsMargins(8, 6, 8, 0)
        bar.addWidget(self.filter_text, 2)
        bar.addWidget(self.show_combo, 1)
        bar.addWidget(self.class_combo, 1)
        self.table = BatchTable()
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # file order, no sort cost
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(46)
        self.table.setIconSize(QSize(40, 40))
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # file names differ at the end
        apply_table_look(self.table)  # keeps the viewport opaque: one-row scrolls move pixels
        header = self.table.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(COL_AI, QHeaderView.ResizeMode.Stretch)
        for col, width in FIXED_COLUMNS:
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            self.table.setColumnWidth(col, width)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        # A filter over thousands of images with the gallery shown takes 100+ ms: applied on every keystroke, it
        # makes the letters lag behind the typing. Once one pass is that slow, the next waits for a pause.
        self._filter_cost_s = 0.0
        self._typing = QTimer(self, singleShot=True, interval=TYPING_PAUSE_MS)
        self._typing.timeout.connect(self.apply_filter_text)
        self.filter_text.textChanged.connect(self._on_filter_typed)
        self.filter_text.editingFinished.connect(self.apply_filter_text)
        self.show_combo.currentIndexChanged.connect(self.proxy.set_show)
        self.class_combo.currentIndexChanged.connect(lambda _i: self.proxy.set_class(self.class_combo.currentData()))
        self.table.selectionModel().currentRowChanged.connect(self._on_current)
        self._syncing = False

    def _on_filter_typed(self, _text: str) -> None:
        if self._filter_cost_s > SLOW_FILTER_S:
            self._typing.start()
        else:
            self.apply_filter_text()

    def apply_filter_text(self) -> None:
        """Filter by the name typed so far, now (a no-op when the filter already has it)."""
        self._typing.stop()
        text = self.filter_text.text()
        if self.proxy.has_text(text):
            return
        start = time.perf_counter()
        self.proxy.set_text(text)  # the gallery's sections follow within this call
        self._filter_cost_s = time.perf_counter() - start

    def full_width(self) -> int:
        """Width at which every column shows without sideways scrolling (Reviewed and Flag included)."""
        columns = sum(w for _c, w in FIXED_COLUMNS) + AI_COLUMN_MIN
        return columns + self.table.verticalScrollBar().sizeHint().width() + 2 * self.table.frameWidth() + 4

    def set_classes(self, class_ids: Sequence[str], labels: Sequence[str]) -> None:
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.addItem("All classes", None)
        for cid, name in [*zip(class_ids, labels, strict=False), (UNIDENTIFIED_ID, UNIDENTIFIED_NAME)]:
            self.class_combo.addItem(name, cid)
        self.class_combo.blockSignals(False)
        self.proxy.set_class(None)

    def ordered_rows(self) -> list[int]:
        """Source rows in the table's current order (sorted and filtered)."""
        return [self.proxy.mapToSource(self.proxy.index(r, 0)).row() for r in range(self.proxy.rowCount())]

    def position_of(self, row: int | None) -> tuple[int | None, int, Callable[[int], int]]:
        """Where source ``row`` stands in the table's order (None if hidden), the visible count, and a
        position -> source row map; constant time, so stepping stays instant in a 10,000-image folder."""
        pos = None
        if row is not None and 0 <= row < self.model.rowCount():
            index = self.proxy.mapFromSource(self.model.index(row, 0))
            pos = index.row() if index.isValid() else None
        return pos, self.proxy.rowCount(), lambda p: self.proxy.mapToSource(self.proxy.index(p, 0)).row()

    def select_source_row(self, row: int) -> None:
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        self._syncing = True
        try:
            if index.isValid():
                self.table.selectionModel().setCurrentIndex(
                    index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
                )
                self.table.scrollTo(index)
            else:
                self.table.clearSelection()
        finally:
            self._syncing = False

    def _on_current(self, current, _previous) -> None:
        if current.isValid() and not self._syncing:
            self.currentRowChanged.emit(self.proxy.mapToSource(current).row())
