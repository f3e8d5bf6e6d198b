"""Scan an ImageFolder data set, apply the shared block split and cache decoded images as uint8.

Decoding ~10k JPEGs costs minutes on two shared cores, so each set is decoded once at the training
resolution and kept under training/runs/cache (gitignored). The images are resized the way the
runtime does ("stretch", a plain resize; the single-cell models declare "center_crop", which on these
within-1 %-of-square images gives the same pixels to within one), so training sees what the shipped
model will see.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inference.splits import SPLITS, split_files

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
CACHE_DIR = Path(__file__).resolve().parent / "runs" / "cache"


@dataclass
class SplitArrays:
    """Images (N,H,W,3 uint8 RGB), integer labels (N,) and the file names, for one split."""

    images: np.ndarray
    labels: np.ndarray
    files: list[str]


def class_folders(root: Path) -> list[str]:
    """Class folder names in sorted order: this order is the model's output order."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def class_files(root: Path, cls: str) -> list[Path]:
    return [p for p in (root / cls).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]


def decode(path: Path, size: int) -> np.ndarray:
    """RGB uint8 at size x size (area interpolation when shrinking, like a careful runtime resize)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot decode {path}")
    h, w = bgr.shape[:2]
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    bgr = cv2.resize(bgr, (size, size), interpolation=interp)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def load_split(root: Path, size: int, split: str) -> SplitArrays:
    """Decoded images of one split, from the cache when present."""
    root = Path(root)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    cache = CACHE_DIR / f"{root.name}_{size}_{split}.npz"
    if cache.exists():
        data = np.load(cache, allow_pickle=False)
        return SplitArrays(data["images"], data["labels"], [str(f) for f in data["files"]])
    images, labels, files = [], [], []
    for idx, cls in enumerate(class_folders(root)):
        for path in split_files(class_files(root, cls), split):
            images.append(decode(path, size))
            labels.append(idx)
            files.append(f"{cls}/{path.name}")
    arrays = SplitArrays(np.stack(images), np.asarray(labels, dtype=np.int64), files)
    np.savez(cache, images=arrays.images, labels=arrays.labels, files=np.asarray(files))
    return arrays


def load_all_splits(root: Path, size: int) -> dict[str, SplitArrays]:
    return {s: load_split(root, size, s) for s in SPLITS}
