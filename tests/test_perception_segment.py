"""Instance masks from the real YOLO11n-seg INT8 weights, matched to detected boxes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from scene_graphs.model import Box, Object, SceneGraph
from scene_graphs.perception.images import load_image
from scene_graphs.perception.segment import Segmenter, box_iou_matrix, linear_assignment, match_boxes

pytest.importorskip("ultralytics")
import ultralytics

ASSETS = Path(ultralytics.__file__).parent / "assets"
SHARED = Path(os.environ.get("MMGEN_WEIGHTS_DIR", "/nonexistent"))
HAVE = all((SHARED / f).is_file() for f in ("yolo11n_int8.tflite", "yolo11n-seg_full_integer_quant.tflite"))
needs_weights = pytest.mark.skipif(not HAVE, reason="MMGEN_WEIGHTS_DIR does not hold the YOLO11n TFLite files")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MMGEN_OFFLINE", "1")
    monkeypatch.setenv("MMGEN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def annotated():
    """bus.jpg through the real detector and segmenter."""
    if not HAVE:
        pytest.skip("MMGEN_WEIGHTS_DIR does not hold the YOLO11n TFLite files")
    os.environ.setdefault("MMGEN_OFFLINE", "1")
    from scene_graphs.perception.detect import Detector

    item = load_image(ASSETS / "bus.jpg", ASSETS)
    g = SceneGraph(item.image_id, item.width, item.height, item.path, item.sha256)
    (g,) = Detector().load("cpu")([item], [g])
    seg = Segmenter().load("cpu")
    (out,) = seg([item], [g])
    return item, g, out, seg


@needs_weights
def test_masks_lie_inside_their_boxes(annotated) -> None:
    item, before, g, _ = annotated
    masked = [o for o in g.objects if o.mask is not None]
    assert len(masked) >= 4
    assert {o.label for o in masked} >= {"bus", "person"}
    for o in masked:
        m = o.mask.to_array()
        assert m.shape == (item.height, item.width)
        ys, xs = np.nonzero(m)
        inside = ((xs >= o.box.x1 - 1) & (xs <= o.box.x2 + 1) & (ys >= o.box.y1 - 1) & (ys <= o.box.y2 + 1)).mean()
        assert inside >= 0.95, (o.label, inside)
        assert o.mask.area >= 0.2 * o.box.area  # a real silhouette, not a speck
    # only masks were added: boxes, labels and ids are those of the detector
    assert [(o.id, o.label, o.box) for o in g.objects] == [(o.id, o.label, o.box) for o in before.objects]
    assert g.fields == {"objects", "masks"}


@needs_weights
def test_provenance_names_the_seg_weights_and_no_absent_sam(annotated) -> None:
    _, _, g, seg = annotated
    models = g.provenance["stages"]["segment"]["models"]
    assert [m["model"] for m in models] == ["yolo11n-seg"]
    assert models[0]["sha256"] == "1f99366c11ed011fe92bd4cf1ea0b7e6ada210ddd9da47eeedda05838c1e9f9b"
    assert g.provenance["stages"]["segment"]["options"]["iou"] == 0.5
    assert seg.sam_model is None


@needs_weights
def test_sam_as_main_model_needs_its_weights() -> None:
    from scene_graphs.perception.weights import MissingWeightsError

    with pytest.raises(MissingWeightsError, match="mobile_sam.pt"):
        Segmenter(model="mobile_sam").load("cpu")


def test_box_iou_matrix_agrees_with_box_iou() -> None:
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 50, (6, 2))
    a = np.hstack([a, a + rng.uniform(1, 40, (6, 2))])
    b = rng.uniform(0, 50, (4, 2))
    b = np.hstack([b, b + rng.uniform(1, 40, (4, 2))])
    m = box_iou_matrix(a, b)
    for i in range(6):
        for j in range(4):
            assert m[i, j] == pytest.approx(Box(*a[i]).iou(Box(*b[j])))
    assert box_iou_matrix(a, np.zeros((0, 4))).shape == (6, 0)


@pytest.mark.parametrize("objects, instances, expected", [
    ([[0, 0, 10, 10], [20, 20, 30, 30]], [[21, 20, 31, 30], [0, 1, 10, 11]], {0: 1, 1: 0}),
    ([[0, 0, 10, 10]], [[50, 50, 60, 60]], {}),                             # no overlap: unmatched
    ([[0, 0, 10, 10], [1, 0, 11, 10]], [[0, 0, 10, 10]], {0: 0}),           # one instance, one owner
    ([[0, 0, 10, 10], [0, 0, 10, 12]], [[0, 0, 10, 12], [0, 0, 10, 10]], {0: 1, 1: 0}),  # best total IoU
])
def test_match_boxes(objects, instances, expected) -> None:
    assert match_boxes(np.array(objects, float), np.array(instances, float), 0.5) == expected


def test_linear_assignment_is_scipys_including_ties() -> None:
    """Same rows and columns as scipy.optimize.linear_sum_assignment on 4000 matrices, wide and tall,
    most full of ties (small integers, constant, IoU matrices of boxes on a grid with many zeros)."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(7)
    for trial in range(4000):
        r, c = (int(v) for v in rng.integers(1, 12 if trial % 5 else 30, 2))
        kind = trial % 4
        if kind == 0:
            cost = rng.integers(0, 3, (r, c)).astype(float)
        elif kind == 1:
            cost = rng.random((r, c))
        elif kind == 2:
            cost = np.full((r, c), 2.0)
        else:
            xy = rng.integers(0, 40, (r + c, 2)).astype(float)
            boxes = np.hstack([xy, xy + rng.integers(5, 30, (r + c, 2))])
            cost = -box_iou_matrix(boxes[:r], boxes[r:])
        want, got = linear_sum_assignment(cost), linear_assignment(cost)
        assert np.array_equal(want[0], got[0]) and np.array_equal(want[1], got[1]), (trial, cost)
    assert [a.tolist() for a in linear_assignment(np.zeros((0, 3)))] == [[], []]
    with pytest.raises(ValueError):
        linear_assignment(np.array([[0.0, np.nan]]))


@needs_weights
def test_objects_without_a_matching_instance_keep_no_mask(annotated) -> None:
    item, g, _, seg = annotated
    ghost = Object("ghost", "kite", Box(300, 20, 360, 60), 0.5)  # sky above the bus: nothing there
    (out,) = seg([item], [g.replace(objects=g.objects + (ghost,))])
    assert out.objects_by_id["ghost"].mask is None
    assert sum(o.mask is not None for o in out.objects) >= 4


def test_masks_are_limited_to_the_grown_box() -> None:
    from scene_graphs.perception.segment import _mask_or_none

    m = np.zeros((100, 100), bool)
    m[10:50, 10:90] = True  # the segmenter saw a wider thing than the detector's box
    got = _mask_or_none(m, Box(10, 10, 50, 50), 0.05).to_array()
    assert got[10:50, 10:52].all() and not got[:, 52:].any()
    assert _mask_or_none(m, Box(60, 60, 90, 90), 0.05) is None  # nothing left inside
