"""How files HemaLens writes for people are made: the mode a file the user creates normally gets (0666 less
the umask), and how odd file names are written into them.

Files written atomically start as ``tempfile.mkstemp``'s owner-only 0600; exported models, reports and
saved pictures are meant to be opened by colleagues too, so they are given this mode before the rename.
"""

from __future__ import annotations

import os


def new_file_mode() -> int:
    """0666 less the umask in force now (read when called, so a changed umask is followed)."""
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return 0o666 & ~mask


# How files HemaLens writes (reports, results) encode text: a file name that is not valid UTF-8 reaches Python as
# lone surrogates; written as "\udcXX" escapes, a CSV stays valid UTF-8 and a JSON reads back to the exact name.
NAME_BYTES = "backslashreplace"
