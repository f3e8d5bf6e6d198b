"""Draw a heatmap over an image with a colour map, as an RGB array (no Qt, so reports can use it too)."""

from __future__ import annotations

import cv2
import numpy as np

COLORMAPS: dict[str, int] = {
    "jet": cv2.COLORMAP_JET,
    "turbo": cv2.COLORMAP_TURBO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "inferno": cv2.COLORMAP_INFERNO,
    "magma": cv2.COLORMAP_MAGMA,
    "plasma": cv2.COLORMAP_PLASMA,
    "hot": cv2.COLORMAP_HOT,
    "cividis": cv2.COLORMAP_CIVIDIS,
}


def apply_colormap(values: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """(H, W) float in [0, 1] -> (H, W, 3) uint8 RGB colours."""
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colour map {colormap!r}; choose one of {', '.join(COLORMAPS)}")
    levels = np.clip(np.nan_to_num(values, nan=0.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)


def render_overlay(rgb: np.ndarray, heatmap: np.ndarray, *, opacity: float = 0.45, colormap: str = "jet") -> np.ndarray:
    """Blend the coloured heatmap over the image: ``(1 - opacity) * image + opacity * colours``.

    The heatmap is resized to the image when sizes differ; the result is (H, W, 3) uint8 RGB.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got {rgb.shape}")
    if heatmap.ndim != 2:
        raise ValueError(f"expected an (H, W) heatmap, got {heatmap.shape}")
    opacity = float(np.clip(opacity, 0.0, 1.0))
    if heatmap.shape != rgb.shape[:2]:
        heatmap = cv2.resize(heatmap.astype(np.float32), (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    colours = apply_colormap(heatmap, colormap)
    image = rgb if rgb.dtype == np.uint8 else np.clip(rgb, 0, 255).astype(np.uint8)
    return cv2.addWeighted(np.ascontiguousarray(image), 1.0 - opacity, colours, opacity, 0.0)


def colormap_legend(width: int, height: int, colormap: str = "jet") -> np.ndarray:
    """A (height, width, 3) uint8 gradient bar from low (left) to high (right)."""
    if width < 1 or height < 1:
        raise ValueError("legend size must be positive")
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :].repeat(height, axis=0)
    return apply_colormap(ramp, colormap)
