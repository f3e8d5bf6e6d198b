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


def test_python_overrides_called_by_qt_do_not_free_none() -> None:
    """PySide6 6.12.0 on CPython < 3.12 drops a reference to None on every C++ -> Python virtual call
    (the table model's data(), paintEvent, event filters); the benchmark's 3,000-image GUI run aborted
    with "none_dealloc". With gui's workaround applied, 50,000 such calls must leave the process alive."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = """
import gui  # applies the workaround
from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt
class Model(QAbstractListModel):
    def rowCount(self, parent=QModelIndex()):
        return 1
    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        return None
model = Model()
index = model.index(0, 0)
for _ in range(50_000):
    index.data()
print("alive")
"""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0 and "alive" in proc.stdout, proc.stderr[-800:]


def _warp_reference(cam: np.ndarray, geom) -> np.ndarray:  # noqa: ANN001 - ResizeGeometry
    """map_to_image's general affine warp (what the stretch shortcut replaced)."""
    h, w = cam.shape
    ax, ay = geom.scale_x * w / geom.dst_width, geom.scale_y * h / geom.dst_height
    bx, by = geom.offset_x * w / geom.dst_width, geom.offset_y * h / geom.dst_height
    matrix = np.array([[ax, 0.0, 0.5 * ax + bx - 0.5], [0.0, ay, 0.5 * ay + by - 0.5]], dtype=np.float64)
    return cv2.warpAffine(cam, matrix, (geom.src_width, geom.src_height),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def test_stretch_heatmap_mapping_matches_the_affine_warp() -> None:
    from inference.preprocess import map_to_image, plan_resize

    rng = np.random.default_rng(11)
    for _ in range(60):
        src_h, src_w = (int(v) for v in rng.integers(1, 700, 2))
        dst = int(rng.choice([32, 64, 128, 224]))
        cam_h, cam_w = (int(v) for v in rng.integers(1, 17, 2))
        cam = rng.random((cam_h, cam_w), dtype=np.float32)
        geom = plan_resize(src_h, src_w, dst, dst, "stretch")
        got = map_to_image(cam, geom)
        assert got.shape == (src_h, src_w) and got.dtype == np.float32
        np.testing.assert_allclose(got, _warp_reference(cam, geom), atol=2e-5)
