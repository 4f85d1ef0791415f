"""Set counts (CLEVR's and/or counts, TaskMeAnything's attribute-only counts): how many objects pass a
union or an intersection of filters, or have an attribute among a few named categories.

A *filter* is a label (or none: any object) and zero or more attribute values (``{"label": "cup",
"attrs": [["color", "red"]]}`` is "red cups"). Every object of the filters' domain must be decided for
every filter, in three-valued logic (:func:`membership`): an object *has* a value when the value is
among its decided values (:func:`programs.common.decided_values`), *lacks* it when its decided values
lie in another group of the value's exclusive family, no name of the object at any score is near the
value, and (colours) it looks different from the value; otherwise it is unknown and the count is not
given (the program abstains and counts it). So "How many red cups?" is not answered beside an orange
cup, a "dark red" cup or a cup whose colour is "glittery".

The domain of a count is

* the objects of the filters' labels, each of them a safe label to count
  (:func:`programs.single.objects.safe_count_labels`: every object confident, no faint unreported
  candidate, no other label that may name the same thing), or
* every object of the image, when a filter has no label ("How many objects are red or cups?"), and
  then only in a :func:`complete` graph: a detector's search is recorded, it saw no faint candidate of
  anything and every object is confident; a graph without evidence (imports) may miss any object, so
  "every red object" is never counted there.

Zero answers come from filters whose objects are present and decided against them (the filters'
labels are always present), with values other objects of the image have (:func:`foil`), never from a
claim that a label is absent; an image offers at most as many zero answers as others
(:func:`few_zeros`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from scene_graphs.model import Object
from scene_graphs.vocab import normalize

from ..base import GraphView, Plan, Program, Realized, Template, register
from ..common import EXCLUSIVE, box_text, decided_values, hashed_order, looks_different, near
from ..grammar import join, plural
from .objects import MAX_PLANS, MAX_POOL, labels_compatible, safe_count_labels

COUNT_CATEGORIES = ("color", "material", "state", "shape", "pattern")
"""Categories a set count filters by (size is relative to the object's kind)."""
ADJECTIVE_ORDER = {"state": 0, "shape": 1, "pattern": 2, "color": 3, "material": 4}
"""English order of adjectives before a noun: "open round striped red wooden boxes"."""
KEEP: dict[int, float] = {0: 0.5, 1: 0.5, 2: 0.8}
"""Rejection rule (see :meth:`programs.base.Program.answer_weight`): small counts are the most common."""
MAX_GROUPS = 6
"""Groups of 2-3 categories an attribute is counted over per image (each costs a count per value)."""


# =========================================================================== three-valued facts
@lru_cache(maxsize=16384)
def exclusive(category: str, a: str, b: str) -> bool:
    """Whether values ``a`` and ``b`` lie in different groups of one exclusive family of ``category``."""
    for family in EXCLUSIVE.get(category, ()):
        ga = [g for g in family if a in g]
        gb = [g for g in family if b in g]
        if ga and gb and not (set(ga) & set(gb)) and not any(b in g for g in ga) and not any(a in g for g in gb):
            return True
    return False


def _all_names(obj: Object) -> frozenset[str]:
    return frozenset(normalize(a.name) for a in obj.attributes)


def membership(view: GraphView, obj: Object, category: str, value: str) -> bool | None:
    """``True`` when ``obj`` surely has ``value`` in ``category``, ``False`` when it surely lacks it,
    ``None`` when the graph cannot tell (see module docstring)."""
    values = decided_values(view).get((obj.id, category))
    if values is None:
        return None
    if value in values:
        return True
    names = _all_names(obj) | set(values)
    if near(value) & names:
        return None
    if not any(exclusive(category, value, v) for v in values):
        return None
    if not looks_different(category, value, names):
        return None
    return False


def _and(values: Sequence[bool | None]) -> bool | None:
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _or(values: Sequence[bool | None]) -> bool | None:
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


def matches(view: GraphView, obj: Object, flt: Plan) -> bool | None:
    """Whether ``obj`` passes a filter (three-valued)."""
    label = flt.get("label")
    if label is not None and obj.label != label:
        return False
    return _and([membership(view, obj, c, v) for c, v in flt.get("attrs", ())])


def complete(view: GraphView) -> bool:
    """Whether the graph can back a count over every object of the image: a detector's search is
    recorded, no annotator saw a faint unreported candidate of anything, and every visible object is
    confident."""
    def build() -> bool:
        g = view.graph
        if not g.evidence or any(s.count_below for s in g.evidence):
            return False
        return all(o.score >= view.config.confident_score for o in view.objects)
    return view.memo("set_counts:complete", build)


def domain(view: GraphView, filters: Sequence[Plan]) -> tuple[Object, ...] | None:
    """The objects a count over ``filters`` ranges over, or ``None`` when the graph cannot back it."""
    labels = [f.get("label") for f in filters]
    if any(lbl is None for lbl in labels):
        return view.objects if complete(view) else None
    safe = safe_count_labels(view)
    if any(lbl not in safe for lbl in labels) or not labels_compatible(sorted(set(labels))):  # type: ignore[arg-type]
        return None
    return tuple(o for lbl in sorted(set(labels)) for o in view.by_label[lbl])  # type: ignore[index]


def well_formed(flt: Any) -> bool:
    """A filter as plans hold it: a label or ``None``, and attribute pairs of distinct count categories."""
    if not isinstance(flt, dict) or set(flt) != {"label", "attrs"}:
        return False
    attrs = flt["attrs"]
    if not isinstance(attrs, list) or not all(isinstance(a, list) and len(a) == 2 for a in attrs):
        return False
    cats = [c for c, _ in attrs]
    if any(c not in COUNT_CATEGORIES for c in cats) or len(set(cats)) != len(cats):
        return False
    return (flt["label"] is None and bool(attrs)) or isinstance(flt["label"], str)


def count(view: GraphView, filters: Sequence[Plan], combine: str) -> tuple[int, list[Object]] | None:
    """(how many objects pass the ``any``/``all`` combination of ``filters``, those objects), or ``None``
    when some object of the domain cannot be decided."""
    objs = domain(view, filters)
    if objs is None:
        return None
    op = _or if combine == "any" else _and
    passing = []
    for o in objs:
        m = op([matches(view, o, f) for f in filters])
        if m is None:
            return None
        if m:
            passing.append(o)
    return len(passing), passing


def phrase(flt: Plan) -> str:
    """A filter in words: "red" (no label), "cups", "red plastic cups"."""
    adjectives = [v for c, v in sorted(flt["attrs"], key=lambda cv: (ADJECTIVE_ORDER.get(cv[0], 9), cv[1]))]
    if flt["label"] is None:
        return " ".join(adjectives)
    return " ".join([*adjectives, plural(flt["label"])])


def label_values(view: GraphView, labels: Sequence[str]) -> dict[str, list[str]]:
    """Category -> sorted decided values of the objects of ``labels``."""
    dec = decided_values(view)
    out: dict[str, set[str]] = {}
    for lbl in labels:
        for o in view.by_label.get(lbl, ()):
            for c in COUNT_CATEGORIES:
                out.setdefault(c, set()).update(dec.get((o.id, c), ()))
    return {c: sorted(v) for c, v in out.items() if v}


def foil(view: GraphView, salt: str, category: str, values: Sequence[str]) -> list[str]:
    """One value of ``category`` that some other object of the image has (decided), in the family of
    ``values`` but near none of them and looking different from them: a value whose count may be zero
    and that is natural to ask about here ("How many cups are brown?" beside a brown table, never "How
    many cups are stone?"). Chosen per image; empty when there is none."""
    dec = decided_values(view)
    taken = frozenset().union(*(near(v) for v in values)) if values else frozenset()
    seen = sorted({v for o in view.objects for v in dec.get((o.id, category), ())})
    pool = [v for v in seen if not near(v) & taken and any(exclusive(category, v, w) for w in values)
            and looks_different(category, v, values)]
    return hashed_order(view, salt, pool)[:1]


def few_zeros(solved: list[tuple[Plan, Any]]) -> list[tuple[Plan, Any]]:
    """``solved`` (in its order) with at most as many zero answers as other answers (none in an image
    with only zeros): a filter nothing passes is easy to make up, so without this cap most images would
    ask mostly for zeros and "0" would be the usual answer of the run."""
    room = sum(1 for _, v in solved if v != 0)
    out = []
    for plan, value in solved:
        if value == 0:
            if room == 0:
                continue
            room -= 1
        out.append((plan, value))
    return out


def _rationale(view: GraphView, objs: Sequence[Object], value: int, what: str) -> str:
    where = ", ".join(f"the {o.label} at {box_text(view, o)}" for o in sorted(objs, key=lambda o: (o.box.x1, o.box.y1)))
    found = f": {where}" if objs else ""
    return f"Checking every object against {what}, {value} of them match{found}. So the answer is: {value}."


class _SetCount(Program):
    """Shared by the set-count programs: plans hold ``filters``; the answer is :func:`count`."""

    family = "counting"
    requires = frozenset({"objects", "attributes"})
    answer_type = "count"
    num_options = 0
    """Free-form only: a count's options (a run of integers around the answer) let a text-only solver learn
    which counts are usually right (``tests/test_blind_solvers.py``: 0.51-0.67 where chance is 0.25 on
    these programs), until distractors come from a run-level prior of answers."""
    combine: ClassVar[str] = "any"
    n_filters: ClassVar[int] = 2

    def answer_weight(self, value: Any) -> float:
        return KEEP.get(value, 1.0)

    def plans_for(self, view: GraphView) -> list[Plan]:
        raise NotImplementedError

    def valid(self, plan: Plan) -> bool:
        filters = plan.get("filters")
        return (isinstance(filters, list) and len(filters) == self.n_filters and all(map(well_formed, filters))
                and len({repr(f) for f in filters}) == len(filters))

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        out: list[tuple[Plan, Any]] = []
        unknown = 0
        for plan in self.plans_for(view):
            value = self.solve(view, plan)
            if value is None:
                unknown += 1
            else:
                out.append((plan, value))
        if unknown:
            view.abstain(self.id, "some object not decided for the filters (count unknowable)", unknown)
        return few_zeros(hashed_order(view, self.id + "|plans", out, key=lambda pv: repr(pv[0])))[:MAX_PLANS]

    def solve(self, view: GraphView, plan: Plan) -> Any:
        if not self.valid(plan):
            return None
        got = count(view, plan["filters"], self.combine)
        return None if got is None else got[0]

    def describe(self, plan: Plan) -> str:
        raise NotImplementedError

    def question(self, plan: Plan, template: Template) -> str:
        raise NotImplementedError

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        got = count(view, plan["filters"], self.combine)
        assert got is not None
        t = self.pick_template(rng)
        rationale = _rationale(view, got[1], value, self.describe(plan))
        return Realized(t.id, self.question(plan, t), str(value), rationale, objects=[o.id for o in got[1]])


def _flt(label: str | None, *attrs: tuple[str, str]) -> Plan:
    return {"label": label, "attrs": [list(a) for a in attrs]}


@register
class CountUnion(_SetCount):
    """How many objects pass either of two filters ("How many objects are red or cups?", "... red cups or
    plates?", "... cups or plates?", "How many cups are red or blue?" as "red cups or blue cups")."""

    id = "single.count_union"
    combine = "any"
    templates = (
        Template("how_many_or", "How many objects are {a} or {b}?"),
        Template("count_or", "Count the things in the image that are {a} or {b}."),
        Template("number_either", "What is the number of objects that are either {a} or {b}?"),
    )

    def plans_for(self, view: GraphView) -> list[Plan]:
        labels = hashed_order(view, self.id, safe_count_labels(view))[:MAX_POOL]
        plans: list[Plan] = []
        for a, b in itertools.combinations(labels, 2):
            plans.append({"filters": [_flt(a), _flt(b)]})
            for c, values in label_values(view, [a]).items():
                for v in values[:2]:
                    plans.append({"filters": [_flt(a, (c, v)), _flt(b)]})
        for a in labels:
            for c, values in label_values(view, [a]).items():
                pool = values + foil(view, f"{self.id}|{a}|{c}", c, values)
                for v, w in itertools.combinations(pool[:3], 2):
                    if exclusive(c, v, w):
                        plans.append({"filters": [_flt(a, (c, v)), _flt(a, (c, w))]})
        if complete(view):
            everything = label_values(view, sorted(view.by_label))
            for c, values in sorted(everything.items()):
                for v in values[:2]:
                    for b in labels[:2]:
                        plans.append({"filters": [_flt(None, (c, v)), _flt(b)]})
        # the two filters in either order: which one is named first says nothing
        return [p if hashed_order(view, repr(p), [0, 1])[0] == 0 else {"filters": p["filters"][::-1]}
                for p in plans]

    def describe(self, plan: Plan) -> str:
        return join([f'"{phrase(f)}"' for f in plan["filters"]], "or")

    def question(self, plan: Plan, template: Template) -> str:
        a, b = (phrase(f) for f in plan["filters"])
        return template.text.format(a=a, b=b)


@register
class CountBoth(_SetCount):
    """How many objects (of a category, or in a complete graph any) have two attributes at once
    ("How many cups are both red and plastic?", "How many objects are both red and metal?")."""

    id = "single.count_both"
    combine = "all"
    templates = (
        Template("how_many_both", "How many {things} are both {a} and {b}?"),
        Template("count_both", "Count the {things} that are {a} and also {b}."),
        Template("number_both", "What is the number of {things} that are both {a} and {b}?"),
    )

    def plans_for(self, view: GraphView) -> list[Plan]:
        labels: list[str | None] = list(hashed_order(view, self.id, safe_count_labels(view))[:MAX_POOL])
        if complete(view):
            labels.append(None)
        plans: list[Plan] = []
        for lbl in labels:
            values = label_values(view, [lbl] if lbl is not None else sorted(view.by_label))
            for c1, c2 in itertools.combinations(sorted(values), 2):
                for v1 in values[c1][:2]:
                    for v2 in values[c2][:2]:
                        plans.append({"filters": [_flt(lbl, (c1, v1)), _flt(lbl, (c2, v2))]})
                # one value no object of the label has, for a count that may be zero (once per label)
                for v1 in foil(view, f"{self.id}|{lbl}|{c1}", c1, values[c1])[:1] if c1 == min(values) else ():
                    plans.append({"filters": [_flt(lbl, (c1, v1)), _flt(lbl, (c2, values[c2][0]))]})
        return plans

    def valid(self, plan: Plan) -> bool:
        if not super().valid(plan):
            return False
        a, b = plan["filters"]
        return (a["label"] == b["label"] and len(a["attrs"]) == len(b["attrs"]) == 1
                and a["attrs"][0][0] != b["attrs"][0][0])

    def describe(self, plan: Plan) -> str:
        a, b = plan["filters"]
        return f"\"{a['attrs'][0][1]}\" and \"{b['attrs'][0][1]}\""

    def question(self, plan: Plan, template: Template) -> str:
        a, b = plan["filters"]
        things = "objects" if a["label"] is None else plural(a["label"])
        return template.text.format(things=things, a=a["attrs"][0][1], b=b["attrs"][0][1])


@register
class CountByAttribute(_SetCount):
    """How many objects have an attribute, over two or three named categories ("How many cups and plates
    are red?") or, in a complete graph, over the whole image ("How many objects are red?")."""

    id = "single.count_by_attribute"
    combine = "any"
    n_filters = 0  # checked in valid()
    templates = (
        Template("how_many_are", "How many {things} are {attr}?"),
        Template("count_that_are", "Count the {things} in the image that are {attr}."),
        Template("number_that_are", "What is the number of {things} that are {attr}?"),
    )

    def valid(self, plan: Plan) -> bool:
        filters = plan.get("filters")
        if not isinstance(filters, list) or not all(map(well_formed, filters)) or not filters:
            return False
        labels = [f["label"] for f in filters]
        attrs = {repr(f["attrs"]) for f in filters}
        if len(attrs) != 1 or len(filters[0]["attrs"]) != 1:
            return False
        if labels == [None]:
            return True
        return 2 <= len(labels) <= 3 and None not in labels and len(set(labels)) == len(labels)

    def plans_for(self, view: GraphView) -> list[Plan]:
        labels = hashed_order(view, self.id, safe_count_labels(view))[:MAX_POOL]
        plans: list[Plan] = []
        groups = [list(g) for k in (2, 3) for g in itertools.combinations(labels, k)][:MAX_GROUPS]
        if complete(view):
            groups.append([])
        for group in groups:
            values = label_values(view, group or sorted(view.by_label))
            for c, vs in sorted(values.items()):
                for v in vs[:2] + foil(view, f"{self.id}|{'|'.join(group)}|{c}", c, vs):
                    if group:
                        plans.append({"filters": [_flt(lbl, (c, v)) for lbl in sorted(group)]})
                    else:
                        plans.append({"filters": [_flt(None, (c, v))]})
        return plans

    def describe(self, plan: Plan) -> str:
        return f"\"{plan['filters'][0]['attrs'][0][1]}\""

    def question(self, plan: Plan, template: Template) -> str:
        labels = [f["label"] for f in plan["filters"]]
        things = "objects" if labels == [None] else join([plural(lbl) for lbl in labels])
        return template.text.format(things=things, attr=plan["filters"][0]["attrs"][0][1])
