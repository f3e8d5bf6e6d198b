"""The image on screen, with its heatmap, as a file or on the clipboard: for a pathologist's e-mail or a
LIMS record. A caption strip below the pixels says what the picture shows, so a copy taken out of the
app still carries the call, the model and the research-use statement."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRect, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter

from review.report import ReportError, write_atomically

# Qt's PNG quality 50 is a middling zlib level: a 4096 px picture encodes in 1.5 s instead of 4.0 s (the default
# level) for 7 % more bytes, measured here; the GUI waits for it.
PNG_QUALITY = 50


def captioned(image: QImage, lines: Sequence[str]) -> QImage:
    """``image`` with a white strip of text lines below it (the text never covers the pixels)."""
    font = QFont()
    font.setPixelSize(max(11, min(22, image.width() // 45)))
    metrics = QFontMetrics(font)
    pad = metrics.height() // 2
    width = image.width()
    wrapped = [metrics.boundingRect(QRect(0, 0, width - 2 * pad, 10_000), Qt.TextFlag.TextWordWrap, line)
               for line in lines]
    strip = sum(r.height() for r in wrapped) + 2 * pad
    out = QImage(width, image.height() + strip, QImage.Format.Format_RGB32)
    out.fill(QColor("white"))
    painter = QPainter(out)
    painter.drawImage(0, 0, image)
    painter.setFont(font)
    painter.setPen(QColor("#1f2328"))
    y = image.height() + pad
    for line, rect in zip(lines, wrapped, strict=True):
        painter.drawText(QRect(pad, y, width - 2 * pad, rect.height()), Qt.TextFlag.TextWordWrap, line)
        y += rect.height()
    painter.end()
    return out


def save_png(image: QImage, path: Path) -> None:
    """Write the PNG under a temporary name and move it into place (review.report.write_atomically): a
    full disk never leaves a truncated picture behind. Raises ReportError with a sentence to act on."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG", PNG_QUALITY):
        raise ReportError(f"Could not encode {Path(path).name} as PNG")
    buffer.close()
    write_atomically(path, bytes(data), "the image")
