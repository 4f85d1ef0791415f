"""Farther from an anchor, in depth (ProVision's farther-from-anchor, as relative depth can back it):
which of a few named objects lies at the most different distance from the camera than a named anchor?

Here the depth maps are taken as relative (no metric scale, no camera intrinsics), so the 3-D distance between
two objects is unknown: an object beside the anchor in the picture but far behind it, or one at the same
depth but across the room, cannot be ranked. Only differences of distance *from the camera* are asked
("at the most different depth"), the mirror of ``single.nearest_to_anchor``: the winner's depth difference
from the anchor must exceed every other choice's by ``config.min_depth_gap`` of the map's range, the
choices have distinct labels (the answer is a label), and no two objects of a question are one thing
(one named through the other, or entangled: :func:`programs.predicates.entangled`). Metric "how far apart are X and Y" is
``single.metric_pair_distance`` (:mod:`programs.single.metric`), only for graphs with metric depth and intrinsics.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..base import GraphView, Plan, Program, Realized, Template, register
from ..common import hashed_order
from ..grammar import capitalize, join
from ..predicates import entangled
from .depth import _depth_objects, _entangled, depth_info, object_nearness, referent, relative_distance

N_CHOICES = 3
MAX_ANCHORS = 3


@register
class FarthestFromAnchor(Program):
    """Which of three named objects lies at the most different depth from a fourth (the anchor)."""

    id = "single.farthest_from_anchor"
    family = "depth"
    requires = frozenset({"objects", "depth"})
    answer_type = "label"
    num_options = N_CHOICES
    templates = (
        Template("most_different", "Which of {choices} differs most from {anchor} in its distance from the "
                                   "camera?"),
        Template("farthest_in_depth", "Which of {choices} is farthest in depth from {anchor}?"),
        Template("least_same_depth", "Of {choices}, which one lies at a depth least like that of {anchor}?"),
    )

    def _gaps(self, view: GraphView, plan: Plan) -> list[float] | None:
        anchor = view.by_id.get(plan.get("anchor_id"))  # type: ignore[arg-type]
        ids = plan.get("choice_ids")
        if anchor is None or not isinstance(ids, list) or len(ids) != N_CHOICES or len(set(ids)) != N_CHOICES:
            return None
        choices = [view.by_id.get(i) for i in ids]
        named = {o.id for o, _, _ in _depth_objects(view)}
        if anchor.id not in named or any(c is None or c.id not in named for c in choices):
            return None
        labels = [c.label for c in choices]  # type: ignore[union-attr]
        if len(set(labels)) != N_CHOICES or anchor.label in labels:
            return None
        tied = _entangled(view)
        if any((anchor.id, c.id) in tied or entangled(view, anchor.id, c.id)  # type: ignore[union-attr]
               for c in choices):
            return None
        if any((a.id, b.id) in tied or entangled(view, a.id, b.id)  # type: ignore[union-attr]
               for a, b in itertools.combinations(choices, 2)):
            return None  # the cup and the table it stands on are not ranked against each other
        na = object_nearness(view, anchor)
        near = [object_nearness(view, c) for c in choices]  # type: ignore[arg-type]
        if na is None or any(n is None for n in near):
            return None
        return [abs(n - na) for n in near]  # type: ignore[operator]

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        info = depth_info(view)
        if not info.ok:
            return []
        objs = [o for o, _, _ in _depth_objects(view)]
        out: list[tuple[Plan, Any]] = []
        for anchor in hashed_order(view, self.id, objs, key=lambda o: o.id)[:MAX_ANCHORS]:
            others = [o for o in objs if o.label != anchor.label]
            for j, group in enumerate(itertools.combinations(hashed_order(view, f"{self.id}|{anchor.id}", others,
                                                                          key=lambda o: o.id)[:6], N_CHOICES)):
                if j >= 4:
                    break
                plan = {"anchor_id": anchor.id, "choice_ids": [o.id for o in group]}
                value = self.solve(view, plan)
                if value is not None:
                    out.append((plan, value))
                    break
        return out

    def solve(self, view: GraphView, plan: Plan) -> Any:
        gaps = self._gaps(view, plan)
        if gaps is None:
            return None
        order = sorted(range(len(gaps)), key=lambda i: -gaps[i])
        if gaps[order[0]] - gaps[order[1]] < depth_info(view).gap:
            return None
        return view.by_id[plan["choice_ids"][order[0]]].label

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        anchor = view.by_id[plan["anchor_id"]]
        choices = [view.by_id[i] for i in plan["choice_ids"]]
        texts = [referent(view, c).text for c in choices]  # type: ignore[union-attr]
        anchor_text = referent(view, anchor).text  # type: ignore[union-attr]
        t = self.pick_template(rng)
        parts = [f"{txt} at {relative_distance(view, object_nearness(view, c)):.2f}"  # type: ignore[arg-type]
                 for txt, c in zip(texts, choices)]
        winner = next(txt for txt, c in zip(texts, choices) if c.label == value)
        na = object_nearness(view, anchor)
        rationale = (f"On a scale from 0 (nearest in this image) to 1 (farthest), {anchor_text} is at "
                     f"{relative_distance(view, na):.2f}; {join(parts)}. "  # type: ignore[arg-type]
                     f"{capitalize(winner)} differs most from {anchor_text}. So the answer is: {value}.")
        question = t.text.format(choices=join(texts, "or"), anchor=anchor_text)
        return Realized(t.id, question, value, rationale, [c.label for c in choices if c.label != value])
