"""Size and start-up report for the Linux build: dist size, .deb size, time to the first window.

Start-up is measured the way a technician sees it: from launching the program to the moment its
first top-level window is mapped on an X server (a private Xvfb; no window manager), found by
polling ``xwininfo`` for a window whose title contains "HemaLens". The frozen executable is compared
with ``python -m hemalens`` from the development environment. "Cold" runs first evict the files each
variant reads from the page cache (``posix_fadvise(DONTNEED)``, no root needed; pages that other
running programs have mapped stay cached); each is followed by a "warm" run.
Targets (issue 6): dist <= 400 MB, frozen start-up <= 1.5x the ``python -m`` start-up.

Usage: ``python packaging/linux/report.py --dist dist/hemalens [--deb dist/hemalens_*.deb] [--runs 3]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIST_TARGET_MB = 400.0
STARTUP_TARGET_RATIO = 1.5
WINDOW_TIMEOUT_S = 90.0
# What `python -m hemalens` reads at start-up, relative to site-packages (evicted for a cold run).
DEV_PACKAGES = ("PySide6", "shiboken6", "onnxruntime", "onnx", "cv2", "opencv_python_headless.libs", "numpy",
                "numpy.libs", "PIL", "pillow.libs", "platformdirs", "google")  # fmt: skip
PROJECT_PACKAGES = ("hemalens", "inference", "gui", "review", "assets")


def tree_bytes(path: Path) -> int:
    """Bytes in regular files under ``path`` (symlinks not followed or counted twice)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def evict_from_page_cache(roots: Iterable[Path]) -> int:
    """Ask the kernel to drop cached pages of every file under ``roots``; returns the file count."""
    os.sync()
    count = 0
    for root in roots:
        files = [root] if root.is_file() else (p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
        for path in files:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                count += 1
            finally:
                os.close(fd)
    return count


class Xvfb:
    """A private X server on a display number it picks itself (``-displayfd``), stopped on exit."""

    def __init__(self) -> None:
        self.display = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Xvfb:
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write_fd,))
        os.close(write_fd)
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()  # written once the server accepts connections
        if not number.isdigit():
            self.__exit__()
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def ensure_running(self) -> None:
        """Restart the server if it died or its socket vanished (other test suites share /tmp/.X11-unix)."""
        socket = Path(f"/tmp/.X11-unix/X{self.display.lstrip(':')}")
        if self.proc is None or self.proc.poll() is not None or not socket.exists():
            self.__exit__()
            self.__enter__()


def _viewable_window(display: str, title_re: re.Pattern[str]) -> bool:
    tree = subprocess.run(["xwininfo", "-root", "-tree", "-display", display], capture_output=True, text=True).stdout
    for line in tree.splitlines():
        match = re.match(r'\s*(0x[0-9a-f]+) "(.*?)":', line)
        if match and title_re.search(match.group(2)):
            info = subprocess.run(["xwininfo", "-id", match.group(1), "-display", display],
                                  capture_output=True, text=True).stdout
            if "IsViewable" in info:
                return True
    return False


def time_to_first_window(cmd: list[str], display: str, home: Path, title: str = "HemaLens") -> float:
    """Seconds from spawning ``cmd`` to its first viewable window titled like ``title``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEMALENS_") and k != "WAYLAND_DISPLAY"}
    env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb", HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local/share"), XDG_CACHE_HOME=str(home / ".cache"))
    title_re = re.compile(re.escape(title), re.IGNORECASE)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        while time.perf_counter() - start < WINDOW_TIMEOUT_S:
            if _viewable_window(display, title_re):
                return time.perf_counter() - start
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode} before showing a window:\n{err}")
            time.sleep(0.01)
        raise RuntimeError(f"no window titled {title!r} within {WINDOW_TIMEOUT_S:.0f} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _python_files(python: Path, frozen_dist: Path) -> list[Path]:
    """What `python -m hemalens` reads that a cold start would have to load from disk.

    Besides the interpreter, the standard library and the packages, this includes the system copies
    of the shared libraries the frozen build carries privately (libstdc++, glib, X11, fontconfig...):
    the frozen run reads its own copies from disk, so evicting only those would favour `python -m`.
    """
    query = ("import sys, sysconfig; p = sysconfig.get_paths(); "
             "print(p['purelib']); print(p['stdlib']); print(sys.executable); "
             "print(sysconfig.get_config_var('LIBDIR') or ''); print(sysconfig.get_config_var('LDLIBRARY') or '')")
    lines = subprocess.run([str(python), "-c", query], capture_output=True, text=True, check=True).stdout.splitlines()
    site, stdlib, exe, libdir, ldlibrary = (Path(x) for x in lines[:5])
    files = [site / p for p in DEV_PACKAGES] + [ROOT / p for p in PROJECT_PACKAGES]
    files += [stdlib, exe.resolve(), libdir / ldlibrary]
    system_dirs = [Path("/lib/x86_64-linux-gnu"), Path("/usr/lib/x86_64-linux-gnu"), Path("/lib64"), Path("/usr/lib")]
    for private in (frozen_dist / "_internal").glob("*.so*"):
        files += [d / private.name for d in system_dirs if (d / private.name).is_file()]
    return [f for f in files if f.exists()]


def measure_startup(frozen: Path, python: Path, runs: int) -> dict[str, dict[str, float]]:
    """Median cold (after eviction) and warm time to first window, the variants interleaved."""
    variants = {
        "frozen": ([str(frozen)], [frozen.parent]),
        "python -m": ([str(python), "-m", "hemalens"], _python_files(python, frozen.parent)),
    }
    times: dict[str, dict[str, list[float]]] = {name: {"cold": [], "warm": []} for name in variants}
    with Xvfb() as xvfb, tempfile.TemporaryDirectory(prefix="hemalens-startup-") as tmp:
        for _ in range(runs):
            for name, (cmd, files) in variants.items():
                home = Path(tmp) / name.replace(" ", "_")
                home.mkdir(exist_ok=True)
                for kind in ("cold", "warm"):
                    if kind == "cold":
                        evict_from_page_cache(files)
                    xvfb.ensure_running()
                    times[name][kind].append(time_to_first_window(cmd, xvfb.display, home))
    return {name: {kind: statistics.median(values) for kind, values in kinds.items()} for name, kinds in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the HemaLens size and start-up report.")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist" / "hemalens")
    parser.add_argument("--deb", type=Path, default=None)
    parser.add_argument("--python", type=Path, default=Path(sys.executable), help="interpreter for `python -m`")
    parser.add_argument("--runs", type=int, default=3, help="cold and warm runs per variant (medians reported)")
    parser.add_argument("--no-startup", action="store_true", help="sizes only")
    parser.add_argument("--fail-above", type=float, default=None, metavar="MB",
                        help="exit 1 when the dist is bigger than this (a regression guard above the target)")
    args = parser.parse_args(argv)
    args.dist = args.dist.resolve()
    # Absolute but not resolved (a venv's python is a symlink); a bare name like "python" is looked up on PATH.
    found = shutil.which(str(args.python)) if os.sep not in str(args.python) else None
    args.python = Path(os.path.abspath(found or args.python))

    dist_mb = tree_bytes(args.dist) / 1e6
    print("== HemaLens size and start-up report")
    print(f"dist          {dist_mb:7.1f} MB = {dist_mb * 1e6 / 2**20:.1f} MiB  ({args.dist})  "
          f"target <= {DIST_TARGET_MB:.0f} MB  {'ok' if dist_mb <= DIST_TARGET_MB else 'OVER TARGET'}")
    if args.deb is not None:
        print(f".deb          {args.deb.stat().st_size / 1e6:7.1f} MB  ({args.deb.name}, zstd)")
    status = 0
    if args.fail_above is not None and dist_mb > args.fail_above:
        print(f"FAIL  the dist is over the {args.fail_above:.0f} MB limit: something big was bundled")
        status = 1
    if args.no_startup:
        return status
    missing = [tool for tool in ("Xvfb", "xwininfo") if shutil.which(tool) is None]
    if missing:
        print(f"start-up      not measured: {', '.join(missing)} not installed (apt install xvfb x11-utils)")
        return status
    try:
        results = measure_startup(args.dist / "hemalens", args.python, args.runs)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"start-up      not measured: {exc}")
        return status
    for name, figures in results.items():
        print(f"start-up      {name:<10} cold {figures['cold']:5.2f} s   warm {figures['warm']:5.2f} s "
              f"(medians of {args.runs}; launch to first window on Xvfb)")
    for kind in ("cold", "warm"):
        ratio = results["frozen"][kind] / results["python -m"][kind]
        verdict = "ok" if ratio <= STARTUP_TARGET_RATIO else "OVER TARGET"
        print(f"ratio {kind:<7} frozen / python -m = {ratio:.2f}  target <= {STARTUP_TARGET_RATIO}  {verdict}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
