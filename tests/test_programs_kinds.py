"""Kinds of things (issue 12, items 2 and 6), from ``programs/data/kinds.json``.

* a hypernym ("the person", "the vehicle") never names a unique referent beside one of its hyponyms;
* labels that name no thing ("game", "scene", "view") are never counted or asked about;
* relations implausible for the kinds ("glove wearing human") are dropped and counted, and neither
  negative yes/no questions nor relation options use a predicate the kinds do not allow.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from programs.base import GraphView, ProgramConfig, load_all, run_single
from programs.predicates import group
from programs.refer import refer
from programs.scenes import is_object_label, may_name_same, plausible_relation
from scene_graphs.model import Attribute, Box, Object, Relation, SceneGraph

KINDS = json.loads((Path(__file__).parents[1] / "programs" / "data" / "kinds.json").read_text())
TAXONOMY = KINDS["taxonomy"]
PAIRS = sorted((kind, member) for kind in ("person", "vehicle", "animal") for member in TAXONOMY[kind])
NON_OBJECTS = sorted(KINDS["non_objects"])
THINGS = ("cup", "table", "dog", "batter", "pitcher", "glove", "helmet", "ball", "car", "shirt", "human")
SINGLE = [cls() for cls in load_all().values() if not cls.multi_image]
PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))


@st.composite
def _graph(draw: st.DrawFn, labels: list[str], predicates: tuple[str, ...] = ("wearing", "on", "holding")) -> SceneGraph:
    """Objects with ``labels`` at random boxes in a 100x100 image, random confident relations among them."""
    objects = []
    for i, label in enumerate(labels):
        x, y = draw(st.integers(0, 70)), draw(st.integers(0, 70))
        w, h = draw(st.integers(5, 30)), draw(st.integers(5, 30))
        objects.append(Object(f"o{i}", label, Box(x, y, x + w, y + h), score=0.95))
    ids = [o.id for o in objects]
    rels: dict[tuple[str, str, str], Relation] = {}
    if len(ids) >= 2:
        for _ in range(draw(st.integers(0, 6))):
            s, o, p = draw(st.sampled_from(ids)), draw(st.sampled_from(ids)), draw(st.sampled_from(predicates))
            if s != o:
                rels[(s, p, o)] = Relation(s, p, o, score=0.95)
    return SceneGraph(image_id=f"k{draw(st.integers(0, 10**6))}", width=100, height=100,
                      objects=tuple(objects), relations=tuple(rels.values()), fields=frozenset({"objects", "relations"}))


def test_every_hypernym_may_name_its_hyponyms():
    for kind, members in TAXONOMY.items():
        for member in members:
            assert may_name_same(kind, member) and may_name_same(member, kind), (kind, member)


@PROPERTY
@given(st.sampled_from(PAIRS), st.lists(st.sampled_from(THINGS), max_size=4), st.data())
def test_hypernym_is_never_unique_beside_a_hyponym(pair, others, data):
    kind, member = pair
    view = GraphView(data.draw(_graph([kind, member, *others])), ProgramConfig(seed=0))
    ref = refer(view, view.by_id["o0"], allow_region=False)
    assert ref is None or ref.strategy != "label", (kind, member, ref)
    ref = refer(view, view.by_id["o1"], allow_region=False)
    assert ref is None or ref.strategy != "label", (kind, member, ref)


@PROPERTY
@given(st.lists(st.sampled_from(NON_OBJECTS), min_size=1, max_size=3),
       st.lists(st.sampled_from(THINGS), min_size=1, max_size=4), st.data())
def test_non_object_labels_are_never_counted_or_asked(non_objects, things, data):
    graph = data.draw(_graph([*non_objects, *things]))
    hidden = {o.id for o in graph.objects if not is_object_label(o.label)}
    for qa in run_single(graph, ProgramConfig(seed=1, max_per_image=50), SINGLE):
        used = set(qa.provenance.get("objects", ()))
        assert not used & hidden, (qa.question, used & hidden)
        named = {v for v in _strings(qa.plan)} | {str(qa.answer)} | {str(o) for o in qa.options or ()}
        assert not named & set(non_objects), (qa.program, qa.question, qa.answer, qa.options)


def _strings(value: object) -> list[str]:
    """Every string inside a plan (dict values, list items)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


@PROPERTY
@given(st.lists(st.sampled_from(THINGS), min_size=2, max_size=6), st.data())
def test_relations_implausible_for_the_kinds_are_dropped_and_counted(labels, data):
    graph = data.draw(_graph(labels))
    stats: Counter = Counter()
    view = GraphView(graph, ProgramConfig(seed=0), stats)
    label = {o.id: o.label for o in graph.objects}
    bad = [r for r in graph.relations
           if not plausible_relation(label[r.subject], group(r.predicate), label[r.object])]
    assert all(r not in bad for r in view.relations)
    assert stats["relations: implausible for the kinds of subject and object"] == len(bad)
    for qa in run_single(graph, ProgramConfig(seed=2, max_per_image=50), SINGLE):
        if qa.program not in ("single.verify_relation", "single.relation_between"):
            continue
        s, o = label[qa.plan["subject_id"]], label[qa.plan["object_id"]]
        preds = [qa.plan.get("predicate")] if qa.program == "single.verify_relation" else list(qa.options or ())
        for p in preds:
            if p:
                assert plausible_relation(s, group(p), o), (qa.question, qa.answer, qa.options)


def test_glove_wearing_human_is_implausible():
    assert not plausible_relation("glove", "wearing", "human")
    assert not plausible_relation("batter", "wearing", "ball")
    assert plausible_relation("batter", "wearing", "helmet")
    assert plausible_relation("helmet", "worn by", "batter")
    assert plausible_relation("statue", "wearing", "hat")  # unknown wearer: allowed


@PROPERTY
@given(st.lists(st.sampled_from(("batter", "man", "dog", "bat", "helmet", "cup", "table")), min_size=2, max_size=6),
       st.data())
def test_templates_name_a_person_as_a_person(labels, data):
    graph = data.draw(_graph(labels, predicates=("holding", "on", "wearing")))
    objects = tuple(dataclasses.replace(o, attributes=(Attribute("swinging", "state", 0.95),))
                    if o.label in ("batter", "man") else
                    dataclasses.replace(o, attributes=(Attribute("red", "color", 0.95),)) for o in graph.objects)
    graph = graph.replace(objects=objects, fields=graph.fields | {"attributes"})
    for qa in run_single(graph, ProgramConfig(seed=3, max_per_image=50), SINGLE):
        assert "swinging object" not in qa.question and "swinging thing" not in qa.question, qa.question
