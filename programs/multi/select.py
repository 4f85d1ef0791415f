"""Select: which image of a set has (or alone lacks) a category, an attribute-object or a relation, or
has the most / fewest objects of a category.

Every program here answers with an image name and only when exactly one image satisfies the
condition while every other image definitely fails it (presence, counts, attributes and relations
are judged by the rules in :mod:`programs.multi.common`; anything unsure makes the plan unsolvable).
Distractors are the other images' names.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..base import GraphView, Plan, Program, Realized, Template, register
from ..grammar import capitalize, count_phrase, plural
from ..predicates import verb_parts
from .common import (
    ABSENT,
    MAX_LABELS,
    MAX_PLANS,
    PRESENT,
    Views,
    a_noun,
    abstain_uncertain,
    attribute_holders,
    attribute_state,
    attribute_triples,
    count_of,
    counts,
    hashed,
    image_name,
    other_images,
    presence,
    presence_phrase,
    qualified,
    relation_phrase,
    relation_state,
    relation_triples,
    relation_witness,
    set_labels,
    where,
)


class _WhichImage(Program):
    """Shared by the "which image" programs: the one image whose condition is ``wanted``."""

    multi_image = True
    family = "select"
    answer_type = "image"
    num_options = 2
    wanted: bool = True

    def state(self, view: GraphView, plan: Plan) -> bool | None:
        """Whether ``view`` satisfies the plan's condition (``None``: not certain)."""
        raise NotImplementedError

    def proposals(self, views: Views) -> list[Plan]:
        """Plans to try (each is kept only when it has an answer)."""
        raise NotImplementedError

    def solved_candidates(self, views: Views) -> list[tuple[Plan, Any]]:
        out = []
        for plan in self.proposals(views):
            if (value := self.solve(views, plan)) is not None:
                out.append((plan, value))
                if len(out) >= MAX_PLANS:
                    break
        return out

    def solve(self, views: Views, plan: Plan) -> Any:
        states = [self.state(v, plan) for v in views]
        if any(s is None for s in states) or states.count(self.wanted) != 1:
            return None
        return states.index(self.wanted) + 1

    def answer(self, views: Views, value: int) -> tuple[str, list[str]]:
        return image_name(value), other_images(views, value)


# =========================================================================== categories
class _HasCategory(_WhichImage):
    requires = frozenset({"objects"})

    def proposals(self, views: Views) -> list[Plan]:
        abstain_uncertain(views, self.id)
        return [{"label": lbl} for lbl in hashed(views, self.id, set_labels(views))][:MAX_LABELS]

    def state(self, view: GraphView, plan: Plan) -> bool | None:
        s = presence(view, plan["label"])
        return True if s == PRESENT else False if s == ABSENT else None

    def realize(self, views: Views, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        label = plan["label"]
        t = self.pick_template(rng)
        seen = [f"{image_name(k)} shows {presence_phrase(v, label)}" for k, v in enumerate(views, 1)]
        only = "shows" if self.wanted else "shows no"
        name = a_noun(label) if self.wanted else plural(label)
        rationale = (f"{'; '.join(seen)}. Only {image_name(value)} {only} {name}. "
                     f"So the answer is: {image_name(value)}.")
        answer, options = self.answer(views, value)
        objs = views[value - 1].by_label.get(label, ())
        question = t.text.format(a_label=a_noun(label), label=label, labels=plural(label))
        return Realized(t.id, question, answer, rationale, options, objects=qualified(views[value - 1], objs))


@register
class WhichImageHas(_HasCategory):
    """Which image of the set shows an object of a category (every other image shows none)."""

    id = "multi.which_image_has"
    wanted = True
    templates = (
        Template("which_contains", "Which image contains {a_label}?"),
        Template("in_which_see", "In which of the images can you see {a_label}?"),
        Template("which_picture_shows", "Which picture shows {a_label}?"),
    )


@register
class WhichImageLacks(_HasCategory):
    """Which image of the set shows no object of a category (every other image shows one)."""

    id = "multi.which_image_lacks"
    wanted = False
    templates = (
        Template("which_not_contain", "Which image does not contain {a_label}?"),
        Template("in_which_no", "In which of the images is there no {label}?"),
        Template("which_picture_without", "Which picture shows no {labels}?"),
    )


# =========================================================================== attribute-objects
class _HasAttribute(_WhichImage):
    requires = frozenset({"objects", "attributes"})

    def proposals(self, views: Views) -> list[Plan]:
        triples = hashed(views, self.id, attribute_triples(views), key=lambda t: "|".join(t))
        return [{"label": lbl, "category": c, "attribute": a} for lbl, c, a in triples][:4 * MAX_PLANS]

    def state(self, view: GraphView, plan: Plan) -> bool | None:
        return attribute_state(view, plan["label"], plan["category"], plan["attribute"])

    def realize(self, views: Views, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        label, c, attr = plan["label"], plan["category"], plan["attribute"]
        t = self.pick_template(rng)
        steps = []
        for k, v in enumerate(views, 1):
            holders = attribute_holders(v, label, c, attr)
            objs = v.by_label.get(label, ()) if presence(v, label) == PRESENT else ()
            if holders:
                steps.append(f"{image_name(k)} shows {count_phrase(len(holders), f'{attr} {label}')} "
                             f"(at {where(v, holders)})")
            elif objs:
                steps.append(f"{image_name(k)} shows {count_phrase(len(objs), label)}, none of them {attr} "
                             f"(their {c} is known)")
            else:
                steps.append(f"{image_name(k)} shows no {plural(label)}")
        verb = "shows" if self.wanted else "shows no"
        thing = a_noun(f"{attr} {label}") if self.wanted else plural(f"{attr} {label}")
        rationale = f"{'; '.join(steps)}. Only {image_name(value)} {verb} {thing}. So the answer is: {image_name(value)}."
        answer, options = self.answer(views, value)
        phrase = f"{attr} {label}"
        question = t.text.format(a_phrase=a_noun(phrase), phrase=phrase, phrases=plural(phrase))
        held = attribute_holders(views[value - 1], label, c, attr)
        return Realized(t.id, question, answer, rationale, options, objects=qualified(views[value - 1], held))


@register
class WhichImageHasAttribute(_HasAttribute):
    """Which image shows an object with an attribute ("a red car"); every other image definitely has none."""

    id = "multi.which_image_has_attribute"
    wanted = True
    templates = (
        Template("which_image_shows", "Which image shows {a_phrase}?"),
        Template("in_which_is_there", "In which image is there {a_phrase}?"),
        Template("which_of_contains", "Which of the images contains {a_phrase}?"),
    )


@register
class WhichImageLacksAttribute(_HasAttribute):
    """Which image shows no object with an attribute ("no red car") while every other image shows one."""

    id = "multi.which_image_lacks_attribute"
    wanted = False
    templates = (
        Template("which_not_show", "Which image does not show {a_phrase}?"),
        Template("in_which_no", "In which image is there no {phrase}?"),
        Template("which_without", "Which of the images has no {phrases}?"),
    )


# =========================================================================== relations
class _HasRelation(_WhichImage):
    requires = frozenset({"objects", "relations"})

    def proposals(self, views: Views) -> list[Plan]:
        triples = hashed(views, self.id, relation_triples(views), key=lambda t: "|".join(t))
        return [{"subject": s, "predicate": p, "object": o} for s, p, o in triples][:4 * MAX_PLANS]

    def state(self, view: GraphView, plan: Plan) -> bool | None:
        return relation_state(view, plan["subject"], plan["predicate"], plan["object"])

    def realize(self, views: Views, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        s, p, o = plan["subject"], plan["predicate"], plan["object"]
        phrase = relation_phrase(s, p, o)
        finite = verb_parts(p)[2]
        t = self.pick_template(rng)
        steps = []
        provenance: list[str] = []
        for k, v in enumerate(views, 1):
            pair = relation_witness(v, s, p, o)
            if pair is not None:
                steps.append(f"in {image_name(k)} the {s} at {where(v, [pair[0]])} {finite} the {o} at "
                             f"{where(v, [pair[1]])}")
                if k == value:
                    provenance = qualified(v, pair)
            elif presence(v, s) == ABSENT or presence(v, o) == ABSENT:
                missing = s if presence(v, s) == ABSENT else o
                steps.append(f"{image_name(k)} shows no {plural(missing)}")
            else:
                steps.append(f"in {image_name(k)} no {s} {finite} any {o}: no relation says so and the boxes "
                             f"rule it out")
        verb = "shows" if self.wanted else "does not show"
        rationale = (f"{capitalize('; '.join(steps))}. Only {image_name(value)} {verb} {phrase}. "
                     f"So the answer is: {image_name(value)}.")
        answer, options = self.answer(views, value)
        return Realized(t.id, t.text.format(phrase=phrase), answer, rationale, options, objects=provenance)


@register
class WhichImageHasRelation(_HasRelation):
    """Which image shows a relation between two categories ("a person riding a horse"); the others
    definitely do not (a category is absent, or every pair is safely denied)."""

    id = "multi.which_image_has_relation"
    wanted = True
    templates = (
        Template("which_image_has", "Which image has {phrase}?"),
        Template("where_is_there", "In which of these images is there {phrase}?"),
        Template("which_depicts", "Which picture depicts {phrase}?"),
    )


@register
class WhichImageLacksRelation(_HasRelation):
    """Which image does not show a relation between two categories that every other image shows."""

    id = "multi.which_image_lacks_relation"
    wanted = False
    answer_prior = True
    templates = (
        Template("which_image_lacks", "Which image does not have {phrase}?"),
        Template("where_is_there_not", "In which of these images is there not {phrase}?"),
        Template("which_fails_to_depict", "Which picture fails to depict {phrase}?"),
    )


# =========================================================================== most / fewest
class _Extreme(_WhichImage):
    requires = frozenset({"objects"})
    most: bool = True

    def proposals(self, views: Views) -> list[Plan]:
        abstain_uncertain(views, self.id)
        return [{"label": lbl} for lbl in hashed(views, self.id, set_labels(views))][:MAX_LABELS]

    def state(self, view: GraphView, plan: Plan) -> bool | None:  # pragma: no cover - solve is overridden
        raise NotImplementedError

    def solve(self, views: Views, plan: Plan) -> Any:
        found = counts(views, plan["label"])
        if found is None or max(found) == 0:
            return None
        best = max(found) if self.most else min(found)
        if found.count(best) != 1:
            return None
        return found.index(best) + 1

    def realize(self, views: Views, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        label = plan["label"]
        t = self.pick_template(rng)
        seen = [f"{image_name(k)} shows {count_phrase(count_of(v, label) or 0, label)}"
                for k, v in enumerate(views, 1)]
        word = "most" if self.most else "fewest"
        rationale = (f"Counting {plural(label)}: {'; '.join(seen)}. {image_name(value)} has the {word}. "
                     f"So the answer is: {image_name(value)}.")
        answer, options = self.answer(views, value)
        objs = views[value - 1].by_label.get(label, ())
        return Realized(t.id, t.text.format(labels=plural(label)), answer, rationale, options,
                        objects=qualified(views[value - 1], objs))


@register
class MostOfCategory(_Extreme):
    """Which image shows the most objects of a category (a strict maximum; counts certain in every image)."""

    id = "multi.most_of_category"
    most = True
    templates = (
        Template("which_most", "Which image has the most {labels}?"),
        Template("where_most", "In which picture are there the most {labels}?"),
        Template("largest_number", "Which image shows the largest number of {labels}?"),
    )


@register
class FewestOfCategory(_Extreme):
    """Which image shows the fewest objects of a category (a strict minimum, possibly none)."""

    id = "multi.fewest_of_category"
    most = False
    templates = (
        Template("which_fewest", "Which image has the fewest {labels}?"),
        Template("where_fewest", "In which picture are there the fewest {labels}?"),
        Template("smallest_number", "Which image shows the smallest number of {labels}?"),
    )
