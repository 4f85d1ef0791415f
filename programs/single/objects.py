"""Objects: existence with hard negatives, most/least frequent category, extreme positions.

Also home of small helpers the single-image families share (kept here so that each family module
stays declarative): the objects that may be named in spatial questions, deterministic groups for
capping candidate lists, and the label-safety checks. Per-view caching lives on the view
(:meth:`programs.base.GraphView.memo`); the helpers of :mod:`programs.common` are re-exported here
under the names the families used before.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from scene_graphs.model import Object

from ..base import GraphView, Plan, Program, Realized, Template, register
from ..common import attribute_names as _attribute_names
from ..common import (  # noqa: F401  (is_confident, norm_box: re-exported for the other families)
    centers,
    decided_values,
    hashed_order,
    is_confident,
    max_iou,
    norm_box,
    unit_boxes,
)
from ..grammar import count_phrase, fmt_box, join, plural, with_article
from ..predicates import entangled
from ..refer import Referent, refer
from ..scenes import COCO_CATEGORIES, may_name_same, plausible_absent

MAX_PLANS = 6
"""Candidate plans kept per program and image (enough for balancing, cheap to solve)."""
MAX_POOL = 8
"""Objects (or labels) combined into groups per program and image."""
MAX_TRIES = 4
"""Groups of one size tried per program and image (each costs a ``solve``)."""
MAX_NEGATIVES = 8
"""Absent-but-plausible categories offered as "no" questions per image."""
EXTREME_MARGIN = 0.05
"""Share of the image by which the winner of a left-most/top-most/... question must beat the runner-up."""

_DIRECTIONAL = frozenset({"left", "right", "above", "below", "under", "over", "beneath", "behind", "front", "near",
                          "next", "beside", "close", "closer", "far", "farther", "top", "bottom", "between",
                          "nearest", "closest", "farthest", "furthest", "most", "leftmost", "rightmost"})


# =========================================================================== shared helpers
class Facts:
    """Derived data about one view (a view of :mod:`programs.common`'s cached helpers, kept for the
    modules that read them through :func:`facts`)."""

    def __init__(self, view: GraphView) -> None:
        self.view = view
        self.memo: dict[Any, Any] = view._memo

    @property
    def unit(self) -> dict[str, tuple[float, float, float, float]]:
        """Object id -> box in normalised coordinates (unrounded)."""
        return unit_boxes(self.view)

    @property
    def center(self) -> dict[str, tuple[float, float]]:
        """Object id -> box centre in normalised coordinates."""
        return centers(self.view)

    @property
    def max_iou(self) -> dict[str, float]:
        """Object id -> highest IoU of its box with any other object's box."""
        return max_iou(self.view)

    @property
    def attribute_names(self) -> dict[str, frozenset[str]]:
        """Object id -> normalised names of its attributes scoring at least ``min_score``."""
        return _attribute_names(self.view)

    @property
    def decided(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """(object id, category) -> sorted normalised confident values of decided categories."""
        return decided_values(self.view)


def facts(view: GraphView) -> Facts:
    """The :class:`Facts` of ``view``."""
    return Facts(view)


def cached(view: GraphView, key: Any, make: Callable[[], Any]) -> Any:
    """``make()`` computed once per view and ``key`` (:meth:`GraphView.memo`)."""
    return view.memo(key, make)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def memo_solve(solve: Callable[[Any, GraphView, Plan], Any]) -> Callable[[Any, GraphView, Plan], Any]:
    """Decorator: a program's ``solve`` computed once per view and plan."""
    def wrapper(self: Any, view: GraphView, plan: Plan) -> Any:
        memo = view._memo
        key = ("solve", self.id, _freeze(plan))
        if key not in memo:
            memo[key] = solve(self, view, plan)
        value = memo[key]
        return list(value) if isinstance(value, list) else value
    wrapper.__name__, wrapper.__doc__ = solve.__name__, solve.__doc__
    return wrapper


def referent(view: GraphView, obj: Object, allow_region: bool = False) -> Referent | None:
    """:func:`programs.refer.refer` (cached per view), without regions unless asked."""
    return refer(view, obj, allow_region=allow_region)


def name_of(ref: Referent) -> str:
    """The referring expression without its article: ``the red cup`` -> ``red cup`` (used as an answer)."""
    return ref.text.removeprefix("the ")


def norm_center(view: GraphView, obj: Object) -> tuple[float, float]:
    return centers(view)[obj.id]


def spatial_ok(ref: Referent) -> bool:
    """A referent fit for spatial questions: not by position, and no spatial word in its relation
    ("the cup left of the plate" would answer "where is the cup?" by itself)."""
    if ref.strategy in ("position", "region"):
        return False
    return not (ref.strategy == "relation" and _DIRECTIONAL & set(ref.text.replace("-", " ").split()))


def spatial_pool(view: GraphView) -> list[tuple[Object, Referent]]:
    """Confident, not tiny objects with a referent fit for spatial questions, in a per-image order,
    at most :data:`MAX_POOL` of them."""
    def make() -> list[tuple[Object, Referent]]:
        out = []
        min_area = view.config.min_box_area
        for o in hashed_order(view, "spatial_pool", view.confident_objects, key=lambda o: o.id):
            if view.area_share(o) < min_area:
                continue
            ref = refer(view, o, allow_region=False)
            if ref is not None and spatial_ok(ref):
                out.append((o, ref))
            if len(out) >= MAX_POOL:
                break
        return out
    return view.memo("spatial_pool", make)


def spatial_by_id(view: GraphView) -> dict[str, tuple[Object, Referent]]:
    return view.memo("spatial_by_id", lambda: {o.id: (o, r) for o, r in spatial_pool(view)})


def spatial_clashes(view: GraphView) -> frozenset[tuple[str, str]]:
    """Ordered pairs of spatial-pool objects that may not share a question: the same label, or labels
    that might name the same thing ("man" and "person")."""
    def build() -> frozenset[tuple[str, str]]:
        pool = spatial_pool(view)
        return frozenset((a.id, b.id) for a, _ in pool for b, _ in pool
                         if a.id != b.id and (a.label == b.label or may_name_same(a.label, b.label)))
    return view.memo("spatial_clashes", build)


def solved_groups(view: GraphView, salt: str, items: Sequence[Any], sizes: Sequence[int], key: Callable[[Any], str],
                  solve: Callable[[list[Any]], Any], max_plans: int = MAX_PLANS,
                  max_tries: int = MAX_TRIES) -> list[tuple[list[Any], Any]]:
    """Up to ``max_plans`` ``(group, answer)`` pairs: groups of ``items`` (of each size in ``sizes``, at
    most ``max_tries`` tried per size, at most an equal share of ``max_plans`` per size) for which
    ``solve`` gives an answer (not ``None``). Each size starts from its own per-image order of
    ``items`` and tries combinations spread over all of them, so the groups are varied yet
    deterministic."""
    out: list[tuple[list[Any], Any]] = []
    quota = -(-max_plans // len(sizes))
    for k in sizes:
        if k > len(items):
            continue
        order = hashed_order(view, f"{salt}|{k}", items, key=key)
        combos = list(itertools.combinations(order, k))
        step = max(1, len(combos) / max_tries)
        found = 0
        for j in range(min(max_tries, len(combos))):
            if len(out) >= max_plans:
                return out
            combo = list(combos[int(j * step)])
            value = solve(combo)
            if value is not None:
                out.append((combo, value))
                found += 1
                if found >= quota:
                    break
    return out


def tried_groups(view: GraphView, salt: str, items: Sequence[Any], sizes: Sequence[int], key: Callable[[Any], str],
                 accept: Callable[[list[Any]], bool], max_plans: int = MAX_PLANS,
                 max_tries: int = MAX_TRIES) -> list[list[Any]]:
    """:func:`solved_groups` for a yes/no ``accept``: the accepted groups."""
    return [g for g, _ in solved_groups(view, salt, items, sizes, key, lambda g: True if accept(g) else None,
                                        max_plans, max_tries)]


def larger_groups_first(view: GraphView, salt: str, items: Sequence[str],
                        accept: Callable[[list[Any]], bool]) -> list[list[Any]]:
    """Groups of 3-4 ``items`` that ``accept`` keeps, or pairs when there is none: a 3-4 way choice
    makes a better question and has enough options for multiple choice."""
    return (tried_groups(view, salt, items, (3, 4), str, accept)
            or tried_groups(view, salt, items, (2,), str, accept))


def larger_solved_groups_first(view: GraphView, salt: str, items: Sequence[str],
                               solve: Callable[[list[Any]], Any]) -> list[tuple[list[Any], Any]]:
    """:func:`larger_groups_first` with answers: groups of 3-4, or pairs when no larger group solves."""
    return (solved_groups(view, salt, items, (3, 4), str, solve)
            or solved_groups(view, salt, items, (2,), str, solve))


def labels_compatible(labels: Sequence[str]) -> bool:
    """No two labels that might name the same thing ("man" and "person") in one question."""
    return all(a == b or not may_name_same(a, b) for a, b in itertools.combinations(labels, 2))


def safe_count_labels(view: GraphView) -> tuple[str, ...]:
    """Countable labels (every object confident) that no other label in the view might also name
    (counting "people" is unsafe when some are labelled "man") and with no faint unreported candidate
    (a crowd of low-score people makes any count of people a guess)."""
    def make() -> tuple[str, ...]:
        labels = list(view.by_label)
        return tuple(lbl for lbl in view.countable_labels
                     if not view.graph.faint_count(lbl)
                     and not any(other != lbl and may_name_same(lbl, other) for other in labels))
    return view.memo("safe_count_labels", make)


def pct(v: float) -> str:
    return f"{v:.2f}"


# =========================================================================== existence
@register
class Exists(Program):
    """Yes/no: is there an object of a category (absent categories are plausible for the scene)."""

    id = "single.exists"
    family = "objects"
    answer_type = "yes/no"
    num_options = 2
    templates = (
        Template("is_there", "Is there {a_label} in the image?"),
        Template("can_you_see", "Can you see {a_label} in this picture?"),
        Template("does_contain", "Does the image contain {a_label}?"),
    )

    def candidates(self, view: GraphView) -> list[Plan]:
        for _ in sorted(view.uncertain_labels):
            view.abstain(self.id, "uncertain category")
        present = list(view.countable_labels)
        seen = sorted({o.label for o in view.graph.objects})
        coco_only = bool(seen) and all(s in COCO_CATEGORIES for s in seen)
        ranked = plausible_absent(present, seen, coco_only=coco_only)
        if len(ranked) > MAX_NEGATIVES:  # the best-supported tiers, varied per image within the last tier
            floor = ranked[MAX_NEGATIVES - 1][1]
            ranked = [(c, n) for c, n in ranked if n > floor] + \
                hashed_order(view, self.id, [(c, n) for c, n in ranked if n == floor], key=lambda cn: cn[0])
        absent = [c for c, _ in ranked[:MAX_NEGATIVES]]
        unbacked = [c for c in absent if not view.confirms_absent(c)]
        if unbacked:
            view.abstain(self.id, "no evidence of absence", len(unbacked))
        absent = [c for c in absent if c not in unbacked]
        return [{"label": label} for label in sorted(set(present) | set(absent))]

    def solve(self, view: GraphView, plan: Plan) -> Any:
        label = plan["label"]
        if label in view.by_label:
            return None if label in view.uncertain_labels else True
        if any(may_name_same(label, other) for other in view.graph_labels):
            return None  # something in the graph (even below min_score) may be one: never say "no"
        if not view.confirms_absent(label):
            return None  # not searched for, or seen faintly: "no" would claim more than the graph knows
        return False

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        label = plan["label"]
        t = self.pick_template(rng)
        objs = view.by_label.get(label, ())
        if value:
            where = ", ".join(fmt_box(norm_box(view, o)) for o in sorted(objs, key=lambda o: (o.box.x1, o.box.y1)))
            rationale = (f"The image shows {count_phrase(len(objs), label)} (at {where}). "
                         "So the answer is: yes.")
        else:
            rationale = (f"No object in the image is {with_article(label)} or anything that could be called so. "
                         "So the answer is: no.")
        answer = "yes" if value else "no"
        return Realized(t.id, t.text.format(a_label=with_article(label)), answer, rationale,
                        ["no" if value else "yes"], objects=[o.id for o in objs])


# =========================================================================== frequency
class _Frequency(Program):
    family = "objects"
    answer_type = "label"
    num_options = 3
    most: bool = True

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        labels = hashed_order(view, self.id, safe_count_labels(view))[:MAX_POOL]
        groups = larger_solved_groups_first(view, self.id, labels, lambda g: self._winner(view, g))
        return [({"labels": g}, value) for g, value in groups]

    def solve(self, view: GraphView, plan: Plan) -> Any:
        labels = plan["labels"]
        safe = safe_count_labels(view)
        if not 2 <= len(labels) <= 4 or len(set(labels)) != len(labels) or any(lbl not in safe for lbl in labels):
            return None
        return self._winner(view, labels)

    def _winner(self, view: GraphView, labels: list[str]) -> str | None:
        if not labels_compatible(labels):
            return None
        counts = sorted(((len(view.by_label[lbl]), lbl) for lbl in labels), reverse=self.most)
        if counts[0][0] == counts[1][0]:
            return None
        return counts[0][1]

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        labels = plan["labels"]
        t = self.pick_template(rng)
        counts = [count_phrase(len(view.by_label[lbl]), lbl) for lbl in labels]
        word = "most" if self.most else "fewest"
        rationale = (f"Counting each category: {join(counts)}. The {word} are {plural(value)}. "
                     f"So the answer is: {value}.")
        plurals = [plural(lbl) for lbl in labels]
        question = t.text.format(labels=join(plurals, "or"), labels_and=join(plurals))
        ids = [o.id for lbl in labels for o in view.by_label[lbl]]
        return Realized(t.id, question, value, rationale, [lbl for lbl in labels if lbl != value], objects=ids)


@register
class MostFrequent(_Frequency):
    """Which of 2-4 categories has the most objects in the image (a strictly unique maximum)."""

    id = "single.most_frequent"
    most = True
    templates = (
        Template("most_often", "Which of these appears most often in the image: {labels}?"),
        Template("most_numerous", "Among {labels_and}, which are the most numerous in the picture?"),
        Template("shows_most", "Of {labels_and}, which does the image show the most of?"),
    )


@register
class LeastFrequent(_Frequency):
    """Which of 2-4 present categories has the fewest objects in the image (a strictly unique minimum)."""

    id = "single.least_frequent"
    most = False
    templates = (
        Template("least_often", "Which of these appears least often in the image: {labels}?"),
        Template("least_numerous", "Among {labels_and}, which are the least numerous in the picture?"),
        Template("shows_fewest", "Of {labels_and}, which does the image show the fewest of?"),
    )


# =========================================================================== extreme positions
def extreme_winner(view: GraphView, objs: Sequence[Object], axis: int, sign: int,
                   margin: float = EXTREME_MARGIN) -> Object | None:
    """The object whose centre is furthest along ``axis`` (0 = x, 1 = y) in direction ``sign``
    (-1 = left/top, +1 = right/bottom), beating every other by ``margin`` of the image size, and whose
    leading box edge is also the extreme one (so "left-most" holds for centres and for edges)."""
    size = view.width if axis == 0 else view.height

    def centre(o: Object) -> float:
        return sign * o.box.center[axis] / size

    def edge(o: Object) -> float:
        b = o.box
        return sign * ((b.x2 if sign > 0 else b.x1) if axis == 0 else (b.y2 if sign > 0 else b.y1))

    ranked = sorted(objs, key=lambda o: (-centre(o), o.id))
    best, rest = ranked[0], ranked[1:]
    if not rest or centre(best) - centre(rest[0]) < margin:
        return None
    if any(edge(o) >= edge(best) for o in rest):
        return None
    return best


class GroupQuestion(Program):
    """Shared machinery: a question over 2-4 nameable objects with distinct labels, one of which wins;
    never over an entangled pair (:func:`programs.predicates.entangled`: one on, in, held or worn by the other,
    or its box nested in the other's)."""

    family = "objects"
    answer_type = "object"
    num_options = 3

    def winner(self, view: GraphView, objs: Sequence[Object]) -> Object | None:
        raise NotImplementedError

    def _group(self, view: GraphView, ids: Sequence[str]) -> list[tuple[Object, Referent]] | None:
        pool = spatial_by_id(view)
        if not 2 <= len(ids) <= 4 or len(set(ids)) != len(ids) or any(i not in pool for i in ids):
            return None
        clash = spatial_clashes(view)
        if any((a, b) in clash or entangled(view, a, b) for a, b in itertools.combinations(ids, 2)):
            return None  # "the table or the cup, which is the most central?": the cup stands on it
        return [pool[i] for i in ids]

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        ids = [o.id for o, _ in spatial_pool(view)]
        groups = larger_solved_groups_first(view, self.id, ids, lambda g: self.solve(view, {"object_ids": g}))
        return [({"object_ids": g}, value) for g, value in groups]

    def solve(self, view: GraphView, plan: Plan) -> Any:
        group = self._group(view, plan["object_ids"])
        if group is None:
            return None
        best = self.winner(view, [o for o, _ in group])
        if best is None:
            return None
        return name_of(next(r for o, r in group if o.id == best.id))

    def explain(self, view: GraphView, group: list[tuple[Object, Referent]]) -> str:
        raise NotImplementedError

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        group = self._group(view, plan["object_ids"])
        assert group is not None
        t = self.pick_template(rng)
        texts = [r.text for _, r in group]
        mentions = [m for _, r in group for m in r.mentions]
        rationale = f"{self.explain(view, group)} So the answer is: {value}."
        return Realized(t.id, t.text.format(objects=join(texts, "or"), objects_and=join(texts)), value, rationale,
                        [name_of(r) for _, r in group if name_of(r) != value], objects=mentions)


class _Extreme(GroupQuestion):
    axis: int = 0
    sign: int = -1
    word: str = ""

    def winner(self, view: GraphView, objs: Sequence[Object]) -> Object | None:
        return extreme_winner(view, objs, self.axis, self.sign)

    def explain(self, view: GraphView, group: list[tuple[Object, Referent]]) -> str:
        coord = "x" if self.axis == 0 else "y"
        parts = [f"{r.text} at {coord} = {pct(norm_center(view, o)[self.axis])}" for o, r in group]
        return (f"Measured as a share of the image {'width' if self.axis == 0 else 'height'}, the centres are: "
                f"{join(parts)}. The {self.word} one is clearly ahead of the others.")


@register
class Leftmost(_Extreme):
    """Which of 2-4 named objects is furthest to the left (clear margin over the runner-up)."""

    id = "single.leftmost"
    axis, sign, word = 0, -1, "left-most"
    templates = (
        Template("furthest_left", "Which of {objects_and} is the furthest to the left?"),
        Template("leftmost_among", "Among {objects_and}, which one is leftmost in the image?"),
        Template("closest_left_edge", "Looking at {objects_and}, which is closest to the left edge of the picture?"),
    )


@register
class Rightmost(_Extreme):
    """Which of 2-4 named objects is furthest to the right (clear margin over the runner-up)."""

    id = "single.rightmost"
    axis, sign, word = 0, 1, "right-most"
    templates = (
        Template("furthest_right", "Which of {objects_and} is the furthest to the right?"),
        Template("rightmost_among", "Among {objects_and}, which one is rightmost in the image?"),
        Template("closest_right_edge", "Looking at {objects_and}, which is closest to the right edge of the picture?"),
    )


@register
class Topmost(_Extreme):
    """Which of 2-4 named objects is highest in the image (clear margin over the runner-up)."""

    id = "single.topmost"
    axis, sign, word = 1, -1, "top-most"
    templates = (
        Template("highest", "Which of {objects_and} is the highest in the image?"),
        Template("topmost_among", "Among {objects_and}, which one is topmost in the picture?"),
        Template("closest_top_edge", "Looking at {objects_and}, which is closest to the top edge of the image?"),
    )


@register
class Bottommost(_Extreme):
    """Which of 2-4 named objects is lowest in the image (clear margin over the runner-up)."""

    id = "single.bottommost"
    axis, sign, word = 1, 1, "bottom-most"
    templates = (
        Template("lowest", "Which of {objects_and} is the lowest in the image?"),
        Template("bottommost_among", "Among {objects_and}, which one is bottommost in the picture?"),
        Template("closest_bottom_edge", "Looking at {objects_and}, which is closest to the bottom edge of the image?"),
    )


__all__ = [
    "Bottommost",
    "Exists",
    "Facts",
    "LeastFrequent",
    "Leftmost",
    "MostFrequent",
    "Rightmost",
    "Topmost",
    "cached",
    "hashed_order",
    "name_of",
    "referent",
    "spatial_pool",
    "tried_groups",
]
