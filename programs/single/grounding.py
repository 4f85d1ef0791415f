"""Grounding: boxes of named objects, and which of several regions holds an object.

Boxes in questions and answers are normalised ``[x1, y1, x2, y2]`` written with
:func:`programs.grammar.fmt_box`. Objects are named without their region (that would be the answer)
but may be named by position ("the left-most cup").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from scene_graphs.model import Object

from ..base import GraphView, Plan, Program, Realized, Template, make_rng, register
from ..common import box_text
from ..grammar import capitalize, fmt_box, join
from .objects import cached, hashed_order, is_confident, norm_box, referent

DISTRACTOR_IOU = 0.3
"""A distractor box or region overlaps the object by less than this IoU."""
DISTRACTOR_COVER = 0.25
"""... and holds less than this share of the object's box."""
CONTAIN_COVER = 0.9
"""A region "contains" an object when it holds at least this share of the object's box."""
MAX_OBJECTS = 4
"""Plans per image: every answer is a different box, so a few suffice for the per-image draw."""
MAX_BOX_DISTRACTORS = 6
"""Other objects' boxes offered as distractors (a per-image sample when there are more)."""
REGION_PAD = 0.25
"""Padding around the object for its region, as a share of the box side (at least 0.03 of the image)."""


Quad = Sequence[float]
"""A box as ``[x1, y1, x2, y2]`` (normalised here); plain sequences keep the inner loops cheap."""


def _inter(a: Quad, b: Quad) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _area(a: Quad) -> float:
    return (a[2] - a[0]) * (a[3] - a[1])


def iou(a: Quad, b: Quad) -> float:
    inter = _inter(a, b)
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def cover(inner: Quad, outer: Quad) -> float:
    """Share of ``inner``'s area inside ``outer`` (for a degenerate box: 1.0 if inside, else 0.0)."""
    area = _area(inner)
    if area <= 0:
        inside = outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]
        return 1.0 if inside else 0.0
    return _inter(inner, outer) / area


def _unit_box(view: GraphView, o: Object) -> tuple[float, float, float, float]:
    """The object's box in normalised coordinates, unrounded."""
    b = o.box
    return (b.x1 / view.width, b.y1 / view.height, b.x2 / view.width, b.y2 / view.height)


def groundable(view: GraphView) -> list[tuple[Object, Any]]:
    """Confident, not tiny objects named without their region, in a per-image order (at most
    ``2 * MAX_OBJECTS``: naming costs a :func:`refer` each)."""
    def make() -> list[tuple[Object, Any]]:
        out = []
        for o in hashed_order(view, "groundable", view.objects, key=lambda o: o.id):
            if is_confident(view, o) and view.area_share(o) >= view.config.min_box_area:
                ref = referent(view, o, allow_region=False)
                if ref is not None:
                    out.append((o, ref))
                    if len(out) >= 2 * MAX_OBJECTS:
                        break
        return out
    return cached(view, "groundable", make)


def _lookup(view: GraphView, object_id: str) -> tuple[Object, Any] | None:
    for o, r in groundable(view):
        if o.id == object_id:
            return o, r
    return None


def _far_from(candidate: Quad, obj: Quad) -> bool:
    """IoU below :data:`DISTRACTOR_IOU` and less than :data:`DISTRACTOR_COVER` of ``obj`` inside."""
    w = min(candidate[2], obj[2]) - max(candidate[0], obj[0])
    h = min(candidate[3], obj[3]) - max(candidate[1], obj[1])
    b = (obj[2] - obj[0]) * (obj[3] - obj[1])
    if w <= 0 or h <= 0:  # no overlap: IoU 0; cover 0, unless a degenerate object lies inside the candidate
        return b > 0 or cover(obj, candidate) < DISTRACTOR_COVER
    inter = w * h
    a = (candidate[2] - candidate[0]) * (candidate[3] - candidate[1])
    union = a + b - inter
    if union > 0 and inter / union >= DISTRACTOR_IOU:
        return False
    return (inter / b if b > 0 else cover(obj, candidate)) < DISTRACTOR_COVER


@register
class GroundBox(Program):
    """The normalised bounding box of a uniquely named object (distractors: boxes of other objects).

    Distractors (other objects' boxes, the object's box mirrored) overlap the object by IoU < 0.3
    and hold less than a quarter of it, as written with two decimals."""

    id = "single.ground_box"
    family = "grounding"
    answer_type = "box"
    num_options = 4
    templates = (
        Template("bounding_box", "What is the bounding box of {obj}? Answer as normalized [x1, y1, x2, y2]."),
        Template("give_coordinates", "Give the normalized coordinates [x1, y1, x2, y2] of the box around {obj}."),
        Template("where_box", "Where is {obj}? Answer with a bounding box in normalized coordinates."),
    )

    def candidates(self, view: GraphView) -> list[Plan]:
        return [{"object_id": o.id} for o, _ in groundable(view)[:MAX_OBJECTS]]

    def solve(self, view: GraphView, plan: Plan) -> Any:
        found = _lookup(view, plan["object_id"])
        return None if found is None else norm_box(view, found[0])

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        o, ref = _lookup(view, plan["object_id"])  # type: ignore[misc]
        t = self.pick_template(rng)
        answer = fmt_box(value)
        target = _unit_box(view, o)
        x1, y1, x2, y2 = target
        mirrored = ([1 - x2, y1, 1 - x1, y2], [x1, 1 - y2, x2, 1 - y1], [1 - x2, 1 - y2, 1 - x1, 1 - y1])
        options = [fmt_box(b) for b in map(_shown, mirrored) if _far_from(b, target)]
        others = 0
        shown = _shown_boxes(view)
        order = view.memo(("ground_order", self.id), lambda: hashed_order(view, self.id, list(shown)))
        start = order.index(o.id)  # each object's distractors from its own place in the per-image order
        for pid in order[start + 1:] + order[:start]:
            if others >= MAX_BOX_DISTRACTORS:
                break
            if _far_from(shown[pid], target):
                options.append(box_text(view, view.by_id[pid]))
                others += 1
        rationale = (f"{capitalize(ref.text)} spans x from {value[0]:.2f} to {value[2]:.2f} and y from {value[1]:.2f} "
                     f"to {value[3]:.2f} of the image width and height. So the answer is: {answer}.")
        return Realized(t.id, t.text.format(obj=ref.text), answer, rationale, options, objects=list(ref.mentions))


def _shown_boxes(view: GraphView) -> dict[str, list[float]]:
    """Object id -> its normalised box as :func:`fmt_box` writes it (two decimals)."""
    return view.memo("shown_boxes", lambda: {p.id: _shown(norm_box(view, p)) for p in view.objects})


def _shown(values: Quad) -> list[float]:
    """A box as :func:`fmt_box` writes it (two decimals), so distractors are checked as they are read."""
    return [round(v, 2) for v in values]


def _floor2(v: float) -> float:
    return round(math.floor(v * 100 + 1e-6) / 100, 2)


def _ceil2(v: float) -> float:
    return round(math.ceil(v * 100 - 1e-6) / 100, 2)


def _padded(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    """The region shown for an object box (normalised): padded by :data:`REGION_PAD`, clipped, 2 decimals."""
    px, py = max(0.03, REGION_PAD * (x2 - x1)), max(0.03, REGION_PAD * (y2 - y1))
    return [_floor2(max(0.0, x1 - px)), _floor2(max(0.0, y1 - py)), _ceil2(min(1.0, x2 + px)), _ceil2(min(1.0, y2 + py))]


REGION_TRIES = 24
"""Random places tried for the two other regions."""


def regions_for(view: GraphView, o: Object) -> list[list[float]] | None:
    """Three regions (2-decimal normalised boxes, per-image order): one holding ``o`` with some padding
    and two made the same way for a box of the object's size at random places (seeded by image and
    object) where they hold (almost) none of it; ``None`` if no room. All three come from one process,
    so neither their coordinates nor their sizes tell which is the object's."""
    nb = _unit_box(view, o)
    x1, y1, x2, y2 = nb
    own = _padded(x1, y1, x2, y2)
    w, h = x2 - x1, y2 - y1
    rng = make_rng(0, (view.image_id,), f"regions|{o.id}")
    others: list[list[float]] = []
    for u, v in rng.random((REGION_TRIES, 2)).tolist():
        ax, ay = u * (1.0 - w), v * (1.0 - h)
        cand = _padded(ax, ay, ax + w, ay + h)
        if not _far_from(cand, nb) or cover(nb, cand) >= DISTRACTOR_COVER:
            continue
        if all(_iou(cand, c) < 0.5 for c in others + [own]):
            others.append(cand)
            if len(others) == 2:
                break
    if len(others) < 2:
        return None
    regions = others
    regions.insert(int(rng.integers(3)), own)
    return regions


def _iou(a: Quad, b: Quad) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@register
class WhichRegion(Program):
    """Which of three listed regions contains a named object (the others hold almost none of it)."""

    id = "single.which_region"
    family = "grounding"
    answer_type = "box"
    num_options = 3
    templates = (
        Template("which_contains", "Which of these regions contains {obj}: {regions}?"),
        Template("in_which_region", "In which of the regions {regions} is {obj}?"),
        Template("lies_inside", "{Obj} lies inside one of these boxes: {regions}. Which one?"),
    )

    def candidates(self, view: GraphView) -> list[Plan]:
        plans = []
        for o, _ in groundable(view):
            regions = regions_for(view, o)
            if regions is not None:
                plans.append({"object_id": o.id, "regions": regions})
                if len(plans) >= MAX_OBJECTS:
                    break
        return plans

    def solve(self, view: GraphView, plan: Plan) -> Any:
        found = _lookup(view, plan["object_id"])
        if found is None:
            return None
        o = found[0]
        nb = _unit_box(view, o)
        regions = plan["regions"]
        holding = [i for i, r in enumerate(regions) if cover(nb, r) >= CONTAIN_COVER]
        if len(holding) != 1 or not all(_far_from(r, nb) for i, r in enumerate(regions) if i != holding[0]):
            return None
        return list(regions[holding[0]])

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        o, ref = _lookup(view, plan["object_id"])  # type: ignore[misc]
        t = self.pick_template(rng)
        answer = fmt_box(value)
        regions = [fmt_box(r) for r in plan["regions"]]
        rationale = (f"{capitalize(ref.text)} is at {fmt_box(norm_box(view, o))}. It lies inside {answer}; the other "
                     f"regions hold at most a small part of it. So the answer is: {answer}.")
        question = t.text.format(obj=ref.text, Obj=capitalize(ref.text), regions=join(regions, "or"))
        return Realized(t.id, question, answer, rationale, [r for r in regions if r != answer],
                        objects=list(ref.mentions))
