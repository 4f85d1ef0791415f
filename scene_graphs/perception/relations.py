"""Relations from geometry and depth, by written-down rules; and an optional CLIP check.

Notation for a pair (subject A, object B): boxes ``A = (x1, y1, x2, y2)`` in pixels (y grows
downwards), width ``w``, height ``h``, centre ``(cx, cy)``; ``ox`` = length of the boxes' overlap along
x divided by the narrower width, ``oy`` likewise along y; ``ioa(A, B)`` = area of A inside B / area of A.
``n(X)`` is the object's depth normalised to [0, 1] over the image's depth map (2nd..98th percentile),
made to grow as things get nearer whatever the map's convention; ``dn = n(A) - n(B)``. "Depth known"
means both objects have ``depth`` and the graph has a depth map. ``clip`` limits to [0, 1].

Pairs: only near pairs are compared: B is among A's ``neighbours`` nearest objects (distance between
box edges, 0 when boxes overlap; ties by id) or A among B's. Rules (each yields a score in [0, 1];
a relation is kept when its score reaches ``min_score``):

Kinds of things come from a written table, ``data/relation_kinds.json`` (:data:`KINDS`): ``containers``
(what can have something inside it), ``supports`` (surfaces and mounts something rests on), ``holders``
and ``holdable`` things, and ``typical_size_m`` (rough largest dimension of each COCO class, metres).
``sep`` is the overlap margin ``separation`` (0.2): boxes may overlap along an axis by at most that
share of the narrower (shorter) box and still count as apart.

**Apparent scale** (before any rule): when both labels have a typical size and neither box touches the
image border (a cut-off box looks smaller than its object), each object's apparent scale is
``max(w, h) / typical size`` in pixels per metre. When one scale exceeds the other ``scale_ratio`` (5)
times, one object is far behind the other and looks beside or on it only by projection: the pair gets
no geometric relation, unless depth is known and says they are near (``|dn| <= 2 depth_margin``).
Depth relations are still given.

=============  =====================================================================================
predicate      rule (source ``geometry`` unless said)
=============  =====================================================================================
left of        clear separation: cx(A) < cx(B) and the boxes overlap along x by at most ``sep`` of the
               narrower width (a man standing in front of a bus is not "left of" it); score =
               clip((cx(B) - cx(A)) / ((w(A) + w(B)) / 2)).
right of       the mirror of *left of*.
above          cy(A) < cy(B), ox >= 0.3 (one is over the other) and the boxes overlap along y by at most
               ``sep`` of the shorter height; score = clip((cy(B) - cy(A)) / ((h(A) + h(B)) / 2)).
below          the mirror of *above*.
on             B is a supporting surface (``supports``) and A rests on it: area(A) < area(B); A's
               horizontal centre inside B's x-range; A's bottom edge between B's top edge minus 0.1 h(A)
               and B's vertical middle; and, when depth is known, ``|dn| <= 2 depth_margin``. Score =
               share of A's width inside B's x-range. (No "spectator on the batter", no "cup on a cup".)
under          the inverse of *on* (B on A gives A under B), same score.
inside         B is a container (``containers``), ioa(A, B) >= 0.9 and area(A) <= 0.5 area(B), unless
               depth is known and A is nearer than B by more than ``depth_margin`` (then A is in front,
               not inside). For open containers (``open_containers``: cup, bowl, vase...) A's centre must
               also lie in the upper 60 % of B's box, where the opening shows (a spoon lying on the
               saucer in front of a cup is not inside it). Score = ioa. (No "cup inside dining table",
               no "tie inside person".)
next to        side by side and close: oy >= 0.5; ox <= 0.5 (not one in front of the other); the gap
               between the boxes along x is at most half the narrower width; the smaller box has at
               least a tenth of the larger's area; and, when depth is known, ``|dn| <= 2 depth_margin``.
               Score = 1 - gap / narrower width (so 0.5..1). Symmetric: both directions are listed.
holding        A is a holder, B holdable, area(B) <= 0.3 area(A), ioa(B, A) >= 0.5, B's centre inside
               A's box between 15 % and 85 % of A's height; and **the hand region**: A has a mask (no
               mask, no holding) and A's own pixels cover between 3 % and 60 % of B's box, so a part of
               the person (a hand or arm) reaches into the thing without the thing being merely painted
               over the body; when depth is known, ``|dn| <= 2 depth_margin``. Score = ioa(B, A).
in front of    source ``depth``: depth known and dn >= depth_margin; score = clip(dn / (2 depth_margin)),
               0.5 at the margin.
behind         source ``depth``: the inverse of *in front of*, same score.
=============  =====================================================================================

At most ``max_relations`` relations are kept per graph, highest scores first (ties by subject,
predicate, object), and the list is sorted the same way, so output is deterministic.

:class:`ClipRelationCheck` (optional, ``full`` profile) re-scores the relations whose predicates are
in ``predicates`` with CLIP on the crop around both boxes: it compares ``"a photo of a {A} {pred} a
{B}."`` with the reversed sentence and ``"a photo of a {A} and a {B}."``; a relation is dropped when
the softmax probability of its own sentence is under ``min_prob``, else its score becomes
``sqrt(score * prob)``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..model import Box, Object, Relation, SceneGraph
from .base import Annotator
from .images import ImageItem

KINDS_FILE = Path(__file__).with_name("data") / "relation_kinds.json"


@lru_cache(maxsize=1)
def _kinds() -> Mapping[str, Any]:
    return json.loads(KINDS_FILE.read_text(encoding="utf-8"))


KINDS = _kinds()
"""The table of kinds (``data/relation_kinds.json``)."""
HOLDERS = frozenset(KINDS["holders"])
"""Labels that can hold things."""
HOLDABLE = frozenset(KINDS["holdable"])
"""Labels of things a person can hold (COCO names and common synonyms)."""
CONTAINERS = frozenset(KINDS["containers"])
"""Labels of things that can have something inside them."""
OPEN_CONTAINERS = frozenset(KINDS["open_containers"])
"""Containers whose contents show in their upper part."""
SUPPORTS = frozenset(KINDS["supports"])
"""Labels of surfaces and mounts something can rest on."""
TYPICAL_SIZE_M: Mapping[str, float] = dict(KINDS["typical_size_m"])
"""Rough largest dimension of each COCO class in metres (apparent-scale rule)."""

GEOMETRY_PREDICATES = ("left of", "right of", "above", "below", "on", "under", "inside", "next to", "holding")
DEPTH_PREDICATES = ("in front of", "behind")
PREDICATES = GEOMETRY_PREDICATES + DEPTH_PREDICATES


def _clip01(v: float) -> float:
    return 0.0 if v < 0 else 1.0 if v > 1 else float(v)


def _overlap(a1: float, a2: float, b1: float, b2: float) -> float:
    return max(0.0, min(a2, b2) - max(a1, b1))


def edge_distance(a: Box, b: Box) -> float:
    """Distance between the edges of two boxes (0 when they touch or overlap)."""
    dx = max(0.0, max(a.x1, b.x1) - min(a.x2, b.x2))
    dy = max(0.0, max(a.y1, b.y1) - min(a.y2, b.y2))
    return math.hypot(dx, dy)


def ioa(a: Box, b: Box) -> float:
    """Share of ``a``'s area inside ``b``."""
    return a.intersection(b) / a.area if a.area > 0 else 0.0


@dataclass(frozen=True)
class RelationRules:
    """Thresholds of the rules in the module docstring."""

    min_score: float = 0.5
    depth_margin: float = 0.1
    neighbours: int = 5
    max_relations: int = 300
    separation: float = 0.2
    scale_ratio: float = 5.0
    width: float | None = None
    height: float | None = None
    """Image size, for the apparent-scale rule's border test (unknown: no box counts as cut off)."""

    def near_pairs(self, objects: Sequence[Object]) -> list[tuple[int, int]]:
        """Ordered pairs (i, j), i != j, where one is among the other's nearest ``neighbours``."""
        n = len(objects)
        near: set[tuple[int, int]] = set()
        for i in range(n):
            others = sorted((edge_distance(objects[i].box, objects[j].box), objects[j].id, j) for j in range(n) if j != i)
            for _, _, j in others[: self.neighbours]:
                near.add((i, j))
                near.add((j, i))
        return sorted(near)

    # ------------------------------------------------------------------ single rules
    def left_of(self, a: Box, b: Box) -> float:
        narrower = min(a.width, b.width)
        if a.center[0] >= b.center[0] or narrower <= 0:
            return 0.0
        if _overlap(a.x1, a.x2, b.x1, b.x2) > self.separation * narrower:
            return 0.0
        return _clip01((b.center[0] - a.center[0]) / ((a.width + b.width) / 2 or 1.0))

    def above(self, a: Box, b: Box) -> float:
        if a.center[1] >= b.center[1]:
            return 0.0
        narrower, shorter = min(a.width, b.width), min(a.height, b.height)
        if narrower <= 0 or shorter <= 0 or _overlap(a.x1, a.x2, b.x1, b.x2) / narrower < 0.3:
            return 0.0
        if _overlap(a.y1, a.y2, b.y1, b.y2) > self.separation * shorter:
            return 0.0
        return _clip01((b.center[1] - a.center[1]) / ((a.height + b.height) / 2 or 1.0))

    def _cut_off(self, box: Box) -> bool:
        if self.width is None or self.height is None:
            return False
        return box.x1 <= 2 or box.y1 <= 2 or box.x2 >= self.width - 2 or box.y2 >= self.height - 2

    def far_apart_in_depth(self, a: Object, b: Object, dn: float | None) -> bool:
        """The apparent-scale rule: one object looks far behind the other (and depth does not say otherwise)."""
        if dn is not None:
            return abs(dn) > 2 * self.depth_margin
        sa, sb = TYPICAL_SIZE_M.get(a.label.lower()), TYPICAL_SIZE_M.get(b.label.lower())
        if not sa or not sb or self._cut_off(a.box) or self._cut_off(b.box):
            return False
        pa, pb = max(a.box.width, a.box.height) / sa, max(b.box.width, b.box.height) / sb
        return min(pa, pb) <= 0 or max(pa, pb) / min(pa, pb) > self.scale_ratio

    def on_support(self, a: Object, b: Object, dn: float | None) -> float:
        return self.on(a.box, b.box, dn) if b.label.lower() in SUPPORTS else 0.0

    def inside_container(self, a: Object, b: Object, dn: float | None) -> float:
        kind = b.label.lower()
        if kind not in CONTAINERS:
            return 0.0
        if kind in OPEN_CONTAINERS and a.box.center[1] > b.box.y1 + 0.6 * b.box.height:
            return 0.0
        return self.inside(a.box, b.box, dn)

    def on(self, a: Box, b: Box, dn: float | None) -> float:
        if a.area >= b.area or not (b.x1 <= a.center[0] <= b.x2):
            return 0.0
        if not (b.y1 - 0.1 * a.height <= a.y2 <= b.y1 + 0.5 * b.height):
            return 0.0
        if dn is not None and abs(dn) > 2 * self.depth_margin:
            return 0.0
        return _clip01(_overlap(a.x1, a.x2, b.x1, b.x2) / a.width) if a.width > 0 else 0.0

    def inside(self, a: Box, b: Box, dn: float | None) -> float:
        share = ioa(a, b)
        if share < 0.9 or a.area > 0.5 * b.area:
            return 0.0
        if dn is not None and dn > self.depth_margin:
            return 0.0
        return _clip01(share)

    def next_to(self, a: Box, b: Box, dn: float | None) -> float:
        shorter = min(a.height, b.height)
        narrower = min(a.width, b.width)
        if shorter <= 0 or narrower <= 0:
            return 0.0
        if _overlap(a.y1, a.y2, b.y1, b.y2) / shorter < 0.5:
            return 0.0
        gap = max(0.0, max(a.x1, b.x1) - min(a.x2, b.x2))
        if gap > 0.5 * narrower or _overlap(a.x1, a.x2, b.x1, b.x2) / narrower > 0.5:
            return 0.0
        if min(a.area, b.area) < 0.1 * max(a.area, b.area):
            return 0.0
        if dn is not None and abs(dn) > 2 * self.depth_margin:
            return 0.0
        return _clip01(1.0 - gap / narrower)

    def holding(self, a: Object, b: Object, dn: float | None) -> float:
        if a.label.lower() not in HOLDERS or b.label.lower() not in HOLDABLE:
            return 0.0
        A, B = a.box, b.box
        if B.area > 0.3 * A.area:
            return 0.0
        share = ioa(B, A)
        cx, cy = B.center
        if share < 0.5 or not (A.x1 <= cx <= A.x2) or not (A.y1 + 0.15 * A.height <= cy <= A.y1 + 0.85 * A.height):
            return 0.0
        if dn is not None and abs(dn) > 2 * self.depth_margin:
            return 0.0
        hand = hand_share(a, B)
        if hand is None or not (0.03 <= hand <= 0.6):
            return 0.0
        return _clip01(share)

    def in_front_of(self, dn: float | None) -> float:
        if dn is None or dn < self.depth_margin - 1e-9:  # the margin itself counts despite rounding
            return 0.0
        return _clip01(dn / (2 * self.depth_margin))

    # ------------------------------------------------------------------ all rules
    def relations(self, objects: Sequence[Object], nearness: Sequence[float | None] | None = None,
                  predicates: Iterable[str] = PREDICATES) -> list[Relation]:
        """Every relation the rules give for ``objects`` (``nearness`` per object, normalised, or None)."""
        wanted = set(predicates)
        near = nearness if nearness is not None else [None] * len(objects)
        found: dict[tuple[str, str, str], tuple[float, str]] = {}

        def add(subject: Object, pred: str, obj: Object, score: float, source: str = "geometry") -> None:
            score = round(score, 6)  # thresholds hold at their boundary despite float rounding
            if pred in wanted and score >= self.min_score and score > 0:
                key = (subject.id, pred, obj.id)
                if key not in found or found[key][0] < score:
                    found[key] = (score, source)

        for i, j in self.near_pairs(objects):
            a, b = objects[i], objects[j]
            dn = None if near[i] is None or near[j] is None else float(near[i]) - float(near[j])  # type: ignore[arg-type]
            s = self.in_front_of(dn)
            add(a, "in front of", b, s, "depth")
            add(b, "behind", a, s, "depth")
            if self.far_apart_in_depth(a, b, dn):
                continue
            s = self.left_of(a.box, b.box)
            add(a, "left of", b, s)
            add(b, "right of", a, s)
            s = self.above(a.box, b.box)
            add(a, "above", b, s)
            add(b, "below", a, s)
            s = self.on_support(a, b, dn)
            add(a, "on", b, s)
            add(b, "under", a, s)
            add(a, "inside", b, self.inside_container(a, b, dn))
            add(a, "next to", b, self.next_to(a.box, b.box, dn))
            add(a, "holding", b, self.holding(a, b, dn))
        ranked = sorted(found.items(), key=lambda kv: (-kv[1][0], kv[0]))[: self.max_relations]
        return [Relation(s, p, o, round(score, 4), source) for (s, p, o), (score, source) in ranked]


def hand_share(holder: Object, box: Box) -> float | None:
    """Share of ``box`` covered by ``holder``'s mask (None when it has no mask)."""
    if holder.mask is None or box.area <= 0:
        return None
    m = holder.mask.to_array()
    h, w = m.shape
    x1, y1 = max(0, int(math.floor(box.x1))), max(0, int(math.floor(box.y1)))
    x2, y2 = min(w, int(math.ceil(box.x2))), min(h, int(math.ceil(box.y2)))
    if x2 <= x1 or y2 <= y1:
        return 0.0
    return float(m[y1:y2, x1:x2].mean())


def normalized_nearness(graph: SceneGraph) -> list[float | None]:
    """Per object: depth normalised to [0, 1] (2nd..98th percentile of the map), growing when nearer."""
    if graph.depth is None:
        return [None] * len(graph.objects)
    lo, hi = np.percentile(graph.depth.values, [2, 98])
    span = float(hi - lo)
    out: list[float | None] = []
    for o in graph.objects:
        if o.depth is None or span <= 0:
            out.append(None)
            continue
        v = _clip01((o.depth - float(lo)) / span)
        out.append(v if graph.depth.larger_is_nearer else 1.0 - v)
    return out


class GeometryRelations(Annotator):
    """Fills ``relations`` from the boxes (and the depth, when the graph has it) by the rules above."""

    name = "relations"
    fills = frozenset({"relations"})
    needs = frozenset({"objects"})
    requires = {"numpy": "numpy"}
    distributions = ()
    defaults = {
        "min_score": 0.5,
        "depth_margin": 0.1,
        "neighbours": 5,
        "max_relations": 300,
        "separation": 0.2,
        "scale_ratio": 5.0,
        "predicates": PREDICATES,
    }

    def _load(self, device: str) -> None:
        unknown = sorted(set(self.options["predicates"]) - set(PREDICATES))
        if unknown:
            from .base import AnnotatorError

            raise AnnotatorError(f"stage 'relations': unknown predicates {unknown}; known: {list(PREDICATES)}")
        self.rules = RelationRules(self.options["min_score"], self.options["depth_margin"], self.options["neighbours"],
                                   self.options["max_relations"], self.options["separation"],
                                   self.options["scale_ratio"])

    def process(self, batch: Sequence[ImageItem], graphs: Sequence[SceneGraph]) -> list[SceneGraph]:
        from dataclasses import replace

        out = []
        for graph in graphs:
            rules = replace(self.rules, width=float(graph.width), height=float(graph.height))
            rels = rules.relations(graph.objects, normalized_nearness(graph), self.options["predicates"])
            kept = tuple(r for r in graph.relations if r.source not in {"geometry", "depth"})
            out.append(self.stamp(graph, relations=kept + tuple(rels)))
        return out


class ClipRelationCheck(Annotator):
    """Re-scores (and drops) geometric relations with CLIP on the crop around both objects."""

    name = "clip_relations"
    fills = frozenset({"relations"})
    needs = frozenset({"objects", "relations"})
    requires = {"torch": "torch", "open_clip": "open_clip_torch"}
    distributions = ("open_clip_torch", "torch")
    default_optional = True
    model_choices = ("clip-vit-b-32",)
    defaults = {
        "model": "clip-vit-b-32",
        "predicates": ("on", "under", "inside", "holding", "next to", "in front of", "behind"),
        "min_prob": 0.34,
        "padding": 0.05,
        "batch_size": 32,
        "random_init": False,
    }

    def _load(self, device: str) -> None:
        from .attributes import ClipScorer, load_clip

        model, preprocess, tokenizer = load_clip(self, self.options["model"], device, self.options["random_init"])
        self.scorer = ClipScorer(model, preprocess, tokenizer, device, self.options["batch_size"])

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        if self.options["random_init"] and not prov["models"]:
            prov["models"] = [{"model": self.options["model"], "file": None, "sha256": None, "origin": "random-init"}]
        return prov

    @staticmethod
    def sentences(subject: str, predicate: str, obj: str) -> list[str]:
        return [f"a photo of a {subject} {predicate} a {obj}.", f"a photo of a {obj} {predicate} a {subject}.",
                f"a photo of a {subject} and a {obj}."]

    def process(self, batch: Sequence[ImageItem], graphs: Sequence[SceneGraph]) -> list[SceneGraph]:
        from .attributes import crop_box

        checked = set(self.options["predicates"])
        crops, where = [], []
        for gi, (item, graph) in enumerate(zip(batch, graphs)):
            by_id = graph.objects_by_id
            for ri, r in enumerate(graph.relations):
                if r.predicate not in checked:
                    continue
                a, b = by_id[r.subject].box, by_id[r.object].box
                union = Box(min(a.x1, b.x1), min(a.y1, b.y1), max(a.x2, b.x2), max(a.y2, b.y2))
                x1, y1, x2, y2 = crop_box(union, item.width, item.height, self.options["padding"], 16.0)
                crops.append(np.ascontiguousarray(item.pixels[y1:y2, x1:x2]))
                where.append((gi, ri))
        feats = self.scorer.embed_images(crops) if crops else []
        verdict: dict[tuple[int, int], float] = {}
        for (gi, ri), feat in zip(where, feats):
            g = graphs[gi]
            r = g.relations[ri]
            s, o = g.objects_by_id[r.subject].label, g.objects_by_id[r.object].label
            verdict[(gi, ri)] = float(self.scorer.probabilities(feat, self.sentences(s, r.predicate, o))[0])
        out = []
        for gi, graph in enumerate(graphs):
            rels = []
            for ri, r in enumerate(graph.relations):
                p = verdict.get((gi, ri))
                if p is None:
                    rels.append(r)
                elif p >= self.options["min_prob"]:
                    rels.append(Relation(r.subject, r.predicate, r.object, round(math.sqrt(r.score * p), 4), r.source))
            out.append(self.stamp(graph, relations=tuple(rels)))
        return out
