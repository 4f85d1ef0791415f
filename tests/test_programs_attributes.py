"""Semantic truth of the ``attributes`` family, recomputed from the objects' attribute annotations."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from programs.base import GraphView, get_program
from programs.grammar import fmt_box
from scene_graphs.model import ATTRIBUTE_CATEGORIES, Object
from tests.test_programs_objects import (
    CONFIG,
    _relation_phrases,
    all_plans,
    assert_names_exactly,
    graph_pool,
    make_graph,
    obj,
    realized,
)

CONF, LO = CONFIG.confident_score, CONFIG.min_score

# Values that may describe the same look: a distractor must never be one of these for the answer.
PEOPLE = {"person", "man", "woman", "boy", "girl", "child", "player", "skier"}
"""Labels of people: only their state and size are asked about or stated (their "colour" is their
clothes', or worse, skin; material, shape and pattern describe clothes too)."""

SAME_LOOK = [{"gray", "grey", "silver"}, {"wood", "wooden"}, {"metal", "metallic", "steel"}, {"large", "big", "huge"},
             {"small", "little", "tiny"}, {"open", "opened"}, {"closed", "shut"}, {"yellow", "gold", "golden"}]


def confident(o: Object, category: str) -> set[str]:
    return {a.name for a in o.attributes if a.category == category and a.score >= CONF}


def uncertain(o: Object, category: str) -> set[str]:
    return {a.name for a in o.attributes if a.category == category and LO <= a.score < CONF}


def every_name(o: Object) -> set[str]:
    return {a.name for a in o.attributes}


def same_look(a: str, b: str) -> bool:
    return a == b or any(a in g and b in g for g in SAME_LOOK)


@pytest.fixture(scope="module")
def graphs():
    return graph_pool(seed=33)


# =========================================================================== attribute of an object
@pytest.mark.parametrize("pid, category", [
    ("single.attribute_color", "color"), ("single.attribute_material", "material"),
    ("single.attribute_size", "size"), ("single.attribute_state", "state"),
])
def test_attribute_of_answers_the_single_confident_value(graphs, pid, category):
    p = get_program(pid)
    n = mc = 0
    for g, view, plan, value in all_plans(p, graphs):
        o = view.by_id[plan["object_id"]]
        assert o.score >= CONF
        assert confident(o, category) == {value} and not uncertain(o, category), (o, value)
        r = realized(p, view, plan, value)
        assert r.answer == value
        ref = r.question
        # the object is named uniquely, and not by the attribute asked about
        text = next(t for t in _referents(view, o) if t in ref)
        assert_names_exactly(view, text, o)
        assert value not in text.split()
        for d in r.options:
            assert d not in every_name(o) and not any(same_look(d, n) for n in every_name(o)), (d, o.attributes)
        mc += len(r.options) >= p.num_options - 1
        n += 1
    assert n > 30 and mc > 10, (n, mc)


def _referents(view: GraphView, o: Object) -> list[str]:
    texts = [f"the {o.label} at {fmt_box(o.box.normalized(view.width, view.height))}", f"the {o.label}",
             *(f"the {a.name} {o.label}" for a in o.attributes),
             *(f"the {w} {o.label}" for w in ("left-most", "right-most", "top-most", "bottom-most")),
             *(t for r in view.relations if r.subject == o.id
               for t in _relation_phrases(o.label, r.predicate, view.by_id[r.object].label))]
    return sorted(texts, key=len, reverse=True)


def test_attribute_of_skips_uncertain_and_ambiguous_values():
    g = make_graph([
        obj("a", "cup", (0, 0, 40, 40), attrs=(("red", "color", 0.9), ("blue", "color", 0.3))),   # uncertain blue
        obj("b", "plate", (50, 0, 90, 40), attrs=(("white", "color", 0.9), ("black", "color", 0.8))),  # two colours
        obj("c", "fork", (100, 0, 140, 40), attrs=(("silver", "color", 0.9),)),
        obj("d", "bowl", (150, 0, 190, 40), score=0.3, attrs=(("black", "color", 0.9),)),  # uncertain object
    ])
    view = GraphView(g, CONFIG)
    p = get_program("single.attribute_color")
    asked = {pl["object_id"]: p.solve(view, pl) for pl in p.candidates(view)}
    assert asked == {"c": "silver"}
    r = realized(p, view, {"object_id": "c"}, "silver")
    assert "the fork" in r.question and not {"gray", "grey", "silver"} & set(r.options)
    assert len(r.options) >= 3


def test_attribute_distractors_avoid_any_trace_on_the_object():
    g = make_graph([obj("a", "cup", (0, 0, 40, 40), attrs=(("red", "color", 0.9), ("navy", "color", 0.05),
                                                          ("gold", "other", 0.6)))])
    view = GraphView(g, CONFIG)
    p = get_program("single.attribute_color")
    assert p.solve(view, {"object_id": "a"}) == "red"
    options = realized(p, view, {"object_id": "a"}, "red").options
    assert options and not {"red", "blue", "yellow", "orange"} & set(options)


# =========================================================================== count by attribute
def test_count_attribute_counts_decided_objects(graphs):
    p = get_program("single.count_attribute")
    answers = Counter()
    for g, view, plan, value in all_plans(p, graphs):
        label, cat, attr = plan["label"], plan["category"], plan["attribute"]
        objs = [o for o in g.objects if o.label == label and o.score >= LO]
        assert objs and all(o.score >= CONF for o in objs)
        assert all(confident(o, cat) and not uncertain(o, cat) for o in objs), "every object must be decided"
        assert value == sum(attr in confident(o, cat) for o in objs)
        r = realized(p, view, plan, value)
        assert r.answer == str(value) and attr in r.question and str(value) not in r.options
        answers[value] += 1
    assert answers[0] > 10 and answers[1] > 10, answers


def test_count_attribute_abstains_when_an_object_is_undecided():
    g = make_graph([
        obj("a", "cup", (0, 0, 40, 40), attrs=(("red", "color", 0.9),)),
        obj("b", "cup", (50, 0, 90, 40), attrs=(("red", "color", 0.35),)),  # uncertain: cups' colours not known
        obj("c", "car", (100, 0, 140, 40), attrs=(("red", "color", 0.9), ("metal", "material", 0.9))),
        obj("d", "car", (150, 0, 190, 40), attrs=(("blue", "color", 0.9), ("metal", "material", 0.8))),
    ])
    view = GraphView(g, CONFIG)
    p = get_program("single.count_attribute")
    plans = p.candidates(view)
    assert all(pl["label"] != "cup" for pl in plans)
    solved = {(pl["label"], pl["attribute"]): p.solve(view, pl) for pl in plans}
    assert solved[("car", "red")] == 1 and solved[("car", "blue")] == 1 and solved[("car", "metal")] == 2
    assert p.solve(view, {"label": "cup", "category": "color", "attribute": "red"}) is None
    assert view.stats["abstained single.count_attribute: attribute not decided for every object of the category"] >= 1


def test_count_attribute_zero_answers_stay_plausible():
    g = make_graph([obj("a", "door", (0, 0, 40, 40), attrs=(("open", "state", 0.9),)),
                    obj("b", "person", (50, 0, 90, 40), attrs=(("standing", "state", 0.9),)),
                    obj("c", "car", (100, 0, 140, 40), attrs=(("parked", "state", 0.9),))])
    view = GraphView(g, CONFIG)
    asked = {(pl["label"], pl["attribute"]) for pl in get_program("single.count_attribute").candidates(view)}
    assert {a for lbl, a in asked if lbl == "door"} == {"open", "closed"}
    assert {a for lbl, a in asked if lbl == "car"} == {"parked", "moving"}
    assert "standing" in {a for lbl, a in asked if lbl == "person"}
    assert not {"open", "closed", "parked", "moving"} & {a for lbl, a in asked if lbl == "person"}


def test_a_far_colour_on_part_of_an_object_leaves_its_colour_unsaid():
    """A red-brown cup with its white inside (pixel shares 0.54 orange, 0.22 brown, 0.11 white): no colour
    question about it, no "How many white cups? 0"; a near colour at that share (brown) changes nothing."""
    cup = obj("a", "cup", (0, 0, 40, 40), attrs=(("orange", "color", 0.54), ("brown", "color", 0.12),
                                                 ("white", "color", 0.11)))
    plain = obj("a", "cup", (0, 0, 40, 40), attrs=(("orange", "color", 0.74), ("brown", "color", 0.12)))
    for o, decided in ((cup, False), (plain, True)):
        view = GraphView(make_graph([o, obj("c", "table", (0, 0, 200, 100), attrs=(("white", "color", 0.9),))]), CONFIG)
        colour = get_program("single.attribute_color")
        assert (colour.solve(view, {"object_id": "a"}) == "orange") is decided
        counts = [pl for pl in get_program("single.count_attribute").candidates(view) if pl["label"] == "cup"]
        assert bool(counts) is decided
        assert not {pl["attribute"] for pl in counts} & {"brown", "red"}  # neighbours of orange: never a zero answer
        caption = get_program("single.dense_caption")
        facts = caption.solve(view, {"style": "paragraph"})
        stated = {n for oid, names in facts["attributes"] if oid == "a" for n in names}
        assert ("orange" in stated) is decided, facts  # the caption never names one colour of a two-coloured cup


def test_count_attribute_refuses_near_synonyms():
    g = make_graph([obj("a", "car", (0, 0, 40, 40), attrs=(("red", "color", 0.9),)),
                    obj("b", "car", (50, 0, 90, 40), attrs=(("maroon", "color", 0.9),))])
    view = GraphView(g, CONFIG)
    p = get_program("single.count_attribute")
    assert p.solve(view, {"label": "car", "category": "color", "attribute": "red"}) is None
    assert all(pl["attribute"] not in ("red", "maroon") for pl in p.candidates(view))


# =========================================================================== which object has it
def test_which_has_attribute_is_unique(graphs):
    p = get_program("single.which_has_attribute")
    n = 0
    for g, view, plan, value in all_plans(p, graphs):
        attr, cat = plan["attribute"], plan["category"]
        holders = [o for o in view.objects if any(a.name == attr and a.score >= LO for a in o.attributes)]
        assert holders and {o.label for o in holders} == {value}
        assert all(o.score >= CONF and attr in confident(o, cat) for o in holders)
        r = realized(p, view, plan, value)
        assert r.answer == value and len(r.options) >= 2
        for d in r.options:
            objs = [o for o in view.objects if o.label == d]
            assert objs and d != value
            for o in objs:  # every object of a distractor label is known not to have it
                assert o.score >= CONF and confident(o, cat) and not uncertain(o, cat)
                assert attr not in every_name(o)
        n += 1
    assert n > 10


def test_which_has_attribute_hand_made():
    g = make_graph([
        obj("a", "cup", (0, 0, 40, 40), attrs=(("red", "color", 0.9),)),
        obj("b", "plate", (50, 0, 90, 40), attrs=(("white", "color", 0.9),)),
        obj("c", "fork", (100, 0, 140, 40), attrs=(("silver", "color", 0.8),)),
        obj("d", "bowl", (150, 0, 190, 40), attrs=(("blue", "color", 0.7),)),
        obj("e", "napkin", (150, 50, 190, 90), attrs=(("white", "color", 0.9),)),
    ])
    view = GraphView(g, CONFIG)
    p = get_program("single.which_has_attribute")
    solved = {pl["attribute"]: p.solve(view, pl) for pl in p.candidates(view)}
    assert solved["red"] == "cup" and solved["blue"] == "bowl"
    assert "white" not in solved, "two labels are white: no unique answer"
    r = realized(p, view, {"category": "color", "attribute": "red"}, "cup")
    assert set(r.options) == {"plate", "fork", "bowl", "napkin"}


# =========================================================================== attributes at a region
def test_attributes_at_region_lists_confident_attributes(graphs):
    p = get_program("single.attributes_at_region")
    n = 0
    for g, view, plan, value in all_plans(p, graphs):
        o = view.by_id[plan["object_id"]]
        assert o.score >= CONF
        expected = []
        for c in ATTRIBUTE_CATEGORIES:
            if not uncertain(o, c) and not (c not in ("state", "size") and o.label in PEOPLE):
                expected += sorted(confident(o, c))
        assert value == expected and value
        assert all(q.box.iou(o.box) < 0.5 for q in view.objects if q.id != o.id), "region must single out one box"
        r = realized(p, view, plan, value)
        assert fmt_box(o.box.normalized(g.width, g.height)) in r.question
        assert r.answer == ", ".join(value)
        names = every_name(o)
        for d in r.options:
            assert d != r.answer
            assert any(v not in names for v in d.split(", ")), (d, names)
        n += 1
    assert n > 30


@pytest.mark.parametrize("pid", ["single.attribute_color", "single.attribute_material", "single.count_attribute",
                                 "single.which_has_attribute", "single.attributes_at_region"])
def test_colours_of_people_are_never_used(pid):
    g = make_graph([obj("a", "man", (0, 0, 40, 40), attrs=(("crimson", "color", 0.9), ("standing", "state", 0.9),
                                                          ("cotton", "material", 0.9))),
                    obj("b", "woman", (50, 0, 90, 40), attrs=(("ivory", "color", 0.9),)),
                    obj("c", "car", (100, 0, 140, 40), attrs=(("red", "color", 0.9), ("metal", "material", 0.9))),
                    obj("d", "cup", (150, 0, 190, 40), attrs=(("blue", "color", 0.9),)),
                    obj("e", "dog", (150, 50, 190, 90), attrs=(("brown", "color", 0.9),))])
    p = get_program(pid)
    view = GraphView(g, CONFIG)
    plans = p.candidates(view)
    assert plans, pid
    for plan in plans:
        r = realized(p, view, plan, p.solve(view, plan))
        text = f"{r.question} {r.answer} {r.rationale}"
        assert not {"crimson", "ivory", "cotton"} & set(re.findall(r"[a-z]+", text)), (pid, text)
