"""Image decoding for perception: modes, EXIF orientation, decompression bombs, ids and hashes."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scene_graphs.ids import image_id
from scene_graphs.perception.images import ImageError, decode_image, find_images, item_from_array, load_image


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (8-bit grey) with one tiny IDAT: opening it
    costs nothing, decoding it would allocate width*height bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


# ------------------------------------------------------------------------------------ colour modes
@pytest.mark.parametrize("fmt", ["TIFF", "JPEG"])
def test_cmyk_decodes_to_the_rgb_it_came_from(fmt: str) -> None:
    rgb = np.zeros((32, 96, 3), np.uint8)
    rgb[:, :32] = (220, 30, 30)
    rgb[:, 32:64] = (30, 160, 60)
    rgb[:, 64:] = (40, 60, 200)
    data = _save(Image.fromarray(rgb).convert("CMYK"), fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    pixels, mode, _ = decode_image(data)
    assert mode == "CMYK" and pixels.dtype == np.uint8 and pixels.shape == (32, 96, 3)
    tol = 2 if fmt == "TIFF" else 12
    for x0, colour in ((4, (220, 30, 30)), (36, (30, 160, 60)), (68, (40, 60, 200))):
        patch = pixels[8:24, x0:x0 + 24].reshape(-1, 3).astype(int)
        assert np.abs(np.median(patch, axis=0) - colour).max() <= tol


def test_16_bit_grey_is_scaled_not_clipped() -> None:
    values = np.array([[0, 257, 40000, 65535]], dtype=np.uint16).repeat(4, axis=0)
    data = _save(Image.fromarray(values), "PNG")
    pixels, mode, _ = decode_image(data)
    assert mode in {"I;16", "I"}
    expected = np.rint(values[0].astype(float) / 257).astype(np.uint8)  # 0, 1, 156, 255
    assert pixels[0, :, 0].tolist() == expected.tolist()
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()


@pytest.mark.parametrize("array, expected", [
    (np.array([[0.0, 0.5, 1.0]], np.float32), [0, 128, 255]),       # [0, 1] floats are scaled
    (np.array([[0.0, 100.0, 300.0]], np.float32), [0, 100, 255]),   # larger values are clipped
])
def test_float_images(array: np.ndarray, expected: list[int]) -> None:
    data = _save(Image.fromarray(array, mode="F"), "TIFF")
    pixels, mode, _ = decode_image(data)
    assert mode == "F" and pixels[0, :, 0].tolist() == expected


def test_palette_transparency_becomes_white_not_the_hidden_colour() -> None:
    im = Image.new("P", (4, 2))
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    im.putpixel((0, 0), 0)  # black, but transparent
    im.putpixel((1, 0), 1)  # red, opaque
    data = _save(im, "PNG", transparency=0)
    pixels, mode, _ = decode_image(data)
    assert mode == "P"
    assert pixels[0, 0].tolist() == [255, 255, 255]
    assert pixels[0, 1].tolist() == [255, 0, 0]


@pytest.mark.parametrize("mode, value, expected", [
    ("RGBA", (255, 0, 0, 255), [255, 0, 0]),
    ("RGBA", (0, 0, 0, 0), [255, 255, 255]),
    ("RGBA", (255, 0, 0, 128), [255, 127, 127]),
    ("LA", (0, 0), [255, 255, 255]),
    ("LA", (50, 255), [50, 50, 50]),
    ("L", 77, [77, 77, 77]),
    ("1", 1, [255, 255, 255]),
])
def test_alpha_and_grey_modes(mode: str, value, expected: list[int]) -> None:
    data = _save(Image.new(mode, (3, 3), value), "PNG")
    pixels, _, _ = decode_image(data)
    assert np.abs(pixels[1, 1].astype(int) - expected).max() <= 1


@pytest.mark.parametrize("orientation, shape, red_at", [
    (1, (20, 40), (10, 5)),    # no turn: red on the left
    (3, (20, 40), (10, 35)),   # 180 degrees: red on the right
    (6, (40, 20), (5, 10)),    # 90 clockwise: the left edge goes to the top
    (8, (40, 20), (35, 10)),   # 90 counter-clockwise: the left edge goes to the bottom
])
def test_exif_orientation_is_applied(orientation: int, shape: tuple[int, int], red_at: tuple[int, int]) -> None:
    stored = np.full((20, 40, 3), 255, np.uint8)
    stored[:, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _save(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())
    pixels, _, seen = decode_image(data)
    assert seen == orientation
    assert pixels.shape[:2] == shape
    r, c = red_at
    assert pixels[r, c, 0] > 200 and pixels[r, c, 1] < 60


def test_animated_gif_uses_the_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    pixels, _, _ = decode_image(buf.getvalue())
    assert pixels[4, 4, 0] > 200 and pixels[4, 4, 2] < 60


# ------------------------------------------------------------------------------------ refusals
def test_decompression_bomb_is_refused_before_decoding() -> None:
    data = _png_header_only(30000, 30000)  # 900 megapixels claimed, 60 bytes on disk
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_image(data, "bomb.png")


def test_max_pixels_is_a_parameter() -> None:
    data = _save(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageError, match=r"100x100 = 10000 pixels is above the limit of 9999"):
        decode_image(data, "x.png", max_pixels=9999)
    assert decode_image(data, "x.png", max_pixels=10000)[0].shape == (100, 100, 3)


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"this is not an image", "not an image"),
    (_save(Image.new("RGB", (64, 64), (9, 9, 9)), "JPEG")[:200], "cannot decode"),
])
def test_bad_files_raise_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageError, match=message) as info:
        load_image(p, tmp_path)
    assert str(p) in str(info.value)


def test_unreadable_bytes_do_not_trigger_plugin_installs(tmp_path: Path) -> None:
    """Ultralytics patches ``PIL.Image.open`` to pip-install an HEIF plugin on unknown files; the
    decoder must still fail with ImageError, and without touching the environment."""
    pytest.importorskip("ultralytics")
    import ultralytics.utils.patches  # noqa: F401 - importing it installs the patch

    p = tmp_path / "x.png"
    p.write_bytes(b"\x00" * 64)
    with pytest.raises(ImageError, match="not an image"):
        load_image(p, tmp_path)


# ------------------------------------------------------------------------------------ items
def test_load_image_ids_hash_and_frame(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    p = tmp_path / "a" / "b" / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    p.write_bytes(_save(Image.new("RGB", (40, 20), (10, 200, 10)), "JPEG", exif=exif.tobytes()))
    item = load_image(p, tmp_path)
    assert item.path == "a/b/photo.jpg"
    assert item.image_id == image_id(p, tmp_path)
    assert item.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
    assert (item.width, item.height) == (20, 40)
    assert item.orientation == 6 and item.meta()["exif_orientation"] == 6
    assert not item.pixels.flags.writeable
    assert item.bgr[0, 0].tolist() == item.pixels[0, 0, ::-1].tolist()


def test_find_images_sorted_filtered(tmp_path: Path) -> None:
    for rel in ["b/z.JPG", "a.png", "b/a.webp", ".hidden/x.jpg", "notes.txt", "c/.x.png"]:
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)] == ["a.png", "b/a.webp", "b/z.JPG"]
    with pytest.raises(FileNotFoundError):
        find_images(tmp_path / "missing")


def test_item_from_array_greyscale() -> None:
    item = item_from_array(np.full((5, 7), 9, np.uint8), "mem/x.png")
    assert item.pixels.shape == (5, 7, 3) and item.image_id == image_id("mem/x.png")
