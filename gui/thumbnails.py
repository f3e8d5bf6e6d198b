"""Lazy thumbnails: decoded off the GUI thread, newest request first, kept in a bounded cache.

Views ask for a thumbnail only when they paint a row; scrolling fast through 10,000 images
queues many requests, so the newest (what is on screen now) are served first and the queue is
capped, dropping the oldest.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QSize, Qt, QThread, Signal
from PySide6.QtGui import QIcon, QImage, QImageReader, QPainter, QPixmap

from gui.qimage import rgb_to_qimage
from gui.thread_priority import lower_current_thread_priority

THUMB_SIZE = 96
MAX_PENDING = 256
CACHE_SIZE = 3000


def _on_white(image: QImage) -> QImage:
    """Transparency flattened onto white, as the core loader does for the model, so the thumbnail shows
    what was classified (a plain format conversion turns transparent pixels black)."""
    flat = QImage(image.size(), QImage.Format.Format_RGB888)
    flat.fill(Qt.GlobalColor.white)
    painter = QPainter(flat)
    painter.drawImage(0, 0, image)
    painter.end()
    return flat


def read_thumbnail(path: Path, size: int = THUMB_SIZE) -> QImage:
    """Decode a small version of an image: Qt's scaled decode first, the core loader as fallback."""
    if not Path(path).is_file():  # a pipe named like an image would block this thread forever
        return QImage()
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    full = reader.size()
    if full.isValid() and full.width() > 0 and full.height() > 0:
        scale = size / max(full.width(), full.height())
        if scale < 1.0:
            reader.setScaledSize(QSize(max(1, round(full.width() * scale)), max(1, round(full.height() * scale))))
    image = reader.read()
    if image.depth() > 32 or image.format() == QImage.Format.Format_Grayscale16:
        image = QImage()  # more than 8 bits a sample: scaled as the core loader scales them (10-14-bit cameras)
    if not image.isNull():
        image = _on_white(image) if image.hasAlphaChannel() else image.convertToFormat(QImage.Format.Format_RGB888)
        if max(image.width(), image.height()) > size:
            image = image.scaled(
                size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
        return image
    import cv2

    from inference.images import load_image  # formats Qt cannot read (CMYK, float TIFF, ...), deep samples

    rgb = load_image(path).rgb
    h, w = rgb.shape[:2]
    scale = min(1.0, size / max(h, w))
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return rgb_to_qimage(np.ascontiguousarray(small))


def untinted_icon(pixmap: QPixmap) -> QIcon:
    """An icon that looks the same selected: the style's selected look tints it with the highlight colour,
    which greys the stain in the table and gallery row the technician is looking at."""
    icon = QIcon(pixmap)
    icon.addPixmap(pixmap, QIcon.Mode.Selected)
    return icon


class _ThumbnailThread(QThread):
    def __init__(self, loader: ThumbnailLoader) -> None:
        super().__init__()
        self._loader = loader

    def run(self) -> None:
        self._loader._serve()


class ThumbnailLoader(QObject):
    """Thumbnail cache with one background decoder thread; emits ``ready(path)`` as each arrives."""

    ready = Signal(object)  # Path
    _delivered = Signal(object, object)  # Path, QImage | None (from the decoder thread)

    def __init__(self, size: int = THUMB_SIZE, parent: QObject | None = None, cache_size: int = CACHE_SIZE) -> None:
        super().__init__(parent)
        self.size = size
        self._cache_size = cache_size
        self._decoded: set[Path] = set()  # every path decoded since the folder opened (paths only: small)
        self._cache: OrderedDict[Path, QIcon | None] = OrderedDict()
        self._pending: deque[Path] = deque()
        self._queued: set[Path] = set()
        self._cond = threading.Condition()
        self._stop = False
        self._delivered.connect(self._store)
        self._thread = _ThumbnailThread(self)
        self._thread.start(QThread.Priority.LowPriority)

    def get(self, path: Path) -> QIcon | None:
        """The cached thumbnail as an icon (views scale it to their icon size), or None now and
        ``ready(path)`` later."""
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        with self._cond:
            if path not in self._queued:
                self._queued.add(path)
                self._pending.append(path)
                while len(self._pending) > MAX_PENDING:
                    self._queued.discard(self._pending.popleft())
                self._cond.notify()
        return None

    def shown(self, path: Path) -> bool:
        """Whether the thumbnail has been decoded for a view to paint, even if the cache has dropped it since
        (a group scrolled through in a 10,000-image folder was seen); False while waiting or unreadable."""
        return path in self._decoded

    def clear(self) -> None:
        with self._cond:
            self._pending.clear()
            self._queued.clear()
        self._cache.clear()
        self._decoded.clear()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.wait(5000)

    def _serve(self) -> None:
        lower_current_thread_priority()
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                path = self._pending.pop()  # newest first: what is on screen now
            try:
                image: QImage | None = read_thumbnail(path, self.size)
            except Exception:  # noqa: BLE001 - an unreadable file gets no thumbnail; its row shows the error
                image = None
            self._delivered.emit(path, image)

    def _store(self, path: Path, image: QImage | None) -> None:
        with self._cond:
            self._queued.discard(path)
        self._cache[path] = None if image is None else untinted_icon(QPixmap.fromImage(image))
        if image is not None:
            self._decoded.add(path)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        self.ready.emit(path)
