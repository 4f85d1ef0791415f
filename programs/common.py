"""Helpers every single-image family shares: per-view geometry and attribute facts, deterministic
orders for capping lists, and the attribute vocabulary of near-synonyms and exclusive values.

Everything derived from a view is cached in the view's memo (:meth:`programs.base.GraphView.memo`),
so it is computed once per image whichever program asks first.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from scene_graphs.model import Object
from scene_graphs.vocab import normalize

from .base import GraphView
from .grammar import fmt_box


# =========================================================================== ordering
@lru_cache(maxsize=65536)
def _crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def hashed_order(view: GraphView, salt: str, items: Iterable[Any], key: Callable[[Any], str] = str) -> list[Any]:
    """``items`` in a deterministic order that differs per image and ``salt`` (for capping lists
    without always keeping the same, e.g. lowest-id, objects): sorted by the CRC-32 of the item's key
    mixed with that of (image id, salt). CRC-32 is enough to shuffle and is the same in every process."""
    items = list(items)
    base = _crc(f"{view.image_id}|{salt}")
    keyed = sorted((((_crc(k) ^ base) * 0x9E3779B1) & 0xFFFFFFFF, k, i) for i, k in enumerate(map(key, items)))
    return [items[i] for _, _, i in keyed]


# =========================================================================== objects and boxes
def is_confident(view: GraphView, obj: Object) -> bool:
    return obj.score >= view.config.confident_score


def unit_boxes(view: GraphView) -> dict[str, tuple[float, float, float, float]]:
    """Object id -> box in normalised coordinates (unrounded)."""
    def build() -> dict[str, tuple[float, float, float, float]]:
        w, h = view.width, view.height
        return {o.id: (o.box.x1 / w, o.box.y1 / h, o.box.x2 / w, o.box.y2 / h) for o in view.objects}
    return view.memo("unit_boxes", build)


def centers(view: GraphView) -> dict[str, tuple[float, float]]:
    """Object id -> box centre in normalised coordinates."""
    return view.memo("centers", lambda: {k: ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
                                         for k, b in unit_boxes(view).items()})


def norm_box(view: GraphView, obj: Object) -> list[float]:
    """The object's box normalised and rounded (``Box.normalized``), as a fresh list."""
    return obj.box.normalized(view.width, view.height)


def box_text(view: GraphView, obj: Object) -> str:
    """The object's normalised box as questions write it: ``[0.12, 0.30, 0.25, 0.45]``."""
    texts = view._memo.get("box_texts")
    if texts is None:
        texts = view._memo["box_texts"] = {}
    text = texts.get(obj.id)
    if text is None:
        text = texts[obj.id] = fmt_box(obj.box.normalized(view.width, view.height))
    return text


class _MaxIou(dict):
    """Object id -> highest IoU of its box with any other visible object's box, computed on first look-up."""

    def __init__(self, view: GraphView) -> None:
        super().__init__()
        self._objects = view.objects
        self._by_id = view.by_id

    def __missing__(self, oid: str) -> float:
        a = self._by_id[oid].box
        best = 0.0
        for o in self._objects:
            if o.id != oid:
                best = max(best, a.iou(o.box))
        self[oid] = best
        return best


def max_iou(view: GraphView) -> dict[str, float]:
    """Object id -> highest IoU of its box with any other visible object's box (computed per object on
    first look-up)."""
    return view.memo("max_iou", lambda: _MaxIou(view))


# =========================================================================== attributes
@lru_cache(maxsize=4096)
def person_like(label: str) -> bool:
    """Whether a label names people ("person", "man", "player"...)."""
    from .scenes import related_labels

    return normalize(label) in related_labels("person")


PERSON_CATEGORIES = frozenset({"state", "size"})
"""The attribute categories that may describe people ("standing", "tall"): a person's "colour" is
their clothes' (or worse, read as skin), and material, shape or pattern describe clothes too."""


def usable_attribute(label: str, category: str) -> bool:
    """Whether an attribute of this category may describe an object with this label in a question,
    answer or referring expression (people: only :data:`PERSON_CATEGORIES`)."""
    return category in PERSON_CATEGORIES or not person_like(label)


def attribute_names(view: GraphView) -> dict[str, frozenset[str]]:
    """Object id -> normalised names of its attributes scoring at least ``min_score``."""
    def build() -> dict[str, frozenset[str]]:
        lo = view.config.min_score
        return {o.id: frozenset(normalize(a.name) for a in o.attributes if a.score >= lo) for o in view.objects}
    return view.memo("attribute_names", build)


def decided_values(view: GraphView) -> dict[tuple[str, str], tuple[str, ...]]:
    """(object id, category) -> sorted normalised confident values, for every category that has at
    least one confident value and none in the uncertain band (absent key: not decided). People's
    colours, materials, shapes and patterns are never decided (:func:`usable_attribute`), nor the colour
    of a multi-coloured object (:func:`_multi_coloured`: "is it white?" has no answer for the eye)."""
    def build() -> dict[tuple[str, str], tuple[str, ...]]:
        conf, lo = view.config.confident_score, view.config.min_score
        out: dict[tuple[str, str], tuple[str, ...]] = {}
        for o in view.objects:
            sure: dict[str, set[str]] = {}
            unsure: set[str] = set()
            for a in o.attributes:
                if a.score < lo:
                    continue
                if a.score < conf:
                    unsure.add(a.category)
                else:
                    sure.setdefault(a.category, set()).add(normalize(a.name))
            for c, names in sure.items():
                if c not in unsure and usable_attribute(o.label, c):
                    out[(o.id, c)] = tuple(sorted(names))
            if (o.id, "color") in out and _multi_coloured(o, lo):
                del out[(o.id, "color")]
        return out
    return view.memo("decided_values", build)


def confident_attributes(view: GraphView, obj: Object) -> tuple[str, ...]:
    """Normalised names of the object's confident attributes, best first (ties by name), unique
    (only the usable ones, :func:`usable_attribute`)."""
    def build() -> dict[str, tuple[str, ...]]:
        c = view.config.confident_score
        out = {}
        for o in view.objects:
            names = [normalize(a.name) for a in sorted(o.attributes, key=lambda a: (-a.score, a.name))
                     if a.score >= c and usable_attribute(o.label, a.category)]
            out[o.id] = tuple(dict.fromkeys(names))
        return out
    return view.memo("confident_attributes", build).get(obj.id, ())


Family = tuple[tuple[str, ...], ...]

EXCLUSIVE: dict[str, tuple[Family, ...]] = {
    "color": ((
        ("white", "ivory", "cream", "off white"),
        ("black", "dark"),
        ("gray", "grey", "silver", "dark gray", "light gray", "dark grey", "light grey"),
        ("red", "maroon", "crimson", "burgundy", "dark red"),
        ("blue", "navy", "dark blue", "light blue", "teal", "turquoise", "cyan"),
        ("green", "teal", "dark green", "light green", "olive", "lime"),
        ("yellow", "gold", "golden", "blond", "blonde"),
        ("brown", "dark brown", "light brown", "tan", "bronze", "beige", "khaki"),
        ("orange", "gold"),
        ("pink", "magenta", "light pink"),
        ("purple", "violet", "lavender"),
    ),),
    "material": ((
        ("wood", "wooden", "bamboo", "wicker"),
        ("metal", "metallic", "steel", "stainless steel", "iron", "aluminum", "aluminium", "chrome", "copper",
         "brass", "tin"),
        ("plastic", "vinyl", "rubber", "foam"),
        ("glass",),
        ("fabric", "cloth", "cotton", "wool", "woolen", "denim", "silk", "velvet", "lace", "canvas", "nylon"),
        ("leather",),
        ("stone", "rock", "marble", "granite", "brick", "concrete", "cement"),
        ("paper", "cardboard"),
        ("ceramic", "porcelain", "clay", "tile", "tiled"),
    ),),
    "size": (
        (("large", "big", "huge", "giant", "massive", "enormous", "large sized"),
         ("small", "little", "tiny", "mini", "small sized")),
        (("tall", "high"), ("short", "low")),
        (("long",), ("short",)),
        (("wide",), ("narrow",)),
        (("thick",), ("thin",)),
    ),
    "state": (
        (("open", "opened"), ("closed", "shut")),
        (("on", "turned on", "lit"), ("off", "turned off", "unlit")),
        (("empty",), ("full",)),
        (("wet",), ("dry",)),
        (("clean",), ("dirty",)),
        (("parked", "stopped"), ("moving", "driving")),
        (("standing",), ("sitting",), ("lying", "laying"), ("walking",), ("running",), ("kneeling",)),
        (("cooked",), ("raw",)),
        (("sliced", "cut"), ("whole",)),
    ),
    "shape": ((("round", "circular", "circle", "oval", "spherical"), ("square",), ("rectangular", "rectangle"),
               ("triangular", "triangle")),),
    "pattern": ((("striped", "stripes"), ("checkered", "checked", "plaid"), ("spotted", "dotted", "polka dot",
                 "polka dotted"), ("floral",), ("plain", "solid")),),
}
"""Category -> families of mutually exclusive groups of near-synonymous values (first word = head)."""


@lru_cache(maxsize=1)
def _near_index() -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for families in EXCLUSIVE.values():
        for family in families:
            for group in family:
                for word in group:
                    out.setdefault(word, set()).update(group)
    return {k: frozenset(v) for k, v in out.items()}


@lru_cache(maxsize=4096)
def near(word: str) -> frozenset[str]:
    """``word`` and every value that may describe the same look (``gray`` -> grey, silver, ...)."""
    w = normalize(word)
    return _near_index().get(w, frozenset()) | {w}


PLAIN = frozenset({"plain", "solid"})
"""Pattern values that leave an object one-coloured."""


def _multi_coloured(obj: Object, min_score: float) -> bool:
    """Whether the object shows several colours: two colour values perceptually far apart
    (:func:`looks_different`) at ``COLOR_TRACE`` or more (a pixel-share annotator records a white inside of
    a red cup at 0.11), or a pattern other than plain at ``min_score`` or more."""
    if any(normalize(a.name) not in PLAIN for a in obj.attributes
           if a.category == "pattern" and a.score >= min_score):
        return True
    colours = sorted({normalize(a.name) for a in obj.attributes if a.category == "color" and a.score >= COLOR_TRACE})
    return any(b not in near(a) and looks_different("color", b, (a,)) for i, a in enumerate(colours)
               for b in colours[i + 1:])


COLOR_TRACE = 0.1
"""The smallest recorded colour score that counts as the object showing that colour in a part of its own
(a pixel share: below ``min_score``, so never stated as its colour, but enough to make it multi-coloured)."""


# =========================================================================== perceptual colour distance
FAR_DELTA_E = 56.0
"""Colours at least this far apart in CIELAB (CIE76 distance of their typical values, ``data/colors.json``)
are never confused by the eye; nearer ones (red/orange 34, red/brown 40, orange/yellow 54, white/gray 42,
blue/purple 25) are neighbours and never each other's distractor or zero answer."""


def _lab(hex_value: str) -> tuple[float, float, float]:
    """CIELAB (D65) of an sRGB hex value."""
    rgb = [int(hex_value[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb)
    xyz = ((0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047, 0.2126 * r + 0.7152 * g + 0.0722 * b,
           (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883)
    f = [t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29 for t in xyz]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


@lru_cache(maxsize=1)
def _color_labs() -> dict[str, tuple[float, float, float]]:
    """Colour name -> CIELAB of its typical value; names without one take their group head's."""
    import json
    from pathlib import Path

    values = json.loads((Path(__file__).parent / "data" / "colors.json").read_text(encoding="utf-8"))["values"]
    out = {name: _lab(v) for name, v in values.items()}
    for family in EXCLUSIVE["color"]:
        for group in family:
            for word in group:
                if word not in out and group[0] in out:
                    out[word] = out[group[0]]
    return out


@lru_cache(maxsize=16384)
def color_distance(a: str, b: str) -> float | None:
    """CIELAB distance of two colour names' typical values (``None`` when either has none)."""
    labs = _color_labs()
    la, lb = labs.get(normalize(a)), labs.get(normalize(b))
    if la is None or lb is None:
        return None
    return sum((x - y) ** 2 for x, y in zip(la, lb)) ** 0.5


def looks_different(category: str, value: str, names: Iterable[str]) -> bool:
    """Whether ``value`` is perceptually far from every colour in ``names`` (always, outside colour;
    names without a typical value are judged by :func:`near` alone, elsewhere)."""
    if category != "color":
        return True
    for n in names:
        d = color_distance(value, n)
        if d is not None and d < FAR_DELTA_E:
            return False
    return True


# =========================================================================== rationale phrasing
def located(text: str, strategy: str, box: str) -> str:
    """A referring expression with its box for a rationale: ``the cup (at [..])``; a region referent
    already carries its box (``the cup at [..]``) and is returned as it is."""
    return text if strategy == "region" else f"{text} (at {box})"
