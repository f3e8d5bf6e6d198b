"""Render assets/icons/hemalens.svg into the PNG sizes, the Windows .ico and the macOS .icns.

Run once after editing the SVG: ``QT_QPA_PLATFORM=offscreen python packaging/make_icons.py``.
Qt's SVG renderer draws the PNGs so they match the SVG exactly; Pillow writes the .ico/.icns.
The outputs are committed, so building the packages never needs this script.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PIL import Image

ICON_DIR = Path(__file__).resolve().parent.parent / "assets" / "icons"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)


def render_pngs(svg: Path, out_dir: Path) -> list[Path]:
    """Draw the SVG at every size in PNG_SIZES; returns the written files."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg} is not a valid SVG")
    written = []
    for size in PNG_SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        path = out_dir / f"hemalens-{size}.png"
        if not image.save(str(path), "PNG"):
            raise SystemExit(f"could not write {path}")
        written.append(path)
    return written


def main() -> int:
    pngs = render_pngs(ICON_DIR / "hemalens.svg", ICON_DIR)
    largest = Image.open(pngs[-1]).convert("RGBA")
    largest.save(ICON_DIR / "hemalens.ico", sizes=[(s, s) for s in ICO_SIZES])
    largest.save(ICON_DIR / "hemalens.icns")
    for path in [*pngs, ICON_DIR / "hemalens.ico", ICON_DIR / "hemalens.icns"]:
        print(f"{path.relative_to(ICON_DIR.parent.parent)}  {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
