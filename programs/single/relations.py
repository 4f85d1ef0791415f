"""Relations: how two objects are related, which object stands in a relation, yes/no checks.

Truth comes from the graph's relations, through the tests of :mod:`programs.predicates` (stated
only when confident; denied only when nothing in the graph may imply it and the boxes contradict
it; vague or unknown predicates never denied). The predicate vocabulary and truth tests moved there
and are re-exported here under their old names, for the families that import them from this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from scene_graphs.model import Object

from ..base import GraphView, Plan, Program, Realized, Template, make_rng, register, stable_int
from ..common import box_text, is_confident, located
from ..grammar import capitalize, with_article
from ..predicates import (  # noqa: F401  (re-exported: other families import these from here)
    _OPPOSITE_SIDE,
    _SYNONYMS,
    BACKWARD_IMPLIES,
    CONTACT,
    CONTACT_GAP,
    DIRECTION_MARGIN,
    DIRECTIONAL,
    EXACT_INVERSE,
    FALLBACK_PREDICATES,
    FORWARD_IMPLIES,
    GROUP_OF,
    OPPOSITE_SIDE,
    RELATED,
    RELATED_INVERSE,
    SYMMETRIC,
    RelationIndex,
    _build_index,
    box_gap,
    confident_set,
    false_predicates,
    geometry_denies,
    group,
    is_false,
    is_true,
    norm_predicate,
    plausible,
    possibly_true,
    postmodifier,
    relation_index,
    relation_sentence,
    unique_predicate,
    verb_parts,
)
from ..refer import Referent, refer


# ------------------------------------------------------------------------------- per-view cache
def cached(view: GraphView, key: Any, build: Callable[[], Any]) -> Any:
    """``build()`` once per view (:meth:`GraphView.memo`): programs of every family share it."""
    return view.memo(key, build)


def share_cache(source: GraphView, copy: GraphView) -> None:
    """Kept for callers of the old API: views made with :meth:`GraphView.with_stats` share caches
    already, so there is nothing to do."""


def referent(view: GraphView, obj: Object, allow_region: bool = True) -> Referent | None:
    """:func:`programs.refer.refer` (cached per view; unique by meaning of predicates)."""
    return refer(view, obj, allow_region)


def norm_box(view: GraphView, obj: Object) -> str:
    """The object's normalised box as written (``fmt_box``)."""
    return box_text(view, obj)


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


# ------------------------------------------------------------------------------- programs
MAX_PLANS = 12
"""Candidate plans kept per program and image (a deterministic, per-image sample when there are more)."""


def _pairs_with_one_predicate(view: GraphView) -> list[tuple[str, str, str]]:
    """(subject, predicate, object) for every ordered pair with exactly one, confident, predicate."""
    def build() -> list[tuple[str, str, str]]:
        out = []
        for s, o in sorted(relation_index(view).pair_predicates):
            p = unique_predicate(view, s, o)
            if p is not None:
                out.append((s, p, o))
        return out
    return view.memo("pairs_with_one_predicate", build)


def _named_pair(view: GraphView, s: Object, o: Object) -> str:
    """``the cup (at [..]) and the plate (at [..])`` for a rationale (region referents carry their box)."""
    rs, ro = pair_referents(view, s, o)  # type: ignore[misc]
    return f"{located(rs.text, rs.strategy, box_text(view, s))} and {located(ro.text, ro.strategy, box_text(view, o))}"


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
    answer_prior = True
    templates = (
        Template("how_related", "How is {subj} related to {obj}?"),
        Template("fill_blank", "Fill in the blank with the relation: {Subj} ___ {obj}."),
        Template("relationship_of", "What is the relationship of {subj} to {obj}?"),
    )

    def nameable(self, view: GraphView, s: str, o: str) -> bool:
        return pair_referents(view, view.by_id[s], view.by_id[o]) is not None

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        out = [({"subject_id": s, "object_id": o}, p) for s, p, o in _pairs_with_one_predicate(view)
               if self.nameable(view, s, o)]
        if len(out) > MAX_PLANS:
            out = sorted(hashed_order(out, key=lambda pv: f"{view.image_id}|{self.id}|{pv[0]['subject_id']}|"
                                                         f"{pv[0]['object_id']}")[:MAX_PLANS],
                         key=lambda pv: (pv[0]["subject_id"], pv[0]["object_id"]))
        return out

    def solve(self, view: GraphView, plan: Plan) -> Any:
        s, o = plan["subject_id"], plan["object_id"]
        if s not in view.by_id or o not in view.by_id or not self.nameable(view, s, o):
            return None
        return unique_predicate(view, s, o)

    def names(self, view: GraphView, plan: Plan) -> tuple[str, str]:
        refs = pair_referents(view, view.by_id[plan["subject_id"]], view.by_id[plan["object_id"]])
        assert refs is not None
        return refs[0].text, refs[1].text

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        s, o = view.by_id[plan["subject_id"]], view.by_id[plan["object_id"]]
        subj, obj = self.names(view, plan)
        t = self.pick_template(rng)
        rationale = (f"{capitalize(_named_pair(view, s, o))} are the two objects. "
                     f"The only relation from {subj} to {obj} is \"{value}\": "
                     f"{relation_sentence(subj, value, obj)}. So the answer is: {value}.")
        question = t.text.format(subj=subj, Subj=capitalize(subj), obj=obj)
        return Realized(t.id, question, value, rationale, false_predicates(view, s.id, o.id, value))


def _unique_boxes(view: GraphView) -> frozenset[str]:
    """Ids of visible objects whose box, as written, no other visible object shares."""
    def build() -> frozenset[str]:
        counts: dict[str, int] = {}
        for o in view.objects:
            counts[box_text(view, o)] = counts.get(box_text(view, o), 0) + 1
        return frozenset(o.id for o in view.objects if counts[box_text(view, o)] == 1)
    return view.memo("unique_boxes", build)


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

    def nameable(self, view: GraphView, s: str, o: str) -> bool:
        unique = _unique_boxes(view)
        return s in unique and o in unique

    def names(self, view: GraphView, plan: Plan) -> tuple[str, str]:
        return box_text(view, view.by_id[plan["subject_id"]]), box_text(view, view.by_id[plan["object_id"]])

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        s, o = view.by_id[plan["subject_id"]], view.by_id[plan["object_id"]]
        subj, obj = self.names(view, plan)
        t = self.pick_template(rng)
        if s.label == o.label:  # "the person is right of the person" would not say which is which
            first, second = f"the {s.label} at {subj}", f"the {o.label} at {obj}"
        else:
            first, second = f"the {s.label}", f"the {o.label}"
        rationale = (f"The object at {subj} is {with_article(s.label)} and the object at {obj} is "
                     f"{with_article(o.label)}. The only relation from the first to the second is \"{value}\": "
                     f"{relation_sentence(first, value, second)}. So the answer is: {value}.")
        question = t.text.format(subj=subj, Subj=subj, obj=obj)
        return Realized(t.id, question, value, rationale, false_predicates(view, s.id, o.id, value))


def _related_answer(view: GraphView, anchor: str, predicate: str, direction: str) -> str | None:
    """The one object in relation ``predicate`` with ``anchor`` (as subject when ``direction`` is
    ``"subject"``, else as object), when every other object is safely denied; else ``None``."""
    def build() -> str | None:
        answer = None
        conf = confident_set(view)
        for o in view.objects:
            if o.id == anchor:
                continue
            s_id, o_id = (o.id, anchor) if direction == "subject" else (anchor, o.id)
            if (s_id, predicate, o_id) in conf:
                if answer is not None:
                    return None
                answer = o.id
            elif not is_false(view, s_id, predicate, o_id):
                return None
        if answer is None or not is_confident(view, view.by_id[answer]):
            return None
        return answer
    return view.memo(("related_answer", anchor, predicate, direction), build)


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

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        out: list[tuple[Plan, Any]] = []
        seen: set[tuple[str, str, str]] = set()
        triples = hashed_order(relation_index(view).confident, key=lambda t: f"{view.image_id}|{self.id}|{'|'.join(t)}")
        for s, p, o in triples:
            if len(out) >= MAX_PLANS // 2:
                break
            g = group(p)
            if g not in DIRECTIONAL and g not in CONTACT:
                continue  # vague predicates: other objects can never be ruled out
            for anchor, direction in ((o, "subject"), (s, "object")):
                if (anchor, p, direction) in seen:
                    continue
                seen.add((anchor, p, direction))
                plan = {"anchor_id": anchor, "predicate": p, "direction": direction}
                value = self.solve(view, plan)
                if value is not None:
                    out.append((plan, value))
        return out

    def solve(self, view: GraphView, plan: Plan) -> Any:
        anchor = view.by_id.get(plan["anchor_id"])
        if anchor is None or plain_referent(view, anchor) is None:
            return None
        answer = _related_answer(view, anchor.id, plan["predicate"], plan["direction"])
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
        anchor_at = "" if ref.strategy == "region" else f"{capitalize(ref.text)} is at {box_text(view, anchor)}. "
        rationale = (f"{anchor_at}{fact} (the {answer.label} at {box_text(view, answer)}); no other object can be "
                     f"in this relation. So the answer is: {answer.label}.")
        # never the anchor's own label: it is in the question, and (the anchor named uniquely) almost never
        # the answer, so a solver that skips the option the question mentions would win; an answer that
        # shares the anchor's label is then free-form for the same reason
        distractors = []
        for label, objs in view.by_label.items():
            if label == answer.label or label == anchor.label or answer.label == anchor.label:
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
    max_plans = 4
    """Plans per answer ("yes" / "no"); balancing draws the answer first, so a few of each suffice."""
    max_tries = 40
    """False relations checked per image (with the graph and the boxes)."""

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        idx = relation_index(view)
        rng = make_rng(view.config.seed, (view.image_id,), self.id + ":plans")
        yes: list[tuple[str, str, str]] = []
        confident = idx.confident
        for i in rng.permutation(len(confident)).tolist():
            s, p, o = confident[i]
            if pair_referents(view, view.by_id[s], view.by_id[o]) is not None:
                yes.append((s, p, o))
                if len(yes) >= self.max_plans:
                    break
        # false relations drawn from the graph's other pairs: swap the predicate or the object
        involved = sorted({x for s, _, o in confident for x in (s, o)})
        no: set[tuple[str, str, str]] = set()
        preds = idx.predicates
        width = len(preds) + len(involved)
        tries = 0
        # proposals, numbered: relation r with predicate j (j < len(preds)) or with object j - len(preds);
        # visited in a random order without building them all
        for i in rng.permutation(len(confident) * width).tolist() if confident else ():
            if len(no) >= self.max_plans or tries >= self.max_tries:
                break
            s, p, o = confident[i // width]
            j = i % width
            if j < len(preds):
                if group(preds[j]) == group(p):
                    continue
                p = preds[j]
            else:
                if involved[j - len(preds)] in (s, o):
                    continue
                o = involved[j - len(preds)]
            if (s, p, o) in no:
                continue
            tries += 1
            if (is_false(view, s, p, o) and plausible(view, s, p, o)
                    and pair_referents(view, view.by_id[s], view.by_id[o]) is not None):
                no.add((s, p, o))
        out = [({"subject_id": s, "predicate": p, "object_id": o}, "yes") for s, p, o in yes]
        out += [({"subject_id": s, "predicate": p, "object_id": o}, "no") for s, p, o in no]
        return sorted(out, key=lambda pv: (pv[0]["subject_id"], pv[0]["predicate"], pv[0]["object_id"]))

    def solve(self, view: GraphView, plan: Plan) -> Any:
        s, p, o = plan["subject_id"], plan["predicate"], plan["object_id"]
        if s not in view.by_id or o not in view.by_id or pair_referents(view, view.by_id[s], view.by_id[o]) is None:
            return None
        if (s, p, o) in confident_set(view) or is_true(view, s, p, o):
            return "yes"
        if is_false(view, s, p, o) and plausible(view, s, p, o):
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
        where = f"{capitalize(_named_pair(view, s, o))} are the two objects."
        if value == "yes":
            reason = f"{relation_sentence(subj, p, obj)}."
        else:
            g = group(p)
            denial = f"{subj} {aux} not {base} {obj}"
            if g in DIRECTIONAL:
                reason = (f"The centre of {subj} lies clearly {OPPOSITE_SIDE[g]} the centre of {obj}, "
                          f"so {denial}.")
            else:
                reason = f"The two are clearly apart, so {denial}."
        rationale = f"{where} {reason} So the answer is: {value}."
        return Realized(t.id, question, value, rationale, ["no" if value == "yes" else "yes"])
