"""Packaging: bundle rules, the frozen entry, desktop entry, icons, the .deb builder and checker.

These tests are fast (no PyInstaller run). The full build — dist, frozen self-test, .deb, dpkg -x
and self-test from the unpacked package — runs in CI as ``packaging/linux/build_linux.sh``.
"""

from __future__ import annotations

import ast
import configparser
import mimetypes
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from inference.images import IMAGE_EXTENSIONS
from tests.packaging_scripts import load_script

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb exists on Debian/Ubuntu only")


rules = load_script("bundle_rules", PACKAGING / "bundle_rules.py")
build_deb = load_script("build_deb", PACKAGING / "linux" / "build_deb.py")
check_deb = load_script("check_deb", PACKAGING / "linux" / "check_deb.py")
report = load_script("hemalens_packaging_report", PACKAGING / "linux" / "report.py")


# --- bundle rules -------------------------------------------------------------------------------


def test_excludes_cover_the_export_and_training_toolchain() -> None:
    excludes = set(rules.module_excludes(ROOT / "gui"))
    for name in ("torch", "tensorflow", "keras", "tf2onnx", "onnxscript", "training", "tests", "bench",
                 "export.pytorch", "export.keras", "export.cli"):
        assert name in excludes
    assert not set(rules.EXPORT_MODULES_FOR_APP) & excludes
    for qt in ("QtWebEngineCore", "QtQml", "QtQuick", "Qt3DCore", "QtMultimedia", "QtPdf", "QtNetwork"):
        assert f"PySide6.{qt}" in excludes
    # The runtime itself must never be excluded.
    for name in ("onnxruntime", "onnx", "numpy", "cv2", "PIL", "PySide6", "platformdirs", "inference", "gui"):
        assert name not in excludes


FRAMEWORKS = {"torch", "torchvision", "tensorflow", "keras", "tf_keras", "tf2onnx", "onnxscript"}


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_every_export_module_is_either_shipped_or_kept_out_and_shipped_ones_need_no_framework() -> None:
    modules = {"export" if p.stem == "__init__" else f"export.{p.stem}" for p in (ROOT / "export").glob("*.py")}
    unclassified = modules - set(rules.EXPORT_MODULES_FOR_APP) - set(rules.EXPORT_EXCLUDES)
    assert not unclassified, f"add {sorted(unclassified)} to EXPORT_MODULES_FOR_APP or EXPORT_EXCLUDES in bundle_rules"
    for module in rules.EXPORT_MODULES_FOR_APP:
        path = ROOT / "export" / ("__init__.py" if module == "export" else f"{module.split('.')[1]}.py")
        imported = _imported_modules(path)
        assert not {m.split(".")[0] for m in imported} & FRAMEWORKS, f"{module} imports a training framework"
        assert not imported & set(rules.EXPORT_EXCLUDES), f"{module} imports an excluded exporter"


def test_no_qt_module_the_gui_imports_is_excluded() -> None:
    imported = rules.qt_modules_imported(ROOT / "gui")
    assert {"QtCore", "QtGui", "QtWidgets"} <= imported  # the scan really sees the app's imports
    excludes = set(rules.module_excludes(ROOT / "gui"))
    assert not {f"PySide6.{m}" for m in imported} & excludes


def test_a_gui_that_starts_using_a_heavy_module_keeps_it_and_its_dependencies(tmp_path: Path) -> None:
    (tmp_path / "view.py").write_text("from PySide6.QtQuickWidgets import QQuickWidget\nimport PySide6.QtPdf\n")
    (tmp_path / "other.py").write_text("from PySide6 import QtCharts, QtCore\n")
    excludes = set(rules.module_excludes(tmp_path))
    for kept in ("QtQuickWidgets", "QtQuick", "QtQml", "QtPdf", "QtCharts"):
        assert f"PySide6.{kept}" not in excludes
    assert "PySide6.QtWebEngineCore" in excludes
    assert rules.keep_bundle_file("PySide6/Qt/lib/libQt6Pdf.so.6", tmp_path)
    assert not rules.keep_bundle_file("PySide6/Qt/lib/libQt6Pdf.so.6", ROOT / "gui")


@pytest.mark.parametrize(
    ("dest", "kept"),
    [
        ("PySide6/Qt/plugins/platforms/libqxcb.so", True),
        ("PySide6/Qt/plugins/platforms/libqwayland.so", True),
        ("PySide6/Qt/plugins/platforms/libqoffscreen.so", True),
        ("PySide6/Qt/plugins/platforms/libqvnc.so", False),
        ("PySide6/Qt/plugins/platforms/libqeglfs.so", False),
        ("PySide6\\plugins\\platforms\\qwindows.dll", True),
        ("PySide6/Qt/plugins/imageformats/libqjpeg.so", True),
        ("PySide6/Qt/plugins/imageformats/libqtiff.so", True),
        ("PySide6/Qt/plugins/imageformats/libqpdf.so", False),
        ("PySide6/Qt/plugins/platformthemes/libqgtk3.so", False),
        ("PySide6/Qt/plugins/platforminputcontexts/libqtvirtualkeyboardplugin.so", False),
        ("PySide6/Qt/lib/libQt6Quick.so.6", False),
        ("PySide6/Qt/lib/libQt6WebEngineCore.so.6", False),
        ("PySide6/Qt/lib/libQt6Widgets.so.6", True),
        ("PySide6/Qt/lib/libQt6Svg.so.6", True),
        ("PySide6/Qt/translations/qtbase_de.qm", False),
        ("PySide6/Qt/translations/qtbase_ja.qm", False),
        ("onnxruntime/capi/libonnxruntime_providers_shared.so", True),
        ("assets/models/all4.onnx", True),
        ("libdbus-1.so.3", False),  # the system's (SYSTEM_PROVIDED_LIBS)
        ("libzstd.so.1", True),
        ("PySide6/Qt/lib/libQt6DBus.so.6", True),  # QtGui links it; only the Python binding is dropped
    ],
)
def test_bundle_file_filter(dest: str, kept: bool) -> None:
    assert rules.keep_bundle_file(dest, ROOT / "gui") is kept


def test_orphaned_system_libraries_are_pruned_but_package_libraries_stay(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    toc = [
        ("PySide6/Qt/plugins/platforms/libqxcb.so", f"{site}/PySide6/Qt/plugins/platforms/libqxcb.so", "BINARY"),
        ("libxcb-icccm.so.4", "/usr/lib/libxcb-icccm.so.4", "BINARY"),
        ("libcairo.so.2", "/usr/lib/libcairo.so.2", "BINARY"),  # only the dropped GTK theme needed it
        ("libpixman-1.so.0", "/usr/lib/libpixman-1.so.0", "BINARY"),  # only cairo needed it
        ("onnxruntime/capi/libonnxruntime_providers_shared.so", f"{site}/ort/libprov.so", "BINARY"),  # dlopen'ed
        ("libpython3.11.so.1.0", "/opt/py/lib/libpython3.11.so.1.0", "BINARY"),
        ("cv2/cv2.abi3.so", f"{site}/cv2/cv2.abi3.so", "EXTENSION"),
    ]
    imports = {
        f"{site}/PySide6/Qt/plugins/platforms/libqxcb.so": ["libxcb-icccm.so.4"],
        "/usr/lib/libcairo.so.2": ["libpixman-1.so.0"],
    }
    kept = rules.prune_orphan_system_libs(toc, lambda path: imports.get(path, []), [str(site)])
    names = [entry[0] for entry in kept]
    assert "libcairo.so.2" not in names and "libpixman-1.so.0" not in names
    for name in ("libxcb-icccm.so.4", "onnxruntime/capi/libonnxruntime_providers_shared.so",
                 "libpython3.11.so.1.0", "cv2/cv2.abi3.so", "PySide6/Qt/plugins/platforms/libqxcb.so"):
        assert name in names
    # When one binary's dependencies cannot be read, nothing is pruned.
    unknown = rules.prune_orphan_system_libs(toc, lambda path: None if "libqxcb" in path else [], [str(site)])
    assert unknown == toc


def test_asset_datas_bundle_models_cards_and_icons(tmp_path: Path) -> None:
    (tmp_path / "assets" / "models").mkdir(parents=True)
    (tmp_path / "assets" / "models" / "m.onnx").write_bytes(b"x")
    (tmp_path / "assets" / "models" / "m.md").write_text("card")
    (tmp_path / "assets" / "models" / "__init__.py").write_text("")
    (tmp_path / "assets" / "icons").mkdir()
    (tmp_path / "assets" / "icons" / "hemalens.svg").write_text("<svg/>")
    datas = {(Path(src).name, dest) for src, dest in rules.asset_datas(tmp_path)}
    assert datas == {("m.onnx", "assets/models"), ("m.md", "assets/models"), ("hemalens.svg", "assets/icons")}


def test_icons_only_the_build_reads_are_not_bundled() -> None:
    datas = {Path(src).name for src, _dest in rules.asset_datas(ROOT)}
    assert "hemalens.svg" in datas and "hemalens-256.png" in datas  # what gui/app.py loads
    assert not {"hemalens.ico", "hemalens.icns"} & datas
    spec = (ROOT / "build.spec").read_text(encoding="utf-8")
    assert 'ICONS / "hemalens.ico"' in spec and 'ICONS / "hemalens.icns"' in spec  # read from the source tree


def test_system_provided_libraries_are_declared_by_the_package_and_not_bundled() -> None:
    for library, package in rules.SYSTEM_PROVIDED_LIBS.items():
        assert package in build_deb.SYSTEM_DEPENDS, f"{library} is left to the system but {package} is not a Depends"
        assert not rules.keep_bundle_file(library)
    assert {"libdbus-1.so.3", "libsystemd.so.0", "libgcrypt.so.20"} <= set(rules.SYSTEM_PROVIDED_LIBS)
    # Only the top-level (system) copies: a wheel's own library of the same name stays.
    assert rules.keep_bundle_file("somepackage.libs/libsystemd.so.0")
    excludes = set(rules.module_excludes(ROOT / "gui"))
    assert {"PySide6.QtDBus", "numpy.f2py", "pydoc_data"} <= excludes


def test_build_spec_keeps_strip_off_and_uses_the_rules() -> None:
    spec = (ROOT / "build.spec").read_text(encoding="utf-8")
    code = "\n".join(line.split("#", 1)[0] for line in spec.splitlines())
    assert "strip=True" not in code and "strip=False" in code
    assert "bundle_rules.module_excludes" in spec and "bundle_rules.filter_toc" in spec
    assert "packaging\" / \"entry.py\"" in spec


def _first_import_line(tree: ast.Module, module: str) -> int:
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        if any(name == module or name.startswith(module + ".") for name in names):
            return node.lineno
    raise AssertionError(f"{module} is not imported")


def test_frozen_entry_imports_onnxruntime_before_anything_that_loads_qt() -> None:
    tree = ast.parse((PACKAGING / "entry.py").read_text(encoding="utf-8"))
    assert _first_import_line(tree, "onnxruntime") < _first_import_line(tree, "hemalens")
    selftest = ast.parse((ROOT / "gui" / "selftest.py").read_text(encoding="utf-8"))
    assert _first_import_line(selftest, "onnxruntime") < _first_import_line(selftest, "PySide6")


# --- desktop entry and icons --------------------------------------------------------------------


def _desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read(PACKAGING / "linux" / "hemalens.desktop", encoding="utf-8")
    return parser["Desktop Entry"]


def test_desktop_entry_opens_every_image_type_the_app_reads() -> None:
    entry = _desktop_entry()
    assert entry["Type"] == "Application"
    assert entry["Exec"] == "hemalens %F"
    assert entry["Icon"] == "hemalens" and entry["Terminal"] == "false"
    declared = set(filter(None, entry["MimeType"].split(";")))
    extra = {".jfif": "image/jpeg", ".jpe": "image/jpeg", ".dib": "image/bmp", ".webp": "image/webp"}
    for ext in IMAGE_EXTENSIONS:
        mime = extra.get(ext) or mimetypes.types_map.get(ext)
        assert mime is not None, f"no MIME type known for {ext}"
        assert mime in declared, f"{ext} ({mime}) is not in the desktop entry's MimeType"
    if shutil.which("desktop-file-validate"):
        done = subprocess.run(["desktop-file-validate", str(PACKAGING / "linux" / "hemalens.desktop")],
                              capture_output=True, text=True)
        assert done.returncode == 0 and not done.stdout.strip(), done.stdout


def test_icons_exist_at_their_stated_sizes() -> None:
    icons = ROOT / "assets" / "icons"
    root = ET.parse(icons / "hemalens.svg").getroot()
    assert root.tag.endswith("svg") and root.get("viewBox") == "0 0 256 256"
    for size in build_deb.HICOLOR_SIZES:
        with Image.open(icons / f"hemalens-{size}.png") as png:
            assert png.size == (size, size) and png.mode == "RGBA"
            assert png.getchannel("A").getextrema() == (0, 255)  # rounded corners are transparent
    with Image.open(icons / "hemalens.ico") as ico:
        assert (256, 256) in ico.info["sizes"] and (16, 16) in ico.info["sizes"]
    assert (icons / "hemalens.icns").read_bytes()[:4] == b"icns"


# --- .deb ---------------------------------------------------------------------------------------


def test_control_file_fields() -> None:
    info = build_deb.DebInfo(version="1.2.3", arch="amd64", installed_kib=4096, min_glibc="2.36")
    text = build_deb.control_text(info)
    lines = text.splitlines()
    fields = dict(line.split(": ", 1) for line in lines if not line.startswith(" "))
    assert fields["Package"] == "hemalens" and fields["Version"] == "1.2.3" and fields["Architecture"] == "amd64"
    assert fields["Installed-Size"] == "4096"
    depends = [d.strip() for d in fields["Depends"].split(",")]
    assert depends[0] == "libc6 (>= 2.36)"
    for lib in ("libgl1", "libegl1", "libxcb1", "libfontconfig1", "fonts-dejavu-core", "libxcb-cursor0",
                "libxkbcommon-x11-0", "libxcb-icccm4", "libxcb-image0", "libxcb-keysyms1", "libxcb-randr0",
                "libxcb-render-util0", "libxcb-shape0", "libxcb-xinerama0", "libxcb-xkb1"):
        assert lib in depends
    description = lines[lines.index(next(x for x in lines if x.startswith("Description:"))) + 1:]
    assert description and all(line.startswith(" ") for line in description)
    assert text.endswith("\n")


def _fake_dist(root: Path, selftest_script: str, *, extra: str | None = None) -> Path:
    """A stand-in for the PyInstaller dist: an executable and one bundled model."""
    dist = root / "dist" / "hemalens"
    (dist / "_internal" / "assets" / "models").mkdir(parents=True)
    (dist / "_internal" / "assets" / "models" / "demo.onnx").write_bytes(b"\x08\x07")
    exe = dist / "hemalens"
    exe.write_text("#!/bin/sh\n" + selftest_script)
    exe.chmod(0o755)
    if extra:
        (dist / "_internal" / extra).parent.mkdir(parents=True, exist_ok=True)
        (dist / "_internal" / extra).write_text("x")
    return dist


@needs_dpkg
def test_deb_layout_control_and_unpacked_selftest(tmp_path: Path) -> None:
    # The fake executable behaves like the real self-test: it passes only without a display.
    script = ('[ -z "$DISPLAY" ] && [ "$QT_QPA_PLATFORM" = offscreen ] && [ "$1" = --selftest ] '
              '&& echo "SELFTEST PASSED: 1 model(s)" && exit 0\necho "SELFTEST FAILED"; exit 1\n')
    dist = _fake_dist(tmp_path, script)
    model = dist / "_internal" / "assets" / "models" / "demo.onnx"
    model.chmod(0o600)  # as a training run may leave it: users other than root could not read it
    info = build_deb.stage(dist, tmp_path / "stage", "9.8.7", "amd64")
    deb = build_deb.build_deb(tmp_path / "stage", tmp_path / "out", info)
    assert deb.name == "hemalens_9.8.7_amd64.deb"
    fields = check_deb.control_fields(deb)
    assert check_deb.check_control(deb, fields) == []
    listing = check_deb.package_listing(deb)
    assert check_deb.check_contents(listing, min_models=1) == []
    assert check_deb.check_contents(listing, min_models=2) == ["1 bundled model(s), expected at least 2"]
    exe_line = listing["/opt/hemalens/hemalens"]
    assert "root/root" in exe_line and exe_line.startswith("-rwxr-xr-x")
    assert listing["/usr/share/applications/hemalens.desktop"].startswith("-rw-r--r--")
    assert listing["/opt/hemalens/_internal/assets/models/demo.onnx"].startswith("-rw-r--r--")
    passed, output = check_deb.run_unpacked_selftest(deb)
    assert passed, output
    assert check_deb.main([str(deb), "--min-models", "1"]) == 0


@needs_dpkg
def test_deb_checker_catches_forbidden_content_and_a_failing_selftest(tmp_path: Path) -> None:
    dist = _fake_dist(tmp_path, 'echo "SELFTEST FAILED: 1 problem(s)"; exit 1\n', extra="torch/__init__.py")
    info = build_deb.stage(dist, tmp_path / "stage", "0.0.1", "amd64")
    deb = build_deb.build_deb(tmp_path / "stage", tmp_path / "out", info)
    problems = check_deb.check_contents(check_deb.package_listing(deb), min_models=1)
    assert problems == ["must not ship /opt/hemalens/_internal/torch/__init__.py"]
    passed, output = check_deb.run_unpacked_selftest(deb)
    assert not passed and "SELFTEST FAILED" in output
    assert check_deb.main([str(deb), "--min-models", "1"]) == 1


def test_stage_refuses_a_missing_dist(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="build the dist first"):
        build_deb.stage(tmp_path / "nothing", tmp_path / "stage", "1.0", "amd64")


def test_project_version_matches_the_package() -> None:
    from hemalens import __version__

    assert build_deb.project_version() == __version__


# --- report helpers -----------------------------------------------------------------------------


def test_tree_bytes_counts_files_once_and_ignores_symlinks(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 1000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 24)
    os.symlink(tmp_path / "a", tmp_path / "link")
    assert report.tree_bytes(tmp_path) == 1024
    assert report.evict_from_page_cache([tmp_path]) == 2


# --- Windows / macOS recipes (not runnable here: check that they agree with the build) ----------


def test_inno_setup_script_agrees_with_the_windows_build() -> None:
    iss = (PACKAGING / "windows" / "hemalens.iss").read_text(encoding="utf-8")
    spec = (ROOT / "build.spec").read_text(encoding="utf-8")
    assert 'name="HemaLens", console=False' in spec and 'name="hemalens-cli", console=True' in spec
    collect = re.search(r"COLLECT\((.*?)\n\)", spec, re.DOTALL)
    assert collect is not None and 'name="hemalens"' in collect.group(1)
    assert '#define AppExe "HemaLens.exe"' in iss
    assert '#define DistDir "..\\..\\dist\\hemalens"' in iss
    assert "SetupIconFile=..\\..\\assets\\icons\\hemalens.ico" in iss
    assert (ROOT / "assets" / "icons" / "hemalens.ico").is_file()
    assert "vc_redist.x64.exe" in iss and "VCRedistNeeded" in iss
    for ext in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif"):
        assert f"Software\\Classes\\{ext}\\OpenWithProgids" in iss


def test_hosted_runner_workflow_builds_all_three_platforms_from_this_tree() -> None:
    workflow = (ROOT / ".github" / "workflows" / "package.yml").read_text(encoding="utf-8")
    for runner in ("ubuntu-22.04", "windows-2022", "macos-14"):
        assert f"runs-on: {runner}" in workflow
    for path in ("packaging/linux/build_linux.sh", "build.spec", "packaging\\windows\\hemalens.iss"):
        assert path in workflow
        assert (ROOT / path.replace("\\", "/")).is_file()
    assert "hemalens-cli.exe --selftest" in workflow
    assert "HemaLens.app/Contents/MacOS/hemalens --selftest" in workflow
    assert ".[package]" in workflow


def test_every_package_build_installs_with_the_constraints_and_they_only_narrow_runtime_dependencies() -> None:
    """The size target holds for the versions in packaging/constraints.txt; a build that ignores them gets
    whatever pip resolves that day (OpenCV 5.1 added 20 MB)."""
    installs = [line for path in (ROOT / ".ci" / "run", ROOT / ".github" / "workflows" / "package.yml",
                                  ROOT / "README.md")
                for line in path.read_text(encoding="utf-8").splitlines() if '".[package]"' in line]
    assert len(installs) >= 5
    assert all("-c packaging/constraints.txt" in line for line in installs), installs
    block = re.search(r"^dependencies = \[(.*?)^\]", (ROOT / "pyproject.toml").read_text(encoding="utf-8"),
                      re.DOTALL | re.MULTILINE)
    assert block is not None
    runtime = {name.lower() for name in re.findall(r'"([A-Za-z0-9_.-]+)', block.group(1))}
    constraints = [line.split("#")[0].strip() for line in (PACKAGING / "constraints.txt").read_text().splitlines()]
    names = {re.match(r"[A-Za-z0-9_.-]+", c).group(0).lower() for c in constraints if c}
    assert names and names <= runtime


def test_cold_python_start_evicts_the_system_twins_of_the_bundled_libraries(tmp_path: Path) -> None:
    internal = tmp_path / "dist" / "_internal"
    internal.mkdir(parents=True)
    system_lib = next((p for p in Path("/usr/lib/x86_64-linux-gnu").glob("libstdc++.so.6*")), None)
    if system_lib is not None:
        (internal / system_lib.name).write_bytes(b"")
    files = report._python_files(Path(sys.executable), tmp_path / "dist")
    assert Path(os.__file__).parent in files  # the standard library
    assert ROOT / "inference" in files
    if system_lib is not None:
        assert system_lib in files


def test_size_report_fails_only_above_the_hard_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "blob").write_bytes(b"\0" * 2_000_000)
    assert report.main(["--dist", str(tmp_path), "--no-startup", "--fail-above", "3"]) == 0
    assert report.main(["--dist", str(tmp_path), "--no-startup", "--fail-above", "1"]) == 1
    out = capsys.readouterr().out
    assert "dist              2.0 MB = 1.9 MiB" in out and "over the 1 MB limit" in out
