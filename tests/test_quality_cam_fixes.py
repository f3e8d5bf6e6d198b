"""The cheaper image-quality sampling and heatmap arithmetic must give exactly what the straightforward
versions they replaced gave (the references below are those versions)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inference.cam import CamSource, weighted_cam
from inference.preprocess import plan_resize
from inference.quality import BLUR_VARIANCE, DARK_MEAN, MAX_SIDE, SATURATED_FRACTION, quality_notes


def _reference_notes(rgb: np.ndarray) -> tuple[str, ...]:
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


def _images(h: int, w: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    noisy = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    dark = rng.integers(0, 36, (h, w, 3), dtype=np.uint8)  # around the darkness threshold
    white = np.full((h, w, 3), 255, np.uint8)
    white[: h * 2 // 5] = rng.integers(90, 110, (h * 2 // 5, w, 3), dtype=np.uint8)  # near the saturation share
    ramp = np.linspace(100, 140, w).astype(np.uint8)
    flat = np.repeat(np.repeat(ramp[None, :, None], h, axis=0), 3, axis=2)  # smooth: nothing in focus
    return [noisy, dark, white, flat]


@pytest.mark.parametrize("h,w", [(7, 100), (8, 8), (160, 160), (161, 161), (224, 224), (224, 226), (320, 321),
                                 (479, 481), (1000, 1500), (17, 2000)])
def test_quality_notes_equal_the_plain_strided_version(h: int, w: int) -> None:
    for k, img in enumerate(_images(h, w, h * w)):
        rgba = np.dstack([img, np.full((h, w), 255, np.uint8)])
        for variant in (img, img[::-1, ::-1], np.ascontiguousarray(np.rot90(img)), rgba[:, :, :3]):
            assert quality_notes(variant) == _reference_notes(variant), (h, w, k)


def test_the_quality_references_do_flag_something() -> None:
    flagged = [n for img in _images(224, 224, 1) for n in _reference_notes(img)]
    assert any("dark" in n for n in flagged) and any("blurred" in n for n in flagged)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,h,w", [(1, 1, 1), (8, 7, 5), (192, 8, 8)])
def test_weighted_cam_equals_tensordot(dtype: type, k: int, h: int, w: int) -> None:
    rng = np.random.default_rng(k + h)
    acts, weights = rng.standard_normal((k, h, w)).astype(dtype), rng.standard_normal(k).astype(dtype)
    ref = np.tensordot(weights.astype(np.float32), acts.astype(np.float32), axes=1)
    np.maximum(ref, 0.0, out=ref)
    peak = float(ref.max(initial=0.0))
    ref = ref / peak if peak > 0 else np.zeros_like(ref)
    got = weighted_cam(acts, weights)
    assert got.dtype == np.float32 and got.shape == (h, w)
    np.testing.assert_array_equal(got, ref.astype(np.float32))


def test_heatmap_is_clipped_like_np_clip() -> None:
    rng = np.random.default_rng(2)
    acts = rng.standard_normal((4, 6, 6)).astype(np.float32)
    weights = rng.standard_normal((3, 4)).astype(np.float32)
    source = CamSource("grad-cam", acts, plan_resize(50, 70, 24, 24, "letterbox"), weights=weights)
    from inference.preprocess import map_to_image

    for c in range(3):
        ref = np.clip(map_to_image(weighted_cam(acts, weights[c]), source.geometry), 0.0, 1.0)
        np.testing.assert_array_equal(source.heatmap(c), ref)
