"""Build ``hemalens_<version>_<arch>.deb`` from the PyInstaller one-folder dist.

Layout of the package: the whole dist under ``/opt/hemalens``, ``/usr/bin/hemalens`` a symlink to
its executable (PyInstaller's bootloader finds its folder through /proc/self/exe), a desktop entry
that opens images (``%F``), the icon in the hicolor theme, and a copyright file. The package depends
on the system libraries PyInstaller deliberately leaves out (GL/EGL, fontconfig, fonts) and on the
xcb libraries Qt >= 6.5 loads for a real window. Standard library only, so any python3 can run it.

Usage: ``python3 packaging/linux/build_deb.py [--dist dist/hemalens] [--out dist]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "hemalens"
INSTALL_DIR = "/opt/hemalens"
DESKTOP_FILE = Path(__file__).resolve().parent / "hemalens.desktop"
ICONS_DIR = ROOT / "assets" / "icons"
HICOLOR_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
MAINTAINER = "HemaLens maintainers <hemalens@localhost>"

# What PyInstaller leaves to the system (GL, EGL, fontconfig, fonts) and what Qt >= 6.5's xcb platform
# plugin needs to open a window (libxcb-cursor0 is the one most often missing). Debian 12 / Ubuntu 22.04+.
SYSTEM_DEPENDS = (
    "libgl1",
    "libegl1",
    "libfontconfig1",
    "libfreetype6",
    "fonts-dejavu-core",
    "libdbus-1-3",
    "libx11-6",
    "libx11-xcb1",
    "libxcb1",
    "libxcb-cursor0",
    "libxcb-glx0",
    "libxcb-icccm4",
    "libxcb-image0",
    "libxcb-keysyms1",
    "libxcb-randr0",
    "libxcb-render0",
    "libxcb-render-util0",
    "libxcb-shape0",
    "libxcb-shm0",
    "libxcb-sync1",
    "libxcb-util1",
    "libxcb-xfixes0",
    "libxcb-xinerama0",
    "libxcb-xkb1",
    "libxkbcommon0",
    "libxkbcommon-x11-0",
    "libwayland-client0",
    "libwayland-cursor0",
    "libwayland-egl1",
)
RECOMMENDS = ("desktop-file-utils", "hicolor-icon-theme")

DESCRIPTION = """\
Local, explainable AI review of blood-smear images
 HemaLens classifies blood-smear microscope images with CNNs that run on this
 computer (ONNX Runtime, no network), shows per-class probabilities and a
 Grad-CAM heatmap, and supports keyboard review of whole folders with sign-off
 and reports. Research use only: it is a screening aid, not a diagnosis."""


@dataclass(frozen=True)
class DebInfo:
    """The facts that go into DEBIAN/control."""

    version: str
    arch: str
    installed_kib: int
    min_glibc: str | None


def project_version(root: Path = ROOT) -> str:
    """``hemalens.__version__`` read from the source, without importing the package."""
    text = (root / "hemalens" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.MULTILINE)
    if not match:
        raise SystemExit("hemalens/__init__.py has no __version__")
    return match.group(1)


def debian_arch() -> str:
    try:
        done = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True)
        return done.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def build_glibc() -> str | None:
    """The glibc the bundle was built against: it runs on that version or newer only."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()  # e.g. "glibc 2.36"
    except (ValueError, OSError, AttributeError):
        return None
    return version if name == "glibc" else None


def depends_field(min_glibc: str | None) -> str:
    libc = [f"libc6 (>= {min_glibc})"] if min_glibc else []
    return ", ".join([*libc, *SYSTEM_DEPENDS])


def control_text(info: DebInfo) -> str:
    """The DEBIAN/control file (fields in the usual order, description folded per Debian policy)."""
    fields = [
        ("Package", PACKAGE),
        ("Version", info.version),
        ("Architecture", info.arch),
        ("Maintainer", MAINTAINER),
        ("Installed-Size", str(info.installed_kib)),
        ("Depends", depends_field(info.min_glibc)),
        ("Recommends", ", ".join(RECOMMENDS)),
        ("Section", "science"),
        ("Priority", "optional"),
        ("Description", DESCRIPTION),
    ]
    return "".join(f"{key}: {value}\n" for key, value in fields)


def _tree_kib(root: Path) -> int:
    total = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return (total + 1023) // 1024


def _normalise_modes(root: Path) -> None:
    """Directories 0755, executables 0755, everything else 0644 (umask-independent packages)."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(0o755)
        else:
            path.chmod(0o755 if path.stat().st_mode & 0o111 else 0o644)


def stage(dist: Path, staging: Path, version: str, arch: str) -> DebInfo:
    """Lay out the package tree under ``staging`` (emptied first) and write its control file."""
    executable = dist / PACKAGE
    if not (executable.is_file() and os.access(executable, os.X_OK)):
        raise SystemExit(f"{executable} is missing or not executable: build the dist first (pyinstaller build.spec)")
    if staging.exists():
        shutil.rmtree(staging)
    opt = staging / INSTALL_DIR.lstrip("/")
    shutil.copytree(dist, opt, symlinks=True)
    bin_dir = staging / "usr" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / PACKAGE).symlink_to(f"{INSTALL_DIR}/{PACKAGE}")
    apps = staging / "usr" / "share" / "applications"
    apps.mkdir(parents=True)
    shutil.copy2(DESKTOP_FILE, apps / "hemalens.desktop")
    icons = staging / "usr" / "share" / "icons" / "hicolor"
    for size in HICOLOR_SIZES:
        target = icons / f"{size}x{size}" / "apps"
        target.mkdir(parents=True)
        shutil.copy2(ICONS_DIR / f"hemalens-{size}.png", target / "hemalens.png")
    (icons / "scalable" / "apps").mkdir(parents=True)
    shutil.copy2(ICONS_DIR / "hemalens.svg", icons / "scalable" / "apps" / "hemalens.svg")
    doc = staging / "usr" / "share" / "doc" / PACKAGE
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "HemaLens: MIT licence. Bundled third-party components (Python, Qt/PySide6 under LGPLv3,\n"
        "ONNX Runtime, NumPy, OpenCV, Pillow) keep their own licences; see the files next to them\n"
        f"under {INSTALL_DIR}. Bundled models: see the model cards in {INSTALL_DIR}/_internal/assets/models.\n",
        encoding="utf-8",
    )
    info = DebInfo(version=version, arch=arch, installed_kib=_tree_kib(staging), min_glibc=build_glibc())
    debian = staging / "DEBIAN"
    debian.mkdir()
    (debian / "control").write_text(control_text(info), encoding="utf-8")
    _normalise_modes(staging)
    return info


def build_deb(staging: Path, out_dir: Path, info: DebInfo) -> Path:
    """Run ``dpkg-deb`` (zstd: xz took minutes on this size) and return the .deb path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    deb = out_dir / f"{PACKAGE}_{info.version}_{info.arch}.deb"
    cmd = ["dpkg-deb", "--root-owner-group", "-Zzstd", "--build", str(staging), str(deb)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return deb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the HemaLens .deb from the PyInstaller dist.")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist" / PACKAGE, help="PyInstaller one-folder output")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where the .deb is written")
    parser.add_argument("--staging", type=Path, default=ROOT / "build" / "deb-root", help="scratch package tree")
    parser.add_argument("--version", default=None, help="package version (default: hemalens.__version__)")
    args = parser.parse_args(argv)
    if shutil.which("dpkg-deb") is None:
        print("dpkg-deb not found: the .deb can only be built on Debian/Ubuntu", file=sys.stderr)
        return 2
    info = stage(args.dist, args.staging, args.version or project_version(), debian_arch())
    deb = build_deb(args.staging, args.out, info)
    print(f"{deb}  {deb.stat().st_size / 2**20:.1f} MiB (installed {info.installed_kib / 1024:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
