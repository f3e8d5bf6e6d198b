"""A slim progress bar that schedules its repaint instead of painting at once.

QProgressBar.setValue() repaints synchronously, which costs tens of milliseconds of GUI-thread
time per update while a batch streams in; this widget only calls update(), so Qt coalesces
the paint with everything else in the next frame.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget


class SlimProgressBar(QWidget):
    """Value in [0, maximum]; maximum 0 means busy (indeterminate), drawn as a hatched track."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._value = 0
        self._maximum = 0
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, False)

    def sizeHint(self) -> QSize:
        return QSize(200, 14)

    def setRange(self, minimum: int, maximum: int) -> None:  # noqa: N802 - QProgressBar's API
        self._maximum = max(0, maximum - minimum)
        self.update()

    def setValue(self, value: int) -> None:  # noqa: N802
        self._value = max(0, value)
        self.update()

    def value(self) -> int:
        return self._value

    def maximum(self) -> int:
        return self._maximum

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        track = QRectF(self.rect()).adjusted(0.5, 2.5, -0.5, -2.5)
        p.setPen(QColor("#c3cad3"))
        p.setBrush(QColor("#ffffff"))
        p.drawRoundedRect(track, 4, 4)
        p.setPen(Qt.PenStyle.NoPen)
        if self._maximum <= 0:
            p.setBrush(QColor("#9db7d6"))
            p.drawRoundedRect(track.adjusted(1, 1, -track.width() * 0.6, -1), 3, 3)
        else:
            fraction = min(1.0, self._value / self._maximum)
            if fraction > 0:
                p.setBrush(QColor("#2f6db3"))
                p.drawRoundedRect(
                    QRectF(track.x() + 1, track.y() + 1, (track.width() - 2) * fraction, track.height() - 2), 3, 3
                )
        p.end()
