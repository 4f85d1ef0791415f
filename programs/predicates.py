"""Relation predicates: vocabulary (synonyms, inverses), grammar, and the truth tests built on them.

Shared by :func:`programs.refer.refer` (is a relation referent unique?) and every family that states
or denies relations. A relation is *stated* only when it is confident (score >= ``confident_score``,
both objects confident). A relation is *denied* (a "no" answer, a distractor predicate, a distractor
object) only when it is both

* not implied by any relation in the graph, at any score: not present under the same predicate or a
  synonym ("next to" / "beside"), not present reversed for a symmetric predicate ("near"), not present
  as an inverse ("left of" / "right of" swapped, "on" / "under", "holding" / "held by"), and
* contradicted by the boxes: a directional predicate ("left of", "above", "under", ...) whose centres
  lie clearly the other way, or a contact predicate ("on", "in", "holding", "wearing", ...) between
  boxes clearly apart.

Vague or unknown predicates ("near", "has", "looking at") are never denied. Graphs are incomplete,
so "absent from the graph" alone is not taken as false.

The graph's relations are indexed once per view (:func:`relation_index`, kept in the view's memo),
so every test below is a dictionary look-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from scene_graphs.model import Box, Object

from .base import GraphView
from .grammar import capitalize, inflect_engine
from .scenes import plausible_relation

# ------------------------------------------------------------------------------- vocabulary
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
"""``(s, g, o)`` holds when ``(o, EXACT_INVERSE[g], s)`` does (an involution)."""
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
OPPOSITE_SIDE = {"left of": "to the right of", "right of": "to the left of", "above": "below", "under": "above"}
_OPPOSITE_SIDE = OPPOSITE_SIDE
DIRECTION_MARGIN = 0.05
"""Share of the image size by which centres must lie the other way to deny a directional relation."""
CONTACT_GAP = 0.05
"""Share of the image's longer side by which boxes must lie apart to deny a contact relation."""
FALLBACK_PREDICATES = ("left of", "right of", "above", "under", "on", "in", "holding", "wearing")
"""Common predicates used as extra distractors (still checked false for the pair)."""


def _inverse_set(g: str) -> frozenset[str]:
    """Groups of a relation ``(o, h, s)`` that may imply ``(s, g, o)``."""
    out = set(RELATED_INVERSE.get(g, ()))
    if g in EXACT_INVERSE:
        out.add(EXACT_INVERSE[g])
    if g in SYMMETRIC:
        out.add(g)
    return frozenset(out)


_KNOWN_GROUPS = frozenset(_SYNONYMS)
FORWARD_IMPLIES: dict[str, frozenset[str]] = {
    h: frozenset({h} | {g for g in _KNOWN_GROUPS if h in RELATED.get(g, ())}) for h in _KNOWN_GROUPS}
"""A relation ``(s, h, o)`` may imply ``(s, g, o)`` for every ``g`` here (unknown ``h``: only itself)."""
BACKWARD_IMPLIES: dict[str, frozenset[str]] = {
    h: frozenset(g for g in _KNOWN_GROUPS if h in _inverse_set(g)) for h in _KNOWN_GROUPS}
"""A relation ``(o, h, s)`` may imply ``(s, g, o)`` for every ``g`` here."""

_PREPOSITIONS = frozenset({"as", "at", "across", "along", "alongside", "around", "besides", "by", "from", "inside",
                           "into", "of", "on", "onto", "outside", "over", "past", "plus", "through", "towards",
                           "under", "upon", "with", "within", "without", "always", "its", "this", "thus", "was",
                           "is", "are"})
_IRREGULAR_BASE = {"lies": "lie", "ties": "tie", "dies": "die"}
"""Third-person forms that inflect gets wrong."""


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
        base = _IRREGULAR_BASE.get(first) or inflect_engine().plural_verb(first)
        if base and base != first:
            return "does", " ".join([base, *words[1:]]), predicate
    return "is", predicate, f"is {predicate}"


@lru_cache(maxsize=4096)
def postmodifier(predicate: str) -> str:
    """How a predicate reads after a noun: ``on`` -> ``on`` ("the cup on the table"), ``holding`` ->
    ``holding``, ``has`` -> ``that has`` ("the man that has the hat")."""
    aux, _, finite = verb_parts(predicate)
    return predicate if aux == "is" else f"that {finite}"


def relation_sentence(subject_text: str, predicate: str, object_text: str) -> str:
    """``the cup``, ``on``, ``the table`` -> ``The cup is on the table``."""
    return f"{capitalize(subject_text)} {verb_parts(predicate)[2]} {object_text}"


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
    implied: dict[tuple[str, str], frozenset[str]]
    """(subject, object) -> every group that some graph relation (any score) states or may imply."""
    stated: dict[tuple[str, str], frozenset[str]]
    """(subject, object) -> every group a confident relation states directly, by symmetry or as the
    exact inverse."""
    confident_set: frozenset[tuple[str, str, str]]
    """:attr:`confident` as a set."""
    by_subject: dict[str, tuple[tuple[str, str], ...]]
    """Subject id -> (normalized predicate, object id) of its confident relations, sorted."""


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
    by_id = view.by_id
    for r in view.relations:
        if r.score < c or r.subject == r.object:
            continue
        if by_id[r.subject].score < c or by_id[r.object].score < c:
            continue
        p = norm_predicate(r.predicate)
        conf_groups.setdefault((r.subject, r.object), set()).add(GROUP_OF.get(p, p))
        confident.add((r.subject, p, r.object))
    implied: dict[tuple[str, str], set[str]] = {}
    for (s, o), groups in any_groups.items():
        forward = implied.setdefault((s, o), set())
        backward = implied.setdefault((o, s), set())
        for h in groups:
            forward |= FORWARD_IMPLIES.get(h, frozenset((h,)))
            backward |= BACKWARD_IMPLIES.get(h, frozenset())
    stated: dict[tuple[str, str], set[str]] = {}
    for (s, o), groups in conf_groups.items():
        stated.setdefault((s, o), set()).update(groups)
        backward = stated.setdefault((o, s), set())
        for h in groups:
            if h in SYMMETRIC:
                backward.add(h)
            if h in EXACT_INVERSE:
                backward.add(EXACT_INVERSE[h])
    ordered = tuple(sorted(confident))
    by_subject: dict[str, list[tuple[str, str]]] = {}
    for s, p, o in ordered:
        by_subject.setdefault(s, []).append((p, o))
    return RelationIndex(
        any_groups={k: frozenset(v) for k, v in any_groups.items()},
        confident_groups={k: frozenset(v) for k, v in conf_groups.items()},
        pair_predicates={k: tuple(sorted(v)) for k, v in pair_preds.items()},
        confident=ordered,
        predicates=tuple(sorted({norm_predicate(r.predicate) for r in view.relations})),
        implied={k: frozenset(v) for k, v in implied.items() if v},
        stated={k: frozenset(v) for k, v in stated.items() if k[0] != k[1] and v},
        confident_set=frozenset(ordered),
        by_subject={k: tuple(v) for k, v in by_subject.items()},
    )


def relation_index(view: GraphView) -> RelationIndex:
    """The view's :class:`RelationIndex` (built once per view, kept in its memo)."""
    idx = view._memo.get("relation_index")
    if idx is None:
        idx = view._memo["relation_index"] = _build_index(view)
    return idx


_EMPTY: frozenset[str] = frozenset()


def possibly_true(view: GraphView, subject: str, predicate: str, obj: str) -> bool:
    """Whether any graph relation (any score) states or may imply ``subject predicate obj``."""
    return group(predicate) in relation_index(view).implied.get((subject, obj), _EMPTY)


def is_true(view: GraphView, subject: str, predicate: str, obj: str) -> bool:
    """Whether a confident relation states ``subject predicate obj`` (directly, by synonym, reversed
    for a symmetric predicate, or as its exact inverse)."""
    if subject == obj:
        return False
    return group(predicate) in relation_index(view).stated.get((subject, obj), _EMPTY)


def box_gap(a: Box, b: Box) -> float:
    """Pixels between two boxes along the axis where they are furthest apart (0 when they touch)."""
    return max(0.0, b.x1 - a.x2, a.x1 - b.x2, b.y1 - a.y2, a.y1 - b.y2)


def geometry_denies(view: GraphView, subject: Object, predicate: str, obj: Object) -> bool:
    """Whether the boxes clearly contradict ``subject predicate obj`` (only for predicates with geometry)."""
    g = group(predicate)
    direction = DIRECTIONAL.get(g)
    if direction is not None:
        dx, dy = direction
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


def plausible(view: GraphView, subject: str, predicate: str, obj: str) -> bool:
    """Whether the objects' kinds allow ``subject predicate obj`` at all (``scenes.plausible_relation``):
    a negative question asks only this ("Is the batter wearing the ball?" is never asked)."""
    by_id = view.by_id
    return plausible_relation(by_id[subject].label, group(predicate), by_id[obj].label)


def confident_set(view: GraphView) -> frozenset[tuple[str, str, str]]:
    """(subject, normalized predicate, object) of every confident relation between confident objects."""
    return relation_index(view).confident_set


def unique_predicate(view: GraphView, subject: str, obj: str) -> str | None:
    """The one predicate from ``subject`` to ``obj`` when the graph has exactly one (at any score), it is
    confident and both objects are confident; else ``None``."""
    idx = relation_index(view)
    preds = idx.pair_predicates.get((subject, obj), ())
    if len(preds) != 1 or subject == obj:
        return None
    if (subject, preds[0], obj) not in idx.confident_set:
        return None
    return preds[0]


def _offered_predicates(view: GraphView) -> tuple[tuple[str, str], ...]:
    """(predicate, group) of the graph's predicates, then the common ones, one per group (the first)."""
    def build() -> tuple[tuple[str, str], ...]:
        out: dict[str, str] = {}
        for p in (*relation_index(view).predicates, *FALLBACK_PREDICATES):
            out.setdefault(group(p), p)
        return tuple((p, g) for g, p in out.items())
    return view.memo("offered_predicates", build)


def false_predicates(view: GraphView, subject: str, obj: str, exclude: str) -> list[str]:
    """Predicates (from the graph first, then common ones, one per group) that are safely false from
    ``subject`` to ``obj``, plausible for their kinds and not in the group of ``exclude``; none when ``exclude`` itself is a predicate
    geometry cannot deny (it could never be a distractor, so it would be recognisable as the answer)."""
    if subject == obj:
        return []
    excluded = group(exclude)
    if excluded not in DIRECTIONAL and excluded not in CONTACT:
        # an answer that geometry can never deny is never a distractor anywhere, so among options that
        # always are (left of, on, ...) it would stand out without the image: ask it free-form only
        return []
    implied = relation_index(view).implied.get((subject, obj), _EMPTY)
    s, o = view.by_id[subject], view.by_id[obj]
    return [p for p, g in _offered_predicates(view)
            if g != excluded and g not in implied and geometry_denies(view, s, p, o)
            and plausible_relation(s.label, g, o.label)]


ENTANGLING = CONTACT | {"part of", "has", "have", "with", "attached to"}
"""Groups of relations that tie two objects together (holder and held, wearer and worn, container and
contained, part and whole): comparing such a pair by distance, size or side says nothing useful."""
NESTED_COVER = 0.8
"""A box with at least this share inside another is nested in it (the coffee in the cup)."""


def entangled(view: GraphView, a: str, b: str) -> bool:
    """Whether objects ``a`` and ``b`` are one thing and its part, holder, wearer or container: a relation
    of :data:`ENTANGLING` between them (either way, at any score) or one box nested in the other."""
    if a == b:
        return True
    idx = relation_index(view)
    for p in (*idx.pair_predicates.get((a, b), ()), *idx.pair_predicates.get((b, a), ())):
        if group(p) in ENTANGLING or p in ENTANGLING:
            return True
    ba, bb = view.by_id[a].box, view.by_id[b].box
    inter = ba.intersection(bb)
    smaller = min(ba.area, bb.area)
    return smaller > 0 and inter / smaller >= NESTED_COVER
