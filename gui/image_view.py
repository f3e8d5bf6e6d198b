"""The image view: the smear image with its Grad-CAM overlay, zoom (wheel, fit, 1:1) and pan.

The heatmap is a second pixmap item over the image; opacity is the item's opacity, so moving the
slider never recomputes anything.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap, QTransform, QWheelEvent
from PySide6.QtWidgets import QFrame, QGraphicsPixmapItem, QGraphicsScene, QGraphicsTextItem, QGraphicsView

ZOOM_STEP = 1.25
MIN_ZOOM, MAX_ZOOM = 0.02, 40.0

PICTURE_MAX_SIDE = 4096  # the longer side of a saved or copied picture (e-mail, LIMS), in pixels


class ImageView(QGraphicsView):
    """Shows one image; keeps "fit to window" until the user zooms, then keeps the zoom."""

    zoomChanged = Signal(float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setBackgroundBrush(QColor("#1e2126"))
        self.setRenderHints(QPainter.RenderHint.SmoothPixmapTransform | QPainter.RenderHint.Antialiasing)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAccessibleName("Image with its heatmap")
        self._image_item = QGraphicsPixmapItem()
        self._image_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._overlay_item = QGraphicsPixmapItem()
        self._overlay_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._overlay_item.setZValue(1)
        self._message = QGraphicsTextItem()
        self._message.setDefaultTextColor(QColor("#c9ced6"))
        for item in (self._image_item, self._overlay_item, self._message):
            self.scene().addItem(item)
        self._fit = True
        self._overlay_visible = True
        self._opacity = 0.45
        self.show_message("Open an image or a folder (Ctrl+O, Ctrl+Shift+O) or drop files here.")

    # --- content -------------------------------------------------------------------------------
    def set_image(self, image: QImage | None) -> None:
        """Show a new image (the overlay is cleared until its heatmap arrives)."""
        self._overlay_item.setPixmap(QPixmap())
        if image is None or image.isNull():
            self._image_item.setPixmap(QPixmap())
            return
        self._message.setVisible(False)
        self._image_item.setPixmap(QPixmap.fromImage(image))
        self.scene().setSceneRect(QRectF(self._image_item.pixmap().rect()))
        if self._fit:
            self.fit()

    def set_heatmap(self, heatmap: QImage | None) -> None:
        """The coloured heatmap (None: no overlay for this image). It may be smaller than the image (a large
        scan's heatmap is computed at screen size): the item is scaled to cover the image exactly when drawn,
        instead of resampling a picture of the image's full size on this thread."""
        if heatmap is None or heatmap.isNull():
            self._overlay_item.setPixmap(QPixmap())
            return
        pixmap = QPixmap.fromImage(heatmap)
        base = self._image_item.pixmap()
        self._overlay_item.setPixmap(pixmap)
        self._overlay_item.setTransform(QTransform.fromScale(
            base.width() / pixmap.width() if not base.isNull() else 1.0,
            base.height() / pixmap.height() if not base.isNull() else 1.0,
        ))
        self._apply_overlay()

    def show_message(self, text: str) -> None:
        """A calm placeholder text instead of an image (nothing open, or the image failed)."""
        self._image_item.setPixmap(QPixmap())
        self._overlay_item.setPixmap(QPixmap())
        self._message.setPlainText(text)
        self._message.setVisible(True)
        self._layout_message()

    def _layout_message(self) -> None:
        """Wrap the placeholder to the view's width, so a long error is read whole, not clipped."""
        self._message.setTextWidth(-1)
        natural = self._message.boundingRect().width()
        self._message.setTextWidth(max(120.0, min(natural, self.viewport().width() - 40.0)))
        rect = self._message.boundingRect()
        self.scene().setSceneRect(rect.adjusted(-20, -20, 20, 20))
        self.resetTransform()
        self.centerOn(rect.center())

    def has_image(self) -> bool:
        return not self._image_item.pixmap().isNull()

    def has_heatmap(self) -> bool:
        return not self._overlay_item.pixmap().isNull()

    def image_size(self) -> QSize:
        """The size of the image on screen in its own pixels (empty when none is)."""
        return self._image_item.pixmap().size()

    def composed(self) -> QImage | None:
        """The image with the heatmap as shown (opacity, on or off), at its own resolution up to
        PICTURE_MAX_SIDE px on the longer side; None when no image is on screen. A 9000 px scan at full
        size took 16 s to compose and encode on the GUI thread, for a picture too large to e-mail."""
        base = self._image_item.pixmap()
        if base.isNull():
            return None
        out = base.toImage()
        if max(out.width(), out.height()) > PICTURE_MAX_SIDE:
            out = out.scaled(PICTURE_MAX_SIDE, PICTURE_MAX_SIDE, Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
        out = out.convertToFormat(QImage.Format.Format_RGB32)
        overlay = self._overlay_item.pixmap()
        if self._overlay_visible and not overlay.isNull():
            painter = QPainter(out)
            painter.setOpacity(self._opacity)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawPixmap(out.rect(), overlay, overlay.rect())  # stretched over the image, as shown
            painter.end()
        return out

    # --- overlay -------------------------------------------------------------------------------
    def set_overlay_visible(self, visible: bool) -> None:
        self._overlay_visible = visible
        self._apply_overlay()

    def overlay_visible(self) -> bool:
        return self._overlay_visible

    def set_opacity(self, opacity: float) -> None:
        self._opacity = max(0.0, min(1.0, opacity))
        self._apply_overlay()

    def opacity(self) -> float:
        return self._opacity

    def _apply_overlay(self) -> None:
        self._overlay_item.setOpacity(self._opacity)
        self._overlay_item.setVisible(self._overlay_visible)

    # --- zoom ----------------------------------------------------------------------------------
    def zoom(self) -> float:
        return self.transform().m11()

    def fit(self) -> None:
        """Fit the whole image in the window (and keep fitting on resize until the user zooms)."""
        self._fit = True
        if self.has_image():
            self.fitInView(self._image_item, Qt.AspectRatioMode.KeepAspectRatio)
            self.zoomChanged.emit(self.zoom())

    def actual_size(self) -> None:
        """1:1: one image pixel per device-independent pixel."""
        self._fit = False
        self.resetTransform()
        self.zoomChanged.emit(1.0)

    def zoom_by(self, factor: float) -> None:
        current = self.zoom()
        target = max(MIN_ZOOM, min(MAX_ZOOM, current * factor))
        if current > 0:
            self._fit = False
            self.scale(target / current, target / current)
            self.zoomChanged.emit(self.zoom())

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps and self.has_image():
            self.zoom_by(ZOOM_STEP**steps)
            event.accept()
        else:
            super().wheelEvent(event)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._message.isVisible():
            self._layout_message()
        if self._fit and self.has_image():
            self.fitInView(self._image_item, Qt.AspectRatioMode.KeepAspectRatio)
