"""What goes into the frozen HemaLens bundle and what is kept out (used by build.spec and the tests).

The rules live here rather than inside build.spec so that they can be unit-tested without running
PyInstaller. The guiding idea: the app needs Qt Core/Gui/Widgets (plus whatever ``gui/`` imports),
ONNX Runtime, NumPy, OpenCV, Pillow and the bundled models; everything the development
environment holds for exporting and training (PyTorch, TensorFlow, the ONNX exporters) and every
Qt module nobody imports would only make the download bigger and the start slower.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable
from pathlib import Path

# Project packages that never ship: they need PyTorch or are development-only.
PROJECT_EXCLUDES = ("training", "tests", "bench")

# The app's "Make Grad-CAM ready" offer (gui/augment_offer.py) runs export.augment, which needs only
# onnx, NumPy and ONNX Runtime: those export modules ship. The framework exporters (PyTorch, Keras/
# TensorFlow) and the hemalens-export CLI stay out. Every module in export/ must be in one of the two
# lists (a test checks it), so a new exporter module cannot slip into the bundle unnoticed.
EXPORT_MODULES_FOR_APP = ("export", "export.augment", "export.errors", "export.gradcam_graph",
                          "export.modelfile", "export.one_score", "export.onnx_tools", "export.report",
                          "export.verify")  # fmt: skip
EXPORT_EXCLUDES = ("export.pytorch", "export.keras", "export.source_check", "export.cli", "export.reference")

# Third-party packages the app never imports (they are in the dev environment for export/training).
THIRD_PARTY_EXCLUDES = (
    "torch",
    "torchvision",
    "tensorflow",
    "tensorboard",
    "keras",
    "tf_keras",
    "tf2onnx",
    "onnxscript",
    "onnx_ir",
    "jax",
    "jaxlib",
    "scipy",
    "pandas",
    "matplotlib",
    "sympy",
    "IPython",
    "jupyter",
    "notebook",
    "pytest",
    "_pytest",
    "pytestqt",
    "hypothesis",
    "ruff",
    "importlinter",
    "grimp",
    "setuptools",
    "pkg_resources",
    "requests",  # only onnx.hub (model downloads, never used) reaches for the network stack
    "urllib3",
    "charset_normalizer",
    "idna",
    "certifi",
    "PIL._avif",  # AVIF is not an image type HemaLens opens; its codec is 5 MB
    "PIL.AvifImagePlugin",
    "PIL._imagingtk",
    "PIL.ImageTk",
    "numpy.f2py",  # the Fortran wrapper generator (numpy only reaches it through np.f2py); 0.24 MB
    "pydoc_data",  # the text of help("topics") in an interactive interpreter; 0.14 MB
    "ssl",  # nothing connects anywhere (no downloads at run time); _hashlib stays: it makes sha256 6x faster
    "_ssl",
    "readline",
    "tkinter",
    "_tkinter",
    "PyQt5",
    "PyQt6",
    "PySide2",
)

# Qt modules that are always needed by a Widgets app.
QT_BASE_MODULES = frozenset({"QtCore", "QtGui", "QtWidgets"})

# Heavy or irrelevant PySide6 modules. Each is excluded unless ``gui/`` imports it (or a module that
# needs it): a GUI change that starts using one of them keeps working without editing this file.
QT_UNUSED_CANDIDATES = (
    "Qt3DAnimation", "Qt3DCore", "Qt3DExtras", "Qt3DInput", "Qt3DLogic", "Qt3DRender",
    "QtBluetooth", "QtCanvasPainter", "QtCharts", "QtDataVisualization", "QtDesigner",
    "QtGraphs", "QtGraphsWidgets", "QtHelp", "QtHttpServer", "QtLabsStyleKit", "QtLocation",
    "QtMultimedia", "QtMultimediaWidgets", "QtNetworkAuth", "QtNfc", "QtPdf", "QtPdfWidgets",
    "QtPositioning", "QtQml", "QtQmlFeatures", "QtQuick", "QtQuick3D", "QtQuickControls2",
    "QtQuickTest", "QtQuickWidgets", "QtRemoteObjects", "QtScxml", "QtSensors", "QtSerialBus",
    "QtSerialPort", "QtSpatialAudio", "QtSql", "QtStateMachine", "QtTest", "QtTextToSpeech",
    "QtUiTools", "QtWebChannel", "QtWebEngineCore", "QtWebEngineQuick", "QtWebEngineWidgets",
    "QtWebSockets", "QtWebView", "QtAxContainer", "QtNetwork",
    "QtDBus",  # only the Python binding: libQt6DBus itself stays, QtGui links it
)  # fmt: skip

# Candidate modules that other candidates need at import time (kept together when one is used).
QT_CANDIDATE_DEPENDENCIES: dict[str, frozenset[str]] = {
    "Qt3DExtras": frozenset({"Qt3DCore", "Qt3DRender", "Qt3DInput", "Qt3DLogic"}),
    "Qt3DRender": frozenset({"Qt3DCore"}),
    "Qt3DInput": frozenset({"Qt3DCore"}),
    "Qt3DLogic": frozenset({"Qt3DCore"}),
    "Qt3DAnimation": frozenset({"Qt3DCore", "Qt3DRender"}),
    "QtGraphsWidgets": frozenset({"QtGraphs", "QtQuickWidgets", "QtQuick", "QtQml"}),
    "QtGraphs": frozenset({"QtQuick", "QtQml"}),
    "QtMultimediaWidgets": frozenset({"QtMultimedia"}),
    "QtPdfWidgets": frozenset({"QtPdf"}),
    "QtQuick": frozenset({"QtQml"}),
    "QtQuickWidgets": frozenset({"QtQuick", "QtQml"}),
    "QtQuickControls2": frozenset({"QtQuick", "QtQml"}),
    "QtQuick3D": frozenset({"QtQuick", "QtQml"}),
    "QtWebEngineWidgets": frozenset({"QtWebEngineCore", "QtWebChannel", "QtQuick", "QtQml"}),
    "QtWebEngineCore": frozenset({"QtWebChannel", "QtQuick", "QtQml"}),
    "QtLocation": frozenset({"QtPositioning", "QtQuick", "QtQml"}),
    "QtDataVisualization": frozenset({"QtQuick", "QtQml"}),
    "QtCharts": frozenset(),
}

# Qt plugins (by "<type>/<file stem>") that a desktop image viewer never loads. Anything not matched
# here is kept. Platform plugins: keep xcb, wayland, offscreen (used by --selftest), minimal.
_DROPPED_PLUGIN_PATTERNS = (
    r"^platforms/(lib)?q(eglfs|linuxfb|vnc|vkkhrdisplay|minimalegl|direct2d)\b",
    r"^platforminputcontexts/(lib)?qtvirtualkeyboard",
    # The GTK theme plugin would drag the build machine's cairo/pango/glib into the bundle, next to
    # the user's own GTK: a version clash waiting to happen. Qt's own style and dialogs are used.
    r"^platformthemes/(lib)?qgtk3",
    r"^imageformats/(lib)?qpdf",
    r"^egldeviceintegrations/",
    r"^generic/",
    r"^qmltooling/",
    r"^designer/",
    r"^sqldrivers/",
    r"^multimedia/",
    r"^position/",
    r"^geoservices/",
    r"^sensors/",
    r"^canbus/",
    r"^texttospeech/",
    r"^renderers/",
    r"^renderplugins/",
    r"^sceneparsers/",
    r"^geometryloaders/",
    r"^assetimporters/",
    r"^scxmldatamodel/",
    r"^webview/",
    r"^networkinformation/",
    r"^tls/",
    r"^wayland-graphics-integration-server/",
)
_DROPPED_PLUGIN_RE = re.compile("|".join(_DROPPED_PLUGIN_PATTERNS))

# Qt shared libraries that only the dropped plugins or excluded modules pull in.
_DROPPED_QT_LIB_RE = re.compile(
    r"(^|[/\\])(lib)?Qt6(Pdf|Quick|Qml|VirtualKeyboard|WebEngine|3D|Multimedia|Charts|DataVisualization|"
    r"Graphs|Location|Network|Positioning|Sensors|Designer|Help|Bluetooth|Nfc|SerialPort|SerialBus|RemoteObjects|"
    r"Scxml|StateMachine|TextToSpeech|SpatialAudio|WebSockets|WebChannel|HttpServer|NetworkAuth|Lottie|"
    r"ShaderTools|Test|Sql|EglFS|EglFsKms|FFmpeg|Labs|CanvasPainter|WebView)"
)

# Libraries the Linux package takes from the system instead of bundling, each with the package in
# build_deb.SYSTEM_DEPENDS that brings it (a test checks). The PySide6 wheel does not carry libdbus
# either, so `python -m hemalens` already uses the system's; the bundled copy only dragged in the
# build machine's libsystemd and what that links (2.9 MB together). Those come with libdbus-1-3
# (Depends: libsystemd0, which depends on the rest), and nothing else in the bundle links them
# (readelf -d). They are listed one by one because PyInstaller reports dependencies transitively
# (ldd), so prune_orphan_system_libs sees Qt "needing" libsystemd and would keep it.
SYSTEM_PROVIDED_LIBS: dict[str, str] = {
    "libdbus-1.so.3": "libdbus-1-3",
    "libsystemd.so.0": "libdbus-1-3",
    "libgcrypt.so.20": "libdbus-1-3",
    "libgpg-error.so.0": "libdbus-1-3",
    "liblz4.so.1": "libdbus-1-3",
    "libcap.so.2": "libdbus-1-3",
}

# Icon formats only the build reads (build.spec embeds the .ico in HemaLens.exe and the .icns in
# HemaLens.app from the source tree); at run time the app loads hemalens.svg (gui/app.py).
BUILD_ONLY_ICON_SUFFIXES = frozenset({".ico", ".icns"})

# Qt's own translations (buttons of standard dialogs). HemaLens's interface is English only; shipping
# them would give German "Abbrechen" buttons in an English window, so none are kept.
KEPT_TRANSLATION_LANGS: tuple[str, ...] = ()


def qt_modules_imported(gui_dir: Path) -> set[str]:
    """Return the PySide6 module names (e.g. ``QtSvg``) that any file under ``gui_dir`` imports."""
    found: set[str] = set()
    if not gui_dir.is_dir():
        return found
    for source in sorted(gui_dir.rglob("*.py")):
        try:
            tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        except (SyntaxError, UnicodeDecodeError):
            continue  # a half-written file during parallel development; the build itself will complain
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                if parts[0] == "PySide6":
                    if len(parts) > 1:
                        found.add(parts[1])
                    else:
                        found.update(alias.name for alias in node.names if alias.name.startswith("Qt"))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] == "PySide6" and len(parts) > 1:
                        found.add(parts[1])
    return found


def qt_modules_needed(gui_dir: Path) -> set[str]:
    """The base modules plus everything gui/ imports, closed over candidate-to-candidate dependencies."""
    needed = set(QT_BASE_MODULES) | qt_modules_imported(gui_dir)
    pending = list(needed)
    while pending:
        for dep in QT_CANDIDATE_DEPENDENCIES.get(pending.pop(), frozenset()):
            if dep not in needed:
                needed.add(dep)
                pending.append(dep)
    return needed


def module_excludes(gui_dir: Path) -> list[str]:
    """The ``excludes=`` list for PyInstaller's Analysis."""
    needed = qt_modules_needed(gui_dir)
    qt = [f"PySide6.{name}" for name in QT_UNUSED_CANDIDATES if name not in needed]
    return [*PROJECT_EXCLUDES, *EXPORT_EXCLUDES, *THIRD_PARTY_EXCLUDES, *qt]


def _plugin_relpath(dest: str) -> str | None:
    """``PySide6/Qt/plugins/platforms/libqxcb.so`` -> ``platforms/libqxcb.so`` (None if not a plugin)."""
    norm = dest.replace("\\", "/")
    marker = "/plugins/"
    if "PySide6/" not in norm or marker not in norm:
        return None
    return norm.split(marker, 1)[1]


def keep_bundle_file(dest: str, gui_dir: Path | None = None) -> bool:
    """Decide whether one collected file (by its destination path in the bundle) is shipped."""
    norm = dest.replace("\\", "/")
    plugin = _plugin_relpath(norm)
    if plugin is not None:
        return _DROPPED_PLUGIN_RE.search(plugin) is None
    if norm in SYSTEM_PROVIDED_LIBS:  # top level: where PyInstaller puts the libraries it found on the system
        return False
    needed = qt_modules_needed(gui_dir) if gui_dir is not None else set(QT_BASE_MODULES)
    name = norm.rsplit("/", 1)[-1]
    match = _DROPPED_QT_LIB_RE.search(name)
    if match and not any(name.startswith(prefix) for prefix in _lib_prefixes(needed)):
        return False
    if "/translations/" in norm and norm.endswith(".qm"):
        stem = name[: -len(".qm")]
        lang = stem.split("_", 1)[1] if "_" in stem else ""
        return lang.split("_")[0] in KEPT_TRANSLATION_LANGS
    return True


def _lib_prefixes(needed: Iterable[str]) -> list[str]:
    """Library file-name prefixes for the Qt modules the app does use (so they are never dropped)."""
    prefixes = []
    for module in needed:
        stem = module[2:]  # "QtPdf" -> "Pdf"
        prefixes += [f"libQt6{stem}.", f"Qt6{stem}.", f"libQt6{stem}Widgets.", f"Qt6{stem}Widgets."]
    return prefixes


def filter_toc(toc: Iterable[tuple], gui_dir: Path | None = None) -> list[tuple]:
    """Filter a PyInstaller TOC (``(dest, source, typecode)`` entries) with :func:`keep_bundle_file`."""
    return [entry for entry in toc if keep_bundle_file(entry[0], gui_dir)]


def asset_datas(root: Path) -> list[tuple[str, str]]:
    """``datas=`` entries: bundled models, model cards, their Grad-CAM grids and the run-time icons (dest mirrors
    the source tree)."""
    datas: list[tuple[str, str]] = []
    skipped = {".py", ".pyc", *BUILD_ONLY_ICON_SUFFIXES}
    for sub in ("assets/models", "assets/icons", "gui/resources"):
        folder = root / sub
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in skipped:
                datas.append((str(path), str(path.parent.relative_to(root))))
    return datas


def _is_python_extension(dest: str) -> bool:
    name = dest.replace("\\", "/").rsplit("/", 1)[-1]
    return name.endswith((".pyd", ".abi3.so")) or (".cpython-" in name and name.endswith(".so"))


def prune_orphan_system_libs(
    toc: Iterable[tuple], get_imports: Callable[[str], Iterable[str] | None], site_dirs: Iterable[str]
) -> list[tuple]:
    """Drop shared libraries from the build machine's system that nothing left in the bundle needs.

    PyInstaller resolves dependencies before :func:`filter_toc` removes plugins, so the libraries
    only a dropped plugin linked against (e.g. cairo and pango for the GTK theme) would stay behind.
    Only libraries from outside ``site_dirs`` are candidates: those entered the bundle solely as a
    dependency, whereas a package's own libraries may be loaded at run time with ``dlopen``.
    ``get_imports`` returns None when it cannot tell; then nothing is pruned.
    """
    entries = list(toc)
    site = tuple(str(Path(d)) for d in site_dirs)
    needs: dict[str, set[str]] = {}
    for entry in entries:
        imported = get_imports(entry[1])
        if imported is None:  # a binary whose dependencies are unknown: pruning could break it, so don't
            return entries
        needs[entry[0]] = {Path(n).name for n in imported}
    while True:
        needed = set().union(*(needs[e[0]] for e in entries)) if entries else set()
        orphans = [
            e
            for e in entries
            if not str(Path(e[1]).resolve()).startswith(site)
            and not str(e[1]).startswith(site)
            and not _is_python_extension(e[0])
            and not Path(e[0]).name.startswith("libpython")
            and Path(e[0]).name not in needed
        ]
        if not orphans:
            return entries
        dropped = {e[0] for e in orphans}
        entries = [e for e in entries if e[0] not in dropped]


def strip_debug_info(toc: Iterable[tuple], workdir: Path, strip_tool: str = "strip") -> list[tuple]:
    """Point Python's own binaries (libpython, lib-dynload) at copies without debug sections.

    pyenv-style interpreters ship them with full debug info (libpython 23 MB instead of 6 MB).
    Only ``--strip-debug`` is applied and only to these files: a full ``strip`` of every binary
    (PyInstaller's ``strip=True``) breaks NumPy's OpenBLAS. Entries whose copy fails stay as they are.
    """
    import shutil
    import subprocess

    if shutil.which(strip_tool) is None:
        return list(toc)
    workdir.mkdir(parents=True, exist_ok=True)
    result = []
    for dest, source, typecode in toc:
        norm = dest.replace("\\", "/")
        if norm.startswith("libpython") or "/lib-dynload/" in f"/{norm}":
            target = workdir / norm
            target.parent.mkdir(parents=True, exist_ok=True)
            done = subprocess.run([strip_tool, "--strip-debug", "-o", str(target), source], capture_output=True)
            if done.returncode == 0 and target.is_file():
                result.append((dest, str(target), typecode))
                continue
        result.append((dest, source, typecode))
    return result
