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


def test_images_far_below_the_model_input_are_flagged_as_enlarged():
    from inference.quality import enlargement_notes

    assert enlargement_notes(np.zeros((224, 224, 3), np.uint8), 160, 160) == ()
    assert enlargement_notes(np.zeros((80, 300, 3), np.uint8), 160, 160) == ()  # exactly 2x: still fine
    (note,) = enlargement_notes(np.zeros((3, 5, 3), np.uint8), 160, 160)
    assert "5 x 3 pixels" in note and "53x" in note


def test_a_tiny_image_gets_the_enlargement_note_from_the_session():
    from pathlib import Path

    from inference.session import ModelSession

    model = Path(__file__).resolve().parents[1] / "assets" / "models" / "hemalens-pbc.onnx"
    session = ModelSession.load(model)
    tiny = np.full((20, 20, 3), 200, np.uint8)
    tiny[5:15, 5:15] = (120, 60, 160)
    normal = np.full((224, 224, 3), 200, np.uint8)
    tiny_pred, normal_pred = session.predict_batch([tiny, normal])
    assert any("enlarged 8x" in n for n in tiny_pred.notes)
    assert not any("enlarged" in n for n in normal_pred.notes)
