#!/usr/bin/env bash
# Build the Linux packages from scratch and prove they work:
#   1. PyInstaller one-folder dist (build.spec)      -> dist/hemalens/
#      then strip the symbol tables left in its libraries, OpenBLAS excepted (packaging/linux/strip_dist.py)
#   2. frozen `hemalens --selftest` (no display): it loads the stripped libraries
#   3. the .deb                                       -> dist/hemalens_<version>_<arch>.deb
#   4. control + contents check, dpkg -x into a scratch root, self-test from there
#   5. size and start-up report (start-up needs Xvfb + xwininfo; skip it with --no-startup)
# Usage: packaging/linux/build_linux.sh [--no-startup]   (PYTHON=path/to/python overrides .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-.venv/bin/python}"
REPORT_ARGS=()
for arg in "$@"; do
  case "$arg" in
    --no-startup) REPORT_ARGS+=(--no-startup) ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done

start=$(date +%s)
echo "== pyinstaller build.spec"
rm -rf dist/hemalens
mkdir -p build
if ! "$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN build.spec >build/pyinstaller.log 2>&1; then
  tail -40 build/pyinstaller.log >&2; echo "PyInstaller failed (full log: build/pyinstaller.log)" >&2; exit 1
fi
# Unresolved system libraries are expected (they are the .deb's Depends); show anything else.
grep -E "WARNING|ERROR" build/pyinstaller.log \
  | grep -v -E "WARNING: (Library not found|Library .* required via ctypes not found)" || true
"$PYTHON" packaging/linux/strip_dist.py dist/hemalens
built=$(date +%s)

echo "== frozen self-test"
env -u DISPLAY -u WAYLAND_DISPLAY QT_QPA_PLATFORM=offscreen dist/hemalens/hemalens --selftest

echo "== .deb"
rm -f dist/hemalens_*.deb
"$PYTHON" packaging/linux/build_deb.py --dist dist/hemalens --out dist
deb=$(ls dist/hemalens_*.deb)
packaged=$(date +%s)

echo "== check the .deb"
"$PYTHON" packaging/linux/check_deb.py "$deb"

echo
"$PYTHON" packaging/linux/report.py --dist dist/hemalens --deb "$deb" --python "$PYTHON" --fail-above 450 "${REPORT_ARGS[@]}"
echo "build time    pyinstaller $((built - start)) s, .deb $((packaged - built)) s, total $(($(date +%s) - start)) s"
