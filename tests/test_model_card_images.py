"""The Grad-CAM grids next to the shipped models: written as JPEG, linked from the cards, bundled."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from training.report import cam_grid_name, save_cam_grid

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "assets" / "models"


def _bundle_rules() -> ModuleType:
    """packaging/bundle_rules.py by path (packaging/ is not a package: it would shadow PyPI's `packaging`)."""
    if "bundle_rules" in sys.modules:
        return sys.modules["bundle_rules"]
    spec = importlib.util.spec_from_file_location("bundle_rules", ROOT / "packaging" / "bundle_rules.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bundle_rules"] = module
    spec.loader.exec_module(module)
    return module


def test_grid_writer_writes_a_faithful_jpeg_under_the_card_name(tmp_path: Path) -> None:
    assert cam_grid_name("hemalens-pbc") == "hemalens-pbc-gradcam.jpg"
    rgb = np.full((144, 400, 3), 255, np.uint8)
    rgb[16:, 110:238] = np.linspace(0, 255, 128, dtype=np.uint8)[None, :, None]  # a heatmap-like ramp
    rgb[2:12, 112:200] = (220, 0, 0)  # a red "wrong call" caption
    path = tmp_path / "figs" / cam_grid_name("hemalens-x")
    save_cam_grid(rgb, path)
    assert path.read_bytes()[:3] == b"\xff\xd8\xff"
    with Image.open(path) as image:
        assert image.format == "JPEG" and image.size == (400, 144)
        back = np.asarray(image.convert("RGB")).astype(int)
    assert np.abs(back - rgb).mean() < 2.0
    assert back[7, 150, 0] > 180 and back[7, 150, 1] < 60  # the caption is still red
    with pytest.raises(ValueError, match="JPEG"):
        save_cam_grid(rgb, tmp_path / "grid.png")


def test_every_image_a_shipped_card_shows_exists_and_is_bundled() -> None:
    bundled = {Path(src).resolve() for src, _dest in _bundle_rules().asset_datas(ROOT)}
    cards = sorted(MODELS.glob("*.md"))
    assert cards
    for card in cards:
        links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card.read_text(encoding="utf-8"))
        assert links, f"{card.name} shows no Grad-CAM grid"
        for link in links:
            image = (card.parent / link).resolve()
            assert image.is_file(), f"{card.name} links {link}, which does not exist"
            assert image.suffix == ".jpg" and image.read_bytes()[:3] == b"\xff\xd8\xff", link
            assert image in bundled, f"{link} is not bundled"
    assert not list(MODELS.glob("*-gradcam.png")), "grids ship as JPEG (training/report.save_cam_grid)"


def test_latency_records_how_busy_the_machine_was() -> None:
    """A card's latency from a shared machine comes with the CPU share other processes took meanwhile."""
    import os
    import subprocess

    from training.report import OtherProcessLoad, _load_note

    quiet = OtherProcessLoad()
    busy = OtherProcessLoad()
    spin = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 1.5: pass"
    subprocess.run([sys.executable, "-c", spin], check=True)
    share = busy.share()
    assert share is not None and share >= 0.5 / (os.cpu_count() or 1)  # one spinning process: ~1 core of n
    assert quiet.share() is not None
    assert _load_note({"other_processes_cpu_share": 0.031}) == "; other processes used 3% of its CPU time meanwhile"
    assert _load_note({}) == ", other load not recorded"
