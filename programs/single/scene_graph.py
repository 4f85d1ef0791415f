"""Scene-graph questions: objects named by subgraph expressions, and a dense caption written from the graph.

A *subgraph expression* names an object by its label, a confident attribute and/or a confident
relation to an object whose label is unique ("the red cup", "the cup that is on the table", "the red
object that is on the table"). An expression is used only when it matches exactly one object in the
graph: attributes match at any score, relations match when any graph relation states or implies them
(see :mod:`programs.single.relations`), so an uncertain second match makes it ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from scene_graphs.model import Object

from ..base import GraphView, Plan, Program, Realized, Template, draw, register
from ..common import EXCLUSIVE, decided_values, hashed_order, looks_different, near, normalize, usable_attribute
from ..grammar import capitalize, count_phrase, join, with_article
from ..scenes import kind_noun
from .relations import (
    cached,
    confident_set,
    false_predicates,
    is_confident,
    norm_box,
    possibly_true,
    referent,
    relation_index,
    relation_sentence,
    unique_predicate,
    verb_parts,
)
from .text import readable_texts

MAX_ATTRIBUTES = 3
MAX_RELATIONS = 3
MAX_PLANS = 8
"""Candidate plans kept per program and image (objects and relations are tried in a per-image order)."""

ASKED_CATEGORIES = {"color": "color", "material": "material", "shape": "shape", "pattern": "pattern"}
"""Attribute categories asked about, with the word used in questions."""
VOCABULARY = {
    "color": ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "gray",
              "beige"),
    "material": ("wood", "metal", "plastic", "glass", "fabric", "leather", "stone", "paper", "ceramic", "rubber",
                 "concrete", "brick"),
    "shape": ("round", "square", "rectangular", "triangular", "oval", "cylindrical"),
    "pattern": ("striped", "checkered", "plain", "spotted", "floral", "dotted"),
}
"""Filler distractors per category (checked against the object's own attributes)."""
EQUIVALENT = {"grey": "gray", "wooden": "wood", "metallic": "metal", "glassy": "glass", "stony": "stone",
              "leathery": "leather", "circular": "round", "plaid": "checkered", "checked": "checkered",
              "polka dot": "dotted", "polka-dotted": "dotted", "spotty": "spotted", "stripes": "striped",
              "cloth": "fabric", "clothe": "fabric", "steel": "metal", "iron": "metal", "aluminum": "metal"}
"""Attribute names that say the same thing (a distractor must not be a synonym of the answer)."""


def _canon_attribute(name: str) -> str:
    n = name.strip().lower()
    return EQUIVALENT.get(n, n)


def _confident_attributes(view: GraphView, obj: Object) -> list[tuple[str, str]]:
    """(name, category) of confident attributes, best first, names unique: only decided values
    (:func:`programs.common.decided_values`: usable, no uncertain value beside them, never the colour of
    a multi-coloured object, which no single colour name describes)."""
    def build() -> list[tuple[str, str]]:
        c = view.config.confident_score
        decided = decided_values(view)
        out: list[tuple[str, str]] = []
        for a in sorted(obj.attributes, key=lambda a: (-a.score, a.name)):
            if (a.score >= c and a.name not in {n for n, _ in out} and usable_attribute(obj.label, a.category)
                    and normalize(a.name) in decided.get((obj.id, a.category), ())):
                out.append((a.name, a.category))
        return out[:MAX_ATTRIBUTES]
    return view.memo(("sg_attributes", obj.id), build)


@dataclass(frozen=True)
class Expression:
    """A unique description of one object from a small subgraph around it."""

    text: str
    attribute: str | None
    category: str | None
    mentions: tuple[str, ...]
    compound: bool
    """Uses an attribute or a relation (not the bare label)."""


def _matches(view: GraphView, label: str | None, attribute: str | None, relation: tuple[str, str] | None
             ) -> list[str]:
    """Ids of visible objects that the description may fit (label, attribute at any score, relation
    stated or implied at any score)."""
    out = []
    pool = view.by_label.get(label, ()) if label is not None else view.objects
    names = _raw_names(view)
    for o in pool:
        if attribute is not None and attribute not in names[o.id]:
            continue
        if relation is not None and (o.id == relation[1] or not possibly_true(view, o.id, relation[0], relation[1])):
            continue
        out.append(o.id)
    return out


def _raw_names(view: GraphView) -> dict[str, frozenset[str]]:
    """Object id -> its attribute names as written, at any score."""
    return view.memo("raw_attribute_names", lambda: {o.id: frozenset(o.attribute_names()) for o in view.objects})


def _anchor_relations(view: GraphView, obj: Object) -> list[tuple[str, Object]]:
    """Confident relations from ``obj`` to confident objects with a unique label (other than obj's)."""
    by_subject = cached(view, "confident_by_subject", lambda: _group_by_subject(relation_index(view).confident))
    out = []
    for p, o in by_subject.get(obj.id, ()):
        target = view.by_id[o]
        if target.label != obj.label and view.is_unique_label(target.label) and is_confident(view, target):
            out.append((p, target))
    return out[:MAX_RELATIONS]


def _group_by_subject(triples: tuple[tuple[str, str, str], ...]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for s, p, o in triples:
        out.setdefault(s, []).append((p, o))
    return out


def _build_expressions(view: GraphView, obj: Object) -> tuple[Expression, ...]:
    out: list[Expression] = []
    label = obj.label
    attrs = _confident_attributes(view, obj)
    rels = _anchor_relations(view, obj)
    if view.is_unique_label(label):
        out.append(Expression(f"the {label}", None, None, (), False))
    for name, cat in attrs:
        if _matches(view, label, name, None) == [obj.id]:
            out.append(Expression(f"the {name} {label}", name, cat, (), True))
    for p, target in rels:
        finite = verb_parts(p)[2]
        if _matches(view, label, None, (p, target.id)) == [obj.id]:
            out.append(Expression(f"the {label} that {finite} the {target.label}", None, None, (target.id,), True))
        for name, cat in attrs:
            if _matches(view, label, name, (p, target.id)) == [obj.id]:
                out.append(Expression(f"the {name} {label} that {finite} the {target.label}", name, cat,
                                      (target.id,), True))
            if _matches(view, None, name, (p, target.id)) == [obj.id]:
                out.append(Expression(f"the {name} {kind_noun(label)} that {finite} the {target.label}", name, cat,
                                      (target.id,), True))
    return tuple(out)


def expressions(view: GraphView, obj: Object) -> tuple[Expression, ...]:
    """Every subgraph expression naming ``obj`` uniquely (the bare label first when it is unique)."""
    return cached(view, ("expressions", obj.id), lambda: _build_expressions(view, obj))


def usable(view: GraphView, obj: Object, avoid: str | None = None, category: str | None = None
           ) -> list[Expression]:
    """Expressions of ``obj`` not mentioning ``avoid`` and not using an attribute of ``category``."""
    return [e for e in expressions(view, obj)
            if (avoid is None or avoid not in e.mentions) and (category is None or e.category != category)]


_FUNCTION_WORDS = frozenset({"a", "an", "the", "is", "are", "does", "do", "of", "to", "that", "in", "on", "at",
                             "by", "with", "for"})


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    for suffix in ("ing", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def leaks(text: str, answer: str) -> bool:
    """Whether ``text`` contains a content word of ``answer`` (by stem: "holds" leaks "holding"); an answer
    made of function words only ("on") leaks through any of them."""
    words = {_stem(w) for w in text.lower().split()}
    said = answer.lower().split()
    content = [w for w in said if w not in _FUNCTION_WORDS] or said
    return any(_stem(w) in words for w in content)


def pick_expression(exprs: list[Expression], rng: np.random.Generator) -> Expression:
    """A compound expression when there is one (drawn with ``rng``), else the bare label."""
    compound = [e for e in exprs if e.compound]
    pool = compound or exprs
    return pool[draw(rng, len(pool))]


# ------------------------------------------------------------------------------- programs
def _refexp_match(view: GraphView, attribute: str, predicate: str, anchor_id: str) -> str | None:
    anchor = view.by_id.get(anchor_id)
    if anchor is None or not is_confident(view, anchor) or not view.is_unique_label(anchor.label):
        return None
    found = _matches(view, None, attribute, (predicate, anchor_id))
    if len(found) != 1:
        return None
    obj = view.by_id[found[0]]
    if not is_confident(view, obj) or attribute not in {n for n, _ in _confident_attributes(view, obj)}:
        return None
    if (obj.id, predicate, anchor_id) not in confident_set(view):
        return None
    return obj.id


@register
class RefexpObject(Program):
    """What is the <attribute> object that is <relation> the <unique object>: answer its label."""

    id = "single.refexp_object"
    family = "scene_graph"
    requires = frozenset({"objects", "attributes", "relations"})
    answer_type = "label"
    templates = (
        # "one", never "object" or "thing": the answer may be a person ("the swinging thing" reads wrong),
        # and a noun by kind would tell the answer's kind without the image
        Template("what_is_the", "What is the {attr} one that {finite} the {anchor}?"),
        Template("name_the_thing", "Name the {attr} one that {finite} the {anchor}."),
        Template("which_object", "Which {attr} one {finite} the {anchor}?"),
    )

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        plans: list[tuple[Plan, Any]] = []
        seen: set[tuple[str, str, str]] = set()
        triples = hashed_order(view, self.id, relation_index(view).confident, key=lambda t: "|".join(t))
        for s, p, o in triples:
            anchor = view.by_id[o]
            if not view.is_unique_label(anchor.label) or anchor.label == view.by_id[s].label:
                continue
            for name, _ in _confident_attributes(view, view.by_id[s]):
                if (name, p, o) in seen:
                    continue
                seen.add((name, p, o))
                if _refexp_match(view, name, p, o) == s:
                    plans.append(({"attribute": name, "predicate": p, "anchor_id": o}, view.by_id[s].label))
            if len(plans) >= MAX_PLANS:
                break
        return plans

    def solve(self, view: GraphView, plan: Plan) -> Any:
        found = _refexp_match(view, plan["attribute"], plan["predicate"], plan["anchor_id"])
        return None if found is None else view.by_id[found].label

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        anchor = view.by_id[plan["anchor_id"]]
        obj_id = _refexp_match(view, plan["attribute"], plan["predicate"], plan["anchor_id"])
        assert obj_id is not None
        obj = view.by_id[obj_id]
        finite = verb_parts(plan["predicate"])[2]
        t = self.pick_template(rng)
        question = t.text.format(attr=plan["attribute"], finite=finite, anchor=anchor.label)
        rationale = (f"The {anchor.label} is at {norm_box(view, anchor)}. The only {plan['attribute']} object that "
                     f"{finite} the {anchor.label} is the {obj.label} at {norm_box(view, obj)}. "
                     f"So the answer is: {obj.label}.")
        distractors = [label for label in view.by_label if label != obj.label]
        return Realized(t.id, question, obj.label, rationale, distractors, objects=[obj.id])


@register
class SubgraphRelation(Program):
    """How two objects named by subgraph expressions are related (the one predicate between them)."""

    id = "single.subgraph_relation"
    family = "scene_graph"
    requires = frozenset({"objects", "relations"})
    answer_type = "predicate"
    answer_prior = True
    num_options = 3
    templates = (
        Template("relation_to", "What relation does {subj} have to {obj}?"),
        Template("connected", "In what way is {subj} connected to {obj}?"),
        Template("which_relation", "{Subj} stands in which relation to {obj}?"),
    )

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        plans = []
        pairs = [(s, o) for s, o in relation_index(view).pair_predicates if unique_predicate(view, s, o) is not None]
        for s, o in hashed_order(view, self.id, pairs, key=lambda so: f"{so[0]}|{so[1]}"):
            predicate = unique_predicate(view, s, o)
            if predicate is not None and self._nameable(view, s, o, predicate):
                plans.append(({"subject_id": s, "object_id": o}, predicate))
                if len(plans) >= MAX_PLANS:
                    break
        return plans

    @staticmethod
    def _names(view: GraphView, obj: str, other: str, predicate: str) -> list[Expression]:
        """Expressions of ``obj`` not mentioning ``other`` nor any word of the answer ``predicate``."""
        return [e for e in usable(view, view.by_id[obj], avoid=other) if not leaks(e.text, predicate)]

    def _nameable(self, view: GraphView, s: str, o: str, predicate: str) -> bool:
        es, eo = self._names(view, s, o, predicate), self._names(view, o, s, predicate)
        return bool(es and eo and any(e.compound for e in es + eo))

    def solve(self, view: GraphView, plan: Plan) -> Any:
        s, o = plan["subject_id"], plan["object_id"]
        if s not in view.by_id or o not in view.by_id:
            return None
        predicate = unique_predicate(view, s, o)
        if predicate is None or not self._nameable(view, s, o, predicate):
            return None
        return predicate

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        s, o = view.by_id[plan["subject_id"]], view.by_id[plan["object_id"]]
        es = pick_expression(self._names(view, s.id, o.id, value), rng)
        eo = pick_expression(self._names(view, o.id, s.id, value), rng)
        t = self.pick_template(rng)
        question = t.text.format(subj=es.text, Subj=capitalize(es.text), obj=eo.text)
        rationale = (f"{capitalize(es.text)} is the {s.label} at {norm_box(view, s)}; {eo.text} is the {o.label} "
                     f"at {norm_box(view, o)}. The only relation from the first to the second is \"{value}\": "
                     f"{relation_sentence(es.text, value, eo.text)}. So the answer is: {value}.")
        return Realized(t.id, question, value, rationale, false_predicates(view, s.id, o.id, value),
                        objects=list(es.mentions + eo.mentions))


def _only_attribute(view: GraphView, obj: Object, category: str) -> str | None:
    """The one attribute of ``category`` the object has (at any score), if it is confident."""
    if not usable_attribute(obj.label, category):
        return None
    names = {a.name for a in obj.attributes if a.category == category}
    if len(names) != 1:
        return None
    name = names.pop()
    best = max(a.score for a in obj.attributes if a.name == name and a.category == category)
    return name if best >= view.config.confident_score else None


@register
class SubgraphAttribute(Program):
    """The colour / material / shape / pattern of an object named by a subgraph expression."""

    id = "single.subgraph_attribute"
    family = "scene_graph"
    requires = frozenset({"objects", "attributes"})
    answer_type = "attribute"
    answer_prior = True
    templates = (
        Template("what_category", "What {category} is {obj}?"),
        Template("category_of", "What is the {category} of {obj}?"),
        Template("tell_category", "Tell me the {category} of {obj}."),
    )

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        plans = []
        for o in hashed_order(view, self.id, view.confident_objects, key=lambda o: o.id):
            for category in ASKED_CATEGORIES:
                plan = {"object_id": o.id, "category": category}
                value = self.solve(view, plan)
                if value is not None:
                    plans.append((plan, value))
            if len(plans) >= MAX_PLANS:
                break
        return plans

    def solve(self, view: GraphView, plan: Plan) -> Any:
        obj = view.by_id.get(plan["object_id"])
        category = plan["category"]
        if obj is None or not is_confident(view, obj) or category not in ASKED_CATEGORIES:
            return None
        value = _only_attribute(view, obj, category)
        if value is None or not any(e.compound for e in usable(view, obj, category=category)):
            return None
        return value

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        obj = view.by_id[plan["object_id"]]
        category = plan["category"]
        expr = pick_expression([e for e in usable(view, obj, category=category) if e.compound], rng)
        t = self.pick_template(rng)
        question = t.text.format(category=ASKED_CATEGORIES[category], obj=expr.text)
        rationale = (f"{capitalize(expr.text)} is the {obj.label} at {norm_box(view, obj)}. Its "
                     f"{ASKED_CATEGORIES[category]} is {value}. So the answer is: {value}.")
        own = {_canon_attribute(n) for n in obj.attribute_names()}
        own_words = {w for n in obj.attribute_names() for w in n.lower().split()}
        pool = sorted({a.name for o in view.objects for a in o.attributes if a.category == category})
        own_near = frozenset().union(*(near(n) for n in obj.attribute_names()))
        distractors: list[str] = []
        names = obj.attribute_names()
        # the pool: the graph's values, the filler vocabulary and every word of the category's exclusive
        # groups (near-synonyms too: the answer prior picks "wooden" or "wood" as often as each is an answer)
        words = [w for family in EXCLUSIVE.get(category, ()) for g in family for w in g]
        for name in [*pool, *VOCABULARY.get(category, ()), *words]:
            if _canon_attribute(name) in own or set(name.lower().split()) & own_words or near(name) & own_near:
                continue  # the object's own value, or one that may describe the same look ("oval" for round)
            if not looks_different(category, name, names):
                continue  # a neighbour for the eye (orange for a red object)
            distractors.append(name)  # near-synonyms of each other stay: same_option never offers two
        return Realized(t.id, question, value, rationale, list(dict.fromkeys(distractors)),
                        objects=list(expr.mentions))

    def same_option(self, a: str, b: str) -> bool:
        return _canon_attribute(a) == _canon_attribute(b) or bool(near(a) & near(b))


# ------------------------------------------------------------------------------- dense caption
MAX_COUNTS = 8
MAX_ATTRIBUTE_SENTENCES = 5
MAX_RELATION_SENTENCES = 6
MAX_TEXTS = 3


def caption_facts(view: GraphView) -> dict[str, Any] | None:
    """The graph facts a caption states (JSON data): confident counts, attributes, relations, text."""
    counts = sorted(((label, len(view.by_label[label])) for label in view.countable_labels),
                    key=lambda t: (-t[1], t[0]))[:MAX_COUNTS]
    by_area = sorted((o for o in view.objects if is_confident(view, o)), key=lambda o: (-o.box.area, o.id))
    attributes = []
    for o in by_area:
        ref = referent(view, o, allow_region=False)
        if ref is None:
            continue
        names = [n for n, _ in _confident_attributes(view, o) if n not in ref.text.split()]
        if names:
            attributes.append([o.id, names])
        if len(attributes) >= MAX_ATTRIBUTE_SENTENCES:
            break
    relations = []
    area_rank = {o.id: i for i, o in enumerate(by_area)}
    described: set[frozenset[str]] = set()
    for s, p, o in sorted(relation_index(view).confident, key=lambda t: (area_rank.get(t[0], 0), t)):
        if frozenset((s, o)) in described:
            continue  # one sentence per pair: "A is left of B" already says "B is right of A"
        rs, ro = referent(view, view.by_id[s], allow_region=False), referent(view, view.by_id[o], allow_region=False)
        if rs is None or ro is None or o in rs.mentions or s in ro.mentions:
            continue
        described.add(frozenset((s, o)))
        relations.append([s, p, o])
        if len(relations) >= MAX_RELATION_SENTENCES:
            break
    texts = readable_texts(view)[:MAX_TEXTS] if "text" in view.graph.fields else []
    if not (counts or attributes or relations or texts):
        return None
    return {"counts": [list(t) for t in counts], "attributes": attributes, "relations": relations, "text": texts}


@register
class DenseCaption(Program):
    """A paragraph describing the image, written only from confident graph facts (free-form only)."""

    id = "single.dense_caption"
    family = "scene_graph"
    requires = frozenset({"objects"})
    answer_type = "caption"
    num_options = 0
    templates = (
        Template("describe_detail", "Describe the image in detail."),
        Template("write_paragraph", "Write a paragraph describing this picture."),
        Template("what_can_you_see", "What can you see in this image? Give a detailed description."),
    )

    def candidates(self, view: GraphView) -> list[Plan]:
        return [{"style": "paragraph"}]

    def solve(self, view: GraphView, plan: Plan) -> Any:
        return caption_facts(view)

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        t = self.pick_template(rng)
        sentences: list[str] = []
        if value["counts"]:
            things = [with_article(label) if n == 1 else count_phrase(n, label) for label, n in value["counts"]]
            sentences.append(f"The image shows {join(things)}.")
        for oid, names in value["attributes"]:
            ref = referent(view, view.by_id[oid], allow_region=False)
            sentences.append(f"{capitalize(ref.text)} is {join(names)}.")  # type: ignore[union-attr]
        for s, p, o in value["relations"]:
            rs = referent(view, view.by_id[s], allow_region=False)
            ro = referent(view, view.by_id[o], allow_region=False)
            sentences.append(relation_sentence(rs.text, p, ro.text) + ".")  # type: ignore[union-attr]
        if value["text"]:
            quoted = join([f"\"{x}\"" for x in value["text"]])
            sentences.append(f"Text reading {quoted} is visible.")
        answer = " ".join(sentences)
        steps = []
        if value["counts"]:
            steps.append("counted the confidently detected objects per category ("
                         + ", ".join(f"{label}: {n}" for label, n in value["counts"]) + ")")
        if value["attributes"]:
            steps.append(f"listed the confident attributes of {count_phrase(len(value['attributes']), 'object')}")
        if value["relations"]:
            steps.append(f"listed {count_phrase(len(value['relations']), 'confident relation')}")
        if value["text"]:
            steps.append(f"quoted {count_phrase(len(value['text']), 'well-read text')}")
        rationale = f"From the scene graph I {join(steps)}. So the description is: {answer}"
        mentioned = [oid for oid, _ in value["attributes"]] + [x for s, _, o in value["relations"] for x in (s, o)]
        return Realized(t.id, t.text, answer, rationale, [], objects=list(dict.fromkeys(mentioned)))
