"""Thumbnails show what the model was given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from gui.thumbnails import read_thumbnail
from inference.images import load_image


def test_transparent_pixels_are_white_in_the_thumbnail_as_for_the_model(qapp, tmp_path: Path) -> None:
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., :3] = (150, 40, 90)  # purple everywhere ...
    rgba[:, 20:, 3] = 255          # ... but only the right half is opaque
    path = tmp_path / "half.png"
    Image.fromarray(rgba, "RGBA").save(path)

    thumb = read_thumbnail(path)
    model_rgb = load_image(path).rgb
    for x, y in ((5, 20), (30, 20)):
        colour = thumb.pixelColor(x, y)
        assert (colour.red(), colour.green(), colour.blue()) == tuple(int(v) for v in model_rgb[y, x])
    left = thumb.pixelColor(5, 20)
    assert (left.red(), left.green(), left.blue()) == (255, 255, 255)


def test_a_12_bit_camera_image_in_a_16_bit_file_is_not_a_black_thumbnail(qapp, tmp_path: Path) -> None:
    """Qt reads a 16-bit PNG as 16-bit and scales it from 65535, so 12-bit data came out near black in the list
    while the image itself (scaled by the core loader) showed normally."""
    import cv2

    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[...] = (230, 180, 200)  # a pale smear background
    rgb[10:30, 10:30] = (120, 40, 110)  # a stained cell
    path = tmp_path / "camera12.png"
    assert cv2.imwrite(str(path), rgb[:, :, ::-1].astype(np.uint16) * 16)
    thumb = read_thumbnail(path)
    model_rgb = load_image(path).rgb
    for x, y in ((5, 5), (20, 20)):
        colour = thumb.pixelColor(x, y)
        assert (colour.red(), colour.green(), colour.blue()) == tuple(int(v) for v in model_rgb[y, x])
    assert thumb.pixelColor(5, 5).red() > 200
