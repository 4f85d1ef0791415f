"""Attributes: colour, material, size and state of objects; counting, finding and listing by attribute.

An attribute decides an answer only when it is confident (score >= ``confident_score``), and a
category of an object is used only when it is *decided*: at least one confident value and no value
in the uncertain band, which could contradict it. Attributes below ``min_score`` do not exist.

Distractors must be false, so they come from :data:`EXCLUSIVE`: per category, families of mutually
exclusive value groups (a group holds near-synonyms such as gray/grey/silver). A distractor is the
head word of another group of the answer's family that is near none of the object's attribute
names (at any score); values outside every family get no distractors (free-form only).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from scene_graphs.model import ATTRIBUTE_CATEGORIES, Object
from scene_graphs.vocab import normalize

from ..base import GraphView, Plan, Program, Realized, Template, draw, register
from ..common import (EXCLUSIVE, Family, attribute_names, box_text, decided_values, located, looks_different,
                      max_iou, near)
from ..grammar import capitalize, count_phrase, join, plural
from ..scenes import kind_noun, may_name_same
from .counting import count_pool
from .objects import MAX_PLANS, MAX_POOL, hashed_order, is_confident, referent, safe_count_labels

COUNT_CATEGORIES = ("color", "material", "state", "shape", "pattern")
"""Categories that "How many red cups?" and "Which object is red?" ask about (size is too relative)."""


@lru_cache(maxsize=4096)
def _family_heads(category: str, values: tuple[str, ...]) -> frozenset[str]:
    """Head words of the groups of every family of ``category`` that holds one of ``values``."""
    return frozenset(g[0] for family in EXCLUSIVE.get(category, ())
                     if any(v in group for group in family for v in values) for g in family)


def alternatives(category: str, value: str, obj: Object) -> list[str]:
    """Values exclusive with ``value`` in ``category`` that ``obj`` has no trace of (at any score)."""
    return list(_alternatives(category, normalize(value), frozenset(a.name for a in obj.attributes)))


@lru_cache(maxsize=8192)
def _alternatives(category: str, v: str, names: frozenset[str]) -> tuple[str, ...]:
    blocked = frozenset().union(*(near(n) for n in names), near(v))
    for family in EXCLUSIVE.get(category, ()):
        if any(v in group for group in family):
            return tuple(g[0] for g in family if v not in g and not (near(g[0]) & blocked)
                         and looks_different(category, g[0], (v, *names)))
    return ()


def alternative_words(category: str, value: str, obj: Object) -> list[str]:
    """:func:`alternatives` with every word of each group, not only its head ("wooden" as well as "wood"):
    the distractor pool of programs drawing by their answer prior, which picks among near-synonyms by how
    often each is an answer (and never two of one group: :func:`same_look`)."""
    return list(_alternative_words(category, normalize(value), frozenset(a.name for a in obj.attributes)))


@lru_cache(maxsize=8192)
def _alternative_words(category: str, v: str, names: frozenset[str]) -> tuple[str, ...]:
    blocked = frozenset().union(*(near(n) for n in names), near(v))
    for family in EXCLUSIVE.get(category, ()):
        if any(v in group for group in family):
            return tuple(dict.fromkeys(w for g in family if v not in g for w in g if not (near(w) & blocked)
                                       and looks_different(category, w, (v, *names))))
    return ()


def same_look(a: str, b: str) -> bool:
    """Whether two attribute values may describe the same look (one group, or a word of two groups)."""
    return a == b or bool(near(a) & near(b))


def decided(view: GraphView, obj: Object, category: str) -> tuple[str, ...] | None:
    """The confident values of ``obj`` in ``category`` (sorted, normalised), or ``None`` when none is
    confident or some value lies in the uncertain band."""
    values = view._memo.get("decided_values")
    if values is None:
        values = decided_values(view)
    return values.get((obj.id, category))


def _gives_away(obj: Object, ref_text: str, category: str) -> bool:
    """Whether a referring expression names an attribute of ``category`` ("the red cup" for a colour)."""
    words = set(ref_text.split())
    return any(a.category == category and set(normalize(a.name).split()) <= words for a in obj.attributes)


# =========================================================================== attribute of an object
class _AttributeOf(Program):
    family = "attributes"
    requires = frozenset({"objects", "attributes"})
    category: str = ""

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        out: list[tuple[Plan, Any]] = []
        decided_ = decided_values(view)
        c = self.category
        ids = [o.id for o in view.confident_objects if len(decided_.get((o.id, c), ())) == 1]
        for oid in hashed_order(view, self.id, ids):
            plan = {"object_id": oid}
            value = self.solve(view, plan)
            if value is not None:
                out.append((plan, value))
                if len(out) >= MAX_PLANS:
                    break
        return out

    def solve(self, view: GraphView, plan: Plan) -> Any:
        o = view.by_id.get(plan["object_id"])
        if o is None or not is_confident(view, o):
            return None
        values = decided(view, o, self.category)
        if values is None or len(values) != 1:
            return None
        ref = referent(view, o, allow_region=True)
        if ref is None or _gives_away(o, ref.text, self.category):
            return None
        return values[0]

    def template_ids(self, obj: Object, value: str) -> tuple[str, ...] | None:
        """The templates that read naturally for ``obj`` and ``value`` (``None``: all of them)."""
        return None

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        o = view.by_id[plan["object_id"]]
        ref = referent(view, o, allow_region=True)
        assert ref is not None
        t = self.pick_template(rng, self.template_ids(o, value))
        rationale = (f"{capitalize(located(ref.text, ref.strategy, box_text(view, o)))} has one confidently "
                     f"annotated {self.category}: {value}. So the answer is: {value}.")
        pool = (alternative_words if self.answer_prior else alternatives)(self.category, value, o)
        return Realized(t.id, t.text.format(obj=ref.text), value, rationale, pool, objects=list(ref.mentions))

    def same_option(self, a: str, b: str) -> bool:
        return same_look(a, b)


@register
class AttributeColor(_AttributeOf):
    """The colour of a named object (only a single confident colour; distractors are other colours)."""

    id = "single.attribute_color"
    category = "color"
    answer_type = "color"
    num_options = 4
    answer_prior = True
    templates = (
        Template("what_color", "What color is {obj}?"),
        Template("color_of", "What is the color of {obj}?"),
        Template("which_color", "Which color does {obj} have?"),
    )


@register
class AttributeMaterial(_AttributeOf):
    """The material of a named object (only a single confident material)."""

    id = "single.attribute_material"
    category = "material"
    answer_type = "material"
    num_options = 4
    answer_prior = True
    templates = (
        Template("made_of", "What is {obj} made of?"),
        Template("what_material", "What material is {obj}?"),
        Template("material_of", "What is the material of {obj}?"),
    )


@register
class AttributeSize(_AttributeOf):
    """The size of a named object as annotated (large/small, tall/short ...; distractor is the opposite)."""

    id = "single.attribute_size"
    category = "size"
    answer_type = "size"
    num_options = 2
    templates = (
        Template("what_size", "What size is {obj}?"),
        Template("describe_size", "How would you describe the size of {obj}?"),
    )


@register
class AttributeState(_AttributeOf):
    """The state of a named object (open/closed, parked, standing ...; a single confident state).

    The wording follows the kind: a thing has a state or condition ("What is the condition of the
    door?"), while a person's or an animal's pose or action is what it is doing ("What is the batter
    doing?"), and any other state of theirs ("wet") is described, never called a condition."""

    id = "single.attribute_state"
    category = "state"
    answer_type = "state"
    num_options = 2
    answer_prior = True
    templates = (
        Template("what_state", "What state is {obj} in?"),
        Template("describe_state", "How would you describe the state of {obj}?"),
        Template("condition", "What is the condition of {obj}?"),
        Template("doing", "What is {obj} doing?"),
        Template("doing_here", "What is {obj} doing in this picture?"),
    )

    def template_ids(self, obj: Object, value: str) -> tuple[str, ...] | None:
        if kind_noun(obj.label) == "object":
            return ("what_state", "describe_state", "condition")
        if value.endswith("ing"):  # a pose or an action: standing, crouching, swinging, sleeping ...
            return ("doing", "doing_here")
        return ("describe_state",)


# =========================================================================== counting by attribute
@register
class CountAttribute(Program):
    """How many objects of a category have an attribute ("How many red cups?"); all must be decided.

    Asked only when every object of the category has a decided value in the attribute's category
    (else the program abstains); zero answers use values of the same exclusive family."""

    id = "single.count_attribute"
    family = "attributes"
    requires = frozenset({"objects", "attributes"})
    answer_type = "count"
    answer_prior = True
    num_options = 4
    templates = (
        Template("how_many", "How many {phrase} are there in the image?"),
        Template("count_the", "Count the {phrase} in this picture."),
        Template("number_of", "What is the number of {phrase} in the image?"),
    )

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        dec = decided_values(view)
        by_category: dict[str, set[str]] = {}
        for o in view.confident_objects:
            for c in COUNT_CATEGORIES:
                by_category.setdefault(c, set()).update(dec.get((o.id, c), ()))
        plans: list[tuple[Plan, Any]] = []
        for label in hashed_order(view, self.id, safe_count_labels(view))[:MAX_POOL]:
            objs = view.by_label[label]
            for c in COUNT_CATEGORIES:
                values = [dec.get((o.id, c)) for o in objs]
                if not any(values):
                    continue
                if any(v is None for v in values):
                    view.abstain(self.id, "attribute not decided for every object of the category")
                    continue
                own = sorted({v for vs in values for v in vs})  # type: ignore[union-attr]
                # zero answers only from the families of the label's own values: "How many closed
                # doors?" for open doors, never "How many kneeling pages?"
                heads = _family_heads(c, tuple(own))
                salt = f"{self.id}|{label}|{c}"
                # a zero answer must be false for the eye too: no "How many red cups? 0" for an orange cup
                shown = own + sorted({normalize(a.name) for o in objs for a in o.attributes if a.category == c})
                seen = hashed_order(view, salt, sorted(v for v in by_category.get(c, set()) - set(own)
                                                       if near(v) & heads and looks_different(c, v, shown)))[:1]
                taken = frozenset().union(*(near(v) for v in own + seen))
                absent = hashed_order(view, salt, sorted(h for h in heads if taken.isdisjoint(near(h))
                                                         and looks_different(c, h, shown)))[:1]
                for value in own + seen + absent:
                    plan = {"label": label, "category": c, "attribute": value}
                    answer = self.solve(view, plan)
                    if answer is not None:
                        plans.append((plan, answer))
        return hashed_order(view, self.id + "|plans", plans,
                            key=lambda pv: f"{pv[0]['label']}|{pv[0]['category']}|{pv[0]['attribute']}")[:MAX_PLANS]

    def solve(self, view: GraphView, plan: Plan) -> Any:
        label, c, value = plan["label"], plan["category"], plan["attribute"]
        if label not in safe_count_labels(view) or c not in COUNT_CATEGORIES:
            return None
        n = 0
        close = near(value) - {value}
        for o in view.by_label[label]:
            values = decided(view, o, c)
            if values is None:
                return None
            if value in values:
                n += 1
            elif close & set(values):
                return None  # a "dark red" cup makes "how many red cups" ambiguous
        return n

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        label, c, attr = plan["label"], plan["category"], plan["attribute"]
        t = self.pick_template(rng)
        objs = sorted(view.by_label[label], key=lambda o: (o.box.x1, o.box.y1))
        each = [f"{box_text(view, o)} is {join(list(decided(view, o, c) or ()))}" for o in objs]
        rationale = (f"There {'is' if len(objs) == 1 else 'are'} {count_phrase(len(objs), label)}; by {c}: "
                     f"{'; '.join(each)}. {capitalize(count_phrase(value, label))} "
                     f"{'is' if value == 1 else 'are'} {attr}. So the answer is: {value}.")
        return Realized(t.id, t.text.format(phrase=f"{attr} {plural(label)}"), str(value), rationale,
                        count_pool(value), objects=[o.id for o in objs])


# =========================================================================== which object has it
@register
class WhichHasAttribute(Program):
    """Which object (by category) has a given attribute: unique among objects whose attribute is known.

    Every object holding the attribute (or a near-synonym, at any score) is confident, has it
    confidently and shares one label (the answer); distractor labels are labels whose objects all
    have a decided value in the category without it (at least two such labels are required, so the
    graph really covers the category)."""

    id = "single.which_has_attribute"
    family = "attributes"
    requires = frozenset({"objects", "attributes"})
    answer_type = "label"
    num_options = 4
    templates = (
        Template("which_object_is", "Which object in the image is {attr}?"),
        Template("what_is_the", "What is the {attr} object in this picture?"),
        Template("name_the_object", "Name the object in the image that is {attr}."),
    )

    def _parts(self, view: GraphView, plan: Plan) -> tuple[str, list[Object], list[str]] | None:
        """(answer label, holders, distractor labels) or ``None``."""
        value, c = plan["attribute"], plan["category"]
        if c not in COUNT_CATEGORIES:
            return None
        close = near(value)
        names = attribute_names(view)
        dec = decided_values(view)
        conf = view.config.confident_score
        holders = [o for o in view.objects if not close.isdisjoint(names[o.id])]
        if not holders or any(o.score < conf or value not in dec.get((o.id, c), ()) for o in holders):
            return None
        labels = {o.label for o in holders}
        if len(labels) != 1:
            return None
        label = labels.pop()
        held = {o.id for o in holders}
        if any(not looks_different(c, value, names[o.id]) for o in view.objects if o.id not in held):
            return None  # an orange ball makes "which object is red?" ambiguous for the eye
        others = [lbl for lbl, objs in view.by_label.items()
                  if lbl != label and not may_name_same(lbl, label)
                  and all(o.score >= conf and (o.id, c) in dec and o.id not in held for o in objs)]
        if len(others) < 2:
            return None
        return label, holders, others

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        values: set[tuple[str, str]] = set()
        for o in view.confident_objects:
            for c in COUNT_CATEGORIES:
                values.update((c, v) for v in decided(view, o, c) or ())
        plans = []
        for c, v in hashed_order(view, self.id, sorted(values), key=lambda cv: f"{cv[0]}|{cv[1]}"):
            plan = {"category": c, "attribute": v}
            parts = self._parts(view, plan)
            if parts is not None:
                plans.append((plan, parts[0]))
                if len(plans) >= MAX_PLANS:
                    break
        return plans

    def solve(self, view: GraphView, plan: Plan) -> Any:
        parts = self._parts(view, plan)
        return None if parts is None else parts[0]

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        parts = self._parts(view, plan)
        assert parts is not None
        label, holders, others = parts
        attr = plan["attribute"]
        t = self.pick_template(rng)
        where = ", ".join(box_text(view, o) for o in holders)
        rationale = (f"Among the objects whose {plan['category']} is known, only the {label} at {where} is {attr}; "
                     f"the {join([plural(x) for x in others[:4]])} are not. So the answer is: {label}.")
        return Realized(t.id, t.text.format(attr=attr), label, rationale, others, objects=[o.id for o in holders])


# =========================================================================== attributes at a region
@register
class AttributesAtRegion(Program):
    """List the confident attributes of the object whose box is given (normalised coordinates)."""

    id = "single.attributes_at_region"
    family = "attributes"
    requires = frozenset({"objects", "attributes"})
    answer_type = "attributes"
    num_options = 4
    answer_prior = True
    MAX_LISTINGS: ClassVar[int] = 256
    """Listings enumerated for the distractor pool (a seeded sample of this many when there are more)."""
    templates = (
        Template("what_attributes", "What attributes does the object at {box} have?"),
        Template("list_attributes", "List the attributes of the object in the region {box}."),
        Template("which_attributes", "Which attributes describe the object at {box}?"),
    )

    def _listing(self, view: GraphView, o: Object) -> list[tuple[str, str]]:
        """(category, value) pairs of every decided category, in category order."""
        out = []
        for c in ATTRIBUTE_CATEGORIES:
            out.extend((c, v) for v in decided(view, o, c) or ())
        return out

    def _isolated(self, view: GraphView, o: Object) -> bool:
        return max_iou(view)[o.id] < 0.5

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        plans = []
        for o in hashed_order(view, self.id, view.confident_objects, key=lambda o: o.id):
            plan = {"object_id": o.id}
            value = self.solve(view, plan)
            if value is not None:
                plans.append((plan, value))
                if len(plans) >= MAX_PLANS // 2:
                    break
        return plans

    def solve(self, view: GraphView, plan: Plan) -> Any:
        o = view.by_id.get(plan["object_id"])
        if o is None or not is_confident(view, o) or view.area_share(o) < view.config.min_box_area:
            return None
        listing = self._listing(view, o)
        if not listing or not self._isolated(view, o):
            return None
        return [v for _, v in listing]

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        o = view.by_id[plan["object_id"]]
        listing = self._listing(view, o)
        box = box_text(view, o)
        t = self.pick_template(rng)
        answer = ", ".join(value)
        rationale = (f"The region {box} is the box of the {o.label}. Its confidently annotated attributes are: "
                     f"{join([f'{v} ({c})' for c, v in listing])}. So the answer is: {answer}.")
        return Realized(t.id, t.text.format(box=box), answer, rationale, self._distractors(listing, o, rng))

    def prior_keys(self, text: str) -> tuple[str, ...]:
        return tuple(text.split(", "))  # the prior counts values: listings are too many to count whole

    def _distractors(self, listing: list[tuple[str, str]], o: Object, rng: np.random.Generator) -> list[str]:
        """The pool of listings the answer could have been: each value the object's own or one exclusive
        with it (any word of its group), the answer itself excluded; every one (or a seeded sample of
        :attr:`MAX_LISTINGS`) in a fixed order. Every distractor is false (it names at least one value the
        object is decided not to have), and the answer is just one member of the set the options come
        from, not the centre that each distractor changes one token of; the answer prior weighs each
        listing by its values, so no value is more often right than another when offered."""
        order = {c: i for i, c in enumerate(ATTRIBUTE_CATEGORIES)}
        cats = [c for c, _ in listing]
        choices = [[v, *alternative_words(c, v, o)] for c, v in listing]
        size = 1
        for ch in choices:
            size *= len(ch)
        if size - 1 < self.num_options - 1:
            return []
        if size <= self.MAX_LISTINGS:
            picks: Iterable[tuple[str, ...]] = itertools.product(*choices)
        else:
            picks = [tuple(ch[draw(rng, len(ch))] for ch in choices) for _ in range(self.MAX_LISTINGS)]
        answer = ", ".join(v for _, v in listing)
        out: dict[str, None] = {}
        for pick in picks:
            if len(set(pick)) < len(pick):
                continue
            pairs = sorted(zip(cats, pick), key=lambda cv: (order[cv[0]], cv[1]))
            text = ", ".join(x for _, x in pairs)
            if text != answer:
                out[text] = None
        return list(out)


__all__ = [
    "EXCLUSIVE",
    "AttributeColor",
    "AttributeMaterial",
    "AttributeSize",
    "AttributeState",
    "AttributesAtRegion",
    "CountAttribute",
    "Family",
    "WhichHasAttribute",
    "alternatives",
    "decided",
    "near",
]
