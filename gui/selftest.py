"""`hemalens --selftest`: prove that an installed (possibly frozen) HemaLens can do its job.

It loads every bundled model, classifies a generated smear-like image, computes the heatmap and
renders it through Qt on the offscreen platform, then prints versions and timings. It needs no
display and no data files, so it runs on a build machine, in CI and on a technician's workstation
("does the installed app work?"). Exit status 0 means every check passed, 1 that one failed.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import numpy as np

# Windows: onnxruntime must initialise its DLLs before Qt loads its older MSVC runtime.
import onnxruntime  # noqa: F401  (import order matters)

from hemalens import __version__

SELFTEST_IMAGE_SIZE = (300, 400)  # (height, width); not square, so heatmap resizing is exercised


def synthetic_smear(height: int = SELFTEST_IMAGE_SIZE[0], width: int = SELFTEST_IMAGE_SIZE[1]) -> np.ndarray:
    """A deterministic blood-smear-like RGB image: pink background, red discs, a few purple nuclei."""
    rng = np.random.default_rng(20261123)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.empty((height, width, 3), dtype=np.float32)
    image[:] = (232.0, 208.0, 212.0)
    radius = min(height, width) / 14.0
    for _ in range(18):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        dist = np.hypot(yy - cy, xx - cx)
        disc = dist < radius
        image[disc] = (205.0, 110.0, 120.0)
        image[disc & (dist < radius * 0.45)] = (220.0, 150.0, 155.0)  # pale centre of a red cell
    for _ in range(3):
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        image[np.hypot(yy - cy, xx - cx) < radius * 1.3] = (95.0, 55.0, 140.0)
    image += rng.normal(0.0, 4.0, image.shape).astype(np.float32)
    return np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))


class _Report:
    """Collects pass/fail lines so that one failing check never hides the others."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.failures: list[str] = []

    def line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def ok(self, text: str) -> None:
        self.line(f"  ok    {text}")

    def fail(self, text: str) -> None:
        self.failures.append(text)
        self.line(f"  FAIL  {text}")

    def warn(self, text: str) -> None:
        self.line(f"  warn  {text}")

    def check(self, label: str, action: Callable[[], str]) -> None:
        """Run ``action``; its return value is the detail shown on success."""
        try:
            self.ok(f"{label}: {action()}")
        except Exception as exc:  # noqa: BLE001  (a self-test reports every failure, it never crashes)
            self.fail(f"{label}: {type(exc).__name__}: {exc}")


def _versions() -> list[tuple[str, str]]:
    import cv2
    import PIL
    import PySide6
    from PySide6 import QtCore

    return [
        ("HemaLens", __version__),
        ("Python", f"{platform.python_version()} ({platform.system()} {platform.machine()})"),
        ("frozen", f"yes ({Path(sys.executable).parent})" if getattr(sys, "frozen", False) else "no"),
        ("ONNX Runtime", f"{onnxruntime.__version__} providers={','.join(onnxruntime.get_available_providers())}"),
        ("NumPy", np.__version__),
        ("OpenCV", cv2.__version__),
        ("Pillow", PIL.__version__),
        ("PySide6 / Qt", f"{PySide6.__version__} / {QtCore.qVersion()}"),
    ]


def _model_paths(models_dir: Path | None) -> list[tuple[str, Path]]:
    """(display name, path) of the models to test: the bundled ones, or every .onnx in models_dir."""
    if models_dir is not None:
        return [(path.stem, path) for path in sorted(Path(models_dir).glob("*.onnx"))]
    from inference.registry import bundled_models_dir, list_models

    entries = [entry for entry in list_models() if entry.bundled]
    if not entries:
        raise FileNotFoundError(f"no bundled models in {bundled_models_dir()}")
    return [(entry.name, Path(entry.path)) for entry in entries]


def _check_model(name: str, path: Path, rgb: np.ndarray, report: _Report) -> None:
    from inference.overlay import render_overlay
    from inference.session import ModelSession

    try:
        start = time.perf_counter()
        session = ModelSession.load(path)
        load_ms = (time.perf_counter() - start) * 1000
        session.predict(rgb)  # warm-up: the first run pays for ONNX Runtime's lazy initialisation
        start = time.perf_counter()
        prediction = session.predict(rgb)
        predict_ms = (time.perf_counter() - start) * 1000
        probs = np.asarray(prediction.probabilities, dtype=np.float64)
        if probs.shape != (len(prediction.labels),) or not np.all(np.isfinite(probs)):
            raise ValueError(f"probabilities {probs.shape} do not match {len(prediction.labels)} labels")
        if abs(float(probs.sum()) - 1.0) > 1e-3:
            raise ValueError(f"probabilities sum to {probs.sum():.4f}, not 1")
        if session.cam_method is None:
            raise ValueError("the model offers no heatmap (bundled models must)")
        heatmap = prediction.heatmap()
        if heatmap is None:
            raise ValueError(f"no heatmap although cam_method is {session.cam_method!r}")
        if heatmap.shape != rgb.shape[:2] or not np.all(np.isfinite(heatmap)):
            raise ValueError(f"heatmap shape {heatmap.shape} is not the image's {rgb.shape[:2]}")
        if float(heatmap.min()) < 0.0 or float(heatmap.max()) > 1.0 + 1e-6:
            raise ValueError(f"heatmap values outside [0, 1]: {heatmap.min():.3f}..{heatmap.max():.3f}")
        overlay = render_overlay(rgb, heatmap)
        if overlay.shape != rgb.shape or overlay.dtype != np.uint8:
            raise ValueError(f"overlay has shape {overlay.shape} {overlay.dtype}")
    except Exception as exc:  # noqa: BLE001
        report.fail(f"model {name} ({path.name}): {type(exc).__name__}: {exc}")
        return
    report.ok(
        f"model {name} ({session.spec.id or path.name}, {len(prediction.labels)} classes): "
        f"load {load_ms:.0f} ms, predict {predict_ms:.0f} ms, "
        f"top {prediction.top_label!r} {prediction.top_probability:.2f}, "
        f"heatmap {heatmap.shape[1]}x{heatmap.shape[0]} ({session.cam_method}), sha256 {session.sha256[:12]}"
    )


def _check_qt(rgb: np.ndarray) -> str:
    """Start Qt on the offscreen platform and push an image through it (plugins and libraries load)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "hemalens"])
    height, width = rgb.shape[:2]
    image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise RuntimeError("Qt could not encode a PNG")
    buffer.close()
    decoded = QImage.fromData(data)
    if decoded.width() != width or decoded.height() != height:
        raise RuntimeError("Qt did not read its own PNG back")
    return f"platform {app.platformName()!r}, PNG round trip {width}x{height} ({data.size()} bytes)"


def _windowing_problems() -> tuple[list[str], list[str]]:
    """Linux: can Qt's window-system plugins load here? Returns (loadable, problems).

    The self-test itself runs offscreen, so a missing system library (``libxcb-cursor0`` is the usual
    one) would otherwise only show up when a technician double-clicks the app. This is a warning,
    not a failure: a build or CI machine without a display may lack these libraries on purpose.
    """
    if not sys.platform.startswith("linux"):
        return [], []
    import ctypes

    from PySide6.QtCore import QLibraryInfo

    folder = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
    loadable, problems = [], []
    for name in ("libqxcb.so", "libqwayland.so"):
        try:
            ctypes.CDLL(str(folder / name), mode=os.RTLD_LAZY | os.RTLD_LOCAL)
        except OSError as exc:
            problems.append(f"{name} cannot load ({exc})")
        else:
            loadable.append(name)
    return loadable, problems


def _check_app_modules() -> str:
    """Every module of the desktop app imports, and so do the augmenter and the evaluation it offers.

    The app imports some of them lazily (dialogs, reports, export.augment), so a bundle that lacks
    one would only fail when a technician clicks the feature.
    """
    import importlib
    import pkgutil

    import gui

    names = sorted(info.name for info in pkgutil.iter_modules(gui.__path__, "gui."))
    if "gui.app" not in names:
        raise ModuleNotFoundError(f"gui.app is not among the app's modules ({len(names)} found)")
    lazy = ["export.augment", "inference.cli_evaluate"]  # Make Grad-CAM ready, Check on labelled images
    for name in [*names, *lazy]:
        importlib.import_module(name)
    return f"{len(names)} gui modules, {' and '.join(lazy)} import"


def _check_image_formats(rgb: np.ndarray) -> str:
    """Every kind of file the app reads decodes to the same picture in this build: a bundle missing one of Pillow's
    plugins or OpenCV's codecs would pass the model checks (which use an array) and fail on a lab's files."""
    import tempfile

    import cv2
    from PIL import Image

    from inference.images import load_image

    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    camera12 = (bgr.astype(np.uint32) * 4095 // 255).astype(np.uint16)  # a 12-bit camera's file
    writers: dict[str, tuple[str, Callable[[Path], object]]] = {  # kind: (file name, how to write it)
        "PNG": ("s.png", lambda path: Image.fromarray(rgb).save(path)),
        "JPEG": ("s.jpg", lambda path: Image.fromarray(rgb).save(path, quality=95)),
        "TIFF": ("s.tif", lambda path: Image.fromarray(rgb).save(path)),
        "BMP": ("s.bmp", lambda path: Image.fromarray(rgb).save(path)),
        "WebP": ("s.webp", lambda path: Image.fromarray(rgb).save(path, quality=95)),
        "GIF": ("s.gif", lambda path: Image.fromarray(rgb).save(path)),
        "12-bit PNG": ("s12.png", lambda path: cv2.imwrite(str(path), camera12)),
        "float TIFF": ("f32.tif", lambda path: cv2.imwrite(str(path), (bgr / 255.0).astype(np.float32))),
    }
    lossy = {"JPEG", "WebP", "GIF"}  # GIF: 256 colours
    with tempfile.TemporaryDirectory(prefix="hemalens-selftest-") as tmp:
        for kind, (name, write) in writers.items():
            path = Path(tmp) / name
            write(path)
            decoded = load_image(path).rgb
            if decoded.shape != rgb.shape:
                raise RuntimeError(f"{kind} decoded as {decoded.shape}, not {rgb.shape}")
            error = float(np.abs(decoded.astype(np.int16) - rgb).mean())
            if error > (8.0 if kind in lossy else 0.5):
                raise RuntimeError(f"{kind} decoded with a mean error of {error:.1f} grey levels")
    return f"{', '.join(writers)} written and read back"


def run_selftest(models_dir: Path | None = None, stream: TextIO | None = None) -> int:
    """Run every check and print a report; return 0 when all passed, 1 otherwise.

    ``models_dir`` replaces the bundled models with every ``*.onnx`` in that folder (for tests).
    """
    out = stream if stream is not None else sys.stdout
    if out is None:  # a windowed Windows build has no console: write nowhere rather than crash
        out = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    report = _Report(out)
    started = time.perf_counter()
    report.line(f"HemaLens {__version__} self-test")
    try:
        for label, value in _versions():
            report.line(f"  {label:<13} {value}")
    except Exception as exc:  # noqa: BLE001
        report.fail(f"versions: {type(exc).__name__}: {exc}")
    rgb = synthetic_smear()
    report.check("Qt", lambda: _check_qt(rgb))
    try:
        loadable, problems = _windowing_problems()
        if loadable:
            report.ok(f"window system plugins load: {', '.join(loadable)}")
        for problem in problems:
            report.warn(f"{problem}: a real window may not open; install the missing system library")
    except Exception as exc:  # noqa: BLE001
        report.warn(f"window system plugins not checked: {type(exc).__name__}: {exc}")
    report.check("app", _check_app_modules)
    report.check("images", lambda: _check_image_formats(rgb))
    try:
        models = _model_paths(models_dir)
    except Exception as exc:  # noqa: BLE001
        report.fail(f"models: {type(exc).__name__}: {exc}")
        models = []
    if models_dir is not None and not models:
        report.fail(f"models: no .onnx files in {models_dir}")
    for name, path in models:
        _check_model(name, path, rgb, report)
    elapsed = time.perf_counter() - started
    if report.failures:
        report.line(f"SELFTEST FAILED: {len(report.failures)} problem(s), {len(models)} model(s), {elapsed:.1f} s")
        return 1
    report.line(f"SELFTEST PASSED: {len(models)} model(s), {elapsed:.1f} s")
    return 0
