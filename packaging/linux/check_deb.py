"""Check a built HemaLens .deb: control fields, contents, and a self-test run from an unpacked copy.

It unpacks the package with ``dpkg -x`` into a scratch root (no root rights, nothing installed)
and runs ``<root>/opt/hemalens/hemalens --selftest`` there with no display, which proves the
package is complete: every library, Qt plugin and bundled model the app needs is inside it.
Standard library only. Exit status 0 when every check passed.

Usage: ``python3 packaging/linux/check_deb.py dist/hemalens_*.deb [--no-selftest] [--min-models N]``
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_deb import INSTALL_DIR, PACKAGE, ROOT, SYSTEM_DEPENDS  # noqa: E402

REQUIRED_PATHS = (
    f"{INSTALL_DIR}/{PACKAGE}",
    "/usr/share/applications/hemalens.desktop",
    "/usr/share/icons/hicolor/48x48/apps/hemalens.png",
    "/usr/share/icons/hicolor/256x256/apps/hemalens.png",
    "/usr/share/icons/hicolor/scalable/apps/hemalens.svg",
    "/usr/share/doc/hemalens/copyright",
)
# Nothing from the export/training toolchain or unused Qt parts may ship (path fragments, lower case).
FORBIDDEN_FRAGMENTS = (
    "/torch/",
    "/tensorflow/",
    "/keras/",
    "/tf2onnx/",
    "/onnxscript/",
    "/_internal/export/",
    "/_internal/training/",
    "/_internal/tests/",
    "/_internal/bench/",
    "libqt6webengine",
    "libqt6quick",
    "libqt6qml",
    "libqt6pdf",
    "libqt63d",
    "libqt6multimedia",
    "qtwebengine",
)
SELFTEST_TIMEOUT_S = 180


class CheckFailed(Exception):
    """One check of the package did not hold."""


def control_fields(deb: Path) -> dict[str, str]:
    text = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if line.startswith(" ") and key:
            fields[key] += "\n" + line
        elif ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    return fields


def package_listing(deb: Path) -> dict[str, str]:
    """Path (absolute, no trailing slash) -> ``dpkg-deb -c`` line, for every entry in the data tarball."""
    text = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    listing = {}
    for line in text.splitlines():
        match = re.search(r"\s\./(\S.*?)(?: -> .*)?$", line)
        if match:
            listing["/" + match.group(1).rstrip("/")] = line
    return listing


def check_control(deb: Path, fields: dict[str, str]) -> list[str]:
    problems = []
    if fields.get("Package") != PACKAGE:
        problems.append(f"Package is {fields.get('Package')!r}")
    match = re.fullmatch(rf"{PACKAGE}_(.+)_(.+)\.deb", deb.name)
    if match and (fields.get("Version"), fields.get("Architecture")) != match.groups():
        problems.append(f"file name {deb.name} disagrees with Version/Architecture in control")
    depends = {d.strip().split(" ")[0] for d in fields.get("Depends", "").split(",")}
    missing = [d for d in SYSTEM_DEPENDS if d not in depends]
    if missing:
        problems.append(f"Depends lacks {', '.join(missing)}")
    if not fields.get("Installed-Size", "").isdigit():
        problems.append("Installed-Size is missing")
    return problems


def check_contents(listing: dict[str, str], min_models: int) -> list[str]:
    problems = [f"missing {p}" for p in REQUIRED_PATHS if p not in listing]
    link = listing.get(f"/usr/bin/{PACKAGE}", "")
    if f"-> {INSTALL_DIR}/{PACKAGE}" not in link:
        problems.append(f"/usr/bin/{PACKAGE} is not a symlink to {INSTALL_DIR}/{PACKAGE}")
    models = [p for p in listing if p.startswith(f"{INSTALL_DIR}/_internal/assets/models/") and p.endswith(".onnx")]
    if len(models) < min_models:
        problems.append(f"{len(models)} bundled model(s), expected at least {min_models}")
    for path in listing:
        lower = path.lower()
        for fragment in FORBIDDEN_FRAGMENTS:
            if fragment in lower:
                problems.append(f"must not ship {path}")
                break
    return problems


def run_unpacked_selftest(deb: Path) -> tuple[bool, str]:
    """``dpkg -x`` into a scratch root and run the self-test there, without a display."""
    with tempfile.TemporaryDirectory(prefix="hemalens-deb-") as scratch:
        root = Path(scratch) / "root"
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        home = Path(scratch) / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in {"DISPLAY", "WAYLAND_DISPLAY"}}
        env.update(QT_QPA_PLATFORM="offscreen", HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                   XDG_DATA_HOME=str(home / ".local" / "share"), XDG_CACHE_HOME=str(home / ".cache"))
        for key in ("HEMALENS_BUNDLED_MODELS_DIR", "HEMALENS_USER_MODELS_DIR", "PYTHONPATH", "PYTHONHOME"):
            env.pop(key, None)
        exe = root / INSTALL_DIR.lstrip("/") / PACKAGE
        try:
            done = subprocess.run([str(exe), "--selftest"], capture_output=True, text=True, env=env,
                                  timeout=SELFTEST_TIMEOUT_S, cwd=scratch)
        except subprocess.TimeoutExpired:
            return False, f"self-test did not finish in {SELFTEST_TIMEOUT_S} s"
        output = done.stdout + done.stderr
        return done.returncode == 0 and "SELFTEST PASSED" in output, output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check a HemaLens .deb (control, contents, unpacked self-test).")
    parser.add_argument("deb", type=Path)
    parser.add_argument("--min-models", type=int, default=None,
                        help="bundled .onnx files expected (default: as many as assets/models holds, at least 1)")
    parser.add_argument("--no-selftest", action="store_true", help="skip unpacking and running the self-test")
    args = parser.parse_args(argv)
    if args.min_models is None:
        args.min_models = max(1, len(list((ROOT / "assets" / "models").glob("*.onnx"))))
    fields = control_fields(args.deb)
    problems = check_control(args.deb, fields) + check_contents(package_listing(args.deb), args.min_models)
    for problem in problems:
        print(f"FAIL  {problem}")
    if not problems:
        print(f"ok    control and contents of {args.deb.name} (Depends: {len(fields['Depends'].split(','))} packages)")
    if not args.no_selftest:
        passed, output = run_unpacked_selftest(args.deb)
        print(output.rstrip())
        print(f"{'ok   ' if passed else 'FAIL '} self-test from a dpkg -x scratch root")
        if not passed:
            problems.append("self-test failed")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
