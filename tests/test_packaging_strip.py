"""The post-build strip step (packaging/linux/strip_dist.py): what it picks, what it refuses, and that
a stripped library still loads. No PyInstaller run: the tests strip copies of real libraries."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from tests.packaging_scripts import load_script

ROOT = Path(__file__).resolve().parent.parent
LINUX = ROOT / "packaging" / "linux"
needs_strip = pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("strip") is None,
                                 reason="ELF and binutils' strip are Linux build tools")


strip_dist = load_script("hemalens_strip_dist", LINUX / "strip_dist.py")
STDLIB_EXTENSIONS = ("array", "_struct", "math", "_json", "_csv", "_bisect", "_heapq", "_random")


def _unstripped_stdlib_extension() -> Path:
    """A standard-library extension module of this interpreter that still has its symbol table."""
    folder = Path(sysconfig.get_config_var("DESTSHARED") or "")
    for name in STDLIB_EXTENSIONS:
        for path in sorted(folder.glob(f"{name}.cpython-*.so")):
            info = strip_dist.read_elf(path)
            if info is not None and info.has_symtab:
                return path
    pytest.skip("this interpreter's extension modules are already stripped")


@pytest.mark.parametrize(
    ("name", "denied"),
    [
        ("libscipy_openblas64_-32a4b2a6.so", True),  # NumPy's OpenBLAS
        ("libopenblasp-r0-59ffcd50.3.15.so", True),  # OpenCV's OpenBLAS
        ("libOpenBLAS.so.0", True),
        ("libgfortran-040039e1-0352e75f.so.5.0.0", True),
        ("libquadmath-96973f99-934c22de.so.0.0.0", True),
        ("_imaging.cpython-311-x86_64-linux-gnu.so", False),
        ("libicui18n.so.73", False),
        ("libpython3.11.so.1.0", False),
        ("_multiarray_umath.cpython-311-x86_64-linux-gnu.so", False),
        ("libaom-a0d22147.so.3.14.1", False),
    ],
)
def test_openblas_and_its_fortran_runtime_are_never_stripped(name: str, denied: bool) -> None:
    assert strip_dist.is_denied(name) is denied


def test_glibc_alignment_rule() -> None:
    seg = strip_dist.LoadSegment
    assert strip_dist.segments_aligned((seg(0x0, 0x0, 10, 10, 5, 0x1000), seg(0x346000, 0xBA000, 8, 8, 6, 0x1000)))
    assert not strip_dist.segments_aligned((seg(0x346010, 0xBA000, 8, 8, 6, 0x1000),))  # "not page-aligned"
    assert not strip_dist.segments_aligned((seg(0x2000, 0x201000, 8, 8, 6, 0x200000),))  # "not properly aligned"


@needs_strip
def test_a_stripped_extension_module_still_imports_and_works(tmp_path: Path) -> None:
    source = _unstripped_stdlib_extension()
    copy = tmp_path / source.name
    shutil.copy2(source, copy)
    saved, reason = strip_dist.strip_file(copy)
    assert saved > 0 and reason == "" and copy.stat().st_size == source.stat().st_size - saved
    assert not strip_dist.read_elf(copy).has_symtab
    module = source.name.split(".", 1)[0]
    check = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import {module} as m
        assert m.__file__ == {str(copy)!r}, m.__file__
        print(len(dir(m)))
    """)
    done = subprocess.run([sys.executable, "-S", "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 3  # the module initialised and exposes its functions


@needs_strip
def test_a_stripped_patchelf_rewritten_library_loads_and_decodes(tmp_path: Path) -> None:
    """Pillow's ``_imaging`` is the kind of wheel library that PyInstaller's strip broke (Pillow issue 6289)."""
    import PIL

    package = Path(PIL.__file__).parent
    libs = package.parent / "pillow.libs"
    imaging = next(package.glob("_imaging.cpython-*.so"), None)
    if imaging is None or not libs.is_dir() or not strip_dist.read_elf(imaging).has_symtab:
        pytest.skip("no unstripped manylinux Pillow here")
    shutil.copytree(package, tmp_path / "PIL", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "pillow.libs").symlink_to(libs)
    copy = tmp_path / "PIL" / imaging.name
    saved, reason = strip_dist.strip_file(copy)
    assert saved > 1_000_000, reason  # its symbol table is most of the file
    check = textwrap.dedent(f"""
        import io, sys
        sys.path.insert(0, {str(tmp_path)!r})
        from PIL import Image
        import PIL._imaging
        assert PIL._imaging.__file__ == {str(copy)!r}, PIL._imaging.__file__
        image = Image.linear_gradient("L").convert("RGB")
        for fmt in ("PNG", "JPEG", "TIFF"):
            buffer = io.BytesIO()
            image.save(buffer, fmt)
            assert Image.open(io.BytesIO(buffer.getvalue())).size == (256, 256)
    """)
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@needs_strip
def test_dist_walk_strips_only_unstripped_shared_objects_outside_the_deny_list(tmp_path: Path) -> None:
    source = _unstripped_stdlib_extension()
    dist = tmp_path / "hemalens"
    internal = dist / "_internal"
    targets = {
        "pkg": internal / "pkg" / "_x.cpython-311-x86_64-linux-gnu.so",
        "lib": internal / "libfoo.so.1.2",
        "openblas": internal / "numpy.libs" / "libscipy_openblas64_-abc.so",
        "gfortran": internal / "opencv_python_headless.libs" / "libgfortran-83c28eba.so.5.0.0",
    }
    for path in targets.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, path)
    (internal / "libfoo.so.1").symlink_to("libfoo.so.1.2")  # PyInstaller's links: never followed
    (internal / "notelf.so").write_text("not a library")
    executable = dist / "hemalens"  # the bootloader carries its archive appended: never touched
    shutil.copy2(source, executable)
    already = internal / "already.so"
    shutil.copy2(source, already)
    assert strip_dist.strip_file(already)[0] > 0

    before = {path: path.read_bytes() for path in dist.rglob("*") if path.is_file() and not path.is_symlink()}
    assert set(strip_dist.candidates(dist)) == {targets["pkg"], targets["lib"]}
    result = strip_dist.strip_dist(dist)
    assert sorted(result.stripped) == sorted([targets["pkg"], targets["lib"]]) and not result.kept
    assert result.saved == sum(len(before[p]) - p.stat().st_size for p in result.stripped) > 0
    for path, data in before.items():
        if path not in result.stripped:
            assert path.read_bytes() == data, f"{path.name} was changed"
    assert (internal / "libfoo.so.1").is_symlink()


FAKE_STRIP = """#!{python}
# A strip that runs the real one, then damages the output the way a broken binutils would.
import struct, subprocess, sys
subprocess.run(["strip", *sys.argv[1:]], check=True)
out = sys.argv[sys.argv.index("-o") + 1]
data = bytearray(open(out, "rb").read())
mode = {mode!r}
if mode == "misalign":  # shift the file offset of the last load segment: "not page-aligned"
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    last = max(i for i in range(phnum) if struct.unpack_from("<I", data, phoff + i * phentsize)[0] == 1)
    field = phoff + last * phentsize + 8
    struct.pack_into("<Q", data, field, struct.unpack_from("<Q", data, field)[0] + 0x10)
else:  # flip a byte of the code
    shoff, = struct.unpack_from("<Q", data, 40)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 58)
    names = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 24)[0]
    for i in range(shnum):
        base = shoff + i * shentsize
        name = struct.unpack_from("<I", data, base)[0]
        if data[names + name:names + name + 6] == b".text\\0":
            offset = struct.unpack_from("<Q", data, base + 24)[0]
            data[offset + 16] ^= 0xFF
open(out, "wb").write(bytes(data))
"""


@needs_strip
@pytest.mark.parametrize("mode", ["misalign", "code"])
def test_a_damaged_strip_result_is_refused_and_the_original_kept(tmp_path: Path, mode: str) -> None:
    source = _unstripped_stdlib_extension()
    if strip_dist.read_elf(source) is None or source.read_bytes()[4:6] != b"\x02\x01":
        pytest.skip("the fake strip edits 64-bit little-endian files")
    tool = tmp_path / "fake-strip"
    tool.write_text(FAKE_STRIP.format(python=sys.executable, mode=mode))
    tool.chmod(0o755)
    copy = tmp_path / source.name
    shutil.copy2(source, copy)
    saved, reason = strip_dist.strip_file(copy, strip_tool=str(tool))
    assert saved == 0 and "same memory image" in reason
    assert copy.read_bytes() == source.read_bytes()
    assert {p.name for p in tmp_path.iterdir()} == {source.name, "fake-strip"}  # no temporary left behind


def test_build_script_strips_before_the_frozen_selftest() -> None:
    script = (LINUX / "build_linux.sh").read_text(encoding="utf-8")
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    assert "strip_dist.py dist/hemalens" in code
    assert code.index("strip_dist.py") < code.index("--selftest")
    assert code.index("PyInstaller") < code.index("strip_dist.py")

