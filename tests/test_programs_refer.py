"""Referring expressions (``programs.refer.refer``): every referent names exactly one object, judged by
meaning, not spelling: synonyms ("on" / "sitting on" / "Is On"), inverses ("on" / "under") and symmetric
predicates ("next to" / "beside", either way round) all count as the same relation.

The test reads referents back with its own small vocabulary (not the programs' tables)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from programs.base import GraphView, ProgramConfig
from programs.grammar import fmt_box
from programs.refer import refer
from scene_graphs.model import Attribute, Box, Object, Relation, SceneGraph

CONFIG = ProgramConfig(seed=0)

# The test's own meaning of predicates: phrase -> (meaning, reversed?)
MEANING = {
    "on": ("on", False), "sitting on": ("on", False), "on top of": ("on", False), "Is On": ("on", False),
    "atop": ("on", False), "under": ("on", True), "below": ("on", True), "beneath": ("on", True),
    "left of": ("left", False), "to the left of": ("left", False), "right of": ("left", True),
    "next to": ("near", False), "beside": ("near", False), "near": ("near", False),
    "holding": ("hold", False), "held by": ("hold", True), "has": ("has", False),
}
SYMMETRIC = {"near"}
SAME_LOOK = [{"red", "maroon", "crimson", "dark red"}, {"gray", "grey", "silver"}]


def may_hold(g: SceneGraph, s: str, meaning: str, o: str) -> bool:
    """Whether any relation of the graph (any score) may say that ``s`` <meaning> ``o``."""
    for r in g.relations:
        m, rev = MEANING.get(r.predicate, (r.predicate.lower(), False))
        if m != meaning:
            continue
        pairs = {(r.object, r.subject) if rev else (r.subject, r.object)}
        if meaning in SYMMETRIC:
            pairs.add((r.object, r.subject))
        if (s, o) in pairs:
            return True
    return False


def fits(view: GraphView, text: str) -> set[str]:
    """Every visible object ``text`` may describe (by label, attribute and its look-alikes, relation by
    meaning, position, or box as written)."""
    out = set()
    for o in view.objects:
        if text == f"the {o.label}":
            out.add(o.id)
        for a in o.attributes:
            looks = next((grp for grp in SAME_LOOK if a.name in grp), {a.name})
            if any(text == f"the {x} {o.label}" for x in looks):
                out.add(o.id)
        if text == f"the {o.label} at {fmt_box(o.box.normalized(view.width, view.height))}":
            out.add(o.id)
        same = [p for p in view.objects if p.label == o.label and p.id != o.id]
        if 1 <= len(same) <= 2:
            (x, y), others = o.box.center, [p.box.center for p in same]
            mx, my = 0.1 * view.width, 0.1 * view.height
            clear = {"left-most": all(x + mx <= px for px, _ in others), "right-most": all(x - mx >= px for px, _ in others),
                     "top-most": all(y + my <= py for _, py in others), "bottom-most": all(y - my >= py for _, py in others)}
            if any(ok and text == f"the {where} {o.label}" for where, ok in clear.items()):
                out.add(o.id)
        m = re.fullmatch(rf"the {re.escape(o.label)} (?:that )?(?P<p>.+) the (?P<t>.+)", text)
        if m:
            phrase = m["p"].removeprefix("is ")
            meaning = MEANING.get(phrase, (phrase, False))
            targets = [t for t in view.objects if t.label == m["t"]]
            for t in targets:
                forward = may_hold(view.graph, o.id, meaning[0], t.id)
                backward = may_hold(view.graph, t.id, meaning[0], o.id)
                if (backward if meaning[1] else forward):
                    out.add(o.id)
    return out


def graph(objects, relations=(), width=200, height=100) -> SceneGraph:
    return SceneGraph("refer", width, height, objects=tuple(objects), relations=tuple(relations),
                      fields=frozenset({"objects", "attributes", "relations"}))


def cup(oid: str, x: float, score: float = 0.9, attrs=()) -> Object:
    return Object(oid, "cup", Box(x, 40, x + 20, 60), score, attributes=tuple(Attribute(n, c, s) for n, c, s in attrs))


TABLE = Object("t", "table", Box(0, 50, 200, 100), 0.9)


@pytest.mark.parametrize("other", [
    Relation("b", "sitting on", "t", 0.3),   # a synonym, even uncertain
    Relation("b", "Is On", "t", 0.9),        # the same predicate, written otherwise
    Relation("t", "under", "b", 0.6),        # the inverse
    Relation("b", "on top of", "t", 0.95),
])
def test_relation_referent_refused_when_another_object_may_fit(other):
    # the two cups are 5% of the width apart: no position referent either
    g = graph([cup("a", 50), cup("b", 60), TABLE], [Relation("a", "on", "t", 0.9), other])
    view = GraphView(g, CONFIG)
    ref = refer(view, view.by_id["a"], allow_region=False)
    assert ref is None, ref
    assert fits(view, refer(view, view.by_id["a"]).text) == {"a"}  # the region referent still works


@pytest.mark.parametrize("mine, theirs", [
    (Relation("a", "next to", "t", 0.9), Relation("t", "beside", "b", 0.4)),  # symmetric, reversed, synonym
    (Relation("a", "left of", "t", 0.9), Relation("t", "right of", "b", 0.9)),  # inverse
    (Relation("a", "holding", "t", 0.9), Relation("t", "held by", "b", 0.7)),
])
def test_symmetric_and_inverse_relations_make_a_referent_ambiguous(mine, theirs):
    g = graph([cup("a", 50), cup("b", 60), TABLE], [mine, theirs])
    view = GraphView(g, CONFIG)
    assert refer(view, view.by_id["a"], allow_region=False) is None


def test_relation_referent_written_normalized_and_unique():
    g = graph([cup("a", 50), cup("b", 60), TABLE], [Relation("a", "Is On", "t", 0.9), Relation("b", "near", "t", 0.9)])
    view = GraphView(g, CONFIG)
    ref = refer(view, view.by_id["a"])
    assert ref is not None and ref.text == "the cup on the table" and ref.strategy == "relation"
    assert ref.mentions == ("t",)
    assert fits(view, ref.text) == {"a"}


def test_verb_predicates_read_as_relative_clauses():
    g = graph([cup("a", 50), cup("b", 60), TABLE], [Relation("a", "has", "t", 0.9)])
    view = GraphView(g, CONFIG)
    assert refer(view, view.by_id["a"]).text == "the cup that has the table"


def test_attribute_referent_refused_for_a_look_alike():
    g = graph([cup("a", 50, attrs=(("red", "color", 0.9),)), cup("b", 60, attrs=(("maroon", "color", 0.3),)), TABLE])
    view = GraphView(g, CONFIG)
    ref = refer(view, view.by_id["a"])
    assert ref is not None and ref.strategy == "region"
    assert fits(view, ref.text) == {"a"}


def test_region_referent_refused_when_boxes_read_the_same():
    # boxes 0.1 px apart in a 200 px image print identically
    g = graph([Object("a", "cup", Box(50, 40, 70, 60)), Object("b", "cup", Box(50.1, 40, 70.1, 60))])
    view = GraphView(g, CONFIG)
    assert refer(view, view.by_id["a"]) is None and refer(view, view.by_id["b"]) is None


PREDICATES = sorted(MEANING)


@st.composite
def cluttered(draw):
    """Two or three cups (and plates) with relations to one table and to each other, predicates drawn
    from synonyms, inverses and symmetric phrases, scores on both sides of every threshold."""
    n = draw(st.integers(2, 5))
    objs = [TABLE]
    for i in range(n):
        label = draw(st.sampled_from(["cup", "plate"]))
        x = draw(st.integers(0, 180))
        attrs = tuple(Attribute(name, "color", draw(st.sampled_from([0.3, 0.6, 0.9])))
                      for name in draw(st.lists(st.sampled_from(["red", "maroon", "gray", "silver"]), max_size=2,
                                                unique=True)))
        objs.append(Object(f"o{i}", label, Box(x, 10, x + 20, 40), draw(st.sampled_from([0.3, 0.9])),
                           attributes=attrs))
    ids = [o.id for o in objs]
    rels = {}
    for _ in range(draw(st.integers(0, 8))):
        s, o = draw(st.sampled_from(ids)), draw(st.sampled_from(ids))
        p = draw(st.sampled_from(PREDICATES))
        if s != o:
            rels[(s, p, o)] = Relation(s, p, o, draw(st.sampled_from([0.1, 0.3, 0.6, 0.95])))
    return graph(objs, list(rels.values()))


@settings(max_examples=150, deadline=None)
@given(cluttered())
def test_every_referent_fits_exactly_its_object(g):
    view = GraphView(g, CONFIG)
    for o in view.objects:
        for allow_region in (False, True):
            ref = refer(view, o, allow_region=allow_region)
            if ref is not None:
                assert fits(view, ref.text) == {o.id}, (ref, [(r.subject, r.predicate, r.object) for r in g.relations])
                assert all(m in view.by_id for m in ref.mentions)


def test_referents_are_cached_per_view():
    rng = np.random.default_rng(0)
    from scene_graphs.synthetic import random_graph

    g = random_graph(rng, n_objects=12, n_relations=20)
    view = GraphView(g, CONFIG)
    first = [refer(view, o) for o in view.objects]
    assert [refer(view, o) for o in view.objects] == first
    assert all(a is b for a, b in zip(first, (refer(view, o) for o in view.objects)))
