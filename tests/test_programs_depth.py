"""Depth family: nearer / farther points and objects, nearest in depth to an anchor, recomputed from the map."""

from __future__ import annotations

import re

import numpy as np
import pytest

from programs.base import GraphView, ProgramConfig, get_program
from scene_graphs.model import DepthMap, Object, SceneGraph
from tests.test_programs_relations import CONFIG, graphs, realized, resolve, template_fields

GRAPHS = graphs(120, seed=2, depth=True, relations=False)
POINT_PROGRAMS = ("single.nearer_point", "single.farther_point")
OBJECT_PROGRAMS = ("single.nearer_object", "single.farther_object")
ALL = POINT_PROGRAMS + OBJECT_PROGRAMS + ("single.nearest_to_anchor",)


def nearness(g: SceneGraph, value: float) -> float:
    return value if g.depth.larger_is_nearer else -value


def gap(g: SceneGraph, config: ProgramConfig = CONFIG) -> float:
    return config.min_depth_gap * float(g.depth.values.max() - g.depth.values.min())


def point_value(g: SceneGraph, x: float, y: float) -> tuple[float, float]:
    """Nearness at the map cell under the point, and the spread of its 3x3 neighbourhood."""
    v = g.depth.values
    r, c = min(v.shape[0] - 1, int(y * v.shape[0])), min(v.shape[1] - 1, int(x * v.shape[1]))
    window = v[max(0, r - 1):r + 2, max(0, c - 1):c + 2]
    return nearness(g, float(v[r, c])), float(window.max() - window.min())


def object_value(g: SceneGraph, o: Object) -> float:
    d = o.depth if o.depth is not None else g.depth.median_in(o.box, g.width, g.height, o.mask)
    return nearness(g, d)


def fmt(p) -> str:
    return f"({p[0]:.2f}, {p[1]:.2f})"


@pytest.mark.parametrize("pid", POINT_PROGRAMS)
def test_points(pid):
    nearer = pid == "single.nearer_point"
    n = 0
    for view, plan, value, r in realized(pid, GRAPHS):
        g = view.graph
        assert all(round(c, 2) == c for q in plan["points"] for c in q)  # shown exactly as checked
        (n0, s0), (n1, s1) = (point_value(g, *p) for p in plan["points"])
        assert s0 <= 0.5 * gap(g) and s1 <= 0.5 * gap(g), "a point sits on a depth edge"
        assert abs(n0 - n1) >= 0.5 * gap(g)
        want = (0 if n0 > n1 else 1) if nearer else (0 if n0 < n1 else 1)
        assert value == want
        assert r.answer == fmt(plan["points"][want]) and r.options == [fmt(plan["points"][1 - want])]
        f = template_fields(pid, r)
        assert {f["a"], f["b"]} == {fmt(p) for p in plan["points"]}
        n += 1
    assert n > 50  # each point pair is one question: one order, nearer or farther


@pytest.mark.parametrize("pid", OBJECT_PROGRAMS)
def test_objects(pid):
    nearer = pid == "single.nearer_object"
    n = 0
    for view, plan, value, r in realized(pid, GRAPHS):
        g = view.graph
        a, b = (view.by_id[i] for i in plan["ids"])
        assert a.label != b.label and min(a.score, b.score) >= CONFIG.confident_score
        na, nb = object_value(g, a), object_value(g, b)
        assert abs(na - nb) >= gap(g)
        answer = (a if na > nb else b) if nearer else (a if na < nb else b)
        other = b if answer is a else a
        assert r.answer == answer.label and r.options == [other.label]
        f = template_fields(pid, r)
        assert resolve(view, f["a"]) == {a.id} and resolve(view, f["b"]) == {b.id}, r.question
        n += 1
    assert n > 100


def test_nearest_to_anchor():
    n = 0
    for view, plan, value, r in realized("single.nearest_to_anchor", GRAPHS):
        g = view.graph
        anchor = view.by_id[plan["anchor_id"]]
        choices = [view.by_id[i] for i in plan["choice_ids"]]
        assert len({anchor.label, *(c.label for c in choices)}) == 4
        dist = [abs(object_value(g, c) - object_value(g, anchor)) for c in choices]
        best = int(np.argmin(dist))
        assert all(d - dist[best] >= gap(g) for i, d in enumerate(dist) if i != best)
        assert r.answer == choices[best].label
        assert sorted(r.options) == sorted(c.label for i, c in enumerate(choices) if i != best)
        f = template_fields("single.nearest_to_anchor", r)
        assert resolve(view, f["anchor"]) == {anchor.id}
        n += 1
    assert n > 30
    # every answer position is offered (plans rotate the choices)
    positions = {v for _, _, v, _ in realized("single.nearest_to_anchor", GRAPHS)}
    assert positions == {0, 1, 2}


def _flipped(g: SceneGraph) -> SceneGraph:
    """The same scene with the opposite depth convention (metric <-> disparity)."""
    d = DepthMap(-g.depth.values, not g.depth.larger_is_nearer)
    objs = tuple(Object(o.id, o.label, o.box, o.score, o.mask, o.attributes, None if o.depth is None else -o.depth)
                 for o in g.objects)
    return g.replace(depth=d, objects=objs)


@pytest.mark.parametrize("pid", ALL)
def test_convention_does_not_change_answers(pid):
    program = get_program(pid)
    total = 0
    for g in GRAPHS[:60]:
        a = [(q.question, q.answer, q.options) for q in program.generate([GraphView(g, CONFIG)], CONFIG)]
        b = [(q.question, q.answer, q.options) for q in program.generate([GraphView(_flipped(g), CONFIG)], CONFIG)]
        assert a == b
        total += len(a)
    assert total > 20


@pytest.mark.parametrize("pid", ALL)
def test_no_questions_without_a_gap(pid):
    flat = [g.replace(depth=DepthMap(np.full((4, 4), 3.0), True),
                      objects=tuple(Object(o.id, o.label, o.box, o.score, o.mask, o.attributes, None)
                                    for o in g.objects)) for g in GRAPHS[:30]]
    assert not list(realized(pid, flat))
    strict = ProgramConfig(seed=3, min_depth_gap=1.01)
    assert not list(realized(pid, GRAPHS[:30], strict))


def test_rationale_states_relative_distances():
    for view, plan, value, r in realized("single.nearer_point", GRAPHS[:20]):
        numbers = [float(x) for x in re.findall(r"relative distance (\d\.\d\d)", r.rationale)]
        assert len(numbers) == 2 and all(-0.01 <= x <= 1.01 for x in numbers)
        assert numbers[value] < numbers[1 - value]  # the nearer point has the smaller distance
