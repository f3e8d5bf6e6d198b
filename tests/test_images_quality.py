"""The cheap image-quality notes flag extreme images only."""

import numpy as np

from inference.quality import quality_notes


def test_normal_smear_like_image_has_no_notes():
    rng = np.random.default_rng(0)
    img = np.full((200, 300, 3), 225, np.uint8)
    for _ in range(30):  # purple-ish cells on a bright background
        y, x = rng.integers(10, 190), rng.integers(10, 290)
        img[max(0, y - 8):y + 8, max(0, x - 8):x + 8] = (120, 60, 160)
    assert quality_notes(img) == ()


def test_dark_saturated_and_featureless_images_are_flagged():
    dark = np.random.default_rng(1).integers(0, 30, (100, 100, 3), dtype=np.uint8)
    assert any("very dark" in n for n in quality_notes(dark))
    white = np.full((100, 100, 3), 255, np.uint8)
    white[40:60, 40:60] = 100
    assert any("saturated" in n for n in quality_notes(white))
    flat = np.full((100, 100, 3), 128, np.uint8)
    assert any("blurred" in n for n in quality_notes(flat))
    assert quality_notes(np.zeros((4, 4, 3), np.uint8)) == ()  # too small to judge
