"""Relations: how two objects are related, which object stands in a relation, yes/no checks.

Truth comes from the graph's relations. A relation is *stated* only when it is confident
(score >= ``confident_score``, both objects confident). A relation is *denied* (a "no" answer, a
distractor predicate, a distractor object) only when it is both

* not implied by any relation in the graph, at any score: not present under the same predicate or a
  synonym ("next to" / "beside"), not present reversed for a symmetric predicate ("near"), not present
  as an inverse ("left of" / "right of" swapped, "on" / "under", "holding" / "held by"), and
* contradicted by the boxes: a directional predicate ("left of", "above", "under", ...) whose centres
  lie clearly the other way, or a contact predicate ("on", "in", "holding", "wearing", ...) between
  boxes clearly apart.

Vague or unknown predicates ("near", "has", "looking at") are never denied. Graphs are incomplete,
so "absent from the graph" alone is not taken as false.

The helpers here (relation index, predicate grammar, per-view cache, cached referents) are shared
with the scene-graph family.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import inflect
import numpy as np

from scene_graphs.model import Box, Object

from ..base import GraphView, Plan, Program, Realized, Template, make_rng, register, stable_int
from ..grammar import capitalize, fmt_box, with_article
from ..refer import Referent, refer

# ------------------------------------------------------------------------------- per-view cache
_CACHE: weakref.WeakKeyDictionary[GraphView, dict] = weakref.WeakKeyDictionary()


def _store(view: GraphView) -> dict:
    store = _CACHE.get(view)
    if store is None:
        store = {}
        _CACHE[view] = store
    return store


def cached(view: GraphView, key: Any, build: Callable[[], Any]) -> Any:
    """``build()`` once per view (so once per image in a run): programs of these families share it.

    Keyed weakly by the view, so nothing outlives it; values must not refer to the view or its graph."""
    store = _store(view)
    if key not in store:
        store[key] = build()
    return store[key]


def share_cache(source: GraphView, copy: GraphView) -> None:
    """Let ``copy`` (a copy of ``source`` over the same graph and config) use ``source``'s cache."""
    _CACHE[copy] = _store(source)


def referent(view: GraphView, obj: Object, allow_region: bool = True) -> Referent | None:
    """:func:`programs.refer.refer`, computed once per view and object, refusing relation referents
    that another object with the label may also fit (``refer`` compares predicates as written, so
    "on" and "Is On" or "next to" and "beside" would count as different relations)."""
    return cached(view, ("refer", obj.id, allow_region), lambda: _checked_refer(view, obj, allow_region))


def _checked_refer(view: GraphView, obj: Object, allow_region: bool) -> Referent | None:
    ref = refer(view, obj, allow_region)
    if ref is None or ref.strategy != "relation" or len(ref.mentions) != 1:
        return ref
    target = view.by_id[ref.mentions[0]]
    head, tail = f"the {obj.label} ", f" the {target.label}"
    if not (ref.text.startswith(head) and ref.text.endswith(tail)):
        return None
    predicate = ref.text[len(head):len(ref.text) - len(tail)]
    if any(possibly_true(view, o.id, predicate, target.id) for o in view.by_label.get(obj.label, ()) if o.id != obj.id):
        return None
    return ref


def is_confident(view: GraphView, obj: Object) -> bool:
    return obj.score >= view.config.confident_score


def norm_box(view: GraphView, obj: Object) -> str:
    return fmt_box(obj.box.normalized(view.width, view.height))


# ------------------------------------------------------------------------------- predicates
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "on": ("on", "on top of", "atop", "sitting on", "lying on", "laying on", "resting on", "standing on",
           "placed on", "parked on", "mounted on", "hanging on", "leaning on", "sitting on top of"),
    "in": ("in", "inside", "inside of", "within", "sitting in", "standing in"),
    "contains": ("contains", "containing", "contain"),
    "above": ("above", "over"),
    "under": ("under", "below", "beneath", "underneath"),
    "left of": ("left of", "to the left of", "on the left of", "on the left side of"),
    "right of": ("right of", "to the right of", "on the right of", "on the right side of"),
    "in front of": ("in front of", "front of", "in the front of"),
    "behind": ("behind", "in back of", "at the back of", "back of"),
    "near": ("near", "next to", "beside", "by", "close to", "adjacent to", "alongside", "near to", "nearby"),
    "holding": ("holding", "holds", "hold", "holding onto", "grasping", "gripping"),
    "held by": ("held by",),
    "wearing": ("wearing", "wears", "wear", "dressed in", "has on"),
    "worn by": ("worn by", "worn on"),
    "carrying": ("carrying", "carries", "carry"),
    "carried by": ("carried by",),
    "riding": ("riding", "rides", "ride", "riding on"),
    "touching": ("touching", "touches", "touch"),
}
GROUP_OF: dict[str, str] = {phrase: group for group, phrases in _SYNONYMS.items() for phrase in phrases}
"""Normalized predicate -> canonical group (unknown predicates are their own group)."""

SYMMETRIC = frozenset({"near", "touching"})
EXACT_INVERSE = {"left of": "right of", "right of": "left of", "in front of": "behind", "behind": "in front of",
                 "above": "under", "under": "above", "in": "contains", "contains": "in", "holding": "held by",
                 "held by": "holding", "wearing": "worn by", "worn by": "wearing", "carrying": "carried by",
                 "carried by": "carrying"}
"""``(s, g, o)`` holds when ``(o, EXACT_INVERSE[g], s)`` does."""
RELATED = {"on": {"above", "in"}, "above": {"on"}, "in": {"on"}, "wearing": {"in"}, "worn by": {"on"},
           "holding": {"carrying"}, "carrying": {"holding"}}
"""Same-direction groups that may describe the same situation (only used to avoid false denials)."""
RELATED_INVERSE = {"on": {"under", "contains"}, "under": {"on", "above"}, "above": {"under"},
                   "contains": {"in", "on"}, "wearing": {"worn by", "on"}, "worn by": {"wearing", "in"}}
"""Inverse groups that may describe the same situation (only used to avoid false denials)."""
DIRECTIONAL = {"left of": (-1, 0), "right of": (1, 0), "above": (0, -1), "under": (0, 1)}
"""Groups with a direction (subject centre relative to object centre, image y pointing down)."""
CONTACT = frozenset({"on", "in", "contains", "holding", "held by", "wearing", "worn by", "carrying", "carried by",
                     "riding", "touching"})
"""Groups that need the two objects to touch."""
_OPPOSITE_SIDE = {"left of": "to the right of", "right of": "to the left of", "above": "below", "under": "above"}
DIRECTION_MARGIN = 0.05
"""Share of the image size by which centres must lie the other way to deny a directional relation."""
CONTACT_GAP = 0.05
"""Share of the image's longer side by which boxes must lie apart to deny a contact relation."""
FALLBACK_PREDICATES = ("left of", "right of", "above", "under", "on", "in", "holding", "wearing")
"""Common predicates used as extra distractors (still checked false for the pair)."""

_PREPOSITIONS = frozenset({"as", "at", "across", "along", "alongside", "around", "besides", "by", "from", "inside",
                           "into", "of", "on", "onto", "outside", "over", "past", "plus", "through", "towards",
                           "under", "upon", "with", "within", "without", "always", "its", "this", "thus", "was",
                           "is", "are"})
_IRREGULAR_BASE = {"lies": "lie", "ties": "tie", "dies": "die"}
"""Third-person forms that inflect gets wrong."""
_ENGINE = inflect.engine()


@lru_cache(maxsize=8192)
def norm_predicate(predicate: str) -> str:
    """Lower case, single spaces, no leading copula: ``"Is  ON"`` -> ``"on"``."""
    text = re.sub(r"\s+", " ", predicate.strip().lower())
    for lead in ("is ", "are "):
        if text.startswith(lead) and len(text) > len(lead):
            text = text[len(lead):]
    return text


@lru_cache(maxsize=8192)
def group(predicate: str) -> str:
    """Canonical group of a (normalized or raw) predicate."""
    p = norm_predicate(predicate)
    return GROUP_OF.get(p, p)


@lru_cache(maxsize=4096)
def verb_parts(predicate: str) -> tuple[str, str, str]:
    """How a predicate reads after a singular subject: ``(aux, base, finite)``.

    ``on`` -> ``("is", "on", "is on")``; ``holding`` -> ``("is", "holding", "is holding")``;
    ``has`` -> ``("does", "have", "has")``; ``wears a`` -> ``("does", "wear a", "wears a")``."""
    words = predicate.split()
    first = words[0]
    if first not in _PREPOSITIONS and not first.endswith(("ing", "ed")):
        base = _IRREGULAR_BASE.get(first) or _ENGINE.plural_verb(first)
        if base and base != first:
            return "does", " ".join([base, *words[1:]]), predicate
    return "is", predicate, f"is {predicate}"


# ------------------------------------------------------------------------------- relation index
@dataclass(frozen=True)
class RelationIndex:
    """The graph's relations, grouped for the truth tests below (ids only, no graph references)."""

    any_groups: dict[tuple[str, str], frozenset[str]]
    """(subject, object) -> predicate groups of every graph relation, at any score."""
    confident_groups: dict[tuple[str, str], frozenset[str]]
    """(subject, object) -> groups of confident relations between confident objects."""
    pair_predicates: dict[tuple[str, str], tuple[str, ...]]
    """(subject, object) -> normalized predicates of every graph relation (any score), sorted."""
    confident: tuple[tuple[str, str, str], ...]
    """(subject, normalized predicate, object) of confident relations, sorted, without self-loops."""
    predicates: tuple[str, ...]
    """Normalized predicates of the relations programs see, sorted."""


def _build_index(view: GraphView) -> RelationIndex:
    c = view.config.confident_score
    any_groups: dict[tuple[str, str], set[str]] = {}
    pair_preds: dict[tuple[str, str], set[str]] = {}
    for r in view.graph.relations:
        p = norm_predicate(r.predicate)
        any_groups.setdefault((r.subject, r.object), set()).add(GROUP_OF.get(p, p))
        pair_preds.setdefault((r.subject, r.object), set()).add(p)
    conf_groups: dict[tuple[str, str], set[str]] = {}
    confident: set[tuple[str, str, str]] = set()
    for r in view.relations:
        if r.score < c or r.subject == r.object:
            continue
        if view.by_id[r.subject].score < c or view.by_id[r.object].score < c:
            continue
        p = norm_predicate(r.predicate)
        conf_groups.setdefault((r.subject, r.object), set()).add(GROUP_OF.get(p, p))
        confident.add((r.subject, p, r.object))
    return RelationIndex(
        any_groups={k: frozenset(v) for k, v in any_groups.items()},
        confident_groups={k: frozenset(v) for k, v in conf_groups.items()},
        pair_predicates={k: tuple(sorted(v)) for k, v in pair_preds.items()},
        confident=tuple(sorted(confident)),
        predicates=tuple(sorted({norm_predicate(r.predicate) for r in view.relations})),
    )


def relation_index(view: GraphView) -> RelationIndex:
    return cached(view, "relation_index", lambda: _build_index(view))


def possibly_true(view: GraphView, subject: str, predicate: str, obj: str) -> bool:
    """Whether any graph relation (any score) states or may imply ``subject predicate obj``."""
    idx = relation_index(view)
    g = group(predicate)
    forward = idx.any_groups.get((subject, obj), frozenset())
    if g in forward or forward & RELATED.get(g, set()):
        return True
    backward = idx.any_groups.get((obj, subject), frozenset())
    inverse = set(RELATED_INVERSE.get(g, set()))
    if g in EXACT_INVERSE:
        inverse.add(EXACT_INVERSE[g])
    if g in SYMMETRIC:
        inverse.add(g)
    return bool(backward & inverse)


def is_true(view: GraphView, subject: str, predicate: str, obj: str) -> bool:
    """Whether a confident relation states ``subject predicate obj`` (directly, by synonym, reversed
    for a symmetric predicate, or as its exact inverse)."""
    if subject == obj:
        return False
    idx = relation_index(view)
    g = group(predicate)
    if g in idx.confident_groups.get((subject, obj), frozenset()):
        return True
    backward = idx.confident_groups.get((obj, subject), frozenset())
    return (g in SYMMETRIC and g in backward) or (g in EXACT_INVERSE and EXACT_INVERSE[g] in backward)


def box_gap(a: Box, b: Box) -> float:
    """Pixels between two boxes along the axis where they are furthest apart (0 when they touch)."""
    return max(0.0, b.x1 - a.x2, a.x1 - b.x2, b.y1 - a.y2, a.y1 - b.y2)


def geometry_denies(view: GraphView, subject: Object, predicate: str, obj: Object) -> bool:
    """Whether the boxes clearly contradict ``subject predicate obj`` (only for predicates with geometry)."""
    g = group(predicate)
    if g in DIRECTIONAL:
        dx, dy = DIRECTIONAL[g]
        (sx, sy), (ox, oy) = subject.box.center, obj.box.center
        if dx:
            return dx * (sx - ox) <= -DIRECTION_MARGIN * view.width
        return dy * (sy - oy) <= -DIRECTION_MARGIN * view.height
    if g in CONTACT:
        return box_gap(subject.box, obj.box) > CONTACT_GAP * max(view.width, view.height)
    return False


def is_false(view: GraphView, subject: str, predicate: str, obj: str) -> bool:
    """Whether ``subject predicate obj`` can be safely denied (see module docstring)."""
    if subject == obj:
        return False
    if possibly_true(view, subject, predicate, obj):
        return False
    return geometry_denies(view, view.by_id[subject], predicate, view.by_id[obj])


def unique_predicate(view: GraphView, subject: str, obj: str) -> str | None:
    """The one predicate from ``subject`` to ``obj`` when the graph has exactly one (at any score), it is
    confident and both objects are confident; else ``None``."""
    preds = relation_index(view).pair_predicates.get((subject, obj), ())
    if len(preds) != 1 or subject == obj:
        return None
    if (subject, preds[0], obj) not in confident_set(view):
        return None
    return preds[0]


def confident_set(view: GraphView) -> frozenset[tuple[str, str, str]]:
    return cached(view, "confident_relation_set", lambda: frozenset(relation_index(view).confident))


def false_predicates(view: GraphView, subject: str, obj: str, exclude: str) -> list[str]:
    """Predicates (from the graph first, then common ones) that are safely false from ``subject`` to
    ``obj`` and not in the group of ``exclude``."""
    seen: set[str] = set()
    out: list[str] = []
    for p in (*relation_index(view).predicates, *FALLBACK_PREDICATES):
        g = group(p)
        if g == group(exclude) or g in seen:
            continue
        if is_false(view, subject, p, obj):
            seen.add(g)
            out.append(p)
    return out


def hashed_order(items: list, key: Callable[[Any], str]) -> list:
    """A stable pseudo-random order (by sha256 of ``key(item)``) that mixes items without an rng."""
    return sorted(items, key=lambda item: stable_int(key(item)))


def plain_referent(view: GraphView, obj: Object) -> Referent | None:
    """A referent that does not itself use a relation: in a question about relations, "is the cup on
    the table on the plate?" could be read two ways."""
    ref = referent(view, obj)
    return None if ref is None or ref.strategy == "relation" else ref


def pair_referents(view: GraphView, a: Object, b: Object) -> tuple[Referent, Referent] | None:
    """Relation-free referents of two objects (so no relation leaks into, or muddles, the question)."""
    ra, rb = plain_referent(view, a), plain_referent(view, b)
    if ra is None or rb is None:
        return None
    return ra, rb


def relation_sentence(subject_text: str, predicate: str, object_text: str) -> str:
    """``the cup``, ``on``, ``the table`` -> ``The cup is on the table``."""
    return f"{capitalize(subject_text)} {verb_parts(predicate)[2]} {object_text}"


# ------------------------------------------------------------------------------- programs
@register
class RelationBetween(Program):
    """How one named object is related to another: the one predicate the graph gives between them."""

    id = "single.relation_between"
    family = "relations"
    requires = frozenset({"objects", "relations"})
    answer_type = "predicate"
    num_options = 3
    """Predicates can only be denied where the boxes prove it, so three options are available far more
    often than four."""
    templates = (
        Template("how_related", "How is {subj} related to {obj}?"),
        Template("fill_blank", "Fill in the blank with the relation: {Subj} ___ {obj}."),
        Template("relationship_of", "What is the relationship of {subj} to {obj}?"),
    )

    def candidates(self, view: GraphView) -> list[Plan]:
        plans = []
        for (s, o) in sorted(relation_index(view).pair_predicates):
            if unique_predicate(view, s, o) is None:
                continue
            if pair_referents(view, view.by_id[s], view.by_id[o]) is None:
                continue
            plans.append({"subject_id": s, "object_id": o})
        return plans

    def solve(self, view: GraphView, plan: Plan) -> Any:
        return unique_predicate(view, plan["subject_id"], plan["object_id"])

    def names(self, view: GraphView, plan: Plan) -> tuple[str, str]:
        refs = pair_referents(view, view.by_id[plan["subject_id"]], view.by_id[plan["object_id"]])
        assert refs is not None
        return refs[0].text, refs[1].text

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        s, o = view.by_id[plan["subject_id"]], view.by_id[plan["object_id"]]
        subj, obj = self.names(view, plan)
        t = self.pick_template(rng)
        rationale = (f"{capitalize(subj)} is at {norm_box(view, s)} and {obj} is at {norm_box(view, o)}. "
                     f"The only relation from {subj} to {obj} is \"{value}\": "
                     f"{relation_sentence(subj, value, obj)}. So the answer is: {value}.")
        question = t.text.format(subj=subj, Subj=capitalize(subj), obj=obj)
        return Realized(t.id, question, value, rationale, false_predicates(view, s.id, o.id, value))


@register
class RelationBetweenRegions(RelationBetween):
    """How the object in one box is related to the object in another (objects given as normalized boxes)."""

    id = "single.relation_between_regions"
    templates = (
        Template("how_related_boxes", "How is the object with bounding box {subj} related to the object "
                                      "with bounding box {obj}?"),
        Template("relation_links", "What relation links the object at {subj} to the object at {obj}?"),
        Template("first_to_second", "Boxes {subj} and {obj} each outline one object. What is the first "
                                    "object's relation to the second?"),
    )

    def candidates(self, view: GraphView) -> list[Plan]:
        boxes: dict[str, int] = {}
        for o in view.objects:
            boxes[norm_box(view, o)] = boxes.get(norm_box(view, o), 0) + 1
        plans = []
        for (s, o) in sorted(relation_index(view).pair_predicates):
            if unique_predicate(view, s, o) is None:
                continue
            if boxes[norm_box(view, view.by_id[s])] != 1 or boxes[norm_box(view, view.by_id[o])] != 1:
                continue
            plans.append({"subject_id": s, "object_id": o})
        return plans

    def names(self, view: GraphView, plan: Plan) -> tuple[str, str]:
        return norm_box(view, view.by_id[plan["subject_id"]]), norm_box(view, view.by_id[plan["object_id"]])

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        s, o = view.by_id[plan["subject_id"]], view.by_id[plan["object_id"]]
        subj, obj = self.names(view, plan)
        t = self.pick_template(rng)
        rationale = (f"The object at {subj} is {with_article(s.label)} and the object at {obj} is {with_article(o.label)}. "
                     f"The only relation from the {s.label} to the {o.label} is \"{value}\": "
                     f"{relation_sentence('the ' + s.label, value, 'the ' + o.label)}. So the answer is: {value}.")
        question = t.text.format(subj=subj, Subj=subj, obj=obj)
        return Realized(t.id, question, value, rationale, false_predicates(view, s.id, o.id, value))


def _related_answer(view: GraphView, anchor: str, predicate: str, direction: str) -> str | None:
    """The one object in relation ``predicate`` with ``anchor`` (as subject when ``direction`` is
    ``"subject"``, else as object), when every other object is safely denied; else ``None``."""
    answer = None
    for o in view.objects:
        if o.id == anchor:
            continue
        s_id, o_id = (o.id, anchor) if direction == "subject" else (anchor, o.id)
        if is_true(view, s_id, predicate, o_id) and (s_id, predicate, o_id) in confident_set(view):
            if answer is not None:
                return None
            answer = o.id
        elif not is_false(view, s_id, predicate, o_id):
            return None
    if answer is None or not is_confident(view, view.by_id[answer]):
        return None
    return answer


@register
class RelatedObject(Program):
    """Which object stands in a given relation to a named object (the only one the graph allows)."""

    id = "single.related_object"
    family = "relations"
    requires = frozenset({"objects", "relations"})
    answer_type = "label"
    num_options = 3
    templates = (
        Template("which_subject", "Which object {finite} {anchor}?"),
        Template("name_subject", "Name the object that {finite} {anchor}."),
        Template("what_object", "What {aux} {anchor} {base}?"),
        Template("name_object", "Name the object that {anchor} {finite}."),
    )
    _by_direction: ClassVar[dict[str, tuple[str, str]]] = {"subject": ("which_subject", "name_subject"),
                                                           "object": ("what_object", "name_object")}

    def candidates(self, view: GraphView) -> list[Plan]:
        plans: list[Plan] = []
        seen: set[tuple[str, str, str]] = set()
        for s, p, o in relation_index(view).confident:
            g = group(p)
            if g not in DIRECTIONAL and g not in CONTACT:
                continue  # vague predicates: other objects can never be ruled out
            for anchor, direction in ((o, "subject"), (s, "object")):
                if (anchor, p, direction) in seen:
                    continue
                seen.add((anchor, p, direction))
                answer = _related_answer(view, anchor, p, direction)
                if answer is None:
                    continue
                if plain_referent(view, view.by_id[anchor]) is None:
                    continue
                plans.append({"anchor_id": anchor, "predicate": p, "direction": direction})
        return plans

    def solve(self, view: GraphView, plan: Plan) -> Any:
        answer = _related_answer(view, plan["anchor_id"], plan["predicate"], plan["direction"])
        return None if answer is None else view.by_id[answer].label

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        anchor = view.by_id[plan["anchor_id"]]
        p, direction = plan["predicate"], plan["direction"]
        ref = plain_referent(view, anchor)
        assert ref is not None
        answer_id = _related_answer(view, anchor.id, p, direction)
        assert answer_id is not None
        answer = view.by_id[answer_id]
        aux, base, finite = verb_parts(p)
        t = self.pick_template(rng, self._by_direction[direction])
        question = t.text.format(finite=finite, anchor=ref.text, aux=aux, base=base)
        if direction == "subject":
            fact = relation_sentence(f"the {answer.label}", p, ref.text)
        else:
            fact = relation_sentence(ref.text, p, f"the {answer.label}")
        rationale = (f"{capitalize(ref.text)} is at {norm_box(view, anchor)}. {fact} (the {answer.label} at "
                     f"{norm_box(view, answer)}); no other object can be in this relation. "
                     f"So the answer is: {answer.label}.")
        distractors = []
        for label, objs in view.by_label.items():
            if label == answer.label:
                continue
            if all((o.id == anchor.id) or is_false(view, *((o.id, p, anchor.id) if direction == "subject"
                                                          else (anchor.id, p, o.id))) for o in objs):
                distractors.append(label)
        return Realized(t.id, question, answer.label, rationale, distractors, objects=[answer.id])


@register
class VerifyRelation(Program):
    """Yes/no: does a relation hold between two named objects (false ones are denied by graph and boxes)."""

    id = "single.verify_relation"
    family = "relations"
    requires = frozenset({"objects", "relations"})
    answer_type = "yes/no"
    num_options = 2
    templates = (
        Template("aux_question", "{Aux} {subj} {base} {obj}?"),
        Template("is_it_true", "Is it true that {subj} {finite} {obj}?"),
        Template("would_you_say", "Would you say that {subj} {finite} {obj}?"),
    )
    max_negatives = 30

    def candidates(self, view: GraphView) -> list[Plan]:
        idx = relation_index(view)
        yes: list[Plan] = []
        for s, p, o in idx.confident:
            if pair_referents(view, view.by_id[s], view.by_id[o]) is not None:
                yes.append({"subject_id": s, "predicate": p, "object_id": o})
        # false relations drawn from the graph's other pairs: swap the predicate or the object
        involved = sorted({x for s, _, o in idx.confident for x in (s, o)})
        proposals: set[tuple[str, str, str]] = set()
        for s, p, o in idx.confident:
            proposals.update((s, q, o) for q in idx.predicates if group(q) != group(p))
            proposals.update((s, p, z) for z in involved if z not in (s, o))
        no: list[Plan] = []
        ordered = sorted(proposals)
        rng = make_rng(view.config.seed, (view.image_id,), self.id + ":negatives")
        for i in rng.permutation(len(ordered)).tolist():
            s, p, o = ordered[i]
            if len(no) >= self.max_negatives:
                break
            if not is_false(view, s, p, o) or pair_referents(view, view.by_id[s], view.by_id[o]) is None:
                continue
            no.append({"subject_id": s, "predicate": p, "object_id": o})
        return sorted(yes + no, key=lambda d: (d["subject_id"], d["predicate"], d["object_id"]))

    def solve(self, view: GraphView, plan: Plan) -> Any:
        s, p, o = plan["subject_id"], plan["predicate"], plan["object_id"]
        if (s, p, o) in confident_set(view) or is_true(view, s, p, o):
            return "yes"
        if is_false(view, s, p, o):
            return "no"
        return None

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        s, o = view.by_id[plan["subject_id"]], view.by_id[plan["object_id"]]
        p = plan["predicate"]
        refs = pair_referents(view, s, o)
        assert refs is not None
        subj, obj = refs[0].text, refs[1].text
        aux, base, finite = verb_parts(p)
        t = self.pick_template(rng)
        question = t.text.format(Aux=capitalize(aux), subj=subj, base=base, obj=obj, finite=finite)
        where = f"{capitalize(subj)} is at {norm_box(view, s)} and {obj} is at {norm_box(view, o)}."
        if value == "yes":
            reason = f"{relation_sentence(subj, p, obj)}."
        else:
            g = group(p)
            denial = f"{subj} {aux} not {base} {obj}"
            if g in DIRECTIONAL:
                reason = (f"The centre of {subj} lies clearly {_OPPOSITE_SIDE[g]} the centre of {obj}, "
                          f"so {denial}.")
            else:
                reason = f"The two are clearly apart, so {denial}."
        rationale = f"{where} {reason} So the answer is: {value}."
        return Realized(t.id, question, value, rationale, ["no" if value == "yes" else "yes"])
