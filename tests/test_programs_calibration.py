"""Score calibration per annotation source (``programs/data/calibration.json``, ``programs.base``).

* ProVision's own two baseball graphs (open-vocabulary scores, 0.05-0.81) give multi-image and more
  single-image records, and none of them uses a label that holds a faint box.
* Our own annotator, hand annotations and every unlisted source keep the thresholds as given.
* The table is checked data; lookups are deterministic and per source; user thresholds keep their order.
* The multi-image index (shared-category grouping) reads the same calibrated thresholds.
* ``single.attribute_state`` words a person's pose as what they are doing, never a "condition".
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mmgen.stages.generate_multi import confident_labels
from programs import base
from programs.base import (OWN_ANNOTATOR, GraphView, ProgramConfig, calibrated_config, calibration_table, get_program,
                           raw_thresholds, run_single, score_source, single_programs)
from programs.multi.common import multi_programs, run_multi
from scene_graphs.formats import ImportReport, get_format
from scene_graphs.io import read_graphs
from scene_graphs.model import Attribute, Box, Object, SceneGraph

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ProgramConfig()

# ProVision's sample annotations (github.com/JieyuZ2/ProVision, notebooks/baseball_sample_annotations):
# the detection, attribute and parsed relation stages of its two baseball images, as published.
DETECTION = {
    "baseball_1": {"width": 401, "height": 400,
                   "det_scores": [0.6489412188529968, 0.48793500661849976, 0.48695623874664307, 0.060238905251026154],
                   "labels": ["batter", "bat", "ball", "baseball uniform"],
                   "bboxes": [[5, 54, 266, 355], [203, 121, 348, 212], [366, 176, 389, 198], [48, 55, 155, 180]]},
    "baseball_2": {"width": 770, "height": 506,
                   "det_scores": [0.8059051632881165, 0.7951599359512329, 0.5870567560195923, 0.36492782831192017,
                                  0.09571252763271332, 0.06006845086812973, 0.05318228527903557, 0.05061973258852959],
                   "labels": ["human", "batter", "bat", "game", "baseball glove", "ball", "human", "ball"],
                   "bboxes": [[558, 185, 770, 491], [244, 55, 460, 494], [338, 17, 434, 214], [145, 14, 720, 490],
                              [606, 380, 679, 428], [603, 447, 631, 484], [558, 358, 769, 490], [559, 366, 611, 427]]},
}
ATTRIBUTES = {
    "baseball_1": [["swinging", "white"], ["blue", "golden", "white", "wooden"], ["white"], ["blue", "white"]],
    "baseball_2": [["crouching", "kneeling", "squatting"], ["swinging", "white"], ["brown", "wooden"], ["professional"],
                   ["red", "white"], ["white"], ["crouching", "kneeling", "red", "white"], ["white"]],
}
RELATIONS = {
    "baseball_1": [[0, "wearing", 3], [0, "about to hit", 2], [0, "holding", 1]],
    "baseball_2": [[0, "catching", 5], [4, "wearing", 6], [7, "on", 0], [1, "swinging", 2]],
}
FAINT = {"baseball_1": {"baseball uniform"}, "baseball_2": {"human", "ball", "baseball glove"}}
"""Labels with a box in ProVision's faint cluster (0.05-0.10): never counted, named or asked about."""


def write_provision(root: Path) -> Path:
    """ProVision's three stage files for the two baseball images, under ``root``."""
    def stage(name: str, part: dict[str, dict]) -> None:
        records = {key: {"data_path": f"sample_data/images/{key}.png", "source": None,
                         "annotation": {"width": DETECTION[key]["width"], "height": DETECTION[key]["height"], **ann}}
                   for key, ann in part.items()}
        (root / name).write_text(json.dumps(records), encoding="utf-8")

    root.mkdir(parents=True, exist_ok=True)
    stage("object-detection-annotations.json",
          {k: {f: v[f] for f in ("det_scores", "labels", "bboxes")} for k, v in DETECTION.items()})
    stage("image-attributes-annotations.json", {k: {"attributes": v} for k, v in ATTRIBUTES.items()})
    stage("relation-annotations-parsed.json", {k: {"relations": v} for k, v in RELATIONS.items()})
    return root


@pytest.fixture(scope="module")
def baseball(tmp_path_factory: pytest.TempPathFactory) -> list[SceneGraph]:
    src = write_provision(tmp_path_factory.mktemp("provision") / "ann")
    return list(get_format("provision").read(src, report=ImportReport(source=str(src))))


def multi_records(graphs: list[SceneGraph], config: ProgramConfig = DEFAULT) -> list:
    """Every multi-image record of the two graphs, in both orders."""
    programs = multi_programs()
    out = []
    for order in (graphs, graphs[::-1]):
        out.extend(run_multi([GraphView(g, config) for g in order], config, programs))
    return out


# =========================================================================== ProVision's baseball graphs
def test_provision_graphs_are_calibrated_by_their_source(baseball: list[SceneGraph]) -> None:
    assert [score_source(g.provenance) for g in baseball] == ["import:provision"] * 2
    one, two = (GraphView(g, DEFAULT) for g in baseball)
    assert (one.config.min_score, one.config.confident_score) == (0.05, 0.3)
    # every box ProVision recorded exists; the faint cluster keeps its labels uncertain
    assert len(one.objects) == 4 and len(two.objects) == 7  # "game" is no object
    assert {o.label for o in one.confident_objects} == {"batter", "bat", "ball"}
    assert set(one.uncertain_labels) == FAINT["baseball_1"]
    assert set(two.uncertain_labels) == FAINT["baseball_2"]
    assert {o.label for o in two.confident_objects} == {"human", "batter", "bat"}


def test_provision_baseball_multi_image_yield(baseball: list[SceneGraph]) -> None:
    records = multi_records(baseball)
    assert len(records) >= 4, "ProVision's own graphs must give multi-image records"
    by_id = {g.image_id: g for g in baseball}
    for r in records:
        # a label with a faint box in either image (human, ball, glove, uniform) decides nothing
        assert not re.search(r"\b(humans?|balls?|gloves?|uniforms?)\b", r.question.lower()), r.question
        for ref in r.provenance["objects"]:
            image_id, oid = ref.split("/")
            o = next(o for o in by_id[image_id].objects if o.id == oid)
            assert o.score >= 0.3, f"{r.program} relies on a faint box: {ref} {o.label} {o.score}"
    # judged by eye against the annotations: one wooden bat per image
    judged = {"multi.common_attribute": "wooden", "multi.count_difference": "0", "multi.total_count": "2"}
    assert {r.program for r in records} & set(judged)
    for r in records:
        if r.program in judged:
            assert r.answer == judged[r.program], (r.question, r.answer)


def test_provision_baseball_single_image_yield_grows(baseball: list[SceneGraph]) -> None:
    programs = single_programs()
    calibrated = [qa for g in baseball for qa in run_single(g, DEFAULT, programs)]
    raw = [qa for g in baseball for qa in run_single(_as_own(g), DEFAULT, programs)]
    assert len(calibrated) > len(raw) + 10
    ball_of_one = {"batter", "bat", "ball"}
    one = baseball[0].image_id
    asked = Counter(lbl for qa in calibrated if qa.images == (one,)
                    for lbl in ball_of_one if f" {lbl}" in qa.question.lower())
    assert asked["ball"] > 0 and asked["bat"] > 0  # confident once calibrated (0.487, 0.488)
    for qa in calibrated:
        g = next(g for g in baseball if g.image_id == qa.images[0])
        scores = {o.id: o.score for o in g.objects}
        used = [oid for oid in qa.provenance.get("objects", ()) if oid in scores]
        assert all(scores[oid] >= 0.3 for oid in used), (qa.program, qa.question, used)


def _as_own(g: SceneGraph) -> SceneGraph:
    """The same graph as if our own detector had written it (scores compared as they are)."""
    return g.replace(provenance={"annotator": OWN_ANNOTATOR, "stages": {"detect": {"fills": ["objects"]}}})


# =========================================================================== unchanged for other sources
@pytest.mark.parametrize("provenance", [
    {"annotator": OWN_ANNOTATOR, "stages": {"detect": {"fills": ["objects"], "models": []}}},
    # a ProVision import whose objects our detector replaced: our scale again
    {"import": {"format": "provision"}, "stages": {"detect": {"fills": ["objects"]}}},
    {"annotator": "hand"}, {"import": {"format": "coco"}}, {"import": {"format": "vg"}}, {}, None,
])
def test_other_sources_keep_the_thresholds(provenance) -> None:
    g = SceneGraph("x", 100, 100, objects=(Object("a", "cup", Box(0, 0, 9, 9), 0.4),),
                   fields=frozenset({"objects"}), provenance=provenance or {})
    for config in (DEFAULT, ProgramConfig(min_score=0.1, confident_score=0.7)):
        view = GraphView(g, config)
        assert view.config == config
        assert view.uncertain_labels == {"cup"}


def test_own_annotator_and_hand_fixtures_are_unchanged() -> None:
    graphs = list(read_graphs(ROOT / "assets" / "scene_graphs" / "part-00000.jsonl"))
    assert graphs
    for g in graphs:
        assert GraphView(g, DEFAULT).config == DEFAULT
    assert raw_thresholds(OWN_ANNOTATOR, 0.2, 0.5) == (0.2, 0.5)


# =========================================================================== the table
def test_table_is_valid_documented_data() -> None:
    data = json.loads(base.CALIBRATION_FILE.read_text(encoding="utf-8"))
    assert data["_about"] and "import:provision" in " ".join(data["_about"])
    table = calibration_table()
    assert set(table) == set(data["sources"]) and OWN_ANNOTATOR not in table
    for source, knots in table.items():
        assert knots[0] == (0.0, 0.0) and knots[-1] == (1.0, 1.0), source


def test_bad_tables_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "calibration.json"
    bad.write_text(json.dumps({"_about": "", "sources": {"import:x": {"knots": [[0, 0], [0.5, 0.6], [0.4, 0.7],
                                                                                [1, 1]]}}}))
    monkeypatch.setattr(base, "CALIBRATION_FILE", bad)
    calibration_table.cache_clear()
    try:
        with pytest.raises(ValueError, match="strictly increasing"):
            calibration_table()
    finally:
        monkeypatch.undo()
        calibration_table.cache_clear()
    assert "import:provision" in calibration_table()


def test_user_thresholds_keep_their_order_and_meaning() -> None:
    grid = np.linspace(0, 1, 41).tolist()
    raw = [raw_thresholds("import:provision", t, t)[0] for t in grid]
    assert raw == sorted(raw) and len(set(raw)) == len(raw)  # strictly increasing: the map is invertible
    assert raw[0] == 0.0 and raw[-1] == 1.0
    lo, hi = raw_thresholds("import:provision", 0.2, 0.6)
    assert lo == 0.05 and hi == pytest.approx(0.44)
    stricter = ProgramConfig(confident_score=0.9)
    assert calibrated_config(stricter, SceneGraph("x", 10, 10, provenance={"import": {"format": "provision"}})
                             ).confident_score == pytest.approx(0.86)


def test_calibrated_records_are_byte_identical_across_hash_seeds(tmp_path: Path) -> None:
    src = write_provision(tmp_path / "ann")
    script = (
        "import json, sys\n"
        "from programs.base import GraphView, ProgramConfig\n"
        "from programs.multi.common import multi_programs, run_multi\n"
        "from scene_graphs.formats import get_format\n"
        f"gs = list(get_format('provision').read({str(src)!r}))\n"
        "c = ProgramConfig(seed=5)\n"
        "rs = run_multi([GraphView(g, c) for g in gs], c, multi_programs())\n"
        "sys.stdout.write(json.dumps([r.to_dict() for r in rs], sort_keys=True))\n")
    outs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outs.append(subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, check=True,
                                   capture_output=True, timeout=300).stdout)
    assert outs[0] == outs[1] and json.loads(outs[0])


# =========================================================================== the multi-image index
def test_grouping_index_reads_calibrated_thresholds(baseball: list[SceneGraph]) -> None:
    one = baseball[0].to_dict()
    assert confident_labels(one, 0.2, 0.5) == ["ball", "bat", "batter"]
    own = _as_own(baseball[0]).to_dict()
    assert confident_labels(own, 0.2, 0.5) == ["batter"]


# =========================================================================== wording for a kind
def _state_graph(label: str, value: str) -> SceneGraph:
    o = Object("a", label, Box(10, 10, 90, 90), 0.9, attributes=(Attribute(value, "state", 0.9),))
    return SceneGraph("s", 200, 100, objects=(o,), fields=frozenset({"objects", "attributes"}))


@pytest.mark.parametrize("label,value,wanted", [
    ("batter", "swinging", {"doing", "doing_here"}),
    ("human", "crouching", {"doing", "doing_here"}),
    ("dog", "sleeping", {"doing", "doing_here"}),
    ("dog", "wet", {"describe_state"}),
    ("door", "open", {"what_state", "describe_state", "condition"}),
])
def test_state_wording_follows_the_kind(label: str, value: str, wanted: set[str]) -> None:
    p = get_program("single.attribute_state")
    view = GraphView(_state_graph(label, value), DEFAULT)
    assert p.solve(view, {"object_id": "a"}) == value
    seen = set()
    for seed in range(40):
        r = p.realize(view, {"object_id": "a"}, value, np.random.default_rng(seed))
        seen.add(r.template)
        if label != "door":
            assert "condition" not in r.question, r.question
    assert seen == wanted
