"""The block split shared by training and `hemalens evaluate --split test`.

Consecutive file numbers in the public blood-cell sets often come from the same slide, so a random
image-level split leaks near-identical images into the test set. Instead, within each class the files
are sorted by the number in their name and cut into contiguous blocks: the first 70 % train, the next
15 % validation, the last 15 % test. Training imports this module too, so both sides agree exactly.
Qt-free and torch-free on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from inference.errors import HemaLensError

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)
_DIGITS = re.compile(r"\d+")


class SplitError(HemaLensError):
    """A split was asked for with arguments that make no sense (unknown name, bad fractions)."""


def numeric_key(path: str | Path) -> tuple[int, str]:
    """Sort key: the last run of digits in the file stem (e.g. 'WBC-Benign-012' -> 12), then the name.

    Files without digits sort after numbered ones, by name, so the order is always total and stable.
    """
    name = Path(path).name
    runs = _DIGITS.findall(Path(path).stem)
    number = int(runs[-1]) if runs else 2**63 - 1
    return number, name


def block_bounds(n: int, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> tuple[int, int]:
    """End indices (exclusive) of the train and validation blocks for ``n`` sorted files.

    Rounding is to the nearest file; with at least 3 files every block gets one, so a tiny class
    still contributes to each split.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise SplitError(f"split fractions must be 3 non-negative numbers summing to 1, got {tuple(fractions)}")
    train_end = int(round(n * fractions[0]))
    val_end = int(round(n * (fractions[0] + fractions[1])))
    if n >= 3:
        train_end = min(max(train_end, 1), n - 2)
        val_end = min(max(val_end, train_end + 1), n - 1)
    return train_end, val_end


def split_files(
    paths: Iterable[str | Path], split: str, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> list[Path]:
    """The files of one class that fall into ``split`` ('train', 'val', 'test' or 'all'), in block order."""
    ordered = sorted((Path(p) for p in paths), key=numeric_key)
    if split == "all":
        return ordered
    if split not in SPLITS:
        raise SplitError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)} or 'all'")
    train_end, val_end = block_bounds(len(ordered), fractions)
    if split == "train":
        return ordered[:train_end]
    if split == "val":
        return ordered[train_end:val_end]
    return ordered[val_end:]


def split_of(
    path: str | Path, class_paths: Iterable[str | Path], fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> str:
    """Which split one file of a class falls into (for reports)."""
    target = Path(path)
    for name in SPLITS:
        if target in split_files(class_paths, name, fractions):
            return name
    raise SplitError(f"{target.name} is not one of the class files")


SPLIT_DESCRIPTION = (
    "Per class, files sorted by the number in their file name and cut into contiguous blocks: "
    "first 70% train, next 15% validation, last 15% test (inference/splits.py). "
    "No patient identifiers exist, so this is not a patient-level split."
)


def labelled_folder(root: str | Path, split: str = "all", fractions: Sequence[float] = DEFAULT_FRACTIONS,
                    suffixes: Iterable[str] | None = None) -> dict[str, list[Path]]:
    """ImageFolder layout (``root/<class>/<image>``) -> {class folder: files of ``split``}, folders sorted.

    ``suffixes`` are the lower-case image suffixes to keep (default: common image types).
    """
    base = Path(root)
    if not base.is_dir():
        raise SplitError(f"{base} is not a folder")
    keep = {s.lower() for s in (suffixes or (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"))}
    out: dict[str, list[Path]] = {}
    for sub in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = [p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in keep]
        if files:
            out[sub.name] = split_files(files, split, fractions)
    return out


def split_fingerprint(folder: dict[str, list[Path]]) -> str:
    """SHA-256 of the sorted 'class/file' names: lets a model recognise its own test block later."""
    import hashlib

    names = sorted(f"{cls}/{p.name}" for cls, files in folder.items() for p in files)
    return hashlib.sha256("\n".join(names).encode()).hexdigest()
