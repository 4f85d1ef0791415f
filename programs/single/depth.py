"""Depth: which of two points or objects is nearer / farther, which object is nearest in depth to another.

Values come from the graph's depth map, read through ``DepthMap.nearness`` so that disparity maps
(larger is nearer) and metric maps (larger is farther) give the same answers. Two values are only
compared when they differ by at least ``config.min_depth_gap`` of the map's value range; points are
only asked about where the map is flat around them (not on a depth edge, where a small shift of the
point would change the answer). Objects use ``Object.depth`` when the graph has it, else the median
of the map under the object's mask (or box).
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

import numpy as np

from scene_graphs.model import Object

from ..base import GraphView, Plan, Program, Realized, Template, draw, make_rng, register, sample_indices, stable_int
from ..common import located
from ..predicates import entangled
from ..grammar import capitalize, join
from .relations import cached, is_confident, norm_box, referent

POINT_WINDOW = 0.01
"""Half-size of the window around a point, as a share of the map's longer side."""
FLAT_SHARE = 0.5
"""A point's window may vary by at most this share of the minimum gap (else it sits on an edge)."""
POINT_SAMPLES = 24
MAX_PAIRS = 4
MIN_POINT_DISTANCE = 0.1
"""Normalized distance between the two points of a question (so they are visibly distinct)."""


def fmt_point(point: list[float] | tuple[float, float]) -> str:
    """A normalized point as written in questions and answers: ``(0.12, 0.30)``."""
    return f"({point[0]:.2f}, {point[1]:.2f})"


class DepthInfo:
    """The map's range and the minimum gap, once per graph (no reference to the graph or view)."""

    def __init__(self, view: GraphView) -> None:
        d = view.graph.depth
        self.ok = d is not None
        if d is None:
            self.range = self.gap = 0.0
            return
        lo, hi = float(d.values.min()), float(d.values.max())
        self.range = hi - lo
        self.gap = view.config.min_depth_gap * self.range
        self.ok = self.range > 0
        # nearness of the nearest and farthest values, for "relative distance" in rationales
        self.near_hi = max(d.nearness(lo), d.nearness(hi))


def depth_info(view: GraphView) -> DepthInfo:
    return cached(view, "depth_info", lambda: DepthInfo(view))


def relative_distance(view: GraphView, nearness: float) -> float:
    """0 at the nearest value of the map, 1 at the farthest."""
    info = depth_info(view)
    return (info.near_hi - nearness) / info.range


def point_nearness(view: GraphView, x: float, y: float) -> float | None:
    """Nearness at normalized ``(x, y)`` (the map's cell under the point), or ``None`` where the map is
    not flat around the point."""
    def build() -> float | None:
        value = _flat_nearness(view, np.array([x]), np.array([y]))[0]
        return None if np.isnan(value) else float(value)
    return view.memo(("point_nearness", x, y), build)


def _flat_nearness(view: GraphView, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Nearness at each normalized point ``(xs[i], ys[i])``, NaN where the map varies by more than
    ``FLAT_SHARE`` of the minimum gap within ``POINT_WINDOW`` around it (the window is cut at the map's
    borders)."""
    info = depth_info(view)
    d = view.graph.depth
    if not info.ok or d is None:
        return np.full(len(xs), np.nan)
    mh, mw = d.shape
    h = max(1, round(POINT_WINDOW * max(mh, mw)))
    rows = np.clip((ys * mh).astype(np.int64), 0, mh - 1)
    cols = np.clip((xs * mw).astype(np.int64), 0, mw - 1)
    offsets = np.arange(-h, h + 1)
    # window indices clipped to the map: the border cells repeat, which leaves extremes unchanged
    wr = np.clip(rows[:, None] + offsets, 0, mh - 1)
    wc = np.clip(cols[:, None] + offsets, 0, mw - 1)
    windows = d.values[wr[:, :, None], wc[:, None, :]]
    spread = (windows.max(axis=(1, 2)) - windows.min(axis=(1, 2))).astype(np.float64)
    values = d.values[rows, cols].astype(np.float64)
    nearness = values if d.larger_is_nearer else -values
    return np.where(spread > FLAT_SHARE * info.gap, np.nan, nearness)


def object_nearness(view: GraphView, obj: Object) -> float | None:
    """Nearness of an object: ``Object.depth`` if set, else the map's median under its mask or box."""
    d = view.graph.depth
    if d is None:
        return None
    if obj.depth is not None:
        return d.nearness(obj.depth)
    return cached(view, ("object_depth", obj.id),
                  lambda: d.nearness(d.median_in(obj.box, view.width, view.height, obj.mask)))


def _sample_points(view: GraphView) -> list[tuple[list[float], float]]:
    """Points on flat parts of the map, with their nearness (drawn once per image for both programs)."""
    rng = make_rng(view.config.seed, (view.image_id,), "single.depth:points")
    xy = np.round(rng.uniform(0.05, 0.95, size=(POINT_SAMPLES, 2)), 2)  # as questions write them
    near = _flat_nearness(view, xy[:, 0], xy[:, 1])
    out = []
    memo = view._memo
    for (x, y), n in zip(xy.tolist(), near.tolist()):
        value = None if math.isnan(n) else n  # NaN: not flat
        memo[("point_nearness", x, y)] = value
        if value is not None:
            out.append(([x, y], value))
    return out


def _points_rationale(view: GraphView, points: list, near: list[float]) -> str:
    parts = [f"{fmt_point(p)} is at relative distance {relative_distance(view, n):.2f}" for p, n in zip(points, near)]
    return f"On a scale from 0 (nearest in this image) to 1 (farthest), {join(parts)}."


class _PointDepth(Program):
    """Shared by the nearer / farther point programs."""

    family = "depth"
    requires = frozenset({"depth"})
    answer_type = "point"
    num_options = 2
    nearer: bool = True

    def candidates(self, view: GraphView) -> list[Plan]:
        info = depth_info(view)
        if not info.ok:
            return []
        points = cached(view, "depth_points", lambda: _sample_points(view))
        plans: list[Plan] = []
        pairs = 0
        for (p, n), (q, m) in combinations(points, 2):
            if pairs >= MAX_PAIRS:
                break
            if abs(n - m) < info.gap or np.hypot(p[0] - q[0], p[1] - q[1]) < MIN_POINT_DISTANCE:
                continue
            pairs += 1
            first, second = (p, q) if _fact_order(view, fmt_point(p), fmt_point(q)) else (q, p)
            if _fact_owner(view, fmt_point(first), fmt_point(second)) == self.nearer:
                plans.append({"points": [list(first), list(second)]})  # fresh lists: never the cache's
        return plans

    def solve(self, view: GraphView, plan: Plan) -> Any:
        a, b = (fmt_point(x) for x in plan["points"])
        if not _fact_order(view, a, b) or _fact_owner(view, a, b) != self.nearer:
            return None  # the pair is asked once: in the other order, or by the other program
        near = [point_nearness(view, x, y) for x, y in plan["points"]]
        if any(n is None for n in near) or abs(near[0] - near[1]) < depth_info(view).gap:  # type: ignore[operator]
            return None
        return int(np.argmax(near) if self.nearer else np.argmin(near))

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        points = plan["points"]
        near = [point_nearness(view, x, y) for x, y in points]
        a, b = fmt_point(points[0]), fmt_point(points[1])
        t = self.pick_template(rng)
        answer = fmt_point(points[value])
        word = "nearer to" if self.nearer else "farther from"
        rationale = (f"{_points_rationale(view, points, near)} Hence {answer} is {word} the camera. "  # type: ignore[arg-type]
                     f"So the answer is: {answer}.")
        return Realized(t.id, t.text.format(a=a, b=b), answer, rationale, [fmt_point(points[1 - value])])


def _fact_order(view: GraphView, a: str, b: str) -> bool:
    """Whether a depth pair is asked as (a, b) rather than (b, a): one order per pair, from a hash of the
    image and the unordered pair, so each fact is one question and the answer's slot is a coin toss."""
    lo, hi = sorted((a, b))
    return (stable_int(f"{view.image_id}|depth order|{lo}|{hi}") & 1) == (a == lo)


def _fact_owner(view: GraphView, a: str, b: str) -> bool:
    """Whether the "nearer" program (True) or the "farther" one (False) asks about this pair."""
    lo, hi = sorted((a, b))
    return bool(stable_int(f"{view.image_id}|depth owner|{lo}|{hi}") & 1)


@register
class NearerPoint(_PointDepth):
    """Which of two image points (normalized x, y) shows something nearer to the camera."""

    id = "single.nearer_point"
    nearer = True
    templates = (
        Template("closer_point", "Which point is closer to the camera: {a} or {b}?"),
        Template("nearer_viewer", "Of the image points {a} and {b} (x and y as fractions of the image width "
                                  "and height), which shows something nearer to the viewer?"),
        Template("point_nearer", "Is the scene nearer to the camera at point {a} or at point {b}?"),
    )


@register
class FartherPoint(_PointDepth):
    """Which of two image points (normalized x, y) shows something farther from the camera."""

    id = "single.farther_point"
    nearer = False
    templates = (
        Template("farther_point", "Which point is farther from the camera: {a} or {b}?"),
        Template("farther_viewer", "Of the image points {a} and {b} (x and y as fractions of the image width "
                                   "and height), which shows something farther from the viewer?"),
        Template("point_farther", "Is the scene farther from the camera at point {a} or at point {b}?"),
    )


def _depth_objects(view: GraphView) -> list[tuple[Object, float, str]]:
    """Confident, referable objects with a nearness: (object, nearness, referent text), sorted by id."""
    def build() -> list[tuple[Object, float, str]]:
        out = []
        for o in sorted(view.objects, key=lambda o: o.id):
            if not is_confident(view, o):
                continue
            ref = referent(view, o)
            n = object_nearness(view, o)
            if ref is not None and n is not None:
                out.append((o, n, ref.text))
        return out
    return cached(view, "depth_objects", build)


class _ObjectDepth(Program):
    """Shared by the nearer / farther object programs."""

    family = "depth"
    requires = frozenset({"objects", "depth"})
    answer_type = "label"
    num_options = 2
    nearer: bool = True
    max_pairs = 4

    def candidates(self, view: GraphView) -> list[Plan]:
        info = depth_info(view)
        if not info.ok:
            return []
        objs = _depth_objects(view)
        plans: list[Plan] = []
        pairs = 0
        for (a, n, ra), (b, m, rb) in combinations(objs, 2):
            if pairs >= self.max_pairs:
                break
            if (a.label == b.label or abs(n - m) < info.gap or (a.id, b.id) in _entangled(view)
                    or entangled(view, a.id, b.id)):
                continue
            pairs += 1
            first, second = (a.id, b.id) if _fact_order(view, a.id, b.id) else (b.id, a.id)
            if _fact_owner(view, first, second) == self.nearer:
                plans.append({"ids": [first, second]})
        return plans

    def solve(self, view: GraphView, plan: Plan) -> Any:
        objs = [view.by_id.get(i) for i in plan["ids"]]
        if any(o is None for o in objs) or len(plan["ids"]) != 2:
            return None
        if not _fact_order(view, *plan["ids"]) or _fact_owner(view, *plan["ids"]) != self.nearer:
            return None  # the pair is asked once: in the other order, or by the other program
        if entangled(view, *plan["ids"]):
            return None
        near = [object_nearness(view, o) for o in objs]  # type: ignore[arg-type]
        if any(n is None for n in near) or abs(near[0] - near[1]) < depth_info(view).gap:  # type: ignore[operator]
            return None
        return int(np.argmax(near) if self.nearer else np.argmin(near))

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        objs = [view.by_id[i] for i in plan["ids"]]
        refs = [referent(view, o) for o in objs]
        near = [object_nearness(view, o) for o in objs]
        t = self.pick_template(rng)
        texts = [r.text for r in refs]  # type: ignore[union-attr]
        parts = [f"{located(texts[i], refs[i].strategy, norm_box(view, objs[i]))} is at relative distance "  # type: ignore[union-attr]
                 f"{relative_distance(view, near[i]):.2f}" for i in range(2)]  # type: ignore[arg-type]
        answer = objs[value].label
        word = "nearer to" if self.nearer else "farther from"
        rationale = (f"On a scale from 0 (nearest in this image) to 1 (farthest), {join(parts)}. "
                     f"Hence {texts[value]} is {word} the camera. So the answer is: {answer}.")
        question = t.text.format(a=texts[0], b=texts[1], A=capitalize(texts[0]))
        return Realized(t.id, question, answer, rationale, [objs[1 - value].label])


def _mentions(view: GraphView, obj: Object) -> tuple[str, ...]:
    ref = referent(view, obj)
    return ref.mentions if ref is not None else ()


def _entangled(view: GraphView) -> frozenset[tuple[str, str]]:
    """Pairs of depth objects of which one is named through the other ("the cup on the table")."""
    def build() -> frozenset[tuple[str, str]]:
        out = set()
        for o, _, _ in _depth_objects(view):
            for m in _mentions(view, o):
                out.update(((o.id, m), (m, o.id)))
        return frozenset(out)
    return view.memo("depth_entangled", build)


@register
class NearerObject(_ObjectDepth):
    """Which of two named objects is nearer to the camera (by the depth map)."""

    id = "single.nearer_object"
    nearer = True
    templates = (
        Template("closer_object", "Which is closer to the camera, {a} or {b}?"),
        Template("nearer_viewer_object", "Which of these is nearer to the viewer: {a} or {b}?"),
        Template("is_a_or_b_closer", "Is {a} or {b} closer to the camera?"),
    )


@register
class FartherObject(_ObjectDepth):
    """Which of two named objects is farther from the camera (by the depth map)."""

    id = "single.farther_object"
    nearer = False
    templates = (
        Template("farther_object", "Which is farther from the camera, {a} or {b}?"),
        Template("farther_viewer_object", "Which of these is farther away from the viewer: {a} or {b}?"),
        Template("is_a_or_b_farther", "Is {a} or {b} farther from the camera?"),
    )


@register
class NearestToAnchor(Program):
    """Which of three named objects is nearest in depth to a fourth (the anchor)."""

    id = "single.nearest_to_anchor"
    family = "depth"
    requires = frozenset({"objects", "depth"})
    answer_type = "label"
    num_options = 3
    templates = (
        Template("similar_distance", "Which of {choices} is at the most similar distance from the camera "
                                     "as {anchor}?"),
        Template("closest_in_depth", "Which of {choices} is closest in depth to {anchor}?"),
        Template("same_depth", "Of {choices}, which one lies at about the same depth as {anchor}?"),
    )
    max_anchors = 3
    combos_per_anchor = 1

    def candidates(self, view: GraphView) -> list[Plan]:
        info = depth_info(view)
        if not info.ok:
            return []
        objs = _depth_objects(view)
        rng = make_rng(view.config.seed, (view.image_id,), self.id + ":choices")
        plans: list[Plan] = []
        anchors = 0
        for anchor, na, _ in objs:
            if anchors >= self.max_anchors:
                break
            entangled = _entangled(view)
            others = sorted(((abs(n - na), o) for o, n, _ in objs
                             if o.label != anchor.label and (anchor.id, o.id) not in entangled),
                            key=lambda t: (t[0], t[1].id))
            if len(others) < 3:
                continue
            best_dist, best = others[0]
            far = [o for dist, o in others[1:] if dist >= best_dist + info.gap and o.label != best.label]
            labels = sorted({o.label for o in far})
            if len(labels) < 2:
                continue
            anchors += 1
            for _ in range(self.combos_per_anchor):
                pick = sample_indices(rng, len(labels), 2)
                chosen = []
                for i in pick:
                    group = [o for o in far if o.label == labels[i]]
                    chosen.append(group[draw(rng, len(group))])
                ids = [best.id] + [o.id for o in chosen]
                for shift in range(3):  # every answer position once
                    plan = {"anchor_id": anchor.id, "choice_ids": ids[shift:] + ids[:shift]}
                    if plan not in plans:
                        plans.append(plan)
        return plans

    def solve(self, view: GraphView, plan: Plan) -> Any:
        anchor = view.by_id.get(plan["anchor_id"])
        choices = [view.by_id.get(i) for i in plan["choice_ids"]]
        if anchor is None or any(c is None for c in choices):
            return None
        na = object_nearness(view, anchor)
        dists = [abs(object_nearness(view, c) - na) for c in choices]  # type: ignore[arg-type,operator]
        order = sorted(range(len(dists)), key=lambda i: dists[i])
        if dists[order[1]] - dists[order[0]] < depth_info(view).gap:
            return None
        return order[0]

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        anchor = view.by_id[plan["anchor_id"]]
        choices = [view.by_id[i] for i in plan["choice_ids"]]
        texts = [referent(view, c).text for c in choices]  # type: ignore[union-attr]
        anchor_text = referent(view, anchor).text  # type: ignore[union-attr]
        na = object_nearness(view, anchor)
        t = self.pick_template(rng)
        question = t.text.format(choices=join(texts, "or"), anchor=anchor_text)
        parts = [f"{txt} at {relative_distance(view, object_nearness(view, c)):.2f}"  # type: ignore[arg-type]
                 for txt, c in zip(texts, choices)]
        answer = choices[value].label
        rationale = (f"On a scale from 0 (nearest in this image) to 1 (farthest), {anchor_text} is at "
                     f"{relative_distance(view, na):.2f}; {join(parts)}. "  # type: ignore[arg-type]
                     f"{capitalize(texts[value])} differs least from {anchor_text}. So the answer is: {answer}.")
        return Realized(t.id, question, answer, rationale, [c.label for i, c in enumerate(choices) if i != value])
