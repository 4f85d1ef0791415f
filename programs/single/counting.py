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


@register
class CountObjects(Program):
    id = "single.count_objects"
    family = "objects"
    answer_type = "count"
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
                        count_options(value, self.num_options, rng), objects=[o.id for o in objs])
