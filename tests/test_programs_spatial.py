"""Semantic truth of the ``spatial`` family, recomputed from the boxes."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest

from programs.base import GraphView, get_program
from scene_graphs.model import Object
from tests.test_programs_objects import (
    CONFIG,
    all_plans,
    assert_names_exactly,
    find_named,
    graph_pool,
    make_graph,
    obj,
    realized,
    strip_the,
)


@pytest.fixture(scope="module")
def graphs():
    return graph_pool(seed=44)


def unit_center(g, o: Object) -> tuple[float, float]:
    return (o.box.x1 + o.box.x2) / 2 / g.width, (o.box.y1 + o.box.y2) / 2 / g.height


def dist(g, a: Object, b: Object) -> float:
    (ax, ay), (bx, by) = unit_center(g, a), unit_center(g, b)
    return math.hypot(ax - bx, ay - by)


def check_names(view, question, ids):
    names = find_named(view, question, ids)
    for i, text in names.items():
        assert_names_exactly(view, text, view.by_id[i])
        assert "most" not in text and " at [" not in text
        assert not {"left", "right", "above", "below", "near", "behind"} & set(text.split())
    return names


# =========================================================================== direction
def test_relative_position_matches_the_boxes(graphs):
    p = get_program("single.relative_position")
    answers = Counter()
    for g, view, plan, value in all_plans(p, graphs):
        a, b = view.by_id[plan["subject_id"]], view.by_id[plan["object_id"]]
        assert min(a.score, b.score) >= CONFIG.confident_score
        A, B = a.box, b.box
        x_overlap = min(A.x2, B.x2) > max(A.x1, B.x1)
        y_overlap = min(A.y2, B.y2) > max(A.y1, B.y1)
        truth = {"left": y_overlap and A.x2 < B.x1, "right": y_overlap and A.x1 > B.x2,
                 "above": x_overlap and A.y2 < B.y1, "below": x_overlap and A.y1 > B.y2}
        assert [d for d, ok in truth.items() if ok] == [value], (value, A, B)
        r = realized(p, view, plan, value)
        assert r.answer == value and sorted(r.options) == sorted(set(truth) - {value})
        assert not any(truth[d] for d in r.options)
        check_names(view, r.question, [a.id, b.id])
        answers[value] += 1
    assert len(answers) == 4 and min(answers.values()) > 20, answers


def test_relative_position_hand_made():
    g = make_graph([obj("a", "cup", (10, 40, 40, 70)), obj("b", "plate", (100, 45, 140, 75)),
                    obj("c", "fork", (150, 0, 190, 20))])  # fork is diagonal from the cup: no direction
    view = GraphView(g, CONFIG)
    p = get_program("single.relative_position")
    assert p.solve(view, {"subject_id": "a", "object_id": "b"}) == "left"
    assert p.solve(view, {"subject_id": "b", "object_id": "a"}) == "right"
    assert p.solve(view, {"subject_id": "a", "object_id": "c"}) is None
    pairs = {(pl["subject_id"], pl["object_id"]) for pl in p.candidates(view)}
    assert ("a", "c") not in pairs and ("c", "a") not in pairs and ("a", "b") in pairs


# =========================================================================== size
def test_relative_size_ratio(graphs):
    p = get_program("single.relative_size")
    answers = Counter()
    for g, view, plan, value in all_plans(p, graphs):
        a, b = view.by_id[plan["subject_id"]], view.by_id[plan["object_id"]]
        big, small = (a, b) if value == "larger" else (b, a)
        assert big.box.area >= 1.5 * small.box.area, (value, a.box, b.box)
        if a.mask is not None and b.mask is not None:
            assert big.mask.area >= 1.5 * small.mask.area
        r = realized(p, view, plan, value)
        assert r.options == ["smaller" if value == "larger" else "larger"]
        check_names(view, r.question, [a.id, b.id])
        answers[value] += 1
    assert answers["larger"] > 20 and answers["smaller"] > 20


def test_relative_size_needs_a_clear_ratio():
    g = make_graph([obj("a", "cup", (0, 0, 40, 40)), obj("b", "plate", (100, 0, 145, 40))])  # ratio 1.125
    view = GraphView(g, CONFIG)
    p = get_program("single.relative_size")
    assert p.candidates(view) == [] and p.solve(view, {"subject_id": "a", "object_id": "b"}) is None


# =========================================================================== centre
def test_closest_to_center(graphs):
    p = get_program("single.closest_to_center")
    n = 0
    for g, view, plan, value in all_plans(p, graphs):
        objs = [view.by_id[i] for i in plan["object_ids"]]
        assert len({o.label for o in objs}) == len(objs)
        d = sorted((math.hypot(x - 0.5, y - 0.5), o.id) for o in objs for x, y in [unit_center(g, o)])
        assert d[1][0] - d[0][0] >= 0.05 - 1e-9
        r = realized(p, view, plan, value)
        names = check_names(view, r.question, plan["object_ids"])
        assert value == strip_the(names[d[0][1]])
        assert set(r.options) == {strip_the(names[i]) for _, i in d[1:]}
        n += 1
    assert n > 30


# =========================================================================== distances
def test_closer_to(graphs):
    p = get_program("single.closer_to")
    n = 0
    for g, view, plan, value in all_plans(p, graphs):
        a, b, c = (view.by_id[i] for i in plan["object_ids"])
        da, db = dist(g, a, c), dist(g, b, c)
        near, far = (a, b) if da < db else (b, a)
        assert abs(da - db) >= 0.1 - 1e-9 and max(da, db) >= 1.3 * min(da, db)
        r = realized(p, view, plan, value)
        names = check_names(view, r.question, plan["object_ids"])
        assert value == strip_the(names[near.id]) and r.options == [strip_the(names[far.id])]
        n += 1
    assert n > 30


def test_distance_order(graphs):
    p = get_program("single.distance_order")
    n = 0
    for g, view, plan, value in all_plans(p, graphs):
        *items, ref = (view.by_id[i] for i in plan["object_ids"])
        ranked = sorted(items, key=lambda o: dist(g, o, ref))
        for x, y in itertools.pairwise(ranked):
            assert dist(g, y, ref) - dist(g, x, ref) >= 0.1 - 1e-9
        r = realized(p, view, plan, value)
        names = check_names(view, r.question, plan["object_ids"])
        assert value == [strip_the(names[o.id]) for o in ranked]
        assert r.answer == ", ".join(value)
        assert r.answer not in r.options and len(r.options) == 5
        assert all(sorted(opt.split(", ")) == sorted(value) for opt in r.options)
        n += 1
    assert n > 10


def test_spatial_questions_never_pair_labels_that_may_name_the_same_thing():
    g = make_graph([obj("a", "man", (10, 40, 40, 70)), obj("b", "person", (100, 45, 130, 75)),
                    obj("c", "car", (150, 40, 190, 70)), obj("d", "dog", (60, 0, 80, 20))])
    view = GraphView(g, CONFIG)
    for pid in ("single.relative_position", "single.relative_size", "single.closer_to", "single.distance_order",
                "single.closest_to_center"):
        p = get_program(pid)
        for plan in p.candidates(view):
            ids = plan.get("object_ids") or [plan["subject_id"], plan["object_id"]]
            assert not {"a", "b"} <= set(ids), (pid, plan)
    assert get_program("single.relative_position").solve(view, {"subject_id": "a", "object_id": "b"}) is None
