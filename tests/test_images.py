"""Image loading: odd but valid files become correct RGB uint8; broken ones raise a clear ImageLoadError."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from inference.errors import ImageLoadError
from inference.images import IMAGE_EXTENSIONS, is_image_path, load_image


def _gradient(h: int = 24, w: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 90)], axis=2).astype(np.uint8)


def test_extensions_and_is_image_path():
    assert ".png" in IMAGE_EXTENSIONS and ".tiff" in IMAGE_EXTENSIONS and ".webp" in IMAGE_EXTENSIONS
    assert is_image_path("a/B.JPG") and is_image_path("x.tif") and not is_image_path("notes.txt")


@pytest.mark.parametrize("fmt, ext, exact", [("PNG", ".png", True), ("BMP", ".bmp", True), ("TIFF", ".tif", True),
                                             ("JPEG", ".jpg", False), ("WEBP", ".webp", False)])
def test_common_formats_round_trip(tmp_path, fmt, ext, exact):
    rgb = _gradient()
    path = tmp_path / f"img{ext}"
    Image.fromarray(rgb).save(path, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    loaded = load_image(path)
    assert loaded.rgb.shape == rgb.shape and loaded.rgb.dtype == np.uint8 and loaded.rgb.flags.c_contiguous
    diff = np.abs(loaded.rgb.astype(int) - rgb).max()
    assert diff == 0 if exact else diff < 40
    assert loaded.path == path


def test_broken_files_raise_typed_errors(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.png"
    text.write_text("this is not a picture")
    with pytest.raises(ImageLoadError, match="empty"):
        load_image(empty)
    with pytest.raises(ImageLoadError, match="format") as info:
        load_image(text)
    assert info.value.path == text and "text.png" in str(info.value)
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image(tmp_path / "missing.jpg")


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(cv2.resize(_gradient(), (400, 300))).save(buf, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match="truncated|damaged"):
        load_image(path)
