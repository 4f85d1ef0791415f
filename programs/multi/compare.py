"""Compare: how two images of a set differ: the attribute of the one object of a category, the
relation between the one object of each of two categories, and the difference between two counts.

Plans name the two images by number (``"images": [1, 3]``, ascending). Answers list each image with
its value in that order ("Image 1: red; Image 3: blue"); a distractor swaps the two values or
replaces one with a value that is false for its image.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Any

import numpy as np

from ..base import Plan, Program, Realized, Template, register
from ..common import near
from ..grammar import count_phrase, plural
from ..predicates import false_predicates, group, is_false, unique_predicate, verb_parts
from ..single.attributes import alternatives
from ..single.counting import count_pool
from .common import (
    MAX_PLANS,
    Views,
    abstain_uncertain,
    attribute_triples,
    count_of,
    hashed,
    image_name,
    only_object,
    qualified,
    relation_triples,
    set_labels,
    single_value,
    where,
)

MAX_PAIRS = 6
"""Image pairs tried per category (sets have at most 15 pairs)."""


def pair_of(views: Views, plan: Plan) -> tuple[int, int] | None:
    """The plan's two image numbers when they are valid for this set (ascending, distinct, in range)."""
    pair = plan.get("images")
    if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(k, int) for k in pair):
        return None
    a, b = pair
    return (a, b) if 1 <= a < b <= len(views) else None


def pairs(views: Views, salt: str) -> list[list[int]]:
    """Image pairs of the set in a per-set order, at most :data:`MAX_PAIRS`."""
    every = [[a, b] for a, b in combinations(range(1, len(views) + 1), 2)]
    return hashed(views, salt, every, key=lambda p: f"{p[0]}-{p[1]}")[:MAX_PAIRS]


def first_pair_per_key(program: Program, views: Views, keys: list[tuple[str, str]],
                       plan_for: Callable[[tuple[str, str], list[int]], Plan]) -> list[tuple[Plan, Any]]:
    """For each key (in a per-set order), the first image pair with an answer: one pair per key keeps a
    set's questions varied. At most :data:`MAX_PLANS` solved plans."""
    out: list[tuple[Plan, Any]] = []
    for key in hashed(views, program.id, keys, key=lambda k: "|".join(k)):
        for pair in pairs(views, f"{program.id}|{'|'.join(key)}"):
            plan = plan_for(key, pair)
            if (value := program.solve(views, plan)) is not None:
                out.append((plan, value))
                break
        if len(out) >= MAX_PLANS:
            break
    return out


def per_image(values: dict[int, str]) -> str:
    """``{1: "red", 3: "blue"}`` -> ``Image 1: red; Image 3: blue``."""
    return "; ".join(f"{image_name(k)}: {v}" for k, v in sorted(values.items()))


# =========================================================================== attribute
@register
class CompareAttribute(Program):
    """How the attribute (colour, material, ...) of the one object of a category differs between two images."""

    id = "multi.compare_attribute"
    multi_image = True
    family = "compare"
    requires = frozenset({"objects", "attributes"})
    answer_type = "attribute pair"
    num_options = 3
    answer_prior = True
    templates = (
        Template("how_differ", "How does the {category} of the {label} differ between {a} and {b}?"),
        Template("compare_each", "Compare the {label} in {a} and in {b}: what {category} is it in each?"),
        Template("what_in_each", "What {category} is the {label} in {a}, and what {category} is it in {b}?"),
    )

    def solved_candidates(self, views: Views) -> list[tuple[Plan, Any]]:
        keys = sorted({(lbl, c) for lbl, c, _ in attribute_triples(views)})
        return first_pair_per_key(self, views, keys, lambda k, pair: {"label": k[0], "category": k[1], "images": pair})

    def solve(self, views: Views, plan: Plan) -> Any:
        pair = pair_of(views, plan)
        if pair is None:
            return None
        values = []
        for k in pair:
            o = only_object(views[k - 1], plan["label"])
            value = None if o is None else single_value(views[k - 1], o, plan["category"])
            if value is None:
                return None
            values.append(value)
        if near(values[0]) & near(values[1]):
            return None  # equal, or near-synonyms ("gray" / "silver"): no clear difference
        return values

    def realize(self, views: Views, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        label, c = plan["label"], plan["category"]
        a, b = plan["images"]
        t = self.pick_template(rng)
        oa, ob = only_object(views[a - 1], label), only_object(views[b - 1], label)
        answer = per_image({a: value[0], b: value[1]})
        rationale = (f"The {label} of {image_name(a)} (at {where(views[a - 1], [oa])}) is {value[0]}; "  # type: ignore[list-item]
                     f"the {label} of {image_name(b)} (at {where(views[b - 1], [ob])}) is {value[1]}. "  # type: ignore[list-item]
                     f"So the answer is: {answer}.")
        # every pairing of two different values the objects could have, the answer excepted: options that each changed one value of the answer would leave it the centre of the set
        firsts = [value[0], *alternatives(c, value[0], oa)]  # type: ignore[arg-type]
        seconds = [value[1], *alternatives(c, value[1], ob)]  # type: ignore[arg-type]
        options = [per_image({a: x, b: y}) for x in firsts for y in seconds
                   if (x, y) != tuple(value) and not near(x) & near(y)]  # the answer is never "the same"
        question = t.text.format(label=label, category=c, a=image_name(a), b=image_name(b))
        return Realized(t.id, question, answer, rationale, options,
                        objects=qualified(views[a - 1], [oa]) + qualified(views[b - 1], [ob]))  # type: ignore[list-item]

    def prior_keys(self, text: str) -> tuple[str, ...]:
        return tuple(part.split(": ", 1)[1] for part in text.split("; "))  # the prior counts values


# =========================================================================== relation
@register
class CompareRelation(Program):
    """How the relation between the one object of each of two categories differs between two images."""

    id = "multi.compare_relation"
    multi_image = True
    family = "compare"
    requires = frozenset({"objects", "relations"})
    answer_type = "predicate pair"
    num_options = 3
    templates = (
        Template("how_differ", "How does the relation between the {subj} and the {obj} differ between {a} "
                               "and {b}?"),
        Template("compare_each", "Compare {a} and {b}: how is the {subj} related to the {obj} in each?"),
        Template("what_relation", "What is the relation of the {subj} to the {obj} in {a}, and in {b}?"),
    )

    def solved_candidates(self, views: Views) -> list[tuple[Plan, Any]]:
        keys = sorted({(s, o) for s, _, o in relation_triples(views)})
        return first_pair_per_key(self, views, keys, lambda k, pair: {"subject": k[0], "object": k[1], "images": pair})

    def _parts(self, views: Views, plan: Plan, k: int) -> tuple[Any, Any, str] | None:
        v = views[k - 1]
        s, o = only_object(v, plan["subject"]), only_object(v, plan["object"])
        if s is None or o is None or s.id == o.id:
            return None
        p = unique_predicate(v, s.id, o.id)
        if p is None or unique_predicate(v, o.id, s.id) is not None:
            return None  # a relation both ways would make "the relation" ambiguous
        return s, o, p

    def solve(self, views: Views, plan: Plan) -> Any:
        pair = pair_of(views, plan)
        if pair is None:
            return None
        parts = [self._parts(views, plan, k) for k in pair]
        if parts[0] is None or parts[1] is None:
            return None
        preds = [parts[0][2], parts[1][2]]
        if group(preds[0]) == group(preds[1]):
            return None
        return preds

    def realize(self, views: Views, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        subj, obj = plan["subject"], plan["object"]
        a, b = plan["images"]
        t = self.pick_template(rng)
        (sa, oa, _), (sb, ob, _) = self._parts(views, plan, a), self._parts(views, plan, b)  # type: ignore[misc]
        va, vb = views[a - 1], views[b - 1]
        answer = per_image({a: value[0], b: value[1]})
        rationale = (f"In {image_name(a)} the {subj} (at {where(va, [sa])}) {verb_parts(value[0])[2]} the {obj} "
                     f"(at {where(va, [oa])}); in {image_name(b)} the {subj} (at {where(vb, [sb])}) "
                     f"{verb_parts(value[1])[2]} the {obj} (at {where(vb, [ob])}). So the answer is: {answer}.")
        options = []
        if is_false(va, sa.id, value[1], oa.id) and is_false(vb, sb.id, value[0], ob.id):
            options.append(per_image({a: value[1], b: value[0]}))
        options += [per_image({a: p, b: value[1]}) for p in false_predicates(va, sa.id, oa.id, value[0])]
        options += [per_image({a: value[0], b: p}) for p in false_predicates(vb, sb.id, ob.id, value[1])]
        question = t.text.format(subj=subj, obj=obj, a=image_name(a), b=image_name(b))
        return Realized(t.id, question, answer, rationale, options,
                        objects=qualified(va, [sa, oa]) + qualified(vb, [sb, ob]))


# =========================================================================== count difference
@register
class CountDifference(Program):
    """The difference between the numbers of objects of a category in two images (counts certain in both)."""

    id = "multi.count_difference"
    multi_image = True
    family = "compare"
    answer_type = "count"
    answer_prior = True
    num_options = 4
    templates = (
        Template("difference", "What is the difference between the number of {labels} in {a} and in {b}?"),
        Template("differ_by", "By how many do the numbers of {labels} in {a} and {b} differ?"),
        Template("how_many_more", "How many more {labels} does one of {a} and {b} show than the other?"),
    )

    KEEP_ONE = 0.5
    """Rejection rule: a difference of one is the commonest by far."""

    def answer_weight(self, value: Any) -> float:
        return self.KEEP_ONE if value == 1 else 1.0

    def solved_candidates(self, views: Views) -> list[tuple[Plan, Any]]:
        abstain_uncertain(views, self.id)
        out = []
        for lbl in hashed(views, self.id, set_labels(views)):
            for pair in pairs(views, f"{self.id}|{lbl}"):
                plan = {"label": lbl, "images": pair}
                if (value := self.solve(views, plan)) is not None:
                    out.append((plan, value))
                    break
            if len(out) >= MAX_PLANS:
                break
        return out

    def solve(self, views: Views, plan: Plan) -> Any:
        pair = pair_of(views, plan)
        if pair is None:
            return None
        found = [count_of(views[k - 1], plan["label"]) for k in pair]
        if found[0] is None or found[1] is None or not (found[0] or found[1]):
            return None
        return abs(found[0] - found[1])

    def realize(self, views: Views, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        label = plan["label"]
        a, b = plan["images"]
        t = self.pick_template(rng)
        na, nb = count_of(views[a - 1], label) or 0, count_of(views[b - 1], label) or 0
        rationale = (f"{image_name(a)} shows {count_phrase(na, label)} and {image_name(b)} shows "
                     f"{count_phrase(nb, label)}; the difference is {max(na, nb)} - {min(na, nb)} = {value}. "
                     f"So the answer is: {value}.")
        question = t.text.format(labels=plural(label), a=image_name(a), b=image_name(b))
        objs = qualified(views[a - 1], views[a - 1].by_label.get(label, ())) + \
            qualified(views[b - 1], views[b - 1].by_label.get(label, ()))
        return Realized(t.id, question, str(value), rationale, count_pool(value),
                        objects=objs)
