"""Semantic truth of the ``objects`` family (existence, most/least frequent, extreme positions).

Every check recomputes the answer from the graph itself (labels, scores, boxes), never through the
programs' helpers. The helpers at the top (graph pools, referring-expression matching) are shared
with the other family test files (attributes, spatial, grounding).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from programs.base import GraphView, ProgramConfig, get_program
from programs.grammar import fmt_box
from programs.scenes import COCO_CATEGORIES, SCENES, SYNONYMS, may_name_same, plausible_absent, related_labels
from scene_graphs.model import Attribute, Box, Object, Relation, SceneGraph, Search
from scene_graphs.synthetic import random_graph
from tests import strategies as sgst
from tests.strategies import with_evidence

CONFIG = ProgramConfig(seed=3)
N_GRAPHS = 160


# =========================================================================== shared helpers
def graph_pool(n: int = N_GRAPHS, seed: int = 21) -> list[SceneGraph]:
    """Seeded random graphs: small and large, few and many uncertain objects, with and without masks,
    most with a detector's search recorded (evidence of absence), some without (unknown)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        out.append(with_evidence(random_graph(rng, image_id=f"t{seed}-{i:03d}", n_objects=int(rng.integers(2, 13)),
                                              uncertain=float(rng.choice([0.0, 0.1, 0.4])), masks=bool(i % 3 == 0),
                                              depth=False, text=False), rng, share=0.85))
    return out


COCO_SEARCH = Search("coco-detector", tuple(sorted(COCO_CATEGORIES)), 0.5, 0.05)
"""A COCO detector that searched for all its categories and saw nothing below its threshold."""


def make_graph(objects: list[Object], relations: tuple[Relation, ...] = (), width: int = 200, height: int = 100,
               image_id: str = "hand", evidence: tuple[Search, ...] = (COCO_SEARCH,)) -> SceneGraph:
    return SceneGraph(image_id, width, height, objects=tuple(objects), relations=relations,
                      fields=frozenset({"objects", "attributes", "relations"}), evidence=evidence)


def obj(oid: str, label: str, box: tuple[float, float, float, float], score: float = 0.9,
        attrs: tuple[tuple[str, str, float], ...] = ()) -> Object:
    return Object(oid, label, Box(*box), score, attributes=tuple(Attribute(n, c, s) for n, c, s in attrs))


def all_plans(program, graphs, config: ProgramConfig = CONFIG):
    """(graph, view, plan, value) for every candidate plan that solves."""
    for g in graphs:
        view = GraphView(g, config)
        for plan in program.candidates(view):
            value = program.solve(view, plan)
            assert value is not None, f"{program.id}: candidate {plan} does not solve on {g.image_id}"
            yield g, view, plan, value


def realized(program, view, plan, value, seed: int = 0):
    return program.realize(view, plan, value, np.random.default_rng(seed))


def _center(o: Object) -> tuple[float, float]:
    return (o.box.x1 + o.box.x2) / 2, (o.box.y1 + o.box.y2) / 2


def _is_clear_extreme(view: GraphView, o: Object, where: str) -> bool:
    """refer()'s position rule, recomputed: 2-3 objects of the label, ``o`` 10% of the image ahead."""
    same = [p for p in view.objects if p.label == o.label]
    if not 2 <= len(same) <= 3:
        return False
    cx, cy = _center(o)
    rest = [_center(p) for p in same if p.id != o.id]
    mx, my = 0.1 * view.width, 0.1 * view.height
    return {"left-most": all(cx + mx <= x for x, _ in rest), "right-most": all(cx - mx >= x for x, _ in rest),
            "top-most": all(cy + my <= y for _, y in rest), "bottom-most": all(cy - my >= y for _, y in rest)}[where]


def _relation_phrases(label: str, predicate: str, target: str) -> set[str]:
    """How refer() may name an object by a relation: the predicate normalized ("Is On" -> "on"), after
    the noun ("the cup on the table") or as a relative clause ("the man that has the hat")."""
    p = " ".join(predicate.lower().split()).removeprefix("is ").removeprefix("are ")
    return {f"the {label} {p} the {target}", f"the {label} that {p} the {target}"}


def describes(view: GraphView, text: str, o: Object) -> bool:
    """Whether the referring expression ``text`` fits object ``o`` (label, attribute, relation to a
    uniquely labelled object, position, or region), read off the graph."""
    if text == f"the {o.label}":
        return True
    if any(text == f"the {a.name} {o.label}" for a in o.attributes):
        return True
    for r in view.relations:
        if r.subject == o.id:
            target = view.by_id[r.object]
            if text in _relation_phrases(o.label, r.predicate, target.label) and \
                    sum(p.label == target.label for p in view.objects) == 1:
                return True
    for where in ("left-most", "right-most", "top-most", "bottom-most"):
        if text == f"the {where} {o.label}" and _is_clear_extreme(view, o, where):
            return True
    return text == f"the {o.label} at {fmt_box(o.box.normalized(view.width, view.height))}"


def assert_names_exactly(view: GraphView, text: str, o: Object) -> None:
    """``text`` describes ``o`` and no other object the programs can see (uncertain ones included)."""
    fits = [p.id for p in view.objects if describes(view, text, p)]
    assert fits == [o.id], f"{text!r} fits {fits}, expected only {o.id}"


def find_named(view: GraphView, question: str, ids) -> dict[str, str]:
    """Object id -> the referring expression of it that appears in ``question`` (longest match)."""
    out = {}
    for i in ids:
        o = view.by_id[i]
        texts = [f"the {o.label}", *(f"the {a.name} {o.label}" for a in o.attributes),
                 *(f"the {w} {o.label}" for w in ("left-most", "right-most", "top-most", "bottom-most")),
                 *(t for r in view.relations if r.subject == o.id
                   for t in _relation_phrases(o.label, r.predicate, view.by_id[r.object].label))]
        found = sorted((t for t in texts if t in question or t[:1].upper() + t[1:] in question),
                       key=len, reverse=True)
        assert found, f"no referring expression of {i} ({o.label}) in {question!r}"
        out[i] = found[0]
    return out


def strip_the(text: str) -> str:
    return text.removeprefix("the ")


# =========================================================================== fixtures
@pytest.fixture(scope="module")
def graphs() -> list[SceneGraph]:
    return graph_pool()


# =========================================================================== scenes data
def test_scene_tables_are_clean():
    assert len(COCO_CATEGORIES) == 80
    for scene, cats in SCENES.items():
        assert len(cats) == len(set(cats)), scene
        assert all(c == c.strip().lower() and c for c in cats), scene
    for group in SYNONYMS:
        assert all(w == w.strip().lower() for w in group)


@pytest.mark.parametrize("a, b, same", [
    ("person", "man", True), ("man", "woman", True), ("cup", "mug", True), ("couch", "sofa", True),
    ("coffee table", "table", True), ("books", "book", True), ("teddy bear", "bear", True), ("car", "vehicle", True),
    ("cup", "giraffe", False), ("fork", "toaster", False), ("dog", "kite", False), ("bus", "bench", False),
])
def test_may_name_same(a, b, same):
    assert may_name_same(a, b) is same
    assert may_name_same(b, a) is same


@pytest.mark.parametrize("present, seen, must_not", [
    (["man", "car"], ["man", "car"], {"person", "people", "woman", "boy", "taxi", "automobile", "vehicle"}),
    (["cup", "dining table"], ["cup", "dining table"], {"mug", "table", "desk", "wine glass", "glass"}),
    (["dog", "frisbee"], ["dog", "frisbee", "bird"], {"bird", "puppy", "pigeon"}),
])
def test_plausible_absent_never_offers_what_may_be_present(present, seen, must_not):
    offered = {c for c, _ in plausible_absent(present, seen)}
    assert offered, "some plausible absent category expected"
    assert not offered & must_not
    for c in offered:
        assert not any(c in related_labels(s) or s in related_labels(c) for s in seen)
        assert any(c in cats and set(related_labels(p)) & set(cats) for p in present for cats in SCENES.values())


def test_plausible_absent_is_ranked_by_support_and_respects_coco():
    offered = plausible_absent(["person", "car"], ["person", "car"], coco_only=True)
    assert all(c in COCO_CATEGORIES for c, _ in offered)
    supports = [n for _, n in offered]
    assert supports == sorted(supports, reverse=True)


# =========================================================================== exists
def test_exists_yes_only_for_confidently_present_labels(graphs):
    p = get_program("single.exists")
    answers = Counter()
    for g, view, plan, value in all_plans(p, graphs):
        label = plan["label"]
        answers[value] += 1
        present = [o for o in g.objects if o.label == label and o.score >= CONFIG.min_score]
        if value is True:
            assert present and all(o.score >= CONFIG.confident_score for o in present), (g.image_id, label)
            r = realized(p, view, plan, value)
            assert r.answer == "yes" and r.options == ["no"]
        else:
            assert value is False
            # absent at every score, and nothing in the graph may be one
            assert all(o.label != label and not may_name_same(o.label, label) for o in g.objects), (g.image_id, label)
            assert g.confirms_absent(label), (g.image_id, label, g.evidence)  # searched for, not seen at all
            r = realized(p, view, plan, value)
            assert r.answer == "no" and r.options == ["yes"]
    assert answers[True] > 50 and answers[False] > 50, answers


def test_exists_negatives_are_plausible_for_the_scene(graphs):
    p = get_program("single.exists")
    for g, view, plan, value in all_plans(p, graphs):
        if value is False:
            confident = {o.label for o in view.objects if o.score >= CONFIG.confident_score}
            scenes = [set(c) for c in SCENES.values() if any(set(related_labels(lbl)) & set(c) for lbl in confident)]
            assert any(plan["label"] in s for s in scenes), plan


def test_exists_hand_made_scene():
    g = make_graph([obj("a", "man", (10, 10, 40, 90)), obj("b", "car", (60, 40, 150, 90)),
                    obj("c", "dog", (160, 60, 190, 90), score=0.3), obj("d", "bird", (5, 5, 10, 10), score=0.05)])
    p = get_program("single.exists")
    view = GraphView(g, CONFIG)
    plans = {pl["label"]: p.solve(view, pl) for pl in p.candidates(view)}
    assert plans["man"] is True and plans["car"] is True
    assert "dog" not in plans and "puppy" not in plans, "uncertain category must not be asked about"
    assert "bird" not in plans, "a label seen below min_score must not be answered 'no'"
    assert not {"person", "people", "woman", "taxi", "vehicle"} & set(plans)
    negatives = [lbl for lbl, v in plans.items() if v is False]
    assert negatives and set(negatives) <= COCO_CATEGORIES | {c for cats in SCENES.values() for c in cats}
    assert view.stats["abstained single.exists: uncertain category"] == 1
    # solve on its own (as verify runs it) refuses the same questions
    for label in ("dog", "bird", "person", "woman", "taxi"):
        assert p.solve(view, {"label": label}) is None, label


def test_exists_coco_graph_asks_only_coco_negatives():
    g = make_graph([obj("a", "person", (10, 10, 40, 90)), obj("b", "bus", (60, 20, 190, 90))])
    p = get_program("single.exists")
    view = GraphView(g, CONFIG)
    negatives = [pl["label"] for pl in p.candidates(view) if p.solve(view, pl) is False]
    assert negatives and all(n in COCO_CATEGORIES for n in negatives)


# =========================================================================== frequency
@pytest.mark.parametrize("pid, pick", [("single.most_frequent", max), ("single.least_frequent", min)])
def test_frequency_answer_is_the_unique_extreme_count(graphs, pid, pick):
    p = get_program(pid)
    n = 0
    for g, view, plan, value in all_plans(p, graphs):
        labels = plan["labels"]
        assert 2 <= len(labels) <= 4 and len(set(labels)) == len(labels)
        counts = {}
        for lbl in labels:
            objs = [o for o in g.objects if o.label == lbl and o.score >= CONFIG.min_score]
            assert objs and all(o.score >= CONFIG.confident_score for o in objs), (lbl, "not safely countable")
            counts[lbl] = len(objs)
        best = pick(counts.values())
        assert [lbl for lbl, c in counts.items() if c == best] == [value], (counts, value)
        r = realized(p, view, plan, value)
        assert r.answer == value and set(r.options) == set(labels) - {value}
        n += 1
    assert n > 20


def test_frequency_never_mixes_synonyms():
    g = make_graph([obj("a", "man", (0, 0, 20, 20)), obj("b", "man", (30, 0, 50, 20)),
                    obj("c", "person", (60, 0, 80, 20)), obj("d", "cup", (100, 0, 120, 20)),
                    obj("e", "dog", (130, 0, 150, 20)), obj("f", "dog", (160, 0, 180, 20))])
    view = GraphView(g, CONFIG)
    for pid in ("single.most_frequent", "single.least_frequent"):
        plans = get_program(pid).candidates(view)
        assert plans
        for plan in plans:
            assert not {"man", "person"} & set(plan["labels"]), plan


# =========================================================================== extreme positions
EXTREMES = [("single.leftmost", 0, -1), ("single.rightmost", 0, 1), ("single.topmost", 1, -1),
            ("single.bottommost", 1, 1)]


@pytest.mark.parametrize("pid, axis, sign", EXTREMES)
def test_extreme_winner_is_clear(graphs, pid, axis, sign):
    p = get_program(pid)
    n = 0
    for g, view, plan, value in all_plans(p, graphs):
        objs = [view.by_id[i] for i in plan["object_ids"]]
        assert 2 <= len(objs) <= 4 and len({o.label for o in objs}) == len(objs)
        assert all(o.score >= CONFIG.confident_score for o in objs)
        size = g.width if axis == 0 else g.height
        key = [sign * _center(o)[axis] / size for o in objs]
        order = sorted(range(len(objs)), key=lambda i: -key[i])
        win = objs[order[0]]
        assert key[order[0]] - key[order[1]] >= 0.05 - 1e-9
        r = realized(p, view, plan, value)
        names = find_named(view, r.question, plan["object_ids"])
        for i, text in names.items():
            assert_names_exactly(view, text, view.by_id[i])
            assert "most" not in text and " at [" not in text, "position/region referents give answers away"
        assert value == strip_the(names[win.id]) == r.answer
        assert sorted(r.options) == sorted(strip_the(names[o.id]) for o in objs if o.id != win.id)
        n += 1
    assert n > 30


def test_extremes_hand_made():
    g = make_graph([obj("a", "cup", (10, 40, 30, 60)), obj("b", "plate", (100, 10, 130, 30)),
                    obj("c", "fork", (160, 70, 170, 95))])
    view = GraphView(g, CONFIG)
    expect = {"single.leftmost": "cup", "single.rightmost": "fork", "single.topmost": "plate",
              "single.bottommost": "fork"}
    for pid, answer in expect.items():
        p = get_program(pid)
        three = [pl for pl in p.candidates(view) if len(pl["object_ids"]) == 3]
        assert three, pid
        assert p.solve(view, three[0]) == answer


def test_extremes_refuse_close_calls():
    # centres 4% of the width apart: too close to call
    g = make_graph([obj("a", "cup", (10, 10, 30, 30)), obj("b", "plate", (18, 60, 38, 80))])
    view = GraphView(g, CONFIG)
    assert get_program("single.leftmost").candidates(view) == []
    assert get_program("single.leftmost").solve(view, {"object_ids": ["a", "b"]}) is None



# =========================================================================== any valid graph
MY_FAMILIES = ("objects", "attributes", "spatial", "grounding")


def _my_programs():
    from programs.base import load_all

    return [cls() for cls in load_all().values() if cls.family in MY_FAMILIES and not cls.multi_image]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sgst.scene_graphs(max_objects=7, relations=True))
def test_any_valid_graph_gives_well_formed_records(graph):
    """Arbitrary labels, degenerate boxes, scores at the edges: every record re-solves to its value,
    its options never repeat or include the answer twice, and its plan is one of the candidates."""
    view = GraphView(graph, CONFIG)
    for p in _my_programs():
        if not p.applicable(graph):
            continue
        plans = p.candidates(view)
        for qa in p.generate([view], ProgramConfig(seed=1, mc_ratio=1.0, max_per_image=4)):
            assert qa.plan in plans
            assert p.solve(view, qa.plan) == qa.value
            assert qa.answer.strip() and qa.question.strip() and qa.rationale.strip()
            assert len(set(qa.options)) == len(qa.options)
            if qa.options:
                assert qa.options[qa.answer_index] == qa.answer


# =========================================================================== entangled groups
GROUP_PROGRAMS = ("single.leftmost", "single.rightmost", "single.topmost", "single.bottommost",
                  "single.closest_to_center", "single.largest", "single.smallest")


def test_group_questions_never_compare_a_thing_with_what_holds_it():
    """The cup on a table that fills the picture: "which is the most central / lowest, the table or the cup?"
    has no answer for the eye (the cup is on it); the cup and the bus, side by side, still compare."""
    g = make_graph([obj("t", "dining table", (0, 0, 200, 100)), obj("c", "cup", (80, 10, 120, 70)),
                    obj("b", "bus", (150, 60, 198, 98))])
    view = GraphView(g, CONFIG)
    asked = 0
    for pid in GROUP_PROGRAMS:
        p = get_program(pid)
        assert p.solve(view, {"object_ids": ["t", "c"]}) is None, pid
        assert p.solve(view, {"object_ids": ["c", "t", "b"]}) is None, pid
        for plan in p.candidates(view):
            asked += 1
            assert {"t", "c"} - set(plan["object_ids"]), (pid, plan)
    assert get_program("single.bottommost").solve(view, {"object_ids": ["c", "b"]}) is not None
    assert asked


def test_group_questions_have_no_entangled_pair(graphs_for_groups=graph_pool(seed=5)):
    from programs.predicates import entangled

    for pid in GROUP_PROGRAMS:
        p = get_program(pid)
        for g, view, plan, _ in all_plans(p, graphs_for_groups):
            ids = plan["object_ids"]
            assert not any(entangled(view, a, b) for i, a in enumerate(ids) for b in ids[i + 1:]), (pid, plan)
