"""Plain records the GUI keeps per image and per loaded model (no Qt, no heavy arrays).

A row keeps only the calibrated probabilities (a few floats), never the image or the Grad-CAM
tensors: the detail view recomputes those for the one image on screen, so 10,000 rows stay small.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.images import needs_attention

QUEUED = "Queued"
DONE = "Done"
FAILED = "Failed"
CANCELLED = "Not classified"


@dataclass
class ImageItem:
    """One image in the open set and what is known about it so far."""

    path: Path
    status: str = QUEUED
    image_hash: str | None = None
    probabilities: np.ndarray | None = None
    error: str | None = None
    notes: tuple[str, ...] = ()
    reviewed_id: str | None = None
    flagged: bool = False
    comment: str = ""
    reviewer: str | None = None
    decision_count: int = 0  # decisions on record for this content when the row was last synced: a version
    same_as: str = ""  # the file earlier in the list with identical content: one record, counted once
    name: str = ""  # as the list shows it: the path under the opened folder (shown_name), else the file name

    def __post_init__(self) -> None:
        self.name = self.name or self.path.name

    @property
    def warnings(self) -> tuple[str, ...]:
        """The notes that flag the image (⚠): all but faithful conversions such as a 12-bit camera's bit depth."""
        return tuple(n for n in self.notes if needs_attention(n))


def names_folder(sources: list[Path]) -> Path:
    """The folder the list names files under: the opened folder, or the opened files' common folder. Worked out
    from the paths as typed (absolute, symbolic links not followed), as the listing gives them."""
    folders = [os.path.abspath(p if p.is_dir() else p.parent) for p in sources]
    try:
        return Path(os.path.commonpath(folders)) if folders else Path.cwd()
    except ValueError:  # on different drives (Windows)
        return Path(folders[0])


def shown_name(path: Path, folder: Path | None) -> str:
    """The file's path under ``folder`` (``names_folder``), as the list and messages show it.

    Sub-folders often mean something (one per slide, per patient, or per class in a labelled folder), and two of
    them may hold files of the same name; the file name alone hides both. Outside ``folder``: the file name.
    Lexical only (no file system call). For a whole list, ``namer`` is an order of magnitude faster.
    """
    return namer(folder)(path)


def namer(folder: Path | None) -> Callable[[Path], str]:
    """``shown_name`` for many paths under one folder: a prefix test per path, the general way only for paths that
    are not plainly under it (relative, or with ``..`` in them). 10,000 names take about 10 ms on the GUI thread
    instead of 150."""
    if folder is None:
        return lambda path: path.name
    prefix = os.path.join(str(folder), "")

    def name(path: Path) -> str:
        text = str(path)
        if text.startswith(prefix) and os.pardir not in text:
            return text[len(prefix):].replace(os.sep, "/")
        try:
            relative = os.path.relpath(os.path.abspath(text), folder)
        except ValueError:  # on another drive (Windows)
            return path.name
        if relative == os.pardir or relative.startswith(os.pardir + os.sep):
            return path.name
        return Path(relative).as_posix()

    return name


def same_file_notes(item: ImageItem) -> list[str]:
    """What the row and panel say of a file whose content another file of the set has too."""
    if not item.same_as:
        return []
    return [f"identical file to {item.same_as}: one review record for both (deciding one decides the other), "
            "counted once in the differential and the report"]


@dataclass(frozen=True)
class ItemResult:
    """What the batch worker learned about one image (sent to the GUI thread by signal)."""

    row: int
    path: Path
    image_hash: str | None
    probabilities: np.ndarray | None
    error: str | None
    notes: tuple[str, ...] = ()
    cached: bool = False


@dataclass(frozen=True)
class ModelInfo:
    """A model loaded by a worker thread.

    ``session`` is an inference.session.ModelSession created in a worker thread; the GUI thread only
    passes the reference back to workers and never runs it.
    """

    path: Path
    spec: Any
    sha256: str
    cam_method: str | None
    providers: tuple[str, ...] = ()
    session: Any = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return str(self.spec.name)

    @property
    def version(self) -> str:
        return str(getattr(self.spec, "version", "") or "")

    @property
    def class_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.spec.classes)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.spec.classes)

    @property
    def assumed(self) -> bool:
        return bool(getattr(self.spec, "assumed", False))
