"""Same attribute as X (CLEVR's same-colour / same-material queries): which of a few named objects has
the same colour (material) as a named anchor object?

Asked over a closed set of choices named in the question, so the answer does not claim that nothing
else in the image shares the value (a detector's graph never lists everything). Exactly one choice
must *surely* share the anchor's value and every other choice must *surely* differ, by the rule of
:func:`programs.single.compare_attributes._same_or_different`: one decided value each, "same" only for
the same word, "different" only for values in different exclusive groups with no trace of the other's
value at any score, and (colours) values that look different for the eye (red and orange are
neighbours, :func:`programs.common.looks_different`). Referring expressions never name the compared category ("the red cup"), no two
objects of a question may be one thing and its part or holder (:func:`programs.predicates.entangled`),
and no two of their labels may name the same thing unless they are equal.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from scene_graphs.model import Object

from ..base import GraphView, Plan, Program, Realized, Template, register
from ..common import box_text, decided_values, hashed_order, located, looks_different
from ..grammar import capitalize, join
from ..predicates import entangled
from ..refer import Referent
from ..scenes import may_name_same
from .compare_attributes import COMPARED_CATEGORIES, _fit_referent, _same_or_different
from .objects import MAX_PLANS, MAX_POOL, name_of

N_CHOICES = (3, 2)
"""Objects offered as choices (one shares the anchor's value), three when the image has them, else two
(free-form only: multiple choice offers three)."""


def _far(view: GraphView, a: Object, b: Object, category: str) -> bool:
    """Whether each object's decided value looks different from every name of the other, at any score
    (:func:`programs.common.looks_different`: red and orange are neighbours; always true outside colour)."""
    dec = decided_values(view)
    return (looks_different(category, dec[(a.id, category)][0], [x.name for x in b.attributes])
            and looks_different(category, dec[(b.id, category)][0], [x.name for x in a.attributes]))


def _clash(a: Object, b: Object) -> bool:
    return a.label != b.label and may_name_same(a.label, b.label)


@register
class SameAttributeAs(Program):
    """Which of two or three named objects has the same colour (material) as a named anchor object."""

    id = "single.same_attribute_as"
    family = "attributes"
    requires = frozenset({"objects", "attributes"})
    answer_type = "object"
    num_options = 3
    templates = (
        Template("which_same", "Which of {choices} has the same {category} as {anchor}?"),
        Template("among_same", "Among {choices_and}, which one is the same {category} as {anchor}?"),
        Template("shares_with", "{Anchor} shares its {category} with which of these: {choices_and}?"),
    )

    def _parts(self, view: GraphView, plan: Plan) -> tuple[tuple[Object, Referent], list[tuple[Object, Referent]],
                                                            int] | None:
        """(anchor, choices, index of the one sharing the value) or ``None``."""
        c, aid, ids = plan.get("category"), plan.get("anchor_id"), plan.get("choice_ids")
        if c not in COMPARED_CATEGORIES or not isinstance(ids, list) or len(ids) not in N_CHOICES:
            return None
        every = [aid, *ids]
        if len(set(every)) != len(every) or any(i not in view.by_id for i in every):
            return None
        objs = [view.by_id[i] for i in every]
        refs = [_fit_referent(view, o, c) for o in objs]
        if any(r is None for r in refs) or len({r.text for r in refs}) != len(refs):  # type: ignore[union-attr]
            return None
        for x, y in itertools.combinations(objs, 2):
            if _clash(x, y) or entangled(view, x.id, y.id):
                return None
        verdicts = [_same_or_different(view, objs[0], o, c) for o in objs[1:]]
        if any(v is None for v in verdicts) or verdicts.count(True) != 1:
            return None
        if not all(v or _far(view, objs[0], o, c) for v, o in zip(verdicts, objs[1:])):
            return None  # a red mug and an orange plate: "not the same colour" is not clear to the eye
        pairs = list(zip(objs, refs))
        return pairs[0], pairs[1:], verdicts.index(True)  # type: ignore[return-value]

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        out: list[tuple[Plan, Any]] = []
        dec = decided_values(view)
        for c in COMPARED_CATEGORIES:
            ids = [o.id for o in view.confident_objects if len(dec.get((o.id, c), ())) == 1
                   and _fit_referent(view, o, c) is not None]
            ids = hashed_order(view, f"{self.id}|{c}", ids)[:MAX_POOL]
            for aid in ids:
                a = view.by_id[aid]
                rest = [i for i in ids if i != aid and not _clash(a, view.by_id[i]) and not entangled(view, aid, i)]
                same = [i for i in rest if _same_or_different(view, a, view.by_id[i], c) is True]
                differ = [i for i in rest if _same_or_different(view, a, view.by_id[i], c) is False]
                if not same or not differ:
                    continue
                k = min(len(differ), N_CHOICES[0] - 1)
                for j, (s, pair) in enumerate(itertools.product(same, itertools.combinations(differ, k))):
                    if j >= 2:
                        break
                    choices = hashed_order(view, f"{self.id}|{aid}|{s}|{pair}", [s, *pair])
                    plan = {"category": c, "anchor_id": aid, "choice_ids": choices}
                    value = self.solve(view, plan)
                    if value is not None:
                        out.append((plan, value))
        return hashed_order(view, self.id + "|plans", out, key=lambda pv: repr(pv[0]))[:MAX_PLANS]

    def solve(self, view: GraphView, plan: Plan) -> Any:
        parts = self._parts(view, plan)
        if parts is None:
            return None
        _, choices, k = parts
        return name_of(choices[k][1])

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        parts = self._parts(view, plan)
        assert parts is not None
        (anchor, ra), choices, k = parts
        c = plan["category"]
        dec = decided_values(view)
        t = self.pick_template(rng)
        texts = [r.text for _, r in choices]
        each = [f"{located(r.text, r.strategy, box_text(view, o))} is {dec[(o.id, c)][0]}" for o, r in choices]
        rationale = (f"{capitalize(located(ra.text, ra.strategy, box_text(view, anchor)))} is "
                     f"{dec[(anchor.id, c)][0]}; {join(each)}. Only {texts[k]} has the same {c}. "
                     f"So the answer is: {value}.")
        question = t.text.format(choices=join(texts, "or"), choices_and=join(texts), category=c,
                                 anchor=ra.text, Anchor=capitalize(ra.text))
        mentions = [m for _, r in [(anchor, ra), *choices] for m in r.mentions]
        return Realized(t.id, question, value, rationale, [name_of(r) for i, (_, r) in enumerate(choices) if i != k],
                        objects=mentions)
