"""Word lists shared by importers, annotators and programs, kept as data in one place.

Annotation sets such as Visual Genome, GQA and ProVision give attributes as bare words ("white",
"wooden", "open"); :func:`attribute_category` files each under one of the data model's
:data:`~scene_graphs.model.ATTRIBUTE_CATEGORIES` (``other`` when no list claims it). Lists are
lower-case; matching is done on :func:`normalize` -d text, so "Dark Blue " is a colour.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

COLORS: frozenset[str] = frozenset({
    "white", "black", "blue", "green", "red", "brown", "yellow", "gray", "grey", "orange", "pink", "purple",
    "silver", "gold", "golden", "tan", "beige", "navy", "maroon", "teal", "turquoise", "cream", "khaki",
    "ivory", "violet", "magenta", "cyan", "lavender", "blond", "blonde", "bronze", "multicolored",
    "multi colored", "colorful", "colourful", "light blue", "dark blue", "light brown", "dark brown",
})
"""Colour words (a shade modifier in front, "dark green", is also a colour: see :data:`SHADE_MODIFIERS`)."""

SHADE_MODIFIERS: frozenset[str] = frozenset({"dark", "light", "bright", "pale", "deep", "navy"})
"""Words that may precede a colour word and keep the whole phrase a colour."""

MATERIALS: frozenset[str] = frozenset({
    "wooden", "wood", "metal", "metallic", "plastic", "glass", "stone", "brick", "concrete", "leather",
    "cloth", "fabric", "paper", "cardboard", "ceramic", "porcelain", "rubber", "steel", "stainless steel",
    "iron", "aluminum", "aluminium", "cotton", "wool", "woolen", "denim", "silk", "marble", "granite", "tile",
    "tiled", "straw", "wicker", "bamboo", "chrome", "copper", "brass", "asphalt", "cement", "plaster", "foam",
    "velvet", "lace", "canvas", "nylon", "vinyl", "furry", "fur", "tin", "clay", "gravel", "sand", "sandy",
})

SIZES: frozenset[str] = frozenset({
    "big", "large", "small", "little", "tiny", "huge", "giant", "tall", "short", "long", "wide", "narrow",
    "thick", "thin", "massive", "enormous", "medium", "mini", "high", "low", "large sized", "small sized",
})

SHAPES: frozenset[str] = frozenset({
    "round", "square", "rectangular", "circular", "triangular", "oval", "curved", "straight", "pointy",
    "pointed", "flat", "spherical", "cylindrical", "hexagonal", "octagonal", "curvy", "rectangle", "circle",
    "triangle", "arched", "angled",
})

PATTERNS: frozenset[str] = frozenset({
    "striped", "stripes", "checkered", "plaid", "spotted", "dotted", "polka dot", "polka dotted", "floral",
    "patterned", "printed", "checked", "camouflage", "speckled", "paisley",
})

STATES: frozenset[str] = frozenset({
    "open", "opened", "closed", "shut", "empty", "full", "wet", "dry", "broken", "dirty", "clean", "lit",
    "on", "off", "parked", "standing", "sitting", "walking", "running", "sleeping", "lying", "laying",
    "smiling", "flying", "hanging", "sliced", "cut", "folded", "melted", "cooked", "ripe", "frozen",
    "burning", "crouching", "kneeling", "squatting", "swinging", "moving", "stopped", "turned on",
    "turned off", "playing", "eating", "jumping", "leaning", "stacked", "rolled", "bent", "crumpled",
})

ATTRIBUTE_VOCABULARY: Mapping[str, frozenset[str]] = MappingProxyType({
    "color": COLORS,
    "material": MATERIALS,
    "size": SIZES,
    "shape": SHAPES,
    "pattern": PATTERNS,
    "state": STATES,
})
"""Category -> words. Every key is one of the data model's attribute categories (but ``other``)."""


def normalize(text: str) -> str:
    """Lower-case, trimmed, inner whitespace collapsed to single spaces."""
    return " ".join(text.split()).lower()


def attribute_category(name: str) -> str:
    """The category of an attribute word: ``color``, ``material``, ``size``, ``shape``, ``pattern``,
    ``state`` or ``other``. A colour word after shade modifiers ("dark green") is a colour."""
    word = normalize(name)
    for category, words in ATTRIBUTE_VOCABULARY.items():
        if word in words:
            return category
    parts = word.split(" ")
    if len(parts) > 1 and parts[-1] in COLORS and all(p in SHADE_MODIFIERS for p in parts[:-1]):
        return "color"
    return "other"
