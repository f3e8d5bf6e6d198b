"""Speed fixes made from benchmark findings must not change results: each is checked against the
straightforward reference it replaced."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from inference.overlay import COLORMAPS, apply_colormap


def _reference_colormap(values: np.ndarray, colormap: str) -> np.ndarray:
    """The original implementation: nan_to_num, scale, clip, cv2.applyColorMap, BGR -> RGB."""
    levels = np.clip(np.nan_to_num(values, nan=0.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(224, 224), (7, 13), (1, 1), (300, 1)])
def test_cached_colour_table_gives_the_same_colours(dtype: type, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(5)
    values = (rng.random(shape) * 1.4 - 0.2).astype(dtype)  # includes out-of-range values on both sides
    values.flat[0] = np.nan
    values.flat[-1] = np.inf
    if values.size > 3:
        values.flat[1] = -np.inf
        values.flat[2] = 0.5 / 255.0  # exactly on a rounding boundary
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf * 255 overflows in both versions
        for name in COLORMAPS:
            got, want = apply_colormap(values, name), _reference_colormap(values, name)
            assert got.dtype == np.uint8 and got.shape == (*shape, 3)
            np.testing.assert_array_equal(got, want, err_msg=name)


def test_every_level_maps_to_the_opencv_colour() -> None:
    ramp = (np.arange(256, dtype=np.float64) / 255.0).reshape(1, 256)
    for name in COLORMAPS:
        np.testing.assert_array_equal(apply_colormap(ramp, name), _reference_colormap(ramp, name), err_msg=name)


def test_unknown_colour_map_is_still_refused() -> None:
    with pytest.raises(ValueError, match="unknown colour map"):
        apply_colormap(np.zeros((2, 2), np.float32), "rainbow-unicorn")
