"""Scene-graph family: subgraph referring expressions, attribute / relation questions, dense captions."""

from __future__ import annotations

import re

import pytest

from programs.base import GraphView
from programs.grammar import number_word, plural
from programs.single.relations import verb_parts
from tests.test_programs_relations import (
    CONF,
    confident_relation,
    denied,
    graphs,
    norm,
    realized,
    resolve,
    stated,
    template_fields,
)

GRAPHS = graphs(200, seed=8, text=True)
SAME = {"grey": "gray", "wooden": "wood", "metallic": "metal"}


def test_refexp_object():
    n = 0
    for view, plan, value, r in realized("single.refexp_object", GRAPHS):
        a, p, anchor = plan["attribute"], plan["predicate"], view.by_id[plan["anchor_id"]]
        f = template_fields("single.refexp_object", r, finite=verb_parts(p)[2])
        assert f["attr"] == a and f["anchor"] == anchor.label
        assert [o.id for o in view.objects if o.label == anchor.label] == [anchor.id] and anchor.score >= CONF
        fits = [o for o in view.objects if a in o.attribute_names() and p in stated(view.graph, o.id, anchor.id)]
        assert len(fits) == 1 and fits[0].label == value == r.answer
        obj = fits[0]
        assert any(x.name == a and x.score >= CONF for x in obj.attributes)
        assert confident_relation(view, obj.id, p, anchor.id)
        for label in r.options:
            assert label != value
            assert not any(a in o.attribute_names() and p in stated(view.graph, o.id, anchor.id)
                           for o in view.objects if o.label == label)
        n += 1
    assert n > 50


def test_subgraph_relation():
    n = compound = 0
    for view, plan, value, r in realized("single.subgraph_relation", GRAPHS):
        s, o = plan["subject_id"], plan["object_id"]
        f = template_fields("single.subgraph_relation", r)
        subj, obj = f.get("subj") or f["Subj"], f["obj"]
        assert resolve(view, subj) == {s}, r.question
        assert resolve(view, obj) == {o}, r.question
        assert subj != f"the {view.by_id[s].label}" or obj != f"the {view.by_id[o].label}"
        compound += " that " in subj + obj
        assert stated(view.graph, s, o) == {value} and confident_relation(view, s, value, o)
        assert all(denied(view, s, d, o) for d in r.options)
        n += 1
    assert n > 50 and compound > 10


def test_subgraph_attribute():
    n = 0
    for view, plan, value, r in realized("single.subgraph_attribute", GRAPHS):
        obj, category = view.by_id[plan["object_id"]], plan["category"]
        f = template_fields("single.subgraph_attribute", r)
        assert f["category"] == category
        assert resolve(view, f["obj"]) == {obj.id}, r.question
        names = {a.name for a in obj.attributes if a.category == category}
        assert names == {value} and max(a.score for a in obj.attributes if a.name == value) >= CONF
        assert value not in f["obj"].split(), "the question must not name the answer"
        own = {SAME.get(x, x) for x in obj.attribute_names()}
        assert len(r.options) >= 3 and not any(SAME.get(d, d) in own for d in r.options)
        n += 1
    assert n > 50


# ----------------------------------------------------------------------------------- dense caption
def _count_items(view: GraphView, sentence: str) -> bool:
    m = re.fullmatch(r"The image shows (.+)\.", sentence)
    if not m:
        return False
    items = re.split(r", | and ", m[1])
    for item in items:
        number, _, noun = item.partition(" ")
        counts = {o.label: sum(x.label == o.label for x in view.objects) for o in view.objects}
        matches = [label for label, c in counts.items()
                   if (number in ("a", "an") and c == 1 and noun == label)
                   or (number == number_word(c) and noun == (label if c == 1 else plural(label)))]
        assert len(matches) == 1, (sentence, item)
        assert all(o.score >= CONF for o in view.objects if o.label == matches[0]), "uncertain category counted"
    return True


def _attribute_sentence(view: GraphView, sentence: str) -> bool:
    for m in re.finditer(r" is ", sentence):
        ref, rest = sentence[:m.start()], sentence[m.end():-1]
        ids = resolve(view, ref[:1].lower() + ref[1:])
        names = re.split(r", | and ", rest)
        if len(ids) == 1:
            obj = view.by_id[ids.pop()]
            if all(any(a.name == n and a.score >= CONF for a in obj.attributes) for n in names):
                return obj.score >= CONF
    return False


def _relation_sentence(view: GraphView, sentence: str) -> bool:
    body = sentence[:1].lower() + sentence[1:-1]
    for p in sorted({norm(r.predicate) for r in view.graph.relations}):
        finite = f" {verb_parts(p)[2]} "
        for m in re.finditer(re.escape(finite), body):
            s_ids, o_ids = resolve(view, body[:m.start()]), resolve(view, body[m.end():])
            if len(s_ids) == 1 and len(o_ids) == 1 and confident_relation(view, s_ids.pop(), p, o_ids.pop()):
                return True
    return False


def _text_sentence(view: GraphView, sentence: str) -> bool:
    m = re.fullmatch(r"Text reading (.+) is visible\.", sentence)
    if not m:
        return False
    quoted = re.findall(r"\"([^\"]+)\"", m[1])
    assert quoted and all(any(t.text.strip() == q and t.score >= CONF for t in view.graph.text) for q in quoted)
    return True


def test_dense_caption_states_only_graph_facts():
    n = sentences = 0
    for view, plan, value, r in realized("single.dense_caption", GRAPHS):
        assert r.options == [] and r.answer in r.rationale
        for sentence in re.split(r"(?<=\.) (?=[A-Z])", r.answer):
            assert (_count_items(view, sentence) or _text_sentence(view, sentence)
                    or _attribute_sentence(view, sentence) or _relation_sentence(view, sentence)), sentence
            sentences += 1
        n += 1
    assert n > 150 and sentences > 4 * n


def test_dense_caption_is_free_form_only():
    from programs.base import get_program

    assert get_program("single.dense_caption").num_options == 0


@pytest.mark.parametrize("pid", ["single.refexp_object", "single.subgraph_relation", "single.subgraph_attribute",
                                 "single.dense_caption"])
def test_uncertain_attributes_are_never_stated(pid):
    """With every attribute uncertain, nothing about attributes may be asked or said."""
    from scene_graphs.model import Attribute, Object

    lowered = [g.replace(objects=tuple(Object(o.id, o.label, o.box, o.score, o.mask,
                                              tuple(Attribute(a.name, a.category, 0.4) for a in o.attributes))
                                       for o in g.objects)) for g in GRAPHS[:80]]
    for view, plan, value, r in realized(pid, lowered):
        assert pid in ("single.subgraph_relation", "single.dense_caption"), f"{pid} asked about {plan}"
        attrs = {a.name for o in view.objects for a in o.attributes}
        words = set(re.findall(r"[a-z]+", r.question + " " + r.answer))
        assert not (attrs & words) or all(w in {o.label for o in view.objects} for w in attrs & words)
