"""A heatmap for the screen is computed at a bounded size: the same map as at full size, shrunk, for every
resize policy, with the parts a centre crop never saw still blank."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inference.preprocess import downscaled, map_to_image, plan_resize


@pytest.mark.parametrize("policy", ["stretch", "letterbox", "center_crop"])
@pytest.mark.parametrize(("height", "width"), [(3000, 4000), (4500, 1200), (900, 900)])
def test_a_bounded_heatmap_is_the_full_size_one_shrunk(policy: str, height: int, width: int) -> None:
    rng = np.random.default_rng(7)
    cam = rng.uniform(0, 1, (8, 8)).astype(np.float32)
    geom = plan_resize(height, width, 128, 128, policy)
    full = map_to_image(cam, geom)
    small = map_to_image(cam, downscaled(geom, 600))
    assert max(small.shape) == min(600, max(height, width))
    assert abs(small.shape[0] / small.shape[1] - height / width) < 0.01
    shrunk = cv2.resize(full, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
    diff = np.abs(small - shrunk)  # the pixels astride a blank band's edge differ; every other one agrees
    assert diff.mean() < 0.01 and np.quantile(diff, 0.99) < 0.05
    if policy == "center_crop" and height != width:
        long_axis = 0 if height > width else 1
        assert np.all(np.take(small, [0, -1], axis=long_axis) == 0.0)  # the ends the model never saw


def test_an_image_that_already_fits_keeps_its_geometry() -> None:
    geom = plan_resize(480, 640, 128, 128, "center_crop")
    assert downscaled(geom, 2048) is geom
