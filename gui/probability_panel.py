"""The probability panel: the call in words, every class as a sorted bar with its exact percentage,
the uncertain state, and the image's warnings. Low confidence is always shown, never hidden.

Clicking a class selects the class whose heatmap is shown.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from gui.calls import format_percent, is_uncertain
from inference.images import needs_attention

ROW_H = 28
TOP_COLOUR = QColor("#2f6db3")
UNCERTAIN_COLOUR = QColor("#b7791f")
OTHER_COLOUR = QColor("#8fa6bf")
TRACK_COLOUR = QColor("#e6e9ee")


class ProbabilityChart(QWidget):
    """Horizontal bars, highest first, with the shortcut key of each class and a threshold mark."""

    classClicked = Signal(int)  # class index in model order

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._labels: tuple[str, ...] = ()
        self._probs: np.ndarray | None = None
        self._order: list[int] = []
        self._selected: int | None = None
        self._threshold = 0.6
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def set_data(self, labels: Sequence[str], probabilities: np.ndarray | None, selected: int | None) -> None:
        self._labels = tuple(labels)
        self._probs = None if probabilities is None else np.asarray(probabilities, dtype=np.float64)
        self._order = [] if self._probs is None else [int(i) for i in np.argsort(-self._probs, kind="stable")]
        self._selected = selected
        self.updateGeometry()
        self.setFixedHeight(max(1, len(self._order)) * ROW_H + 4)
        self.setAccessibleName("Class probabilities")  # a painted chart: screen readers get the figures in words
        self.setAccessibleDescription(
            ", ".join(f"{self._labels[i]} {format_percent(float(self._probs[i]))}" for i in self._order)
            if self._probs is not None and len(self._labels) == len(self._probs) else "no image classified"
        )
        self.update()

    def set_selected(self, index: int | None) -> None:
        self._selected = index
        self.update()

    def set_threshold(self, threshold: float) -> None:
        self._threshold = threshold
        self.update()

    def order(self) -> list[int]:
        """Class indices as drawn, top to bottom (highest probability first)."""
        return list(self._order)

    def row_rect(self, position: int) -> QRectF:
        return QRectF(0, 2 + position * ROW_H, self.width(), ROW_H)

    def sizeHint(self) -> QSize:
        return QSize(320, max(1, len(self._order)) * ROW_H + 4)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        position = int((event.position().y() - 2) // ROW_H)
        if 0 <= position < len(self._order):
            self.classClicked.emit(self._order[position])
        super().mousePressEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        if self._probs is None:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        fm = p.fontMetrics()
        name_w = min(max((fm.horizontalAdvance(n) for n in self._labels), default=60) + 12, int(self.width() * 0.42))
        key_w = 22
        pct_w = fm.horizontalAdvance(">99.9 %") + 10
        bar_x = key_w + name_w
        bar_w = max(20, self.width() - bar_x - pct_w)
        top = self._order[0]
        uncertain = is_uncertain(float(self._probs[top]), self._threshold)
        for pos, idx in enumerate(self._order):
            r = self.row_rect(pos)
            if idx == self._selected:
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(QColor("#e8f0fb"))
                p.drawRoundedRect(r.adjusted(0, 1, 0, -1), 4, 4)
            p.setPen(QColor("#6b7280"))
            if idx < 9:
                p.drawText(QRectF(r.x() + 2, r.y(), key_w - 4, r.height()), Qt.AlignmentFlag.AlignCenter, str(idx + 1))
            p.setPen(QColor("#1f2933"))
            font = p.font()
            font.setBold(idx == top)
            p.setFont(font)
            name = fm.elidedText(self._labels[idx], Qt.TextElideMode.ElideRight, name_w - 8)
            p.drawText(
                QRectF(r.x() + key_w, r.y(), name_w, r.height()),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                name,
            )
            track = QRectF(bar_x, r.y() + 7, bar_w, r.height() - 14)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(TRACK_COLOUR)
            p.drawRoundedRect(track, 3, 3)
            value = float(self._probs[idx])
            if value > 0:
                colour = (UNCERTAIN_COLOUR if uncertain else TOP_COLOUR) if idx == top else OTHER_COLOUR
                p.setBrush(colour)
                p.drawRoundedRect(QRectF(track.x(), track.y(), max(2.0, track.width() * value), track.height()), 3, 3)
            p.setPen(QColor("#1f2933"))
            p.drawText(
                QRectF(bar_x + bar_w, r.y(), pct_w, r.height()),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                format_percent(value),
            )
            font.setBold(False)
            p.setFont(font)
        x = bar_x + bar_w * self._threshold
        pen = QPen(QColor("#b7791f"), 1, Qt.PenStyle.DashLine)
        p.setPen(pen)
        p.drawLine(int(x), 2, int(x), int(2 + len(self._order) * ROW_H))
        p.end()


class ProbabilityPanel(QWidget):
    """The call in words, the chart, the uncertainty threshold and the warnings for one image."""

    classClicked = Signal(int)
    thresholdChanged = Signal(float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(6)
        self._records: dict[str, str] = {}  # class name -> how the model's calls of it fared on its test images
        self.call = QLabel("No image")
        self.call.setObjectName("callLabel")
        self.call.setWordWrap(True)
        font = self.call.font()
        font.setPointSizeF(font.pointSizeF() * 1.45)
        font.setWeight(QFont.Weight.DemiBold)
        self.call.setFont(font)
        self.detail = QLabel("")
        self.detail.setObjectName("callDetail")
        self.detail.setWordWrap(True)
        self.review = QLabel("")
        self.review.setObjectName("reviewLabel")
        self.review.setWordWrap(True)
        self.chart = ProbabilityChart()
        self.hint = QLabel("Click a class to see its heatmap · keys 1–9 set the class, 0 Unidentified")
        self.hint.setObjectName("hintLabel")
        self.hint.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(QLabel("Uncertain below"))
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 100.0)
        self.threshold.setDecimals(0)
        self.threshold.setSingleStep(5)
        self.threshold.setSuffix(" %")
        self.threshold.setValue(60)
        self.threshold.setToolTip("Calls whose top probability is below this go to the Unidentified bin")
        row.addWidget(self.threshold)
        row.addStretch(1)
        self.warnings = QLabel("")
        self.warnings.setObjectName("warningLabel")
        self.warnings.setWordWrap(True)
        self.warnings.setVisible(False)
        self.conversions = QLabel("")  # how the file became the picture (e.g. 12-bit scaled): said, not flagged
        self.conversions.setObjectName("conversionLabel")
        self.conversions.setWordWrap(True)
        self.conversions.setVisible(False)
        for label in (self.call, self.detail, self.review, self.warnings, self.conversions):  # names, not markup
            label.setTextFormat(Qt.TextFormat.PlainText)
        for w in (self.call, self.detail, self.review, self.chart, self.hint):
            layout.addWidget(w)
        layout.addLayout(row)
        layout.addWidget(self.warnings)
        layout.addWidget(self.conversions)
        self.chart.classClicked.connect(self.classClicked)
        self.threshold.valueChanged.connect(self._on_threshold)
        self._labels: tuple[str, ...] = ()
        self._probs: np.ndarray | None = None
        self.show_message("No image")  # no empty review box or key hint before anything is open

    def threshold_value(self) -> float:
        return self.threshold.value() / 100.0

    def set_threshold(self, threshold: float) -> None:
        self.threshold.setValue(round(threshold * 100))

    def _on_threshold(self, value: float) -> None:
        self.chart.set_threshold(value / 100.0)
        self._describe()
        self.thresholdChanged.emit(value / 100.0)

    def show_probabilities(
        self, labels: Sequence[str], probabilities: np.ndarray | None, heatmap_class: int | None
    ) -> None:
        self._labels, self._probs = tuple(labels), probabilities
        self.chart.set_threshold(self.threshold_value())
        self.chart.set_data(labels, probabilities, heatmap_class)
        self.chart.setVisible(probabilities is not None)
        self.hint.setVisible(probabilities is not None)
        self._describe()

    def set_call_records(self, records: dict[str, str]) -> None:
        """The model's record per class (inference.model_figures.call_records), said under each call."""
        self._records = dict(records)

    def set_heatmap_class(self, index: int | None) -> None:
        self.chart.set_selected(index)

    def show_message(self, title: str, detail: str = "") -> None:
        """No probabilities (nothing open, still classifying, or the image failed)."""
        self._probs = None
        self.chart.set_data(self._labels, None, None)
        self.chart.setVisible(False)
        self.hint.setVisible(False)  # no classes to click or keys to press against
        self.review.setVisible(bool(self.review.text()))
        self.call.setText(title)
        self.call.setStyleSheet("")
        self.detail.setText(detail)

    def set_review_text(self, text: str, history: str = "") -> None:
        self.review.setText(text)
        self.review.setToolTip(history)
        self.review.setVisible(bool(text))

    def set_warnings(self, lines: Sequence[str]) -> None:
        """The image's notes: those that need attention marked ⚠ in the warning box, faithful conversions (bit
        depth, EXIF rotation) as plain lines under it."""
        flagged = [line for line in lines if needs_attention(line)]
        self.warnings.setText("\n".join(f"⚠ {line}" for line in flagged))
        self.warnings.setVisible(bool(flagged))
        self.conversions.setText("\n".join(line for line in lines if not needs_attention(line)))
        self.conversions.setVisible(len(flagged) < len(lines))

    def _describe(self) -> None:
        if self._probs is None or not len(self._probs):
            return
        order = np.argsort(-self._probs, kind="stable")
        top = int(order[0])
        best = f"{self._labels[top]} {format_percent(float(self._probs[top]))}"
        if is_uncertain(float(self._probs[top]), self.threshold_value()):
            self.call.setText("Uncertain → Unidentified")
            self.call.setStyleSheet("color: #9a6700;")
            second = (
                f", then {self._labels[int(order[1])]} {format_percent(float(self._probs[int(order[1])]))}"
                if len(order) > 1
                else ""
            )
            self.detail.setText(f"Best guess {best}{second}; below the {self.threshold_value():.0%} threshold.")
        else:
            self.call.setText(self._labels[top])
            self.call.setStyleSheet("color: #1f4f87;")
            record = self._records.get(self._labels[top])
            self.detail.setText(f"AI call with {format_percent(float(self._probs[top]))} probability."
                                + (f"\n{record}" if record else ""))
