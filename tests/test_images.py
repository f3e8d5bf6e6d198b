"""Image loading: odd but valid files become correct RGB uint8; broken ones raise a clear ImageLoadError."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from inference.errors import ImageLoadError
from inference.images import IMAGE_EXTENSIONS, is_image_path, load_image


def _gradient(h: int = 24, w: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 90)], axis=2).astype(np.uint8)


def test_extensions_and_is_image_path():
    assert ".png" in IMAGE_EXTENSIONS and ".tiff" in IMAGE_EXTENSIONS and ".webp" in IMAGE_EXTENSIONS
    assert is_image_path("a/B.JPG") and is_image_path("x.tif") and not is_image_path("notes.txt")


@pytest.mark.parametrize("fmt, ext, exact", [("PNG", ".png", True), ("BMP", ".bmp", True), ("TIFF", ".tif", True),
                                             ("JPEG", ".jpg", False), ("WEBP", ".webp", False)])
def test_common_formats_round_trip(tmp_path, fmt, ext, exact):
    rgb = _gradient()
    path = tmp_path / f"img{ext}"
    Image.fromarray(rgb).save(path, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    loaded = load_image(path)
    assert loaded.rgb.shape == rgb.shape and loaded.rgb.dtype == np.uint8 and loaded.rgb.flags.c_contiguous
    diff = np.abs(loaded.rgb.astype(int) - rgb).max()
    assert diff == 0 if exact else diff < 40
    assert loaded.path == path


def test_broken_files_raise_typed_errors(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.png"
    text.write_text("this is not a picture")
    with pytest.raises(ImageLoadError, match="empty"):
        load_image(empty)
    with pytest.raises(ImageLoadError, match="format") as info:
        load_image(text)
    assert info.value.path == text and "text.png" in str(info.value)
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image(tmp_path / "missing.jpg")


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(cv2.resize(_gradient(), (400, 300))).save(buf, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match="truncated|damaged"):
        load_image(path)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a size it does not hold: a decompression-bomb stand-in of ~80 bytes."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    idat = zlib.compress(b"\x00" * 64)
    data = struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    end = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + chunk + data + end


def test_huge_dimensions_are_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(50_000, 50_000))
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(bomb)
    big = tmp_path / "big.png"
    big.write_bytes(_png_header_only(12_000, 10_000))  # 120 MP: above our 100 MP default
    with pytest.raises(ImageLoadError, match="12000 x 10000 .* limit of 100 MP"):
        load_image(big)
    small = tmp_path / "small.png"
    Image.fromarray(_gradient()).save(small)
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(small, max_pixels=100)
    assert load_image(small, max_pixels=24 * 32).rgb.shape == (24, 32, 3)


def test_sixteen_bit_grey_tiff_is_scaled_not_truncated(tmp_path):
    values = np.array([[0, 256, 257, 32768], [40000, 65280, 65534, 65535]], dtype=np.uint16)
    path = tmp_path / "grey16.tif"
    Image.fromarray(values).save(path)
    loaded = load_image(path)
    expected = np.round(values.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(loaded.rgb[:, :, 0], expected)
    np.testing.assert_array_equal(loaded.rgb[:, :, 0], loaded.rgb[:, :, 2])
    assert any("16-bit" in n for n in loaded.notes)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_sixteen_bit_colour_keeps_full_precision(tmp_path, ext):
    rgb16 = (np.random.default_rng(0).random((9, 11, 3)) * 65535).astype(np.uint16)
    path = tmp_path / f"rgb16{ext}"
    assert cv2.imwrite(str(path), rgb16[:, :, ::-1])
    loaded = load_image(path)
    expected = np.round(rgb16.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(loaded.rgb, expected)
    assert any("16-bit" in n for n in loaded.notes)


@pytest.mark.parametrize("bits", [10, 12, 14])
def test_a_cameras_10_to_14_bits_in_a_16_bit_file_use_the_whole_8_bit_range(tmp_path, bits):
    """Scaled as 16-bit, a 12-bit camera's picture came out near black (0..16) and looked unlike any training image."""
    rgb = _gradient()
    full = (1 << bits) - 1
    colour = tmp_path / f"colour{bits}.png"
    assert cv2.imwrite(str(colour), (rgb[:, :, ::-1].astype(np.uint32) * full // 255).astype(np.uint16))
    loaded = load_image(colour)
    assert np.abs(loaded.rgb.astype(int) - rgb).max() <= 1
    assert loaded.notes == (f"{bits}-bit image (largest value {full}) scaled to 8-bit",)
    grey = tmp_path / f"grey{bits}.tif"
    Image.fromarray((rgb[:, :, 0].astype(np.uint32) * full // 255).astype(np.uint16)).save(grey)
    assert np.abs(load_image(grey).rgb[:, :, 0].astype(int) - rgb[:, :, 0]).max() <= 1


def test_8_bit_values_in_a_16_bit_file_are_read_as_they_are(tmp_path):
    path = tmp_path / "wide.png"
    assert cv2.imwrite(str(path), _gradient()[:, :, ::-1].astype(np.uint16))
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.rgb, _gradient())
    assert loaded.notes == ("8-bit values stored in a wider file, read as they are",)


def test_multipage_tiff_reads_first_page_with_note(tmp_path):
    pages = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (10, 120, 240)]
    path = tmp_path / "stack.tiff"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    loaded = load_image(path)
    assert (loaded.rgb == 10).all()
    assert "first page of 3" in loaded.notes


def test_cmyk_jpeg_converts_to_rgb(tmp_path):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:, :16] = (200, 30, 40)
    rgb[:, 16:] = (20, 60, 220)
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    loaded = load_image(path)
    assert np.abs(loaded.rgb[8:24, 2:12].astype(int) - (200, 30, 40)).max() < 25
    assert np.abs(loaded.rgb[8:24, 20:30].astype(int) - (20, 60, 220)).max() < 25
    assert any("CMYK" in n for n in loaded.notes)


def test_exif_orientation_is_honoured(tmp_path):
    rgb = np.zeros((10, 20, 3), np.uint8)  # landscape, left half red
    rgb[:, :10] = (255, 0, 0)
    rgb[:, 10:] = (0, 0, 255)
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    im.save(path, exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.rgb.shape == (20, 10, 3)  # portrait after rotation
    top, bottom = loaded.rgb[2, 5].astype(int), loaded.rgb[17, 5].astype(int)
    assert top[0] > 200 and top[2] < 60  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60
    assert any("EXIF" in n for n in loaded.notes)


def test_non_ascii_file_name(tmp_path):
    folder = tmp_path / "Проба 血液"
    folder.mkdir()
    path = folder / "frottis_é_ü_ø_顕微鏡.png"
    Image.fromarray(_gradient()).save(path)
    np.testing.assert_array_equal(load_image(path).rgb, _gradient())


@pytest.mark.parametrize("mode", ["L", "1", "P", "LA", "RGBA", "I", "F"])
def test_modes_become_rgb(tmp_path, mode):
    base = Image.fromarray(_gradient())
    if mode == "I":
        im = Image.fromarray(np.asarray(base.convert("L")).astype(np.int32) * 257)
    elif mode == "F":
        im = Image.fromarray(np.asarray(base.convert("L")).astype(np.float32) / 255.0)
    else:
        im = base.convert(mode)
    ext = ".tif" if mode in ("I", "F") else ".png"
    path = tmp_path / f"m_{mode}{ext}"
    im.save(path)
    loaded = load_image(path)
    assert loaded.rgb.shape == (24, 32, 3) and loaded.rgb.dtype == np.uint8
    if mode in ("L", "I", "F"):
        grey = np.asarray(base.convert("L")).astype(int)
        assert np.abs(loaded.rgb[:, :, 1].astype(int) - grey).max() <= 1


def test_transparency_is_flattened_onto_white(tmp_path):
    rgba = np.zeros((6, 6, 4), np.uint8)
    rgba[:, :3] = (255, 0, 0, 255)  # opaque red
    rgba[:, 3:] = (0, 0, 0, 0)  # fully transparent
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    loaded = load_image(path)
    assert tuple(loaded.rgb[0, 0]) == (255, 0, 0) and tuple(loaded.rgb[0, 5]) == (255, 255, 255)
    assert any("transparency" in n for n in loaded.notes)


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)).convert("P") for v in (0, 255)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    loaded = load_image(path)
    assert loaded.rgb.max() == 0 and "first page of 2" in loaded.notes


def test_folder_and_wrong_extension_content(tmp_path):
    with pytest.raises(ImageLoadError, match="folder"):
        load_image(tmp_path)
    png_as_jpg = tmp_path / "actually_png.jpg"
    Image.fromarray(_gradient()).save(png_as_jpg, format="PNG")
    np.testing.assert_array_equal(load_image(png_as_jpg).rgb, _gradient())  # content decides, not the name


def test_garbage_after_valid_header(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_gradient(64, 64)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    data[60:200] = bytes(140)  # wipe compressed pixel data
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageLoadError):
        load_image(path)


def _png_with_exif(png: bytes, orientation: int) -> bytes:
    """Insert an eXIf chunk (EXIF orientation) right after IHDR of an existing PNG."""
    import struct
    import zlib

    exif = Image.Exif()
    exif[0x0112] = orientation
    body = exif.tobytes()
    if body.startswith(b"Exif\x00\x00"):
        body = body[6:]
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    end_of_ihdr = 8 + 4 + 4 + 13 + 4
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
def test_exif_orientation_is_the_same_for_8_and_16_bit(tmp_path, orientation):
    rgb8 = _gradient(6, 10)
    rgb8[0, 0] = (255, 255, 255)  # a marker corner
    eight = tmp_path / "eight.png"
    Image.fromarray(rgb8).save(eight)
    eight.write_bytes(_png_with_exif(eight.read_bytes(), orientation))
    sixteen = tmp_path / "sixteen.png"
    ok, buf = cv2.imencode(".png", (rgb8.astype(np.uint16) * 257)[:, :, ::-1])
    assert ok
    sixteen.write_bytes(_png_with_exif(buf.tobytes(), orientation))
    a, b = load_image(eight), load_image(sixteen)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(eight)).convert("RGB"))
    np.testing.assert_array_equal(a.rgb, expected)
    np.testing.assert_array_equal(b.rgb, expected)
    assert ("rotated upright per EXIF orientation" in a.notes) == (orientation != 1)
    assert any("16-bit" in n for n in b.notes)


def test_floating_point_colour_tiffs_that_pillow_cannot_open_are_read(tmp_path):
    """ImageJ and MATLAB write 32-bit float colour TIFFs; Pillow does not open them, so they failed as unreadable."""
    rgb = _gradient()
    path = tmp_path / "float.tif"
    cv2.imwrite(str(path), (rgb[:, :, ::-1] / 255.0).astype(np.float32))
    with pytest.raises(Exception):  # noqa: B017,PT011 - Pillow's own refusal is what made this path necessary
        Image.open(path).load()
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.rgb, rgb)
    assert loaded.notes == ("floating-point image scaled from 0..1",)

    stretched = tmp_path / "counts.tif"  # values beyond 0..1 (e.g. photon counts): 0 to their maximum
    cv2.imwrite(str(stretched), rgb[:, :, ::-1].astype(np.float32) * 40.0)
    assert np.abs(load_image(stretched).rgb.astype(int) - rgb).max() <= 1

    rgba = np.dstack([rgb[:, :, ::-1] / 255.0, np.ones(rgb.shape[:2])]).astype(np.float32)
    rgba[:2, :2, 3] = 0.0
    with_alpha = tmp_path / "alpha.tif"
    cv2.imwrite(str(with_alpha), rgba)
    loaded = load_image(with_alpha)
    assert (loaded.rgb[:2, :2] == 255).all() and np.array_equal(loaded.rgb[2:, 2:], rgb[2:, 2:])
    assert "transparency flattened onto white" in loaded.notes


def test_a_tiff_pillow_cannot_open_is_size_checked_before_decoding_and_junk_stays_unreadable(tmp_path):
    path = tmp_path / "float.tif"
    cv2.imwrite(str(path), np.zeros((24, 32, 3), np.float32))
    with pytest.raises(ImageLoadError, match="32 x 24 pixels.*above the limit"):
        load_image(path, max_pixels=100)
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"II*\0" + bytes(range(256)) * 4)  # a TIFF signature over nothing decodable
    with pytest.raises(ImageLoadError, match="not an image in a format HemaLens can read"):
        load_image(junk)


def test_only_faithful_conversions_leave_an_image_unflagged():
    from inference.images import needs_attention

    for note in ("16-bit image scaled to 8-bit", "12-bit image (largest value 4080) scaled to 8-bit",
                 "rotated upright per EXIF orientation", "floating-point image scaled from 0..1",
                 "8-bit values stored in a wider file, read as they are"):
        assert not needs_attention(note), note
    for note in ("greyscale shown as RGB", "CMYK converted to RGB", "transparency flattened onto white",
                 "first page of 3", "floating-point image stretched to its own range",
                 "high-bit-depth image stretched to its own range", "unlike this model's training images",
                 "12-bit image scaled to 8-bit and then some"):
        assert needs_attention(note), note
