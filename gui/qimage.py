"""Conversions between the core's numpy arrays and Qt images, and the heatmap colouring.

QImage may be built on any thread; the workers build them so the GUI thread only turns them
into pixmaps.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PySide6.QtGui import QImage


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """An (H, W, 3) uint8 array as an RGB888 QImage that owns a copy of the pixels."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return image.copy()  # detach from the numpy buffer


@lru_cache(maxsize=8)
def colormap_lut(colormap: str = "jet") -> np.ndarray:
    """A 256-entry RGB lookup table taken from the core's legend, so overlay and legend agree exactly."""
    from inference.overlay import colormap_legend

    legend = colormap_legend(256, 1, colormap=colormap)
    return np.ascontiguousarray(legend[0, :, :3]).astype(np.uint8)


@lru_cache(maxsize=8)
def _rgba_lut(colormap: str) -> np.ndarray:
    """256 RGBA entries: the colour map, with alpha rising with the heat (sqrt)."""
    lut = np.empty((256, 4), dtype=np.uint8)
    lut[:, :3] = colormap_lut(colormap)
    lut[:, 3] = np.clip(np.sqrt(np.arange(256) / 255.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return lut


def heatmap_rgba(heatmap: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """The coloured heatmap with alpha rising with the heat (sqrt), so cold areas leave the cells
    visible instead of tinting the whole field; the view's opacity slider scales it further.
    One table lookup per pixel (heat quantised to 256 levels, as the colours always were)."""
    idx = np.clip(np.nan_to_num(heatmap, nan=0.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return _rgba_lut(colormap)[idx]


def rgba_to_qimage(rgba: np.ndarray) -> QImage:
    """An (H, W, 4) uint8 array (straight alpha) as a QImage that owns a copy of the pixels."""
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 4) uint8 array, got {rgba.shape} {rgba.dtype}")
    rgba = np.ascontiguousarray(rgba)
    h, w = rgba.shape[:2]
    return QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
