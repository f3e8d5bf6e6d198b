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


def colorize_heatmap(heatmap: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """A float heatmap in [0, 1] as a colour image (H, W, 3) uint8 through the colour map."""
    idx = np.clip(np.nan_to_num(heatmap, nan=0.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return colormap_lut(colormap)[idx]
