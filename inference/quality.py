"""Cheap image-quality warnings (shown as notes, never blocking): very blurred, too dark, washed out.

Thresholds are deliberately conservative: smear fields have bright backgrounds, so only extreme
cases are flagged. Works on a small strided sample (every ``step``-th pixel) so it costs about 0.1 ms.
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_SIDE = 160
DARK_MEAN = 35.0
SATURATED_FRACTION = 0.6
BLUR_VARIANCE = 4.0


_PIXEL = np.dtype((np.void, 3))


def _grey_sample(rgb: np.ndarray, step: int) -> np.ndarray:
    """``cvtColor(rgb[::step, ::step], RGB2GRAY)``, the same values, gathered cheaply.

    Greyscale conversion is per pixel, so it commutes with taking every ``step``-th pixel. At step 2
    converting the whole image first is cheaper than numpy's strided gather (three bytes at a time);
    beyond that each pixel is gathered as one 3-byte item. Both give identical pixels.
    """
    if step == 1:
        return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if step == 2:
        return np.ascontiguousarray(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)[::2, ::2])
    try:
        pixels = rgb.view(_PIXEL)[:, :, 0]
    except ValueError:  # the channel axis is not contiguous: gather byte by byte
        small = np.ascontiguousarray(rgb[::step, ::step])
    else:
        small = np.ascontiguousarray(pixels[::step, ::step]).view(np.uint8).reshape(
            (pixels.shape[0] + step - 1) // step, (pixels.shape[1] + step - 1) // step, 3)
    return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)


MAX_ENLARGEMENT = 2.0


def enlargement_notes(rgb: np.ndarray, input_width: int, input_height: int) -> tuple[str, ...]:
    """A warning when the image must be enlarged more than 2x to reach the model's input: the detail the
    model was trained on (granules, chromatin) is then missing, however confident the call looks."""
    height, width = rgb.shape[:2]
    factor = max(input_width / max(width, 1), input_height / max(height, 1))
    if factor <= MAX_ENLARGEMENT:
        return ()
    return (f"image quality: only {width} x {height} pixels, enlarged {factor:.0f}x to the model's "
            f"{input_width} x {input_height} input; fine detail is missing",)


def quality_notes(rgb: np.ndarray) -> tuple[str, ...]:
    """Warnings about the exposure and sharpness of an (H, W, 3) uint8 image; empty when it looks usable."""
    step = max(1, int(np.ceil(max(rgb.shape[0], rgb.shape[1]) / MAX_SIDE)))
    if -(-rgb.shape[0] // step) < 8 or -(-rgb.shape[1] // step) < 8:
        return ()
    grey = _grey_sample(rgb, step)
    notes = []
    mean = cv2.sumElems(grey)[0] / grey.size  # the exact integer sum over the count, as numpy's mean gives
    if mean < DARK_MEAN:
        notes.append(f"image quality: very dark (mean brightness {mean:.0f}/255), check exposure")
    elif np.count_nonzero(grey >= 254) / grey.size > SATURATED_FRACTION:
        notes.append("image quality: mostly saturated white, check exposure")
    if float(cv2.Laplacian(grey, cv2.CV_32F).var()) < BLUR_VARIANCE:
        notes.append("image quality: very little detail (blurred or out of focus?)")
    return tuple(notes)
