"""The gallery: thumbnails grouped by class, like a morphology analyser's cell overview.

One icon list per class over the shared batch model (filtered per class), so thumbnails stay
lazy: a list only asks for the thumbnails it paints.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import (
    QItemSelectionModel,
    QModelIndex,
    QModelRoleDataSpan,
    QPersistentModelIndex,
    QRect,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QScrollArea,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from gui.batch_model import (
    AI_CALL_ROLE,
    COMMENT_MARK,
    CURRENT_CALL_ROLE,
    ITEM_ROLE,
    BatchFilterProxy,
    BatchTableModel,
    proxy_multi_data,
    refilter,
)
from gui.calls import UNIDENTIFIED_ID, UNIDENTIFIED_NAME, format_percent
from gui.thumbnails import THUMB_SIZE, ThumbnailLoader

LARGE_THUMB = 160  # px: "Large" thumbnails, for granules and chromatin (three to a row in a 540 px pane)
LARGE_CACHE = 800  # large thumbnails kept decoded (about 100 KB each)


def grid_for(size: int) -> QSize:
    """A gallery cell for thumbnails of ``size`` px: the picture, its name below, a margin."""
    return QSize(size + 18, size + 30)


GRID = grid_for(THUMB_SIZE)
NOT_CLASSIFIED = "__none__"
SELECTION_FRAME = 3  # px: the frame of a selected thumbnail
SELECTION_COLOUR = "#1f6fd0"  # strong enough to see at a glance on light and dark palettes


class _ClassProxy(QSortFilterProxyModel):
    """Rows whose call (AI or current, by role) is one class, and that the shared filter lets through."""

    def __init__(self, class_id: str, role: int, model: BatchTableModel, row_filter: BatchFilterProxy | None,
                 parent=None) -> None:
        super().__init__(parent)
        self.class_id, self.role, self.row_filter, self._model = class_id, role, row_filter, model
        self.setDynamicSortFilter(True)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        # Called for every row by every section on each filter change: straight to the model's cached call,
        # not through a QModelIndex (5,000 images: 0.4 s a keystroke that way).
        if (self._model.call_value(source_row, self.role) or NOT_CLASSIFIED) != self.class_id:
            return False
        return self.row_filter is None or self.row_filter.accepts(source_row)

    def lessThan(self, left: QModelIndex | QPersistentModelIndex, right: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        """Least sure first: by the top probability (the sort is stable, so ties keep the file order)."""
        return _top(self._model.item(left.row())) < _top(self._model.item(right.row()))

    def multiData(self, index: QModelIndex | QPersistentModelIndex, roleDataSpan: QModelRoleDataSpan) -> None:  # noqa: N803
        proxy_multi_data(self, index, roleDataSpan)


def _top(item) -> float:
    """An image's top probability; one without a call sorts last."""
    return float(item.probabilities.max()) if item.probabilities is not None else 2.0


class _BadgeDelegate(QStyledItemDelegate):
    """The default icon cell plus a review mark (✓ confirmed, → changed), the flag, a note mark (!), a comment mark
    (✎) and the call's probability."""

    def __init__(self, grid: QSize, large: ThumbnailLoader | None, parent=None) -> None:
        super().__init__(parent)
        self._grid, self._large = grid, large

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802 - Qt's name
        # One size for every cell, thumbnail decoded or not: with uniform item sizes the list takes the first
        # cell's hint for all, and a first thumbnail still loading made every cell a strip without its name.
        return QSize(self._grid.width() - 6, self._grid.height() - 6)

    def initStyleOption(self, option: QStyleOptionViewItem, index: QModelIndex) -> None:  # noqa: N802 - Qt's name
        """Large thumbnails come from their own loader; until one is decoded the small one stands in."""
        super().initStyleOption(option, index)
        item = index.data(ITEM_ROLE)
        if item is not None:  # a narrow cell: the file's own name (the list's shows its sub-folder; the tip the path)
            option.text = item.path.name
        if item is not None and self._large is not None and (icon := self._large.get(item.path)) is not None:
            option.icon = icon
            option.decorationSize = icon.actualSize(QSize(self._large.size, self._large.size))  # was the small one's

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        # A selected cell gets a frame, not the style's tint: the tint greys the stain, and stain colour is
        # what the technician judges when deciding a selected group.
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        plain = QStyleOptionViewItem(option)
        self.initStyleOption(plain, index)  # from Python, so the large thumbnail is put in (Qt's paint copies it)
        plain.state &= ~QStyle.StateFlag.State_Selected
        widget = option.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, plain, painter, widget)
        painter.save()
        r: QRect = option.rect
        if selected:
            painter.setPen(QPen(QColor(SELECTION_COLOUR), SELECTION_FRAME))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            half = SELECTION_FRAME // 2
            painter.drawRoundedRect(r.adjusted(half, half, -half - 1, -half - 1), 4, 4)
        item = index.data(ITEM_ROLE)
        if item is None:
            painter.restore()
            return
        if item.reviewed_id is not None:
            confirmed = item.reviewed_id == index.data(AI_CALL_ROLE)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#2e7d32") if confirmed else QColor("#1f4f87"))
            painter.drawEllipse(r.right() - 22, r.top() + 4, 16, 16)
            painter.setPen(QColor("white"))
            painter.drawText(
                QRect(r.right() - 22, r.top() + 4, 16, 16), Qt.AlignmentFlag.AlignCenter, "✓" if confirmed else "→"
            )
        if item.flagged:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#b3261e"))
            painter.drawEllipse(r.left() + 6, r.top() + 4, 16, 16)
            painter.setPen(QColor("white"))
            painter.drawText(QRect(r.left() + 6, r.top() + 4, 16, 16), Qt.AlignmentFlag.AlignCenter, "⚑")
        if item.warnings:  # e.g. unlike the training images: seen on the thumbnail before a group is decided
            badge = QRect(r.left() + 6, r.top() + 24, 16, 16)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#b26a00"))
            painter.drawEllipse(badge)
            painter.setPen(QColor("white"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, "!")
        if item.comment:  # the technician's own note, as the table's flag column marks it
            badge = QRect(r.right() - 22, r.top() + 24, 16, 16)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#5f6368"))
            painter.drawEllipse(badge)
            painter.setPen(QColor("white"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, COMMENT_MARK)
        if item.probabilities is not None:  # the call's probability on the thumbnail, as the table gives it
            self._draw_probability(painter, plain, float(item.probabilities.max()))
        painter.restore()

    def _draw_probability(self, painter: QPainter, option: QStyleOptionViewItem, top: float) -> None:
        """The top probability in the thumbnail's lower right corner (a corner of background, not the cell);
        ``option`` is the cell's, already filled in by ``initStyleOption``."""
        text = format_percent(top)
        font = QFont(option.font)
        font.setPointSizeF(max(6.0, option.font.pointSizeF() * 0.8))
        box = self.probability_box(option, QFontMetrics(font).size(0, text))
        if box is None:
            return
        painter.setClipRect(option.rect)
        painter.setFont(font)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 150))
        painter.drawRoundedRect(box, 3, 3)
        painter.setPen(QColor("white"))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    def probability_box(self, opt: QStyleOptionViewItem, text: QSize) -> QRect | None:
        """Where the probability goes in a cell whose ``opt`` ``initStyleOption`` filled in: inside the thumbnail's
        lower right corner; None while there is no thumbnail (a box placed by an empty icon landed on the cell
        above and stayed there)."""
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        icon = style.subElementRect(QStyle.SubElement.SE_ItemViewItemDecoration, opt, widget)
        if opt.icon.isNull() or icon.isEmpty() or not opt.rect.contains(icon):
            return None
        box = QRect(0, 0, text.width() + 6, text.height() + 2)
        box.moveBottomRight(icon.bottomRight())
        return box


class _Section(QWidget):
    """A class header and its wrapping icon list, sized to show every thumbnail (the page scrolls)."""

    activated = Signal(int)  # source row
    selectionGrew = Signal()  # this section's selection gained thumbnails

    def __init__(self, class_id: str, name: str, role: int, model: BatchTableModel,
                 row_filter: BatchFilterProxy | None, large: ThumbnailLoader | None, parent=None) -> None:
        super().__init__(parent)
        self.class_id, self.name = class_id, name
        size = large.size if large is not None else THUMB_SIZE
        self.grid = grid_for(size)
        self.proxy = _ClassProxy(class_id, role, model, row_filter, self)
        self.proxy.setSourceModel(model)
        self.header = QLabel(name)
        self.header.setObjectName("sectionTitle")
        self.view = QListView()
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setWrapping(True)
        self.view.setUniformItemSizes(True)
        self.view.setIconSize(QSize(size, size))
        self.view.setGridSize(self.grid)
        self.view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.view.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Several thumbnails of one class can be selected (Shift/Ctrl+click, Shift+arrows, Ctrl+A) and decided
        # at once: the "accept this class" of a morphology analyser's cell overview.
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setItemDelegate(_BadgeDelegate(self.grid, large, self.view))
        self.view.setModel(self.proxy)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 2)
        layout.addWidget(self.header)
        layout.addWidget(self.view)
        self.view.selectionModel().currentChanged.connect(self._on_current)
        self.view.selectionModel().selectionChanged.connect(
            lambda selected, _deselected: self.selectionGrew.emit() if not selected.isEmpty() else None
        )
        for sig in (self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset, self.proxy.layoutChanged):
            sig.connect(self.relayout)

    def count(self) -> int:
        return self.proxy.rowCount()

    def source_rows(self) -> list[int]:
        return [self.proxy.mapToSource(self.proxy.index(r, 0)).row() for r in range(self.proxy.rowCount())]

    def relayout(self, *args) -> None:
        n = self.proxy.rowCount()
        filtered = self.proxy.row_filter is not None and self.proxy.row_filter.active()
        total = max(1, self.parent().property("totalRows") or 1) if self.parent() else 1
        share = f"  ({100.0 * n / total:.1f} %)" if n and self.class_id != NOT_CLASSIFIED else ""
        # Filtered, the count is of what is shown; a share of the folder would read as the class's share.
        self.header.setText(f"{self.name}  ·  {n} shown (filtered)" if filtered else f"{self.name}  ·  {n}{share}")
        per_row = max(1, (self.view.viewport().width() or self.width()) // self.grid.width())
        rows = (n + per_row - 1) // per_row
        self.view.setFixedHeight(max(rows, 1) * self.grid.height() + 8 if n else 0)
        self.setVisible(n > 0)

    def selected_source_rows(self) -> list[int]:
        """The selected thumbnails' source rows, in display order."""
        rows = sorted({i.row() for i in self.view.selectionModel().selectedIndexes()})  # Ctrl+A takes every column
        return [self.proxy.mapToSource(self.proxy.index(r, 0)).row() for r in rows]

    def select_source_row(self, row: int) -> bool:
        index = self.proxy.mapFromSource(self.proxy.sourceModel().index(row, 0))
        if not index.isValid():
            # No current either: a click on the thumbnail that was current here before must still be a move.
            self.view.selectionModel().clear()
            return False
        if index != self.view.currentIndex():  # a row the user just made current keeps the selection made with it
            self.view.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        return True

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.relayout()

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        # Only the user's own moves count: rows entering or leaving this class (results arriving,
        # reviews moving a cell) also move Qt's current index, and must not move the app's.
        if current.isValid() and self.view.hasFocus():
            self.activated.emit(self.proxy.mapToSource(current).row())


def _choice(bar: QHBoxLayout, label: str, items: list[tuple[str, object]]) -> QComboBox:
    """A labelled choice in the gallery's top bar; a click never takes the keyboard from the thumbnails (Tab
    still reaches it, for a keyboard-only user)."""
    if bar.count():
        bar.addSpacing(12)
    bar.addWidget(QLabel(label))
    combo = QComboBox()
    for text, data in items:
        combo.addItem(text, data)
    combo.setFocusPolicy(Qt.FocusPolicy.TabFocus)
    bar.addWidget(combo)
    return combo


class GalleryView(QWidget):
    """All sections in one scrolling page, grouped by the AI call or by the current (reviewed) class; the
    table's filter (file name, review state, class), when given, applies here too."""

    currentRowChanged = Signal(int)  # source row
    groupChanged = Signal()  # the thumbnails selected together changed

    def __init__(self, model: BatchTableModel, row_filter: BatchFilterProxy | None = None, parent=None) -> None:
        super().__init__(parent)
        self._model = model
        self._row_filter = row_filter
        self._sections: list[_Section] = []
        self._groups: list[tuple[str, str]] = []
        self._pending_row: int | None = None
        self._syncing = False
        top = QHBoxLayout()
        top.setContentsMargins(8, 6, 8, 0)
        self.group_by = _choice(top, "Group by", [("AI call", AI_CALL_ROLE),
                                                  ("Class after review", CURRENT_CALL_ROLE)])
        # Least sure first: the calls to look at hardest lead each class.
        self.order = _choice(top, "Order", [("File order", False), ("Least sure first", True)])
        self.size_choice = _choice(top, "Size", [("Small", THUMB_SIZE), ("Large", LARGE_THUMB)])
        self._large: ThumbnailLoader | None = None  # started the first time Large is chosen
        top.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # a click between sections: arrows stay with the thumbnails
        self.page = QWidget()
        self.page_layout = QVBoxLayout(self.page)
        self.page_layout.setContentsMargins(8, 0, 8, 8)
        self.page_layout.addStretch(1)
        self.scroll.setWidget(self.page)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.scroll)
        self.group_by.currentIndexChanged.connect(lambda _i: self._regroup())
        self.order.currentIndexChanged.connect(lambda _i: self._reorder())
        self.size_choice.currentIndexChanged.connect(lambda _i: self._regroup())
        model.modelReset.connect(self._update_totals)
        model.dataChanged.connect(self._update_totals)
        if row_filter is not None:
            row_filter.filterChanged.connect(self._refilter)

    def rebuild(self, class_ids: Sequence[str] | None = None, labels: Sequence[str] | None = None) -> None:
        """One section per class of the model, then Unidentified, then images without a call.

        Sections (and their filter models) exist only while the gallery is shown, so a hidden
        gallery costs nothing while results stream in.
        """
        ids = list(class_ids if class_ids is not None else self._model.class_ids)
        names = list(labels if labels is not None else self._model.labels)
        self._groups = [
            *zip(ids, names, strict=False),
            (UNIDENTIFIED_ID, UNIDENTIFIED_NAME),
            (NOT_CLASSIFIED, "No call (waiting, or the image failed)"),
        ]
        self._teardown()
        if self.isVisible():
            self._build()

    def _teardown(self) -> None:
        for section in self._sections:
            section.proxy.setSourceModel(None)
            section.setParent(None)
            section.deleteLater()
        self._sections = []

    def _large_loader(self) -> ThumbnailLoader | None:
        """The large thumbnails' loader when Large is chosen (its own cache; the table keeps the small ones)."""
        if self.size_choice.currentData() != LARGE_THUMB:
            return None
        if self._large is None:
            self._large = ThumbnailLoader(LARGE_THUMB, self, cache_size=LARGE_CACHE)
            self._large.ready.connect(lambda _path: [s.view.viewport().update() for s in self._sections])
        return self._large

    def stop(self) -> None:
        """Stop the large thumbnails' decoder thread (the window does so on closing)."""
        if self._large is not None:
            self._large.stop()

    def _build(self) -> None:
        role = self.group_by.currentData()
        large = self._large_loader()
        for cid, name in self._groups:
            section = _Section(cid, name, role, self._model, self._row_filter, large, self.page)
            section.activated.connect(self._on_activated)
            section.selectionGrew.connect(lambda s=section: self._keep_selection_in(s))
            section.view.selectionModel().selectionChanged.connect(lambda *_: self.groupChanged.emit())
            self.page_layout.insertWidget(self.page_layout.count() - 1, section)
            self._sections.append(section)
        self._update_totals()
        self._reorder()  # also shows the current image's thumbnail as current

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._sections:
            self._build()
            # Scrolled to the current image once the new sections have their places (known after layout).
            QTimer.singleShot(0, self._show_current)

    def _show_current(self) -> None:
        if self._pending_row is not None and self._sections:
            self.select_source_row(self._pending_row)

    def focus_current(self) -> None:
        """Give the keyboard to the thumbnail list holding the current image (else the first list shown), so
        arrows move between thumbnails and Shift+arrows select; the page itself takes no keys."""
        model = self._model
        holding = [s for s in self._sections if self._pending_row is not None
                   and s.proxy.mapFromSource(model.index(self._pending_row, 0)).isValid()]
        shown = holding or [s for s in self._sections if s.count()]
        if shown:
            shown[0].view.setFocus()

    def hideEvent(self, event) -> None:
        super().hideEvent(event)
        self._teardown()

    def _refilter(self) -> None:
        """The shared filter changed: every section shows what it lets through now."""
        for section in self._sections:
            refilter(section.proxy)
        self._update_totals()

    def _reorder(self) -> None:
        """Each section in file order, or least sure first (and kept so as calls change)."""
        least_sure = bool(self.order.currentData())
        for section in self._sections:
            section.proxy.sort(0 if least_sure else -1, Qt.SortOrder.AscendingOrder)
        if self._pending_row is not None:
            self.select_source_row(self._pending_row)

    def _regroup(self) -> None:
        self._teardown()
        if self.isVisible():
            self._build()

    def sections(self) -> list[tuple[str, int]]:
        """(class id, count) per section, in display order."""
        return [(s.class_id, s.count()) for s in self._sections]

    def ordered_rows(self) -> list[int]:
        """Source rows in gallery order (section by section)."""
        return [r for s in self._sections for r in s.source_rows()]

    def selected_rows(self) -> list[int]:
        """Source rows of the selected thumbnails (all in one class section), in display order."""
        return [r for s in self._sections for r in s.selected_source_rows()]

    def selected_section(self) -> str | None:
        """The name of the class section whose thumbnails are selected, or None."""
        return next((s.name for s in self._sections if s.view.selectionModel().hasSelection()), None)

    def _keep_selection_in(self, section: _Section) -> None:
        """A selection spans one class: selecting in one section clears the others, so a group never mixes
        a class on screen with one scrolled out of sight."""
        for other in self._sections:
            if other is not section and other.view.selectionModel().hasSelection():
                other.view.clearSelection()

    def select_source_row(self, row: int) -> None:
        self._pending_row = row
        self._syncing = True
        try:
            for section in self._sections:
                if section.select_source_row(row):
                    index = section.view.currentIndex()
                    rect = section.view.visualRect(index)
                    pos = section.view.mapTo(self.page, rect.center())
                    self.scroll.ensureVisible(pos.x(), pos.y(), section.grid.width(), section.grid.height())
        finally:
            self._syncing = False

    def _on_activated(self, row: int) -> None:
        if not self._syncing:
            self.currentRowChanged.emit(row)

    def _update_totals(self, *args) -> None:
        # Shares of the classified images, as the differential gives them (failed files have no share).
        self.page.setProperty("totalRows", self._model.differential().classified if self._sections else 0)
        for section in self._sections:
            section.relayout()
