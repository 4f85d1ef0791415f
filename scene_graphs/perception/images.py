"""Decoding images for perception: one RGB ``uint8`` array per image, in the EXIF-oriented frame.

What :func:`load_image` does, in order:

1. Reads the file's bytes once (their sha256 becomes ``SceneGraph.sha256``).
2. Refuses images with more than ``max_pixels`` pixels *before* decoding them (decompression bombs),
   and turns Pillow's own bomb error into the same :class:`ImageError`.
3. Takes the first frame of animated files and applies the EXIF orientation
   (``ImageOps.exif_transpose``), so width/height and all boxes are in the frame people see.
4. Converts every mode to RGB ``uint8``:

   * ``CMYK``: through the embedded ICC profile when there is one (Pillow's ImageCms), else Pillow's
     conversion;
   * 16-bit grey (``I;16``, ``I;16B``, ``I;16L``; and ``I`` holding 16-bit values): scaled by 255/65535,
     never clipped; ``I`` whose values all fit in 0..255 is taken as is; ``F``: values in [0, 1] are
     scaled by 255, larger values clipped to 255;
   * palette (``P``), ``LA``, ``RGBA``, ``PA``...: through RGBA and composited over white, so
     transparent areas look as they do in a viewer, not as whatever colour hides under alpha 0;
   * ``1``, ``L``, ``YCbCr``, ``LAB``, ``HSV``: Pillow's conversion to RGB.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..ids import image_id as make_image_id
from ..ids import relative_key

log = logging.getLogger("scene_graphs.perception.images")

DEFAULT_MAX_PIXELS = 100_000_000
"""Largest image decoded by default (100 megapixels); larger files are refused as possible bombs."""

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA", "P"})


REASONS = ("unreadable", "empty", "not-an-image", "corrupt", "too-large", "unusable")
"""Why an image cannot be used (:attr:`ImageError.reason`): the file cannot be read (permissions, a
symlink loop, a vanished file), has no bytes, is no image Pillow knows, is truncated or corrupt, has
more pixels than allowed (possible decompression bomb), or decodes to an unusable array."""


class ImageError(ValueError):
    """An image cannot be used: unreadable, not an image, too large. The message names the file;
    :attr:`reason` is one of :data:`REASONS` (for counting skipped images by cause)."""

    def __init__(self, message: str, reason: str = "corrupt") -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:  # keep the reason through pickling (worker processes)
        return (type(self), (str(self), self.reason))


@dataclass(frozen=True, eq=False)
class ImageItem:
    """A decoded image ready for the annotators."""

    path: str
    """Path relative to the input root (POSIX separators); what the scene graph records."""
    image_id: str
    pixels: np.ndarray = field(repr=False)
    """``(height, width, 3)`` RGB ``uint8``, EXIF-oriented; read-only."""
    sha256: str
    source_mode: str = "RGB"
    orientation: int = 1
    """EXIF orientation tag of the file (1 = none); the pixels are already turned."""

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def bgr(self) -> np.ndarray:
        """The pixels as a contiguous BGR array (what OpenCV-based libraries expect)."""
        return np.ascontiguousarray(self.pixels[..., ::-1])

    def meta(self) -> dict[str, Any]:
        d: dict[str, Any] = {"source_mode": self.source_mode}
        if self.orientation != 1:
            d["exif_orientation"] = self.orientation
        return d


def find_images(root: str | os.PathLike[str]) -> list[Path]:
    """Image files below ``root`` (by extension, case-insensitive, hidden files skipped), sorted by relative key."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"no image folder at {root}")
    found = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
             and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted(found, key=lambda p: relative_key(p, root))


def _to_rgb(im: Any) -> np.ndarray:
    """RGB uint8 array from a Pillow image of any mode (see the module docstring)."""
    from PIL import Image

    mode = im.mode
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8)
    if mode == "CMYK":
        icc = im.info.get("icc_profile")
        if icc:
            try:
                from PIL import ImageCms

                src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                dst = ImageCms.createProfile("sRGB")
                return np.asarray(ImageCms.profileToProfile(im, src, dst, outputMode="RGB"), dtype=np.uint8)
            except Exception as exc:  # noqa: BLE001 - a broken profile falls back to the plain conversion
                log.debug("ignoring an unusable ICC profile: %s", exc)
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im).astype(np.float64)
        if mode == "I" and a.size and a.min() >= 0 and a.max() <= 255:
            grey = a
        else:
            grey = np.clip(a, 0, 65535) * (255.0 / 65535.0)
        grey8 = np.rint(grey).astype(np.uint8)
        return np.repeat(grey8[:, :, None], 3, axis=2)
    if mode == "F":
        a = np.asarray(im).astype(np.float64)
        a = np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0)
        scale = 255.0 if a.size and a.max() <= 1.0 else 1.0
        grey8 = np.rint(np.clip(a * scale, 0, 255)).astype(np.uint8)
        return np.repeat(grey8[:, :, None], 3, axis=2)
    if mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _pil_open(fp: Any) -> Any:
    """Pillow's own ``Image.open``: Ultralytics replaces ``PIL.Image.open`` with a wrapper that, on a file
    Pillow cannot identify, tries to pip-install an HEIF plugin; decoding here must not do that."""
    import sys

    from PIL import Image

    patches = sys.modules.get("ultralytics.utils.patches")
    opener = getattr(patches, "_image_open", None) or Image.open
    return opener(fp)


_BOMB_WARNINGS_OFF = False


def _quiet_bomb_warnings() -> None:
    """Silence Pillow's decompression-bomb *warning* once for the process: :func:`decode_image` checks
    ``max_pixels`` itself before decoding. (A ``warnings.catch_warnings`` block per image would do it
    locally, but it is not thread-safe, and images are decoded in threads.)"""
    global _BOMB_WARNINGS_OFF
    if not _BOMB_WARNINGS_OFF:
        from PIL import Image

        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        _BOMB_WARNINGS_OFF = True


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, str, int]:
    """Decode image bytes into ``(rgb uint8 array, source mode, EXIF orientation)``; raises :class:`ImageError`."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    _quiet_bomb_warnings()
    try:
        im = _pil_open(io.BytesIO(data))
        w, h = im.size
        if w * h > max_pixels:
            raise ImageError(f"{name}: {w}x{h} = {w * h} pixels is above the limit of {max_pixels} "
                             f"(refused as a possible decompression bomb; raise max_pixels if it is genuine)",
                             "too-large")
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)
        orientation = int(im.getexif().get(0x0112, 1) or 1)
        source_mode = im.mode
        im = ImageOps.exif_transpose(im) or im
        im.load()
        pixels = _to_rgb(im)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: refused as a possible decompression bomb ({exc})", "too-large") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image Pillow can read", "not-an-image") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:  # truncated or corrupt files
        raise ImageError(f"{name}: cannot decode image ({type(exc).__name__}: {exc})", "corrupt") from None
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ImageError(f"{name}: decoded to an unusable array of shape {pixels.shape}", "unusable")
    pixels = np.ascontiguousarray(pixels)
    pixels.setflags(write=False)
    return pixels, source_mode, orientation


def load_image(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageItem:
    """Read and decode one image; ``root`` is the input root that image ids are relative to
    (default: the image's own folder)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read()
    except OSError as exc:
        why = "a symlink loop" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
        raise ImageError(f"{p}: cannot read ({why})", "unreadable") from None
    if not data:
        raise ImageError(f"{p}: empty file", "empty")
    pixels, mode, orientation = decode_image(data, str(p), max_pixels)
    root = p.parent if root is None else root
    return ImageItem(path=relative_key(p, root), image_id=make_image_id(p, root),
                     pixels=pixels, sha256=hashlib.sha256(data).hexdigest(), source_mode=mode,
                     orientation=orientation)


def item_from_array(pixels: np.ndarray, path: str, *, image_id: str | None = None) -> ImageItem:
    """An :class:`ImageItem` from an RGB array already in memory (tests, notebooks)."""
    a = np.asarray(pixels)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ImageError(f"{path}: expected an (H, W, 3) array, got shape {a.shape}", "unusable")
    a = np.ascontiguousarray(a.astype(np.uint8, copy=False))
    a.setflags(write=False)
    return ImageItem(path=path, image_id=image_id or make_image_id(path), pixels=a,
                     sha256=hashlib.sha256(a.tobytes()).hexdigest())
