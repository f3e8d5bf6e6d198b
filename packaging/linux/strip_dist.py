"""Strip the symbol tables left in the shared libraries of a PyInstaller dist (a post-build step).

Some wheels ship their libraries with symbol tables (Pillow's ``_imaging`` 3.5 MB of which 2.7 MB
are symbols, Qt's ICU, libpython, NumPy's ``_multiarray_umath``, OpenCV's codec libraries): about
8 MB of the dist that nothing reads at run time. ``strip --strip-unneeded`` removes them and keeps
the dynamic symbol table that the loader and ``import`` use.

Why not PyInstaller's ``strip=True``: it strips every binary, and on some binutils versions
stripping a library that auditwheel/patchelf rewrote leaves a load segment whose file offset no
longer matches its address modulo the page size; glibc then refuses it ("ELF load command
address/offset not page-aligned"). NumPy's OpenBLAS is the documented casualty (PyInstaller issue
9463, on Ubuntu 22.04 runners), its gfortran runtime another (NumPy issue 20101). So this step:

- only touches ELF shared objects whose section table still has ``.symtab`` (not yet stripped);
- never touches OpenBLAS or the Fortran runtime it brings (:data:`DENY_PATTERNS`);
- strips into a copy and keeps that copy only when the loader would map it exactly as the original
  (same segments, every allocated section at the same address with the same bytes) and glibc's
  alignment check passes (:func:`same_memory_image`), whatever binutils did, and when it is smaller.

build_linux.sh runs it before the frozen ``--selftest``, which then loads the stripped libraries.
Usage: ``python packaging/linux/strip_dist.py dist/hemalens`` (standard library only).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# Never stripped: OpenBLAS (NumPy's libscipy_openblas64_*, OpenCV's libopenblas*) and the Fortran
# runtime it links (libgfortran, libquadmath). Matched against the file name, case-insensitively.
DENY_PATTERNS = ("openblas", "gfortran", "quadmath")
_DENY_RE = re.compile("|".join(re.escape(p) for p in DENY_PATTERNS), re.IGNORECASE)
_SHARED_OBJECT_NAME_RE = re.compile(r"\.so(\.[0-9][0-9a-z.]*)?$")

_ET_DYN = 3
_PT_LOAD = 1
_SHT_SYMTAB = 2
_SHT_NOBITS = 8
_SHF_ALLOC = 0x2
PAGE_SIZE = 4096  # the smallest page size glibc checks against on x86-64 and most aarch64 kernels


@dataclass(frozen=True)
class LoadSegment:
    """One ``PT_LOAD`` program header: what the dynamic loader maps."""

    offset: int
    vaddr: int
    filesz: int
    memsz: int
    flags: int
    align: int


@dataclass(frozen=True)
class Section:
    """One section header (name resolved)."""

    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int


@dataclass(frozen=True)
class ElfInfo:
    """The parts of an ELF file this step decides on."""

    elf_type: int
    loads: tuple[LoadSegment, ...]
    sections: tuple[Section, ...]

    @property
    def has_symtab(self) -> bool:
        return any(s.type == _SHT_SYMTAB for s in self.sections)

    @property
    def allocated(self) -> tuple[Section, ...]:
        """The sections that end up in memory (what the program and the loader can see)."""
        return tuple(s for s in self.sections if s.flags & _SHF_ALLOC)


def read_elf(path: Path) -> ElfInfo | None:
    """Parse the ELF file at ``path``; None if it is unreadable or not ELF."""
    try:
        return parse_elf(path.read_bytes())
    except OSError:
        return None


def parse_elf(data: bytes) -> ElfInfo | None:
    """Parse the ELF header, the load segments and the section headers; None if ``data`` is not ELF."""
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        return None
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    try:
        e_type, = struct.unpack_from(end + "H", data, 16)
        if is64:
            e_phoff, e_shoff = struct.unpack_from(end + "QQ", data, 32)
            e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx = struct.unpack_from(end + "HHHHH", data, 54)
        else:
            e_phoff, e_shoff = struct.unpack_from(end + "II", data, 28)
            e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx = struct.unpack_from(end + "HHHHH", data, 42)
        loads = []
        for i in range(e_phnum):
            base = e_phoff + i * e_phentsize
            if is64:
                p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, p_align = struct.unpack_from(
                    end + "IIQQQQQQ", data, base)
            else:
                p_type, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, p_flags, p_align = struct.unpack_from(
                    end + "IIIIIIII", data, base)
            if p_type == _PT_LOAD:
                loads.append(LoadSegment(p_offset, p_vaddr, p_filesz, p_memsz, p_flags, p_align))
        raw = []
        for i in range(e_shnum if e_shoff else 0):
            base = e_shoff + i * e_shentsize
            if is64:
                name, sh_type, flags, addr, offset, size = struct.unpack_from(end + "IIQQQQ", data, base)
            else:
                name, sh_type, flags, addr, offset, size = struct.unpack_from(end + "IIIIII", data, base)
            raw.append((name, sh_type, flags, addr, offset, size))
        strtab = raw[e_shstrndx] if 0 < e_shstrndx < len(raw) else None
        sections = []
        for name, sh_type, flags, addr, offset, size in raw:
            label = ""
            if strtab is not None:
                start = strtab[4] + name
                label = data[start:data.index(b"\0", start)].decode("ascii", "replace")
            sections.append(Section(label, sh_type, flags, addr, offset, size))
    except (struct.error, ValueError):  # truncated or corrupt headers: not something to touch
        return None
    return ElfInfo(e_type, tuple(loads), tuple(sections))


def is_denied(name: str) -> bool:
    """True for the libraries that are never stripped (OpenBLAS and its Fortran runtime)."""
    return _DENY_RE.search(name) is not None


def segments_aligned(loads: tuple[LoadSegment, ...]) -> bool:
    """What glibc's loader demands of every load segment: offset and address agree modulo page and alignment."""
    for seg in loads:
        delta = seg.vaddr - seg.offset
        if delta % PAGE_SIZE or (seg.align > 1 and delta % seg.align):
            return False
    return True


def _mapped_at(section: Section, loads: tuple[LoadSegment, ...]) -> bool:
    """The loader puts this section's bytes (or zeroes, for .bss-like ones) at its address."""
    for seg in loads:
        if seg.vaddr <= section.addr and section.addr + section.size <= seg.vaddr + seg.memsz:
            if section.type == _SHT_NOBITS:
                return True
            inside = section.addr - seg.vaddr
            return inside + section.size <= seg.filesz and seg.offset + inside == section.offset
    return False


def same_memory_image(original: ElfInfo, stripped: ElfInfo, original_bytes: bytes, stripped_bytes: bytes) -> bool:
    """The loader maps the stripped copy exactly as it mapped the original, and glibc accepts it.

    Load segments keep their number, addresses, permissions and alignment (they may end earlier:
    strip drops padding patchelf left at their ends); every allocated section keeps its address,
    size and bytes and is still mapped at that address; every segment passes glibc's alignment check.
    """
    def shape(seg: LoadSegment) -> tuple[int, int, int]:
        return seg.vaddr, seg.flags, seg.align

    if stripped.elf_type != original.elf_type or stripped.has_symtab:
        return False
    if [shape(s) for s in stripped.loads] != [shape(s) for s in original.loads]:
        return False
    pairs = zip(stripped.loads, original.loads, strict=True)
    if any(new.filesz > old.filesz or new.memsz > old.memsz for new, old in pairs):
        return False
    if not segments_aligned(stripped.loads):
        return False
    before = {(s.name, s.addr): s for s in original.allocated}
    after = {(s.name, s.addr): s for s in stripped.allocated}
    if before.keys() != after.keys():
        return False
    for key, old in before.items():
        new = after[key]
        if (new.type, new.size, new.flags) != (old.type, old.size, old.flags) or not _mapped_at(new, stripped.loads):
            return False
        if old.type != _SHT_NOBITS and (original_bytes[old.offset:old.offset + old.size]
                                        != stripped_bytes[new.offset:new.offset + new.size]):
            return False
    return True


def candidates(dist: Path) -> list[Path]:
    """Regular (non-symlink) ELF shared objects under ``dist`` that still carry ``.symtab`` and are not denied."""
    found = []
    for path in sorted(dist.rglob("*")):
        if path.is_symlink() or not path.is_file() or not _SHARED_OBJECT_NAME_RE.search(path.name):
            continue
        if is_denied(path.name):
            continue
        info = read_elf(path)
        if info is not None and info.elf_type == _ET_DYN and info.has_symtab:
            found.append(path)
    return found


@dataclass
class StripResult:
    """What :func:`strip_dist` did: bytes saved, files stripped, files left alone and why."""

    saved: int = 0
    stripped: list[Path] = field(default_factory=list)
    kept: dict[Path, str] = field(default_factory=dict)


def strip_file(path: Path, strip_tool: str = "strip") -> tuple[int, str]:
    """Strip one library in place if that is safe; returns (bytes saved, reason when not stripped)."""
    try:
        original_bytes = path.read_bytes()
    except OSError:
        return 0, "not ELF"
    original = parse_elf(original_bytes)
    if original is None:
        return 0, "not ELF"
    with tempfile.TemporaryDirectory(prefix="hemalens-strip-", dir=path.parent) as tmp:
        target = Path(tmp) / path.name
        done = subprocess.run([strip_tool, "--strip-unneeded", "-o", str(target), str(path)],
                              capture_output=True, text=True)
        if done.returncode != 0 or not target.is_file():
            return 0, f"{strip_tool} failed: {(done.stderr or done.stdout).strip()[:200]}"
        stripped_bytes = target.read_bytes()
        stripped = parse_elf(stripped_bytes)
        if stripped is None or not same_memory_image(original, stripped, original_bytes, stripped_bytes):
            return 0, "the stripped copy would not load to the same memory image"
        saved = path.stat().st_size - target.stat().st_size
        if saved <= 0:
            return 0, "no smaller"
        shutil.copymode(path, target)
        os.replace(target, path)
    return saved, ""


def strip_dist(dist: Path, strip_tool: str = "strip") -> StripResult:
    """Strip every candidate library under ``dist`` (see the module docstring); returns what happened."""
    result = StripResult()
    if shutil.which(strip_tool) is None:
        return result
    for path in candidates(dist):
        saved, reason = strip_file(path, strip_tool)
        if saved:
            result.saved += saved
            result.stripped.append(path)
        else:
            result.kept[path] = reason
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Strip symbol tables from the dist's shared libraries.")
    parser.add_argument("dist", type=Path, help="the PyInstaller one-folder dist, e.g. dist/hemalens")
    parser.add_argument("--strip-tool", default="strip")
    args = parser.parse_args(argv)
    if not args.dist.is_dir():
        parser.error(f"{args.dist} is not a folder: build the dist first")
    if shutil.which(args.strip_tool) is None:
        print(f"strip         skipped: {args.strip_tool} not found (binutils)")
        return 0
    result = strip_dist(args.dist, args.strip_tool)
    print(f"strip         {len(result.stripped)} libraries, {result.saved / 1e6:.1f} MB saved "
          f"(never: {', '.join(DENY_PATTERNS)})")
    for path, reason in result.kept.items():
        print(f"  left as is  {path.relative_to(args.dist)}: {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
