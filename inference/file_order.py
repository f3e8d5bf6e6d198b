"""The order files are listed in everywhere (table, keyboard, reports): the order a file manager shows."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[tuple[int, int | str], ...], str]:
    """Numbers by value ("Image 2" before "Image 10"), letters in any case; the text itself breaks ties.

    Why: microscope software numbers its files without leading zeros, and a plain sort put "Image 10" before
    "Image 2".
    """
    return tuple((0, int(t)) if t.isdigit() else (1, t.lower()) for t in _DIGITS.split(text) if t), text
