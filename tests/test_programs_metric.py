"""Metric questions (VQASynth's distances and sizes in metres) and the data model that allows them: a depth
map in metres (``DepthMap.unit``) and the camera's intrinsics (``SceneGraph.camera``).

* the model: old graphs stay valid and non-metric; metric graphs round-trip through shards, the JSON
  Schema, the store's reader and pickling; bad units and intrinsics are refused;
* the programs never fire on a graph without metric depth and intrinsics (random, hypothesis-made and
  hand-made graphs);
* every answer recomputed from the raw mask, map and intrinsics (property tests over synthetic metric
  graphs), answers that scale with the map and the focal length as geometry says, hand-made cases for
  each abstention (no mask, too few readings, an object receding in depth, an entangled pair, a cut side);
* ``mmgen verify`` checks the records and catches a changed answer; a text-only solver stays at chance.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmgen.cli import main
from mmgen.check.verify import verify
from programs.base import MULTIPLE_CHOICE, GraphView, ProgramConfig, get_program, load_all, run_single
from programs.predicates import entangled
from programs.single.metric import MAX_SPREAD, MIN_CELLS, RATIO, distractors, fmt_metres, significant
from scene_graphs.io import read_graphs, write_graphs
from scene_graphs.model import Box, Camera, DepthMap, Mask, Object, Relation, SceneGraph, ValidationError
from scene_graphs.schema import validate_against_schema
from scene_graphs.synthetic import random_graph
from tests import strategies as sgst
from tests.blind import battery, items_of, worst
from tests.strategies import with_evidence

METRIC = ("single.metric_camera_distance", "single.metric_pair_distance", "single.metric_size")
PROGRAMS = [get_program(p) for p in METRIC]
CONFIG = ProgramConfig(seed=3, max_per_image=20)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


def metric_pool(n: int, seed: int, prefix: str = "m") -> list[SceneGraph]:
    rng = np.random.default_rng(seed)
    return [with_evidence(random_graph(rng, image_id=f"{prefix}{i:04d}", metric=True), rng, share=0.85)
            for i in range(n)]


@pytest.fixture(scope="module")
def pool() -> list[SceneGraph]:
    return metric_pool(200, 17)


def records(graphs, config: ProgramConfig = CONFIG, programs=PROGRAMS):
    for g in graphs:
        for qa in run_single(g, config, programs):
            yield g, qa


# =========================================================================== the data model
def test_old_graphs_are_valid_and_not_metric() -> None:
    g = random_graph(np.random.default_rng(0))
    assert g.camera is None and g.depth is not None and g.depth.unit == "relative" and not g.metric
    d = g.to_dict()
    assert "camera" not in d and "unit" not in d["depth"]  # written as before
    validate_against_schema(d)
    assert not SceneGraph.from_dict(d, g.depth).metric


def test_metric_graphs_round_trip_through_shards_schema_store_and_pickle(tmp_path: Path) -> None:
    from mmgen.store import read_graphs_tolerant

    graphs = metric_pool(5, 1)
    assert all(g.metric for g in graphs)
    for g in graphs:
        d = g.to_dict()
        validate_against_schema(d)
        assert d["depth"]["unit"] == "metres" and set(d["camera"]) == {"fx", "fy", "cx", "cy"}
    write_graphs(tmp_path / "part-00000.jsonl", graphs)
    for read in (list(read_graphs(tmp_path / "part-00000.jsonl")),
                 list(read_graphs_tolerant(tmp_path / "part-00000.jsonl"))):  # the engine's reader too
        assert [r.to_dict() for r in read] == [g.to_dict() for g in graphs]
        assert all(r.metric and r.depth.unit == "metres" for r in read)
        assert [r.camera for r in read] == [g.camera for g in graphs]
    for twin in (copy.deepcopy(graphs[0]), pickle.loads(pickle.dumps(graphs[0]))):
        assert twin.metric and twin.depth.unit == "metres" and not twin.depth.values.flags.writeable


@pytest.mark.parametrize("change, where", [
    (lambda d: d["depth"].update(unit="feet"), "depth.unit"),
    (lambda d: d["camera"].update(fx=0), "camera.fx"),
    (lambda d: d["camera"].update(cy="middle"), "camera.cy"),
    (lambda d: d["camera"].update(skew=0.0), "camera.skew"),
    (lambda d: d["camera"].pop("cx"), "camera.cx"),
])
def test_bad_units_and_intrinsics_are_refused(change, where) -> None:
    g = metric_pool(1, 2)[0]
    d = json.loads(json.dumps(g.to_dict()))
    change(d)
    with pytest.raises(ValidationError) as err:
        SceneGraph.from_dict(d, g.depth)
    assert err.value.where == where
    with pytest.raises(ValidationError):
        validate_against_schema(d)


def test_a_metric_map_is_farther_for_larger_values_and_never_negative() -> None:
    with pytest.raises(ValidationError, match="larger_is_nearer false"):
        DepthMap(np.ones((4, 4)), larger_is_nearer=True, unit="metres")
    with pytest.raises(ValidationError, match="no negative values"):
        DepthMap(-np.ones((4, 4)), larger_is_nearer=False, unit="metres")
    with pytest.raises(ValidationError, match="unit must be one of"):
        DepthMap(np.ones((4, 4)), larger_is_nearer=False, unit="cm")
    d = DepthMap(np.zeros((4, 4)), larger_is_nearer=False, unit="metres")  # 0: no reading
    assert d.metric and not DepthMap(np.ones((4, 4)), False).metric
    assert Camera(100, 100, 50, 40).back_project(100, 40, 2.0) == (1.0, 0.0, 2.0)


def test_a_depth_header_and_map_disagreeing_on_the_unit_is_refused() -> None:
    g = metric_pool(1, 3)[0]
    d = g.to_dict()
    metres = g.depth
    with pytest.raises(ValidationError, match="unit differs"):
        SceneGraph.from_dict({**d, "depth": {**d["depth"], "unit": "relative"}}, metres)
    # a loader that read only values and convention gets the unit from the header
    plain = DepthMap(metres.values, False)
    assert SceneGraph.from_dict(d, plain).metric


# =========================================================================== never without metric depth
def test_no_record_without_metric_depth_and_intrinsics() -> None:
    rng = np.random.default_rng(4)
    stats: Counter = Counter()
    relative = [with_evidence(random_graph(rng, image_id=f"r{i}"), rng) for i in range(120)]
    metric = metric_pool(60, 5, "x")
    no_camera = [replace(g, camera=None) for g in metric]
    no_unit = [replace(g, depth=DepthMap(g.depth.values, False)) for g in metric]
    no_depth = [replace(g, depth=None, fields=g.fields - {"depth"}) for g in metric]
    for g in relative + no_camera + no_unit + no_depth:
        assert not g.metric and not any(p.applicable(g) for p in PROGRAMS)
        assert run_single(g, CONFIG, PROGRAMS, stats) == []
        view = GraphView(g, CONFIG)
        assert all(p.candidates(view) == [] for p in PROGRAMS)
    assert stats[f"skipped {METRIC[0]}: graph lacks metric"] == 120 + 60 + 60
    assert stats[f"skipped {METRIC[0]}: graph lacks depth,metric"] == 60
    assert sum(1 for _ in records(metric)) > 100  # the same graphs with both do give records


@PROPERTY
@given(sgst.scene_graphs(min_objects=1, depth=True))
def test_no_record_on_any_hypothesis_graph(graph: SceneGraph) -> None:
    assert not graph.metric and run_single(graph, CONFIG, PROGRAMS) == []


# =========================================================================== answers from the raw data
def reference(graph: SceneGraph, obj: Object) -> dict[str, float] | None:
    """The object's measurements recomputed from its mask, the map and the intrinsics (or None when the
    readings under the mask are too few or disagree)."""
    values = graph.depth.values[graph.depth.mask_cells(obj.mask)]
    read = values[values > 0]
    if len(read) < MIN_CELLS:
        return None
    z = float(np.median(read))
    q25, q75 = np.percentile(read, [25, 75])
    if q75 - q25 > MAX_SPREAD * z:
        return None
    ys, xs = np.nonzero(obj.mask.to_array())
    cam = graph.camera
    u, v = xs.mean() + 0.5, ys.mean() + 0.5
    point = np.array([(u - cam.cx) * z / cam.fx, (v - cam.cy) * z / cam.fy, z])
    return {"x": point[0], "y": point[1], "z": z, "distance": float(np.linalg.norm(point)),
            "width": float(xs.max() + 1 - xs.min()) * z / cam.fx, "height": float(ys.max() + 1 - ys.min()) * z / cam.fy}


def check_record(graph: SceneGraph, qa) -> None:
    """One record's answer, options and wording against :func:`reference`."""
    by_id = graph.objects_by_id
    if qa.program == "single.metric_pair_distance":
        a, b = (reference(graph, by_id[i]) for i in qa.plan["ids"])
        assert a is not None and b is not None, qa.id
        want = math.dist((a["x"], a["y"], a["z"]), (b["x"], b["y"], b["z"]))
        assert not entangled(GraphView(graph, CONFIG), *qa.plan["ids"]), qa.id
    else:
        ref = reference(graph, by_id[qa.plan["object_id"]])
        assert ref is not None, qa.id
        want = ref["distance"] if qa.program == "single.metric_camera_distance" else ref[qa.plan["dimension"]]
    assert qa.value == significant(want), (qa.id, qa.value, want)
    assert abs(qa.value - want) <= 0.05 * want  # two significant figures
    assert qa.answer == fmt_metres(want) and qa.answer.startswith("about ") and qa.answer.endswith(" m")
    if qa.question_type == MULTIPLE_CHOICE:
        values = [float(o.split()[1]) for o in qa.options]
        assert len(values) == 3 and qa.options[qa.answer_index] == qa.answer
        assert all(max(x, y) >= RATIO * min(x, y) for i, x in enumerate(values) for y in values[i + 1:]), qa.options


@PROPERTY
@given(st.integers(0, 2**32 - 1))
def test_every_answer_follows_from_mask_depth_and_intrinsics(seed: int) -> None:
    rng = np.random.default_rng(seed)
    graph = with_evidence(random_graph(rng, image_id=f"h{seed}", metric=True), rng)
    for qa in run_single(graph, ProgramConfig(seed=seed % 7, max_per_image=20, mc_ratio=0.5), PROGRAMS):
        check_record(graph, qa)


def test_pool_answers_follow_and_every_program_fires(pool) -> None:
    made: Counter = Counter()
    for g, qa in records(pool, ProgramConfig(seed=1, max_per_image=20, mc_ratio=0.5)):
        check_record(g, qa)
        made[qa.program, qa.question_type] += 1
    for pid in METRIC:
        assert made[pid, "free_form"] >= 50 and made[pid, MULTIPLE_CHOICE] >= 10, made
    used = {(qa.program, qa.template) for _, qa in records(pool)}
    assert used == {(p.id, t.id) for p in PROGRAMS for t in p.templates}


def _scaled(graph: SceneGraph, depth: float = 1.0, focal: float = 1.0) -> SceneGraph:
    cam = graph.camera
    return replace(graph, depth=DepthMap(graph.depth.values * depth, False, "metres"),
                   camera=Camera(cam.fx * focal, cam.fy * focal, cam.cx, cam.cy))


@PROPERTY
@given(st.integers(0, 2**32 - 1), st.floats(0.5, 3.0), st.floats(0.5, 2.0))
def test_answers_scale_as_geometry_says(seed: int, k: float, f: float) -> None:
    """Depths k times larger make every distance and size k times larger; a focal length f times longer
    makes sizes f times smaller (the same pixels cover less)."""
    rng = np.random.default_rng(seed)
    graph = random_graph(rng, image_id=f"s{seed}", metric=True, uncertain=0.0)
    deeper, longer = GraphView(_scaled(graph, depth=k), CONFIG), GraphView(_scaled(graph, focal=f), CONFIG)
    view = GraphView(graph, CONFIG)
    for p in PROGRAMS:
        for plan, value in p.plans(view):
            scaled = p.solve(deeper, plan)
            if scaled is not None:  # a threshold in metres (least distance) may be crossed
                assert abs(scaled - k * value) <= 0.11 * k * value, (p.id, plan, value, scaled, k)
            if p.id == "single.metric_size":
                smaller = p.solve(longer, plan)
                if smaller is not None:
                    assert abs(smaller - value / f) <= 0.11 * value / f, (plan, value, smaller, f)


# =========================================================================== hand-made cases
W, H, SCALE = 200, 100, 4
"""Image size and how many image pixels one depth-map cell spans."""
CAMERA = Camera(100.0, 100.0, 100.0, 50.0)


def rect(x1: int, y1: int, x2: int, y2: int) -> Mask:
    a = np.zeros((H, W), dtype=bool)
    a[y1:y2, x1:x2] = True
    return Mask.from_array(a)


def hand_graph(objects: list[tuple[str, str, tuple[int, int, int, int], float | tuple[float, float] | None]],
               relations: tuple[Relation, ...] = (), masks: bool = True) -> SceneGraph:
    """Objects (id, label, box, depth or (left-half depth, right-half depth) or None: no mask) on an empty map
    (0: no reading)."""
    values = np.zeros((H // SCALE, W // SCALE), dtype=np.float32)
    objs = []
    for oid, label, (x1, y1, x2, y2), depth in objects:
        if depth is not None:
            left, right = depth if isinstance(depth, tuple) else (depth, depth)
            mid = (x1 + x2) // 2
            values[y1 // SCALE:y2 // SCALE, x1 // SCALE:mid // SCALE] = left
            values[y1 // SCALE:y2 // SCALE, mid // SCALE:x2 // SCALE] = right
        objs.append(Object(oid, label, Box(x1, y1, x2, y2), 0.9, rect(x1, y1, x2, y2) if depth is not None else None))
    return SceneGraph("hand", W, H, objects=tuple(objs), relations=relations,
                      depth=DepthMap(values, False, "metres"), camera=CAMERA,
                      fields=frozenset({"objects", "masks", "depth", "relations"}))


def answers(graph: SceneGraph, program_id: str) -> tuple[dict[str, float], Counter]:
    stats: Counter = Counter()
    view = GraphView(graph, CONFIG, stats)
    p = get_program(program_id)
    out = {json.dumps(plan, sort_keys=True): value for plan, value in p.plans(view)}
    return out, stats


def test_hand_made_distances_and_sizes() -> None:
    g = hand_graph([("c", "cup", (88, 40, 112, 60), 2.0), ("h", "chair", (148, 40, 172, 60), 2.0)])
    cam, _ = answers(g, "single.metric_camera_distance")
    # the cup's centre (100, 50) is the principal point: 2 m straight ahead; the chair's centre is 60 px right
    assert cam == {'{"object_id": "c"}': 2.0, '{"object_id": "h"}': significant(math.hypot(1.2, 2.0))}
    pair, _ = answers(g, "single.metric_pair_distance")
    assert list(pair.values()) == [1.2]
    size, _ = answers(g, "single.metric_size")
    # 24 x 20 pixels at 2 m with a focal length of 100 pixels: 0.48 m wide, 0.40 m tall
    assert set(size.values()) <= {0.48, 0.4} and len(size) == 2
    qa = next(q for q in run_single(g, CONFIG, [get_program("single.metric_camera_distance")])
              if q.plan == {"object_id": "c"})
    assert qa.answer == "about 2.0 m" and "the cup" in qa.question and "2.00 m" in qa.rationale


@pytest.mark.parametrize("cup_depth, reason", [
    (None, "no mask"),
    ((2.0, 8.0), "the depth under the mask varies too much (no single distance)"),
])
def test_an_object_without_one_distance_is_not_measured(cup_depth, reason) -> None:
    g = hand_graph([("c", "cup", (60, 20, 100, 60), cup_depth), ("h", "chair", (148, 40, 172, 60), 2.0),
                    ("d", "dog", (10, 30, 40, 70), 4.0)])
    for pid in METRIC:
        got, stats = answers(g, pid)
        assert all('"c"' not in plan for plan in got), (pid, got)
        assert stats[f"abstained {pid}: {reason}"] == 1, stats


def test_too_few_readings_are_no_measurement() -> None:
    g = hand_graph([("c", "cup", (60, 20, 100, 60), 2.0), ("h", "chair", (148, 40, 172, 60), 2.0)])
    values = np.array(g.depth.values)
    values[5:13, 15:21] = 0.0  # most of the cup's cells hold no reading (sensor holes)
    holed = replace(g, depth=DepthMap(values, False, "metres"))
    got, stats = answers(holed, "single.metric_camera_distance")
    assert list(got) == ['{"object_id": "h"}']
    assert stats["abstained single.metric_camera_distance: too few depth readings under the mask"] == 1


def test_entangled_pairs_are_not_measured_against_each_other() -> None:
    objects = [("c", "cup", (90, 30, 110, 50), 2.0), ("t", "table", (40, 50, 160, 96), 2.2),
               ("d", "dog", (4, 20, 30, 60), 5.0)]
    free, _ = answers(hand_graph(objects), "single.metric_pair_distance")
    on, _ = answers(hand_graph(objects, (Relation("c", "on", "t", 0.9, "model"),)), "single.metric_pair_distance")
    pair = json.dumps({"ids": sorted(["c", "t"])}, sort_keys=True), json.dumps({"ids": ["t", "c"]}, sort_keys=True)
    assert any(p in free for p in pair)  # side by side, the cup and the table are measured
    assert not any(p in on for p in pair) and len(on) == 2  # the cup on the table is one thing with it


def test_a_side_cut_by_the_border_is_not_measured() -> None:
    g = hand_graph([("c", "cup", (0, 40, 24, 60), 2.0), ("h", "chair", (148, 0, 172, 20), 2.0)])
    size, _ = answers(g, "single.metric_size")
    assert size == {'{"dimension": "height", "object_id": "c"}': 0.4, '{"dimension": "width", "object_id": "h"}': 0.48}


def test_distractors_are_a_set_drawn_before_the_answer() -> None:
    answers_ = [1.0, 1.6, 2.6, 4.0, 6.5]
    seen = Counter()
    for seed in range(600):
        rng = np.random.default_rng(seed)
        value = answers_[seed % len(answers_)]
        opts = distractors(rng, value, answers_)
        if not opts:
            continue
        values = sorted([value] + [float(o.split()[1]) for o in opts])
        assert all(b >= RATIO * a for a, b in zip(values, values[1:])), values
        seen[values.index(value)] += 1
    assert set(seen) == {0, 1, 2} and min(seen.values()) > 0.7 * max(seen.values()), seen
    assert distractors(np.random.default_rng(0), 1.0, [1.0, 1.2, 1.4]) == []  # nothing far enough apart
    assert [fmt_metres(v) for v in (0.123, 1.27, 12.3, 0.0456)] == [
        "about 0.12 m", "about 1.3 m", "about 12 m", "about 0.046 m"]


# =========================================================================== verify, blind solvers
def test_generate_and_verify_metric_records(tmp_path: Path) -> None:
    write_graphs(tmp_path / "sg" / "part-00000.jsonl", metric_pool(30, 8))
    runner = CliRunner()
    res = runner.invoke(main, ["generate", str(tmp_path / "sg"), "-o", str(tmp_path / "qa"), "--programs", "metric",
                               "--per-image", "3"])
    assert res.exit_code == 0, res.output
    shard = tmp_path / "qa" / "part-00000.jsonl"
    recs = [json.loads(line) for line in shard.read_text().splitlines()]
    assert {r["program"] for r in recs} == set(METRIC)
    report = verify(tmp_path / "qa", tmp_path / "sg")
    assert report.ok and report.checked == len(recs), report.problems[:3]
    recs[0]["value"] = round(recs[0]["value"] * 1.5, 2)
    shard.write_text("".join(json.dumps(r) + "\n" for r in recs))
    report = verify(tmp_path / "qa", tmp_path / "sg")
    assert any(recs[0]["id"] in p for p in report.problems), report.problems


def test_the_metric_family_is_listed() -> None:
    registry = load_all()
    assert all(registry[p].family == "metric" and "metric" in registry[p].requires for p in METRIC)


def test_blind_solvers_stay_at_chance_on_metric_graphs() -> None:
    """The blind battery (tests/test_blind_solvers.py) runs on graphs without metric depth, where these
    programs never fire: here the same solvers on metric graphs, fitted on even images, scored on odd ones
    (enough graphs for about 700 scored records each, so that the 0.05 margin is over two standard errors)."""
    split: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    config = ProgramConfig(seed=3, max_per_image=3, mc_ratio=1.0)
    for i, g in enumerate(metric_pool(6000, 2024, "b")):
        for qa in run_single(g, config, PROGRAMS):
            split[qa.program][i % 2].extend(items_of([qa]))
    for pid in METRIC:
        fit, test = split[pid]
        assert len(fit) >= 150 and len(test) >= 150, (pid, len(fit), len(test))
        scores = battery(fit, test)
        name, gain = worst(scores)
        assert gain <= 0.05, (pid, name, scores, len(test))
