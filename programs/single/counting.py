"""Counting: how many objects of a category (reference family for writing programs)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..base import GraphView, Plan, Program, Realized, Template, draw, register
from ..common import box_text
from ..grammar import be, count_phrase, plural


def count_options(n: int, k: int, rng: np.random.Generator) -> list[str]:
    """``k - 1`` false counts forming, with ``n``, a run of ``k`` consecutive integers in which ``n``
    takes a uniformly drawn rank (shifted up where the run would go below zero), so neither the
    options' range nor their order gives the answer away."""
    start = max(0, n - draw(rng, k))
    return [str(v) for v in range(start, start + k) if v != n]


COUNT_POOL_TOP = 12
"""Counts up to this (and to twice the answer) form the distractor pool of count programs drawing by their
answer prior."""


def count_pool(n: int) -> list[str]:
    """Every false count from 0 to ``max(COUNT_POOL_TOP, 2n + 1)``: the distractor pool of a count program
    with an answer prior (:meth:`programs.base.Program.pick_distractors` draws the common counts more
    often, as they are more often the answer, so no count is right more often than another when offered;
    a window around the answer would offer the common counts only near them)."""
    return [str(v) for v in range(max(COUNT_POOL_TOP, 2 * n + 1) + 1) if v != n]


@register
class CountObjects(Program):
    id = "single.count_objects"
    family = "objects"
    answer_type = "count"
    answer_prior = True
    templates = (
        Template("how_many", "How many {labels} are there in the image?"),
        Template("count_the", "Count the {labels} in this picture."),
        Template("number_of", "What is the number of {labels} visible?"),
    )

    KEEP: ClassVar[dict[int, float]] = {1: 0.35, 2: 0.7}
    """Rejection rule: one and two are by far the most common counts in real and synthetic graphs."""

    def answer_weight(self, value: Any) -> float:
        return self.KEEP.get(value, 1.0)

    def candidates(self, view: GraphView) -> list[Plan]:
        for label in sorted(view.uncertain_labels):
            view.abstain(self.id, "uncertain category")
        crowded = [lbl for lbl in view.countable_labels if view.graph.faint_count(lbl)]
        if crowded:
            view.abstain(self.id, "faint unreported candidates (count unsure)", len(crowded))
        return [{"label": label} for label in view.countable_labels if label not in crowded]

    def solve(self, view: GraphView, plan: Plan) -> Any:
        label = plan["label"]
        if label in view.uncertain_labels or view.graph.faint_count(label):
            return None
        return len(view.by_label.get(label, ()))

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        label = plan["label"]
        t = self.pick_template(rng)
        objs = sorted(view.by_label.get(label, ()), key=lambda o: (o.box.x1, o.box.y1))
        where = ", ".join(box_text(view, o) for o in objs)
        rationale = (f"There {be(value)} {count_phrase(value, label)}" + (f": at {where}" if objs else "")
                     + f". So the answer is: {value}.")
        return Realized(t.id, t.text.format(labels=plural(label)), str(value), rationale,
                        count_pool(value), objects=[o.id for o in objs])
