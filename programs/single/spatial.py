"""Spatial: 2-D geometry between objects from their boxes (direction, apparent size, distances).

Every answer needs a clear geometric margin, so that box noise of a few pixels cannot flip it:
directions need boxes separated on one axis and overlapping on the other, sizes an area ratio of
1.5, distances a gap of a tenth of the image (in normalised coordinates) that edge-to-edge distances
agree with. Objects are named through :func:`programs.refer.refer`, never by position or region
(which would give the answer away).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from scene_graphs.model import Object

from ..base import GraphView, Plan, Program, Realized, Template, register
from ..common import centers, unit_boxes
from ..grammar import capitalize, join
from ..refer import Referent
from ..predicates import entangled
from .objects import (  # noqa: F401  (cached, facts, memo_solve, tried_groups: names this module offered before)
    MAX_PLANS,
    MAX_TRIES,
    GroupQuestion,
    cached,
    facts,
    hashed_order,
    labels_compatible,
    memo_solve,
    name_of,
    norm_center,
    pct,
    solved_groups,
    spatial_by_id,
    spatial_pool,
    tried_groups,
)

SEPARATION = 0.02
"""Gap (share of the image side) between two boxes for "left of" / "above" to count as clear."""
SIZE_RATIO = 1.5
"""Area ratio for "larger" / "smaller"."""
DISTANCE_GAP = 0.1
"""Difference of normalised centre distances for "closer" / distance orders."""
DISTANCE_RATIO = 1.3
"""Ratio of centre distances for "closer" / distance orders."""
CENTER_MARGIN = 0.05
"""Normalised distance by which the object closest to the image centre must beat the runner-up."""

DIRECTIONS = ("left", "right", "above", "below")


def direction(view: GraphView, a: Object, b: Object) -> str | None:
    """Where ``a`` is relative to ``b`` when the boxes are clearly apart on exactly one axis and overlap
    on the other; ``None`` otherwise (diagonal, touching or overlapping)."""
    gx, gy = SEPARATION * view.width, SEPARATION * view.height
    A, B = a.box, b.box
    overlap_x = min(A.x2, B.x2) > max(A.x1, B.x1)
    overlap_y = min(A.y2, B.y2) > max(A.y1, B.y1)
    if overlap_y and not overlap_x:
        if A.x2 + gx <= B.x1:
            return "left"
        if B.x2 + gx <= A.x1:
            return "right"
    if overlap_x and not overlap_y:
        if A.y2 + gy <= B.y1:
            return "above"
        if B.y2 + gy <= A.y1:
            return "below"
    return None


def mask_area(view: GraphView, obj: Object) -> int | None:
    if obj.mask is None:
        return None
    return view.memo(("mask_area", obj.id), lambda: obj.mask.area)  # type: ignore[union-attr]


def size_order(view: GraphView, a: Object, b: Object) -> str | None:
    """``larger`` / ``smaller`` when ``a``'s box area is at least :data:`SIZE_RATIO` times ``b``'s (or
    the reverse), and their masks, when both have one, agree by the same ratio."""
    def compare(x: float, y: float) -> str | None:
        if x >= SIZE_RATIO * y and x > 0:
            return "larger"
        if y >= SIZE_RATIO * x and y > 0:
            return "smaller"
        return None

    by_box = compare(a.box.area, b.box.area)
    if by_box is None:
        return None
    ma, mb = mask_area(view, a), mask_area(view, b)
    if ma is not None and mb is not None and compare(ma, mb) != by_box:
        return None
    return by_box


def center_distance(view: GraphView, a: Object, b: Object) -> float:
    """Distance between the box centres in normalised coordinates."""
    c = centers(view)
    (ax, ay), (bx, by) = c[a.id], c[b.id]
    return math.hypot(ax - bx, ay - by)


def edge_distance(view: GraphView, a: Object, b: Object) -> float:
    """Normalised gap between the two boxes (0 when they touch or overlap)."""
    u = unit_boxes(view)
    A, B = u[a.id], u[b.id]
    dx = max(0.0, max(A[0], B[0]) - min(A[2], B[2]))
    dy = max(0.0, max(A[1], B[1]) - min(A[3], B[3]))
    return math.hypot(dx, dy)


def clearly_closer(view: GraphView, near: Object, far: Object, ref: Object) -> bool:
    """``near`` is closer to ``ref`` than ``far`` by centre distance with a clear gap and ratio, and not
    farther by edge distance."""
    dn, df = center_distance(view, near, ref), center_distance(view, far, ref)
    if df - dn < DISTANCE_GAP or df < DISTANCE_RATIO * dn:
        return False
    return edge_distance(view, near, ref) <= edge_distance(view, far, ref)


def _pairs(view: GraphView, salt: str) -> list[tuple[tuple[Object, Referent], tuple[Object, Referent]]]:
    """Ordered pairs of spatial-pool objects (labels that cannot name the same thing), per-image order."""
    def make():
        pool = spatial_pool(view)
        out = []
        for (a, ra), (b, rb) in itertools.permutations(pool, 2):
            if labels_compatible((a.label, b.label)) and not entangled(view, a.id, b.id):
                out.append(((a, ra), (b, rb)))
        return out
    pairs = view.memo("spatial_pairs", make)
    return hashed_order(view, salt, pairs, key=lambda p: f"{p[0][0].id}|{p[1][0].id}")


def _pair(view: GraphView, plan: Plan) -> tuple[tuple[Object, Referent], tuple[Object, Referent]] | None:
    pool = spatial_by_id(view)
    a, b = plan["subject_id"], plan["object_id"]
    if a == b or a not in pool or b not in pool:
        return None
    (oa, _), (ob, _) = pool[a], pool[b]
    if not labels_compatible((oa.label, ob.label)) or entangled(view, a, b):
        return None
    return pool[a], pool[b]


class _PairProgram(Program):
    family = "spatial"

    def relation(self, view: GraphView, a: Object, b: Object) -> Any:
        raise NotImplementedError

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        plans: list[tuple[Plan, Any]] = []
        for (a, _), (b, _) in _pairs(view, self.id)[: 3 * MAX_PLANS]:
            value = self.relation(view, a, b)
            if value is not None:
                plans.append(({"subject_id": a.id, "object_id": b.id}, value))
                if len(plans) >= MAX_PLANS:
                    break
        return plans

    def solve(self, view: GraphView, plan: Plan) -> Any:
        pair = _pair(view, plan)
        return None if pair is None else self.relation(view, pair[0][0], pair[1][0])


@register
class RelativePosition(_PairProgram):
    """Where one object is relative to another: left, right, above or below (clearly apart on one axis)."""

    id = "single.relative_position"
    answer_type = "direction"
    num_options = 4
    templates = (
        Template("where_relative", "Where is {a} located relative to {b}?"),
        Template("left_right_above_below", "Is {a} to the left of, to the right of, above or below {b}?"),
        Template("which_direction", "In which direction from {b} is {a}?"),
    )

    def relation(self, view: GraphView, a: Object, b: Object) -> Any:
        return direction(view, a, b)

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        pair = _pair(view, plan)
        assert pair is not None
        (a, ra), (b, rb) = pair
        t = self.pick_template(rng)
        axis = "horizontal" if value in ("left", "right") else "vertical"
        other = "vertical" if axis == "horizontal" else "horizontal"
        rationale = (f"{capitalize(ra.text)} spans {_span(view, a, axis)} and {rb.text} spans {_span(view, b, axis)} "
                     f"on the {axis} axis, with a clear gap between them, while they overlap on the {other} axis, "
                     f"hence {ra.text} is {_phrase(value)} {rb.text}. So the answer is: {value}.")
        return Realized(t.id, t.text.format(a=ra.text, b=rb.text), value, rationale,
                        [d for d in DIRECTIONS if d != value], objects=list(ra.mentions + rb.mentions))


def _span(view: GraphView, o: Object, axis: str) -> str:
    if axis == "horizontal":
        return f"x {pct(o.box.x1 / view.width)}-{pct(o.box.x2 / view.width)}"
    return f"y {pct(o.box.y1 / view.height)}-{pct(o.box.y2 / view.height)}"


def _phrase(d: str) -> str:
    return {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}[d]


@register
class RelativeSize(_PairProgram):
    """Whether one object appears larger or smaller than another in the image (area ratio >= 1.5)."""

    id = "single.relative_size"
    answer_type = "comparison"
    num_options = 2
    templates = (
        Template("larger_or_smaller", "Does {a} appear larger or smaller than {b} in the image?"),
        Template("compared_with", "Compared with {b}, does {a} look larger or smaller in the picture?"),
        Template("is_larger_smaller", "Is {a} larger or smaller than {b} in this image?"),
    )

    def relation(self, view: GraphView, a: Object, b: Object) -> Any:
        return size_order(view, a, b)

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        pair = _pair(view, plan)
        assert pair is not None
        (a, ra), (b, rb) = pair
        t = self.pick_template(rng)
        sa, sb = view.area_share(a), view.area_share(b)
        rationale = (f"{capitalize(ra.text)} covers {sa:.1%} of the image and {rb.text} {sb:.1%}, "
                     f"a ratio of {max(sa, sb) / max(min(sa, sb), 1e-12):.1f}. So the answer is: {value}.")
        return Realized(t.id, t.text.format(a=ra.text, b=rb.text), value, rationale,
                        ["smaller" if value == "larger" else "larger"], objects=list(ra.mentions + rb.mentions))


@register
class ClosestToCenter(GroupQuestion):
    """Which of 2-4 named objects is closest to the centre of the image (clear margin)."""

    id = "single.closest_to_center"
    family = "spatial"
    templates = (
        Template("closest_center", "Which of {objects_and} is closest to the center of the image?"),
        Template("nearest_middle", "Among {objects_and}, which one is nearest the middle of the picture?"),
        Template("most_central", "Which is the most central in the image: {objects}?"),
    )

    def winner(self, view: GraphView, objs: Sequence[Object]) -> Object | None:
        def dist(o: Object) -> float:
            x, y = norm_center(view, o)
            return math.hypot(x - 0.5, y - 0.5)

        ranked = sorted(objs, key=lambda o: (dist(o), o.id))
        if dist(ranked[1]) - dist(ranked[0]) < CENTER_MARGIN:
            return None
        return ranked[0]

    def explain(self, view: GraphView, group: list[tuple[Object, Referent]]) -> str:
        parts = []
        for o, r in group:
            x, y = norm_center(view, o)
            parts.append(f"{r.text} at ({pct(x)}, {pct(y)}), {pct(math.hypot(x - 0.5, y - 0.5))} from it")
        return f"The image centre is at (0.50, 0.50) in normalised coordinates; the object centres are: {join(parts)}."


@register
class CloserTo(Program):
    """Which of two named objects is closer to a third (clear gap in centre distance, edges agree)."""

    id = "single.closer_to"
    family = "spatial"
    answer_type = "object"
    num_options = 2
    templates = (
        Template("which_closer", "Which is closer to {ref}: {a} or {b}?"),
        Template("nearer_to", "Is {a} or {b} nearer to {ref}?"),
        Template("smaller_distance", "Of {a} and {b}, which one is at a smaller distance from {ref}?"),
    )

    def _triple(self, view: GraphView, plan: Plan) -> list[tuple[Object, Referent]] | None:
        pool = spatial_by_id(view)
        ids = plan["object_ids"]
        if len(ids) != 3 or len(set(ids)) != 3 or any(i not in pool for i in ids):
            return None
        group = [pool[i] for i in ids]
        if any(entangled(view, x, y) for x, y in itertools.combinations(ids, 2)):
            return None  # "is the spoon or the coffee nearer to the cup?": the coffee is in it
        return group if labels_compatible([o.label for o, _ in group]) else None

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        ids = [o.id for o, _ in spatial_pool(view)]
        groups = solved_groups(view, self.id, ids, (3,), str, lambda g: self.solve(view, {"object_ids": g}),
                               max_tries=2 * MAX_TRIES)
        return [({"object_ids": g}, value) for g, value in groups]

    def solve(self, view: GraphView, plan: Plan) -> Any:
        t = self._triple(view, plan)
        if t is None:
            return None
        (a, ra), (b, rb), (c, _) = t
        if clearly_closer(view, a, b, c):
            return name_of(ra)
        if clearly_closer(view, b, a, c):
            return name_of(rb)
        return None

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        t3 = self._triple(view, plan)
        assert t3 is not None
        (a, ra), (b, rb), (c, rc) = t3
        t = self.pick_template(rng)
        da, db = center_distance(view, a, c), center_distance(view, b, c)
        rationale = (f"In normalised coordinates the centre of {ra.text} is {pct(da)} from the centre of {rc.text} "
                     f"and that of {rb.text} is {pct(db)}. So the answer is: {value}.")
        other = name_of(rb) if value == name_of(ra) else name_of(ra)
        return Realized(t.id, t.text.format(a=ra.text, b=rb.text, ref=rc.text), value, rationale, [other],
                        objects=list(ra.mentions + rb.mentions + rc.mentions))


@register
class DistanceOrder(Program):
    """Order three named objects from closest to farthest from a fourth (clear gaps between them)."""

    id = "single.distance_order"
    family = "spatial"
    answer_type = "ordering"
    num_options = 4
    templates = (
        Template("order_closest_first", "Order {objects} from closest to farthest from {ref}."),
        Template("sort_by_distance", "Sort {objects} by their distance to {ref}, nearest first."),
        Template("rank_distance", "Rank {objects} by how close they are to {ref}, starting with the closest."),
    )

    def _group(self, view: GraphView, plan: Plan) -> list[tuple[Object, Referent]] | None:
        pool = spatial_by_id(view)
        ids = plan["object_ids"]
        if len(ids) != 4 or len(set(ids)) != 4 or any(i not in pool for i in ids):
            return None
        group = [pool[i] for i in ids]
        if any(entangled(view, x, y) for x, y in itertools.combinations(ids, 2)):
            return None  # "is the spoon or the coffee nearer to the cup?": the coffee is in it
        return group if labels_compatible([o.label for o, _ in group]) else None

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        ids = [o.id for o, _ in spatial_pool(view)]
        groups = solved_groups(view, self.id, ids, (4,), str, lambda g: self.solve(view, {"object_ids": g}),
                               max_tries=2 * MAX_TRIES)
        return [({"object_ids": g}, value) for g, value in groups]

    def solve(self, view: GraphView, plan: Plan) -> Any:
        g = self._group(view, plan)
        if g is None:
            return None
        *items, (ref, _) = g
        ranked = sorted(items, key=lambda it: (center_distance(view, it[0], ref), it[0].id))
        if not all(clearly_closer(view, ranked[i][0], ranked[i + 1][0], ref) for i in range(len(ranked) - 1)):
            return None
        return [name_of(r) for _, r in ranked]

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        g = self._group(view, plan)
        assert g is not None
        *items, (ref, rref) = g
        t = self.pick_template(rng)
        dists = [f"{r.text} {pct(center_distance(view, o, ref))}" for o, r in items]
        answer = ", ".join(value)
        rationale = (f"Distances between centres, in normalised coordinates, from {rref.text}: {join(dists)}. "
                     f"So the answer is: {answer}.")
        options = [", ".join(p) for p in itertools.permutations(value) if list(p) != value]
        return Realized(t.id, t.text.format(objects=join([r.text for _, r in items]), ref=rref.text), answer,
                        rationale, options, objects=[m for _, r in g for m in r.mentions])
