"""Helpers shared by the format modules.

* :class:`Record` names a file and a record in it; its checks turn bad values into one
  :class:`~scene_graphs.model.ValidationError` naming file, record (the dataset's image id) and field.
* ``as_*`` functions check JSON value types (numbers finite, ints whole, strings non-blank).
* :func:`load_json` reads a file with clear errors (``NaN`` is parsed so that the field check, not
  the parser, reports it with its record and field).
* :class:`ImageLocator` finds an image under the image root: by the given relative path, else by
  file name anywhere below the root (one index of the tree, built on first need).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Iterator, Mapping, Sequence

import orjson

from ..ids import file_sha256, image_id, relative_key
from ..io import atomic_write
from ..model import Box, ValidationError
from ..vocab import normalize
from . import ImportReport

log = logging.getLogger("scene_graphs.formats")

__all__ = [
    "DuplicateGuard", "ImageInfo", "ImageLocator", "Record", "as_dict", "as_id", "as_int", "as_list", "as_number",
    "as_str", "box_from_xywh", "box_from_xyxy", "default_root", "image_size", "int_ids", "load_json", "natural_key",
    "normalize", "provenance", "require", "resolve_image", "source_name", "unique_keys", "write_json", "written_path",
]


# --------------------------------------------------------------------------- error context
@dataclass(frozen=True)
class Record:
    """Where a value comes from: ``file`` and, when known, the dataset's id of the record in it."""

    file: str
    record: Any = None

    @property
    def source(self) -> str:
        return str(self.file) if self.record is None else f"{self.file} (image {self.record})"

    def error(self, where: str, message: str) -> ValidationError:
        return ValidationError(message, where, self.source)

    @contextlib.contextmanager
    def checking(self, where: str = "") -> Iterator[None]:
        """Re-raise a data-model :class:`ValidationError` raised inside with this file, record and
        ``where`` prefixed to its field path."""
        try:
            yield
        except ValidationError as exc:
            inner = exc.at(where) if where else exc
            raise ValidationError(inner.message, inner.where, self.source) from None


def require(d: Mapping[str, Any], key: str, rec: Record, where: str) -> Any:
    """``d[key]``, or an error naming ``where`` when the key is absent."""
    if key not in d:
        raise rec.error(where, "missing required field")
    return d[key]


def as_number(value: Any, rec: Record, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise rec.error(where, f"must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise rec.error(where, f"must be a finite number, got {value}")
    return value


def as_int(value: Any, rec: Record, where: str, *, positive: bool = False) -> int:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise rec.error(where, f"must be an integer, got {type(value).__name__} {value!r}")
    if positive and value <= 0:
        raise rec.error(where, f"must be a positive integer, got {value}")
    return value


def as_str(value: Any, rec: Record, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise rec.error(where, f"must be a non-empty string, got {value!r}")
    return value


def as_list(value: Any, rec: Record, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise rec.error(where, f"must be a list, got {type(value).__name__}")
    return value


def as_dict(value: Any, rec: Record, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise rec.error(where, f"must be an object, got {type(value).__name__}")
    return value


def as_id(value: Any, rec: Record, where: str) -> str:
    """An id given as an integer or a non-empty string, as a string."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not value.strip()):
        raise rec.error(where, f"must be an integer or a non-empty string id, got {value!r}")
    return str(value)


def natural_key(value: Any) -> tuple[int, int, str]:
    """Sort key putting numeric ids in numeric order before other ids."""
    s = str(value)
    return (0, int(s), s) if s.isdigit() else (1, 0, s)


# --------------------------------------------------------------------------- boxes
def box_from_xywh(x: float, y: float, w: float, h: float, rec: Record, where: str, report: ImportReport,
                  width: int, height: int) -> Box:
    """A box from checked numbers ``x, y, w, h``; negative sizes are an error, spill over the edge is clipped."""
    if w < 0 or h < 0:
        raise rec.error(where, f"inverted box: negative width or height (w={w}, h={h})")
    with rec.checking(where):
        box = Box(x, y, x + w, y + h)
    return report.clip(box, width, height)


def box_from_xyxy(values: Any, rec: Record, where: str, report: ImportReport, width: int, height: int) -> Box:
    """A box from ``[x1, y1, x2, y2]``; ``x2 < x1`` or ``y2 < y1`` is an error, spill over the edge is clipped."""
    items = as_list(values, rec, where)
    if len(items) != 4:
        raise rec.error(where, f"expected [x1, y1, x2, y2], got {len(items)} values")
    x1, y1, x2, y2 = (as_number(v, rec, f"{where}[{i}]") for i, v in enumerate(items))
    if x2 < x1 or y2 < y1:
        raise rec.error(where, f"inverted box [x1, y1, x2, y2] = {[x1, y1, x2, y2]} (x2 < x1 or y2 < y1)")
    with rec.checking(where):
        box = Box(x1, y1, x2, y2)
    return report.clip(box, width, height)


# --------------------------------------------------------------------------- files
def load_json(path: Path) -> Any:
    """Parse a JSON file; malformed content raises a :class:`ValidationError` naming the file and position."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read file ({exc.strerror or exc})", source=str(path)) from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses NaN / Infinity; the standard parser accepts them, so that the field checks can
    # report them with record and field. Anything else malformed is reported with its position.
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValidationError(f"malformed JSON: not UTF-8 ({exc.reason} at byte {exc.start})",
                              source=str(path)) from None
    except json.JSONDecodeError as exc:
        raise ValidationError(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                              source=str(path)) from None


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    with atomic_write(path) as f:
        f.write(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY))


def default_root(src: Path) -> Path:
    """The image root when none is given: ``src`` itself when it is a folder, else its folder."""
    return src if src.is_dir() else src.parent


def source_name(path: Path, src: Path) -> str:
    """``path`` as recorded in provenance: relative to the source folder (its name for a file source)."""
    base = src if src.is_dir() else src.parent
    try:
        return relative_key(path, base)
    except ValueError:
        return path.name


def provenance(fmt: str, files: Iterable[str]) -> dict[str, Any]:
    """The provenance of an imported graph: format and source files."""
    return {"import": {"format": fmt, "files": sorted(set(files))}}


def written_path(path: str, image_root: Path | None) -> str:
    """A graph's image path as a writer stores it: relative to ``image_root`` when it is absolute below it."""
    if image_root is not None and path and os.path.isabs(path):
        with contextlib.suppress(ValueError):
            return relative_key(path, image_root)
    return path


# --------------------------------------------------------------------------- images
def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file after EXIF orientation, read from its header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValidationError(f"cannot read the image header ({exc})", source=str(path)) from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


class ImageLocator:
    """Finds files named by (possibly stale) paths below a root folder.

    A path is tried relative to the root (or as given when absolute and below the root); failing
    that, by file name anywhere below the root. The tree is indexed once, on the first lookup by
    name; hidden files and folders are skipped, symlinked folders are followed (each real folder once).
    When several files share the name, the one whose path shares the longest tail with the given
    path wins (then the first in sorted order); such choices are counted in :attr:`ambiguous`.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.abspath(root))
        self._by_name: dict[str, list[str]] | None = None
        self.ambiguous = 0

    def _index(self) -> dict[str, list[str]]:
        if self._by_name is None:
            by_name: dict[str, list[str]] = defaultdict(list)
            seen: set[tuple[int, int]] = set()
            for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
                try:
                    st = os.stat(dirpath)
                except OSError:
                    dirnames[:] = []
                    continue
                if (st.st_dev, st.st_ino) in seen:
                    dirnames[:] = []
                    continue
                seen.add((st.st_dev, st.st_ino))
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                rel_dir = os.path.relpath(dirpath, self.root)
                for name in filenames:
                    if not name.startswith("."):
                        rel = name if rel_dir == "." else os.path.join(rel_dir, name)
                        by_name[name].append(rel.replace(os.sep, "/"))
            for paths in by_name.values():
                paths.sort()
            self._by_name = dict(by_name)
            log.debug("indexed %d file names under %s", len(self._by_name), self.root)
        return self._by_name

    def locate(self, given: str) -> tuple[str, Path | None]:
        """``(path relative to the root, file)`` for the file named by ``given``; ``file`` is None (and the
        path is ``given``, normalised) when nothing below the root matches."""
        p = Path(given)
        direct = p if p.is_absolute() else self.root / p
        if direct.is_file():
            with contextlib.suppress(ValueError):
                return relative_key(direct, self.root), direct
        name = PurePosixPath(given.replace("\\", "/")).name
        matches = self._index().get(name) if name else None
        if not matches:
            return relative_key(given) if given else given, None
        best = matches[0]
        if len(matches) > 1:
            self.ambiguous += 1
            parts = PurePosixPath(given.replace("\\", "/")).parts

            def shared_tail(rel: str) -> int:
                n = 0
                for a, b in zip(reversed(PurePosixPath(rel).parts), reversed(parts)):
                    if a != b:
                        break
                    n += 1
                return n

            best = max(matches, key=shared_tail)  # max keeps the first (sorted) among equals
            log.debug("%d files named %r under %s; using %s", len(matches), name, self.root, best)
        return best, self.root / best


@dataclass(frozen=True)
class ImageInfo:
    """Where an annotated image is: ``path`` (relative to the root, or as given when not found),
    its mmgen image id, content hash and the file (None when not found)."""

    path: str
    image_id: str
    sha256: str | None
    file: Path | None

    def size(self, width: Any, height: Any, rec: Record, where: str = "") -> tuple[int, int]:
        """Checked ``(width, height)`` from the annotation, or from the image header when both are absent."""
        prefix = f"{where}." if where else ""
        if width is None and height is None:
            if self.file is None:
                raise rec.error(f"{prefix}width", f"missing, and the image {self.path!r} was not found under "
                                                  "the image root to read its size")
            return image_size(self.file)
        return (as_int(width, rec, f"{prefix}width", positive=True),
                as_int(height, rec, f"{prefix}height", positive=True))


def resolve_image(locator: ImageLocator, given: str, report: ImportReport) -> ImageInfo:
    """Find the image named ``given``; a missing one is listed in ``report.missing_images``."""
    rel, file = locator.locate(given)
    if file is None:
        report.missing_images.append(given)
        return ImageInfo(given, image_id(rel), None, None)
    try:
        digest = file_sha256(file)
    except OSError as exc:
        raise ValidationError(f"cannot read the image ({exc.strerror or exc})", source=str(file)) from None
    return ImageInfo(rel, image_id(rel), digest, file)


class DuplicateGuard:
    """Refuses a second record for an image id already produced."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def check(self, info: ImageInfo, rec: Record) -> None:
        first = self._seen.setdefault(info.image_id, rec.source)
        if first != rec.source:
            raise rec.error("", f"refers to the same image ({info.path!r}) as {first}")


def int_ids(values: Sequence[Any]) -> list[int] | None:
    """``values`` as ints when every one is a canonical integer (int, or decimal string) and all are
    distinct; None otherwise (the caller renumbers)."""
    out: list[int] = []
    for v in values:
        if isinstance(v, bool):
            return None
        if isinstance(v, int):
            out.append(v)
        elif isinstance(v, str) and v.isdigit() and str(int(v)) == v:
            out.append(int(v))
        else:
            return None
    return out if len(set(out)) == len(out) else None


def unique_keys(graphs: Sequence[Any]) -> list[str]:
    """One string key per graph: ``meta["source_id"]`` when every graph has a distinct one, else the
    mmgen image ids."""
    keys = [g.meta.get("source_id") for g in graphs]
    if all(isinstance(k, (int, str)) and not isinstance(k, bool) and str(k).strip() for k in keys):
        as_text = [str(k) for k in keys]
        if len(set(as_text)) == len(as_text):
            return as_text
    return [g.image_id for g in graphs]
