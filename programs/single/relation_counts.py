"""Counting along relations (CLEVR's relate-then-count): "How many cups are on the table?"

The counted category must be safe to count (:func:`programs.single.objects.safe_count_labels`: every
object confident, no faint unreported candidate, no other label naming the same thing) and the anchor a
confident object with a unique, relation-free referring expression. Only predicates whose falsehood
the boxes can show are asked, of a category seen in that relation to something in the same image (so
"How many cups are on the plate?" is asked where some cup is on something, never "How many cups are
holding the man?") (directional: left of, right of, above, under; contact: on, in, holding,
wearing, carrying, riding, touching), and only where the kinds of both objects allow the predicate
(:func:`programs.predicates.plausible`: no "How many balls are wearing the batter?"). Each object of
the category must be decided: *in* the relation when a confident relation states it (by synonym or
inverse, :func:`programs.predicates.is_true`), *out* when nothing in the graph may imply it and the boxes
contradict it (:func:`programs.predicates.is_false`); for left/right, *in* also when the boxes lie
wholly apart on that side (:func:`clearly_beside`, so any nameable anchor can be asked about); any other
object (a cup overlapping the table with no relation annotated) makes the count unknowable and the
program abstains. No object is counted
against its part or whole (:func:`part_of`: "How many cats are left of the nose?"), nor, for a
direction, against what holds, wears or contains it (:func:`programs.predicates.entangled`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scene_graphs.model import Object

from ..base import GraphView, Plan, Program, Realized, Template, register
from ..common import box_text, hashed_order, located
from ..grammar import capitalize, plural
from ..predicates import CONTACT, DIRECTIONAL, entangled, group, is_false, is_true, plausible, relation_index
from ..refer import Referent
from ..scenes import may_name_same
from .objects import MAX_PLANS, safe_count_labels
from .set_counts import few_zeros
from .relations import plain_referent

PHRASES = {"left of": "to the left of", "right of": "to the right of", "above": "above", "under": "under",
           "on": "on", "in": "in", "holding": "holding", "wearing": "wearing", "carrying": "carrying",
           "riding": "riding", "touching": "touching"}
"""Predicate groups asked about, as they read after "How many cups are": groups geometry can deny
(:data:`programs.predicates.DIRECTIONAL`, :data:`programs.predicates.CONTACT`) whose plural reads
naturally (no "contains", "held by": those are asked the other way round)."""
assert set(PHRASES) <= set(DIRECTIONAL) | CONTACT
SIDES = ("left of", "right of")
"""Groups that the boxes alone may also state (:func:`clearly_beside`); "above" and "under" need a
relation (a dog wholly below a table's box in the picture stands in front of it, not under it)."""
MAX_ANCHORS = 4
"""Anchors asked about by side per image."""
SEPARATION = 0.02
"""Gap (share of the image width) between two boxes for "to the left of" to hold by the boxes alone."""
KEEP = {0: 0.5, 1: 0.5}
"""Rejection rule: most images relate no or one object of a category to an anchor."""


PART_PREDICATES = frozenset({"part of", "has", "have", "with", "of", "attached to"})
"""Predicates that make one object a part of the other (the cat's nose, the bus's wheel)."""


def part_of(view: GraphView, a: str, b: str) -> bool:
    """Whether a relation (either way, any score) makes one of the two objects a part of the other."""
    idx = relation_index(view)
    preds = (*idx.pair_predicates.get((a, b), ()), *idx.pair_predicates.get((b, a), ()))
    return any(p in PART_PREDICATES for p in preds)


def clearly_beside(view: GraphView, obj: Object, g: str, anchor: Object) -> bool:
    """Whether ``obj``'s box lies wholly to the left (``g`` = "left of") or right ("right of") of the
    anchor's, with a gap of :data:`SEPARATION` of the image width."""
    gap = SEPARATION * view.width
    if g == "left of":
        return obj.box.x2 + gap <= anchor.box.x1
    if g == "right of":
        return anchor.box.x2 + gap <= obj.box.x1
    return False


@register
class CountRelated(Program):
    """How many objects of a category stand in a relation to a named anchor object."""

    id = "single.count_related"
    family = "counting"
    requires = frozenset({"objects", "relations"})
    answer_type = "count"
    num_options = 0
    """Free-form only, as :class:`programs.single.set_counts.CountUnion` (options of counts leak the answer
    prior: 0.56 where chance is 0.25 on the blind battery)."""
    templates = (
        Template("how_many_rel", "How many {labels} are {predicate} {anchor}?"),
        Template("count_rel", "Count the {labels} that are {predicate} {anchor}."),
        Template("number_rel", "What is the number of {labels} {predicate} {anchor}?"),
    )

    def answer_weight(self, value: Any) -> float:
        return KEEP.get(value, 1.0)

    def _anchor(self, view: GraphView, anchor_id: Any, label: Any) -> tuple[Object, Referent] | None:
        a = view.by_id.get(anchor_id) if isinstance(anchor_id, str) else None
        if a is None or a.score < view.config.confident_score:
            return None
        if label is not None and (a.label == label or may_name_same(a.label, label)):
            return None
        ref = plain_referent(view, a)
        return None if ref is None else (a, ref)

    def _members(self, view: GraphView, plan: Plan) -> list[Object] | None:
        """The objects of the category in the relation, or ``None`` when some object is undecided."""
        label, g, aid = plan.get("label"), plan.get("predicate"), plan.get("anchor_id")
        if g not in PHRASES or label not in safe_count_labels(view) or self._anchor(view, aid, label) is None:
            return None
        out = []
        for o in view.by_label[label]:
            if (g in DIRECTIONAL and entangled(view, o.id, aid)) or part_of(view, o.id, aid) \
                    or not plausible(view, o.id, g, aid):
                return None
            if is_true(view, o.id, g, aid) or clearly_beside(view, o, g, view.by_id[aid]):
                out.append(o)
            elif not is_false(view, o.id, g, aid):
                return None
        return out

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        idx = relation_index(view)
        anchors: dict[str, set[str]] = {}
        doers: dict[str, set[str]] = {}  # group -> labels seen doing it (to anything): plausible by attestation
        for s, p, o in idx.confident:
            g = group(p)
            if g in PHRASES:
                anchors.setdefault(o, set()).add(g)
                doers.setdefault(g, set()).add(view.by_id[s].label)
        labels = safe_count_labels(view)
        if labels:  # left/right of any nameable anchor, judged by the boxes
            for aid in hashed_order(view, self.id + "|beside", [o.id for o in view.confident_objects])[:MAX_ANCHORS]:
                if self._anchor(view, aid, None) is not None:
                    anchors.setdefault(aid, set()).update(SIDES)
                    for g in SIDES:
                        doers.setdefault(g, set()).update(labels)
        out: list[tuple[Plan, Any]] = []
        unknown = 0
        for aid in hashed_order(view, self.id, sorted(anchors)):
            for g in sorted(anchors[aid]):
                for label in labels:
                    if label not in doers[g] or self._anchor(view, aid, label) is None:
                        continue
                    plan = {"label": label, "predicate": g, "anchor_id": aid}
                    value = self.solve(view, plan)
                    if value is None:
                        unknown += 1
                    else:
                        out.append((plan, value))
        if unknown:
            view.abstain(self.id, "an object neither stated nor deniable in the relation", unknown)
        return few_zeros(hashed_order(view, self.id + "|plans", out, key=lambda pv: repr(pv[0])))[:MAX_PLANS]

    def solve(self, view: GraphView, plan: Plan) -> Any:
        members = self._members(view, plan)
        return None if members is None else len(members)

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        members = self._members(view, plan)
        anchor = self._anchor(view, plan["anchor_id"], plan["label"])
        assert members is not None and anchor is not None
        a, ra = anchor
        label, phrase = plan["label"], PHRASES[plan["predicate"]]
        t = self.pick_template(rng)
        objs = sorted(view.by_label[label], key=lambda o: (o.box.x1, o.box.y1))
        inside = {o.id for o in members}
        each = [f"the {label} at {box_text(view, o)} is {'' if o.id in inside else 'not '}{phrase} it" for o in objs]
        rationale = (f"{capitalize(located(ra.text, ra.strategy, box_text(view, a)))} is the anchor; "
                     f"{'; '.join(each)}. So the answer is: {value}.")
        question = t.text.format(labels=plural(label), predicate=phrase, anchor=ra.text)
        return Realized(t.id, question, str(value), rationale, objects=[o.id for o in objs] + list(ra.mentions))
