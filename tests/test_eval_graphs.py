"""mmgen eval-graphs: detection precision/recall, mask IoU, attribute and relation recall."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.check.evaluate import GraphEvaluation, evaluate_pair, match_objects
from scene_graphs.io import write_graphs
from scene_graphs.model import Attribute, Box, Mask, Object, Relation, SceneGraph

W, H = 100, 80


def obj(oid: str, label: str, box: tuple, score: float = 1.0, attrs: tuple = (), mask: np.ndarray | None = None):
    return Object(oid, label, Box(*box), score, None if mask is None else Mask.from_array(mask),
                  tuple(Attribute(a, "color") for a in attrs))


def graph(objects, relations=(), image_id="img", fields=("objects", "attributes", "relations")):
    return SceneGraph(image_id, W, H, objects=tuple(objects), relations=tuple(relations), fields=frozenset(fields))


REF = [obj("r1", "cup", (10, 10, 30, 30), attrs=("red",)), obj("r2", "table", (0, 40, 100, 80), attrs=("brown",)),
       obj("r3", "dog", (60, 5, 90, 35))]


@pytest.mark.parametrize("pred, tp, fp, fn", [
    ([obj("p1", "cup", (10, 10, 30, 30)), obj("p2", "table", (0, 40, 100, 80)), obj("p3", "dog", (60, 5, 90, 35))],
     3, 0, 0),
    ([obj("p1", "cup", (20, 20, 40, 40))], 0, 1, 3),                  # IoU 1/7 < 0.5: a miss and a false alarm
    ([obj("p1", "bowl", (10, 10, 30, 30))], 0, 1, 3),                 # right place, wrong label
    ([obj("p1", "cup", (10, 10, 30, 30), 0.9), obj("p2", "cup", (11, 10, 30, 30), 0.8)], 1, 1, 2),  # duplicate
    ([obj("p1", "cup", (10, 10, 30, 30), 0.3)], 0, 0, 3),             # below the score threshold: not counted
    ([], 0, 0, 3),
])
def test_detection_counts(pred, tp, fp, fn):
    result = GraphEvaluation(min_score=0.5, iou=0.5)
    evaluate_pair(graph(pred), graph(REF), result)
    o = result.overall
    assert (o.tp, o.fp, o.fn) == (tp, fp, fn)
    assert (math.isnan(o.precision) and tp + fp == 0) or o.precision == tp / (tp + fp)


def test_higher_scoring_prediction_takes_the_match():
    pairs = match_objects([obj("low", "cup", (10, 10, 30, 30), 0.6), obj("high", "cup", (12, 10, 30, 30), 0.9)],
                          [REF[0]], 0.5)
    assert [(p.id, r.id) for p, r in pairs] == [("high", "r1")]


def test_label_map_merges_vocabularies():
    result = GraphEvaluation(0.0, 0.5)
    evaluate_pair(graph([obj("p", "person", (10, 10, 30, 30))]), graph([obj("r", "man", (10, 10, 30, 30))]),
                  result, {"man": "person"})
    assert result.overall.tp == 1 and result.labels["person"].recall == 1.0


def test_attribute_and_relation_recall():
    pred = [obj("p1", "cup", (10, 10, 30, 30), attrs=("red",)), obj("p2", "table", (0, 40, 100, 80), attrs=("gray",))]
    ref_rels = [Relation("r1", "on", "r2"), Relation("r3", "next to", "r1")]   # r3 is unmatched: not counted
    result = GraphEvaluation(0.0, 0.5)
    evaluate_pair(graph(pred, [Relation("p1", "on", "p2")]), graph(REF, ref_rels), result)
    d = result.to_dict()
    assert d["attribute_recall"] == 0.5       # red found, brown not
    assert d["relation_recall"] == 1.0 and result.relations_total == 1


def test_mask_iou_matches_pixel_count():
    a = np.zeros((H, W), bool)
    a[10:30, 10:30] = True
    b = np.zeros((H, W), bool)
    b[10:30, 20:30] = True
    result = GraphEvaluation(0.0, 0.3)
    evaluate_pair(graph([obj("p", "cup", (10, 10, 30, 30), mask=b)]), graph([obj("r", "cup", (10, 10, 30, 30), mask=a)]),
                  result)
    assert result.mask_ious == [pytest.approx((a & b).sum() / (a | b).sum())]


def test_cli_reports_thresholds_and_writes_json(tmp_path):
    ref = graph(REF, [Relation("r1", "on", "r2")], image_id="a")
    pred = graph([obj("p1", "cup", (10, 10, 30, 30), 0.9, ("red",)), obj("p2", "table", (0, 40, 100, 80), 0.4),
                  obj("p4", "cat", (40, 0, 50, 10), 0.95)], image_id="a")
    write_graphs(tmp_path / "ref" / "part-00000.jsonl", [ref])
    write_graphs(tmp_path / "pred" / "part-00000.jsonl", [pred, graph([], image_id="unpaired")])
    res = CliRunner().invoke(main, ["eval-graphs", str(tmp_path / "pred"), str(tmp_path / "ref"), "--thresholds",
                                    "0.3,0.5", "--json", str(tmp_path / "e.json"), "--per-label"])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["unpaired"] == 1
    low, high = data["results"]
    assert (low["tp"], low["fp"], low["fn"]) == (2, 1, 1)    # cup + table matched, cat false, dog missed
    assert (high["tp"], high["fp"], high["fn"]) == (1, 1, 2)  # the table (0.4) drops out at 0.5
    assert "cup" in res.output and "0.50" in res.output


def test_cli_refuses_when_nothing_pairs(tmp_path):
    write_graphs(tmp_path / "ref" / "part-00000.jsonl", [graph(REF, image_id="a")])
    write_graphs(tmp_path / "pred" / "part-00000.jsonl", [graph([], image_id="b")])
    res = CliRunner().invoke(main, ["eval-graphs", str(tmp_path / "pred"), str(tmp_path / "ref")])
    assert res.exit_code != 0 and "no predicted graph" in res.output


def test_relation_precision_counts_stated_relations_between_matched_objects():
    from scene_graphs.model import Relation

    ref = graph(REF, [Relation("r1", "on", "r2"), Relation("r2", "under", "r1")])
    pred_objs = [obj("p1", "cup", (10, 10, 30, 30)), obj("p2", "table", (0, 40, 100, 80)), obj("px", "cat", (0, 0, 5, 5))]
    pred = graph(pred_objs, [Relation("p1", "on", "p2"), Relation("p1", "inside", "p2"), Relation("px", "on", "p2")])
    result = GraphEvaluation(0.5, 0.5)
    evaluate_pair(pred, ref, result)
    d = result.to_dict()
    assert d["relations_stated"] == 2 and d["relation_precision"] == 0.5   # "inside" is false; px is unmatched


def test_evidence_counts_missed_objects_and_false_absences():
    from scene_graphs.model import Search

    search = Search("detect", ("cup", "table", "dog"), 0.25, best_below={"dog": 0.1})
    pred = SceneGraph("img", W, H, objects=(obj("p1", "cup", (10, 10, 30, 30)),), evidence=(search,),
                      fields=frozenset({"objects"}))
    ref = graph(REF + [obj("r4", "zebra", (0, 0, 10, 10))])
    result = GraphEvaluation(0.5, 0.5)
    evaluate_pair(pred, ref, result)
    ev = result.to_dict()["evidence"]
    # table missed (searched, not seen), dog missed (seen faintly), zebra not searchable
    assert ev == {"missed_searched": 2, "missed_faint": 1, "missed_unsearchable": 1,
                  "false_absences": 1, "absences_checked": 3}


def test_text_precision_needs_every_word_in_the_reference():
    from scene_graphs.model import TextRegion

    ref = SceneGraph("img", W, H, text=(TextRegion("t0", "Cero emisiones", Box(0, 0, 50, 10)),), fields={"text"})
    pred = SceneGraph("img", W, H, text=(TextRegion("t0", "cero", Box(0, 0, 20, 10)),
                                         TextRegion("t1", "M15OL/SUTLLR", Box(0, 0, 20, 10))), fields={"text"})
    result = GraphEvaluation(0.5, 0.5)
    evaluate_pair(pred, ref, result)
    assert (result.text_stated, result.text_true) == (2, 1)
