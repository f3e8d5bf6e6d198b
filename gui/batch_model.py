"""The table model behind the batch view: one row per image, sortable and filterable.

Rows fill in as the batch worker's results arrive; thumbnails are asked for only when a view
paints a row (lazy), so opening 10,000 images costs a list of paths, not 10,000 decodes.

The GUI thread's cost per result bundle must not grow with the number of rows: the model keeps the
differential's counts up to date row by row (``differential()`` is O(classes)), and views get every
role of a cell from one Python call (``multiData``) instead of one call per role.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QModelRoleDataSpan,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QIcon

from gui.calls import (
    DEFAULT_THRESHOLD,
    UNIDENTIFIED_ID,
    Differential,
    DifferentialCounts,
    Entry,
    ai_call,
    class_name,
    format_percent,
)
from gui.items import DONE, FAILED, QUEUED, ImageItem, ItemResult, namer, same_file_notes

COL_IMAGE, COL_STATUS, COL_AI, COL_CONF, COL_REVIEWED, COL_FLAG = range(6)
COMMENT_MARK = "✎"  # the flag column's mark of an image with a technician's comment (beside ⚑)
HEADERS = ("Image", "Status", "AI call", "Confidence", "Reviewed", "Flag")
HEADER_TIPS = (  # what the marks in each column mean, on the column header
    "The file (hover a row for its path, notes and comment)",
    "Done · ⚠ Note: a note on the image or the call that may matter (hover the row; how the file was converted, "
    "e.g. 12-bit scaled, is said there without a ⚠) · Copy: an identical copy of an earlier file · "
    "Failed: could not be read or classified",
    "The model's call; one in amber with a ? (Benign?) is under the uncertainty threshold: it counts as "
    "Unidentified, with the model's best guess shown",
    "The model's calibrated probability for its call",
    "✓ the AI call confirmed · → changed by the reviewer",
    "⚑ flagged for the pathologist · ✎ has a comment (hover the row to read it)",
)

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
AI_CALL_ROLE = Qt.ItemDataRole.UserRole + 2  # class id of the AI call (or "unidentified"), None if none
CURRENT_CALL_ROLE = Qt.ItemDataRole.UserRole + 3  # reviewed class if reviewed, else the AI call
ITEM_ROLE = Qt.ItemDataRole.UserRole + 4  # the ImageItem itself

ThumbnailGetter = Callable[[Path], "QIcon | None"]

# Roles as plain ints: comparing with Qt.ItemDataRole members costs an attribute lookup per role per cell.
_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_DECORATION = int(Qt.ItemDataRole.DecorationRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_NO_VALUE_ROLES = frozenset(
    int(r)
    for r in (
        Qt.ItemDataRole.FontRole,
        Qt.ItemDataRole.BackgroundRole,
        Qt.ItemDataRole.CheckStateRole,
        Qt.ItemDataRole.SizeHintRole,
        Qt.ItemDataRole.EditRole,
        Qt.ItemDataRole.StatusTipRole,
        Qt.ItemDataRole.WhatsThisRole,
        Qt.ItemDataRole.AccessibleTextRole,
        Qt.ItemDataRole.AccessibleDescriptionRole,
    )
)
_ALIGN = {
    COL_CONF: int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
    COL_FLAG: int(Qt.AlignmentFlag.AlignCenter),
}
_FAILED_BRUSH = QBrush(QColor("#b3261e"))
_UNCERTAIN_BRUSH = QBrush(QColor("#9a6700"))
_QUEUED_BRUSH = QBrush(QColor("#8a8f98"))
_RowView = tuple[tuple[str, ...], tuple["QBrush | None", ...], "str | None"]  # texts, colours, AI call

_Index = QModelIndex | QPersistentModelIndex


class BatchTableModel(QAbstractTableModel):
    """Every opened image with its status, AI call, confidence, reviewed class and flag."""

    differentialChanged = Signal()  # the counts behind differential() changed

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._items: list[ImageItem] = []
        self.folder_count = 0  # folders the listed files are in (the differential says when it counts several)
        self._row_of: dict[Path, int] = {}
        self._rows_of_hash: dict[str, list[int]] = {}  # content hash -> rows of the files holding it
        self._class_ids: tuple[str, ...] = ()
        self._labels: tuple[str, ...] = ()
        self._threshold = DEFAULT_THRESHOLD
        self._thumbnail: ThumbnailGetter | None = None
        self._views: list[_RowView | None] = []  # per row, its texts as shown (None: compute on next paint)
        self._entries: list[Entry] = []  # per row, what it adds to the counts now
        self._counts = DifferentialCounts()
        self._counts_stale = False  # every row's entry changed (new model, threshold): recount when asked

    # --- configuration -------------------------------------------------------------------------
    def set_thumbnail_getter(self, getter: ThumbnailGetter | None) -> None:
        self._thumbnail = getter

    def set_classes(self, class_ids: Sequence[str], labels: Sequence[str]) -> None:
        """A new model: its classes name the calls; earlier calls are dropped, reviews are kept."""
        self.beginResetModel()
        self._class_ids, self._labels = tuple(class_ids), tuple(labels)
        for item in self._items:
            item.status, item.probabilities, item.notes, item.error = QUEUED, None, (), None
        self._invalidate_all()
        self.endResetModel()

    @property
    def class_ids(self) -> tuple[str, ...]:
        return self._class_ids

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def threshold(self) -> float:
        return self._threshold

    def set_threshold(self, threshold: float) -> None:
        if threshold == self._threshold:
            return
        self._threshold = threshold
        self._invalidate_all()
        if self._items:
            self.dataChanged.emit(self.index(0, COL_AI), self.index(len(self._items) - 1, COL_REVIEWED))

    # --- contents ------------------------------------------------------------------------------
    def set_paths(self, paths: Sequence[Path], folder: Path | None = None) -> None:
        """One row per path, named by its path under ``folder`` (the opened folder; see ``gui.items.shown_name``)."""
        self.beginResetModel()
        name = namer(folder)
        self._items = [ImageItem(p, name=name(p))
                       for p in (p if isinstance(p, Path) else Path(p) for p in paths)]  # no re-parsing
        self.folder_count = len({item.name.rpartition("/")[0] for item in self._items})
        self._row_of = {item.path: i for i, item in enumerate(self._items)}
        self._rows_of_hash = {}
        self._invalidate_all()
        self.endResetModel()

    def items(self) -> list[ImageItem]:
        return self._items

    def item(self, row: int) -> ImageItem:
        return self._items[row]

    def name_of(self, path: Path) -> str:
        """The name the list shows for ``path`` (its file name when it is not open)."""
        row = self._row_of.get(Path(path))
        return Path(path).name if row is None else self._items[row].name

    def row_of(self, path: Path) -> int | None:
        return self._row_of.get(Path(path))

    def ai_call_of(self, item: ImageItem) -> str | None:
        return ai_call(item.probabilities, self._class_ids, self._threshold)

    def current_call_of(self, item: ImageItem) -> str | None:
        return item.reviewed_id if item.reviewed_id is not None else self.ai_call_of(item)

    def apply_results(self, results: Sequence[ItemResult]) -> None:
        """Fill in rows from worker results; one dataChanged per contiguous run keeps views cheap."""
        rows = []
        for res in results:
            if not 0 <= res.row < len(self._items) or self._items[res.row].path != res.path:
                continue  # a result from a set that is no longer open
            item = self._items[res.row]
            item.image_hash = res.image_hash or item.image_hash
            item.notes = res.notes
            rows += self._link_identical(res.row)
            if res.error is not None:
                item.status, item.error, item.probabilities = FAILED, res.error, None
            else:
                item.status, item.error = DONE, None
                item.probabilities = None if res.probabilities is None else np.asarray(res.probabilities, np.float32)
            rows.append(res.row)
        self._rows_changed(rows)

    def _link_identical(self, row: int) -> list[int]:
        """Files of the set with one content (a copy made by mistake) share one review record; the first in the
        list stands for them all and the others count nothing. The rows whose link changed."""
        image_hash = self._items[row].image_hash
        if not image_hash:
            return []
        rows = self._rows_of_hash.setdefault(image_hash, [])
        if row not in rows:
            rows.append(row)
            rows.sort()
        if len(rows) == 1:
            return []
        first = self._items[rows[0]].name
        for r in rows:
            self._items[r].same_as = "" if r == rows[0] else first
        return rows

    def rows_with_content(self, image_hash: str | None) -> list[int]:
        """The rows of the files holding this content (more than one when a file was copied); [] when unknown."""
        return list(self._rows_of_hash.get(image_hash, ())) if image_hash else []

    def copies(self) -> int:
        """Files in the set whose content an earlier file has too."""
        return sum(len(rows) - 1 for rows in self._rows_of_hash.values())

    def mark_status(self, rows: Sequence[int], status: str) -> None:
        for r in rows:
            self._items[r].status = status
        self._rows_changed(rows)

    def set_reviews(self, rows: Sequence[int], reviews: Sequence[tuple[str | None, bool]],
                    reviewer: str | None = None) -> None:
        """Several rows' (reviewed class, flag) at once: one change signal per contiguous run, so a group decided
        together updates the views once instead of once per image."""
        for row, (reviewed_id, flagged) in zip(rows, reviews, strict=True):
            item = self._items[row]
            item.reviewed_id, item.flagged, item.reviewer = reviewed_id, flagged, reviewer
        self._rows_changed(rows)

    # --- the differential's running counts --------------------------------------------------------
    def _entry(self, item: ImageItem) -> Entry:
        if item.same_as:  # its first file counts for it
            return None, None, False, False
        return self.ai_call_of(item), item.reviewed_id, item.flagged, item.status == FAILED

    def _invalidate_all(self) -> None:
        """Every row's texts and call may have changed (new folder, model or threshold)."""
        self._views = [None] * len(self._items)
        self._counts_stale = True
        self.differentialChanged.emit()

    def _rows_changed(self, rows: Sequence[int]) -> None:
        for r in rows:
            self._views[r] = None
        self._recount(rows)
        self._emit_rows(rows)

    def _recount(self, rows: Sequence[int]) -> None:
        """Move the changed rows' contributions; O(len(rows)), never a pass over the whole set."""
        if self._counts_stale:
            self.differentialChanged.emit()
            return
        changed = False
        for r in rows:
            new = self._entry(self._items[r])
            old = self._entries[r]
            if new != old:
                self._counts.remove(old)
                self._counts.add(new)
                self._entries[r] = new
                changed = True
        if changed:
            self.differentialChanged.emit()

    def differential(self) -> Differential:
        """Counts per class before and after review; recounted in full only after a model,
        folder or threshold change, otherwise read from the running counts."""
        if self._counts_stale:
            self._entries = [self._entry(item) for item in self._items]
            self._counts = DifferentialCounts(self._entries)
            self._counts_stale = False
        return self._counts.result(self._class_ids, self._labels)

    def thumbnail_ready(self, path: Path) -> None:
        row = self._row_of.get(Path(path))
        if row is not None:
            idx = self.index(row, COL_IMAGE)
            self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])

    def _emit_rows(self, rows: Sequence[int]) -> None:
        if not rows:
            return
        rows = sorted(set(rows))
        start = prev = rows[0]
        for r in [*rows[1:], None]:
            if r is not None and r == prev + 1:
                prev = r
                continue
            self.dataChanged.emit(self.index(start, 0), self.index(prev, len(HEADERS) - 1))
            if r is not None:
                start = prev = r

    # --- Qt model interface --------------------------------------------------------------------
    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._items)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS[section]
        return None

    def index(self, row: int, column: int, parent: _Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        """One call into Python per index: Qt's own checks it with rowCount() and columnCount(), two
        calls, and proxies map every cell of every paint through here."""
        if parent.isValid() or not (0 <= row < len(self._items) and 0 <= column < len(HEADERS)):
            return QModelIndex()
        return self.createIndex(row, column)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        return self._value(index.row(), index.column(), int(role))

    def multiData(self, index: _Index, roleDataSpan: QModelRoleDataSpan) -> None:  # noqa: N803 - Qt's name
        if index.isValid():
            self.fill_roles(index.row(), index.column(), roleDataSpan)

    def fill_roles(self, row: int, col: int, span: QModelRoleDataSpan) -> None:
        """Every role a delegate asks for (about 7 per cell per paint) in one Python call: through a
        proxy, one data() call per role is three calls into Python, each taking the GIL from the workers."""
        for k in range(len(span)):
            role_data = span[k]
            value = self._value(row, col, role_data.role())
            if value is None:
                role_data.clearData()
            else:
                role_data.setData(value)

    def _value(self, row: int, col: int, role: int):
        if role in _NO_VALUE_ROLES:
            return None
        if role == _DISPLAY:
            return self._row_view(row)[0][col]
        if role == _FOREGROUND:
            return self._row_view(row)[1][col]
        if role == _ALIGNMENT:
            return _ALIGN.get(col)
        item = self._items[row]
        if role == _DECORATION:
            return self._thumbnail(item.path) if col == COL_IMAGE and self._thumbnail is not None else None
        if role == ITEM_ROLE:
            return item
        if role == AI_CALL_ROLE:
            return self._row_view(row)[2]
        if role == CURRENT_CALL_ROLE:
            return item.reviewed_id if item.reviewed_id is not None else self._row_view(row)[2]
        if role == SORT_ROLE:
            return self._sort_key(item, row, col)
        if role == _TOOLTIP:
            return self._tooltip(item)
        return None

    def call_value(self, row: int, role: int) -> str | None:
        """A row's AI call (AI_CALL_ROLE) or current call (CURRENT_CALL_ROLE), as data() gives it, without an index."""
        return self._value(row, 0, role)

    def _row_view(self, row: int) -> _RowView:
        """A row's texts, colours and AI call, computed once per change of the row (not per paint)."""
        view = self._views[row]
        if view is None:
            item = self._items[row]
            call = self.ai_call_of(item)
            texts = tuple(self._display(item, col, call) for col in range(len(HEADERS)))
            colours = tuple(self._foreground(item, col, call) for col in range(len(HEADERS)))
            view = self._views[row] = (texts, colours, call)
        return view

    def _foreground(self, item: ImageItem, col: int, call: str | None) -> QBrush | None:
        if item.status == FAILED:
            return _FAILED_BRUSH
        if (col == COL_AI and call == UNIDENTIFIED_ID) or (col == COL_STATUS and item.warnings and item.status == DONE):
            return _UNCERTAIN_BRUSH
        if item.status == QUEUED and col != COL_IMAGE:
            return _QUEUED_BRUSH
        return None

    def _display(self, item: ImageItem, col: int, call: str | None) -> str:
        if col == COL_IMAGE:
            return item.name
        if col == COL_STATUS:
            if item.status == FAILED:
                return "Failed"
            if item.warnings and item.status == DONE:
                return "⚠ Note"  # the notes are in the tooltip and the side panel
            if item.same_as:
                return "Copy"  # of an earlier file: the tooltip and the side panel say which
            return item.status
        if col == COL_AI:
            if call == UNIDENTIFIED_ID and item.probabilities is not None:
                top = int(np.argmax(item.probabilities))
                return f"{self._labels[top]}?"  # amber: uncertain, counted as Unidentified
            return class_name(call, self._class_ids, self._labels)
        if col == COL_CONF:
            return "" if item.probabilities is None else format_percent(float(np.max(item.probabilities)))
        if col == COL_REVIEWED:
            if item.reviewed_id is None:
                return ""
            name = class_name(item.reviewed_id, self._class_ids, self._labels)
            return f"✓ {name}" if item.reviewed_id == call else f"→ {name}"
        if col == COL_FLAG:  # a comment is marked too: otherwise only the side panel showed it, one image at a time
            return ("⚑" if item.flagged else "") + (COMMENT_MARK if item.comment else "")
        return ""

    def _sort_key(self, item: ImageItem, row: int, col: int):
        if col == COL_CONF:
            return -1.0 if item.probabilities is None else float(np.max(item.probabilities))
        if col == COL_FLAG:
            return 2 * item.flagged + bool(item.comment)
        if col == COL_IMAGE:
            return row  # the worker's stable path order
        return self._row_view(row)[0][col].lower()

    def _tooltip(self, item: ImageItem) -> str:
        lines = [str(item.path)]
        if self.ai_call_of(item) == UNIDENTIFIED_ID:
            lines.append(f"Uncertain: top probability under {self._threshold:.0%}, counted as Unidentified")
        if item.error:
            lines.append(f"Error: {item.error}")
        lines += [f"Note: {n}" for n in (*item.notes, *same_file_notes(item))]
        if item.comment:
            lines.append(f"Comment: {item.comment}")
        if item.reviewer:
            lines.append(f"Reviewed by {item.reviewer}")
        return "\n".join(lines)


def proxy_multi_data(proxy: QSortFilterProxyModel, index: _Index, span: QModelRoleDataSpan) -> None:
    """multiData for a proxy over a BatchTableModel: map once, then fill every role in one call."""
    model = proxy.sourceModel()
    if isinstance(model, BatchTableModel) and index.isValid():
        source = proxy.mapToSource(index)
        if source.isValid():
            model.fill_roles(source.row(), source.column(), span)
            return
    QSortFilterProxyModel.multiData(proxy, index, span)


# --- filtering ---------------------------------------------------------------------------------
def refilter(proxy: QSortFilterProxyModel, change: Callable[[], object] = lambda: None) -> None:
    """Apply a filter change to a proxy (Qt >= 6.10 wants begin/endFilterChange; older Qt invalidateFilter)."""
    if hasattr(proxy, "beginFilterChange"):
        proxy.beginFilterChange()
        change()
        proxy.endFilterChange()
    else:
        change()
        proxy.invalidateFilter()


(SHOW_ALL, SHOW_TO_REVIEW, SHOW_REVIEWED, SHOW_FLAGGED, SHOW_COMMENTED, SHOW_UNCERTAIN, SHOW_NOTES,
 SHOW_FAILED) = range(8)
SHOW_LABELS = ("All images", "To review", "Reviewed", "Flagged", "With comments", "Uncertain", "With notes", "Failed")


class BatchFilterProxy(QSortFilterProxyModel):
    """Filters rows by file-name text, review state and class (the current call); the table shows it, and the
    gallery applies the same filter (``accepts``) to its class sections."""

    filterChanged = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._text = ""
        self._show = SHOW_ALL
        self._class_id: str | None = None
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)

    def _refilter(self, change: Callable[[], object]) -> None:
        refilter(self, change)
        self.filterChanged.emit()

    def active(self) -> bool:
        """Whether any filter hides rows now."""
        return bool(self._text) or self._show != SHOW_ALL or self._class_id is not None

    def accepts(self, source_row: int) -> bool:
        """The filter's verdict on a row of the batch model."""
        return self.filterAcceptsRow(source_row, QModelIndex())

    def set_text(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "_text", text.strip().lower()))

    def has_text(self, text: str) -> bool:
        """Whether the name filter is ``text`` already."""
        return self._text == text.strip().lower()

    def set_show(self, show: int) -> None:
        self._refilter(lambda: setattr(self, "_show", show))

    def set_class(self, class_id: str | None) -> None:
        self._refilter(lambda: setattr(self, "_class_id", class_id))

    def multiData(self, index: _Index, roleDataSpan: QModelRoleDataSpan) -> None:  # noqa: N803 - Qt's name
        proxy_multi_data(self, index, roleDataSpan)

    def filterAcceptsRow(self, source_row: int, source_parent: _Index) -> bool:
        model = self.sourceModel()
        if not isinstance(model, BatchTableModel):
            return True
        item = model.item(source_row)
        if self._text and self._text not in item.name.lower():
            return False
        if self._class_id is not None and model.current_call_of(item) != self._class_id:
            return False
        show = self._show
        if show == SHOW_TO_REVIEW:
            return item.status == DONE and item.reviewed_id is None
        if show == SHOW_REVIEWED:
            return item.reviewed_id is not None
        if show == SHOW_FLAGGED:
            return item.flagged
        if show == SHOW_COMMENTED:
            return bool(item.comment)
        if show == SHOW_UNCERTAIN:
            return model.ai_call_of(item) == UNIDENTIFIED_ID
        if show == SHOW_NOTES:  # image-quality notes, or unlike the model's training images
            return item.status == DONE and bool(item.warnings)
        if show == SHOW_FAILED:
            return item.status == FAILED
        return True
