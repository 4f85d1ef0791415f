"""The scene-graph data model: the contract between perception, programs and the engine.

Every class is a frozen dataclass validated on construction, so a graph that exists is a graph
that is well formed: boxes finite and well ordered inside the image, ids unique, relation and text
endpoints present, scores in [0, 1]. Importers that meet boxes spilling over the image edge clip
them with :meth:`Box.clip` and count what they clipped; the model itself never guesses.

Serialized form (one JSON object per graph, see ``schema/scene_graph.schema.json``)::

    {"version": 1, "image_id": ..., "path": ..., "width": ..., "height": ..., "sha256": ...,
     "fields": [...], "objects": [...], "relations": [...], "text": [...],
     "depth": {"key": ..., "larger_is_nearer": ..., "height": ..., "width": ..., "unit"?: "metres"} | null,
     "camera"?: {"fx": ..., "fy": ..., "cx": ..., "cy": ...},
     "provenance": {...}, "meta": {...},
     "evidence": [{"annotator", "vocabulary", "threshold", "floor", "best_below", "count_below"}, ...]}

``evidence`` (what each annotator searched for, see :class:`Search`) is written only when recorded.
``depth.unit`` is written only for metric maps (absent means ``relative``: a disparity-like map with no
scale) and ``camera`` (pinhole intrinsics, :class:`Camera`) only when known, so graphs without them read
and write as before. A graph is *metric* (:attr:`SceneGraph.metric`) when it has both a depth map in
metres and the camera's intrinsics: only then can a pixel be back-projected to a point in metres.

Depth arrays never go into the JSON: :mod:`scene_graphs.io` stores them beside the shard in an
``.npz`` (loaded with ``allow_pickle=False``).
"""

from __future__ import annotations

import math
import numbers
from collections import defaultdict
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import networkx

SCHEMA_VERSION = 1
"""Version of the serialized form; readers refuse versions they do not know."""

FIELDS = ("objects", "masks", "attributes", "relations", "depth", "text")
"""Graph fields an annotator or importer can fill. A field listed in ``SceneGraph.fields`` was
looked for (so an empty list means "none found"); a field not listed was never annotated."""

ATTRIBUTE_CATEGORIES = ("color", "material", "size", "shape", "state", "pattern", "other")
DEPTH_UNITS = ("relative", "metres")
"""Units of a depth map: ``relative`` (no scale: only orders and ratios of nearness mean anything) or
``metres`` (metric depth: distance along the camera's optical axis, larger is farther)."""
RELATION_SOURCES = ("human", "model", "geometry", "depth", "vlm")
"""Where a relation (or an attribute that records it) came from; ``vlm``: a vision-language model asked about
the image (:mod:`scene_graphs.perception.vlm`)."""

BOX_TOLERANCE = 0.5
"""Pixels a box may spill over the image edge before validation refuses it (rounding in exports)."""


class ValidationError(ValueError):
    """A scene graph (or part of one) breaks the data model.

    ``where`` is the field path inside the record (``objects[3].box``); ``source`` names the file and
    record when the error comes from reading one. ``str()`` gives one line with all three.
    """

    def __init__(self, message: str, where: str = "", source: str = "") -> None:
        self.message = message
        self.where = where
        self.source = source
        super().__init__(self._text())

    def _text(self) -> str:
        parts = [p for p in (self.source, self.where) if p]
        return f"{': '.join(parts)}: {self.message}" if parts else self.message

    def at(self, prefix: str) -> "ValidationError":
        """The same error one level further out (``prefix`` + ``.`` + current path)."""
        where = f"{prefix}.{self.where}" if self.where and not self.where.startswith("[") else f"{prefix}{self.where}"
        return ValidationError(self.message, where, self.source)

    def in_source(self, source: str) -> "ValidationError":
        """The same error, naming the file and record it came from."""
        return ValidationError(self.message, self.where, source)


def _is_real(value: Any) -> bool:
    """A real number (Python or numpy scalar), but not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_int(value: Any) -> bool:
    """An integer (Python or numpy scalar), but not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _check_score(value: Any, where: str) -> float:
    if not _is_real(value):
        raise ValidationError(f"score must be a number, got {type(value).__name__}", where)
    value = float(value)
    if not (0.0 <= value <= 1.0):  # also refuses NaN
        raise ValidationError(f"score must be in [0, 1], got {value}", where)
    return value


def _check_text(value: Any, where: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or not (allow_empty or value.strip()):
        raise ValidationError(f"must be a {'' if allow_empty else 'non-empty '}string, got {value!r}", where)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. a non-UTF-8 file name decoded with surrogateescape
        raise ValidationError(f"is not valid UTF-8 text (cannot be written as JSON): {value!r}", where) from None
    return value


@dataclass(frozen=True, slots=True)
class Box:
    """Axis-aligned box in pixels of the original (EXIF-oriented) image: ``x1 <= x2``, ``y1 <= y2``."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        for name in ("x1", "y1", "x2", "y2"):
            v = getattr(self, name)
            if not _is_real(v):
                raise ValidationError(f"{name} must be a number, got {type(v).__name__}")
            if not math.isfinite(v):
                raise ValidationError(f"{name} is not finite ({v})")
            object.__setattr__(self, name, float(v))
        if self.x1 > self.x2:
            raise ValidationError(f"x1 > x2 ({self.x1} > {self.x2})")
        if self.y1 > self.y2:
            raise ValidationError(f"y1 > y2 ({self.y1} > {self.y2})")

    @classmethod
    def from_list(cls, values: Sequence[float]) -> "Box":
        """From ``[x1, y1, x2, y2]``."""
        if not isinstance(values, (list, tuple)) or len(values) != 4:
            raise ValidationError(f"expected [x1, y1, x2, y2], got {values!r}")
        return cls(*values)

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> "Box":
        """From COCO / Visual Genome ``x, y, width, height``."""
        return cls(x, y, x + w, y + h)

    def to_list(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]

    def to_xywh(self) -> list[float]:
        return [self.x1, self.y1, self.x2 - self.x1, self.y2 - self.y1]

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    def intersection(self, other: "Box") -> float:
        w = min(self.x2, other.x2) - max(self.x1, other.x1)
        h = min(self.y2, other.y2) - max(self.y1, other.y1)
        return w * h if w > 0 and h > 0 else 0.0

    def iou(self, other: "Box") -> float:
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def contains_point(self, x: float, y: float) -> bool:
        return self.x1 <= x <= self.x2 and self.y1 <= y <= self.y2

    def contains_box(self, other: "Box") -> bool:
        return self.x1 <= other.x1 and self.y1 <= other.y1 and other.x2 <= self.x2 and other.y2 <= self.y2

    def clip(self, width: float, height: float) -> tuple["Box", bool]:
        """This box clipped to the image; the flag says whether anything changed."""
        c = Box(
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
            min(max(self.x2, 0.0), width),
            min(max(self.y2, 0.0), height),
        )
        return c, c != self

    def normalized(self, width: float, height: float, digits: int = 3) -> list[float]:
        """``[x1, y1, x2, y2]`` divided by the image size, rounded (the usual grounding answer form)."""
        return [round(self.x1 / width, digits), round(self.y1 / height, digits),
                round(self.x2 / width, digits), round(self.y2 / height, digits)]

    def scaled(self, sx: float, sy: float) -> "Box":
        return Box(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy)


@dataclass(frozen=True, slots=True)
class Mask:
    """Binary mask as compressed COCO RLE (``counts`` as str, ``size`` as ``(height, width)``)."""

    counts: str
    height: int
    width: int

    def __post_init__(self) -> None:
        if not isinstance(self.counts, str):
            raise ValidationError("RLE counts must be a compressed string", "counts")
        for name in ("height", "width"):
            v = getattr(self, name)
            if not _is_int(v) or v <= 0:
                raise ValidationError(f"{name} must be a positive integer, got {v!r}", "size")
            object.__setattr__(self, name, int(v))

    @property
    def rle(self) -> dict[str, Any]:
        return {"size": [self.height, self.width], "counts": self.counts.encode("ascii")}

    @classmethod
    def from_array(cls, array: np.ndarray) -> "Mask":
        """From a 2-D array of shape ``(height, width)``; non-zero values are inside the mask."""
        from pycocotools import mask as mask_utils

        a = np.asarray(array)
        if a.ndim != 2:
            raise ValidationError(f"mask array must be 2-D, got shape {a.shape}")
        rle = mask_utils.encode(np.asfortranarray(a != 0, dtype=np.uint8))  # any non-zero value is inside
        return cls(rle["counts"].decode("ascii"), int(a.shape[0]), int(a.shape[1]))

    @classmethod
    def from_polygons(cls, polygons: Sequence[Sequence[float]], height: int, width: int) -> "Mask":
        """From COCO polygons (each ``[x0, y0, x1, y1, ...]``), merged into one mask."""
        from pycocotools import mask as mask_utils

        polys = [list(map(float, p)) for p in polygons if len(p) >= 6]
        if not polys:
            raise ValidationError("no polygon with at least 3 points")
        rles = mask_utils.frPyObjects(polys, height, width)
        rle = mask_utils.merge(rles)
        return cls(rle["counts"].decode("ascii"), height, width)

    @classmethod
    def from_rle(cls, rle: Mapping[str, Any]) -> "Mask":
        """From a COCO RLE dict, compressed (``counts`` str/bytes) or uncompressed (``counts`` list)."""
        from pycocotools import mask as mask_utils

        try:
            h, w = (int(v) for v in rle["size"])
            counts = rle["counts"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"RLE needs 'size' [h, w] and 'counts' ({exc})") from None
        if isinstance(counts, list):
            counts = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)["counts"]
        if isinstance(counts, bytes):
            counts = counts.decode("ascii")
        return cls(counts, h, w)

    def to_array(self) -> np.ndarray:
        from pycocotools import mask as mask_utils

        return mask_utils.decode(self.rle).astype(bool)

    @property
    def area(self) -> int:
        from pycocotools import mask as mask_utils

        return int(mask_utils.area(self.rle))

    def bbox(self) -> Box:
        from pycocotools import mask as mask_utils

        return Box.from_xywh(*(float(v) for v in mask_utils.toBbox(self.rle)))

    def to_dict(self) -> dict[str, Any]:
        return {"size": [self.height, self.width], "counts": self.counts}


@dataclass(frozen=True, slots=True)
class Attribute:
    """A property of an object: ``name`` (``red``), ``category`` (``color``) and confidence; ``source``
    (one of :data:`RELATION_SOURCES`) only when a stage records it (``vlm``), else the graph's provenance says."""

    name: str
    category: str = "other"
    score: float = 1.0
    source: str | None = None

    def __post_init__(self) -> None:
        _check_text(self.name, "name")
        if self.category not in ATTRIBUTE_CATEGORIES:
            raise ValidationError(f"category must be one of {ATTRIBUTE_CATEGORIES}, got {self.category!r}", "category")
        object.__setattr__(self, "score", _check_score(self.score, "score"))
        if self.source is not None and self.source not in RELATION_SOURCES:
            raise ValidationError(f"source must be one of {RELATION_SOURCES}, got {self.source!r}", "source")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "category": self.category, "score": self.score}
        if self.source is not None:
            d["source"] = self.source
        return d


@dataclass(frozen=True, slots=True)
class Object:
    """One object in the image. ``depth`` is the median of the depth map under its mask (or box)."""

    id: str
    label: str
    box: Box
    score: float = 1.0
    mask: Mask | None = None
    attributes: tuple[Attribute, ...] = ()
    depth: float | None = None
    synset: str | None = None

    def __post_init__(self) -> None:
        _check_text(self.id, "id")
        _check_text(self.label, "label")
        if not isinstance(self.box, Box):
            raise ValidationError(f"must be a Box, got {type(self.box).__name__}", "box")
        object.__setattr__(self, "score", _check_score(self.score, "score"))
        if not isinstance(self.attributes, tuple):
            object.__setattr__(self, "attributes", tuple(self.attributes))
        for i, a in enumerate(self.attributes):
            if not isinstance(a, Attribute):
                raise ValidationError(f"must be an Attribute, got {type(a).__name__}", f"attributes[{i}]")
        if self.mask is not None and not isinstance(self.mask, Mask):
            raise ValidationError(f"must be a Mask, got {type(self.mask).__name__}", "mask")
        if self.depth is not None:
            if not _is_real(self.depth) or not math.isfinite(self.depth):
                raise ValidationError(f"must be a finite number, got {self.depth!r}", "depth")
            object.__setattr__(self, "depth", float(self.depth))
        if self.synset is not None:
            _check_text(self.synset, "synset")

    def attribute_names(self, category: str | None = None) -> list[str]:
        return [a.name for a in self.attributes if category is None or a.category == category]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "label": self.label, "box": self.box.to_list(), "score": self.score}
        if self.mask is not None:
            d["mask"] = self.mask.to_dict()
        if self.attributes:
            d["attributes"] = [a.to_dict() for a in self.attributes]
        if self.depth is not None:
            d["depth"] = self.depth
        if self.synset is not None:
            d["synset"] = self.synset
        return d


@dataclass(frozen=True, slots=True)
class Relation:
    """A directed relation ``subject --predicate--> object`` between two object ids."""

    subject: str
    predicate: str
    object: str
    score: float = 1.0
    source: str = "human"

    def __post_init__(self) -> None:
        _check_text(self.subject, "subject")
        _check_text(self.object, "object")
        _check_text(self.predicate, "predicate")
        object.__setattr__(self, "score", _check_score(self.score, "score"))
        if self.source not in RELATION_SOURCES:
            raise ValidationError(f"source must be one of {RELATION_SOURCES}, got {self.source!r}", "source")

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "predicate": self.predicate, "object": self.object,
                "score": self.score, "source": self.source}


@dataclass(frozen=True, slots=True)
class TextRegion:
    """Text read in the image (OCR or annotation); ``object`` is the id of the object carrying it."""

    id: str
    text: str
    box: Box
    score: float = 1.0
    object: str | None = None

    def __post_init__(self) -> None:
        _check_text(self.id, "id")
        _check_text(self.text, "text")
        if not isinstance(self.box, Box):
            raise ValidationError(f"must be a Box, got {type(self.box).__name__}", "box")
        object.__setattr__(self, "score", _check_score(self.score, "score"))
        if self.object is not None:
            _check_text(self.object, "object")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "text": self.text, "box": self.box.to_list(), "score": self.score}
        if self.object is not None:
            d["object"] = self.object
        return d


@dataclass(frozen=True, eq=False)
class Search:
    """What one annotator looked for in the image: the evidence behind "there is no X".

    ``vocabulary`` is every label the annotator can report; it reports an object when its score is at
    least ``threshold``. Candidates it saw with ``floor <= score < threshold`` and did not report (after
    discarding those overlapping a reported object of the same label) are summarised per label in
    ``best_below`` (best score) and ``count_below`` (how many). A label in the vocabulary with no object
    and no entry in ``best_below`` was looked for and not seen even faintly: absence has evidence. A
    label outside every vocabulary could not have been seen. Graphs without searches (imports, older
    graphs) carry no evidence either way.
    """

    annotator: str
    vocabulary: tuple[str, ...]
    threshold: float
    floor: float = 0.05
    best_below: Mapping[str, float] = field(default_factory=dict)
    count_below: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_text(self.annotator, "annotator")
        if isinstance(self.vocabulary, str) or not isinstance(self.vocabulary, Iterable):
            raise ValidationError(f"must be a list of labels, got {self.vocabulary!r}", "vocabulary")
        vocab = tuple(sorted({_check_text(v, f"vocabulary[{i}]") for i, v in enumerate(self.vocabulary)}))
        object.__setattr__(self, "vocabulary", vocab)
        object.__setattr__(self, "threshold", _check_score(self.threshold, "threshold"))
        object.__setattr__(self, "floor", _check_score(self.floor, "floor"))
        if self.floor > self.threshold:
            raise ValidationError(f"floor {self.floor} is above threshold {self.threshold}", "floor")
        for name in ("best_below", "count_below"):
            if not isinstance(getattr(self, name), Mapping):
                raise ValidationError(f"must be a mapping of label to value, got {getattr(self, name)!r}", name)
        best = {}
        for label, score in sorted(self.best_below.items()):
            score = _check_score(score, f"best_below.{label}")
            if label not in vocab:
                raise ValidationError(f"label {label!r} is not in the vocabulary", f"best_below.{label}")
            if not (self.floor <= score < self.threshold + 1e-9):
                raise ValidationError(f"score {score} is outside [floor, threshold)", f"best_below.{label}")
            best[label] = score
        counts = {}
        for label, n in sorted(self.count_below.items()):
            if not _is_int(n) or n < 1 or label not in best:
                raise ValidationError(f"must be a positive count for a label in best_below, got {n!r}",
                                      f"count_below.{label}")
            counts[label] = int(n)
        for label in best:
            counts.setdefault(label, 1)
        object.__setattr__(self, "best_below", best)
        object.__setattr__(self, "count_below", counts)

    def to_dict(self) -> dict[str, Any]:
        return {"annotator": self.annotator, "vocabulary": list(self.vocabulary), "threshold": self.threshold,
                "floor": self.floor, "best_below": dict(self.best_below), "count_below": dict(self.count_below)}


@dataclass(frozen=True, eq=False)
class DepthMap:
    """A dense depth map (float32, any resolution; it is stretched over the whole image).

    ``larger_is_nearer`` is True for disparity-like maps (Depth Anything, MiDaS, ProVision's uint8
    maps) and False for metric depth. Use :meth:`nearness` to compare without caring which.

    ``unit`` is ``relative`` (the default: no scale) or ``metres``: each value is then the depth along the
    camera's optical axis (z, not the length of the ray) in metres, ``larger_is_nearer`` is False, and 0
    means "no reading" (sensor holes); values are never negative.
    """

    values: np.ndarray
    larger_is_nearer: bool
    unit: str = "relative"

    def __post_init__(self) -> None:
        v = np.asarray(self.values)
        if v.ndim != 2 or v.size == 0:
            raise ValidationError(f"depth map must be a non-empty 2-D array, got shape {v.shape}", "depth")
        if not (np.issubdtype(v.dtype, np.integer) or np.issubdtype(v.dtype, np.floating)):
            raise ValidationError(f"depth map must be integer or float, got {v.dtype}", "depth")
        v = np.array(v, dtype=np.float32)  # a private copy, never the caller's array
        if not np.isfinite(v).all():
            raise ValidationError("depth map has non-finite values", "depth")
        v.setflags(write=False)
        object.__setattr__(self, "values", v)
        if not isinstance(self.larger_is_nearer, (bool, np.bool_)):
            raise ValidationError("larger_is_nearer must be true or false", "depth.larger_is_nearer")
        object.__setattr__(self, "larger_is_nearer", bool(self.larger_is_nearer))
        if self.unit not in DEPTH_UNITS:
            raise ValidationError(f"unit must be one of {DEPTH_UNITS}, got {self.unit!r}", "depth.unit")
        if self.unit == "metres":
            if self.larger_is_nearer:
                raise ValidationError("a depth map in metres has larger values farther (larger_is_nearer false)",
                                      "depth.larger_is_nearer")
            if float(v.min()) < 0:
                raise ValidationError(f"a depth map in metres has no negative values (min {float(v.min())})",
                                      "depth")

    @classmethod
    def from_header(cls, values: np.ndarray, header: Mapping[str, Any]) -> "DepthMap":
        """The map of ``values`` with the convention and unit a graph's ``depth`` header gives."""
        return cls(values, bool(header.get("larger_is_nearer")), header.get("unit", "relative"))

    @property
    def metric(self) -> bool:
        """Whether the values are metres (see :attr:`unit`)."""
        return self.unit == "metres"

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild through __init__ so a pickled / deep-copied map is validated and read-only again
        # (numpy does not keep the write flag through pickle).
        return (type(self), (self.values, self.larger_is_nearer, self.unit))

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape  # type: ignore[return-value]

    def value_at(self, x: float, y: float, width: int, height: int) -> float:
        """Map value at image pixel ``(x, y)`` of an image ``width`` x ``height``."""
        mh, mw = self.values.shape
        col = min(mw - 1, max(0, int(x * mw / width)))
        row = min(mh - 1, max(0, int(y * mh / height)))
        return float(self.values[row, col])

    def nearness(self, value: float) -> float:
        """A value that grows as things get nearer, whatever the map's convention."""
        return value if self.larger_is_nearer else -value

    def mask_cells(self, mask: Mask) -> np.ndarray:
        """The mask resampled to the map's grid (a boolean array of the map's shape)."""
        mh, mw = self.values.shape
        m = mask.to_array()
        if m.shape != (mh, mw):
            rows = (np.arange(mh) * m.shape[0] // mh).clip(0, m.shape[0] - 1)
            cols = (np.arange(mw) * m.shape[1] // mw).clip(0, m.shape[1] - 1)
            m = m[np.ix_(rows, cols)]
        return m

    def values_in(self, box: Box, width: int, height: int, mask: Mask | None = None) -> np.ndarray:
        """The map values under ``mask`` (or inside ``box`` when there is no mask or it covers no cell)."""
        mh, mw = self.values.shape
        if mask is not None:
            m = self.mask_cells(mask)
            if m.any():
                return self.values[m]
        x1 = min(mw - 1, max(0, int(box.x1 * mw / width)))
        y1 = min(mh - 1, max(0, int(box.y1 * mh / height)))
        x2 = max(x1 + 1, min(mw, int(math.ceil(box.x2 * mw / width))))
        y2 = max(y1 + 1, min(mh, int(math.ceil(box.y2 * mh / height))))
        return self.values[y1:y2, x1:x2].ravel()

    def median_in(self, box: Box, width: int, height: int, mask: Mask | None = None) -> float:
        """Median map value under ``mask`` (or inside ``box`` when there is no mask)."""
        return float(np.median(self.values_in(box, width, height, mask)))

    def header(self, key: str) -> dict[str, Any]:
        out = {"key": key, "larger_is_nearer": self.larger_is_nearer,
               "height": int(self.values.shape[0]), "width": int(self.values.shape[1])}
        if self.unit != "relative":
            out["unit"] = self.unit
        return out


@dataclass(frozen=True, slots=True)
class Camera:
    """Pinhole intrinsics in pixels of the original (EXIF-oriented) image, the frame of the boxes:
    focal lengths ``fx``, ``fy`` and principal point ``cx``, ``cy``. With a depth map in metres, pixel
    ``(u, v)`` at depth ``z`` is the point ``((u - cx) z / fx, (v - cy) z / fy, z)`` metres from the camera
    (x right, y down, z along the optical axis)."""

    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy"):
            v = getattr(self, name)
            if not _is_real(v) or not math.isfinite(v):
                raise ValidationError(f"must be a finite number, got {v!r}", name)
            object.__setattr__(self, name, float(v))
        for name in ("fx", "fy"):
            if getattr(self, name) <= 0:
                raise ValidationError(f"must be positive, got {getattr(self, name)}", name)

    def back_project(self, u: float, v: float, z: float) -> tuple[float, float, float]:
        """The 3-D point (metres, camera frame) of image pixel ``(u, v)`` at depth ``z``."""
        return ((u - self.cx) * z / self.fx, (v - self.cy) * z / self.fy, z)

    def to_dict(self) -> dict[str, float]:
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy}


@dataclass(frozen=True, eq=False)
class SceneGraph:
    """Everything known about one image. Immutable: use :meth:`replace` to derive a new graph."""

    image_id: str
    width: int
    height: int
    path: str = ""
    sha256: str | None = None
    objects: tuple[Object, ...] = ()
    relations: tuple[Relation, ...] = ()
    text: tuple[TextRegion, ...] = ()
    depth: DepthMap | None = None
    fields: frozenset[str] = frozenset()
    provenance: Mapping[str, Any] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    evidence: tuple[Search, ...] = ()
    """What the annotators searched for (empty: unknown, e.g. imported graphs). See :class:`Search`."""
    camera: Camera | None = None
    """The camera's intrinsics when known (see :attr:`metric`)."""

    def __post_init__(self) -> None:
        _check_text(self.image_id, "image_id")
        for name in ("width", "height"):
            v = getattr(self, name)
            if not _is_int(v) or v <= 0:
                raise ValidationError(f"must be a positive integer, got {v!r}", name)
            object.__setattr__(self, name, int(v))
        _check_text(self.path, "path", allow_empty=True)
        for name in ("provenance", "meta"):
            if not isinstance(getattr(self, name), Mapping):
                raise ValidationError(f"must be a mapping, got {type(getattr(self, name)).__name__}", name)
        for name in ("objects", "relations", "text", "evidence"):
            if not isinstance(getattr(self, name), tuple):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        names = tuple(self.fields) if isinstance(self.fields, Iterable) and not isinstance(self.fields, str) else None
        if names is None or any(not isinstance(f, str) for f in names):
            raise ValidationError(f"must be a collection of field names, got {self.fields!r}", "fields")
        object.__setattr__(self, "fields", frozenset(names))
        unknown = self.fields - set(FIELDS)
        if unknown:
            raise ValidationError(f"unknown field names {sorted(unknown)}; known: {FIELDS}", "fields")
        if self.sha256 is not None and (not isinstance(self.sha256, str) or len(self.sha256) != 64
                                        or any(c not in "0123456789abcdef" for c in self.sha256)):
            raise ValidationError(f"must be 64 lowercase hex digits, got {self.sha256!r}", "sha256")
        if self.depth is not None and not isinstance(self.depth, DepthMap):
            raise ValidationError(f"must be a DepthMap, got {type(self.depth).__name__}", "depth")
        if self.camera is not None and not isinstance(self.camera, Camera):
            raise ValidationError(f"must be a Camera, got {type(self.camera).__name__}", "camera")
        self._validate_objects()
        for i, e in enumerate(self.evidence):
            if not isinstance(e, Search):
                raise ValidationError(f"must be a Search, got {type(e).__name__}", f"evidence[{i}]")
        ids = {o.id for o in self.objects}
        triples: set[tuple[str, str, str]] = set()
        for i, r in enumerate(self.relations):
            if not isinstance(r, Relation):
                raise ValidationError(f"must be a Relation, got {type(r).__name__}", f"relations[{i}]")
            triple = (r.subject, r.predicate, r.object)
            if triple in triples:
                raise ValidationError(f"duplicate relation {triple} (importers merge duplicates)", f"relations[{i}]")
            triples.add(triple)
            for end in ("subject", "object"):
                if getattr(r, end) not in ids:
                    raise ValidationError(f"{end} {getattr(r, end)!r} is not an object id in this graph",
                                          f"relations[{i}].{end}")
        text_ids: set[str] = set()
        for i, t in enumerate(self.text):
            if not isinstance(t, TextRegion):
                raise ValidationError(f"must be a TextRegion, got {type(t).__name__}", f"text[{i}]")
            if t.id in text_ids:
                raise ValidationError(f"duplicate text region id {t.id!r}", f"text[{i}].id")
            text_ids.add(t.id)
            self._check_in_image(t.box, f"text[{i}].box")
            if t.object is not None and t.object not in ids:
                raise ValidationError(f"{t.object!r} is not an object id in this graph", f"text[{i}].object")

    def _validate_objects(self) -> None:
        seen: set[str] = set()
        for i, o in enumerate(self.objects):
            if not isinstance(o, Object):
                raise ValidationError(f"must be an Object, got {type(o).__name__}", f"objects[{i}]")
            if o.id in seen:
                raise ValidationError(f"duplicate object id {o.id!r}", f"objects[{i}].id")
            seen.add(o.id)
            self._check_in_image(o.box, f"objects[{i}].box")
            if o.mask is not None and (o.mask.height, o.mask.width) != (self.height, self.width):
                raise ValidationError(
                    f"mask size {o.mask.height}x{o.mask.width} differs from image {self.height}x{self.width}",
                    f"objects[{i}].mask")

    def _check_in_image(self, box: Box, where: str) -> None:
        t = BOX_TOLERANCE
        if box.x1 < -t or box.y1 < -t or box.x2 > self.width + t or box.y2 > self.height + t:
            raise ValidationError(
                f"{box.to_list()} lies outside the {self.width}x{self.height} image (importers clip such boxes)", where)

    # ----------------------------------------------------------------- derived views (cached)
    @cached_property
    def objects_by_id(self) -> dict[str, Object]:
        return {o.id: o for o in self.objects}

    @cached_property
    def objects_by_label(self) -> dict[str, tuple[Object, ...]]:
        groups: dict[str, list[Object]] = defaultdict(list)
        for o in self.objects:
            groups[o.label].append(o)
        return {k: tuple(v) for k, v in sorted(groups.items())}

    @cached_property
    def nx(self) -> "networkx.MultiDiGraph":
        """A ``networkx.MultiDiGraph``: nodes are object ids (with label, box, score, attributes),
        edges are relations keyed by predicate. Built once per graph and frozen (``.copy()`` to edit)."""
        import networkx

        g = networkx.MultiDiGraph(image_id=self.image_id, width=self.width, height=self.height)
        for o in self.objects:
            g.add_node(o.id, label=o.label, box=o.box.to_list(), score=o.score,
                       attributes=[a.name for a in o.attributes], depth=o.depth)
        for r in self.relations:
            g.add_edge(r.subject, r.object, key=r.predicate, predicate=r.predicate, score=r.score, source=r.source)
        return networkx.freeze(g)

    # ----------------------------------------------------------------- evidence of absence
    def searched_for(self, label: str) -> bool:
        """Whether some annotator of this graph could have reported ``label``."""
        return any(label in s.vocabulary for s in self.evidence)

    def faint_count(self, label: str) -> int:
        """Unreported candidates of ``label`` that annotators saw below their threshold (0 when none or unknown)."""
        return max((s.count_below.get(label, 0) for s in self.evidence), default=0)

    def confirms_absent(self, label: str, floor: float | None = None) -> bool:
        """True only when ``label`` was searched for, no object carries it, and no annotator that searched for
        it saw a candidate scoring ``floor`` or more (default: anything it recorded). Without evidence: False."""
        if label in self.objects_by_label:
            return False
        looked = [s for s in self.evidence if label in s.vocabulary]
        if not looked:
            return False
        return all(s.best_below.get(label, 0.0) < (s.floor if floor is None else floor) for s in looked)

    @property
    def metric(self) -> bool:
        """Whether points can be measured in metres: a depth map in metres and the camera's intrinsics."""
        return self.depth is not None and self.depth.metric and self.camera is not None

    def has(self, *names: str) -> bool:
        """Whether every named field was annotated (``graph.has("objects", "depth")``)."""
        return all(n in self.fields for n in names)

    def replace(self, **changes: Any) -> "SceneGraph":
        """A new, validated graph with some fields changed."""
        return replace(self, **changes)

    # ----------------------------------------------------------------- serialization
    def to_dict(self, depth_key: str | None = None) -> dict[str, Any]:
        """Plain-JSON form. Depth values are not included: pass the key under which they are stored."""
        return {
            "version": SCHEMA_VERSION,
            "image_id": self.image_id,
            "path": self.path,
            "width": self.width,
            "height": self.height,
            "sha256": self.sha256,
            "fields": sorted(self.fields),
            "objects": [o.to_dict() for o in self.objects],
            "relations": [r.to_dict() for r in self.relations],
            "text": [t.to_dict() for t in self.text],
            "depth": None if self.depth is None else self.depth.header(depth_key or self.image_id),
            **({"camera": self.camera.to_dict()} if self.camera is not None else {}),
            "provenance": dict(self.provenance),
            "meta": dict(self.meta),
            **({"evidence": [e.to_dict() for e in self.evidence]} if self.evidence else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], depth: DepthMap | None = None) -> "SceneGraph":
        """Validate and build a graph from its JSON form. Errors name the field path."""
        return _graph_from_dict(data, depth)

    def _repr_png_(self) -> bytes:
        from .draw import graph_png  # Jupyter display; drawing lives in scene_graphs/draw.py

        return graph_png(self)

    def __repr__(self) -> str:
        return (f"SceneGraph({self.image_id!r}, {self.width}x{self.height}, {len(self.objects)} objects, "
                f"{len(self.relations)} relations, {len(self.text)} text, depth={'yes' if self.depth else 'no'})")


# --------------------------------------------------------------------- parsing from plain data
def _req(d: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, Mapping):
        raise ValidationError(f"expected an object, got {type(d).__name__}", where)
    if key not in d:
        raise ValidationError("missing required field", f"{where}.{key}" if where else key)
    return d[key]


def _known_keys(d: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """Refuse keys the format does not define (a typo would otherwise drop data silently)."""
    for key in d:
        if key not in allowed:
            path = f"{where}.{key}" if where else str(key)
            raise ValidationError(f"unknown field (known: {', '.join(allowed)})", path)


def _list_or_none(value: Any, where: str) -> list:
    """A JSON list, with ``null`` / absent meaning empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError(f"must be a list, got {type(value).__name__}", where)
    return value


_GRAPH_KEYS = ("version", "image_id", "path", "width", "height", "sha256", "fields", "objects", "relations", "text",
               "depth", "camera", "provenance", "meta", "evidence")
_OBJECT_KEYS = ("id", "label", "box", "score", "mask", "attributes", "depth", "synset")
_ATTRIBUTE_KEYS = ("name", "category", "score", "source")
_RELATION_KEYS = ("subject", "predicate", "object", "score", "source")
_TEXT_KEYS = ("id", "text", "box", "score", "object")
_MASK_KEYS = ("size", "counts")
_DEPTH_KEYS = ("key", "larger_is_nearer", "height", "width", "unit")
_CAMERA_KEYS = ("fx", "fy", "cx", "cy")
_SEARCH_KEYS = ("annotator", "vocabulary", "threshold", "floor", "best_below", "count_below")


def _at(where: str, fn, *args):  # type: ignore[no-untyped-def]
    try:
        return fn(*args)
    except ValidationError as exc:
        raise exc.at(where) from None
    except (TypeError, KeyError) as exc:  # malformed nested values
        raise ValidationError(f"malformed value ({exc})", where) from None


def _attribute_from(d: Any) -> Attribute:
    if isinstance(d, str):
        return Attribute(d)
    name = _req(d, "name", "")
    _known_keys(d, _ATTRIBUTE_KEYS, "")
    return Attribute(name, d.get("category", "other"), d.get("score", 1.0), d.get("source"))


def _object_from(d: Mapping[str, Any]) -> Object:
    box = _at("box", Box.from_list, _req(d, "box", ""))
    _known_keys(d, _OBJECT_KEYS, "")
    mask = None
    if d.get("mask") is not None:
        if not isinstance(d["mask"], Mapping):
            raise ValidationError(f"expected an object, got {type(d['mask']).__name__}", "mask")
        _known_keys(d["mask"], _MASK_KEYS, "mask")
        mask = _at("mask", Mask.from_rle, d["mask"])
    attrs = _list_or_none(d.get("attributes"), "attributes")
    attributes = tuple(_at(f"attributes[{i}]", _attribute_from, a) for i, a in enumerate(attrs))
    return Object(_req(d, "id", ""), _req(d, "label", ""), box, d.get("score", 1.0), mask, attributes,
                  d.get("depth"), d.get("synset"))


def _relation_from(d: Mapping[str, Any]) -> Relation:
    subject = _req(d, "subject", "")
    _known_keys(d, _RELATION_KEYS, "")
    return Relation(subject, _req(d, "predicate", ""), _req(d, "object", ""), d.get("score", 1.0),
                    d.get("source", "human"))


def _text_from(d: Mapping[str, Any]) -> TextRegion:
    box = _at("box", Box.from_list, _req(d, "box", ""))
    _known_keys(d, _TEXT_KEYS, "")
    return TextRegion(_req(d, "id", ""), _req(d, "text", ""), box, d.get("score", 1.0), d.get("object"))


def _search_from(d: Mapping[str, Any]) -> Search:
    annotator = _req(d, "annotator", "")
    _known_keys(d, _SEARCH_KEYS, "")
    return Search(annotator, _list_or_none(_req(d, "vocabulary", ""), "vocabulary"), _req(d, "threshold", ""),
                  d.get("floor", 0.05), d.get("best_below") or {}, d.get("count_below") or {})


def _list_of(data: Mapping[str, Any], key: str, parse) -> tuple:  # type: ignore[no-untyped-def]
    items = _list_or_none(data.get(key), key)
    return tuple(_at(f"{key}[{i}]", parse, item) for i, item in enumerate(items))


def _graph_from_dict(data: Mapping[str, Any], depth: DepthMap | None) -> SceneGraph:
    if not isinstance(data, Mapping):
        raise ValidationError(f"a scene graph must be a JSON object, got {type(data).__name__}")
    _known_keys(data, _GRAPH_KEYS, "")
    version = data.get("version")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise ValidationError(f"unknown scene-graph format version {version!r} (this mmgen reads {SCHEMA_VERSION})",
                              "version")
    header = data.get("depth")
    if header is not None:
        if not isinstance(header, Mapping):
            raise ValidationError(f"must be an object or null, got {type(header).__name__}", "depth")
        _known_keys(header, _DEPTH_KEYS, "depth")
        if depth is None:
            raise ValidationError("graph refers to a depth map but none was supplied (missing .npz beside the shard?)",
                                  "depth")
        if header.get("larger_is_nearer") != depth.larger_is_nearer:
            raise ValidationError("larger_is_nearer differs between the graph and its depth map",
                                  "depth.larger_is_nearer")
        unit = header.get("unit", "relative")
        if unit != depth.unit:
            if depth.unit != "relative":
                raise ValidationError(f"unit differs between the graph ({unit!r}) and its depth map ({depth.unit!r})",
                                      "depth.unit")
            # a loader that read only the values (and the convention): the header's unit is the map's
            depth = _at("depth", DepthMap, depth.values, depth.larger_is_nearer, unit)
        shape = (header.get("height"), header.get("width"))
        if shape != depth.shape:
            raise ValidationError(f"header says {shape[0]}x{shape[1]} but the depth map is "
                                  f"{depth.shape[0]}x{depth.shape[1]}", "depth")
    for key in ("provenance", "meta"):
        value = data.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise ValidationError(f"must be an object, got {type(value).__name__}", key)
    camera = None
    if data.get("camera") is not None:
        if not isinstance(data["camera"], Mapping):
            raise ValidationError(f"must be an object or null, got {type(data['camera']).__name__}", "camera")
        _known_keys(data["camera"], _CAMERA_KEYS, "camera")
        camera = _at("camera", lambda c: Camera(*(_req(c, k, "") for k in _CAMERA_KEYS)), data["camera"])
    fields_ = _list_or_none(data.get("fields"), "fields")
    return SceneGraph(
        image_id=_req(data, "image_id", ""),
        width=_req(data, "width", ""),
        height=_req(data, "height", ""),
        path="" if data.get("path") is None else data["path"],
        sha256=data.get("sha256"),
        objects=_list_of(data, "objects", _object_from),
        relations=_list_of(data, "relations", _relation_from),
        text=_list_of(data, "text", _text_from),
        depth=depth if header is not None else None,
        fields=fields_,
        provenance=dict(data.get("provenance") or {}),
        meta=dict(data.get("meta") or {}),
        evidence=_list_of(data, "evidence", _search_from),
        camera=camera,
    )


def infer_fields(objects: Iterable[Object], relations: Iterable[Relation] = (), text: Iterable[TextRegion] = (),
                 depth: DepthMap | None = None) -> frozenset[str]:
    """The fields a human-annotated graph evidently has (used by importers)."""
    objects = list(objects)
    out = {"objects"}
    if objects and all(o.mask is not None for o in objects):
        out.add("masks")
    if any(o.attributes for o in objects):
        out.add("attributes")
    if any(True for _ in relations):
        out.add("relations")
    if any(True for _ in text):
        out.add("text")
    if depth is not None:
        out.add("depth")
    return frozenset(out)
