"""Turn any image file a technician may have into an RGB uint8 array, or say clearly why not.

Pillow does the decoding (JPEG, PNG, BMP, TIFF incl. 16-bit and multi-page, WebP, GIF); OpenCV is the
fallback for 16-bit colour files Pillow would reduce and for TIFFs Pillow cannot open at all, such as the
floating-point colour TIFFs that analysis software writes. Every failure is an ImageLoadError(path, reason).
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inference.errors import ImageLoadError

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".gif"}
)
DEFAULT_MAX_PIXELS = 100_000_000
# Notes that only say how the file's pixels were brought to 8-bit RGB without losing what the model looks at. They
# are shown with the image but do not flag it: a lab whose camera writes 12-bit TIFFs would otherwise see a warning
# on every image, and the ones that matter (greyscale, a low resolution, unlike the training images) would drown.
ROTATED = "rotated upright per EXIF orientation"
UNIT_FLOAT_SCALED = "floating-point image scaled from 0..1"
WIDE_8_BIT = "8-bit values stored in a wider file, read as they are"
_BIT_DEPTH_SCALED = re.compile(r"\d+-bit image( \(largest value \d+\))? scaled to 8-bit")


# A note only an earlier loader wrote: it scaled every 16-bit file from 65535, so a 12-bit camera's image came out
# near black. A call stored with this note was made on pixels decoded that way, and must not be reused.
STALE_DECODING_NOTES = frozenset({"16-bit image scaled to 8-bit"})


def _bit_depth_note(bits: int, largest: int) -> str:
    return f"{bits}-bit image (largest value {largest}) scaled to 8-bit"


def needs_attention(note: str) -> bool:
    """Whether a note about an image should flag it (⚠) rather than only be shown: False for a faithful
    conversion (bit depth, EXIF rotation), True for everything else, notes of other modules included."""
    return note not in (ROTATED, UNIT_FLOAT_SCALED, WIDE_8_BIT) and not _BIT_DEPTH_SCALED.fullmatch(note)



@dataclass(frozen=True, eq=False)  # holds an array: compared by identity
class LoadedImage:
    """A decoded image: ``rgb`` is (H, W, 3) uint8 C-contiguous; ``notes`` say what was changed on the way."""

    path: Path
    rgb: np.ndarray
    notes: tuple[str, ...] = ()

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.rgb.shape[1], self.rgb.shape[0]


def is_image_path(path: str | Path) -> bool:
    """True when the file name has an image extension we can try to read (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _scale_to_uint8(arr: np.ndarray, notes: list[str]) -> np.ndarray:
    """Scale integer / float sample data to 0..255 without truncating the high bits."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(finite.min(initial=0.0)), float(finite.max(initial=0.0))
        if lo >= 0.0 and hi <= 1.0:
            notes.append(UNIT_FLOAT_SCALED)
            return np.clip(finite * 255.0 + 0.5, 0, 255).astype(np.uint8)
        notes.append("floating-point image stretched to its own range")
        span = hi - lo if hi > lo else 1.0
        return np.clip((finite - lo) * (255.0 / span) + 0.5, 0, 255).astype(np.uint8)
    # Integer data in a wider file. Microscope cameras record 10, 12 or 14 bits and store them in 16-bit files:
    # scaled as 16-bit, a 12-bit picture shows near black (0..16). So the range is the smallest usual bit depth that
    # holds the largest value (a smear's bright background reaches near the top of its camera's range).
    lo, hi = int(arr.min(initial=0)), int(arr.max(initial=0))
    if lo >= 0 and hi <= 65535:
        bits = next(b for b in (8, 10, 12, 14, 16) if hi < 1 << b)
        full = (1 << bits) - 1
        if bits == 8:
            notes.append(WIDE_8_BIT)
        else:
            notes.append(_bit_depth_note(bits, hi))
        return ((arr.astype(np.uint32) * 255 + full // 2) // full).astype(np.uint8)
    notes.append("high-bit-depth image stretched to its own range")
    span = float(hi - lo) if hi > lo else 1.0
    return np.clip((arr.astype(np.float64) - lo) * (255.0 / span) + 0.5, 0, 255).astype(np.uint8)


def _to_rgb_array(im: Image.Image, notes: list[str]) -> np.ndarray:
    mode = im.mode
    if mode in ("RGB",):
        return np.asarray(im)
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        grey = _scale_to_uint8(np.asarray(im), notes)
        notes.append("greyscale shown as RGB")
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        alpha = np.asarray(rgba)[:, :, 3]
        if alpha.min() < 255:
            notes.append("transparency flattened onto white")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
    elif mode in ("L", "1"):
        notes.append("greyscale shown as RGB")
    return np.asarray(im.convert("RGB"))


def _opencv_samples(path: Path) -> np.ndarray | None:
    """The file's samples as OpenCV decodes them (any depth, BGR order, orientation ignored); None if it cannot."""
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # works with non-ASCII paths, unlike cv2.imread on Windows
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    except (OSError, cv2.error):
        return None


def _samples_to_rgb(arr: np.ndarray, notes: list[str]) -> np.ndarray | None:
    """OpenCV's grey, BGR or BGRA samples of any depth as RGB uint8, transparency flattened onto white; None for
    another layout."""
    if arr.ndim not in (2, 3) or arr.size == 0 or arr.dtype == np.int8:
        return None
    arr = arr if arr.ndim == 3 else arr[:, :, None]
    if arr.shape[2] == 1:
        notes.append("greyscale shown as RGB")
        return np.repeat(_scale_to_uint8(arr[:, :, 0], notes)[:, :, None], 3, axis=2)
    if arr.shape[2] not in (3, 4):
        return None
    rgb = arr[:, :, 2::-1]
    if arr.shape[2] == 4:
        floating = np.issubdtype(arr.dtype, np.floating)
        full = 1.0 if floating else float(np.iinfo(arr.dtype).max)
        alpha = np.clip(np.nan_to_num(arr[:, :, 3:4].astype(np.float32)) / full, 0.0, 1.0)
        if float(alpha.min()) < 1.0:
            notes.append("transparency flattened onto white")
            flat = rgb.astype(np.float32) * alpha + full * (1.0 - alpha)
            rgb = flat if floating else (flat + 0.5).astype(arr.dtype)
    return _scale_to_uint8(np.ascontiguousarray(rgb), notes)


def _decode_with_opencv(path: Path, notes: list[str]) -> np.ndarray | None:
    """16-bit colour PNG/TIFF: Pillow keeps only 8 bits per channel; OpenCV keeps all 16 for proper scaling."""
    arr = _opencv_samples(path)
    if arr is None or arr.ndim != 3 or arr.dtype != np.uint16:
        return None
    return _samples_to_rgb(arr, notes)


def _refuse_if_too_large(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageLoadError(
            path,
            f"the image is {width} x {height} pixels ({width * height / 1e6:.0f} MP), above the limit of "
            f"{max_pixels / 1e6:.0f} MP; refused to protect memory (possible decompression bomb)",
        )


def _tiff_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a TIFF's first directory without decoding it; None when it is no TIFF."""
    from PIL import TiffImagePlugin

    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a damaged directory is reported as unreadable, not as a warning
            header = f.read(8)
            if header[:4] not in (b"II*\0", b"MM\0*"):
                return None
            directory = TiffImagePlugin.ImageFileDirectory_v2(header)
            f.seek(directory.next)
            directory.load(f)
            return int(directory[256]), int(directory[257])
    except (OSError, KeyError, ValueError, TypeError, SyntaxError):
        return None


def _decode_tiff_pillow_cannot(path: Path, notes: list[str], max_pixels: int) -> np.ndarray | None:
    """A TIFF Pillow does not open, decoded by OpenCV if it can: mostly the 32-bit floating-point colour TIFFs
    that analysis software writes. None when it is no TIFF or OpenCV cannot decode it either."""
    size = _tiff_size(path)
    if size is None:
        return None
    _refuse_if_too_large(path, *size, max_pixels)  # before decoding, as for every other image
    arr = _opencv_samples(path)
    return None if arr is None else _samples_to_rgb(arr, notes)


def load_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode ``path`` into an RGB uint8 image honouring EXIF orientation; raises ImageLoadError."""
    path = Path(path)
    try:
        if not path.exists():
            raise ImageLoadError(path, "the file does not exist")
        if path.is_dir():
            try:
                with os.scandir(path):
                    pass
            except OSError as exc:
                raise ImageLoadError(path, f"a folder that cannot be read ({exc.strerror or exc}), so the images "
                                           "in it were not listed") from None
            raise ImageLoadError(path, "this is a folder, not an image file")
        if not path.is_file():  # opening a pipe would wait for a writer forever
            raise ImageLoadError(path, "not a regular file (a pipe, socket or device), so it is not read")
        if path.stat().st_size == 0:
            raise ImageLoadError(path, "the file is empty (0 bytes)")
    except OSError as exc:
        raise ImageLoadError(path, f"the file cannot be read ({exc.strerror or exc})") from None

    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(path)
    except Image.DecompressionBombError:
        # Pillow's own hard limit (about 179 MP) is hit before ours could be checked.
        raise ImageLoadError(path, "the image is too large to open safely (possible decompression bomb)") from None
    except UnidentifiedImageError:
        try:
            rgb = _decode_tiff_pillow_cannot(path, notes, max_pixels)
        except MemoryError:
            raise ImageLoadError(path, "not enough memory to decode this image") from None
        if rgb is None:
            raise ImageLoadError(path, "not an image in a format HemaLens can read (or the file is damaged)") from None
        return LoadedImage(path=path, rgb=np.ascontiguousarray(rgb), notes=tuple(dict.fromkeys(notes)))
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageLoadError(path, f"the file cannot be opened as an image ({exc})") from None
    try:
        width, height = im.size
        if width <= 0 or height <= 0:
            raise ImageLoadError(path, "the image has no pixels")
        _refuse_if_too_large(path, width, height, max_pixels)
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            im.seek(0)
            notes.append(f"first page of {frames}")
        try:
            im.load()
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            text = str(exc)
            reason = "the file is truncated or damaged" if "truncat" in text.lower() else f"damaged image data ({text})"
            raise ImageLoadError(path, reason) from None
        orientation = im.getexif().get(0x0112, 1) if hasattr(im, "getexif") else 1
        if orientation not in (1, 2, 3, 4, 5, 6, 7, 8):
            orientation = 1
        rgb = None
        if im.format in ("PNG", "TIFF") and im.mode in ("RGB", "RGBA") and _has_16bit_samples(im, path):
            rgb = _decode_with_opencv(path, notes)
            if rgb is not None:
                rgb = _orient(rgb, orientation)
        if rgb is None:
            if orientation != 1:
                im = ImageOps.exif_transpose(im)
            rgb = _to_rgb_array(im, notes)
        if orientation != 1:
            notes.append(ROTATED)
    except ImageLoadError:
        raise
    except MemoryError:
        raise ImageLoadError(path, "not enough memory to decode this image") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure becomes a typed, readable error
        raise ImageLoadError(path, f"the image cannot be decoded ({type(exc).__name__}: {exc})") from None
    finally:
        im.close()
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageLoadError(path, f"unexpected pixel layout {rgb.shape} {rgb.dtype}")
    return LoadedImage(path=path, rgb=np.ascontiguousarray(rgb), notes=tuple(dict.fromkeys(notes)))


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an (H, W, C) array, as Pillow's exif_transpose does."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.transpose(1, 0, 2)
    if orientation == 6:
        return np.rot90(arr, -1)
    if orientation == 7:
        return arr[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return np.rot90(arr, 1)
    return arr


def _has_16bit_samples(im: Image.Image, path: Path) -> bool:
    """Whether a PNG/TIFF stores 16 bits per colour sample (Pillow then keeps only the high byte)."""
    if im.format == "PNG":
        try:
            with open(path, "rb") as f:
                header = f.read(25)
        except OSError:
            return False
        return len(header) >= 25 and header[12:16] == b"IHDR" and header[24] == 16
    tags = getattr(im, "tag_v2", None)
    bits = tags.get(258) if tags else None  # TIFF BitsPerSample
    if isinstance(bits, (tuple, list)):
        return any(b == 16 for b in bits)
    return bits == 16
