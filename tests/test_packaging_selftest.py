"""`hemalens --selftest` (gui/selftest.py): passes on working models, fails loudly on broken ones."""

from __future__ import annotations

import ctypes
import io
import sys
from pathlib import Path

import numpy as np
import pytest

from gui.selftest import SELFTEST_IMAGE_SIZE, run_selftest, synthetic_smear
from hemalens.cli import main
from tests.model_factory import make_classifier


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    make_classifier(folder / "three.onnx", num_classes=3, labels=["Blast", "Lymphocyte", "Neutrophil"])
    make_classifier(folder / "four_nhwc.onnx", num_classes=4, layout="NHWC", size=40, seed=3)
    return folder


def test_synthetic_smear_is_deterministic_and_not_flat() -> None:
    first, second = synthetic_smear(), synthetic_smear()
    assert first.shape == (*SELFTEST_IMAGE_SIZE, 3) and first.dtype == np.uint8 and first.flags.c_contiguous
    assert np.array_equal(first, second)
    assert first.std() > 20  # cells on a background, not a blank frame


def test_selftest_passes_and_reports_every_model(models_dir: Path, qapp: object) -> None:
    out = io.StringIO()
    assert run_selftest(models_dir, out) == 0
    text = out.getvalue()
    assert "SELFTEST PASSED: 2 model(s)" in text
    for name in ("ONNX Runtime", "NumPy", "OpenCV", "PySide6 / Qt", "HemaLens"):
        assert name in text
    assert "ok    Qt: platform" in text and "gui modules, export.augment and inference.cli_evaluate import" in text
    assert "ok    images: PNG, JPEG, TIFF, BMP, WebP, GIF, 12-bit PNG, float TIFF written and read back" in text
    model_lines = [line for line in text.splitlines() if line.strip().startswith("ok    model")]
    assert len(model_lines) == 2
    height, width = SELFTEST_IMAGE_SIZE
    assert all(f"heatmap {width}x{height}" in line and "predict" in line for line in model_lines)
    assert any("3 classes" in line for line in model_lines) and any("4 classes" in line for line in model_lines)


def test_selftest_fails_on_a_broken_model_but_still_checks_the_rest(models_dir: Path, qapp: object) -> None:
    (models_dir / "broken.onnx").write_bytes(b"this is not an ONNX file")
    out = io.StringIO()
    assert run_selftest(models_dir, out) == 1
    text = out.getvalue()
    assert "FAIL  model broken (broken.onnx)" in text
    assert sum(line.strip().startswith("ok    model") for line in text.splitlines()) == 2
    assert "SELFTEST FAILED: 1 problem(s), 3 model(s)" in text


def test_selftest_fails_when_there_are_no_models(tmp_path: Path, qapp: object) -> None:
    out = io.StringIO()
    assert run_selftest(tmp_path, out) == 1
    assert "no .onnx files" in out.getvalue()


def test_cli_selftest_uses_the_bundled_models_folder(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], qapp: object
) -> None:
    monkeypatch.setenv("HEMALENS_BUNDLED_MODELS_DIR", str(models_dir))
    assert main(["--selftest"]) == 0
    assert "SELFTEST PASSED: 2 model(s)" in capsys.readouterr().out


def test_cli_selftest_fails_with_an_empty_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], qapp: object
) -> None:
    monkeypatch.setenv("HEMALENS_BUNDLED_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("HEMALENS_USER_MODELS_DIR", str(tmp_path / "user"))
    assert main(["--selftest"]) == 1
    assert "no bundled models" in capsys.readouterr().out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the window-system plugin check is Linux-only")
def test_selftest_warns_but_passes_when_a_window_system_library_is_missing(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch, qapp: object
) -> None:
    real_cdll = ctypes.CDLL

    def cdll(name: str, *args: object, **kwargs: object) -> object:
        if name.endswith("libqxcb.so"):
            raise OSError("libxcb-cursor.so.0: cannot open shared object file: No such file or directory")
        if name.endswith("libqwayland.so"):  # loads here whatever this machine's own libraries are
            return object()
        return real_cdll(name, *args, **kwargs)

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    out = io.StringIO()
    assert run_selftest(models_dir, out) == 0
    text = out.getvalue()
    assert "warn  libqxcb.so cannot load (libxcb-cursor.so.0" in text
    assert "window system plugins load: libqwayland.so" in text


def test_selftest_fails_when_a_file_format_does_not_decode(models_dir: Path, qapp: object, monkeypatch) -> None:
    """A bundle without one of Pillow's plugins passed every model check (they use an array) and then failed on
    the lab's files; the self-test now reads each kind of file."""
    from PIL import Image

    real_open = Image.open

    def no_webp(path, *args, **kwargs):
        if str(path).endswith(".webp"):
            raise Image.UnidentifiedImageError(f"cannot identify image file {path!r}")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", no_webp)
    out = io.StringIO()
    assert run_selftest(models_dir, out) == 1
    assert "FAIL  images: ImageLoadError" in out.getvalue() and "s.webp" in out.getvalue()
