"""The strip under the image: which class's heatmap is shown, by which method, the colour legend,
the overlay toggle and its opacity."""

from __future__ import annotations

import html
import re

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFont, QFontMetrics, QPixmap
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSizePolicy, QSlider, QVBoxLayout, QWidget

from gui.qimage import rgb_to_qimage

GAP = 10  # between the colour legend and the opacity control


def _hint_width(widget: QWidget) -> int:
    """The width the layout will give ``widget``: its size hint within its minimum and maximum."""
    return min(max(widget.sizeHint().width(), widget.minimumWidth()), widget.maximumWidth())


class ElidedCaption(QLabel):
    """A one-line caption with <b>bold</b> parts that ends in "…" when the strip is too narrow.

    The full text is always in the tooltip. Only ``<b>`` markup is kept; anything else is text.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # may shrink
        self.setMinimumWidth(0)
        self._segments: list[tuple[str, bool]] = []

    def set_caption(self, text: str) -> None:
        parts = re.split(r"(<b>.*?</b>)", text or "")
        self._segments = [
            (html.unescape(re.sub(r"<[^>]+>", "", part)), part.startswith("<b>")) for part in parts if part
        ]
        self.setToolTip(self.plain_text())
        self._refit()

    def plain_text(self) -> str:
        return "".join(t for t, _ in self._segments)

    def natural_width(self) -> int:
        """Width the whole caption needs (bold parts measured bold)."""
        bold_font = QFont(self.font())
        bold_font.setBold(True)
        metrics = {False: QFontMetrics(self.font()), True: QFontMetrics(bold_font)}
        return sum(metrics[b].horizontalAdvance(t) for t, b in self._segments) + 2 * self.margin() + 4

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._refit()

    def _refit(self) -> None:
        room = self.contentsRect().width() - 2 * self.margin() - 2
        bold_font = QFont(self.font())
        bold_font.setBold(True)
        metrics = {False: QFontMetrics(self.font()), True: QFontMetrics(bold_font)}
        out: list[str] = []
        for text, bold in self._segments:
            width = metrics[bold].horizontalAdvance(text)
            if width > room:
                text = metrics[bold].elidedText(text, Qt.TextElideMode.ElideRight, max(room, 0))
                out.append(f"<b>{html.escape(text)}</b>" if bold else html.escape(text))
                if not text:  # not even "…" fits after the bold part: end with one anyway
                    out.append("…")
                break
            room -= width
            out.append(f"<b>{html.escape(text)}</b>" if bold else html.escape(text))
        super().setText("".join(out))


class StatusCaption(ElidedCaption):
    """An ElidedCaption for the status bar: asks for its whole text, but on a narrow window gives way down
    to its essential first part, so the labels beside it (research use only) are never pushed out of sight."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self._essential = 0

    def sizeHint(self) -> QSize:
        return QSize(self.natural_width(), super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        return QSize(min(self._essential, self.natural_width()), super().minimumSizeHint().height())

    def set_caption(self, text: str, essential: str = "") -> None:
        """``essential``: the start of the plain text that must stay readable (elided after it)."""
        super().set_caption(text)
        self._essential = QFontMetrics(self.font()).horizontalAdvance(essential + " …") + 2 * self.margin() + 8
        self.updateGeometry()  # a new text asks for a new width


class StatusLine(ElidedCaption):
    """The status bar's message: plain text (a file named "<b>x.png" is shown as named) that ends in "…" on a
    narrow window, whole in its tooltip, instead of being cut mid-word."""

    def setText(self, text: str) -> None:  # noqa: N802 - QLabel's name, so callers need not know the difference
        self.set_caption(html.escape(text or ""))

    def text(self) -> str:
        return self.plain_text()


class HeatmapBar(QWidget):
    """Overlay controls; emits ``visibleChanged(bool)`` and ``opacityChanged(float)``.

    In a narrow image pane (small window, wide side panels) the caption moves onto its own line
    above the controls; narrower still, the "low/high/Opacity" words go; what does not fit is elided.
    """

    visibleChanged = Signal(bool)
    opacityChanged = Signal(float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._outer = QVBoxLayout(self)
        self._outer.setContentsMargins(8, 4, 8, 4)
        self._outer.setSpacing(2)
        layout = self._row = QHBoxLayout()
        layout.setContentsMargins(0, 0, 0, 0)
        self._outer.addLayout(layout)
        self.toggle = QCheckBox("Heatmap (H)")
        self.toggle.setChecked(True)
        self.toggle.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.caption = ElidedCaption()
        self.caption.setObjectName("heatmapCaption")
        self.low = QLabel("low")
        self.legend = QLabel()
        self.legend.setFixedSize(110, 12)
        self.legend.setScaledContents(True)
        self.legend.setToolTip("Heatmap colour scale: low (blue) to high (red) relevance for the class shown")
        self.high = QLabel("high")
        self.opacity_label = QLabel("Opacity")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.setValue(45)
        self.slider.setFixedWidth(96)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.setToolTip("Heatmap opacity")
        self.value = QLabel("45 %")
        self.value.setMinimumWidth(36)
        layout.addWidget(self.toggle)
        layout.addWidget(self.caption, 1)
        for w in (self.low, self.legend, self.high):
            layout.addWidget(w)
        layout.addSpacing(GAP)
        for w in (self.opacity_label, self.slider, self.value):
            layout.addWidget(w)
        self.toggle.toggled.connect(self.visibleChanged)
        self.slider.valueChanged.connect(self._on_slider)
        self._legend_colormap: str | None = None  # the colour map the legend shows
        self._mode = (False, False)  # (compact, two rows)
        # Its minimum (the compact row) from the start: the full row's, taken until the first resize, made the
        # window open 1391 px wide, past the edge of a 1366 px laptop screen.
        self._arrange()

    def arrangement(self) -> tuple[bool, bool]:
        """(compact, two_rows) as laid out now (for tests and screenshots)."""
        return self._mode

    def _arrange(self) -> None:
        """Pick the layout for the current width; moves widgets only when the choice changes."""
        spacing = max(self._row.spacing(), 0)
        words = (self.low, self.high, self.opacity_label)
        always = (self.toggle, self.legend, self.slider, self.value)
        fixed = sum(_hint_width(w) + spacing for w in always) + GAP
        full = fixed + sum(_hint_width(w) + spacing for w in words)
        margins = self._outer.contentsMargins()
        smallest = fixed + margins.left() + margins.right()
        if self.minimumWidth() != smallest:
            self.setMinimumWidth(smallest)  # below the full row's minimum: the compact row takes over there
        width = self.width() - margins.left() - margins.right()
        want = min(self.caption.natural_width(), 360)  # enough to read the class and most of the method
        # One row while the caption fits beside every control; else the caption gets its own line
        # (a line is cheaper than unlabelled controls); the words go only when the controls do not fit.
        mode = (False, False) if width - full >= want else (width < full, True)
        if mode == self._mode:
            return
        compact, two_rows = mode
        for w in words:
            w.setVisible(not compact)
        if two_rows != self._mode[1]:
            if two_rows:
                self._row.removeWidget(self.caption)
                self._row.insertStretch(1, 1)
                self._outer.insertWidget(0, self.caption)
            else:
                self._outer.removeWidget(self.caption)
                stretch = self._row.takeAt(1)
                del stretch
                self._row.insertWidget(1, self.caption, 1)
        self._mode = mode

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._arrange()

    def ensure_legend(self, colormap: str = "jet") -> None:
        """Draw the legend from the core's colour map (once per colour map; needs inference.overlay)."""
        if self._legend_colormap == colormap:
            return
        from inference.overlay import colormap_legend

        self.legend.setPixmap(QPixmap.fromImage(rgb_to_qimage(colormap_legend(256, 12, colormap=colormap))))
        self._legend_colormap = colormap

    def set_caption(self, text: str) -> None:
        """``text`` may mark parts <b>bold</b>; it is elided to fit, the full text is the tooltip."""
        self.caption.set_caption(text)
        self._arrange()

    def full_caption(self) -> str:
        return self.caption.plain_text()

    def set_opacity(self, opacity: float) -> None:
        self.slider.setValue(round(opacity * 100))

    def set_visible_checked(self, visible: bool) -> None:
        self.toggle.setChecked(visible)

    def _on_slider(self, value: int) -> None:
        self.value.setText(f"{value} %")
        self.opacityChanged.emit(value / 100.0)
