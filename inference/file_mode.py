"""How files HemaLens writes for people are made: the mode a file the user creates normally gets (0666 less
the umask), how odd file names are written into them, and how to tell such a name (one that is not valid UTF-8).

Files written atomically (``write_file_atomically``) start as ``tempfile.mkstemp``'s owner-only 0600; exported
models, reports and saved pictures are meant to be opened by colleagues too, so they are given this mode before the
rename.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def new_file_mode() -> int:
    """0666 less the umask in force now (read when called, so a changed umask is followed)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask. Linux states it in /proc, which leaves it untouched; elsewhere reading it means
    setting it for a moment, when a file another thread creates could get the stand-in mask."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# How files HemaLens writes (reports, results) encode text: a file name that is not valid UTF-8 reaches Python as
# lone surrogates; written as "\udcXX" escapes, a CSV stays valid UTF-8 and a JSON reads back to the exact name.
NAME_BYTES = "backslashreplace"


def odd_name_bytes(path: str | Path) -> bytes | None:
    """The raw bytes of a path whose name is not valid UTF-8 (Python holds the odd bytes as lone surrogates,
    which SQLite and Qt text cannot keep), or None for an ordinary path."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text)
    return None


def write_file_atomically(path: str | Path, data: bytes) -> Path:
    """Write ``data`` under a temporary name beside ``path``, flush it to the disk, give it the mode a new file of
    the user gets, then rename it over ``path``: a full disk or a killed process leaves the old file (or none),
    never half of a new one. Raises OSError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
