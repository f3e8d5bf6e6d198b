"""Overlay rendering and the colour-map legend."""

import numpy as np
import pytest

from inference.overlay import colormap_legend, render_overlay


def test_overlay_blends_with_opacity():
    rgb = np.full((10, 12, 3), 200, dtype=np.uint8)
    heat = np.zeros((10, 12), dtype=np.float32)
    heat[:, 6:] = 1.0
    out0 = render_overlay(rgb, heat, opacity=0.0)
    np.testing.assert_array_equal(out0, rgb)
    out = render_overlay(rgb, heat, opacity=0.5)
    assert out.shape == (10, 12, 3) and out.dtype == np.uint8
    # jet: low is blue, high is red
    assert out[0, 0, 2] > out[0, 0, 0] and out[0, 11, 0] > out[0, 11, 2]
    full = render_overlay(rgb, heat, opacity=1.0)
    assert tuple(full[0, 11]) != tuple(full[0, 0])


def test_overlay_resizes_heatmap_and_checks_input():
    rgb = np.zeros((40, 30, 3), dtype=np.uint8)
    assert render_overlay(rgb, np.ones((5, 5), np.float32), colormap="viridis").shape == (40, 30, 3)
    with pytest.raises(ValueError, match="colour map"):
        render_overlay(rgb, np.ones((5, 5), np.float32), colormap="nope")
    with pytest.raises(ValueError):
        render_overlay(rgb[:, :, 0], np.ones((5, 5), np.float32))


def test_legend_runs_low_to_high():
    legend = colormap_legend(64, 8)
    assert legend.shape == (8, 64, 3) and legend.dtype == np.uint8
    assert legend[0, 0, 2] > legend[0, 0, 0]  # blue at the left
    assert legend[0, 63, 0] > legend[0, 63, 2]  # red at the right
    np.testing.assert_array_equal(legend[0], legend[7])
