"""Aggregate: what holds across all images of a set: the categories they share, the attribute an
object shares across them, totals of a category (or of an attribute-object) over all images, and
whether every image shows a category.

Presence, counts and attributes follow :mod:`programs.multi.common`: any image where a fact is
uncertain makes the plan unsolvable, so a stated total or a stated "shared" never rests on an
uncertain detection.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..base import Plan, Program, Realized, Template, register
from ..common import near
from ..grammar import be, count_phrase, join, plural
from ..single.attributes import alternatives
from ..single.counting import count_pool
from .common import (
    ABSENT,
    MAX_LABELS,
    MAX_PLANS,
    PRESENT,
    UNKNOWN,
    Views,
    a_noun,
    abstain_uncertain,
    attribute_triples,
    by_position,
    count_of,
    counts,
    decided,
    hashed,
    image_name,
    only_object,
    presence,
    presence_phrase,
    qualified,
    set_labels,
    single_value,
    where,
)

_KEEP_SMALL_COUNTS = {1: 0.35, 2: 0.7}
"""Rejection rule for totals (as for single-image counting): one and two are the most common totals."""
_KEEP_ATTRIBUTE_COUNTS = {1: 0.25, 2: 0.6}
"""Stronger for attribute-object totals, where most sets offer nothing but one."""


# =========================================================================== shared categories
@register
class CommonCategories(Program):
    """Which object categories appear in every image of the set (every category of the set decided)."""

    id = "multi.common_categories"
    multi_image = True
    family = "aggregate"
    answer_type = "labels"
    num_options = 3
    templates = (
        Template("which_kinds", "Which kinds of objects appear in every one of these images?"),
        Template("in_common", "What object categories do all the images have in common?"),
        Template("list_types", "List the types of objects that are present in all of the images."),
    )

    def _states(self, views: Views) -> dict[str, list[str]] | None:
        """Label -> presence per image, for every label any graph of the set mentions (at any score)."""
        labels = sorted({o.label for v in views for o in v.graph.objects})
        return {lbl: [presence(v, lbl) for v in views] for lbl in labels}

    def solved_candidates(self, views: Views) -> list[tuple[Plan, Any]]:
        abstain_uncertain(views, self.id)
        value = self.solve(views, {})
        return [] if value is None else [({}, value)]

    def solve(self, views: Views, plan: Plan) -> Any:
        if plan:
            return None
        common = []
        for lbl, states in (self._states(views) or {}).items():
            if ABSENT in states:
                continue
            if UNKNOWN in states:
                return None  # might or might not be shared
            common.append(lbl)
        return common or None

    def realize(self, views: Views, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        t = self.pick_template(rng)
        steps = [f"{image_name(k)} shows {join(list(v.countable_labels))}" for k, v in enumerate(views, 1)]
        answer = join(value)
        found = (f"The only category present in every image is {answer}" if len(value) == 1
                 else f"The categories present in every image are {answer}")
        rationale = f"{'; '.join(steps)}. {found}. So the answer is: {answer}."
        states = self._states(views) or {}
        partial = [lbl for lbl, s in states.items() if PRESENT in s and ABSENT in s]
        options = []
        for extra in partial:
            options.append(join(sorted(value + [extra])))
        if len(value) > 1:
            options.extend(join([x for x in value if x != drop]) for drop in value)
        for extra in partial:
            options.extend(join(sorted([x for x in value if x != drop] + [extra])) for drop in value)
        objs = [q for v in views for q in qualified(v, (o for lbl in value for o in v.by_label[lbl]))]
        return Realized(t.id, t.text, answer, rationale, options, objects=objs)


@register
class CommonAttribute(Program):
    """Which attribute value the one object of a category shows in every image (e.g. the shared colour)."""

    id = "multi.common_attribute"
    multi_image = True
    family = "aggregate"
    requires = frozenset({"objects", "attributes"})
    answer_type = "attribute"
    num_options = 3
    templates = (
        Template("share", "Each image shows one {label}. Which {category} do the {labels} in all the images "
                          "share?"),
        Template("in_common", "What {category} do the {labels} in these images have in common?"),
        Template("all_have", "Every one of these pictures has a single {label}. What {category} do they all "
                             "have?"),
    )

    def solved_candidates(self, views: Views) -> list[tuple[Plan, Any]]:
        pairs = sorted({(lbl, c) for lbl, c, _ in attribute_triples(views)})
        out = []
        for lbl, c in hashed(views, self.id, pairs, key=lambda p: "|".join(p)):
            plan = {"label": lbl, "category": c}
            if (value := self.solve(views, plan)) is not None:
                out.append((plan, value))
                if len(out) >= MAX_PLANS:
                    break
        return out

    def solve(self, views: Views, plan: Plan) -> Any:
        values = set()
        for v in views:
            o = only_object(v, plan["label"])
            if o is None:
                return None
            value = single_value(v, o, plan["category"])
            if value is None:
                return None
            values.add(value)
        return values.pop() if len(values) == 1 else None

    def realize(self, views: Views, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        label, c = plan["label"], plan["category"]
        t = self.pick_template(rng)
        objs = [only_object(v, label) for v in views]
        steps = [f"the {label} of {image_name(k)} (at {where(v, [o])}) is {value}"  # type: ignore[list-item]
                 for k, (v, o) in enumerate(zip(views, objs), 1)]
        rationale = (f"Each image has exactly one {label}, and its {c} is known: {'; '.join(steps)}. "
                     f"They all share {value}. So the answer is: {value}.")
        options = [alt for alt in alternatives(c, value, objs[0])  # type: ignore[arg-type]
                   if all(alt in alternatives(c, value, o) for o in objs[1:])]  # type: ignore[arg-type]
        question = t.text.format(label=label, labels=plural(label), category=c)
        return Realized(t.id, question, value, rationale, options,
                        objects=[q for v, o in zip(views, objs) for q in qualified(v, [o])])  # type: ignore[list-item]


# =========================================================================== totals
@register
class TotalCount(Program):
    """How many objects of a category all the images show together (counts certain in every image)."""

    id = "multi.total_count"
    multi_image = True
    family = "aggregate"
    answer_type = "count"
    answer_prior = True
    num_options = 4
    templates = (
        Template("together", "How many {labels} are there in all the images together?"),
        Template("across", "Counting across every image, how many {labels} are there?"),
        Template("total_number", "What is the total number of {labels} in these images?"),
    )

    def answer_weight(self, value: Any) -> float:
        return _KEEP_SMALL_COUNTS.get(value, 1.0)

    def solved_candidates(self, views: Views) -> list[tuple[Plan, Any]]:
        abstain_uncertain(views, self.id)
        plans = [{"label": lbl} for lbl in hashed(views, self.id, set_labels(views))][:MAX_LABELS]
        return [(p, v) for p in plans if (v := self.solve(views, p)) is not None]

    def solve(self, views: Views, plan: Plan) -> Any:
        found = counts(views, plan["label"])
        return None if found is None or sum(found) == 0 else sum(found)

    def realize(self, views: Views, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        label = plan["label"]
        t = self.pick_template(rng)
        steps = [f"{image_name(k)} shows {presence_phrase(v, label)}" for k, v in enumerate(views, 1)]
        sums = " + ".join(str(count_of(v, label)) for v in views)
        rationale = f"{'; '.join(steps)}. In total {sums} = {value}. So the answer is: {value}."
        objs = [q for v in views for q in qualified(v, v.by_label.get(label, ()))]
        return Realized(t.id, t.text.format(labels=plural(label)), str(value), rationale,
                        count_pool(value), objects=objs)


@register
class TotalAttributeCount(Program):
    """How many objects with an attribute ("red cars") all the images show together; every object of
    the category must have a decided value in the attribute's category."""

    id = "multi.total_attribute_count"
    multi_image = True
    family = "aggregate"
    requires = frozenset({"objects", "attributes"})
    answer_type = "count"
    answer_prior = True
    num_options = 4
    templates = (
        Template("across_all", "How many {phrases} are there across all the images?"),
        Template("counting_every", "Counting every image, how many {labels} are {attr}?"),
        Template("total_number", "What is the total number of {phrases} in these images?"),
    )

    def answer_weight(self, value: Any) -> float:
        return _KEEP_ATTRIBUTE_COUNTS.get(value, 1.0)

    def solved_candidates(self, views: Views) -> list[tuple[Plan, Any]]:
        out = []
        for lbl, c, a in hashed(views, self.id, attribute_triples(views), key=lambda t: "|".join(t)):
            plan = {"label": lbl, "category": c, "attribute": a}
            if (value := self.solve(views, plan)) is not None:
                out.append((plan, value))
                if len(out) >= MAX_PLANS:
                    break
        return out

    def per_image(self, views: Views, plan: Plan) -> list[int] | None:
        label, c, value = plan["label"], plan["category"], plan["attribute"]
        close = near(value) - {value}
        out = []
        for v in views:
            n = count_of(v, label)
            if n is None:
                return None
            hits = 0
            for o in v.by_label.get(label, ()) if n else ():
                values = decided(v, o, c)
                if values is None:
                    return None
                if value in values:
                    hits += 1
                elif close & set(values):
                    return None  # a "dark red" car makes "how many red cars" ambiguous
            out.append(hits)
        return out

    def solve(self, views: Views, plan: Plan) -> Any:
        found = self.per_image(views, plan)
        return None if found is None or sum(found) == 0 else sum(found)

    def realize(self, views: Views, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        label, c, attr = plan["label"], plan["category"], plan["attribute"]
        t = self.pick_template(rng)
        found = self.per_image(views, plan) or []
        steps = []
        objs: list[str] = []
        for k, (v, n) in enumerate(zip(views, found), 1):
            total = count_of(v, label) or 0
            holders = [o for o in by_position(v.by_label.get(label, ())) if attr in (decided(v, o, c) or ())]
            objs.extend(qualified(v, holders))
            where_text = f" (at {where(v, holders)})" if holders else ""
            steps.append(f"{image_name(k)} shows {count_phrase(total, label)}, of which {n} {be(n)} {attr}{where_text}"
                         if total else f"{image_name(k)} shows {count_phrase(0, label)}")
        sums = " + ".join(str(n) for n in found)
        rationale = (f"All {plural(label)} have a known {c}. {'; '.join(steps)}. In total {sums} = {value}. "
                     f"So the answer is: {value}.")
        phrase = f"{attr} {label}"
        question = t.text.format(phrases=plural(phrase), labels=plural(label), attr=attr)
        return Realized(t.id, question, str(value), rationale, count_pool(value),
                        objects=objs)


# =========================================================================== every image
@register
class AllContain(Program):
    """Yes/no: does every image of the set show an object of a category (decided in every image).

    A set offers as many "yes" plans as "no" plans (none when it lacks either answer), so the split
    stays even although most categories are missing from some image."""

    id = "multi.all_contain"
    multi_image = True
    family = "aggregate"
    answer_type = "yes/no"
    num_options = 2
    templates = (
        Template("all_contain", "Do all of the images contain {a_label}?"),
        Template("in_every", "Is there {a_label} in every one of these images?"),
        Template("each_shows", "Does each image show {a_label}?"),
    )

    def solved_candidates(self, views: Views) -> list[tuple[Plan, Any]]:
        abstain_uncertain(views, self.id)
        plans = [{"label": lbl} for lbl in hashed(views, self.id, set_labels(views))][:MAX_LABELS]
        answers = [self.solve(views, p) for p in plans]
        yes = [(p, a) for p, a in zip(plans, answers) if a == "yes"]
        no = [(p, a) for p, a in zip(plans, answers) if a == "no"]
        # as many of each answer (so the split is even whatever the sets): "no" is far commoner
        k = min(len(yes), len(no))
        return sorted(yes[:k] + no[:k], key=lambda pa: pa[0]["label"])

    def solve(self, views: Views, plan: Plan) -> Any:
        states = [presence(v, plan["label"]) for v in views]
        if UNKNOWN in states:
            return None
        return "yes" if all(s == PRESENT for s in states) else "no"

    def realize(self, views: Views, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        label = plan["label"]
        t = self.pick_template(rng)
        steps = [f"{image_name(k)} shows {presence_phrase(v, label)}" for k, v in enumerate(views, 1)]
        if value == "yes":
            verdict = f"Every image shows {a_noun(label)}."
        else:
            missing = [image_name(k) for k, v in enumerate(views, 1) if presence(v, label) == ABSENT]
            verdict = f"{join(missing)} {'shows' if len(missing) == 1 else 'show'} no {plural(label)}."
        rationale = f"{'; '.join(steps)}. {verdict} So the answer is: {value}."
        objs = [q for v in views for q in qualified(v, v.by_label.get(label, ()))] if value == "yes" else []
        return Realized(t.id, t.text.format(a_label=a_noun(label)), value, rationale,
                        ["no" if value == "yes" else "yes"], objects=objs)
