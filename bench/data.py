"""Benchmark images: real smear images from ../shared/data when present, generated ones otherwise.

Nothing here is committed or downloaded; generated images are smear-like JPEGs (pale background,
stained round cells) at the real data's size, so decoding costs what it would on real files.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from inference.images import is_image_path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_SIZE = 224


def data_root() -> Path | None:
    """The shared data folder, or None when this checkout has none ($HEMALENS_BENCH_DATA overrides)."""
    root = Path(os.environ.get("HEMALENS_BENCH_DATA", str(SHARED_DATA)))
    return root if root.is_dir() else None


def _class_files(folder: Path) -> list[list[Path]]:
    classes = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return [sorted(f for f in c.iterdir() if f.is_file() and is_image_path(f)) for c in classes]


def spread_pick(groups: list[list[Path]], count: int) -> list[Path]:
    """``count`` files taken round-robin over the groups (classes), evenly spaced inside each."""
    groups = [g for g in groups if g]
    total = sum(len(g) for g in groups)
    if not groups or count <= 0:
        return []
    count = min(count, total)
    quota = [0] * len(groups)
    k = 0
    while sum(quota) < count:
        if quota[k % len(groups)] < len(groups[k % len(groups)]):
            quota[k % len(groups)] += 1
        k += 1
    picked = []
    for g, q in zip(groups, quota, strict=True):
        idx = np.linspace(0, len(g) - 1, q).round().astype(int) if q else []
        picked += [g[i] for i in idx]
    return picked


def real_images(dataset: str | None, count: int) -> list[Path]:
    """``count`` real images of ``dataset`` (all datasets pooled when it is None or unknown)."""
    root = data_root()
    if root is None:
        return []
    if dataset and (root / dataset).is_dir():
        return spread_pick(_class_files(root / dataset), count)
    groups = [g for d in sorted(p for p in root.iterdir() if p.is_dir()) for g in _class_files(d)]
    return spread_pick(groups, count)


def smear_like(rng: np.random.Generator, size: int = REAL_SIZE) -> np.ndarray:
    """One synthetic smear field (RGB uint8): pink background, purple nuclei, some noise."""
    img = np.empty((size, size, 3), np.uint8)
    img[...] = (rng.integers(215, 240), rng.integers(190, 215), rng.integers(200, 225))
    for _ in range(int(rng.integers(3, 9))):
        centre = (int(rng.integers(0, size)), int(rng.integers(0, size)))
        radius = int(rng.integers(size // 20, size // 6))
        cv2.circle(img, centre, radius, (int(rng.integers(180, 220)), 120, 150), -1)
        cv2.circle(img, centre, max(2, radius * 2 // 3), (90, 50, int(rng.integers(110, 160))), -1)
    noise = rng.normal(0, 6, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def generate_images(folder: Path, count: int, size: int = REAL_SIZE, seed: int = 7) -> list[Path]:
    """Write ``count`` smear-like JPEGs into ``folder`` (reused when already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"gen_{i:05d}.jpg"
        if not path.exists():
            cv2.imwrite(str(path), cv2.cvtColor(smear_like(rng, size), cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(path)
    return paths


def image_set(dataset: str | None, count: int, scratch: Path) -> tuple[list[Path], str]:
    """``count`` images for a model and where they came from (real data first, topped up with generated)."""
    real = real_images(dataset, count)
    if len(real) >= count:
        where = f"{dataset}/" if dataset and data_root() and (data_root() / dataset).is_dir() else "shared data"
        return real, f"real ({where})"
    extra = generate_images(scratch / "generated", count - len(real))
    return real + extra, f"{len(real)} real + {len(extra)} generated {REAL_SIZE}px"


def folder_of(count: int, dest: Path, scratch: Path) -> tuple[Path, str]:
    """A folder with ``count`` distinct image files: symlinks to real images, or small generated JPEGs."""
    dest.mkdir(parents=True, exist_ok=True)
    sources = real_images(None, count)
    if len(sources) < count:
        sources += generate_images(scratch / "generated", count - len(sources))
    for i, src in enumerate(sources):
        link = dest / f"img_{i:05d}{src.suffix.lower()}"
        if not link.exists():
            link.symlink_to(src.resolve())
    real = sum(1 for s in sources if "generated" not in s.parts)
    return dest, f"{count} files ({real} symlinks to real images, {count - real} generated)"
