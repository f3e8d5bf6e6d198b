"""The strip under the image: which class's heatmap is shown, by which method, the colour legend,
the overlay toggle and its opacity."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSizePolicy, QSlider, QWidget

from gui.qimage import rgb_to_qimage


class HeatmapBar(QWidget):
    """Overlay controls; emits ``visibleChanged(bool)`` and ``opacityChanged(float)``."""

    visibleChanged = Signal(bool)
    opacityChanged = Signal(float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        self.toggle = QCheckBox("Heatmap (H)")
        self.toggle.setChecked(True)
        self.toggle.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.caption = QLabel("")
        self.caption.setObjectName("heatmapCaption")
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # may shrink
        self.low = QLabel("low")
        self.legend = QLabel()
        self.legend.setFixedSize(110, 12)
        self.legend.setScaledContents(True)
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
        for w in (self.low, self.legend, self.high, self.opacity_label, self.slider, self.value):
            layout.addWidget(w)
        self.toggle.toggled.connect(self.visibleChanged)
        self.slider.valueChanged.connect(self._on_slider)
        self._legend_ready = False

    def ensure_legend(self, colormap: str = "jet") -> None:
        """Draw the legend from the core's colour map (once; needs inference.overlay)."""
        if self._legend_ready:
            return
        from inference.overlay import colormap_legend

        self.legend.setPixmap(QPixmap.fromImage(rgb_to_qimage(colormap_legend(256, 12, colormap=colormap))))
        self._legend_ready = True

    def set_caption(self, text: str) -> None:
        self.caption.setText(text)

    def set_opacity(self, opacity: float) -> None:
        self.slider.setValue(round(opacity * 100))

    def set_visible_checked(self, visible: bool) -> None:
        self.toggle.setChecked(visible)

    def _on_slider(self, value: int) -> None:
        self.value.setText(f"{value} %")
        self.opacityChanged.emit(value / 100.0)
