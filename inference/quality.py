"""Cheap image-quality warnings (shown as notes, never blocking): very blurred, too dark, washed out.

Thresholds are deliberately conservative: smear fields have bright backgrounds, so only extreme
cases are flagged. Works on a small strided copy so it costs well under a millisecond.
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_SIDE = 160
DARK_MEAN = 35.0
SATURATED_FRACTION = 0.6
BLUR_VARIANCE = 4.0


def quality_notes(rgb: np.ndarray) -> tuple[str, ...]:
    """Warnings about the exposure and sharpness of an (H, W, 3) uint8 image; empty when it looks usable."""
    step = max(1, int(np.ceil(max(rgb.shape[0], rgb.shape[1]) / MAX_SIDE)))
    small = np.ascontiguousarray(rgb[::step, ::step])
    if small.shape[0] < 8 or small.shape[1] < 8:
        return ()
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    notes = []
    mean = float(grey.mean())
    if mean < DARK_MEAN:
        notes.append(f"image quality: very dark (mean brightness {mean:.0f}/255), check exposure")
    elif float((grey >= 254).mean()) > SATURATED_FRACTION:
        notes.append("image quality: mostly saturated white, check exposure")
    if float(cv2.Laplacian(grey, cv2.CV_32F).var()) < BLUR_VARIANCE:
        notes.append("image quality: very little detail (blurred or out of focus?)")
    return tuple(notes)
