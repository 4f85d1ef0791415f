"""Evidence and agreement: what the detector searched for, faint candidates, flip and segmenter views.

Real-weight tests run the bundled photos through YOLO11n (INT8) and YOLO11n-seg from $MMGEN_WEIGHTS_DIR.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scene_graphs.model import Box, Object, SceneGraph
from scene_graphs.perception.detect import Detection, fuse_views
from scene_graphs.perception.evidence import faint_candidates, search_record
from scene_graphs.perception.images import load_image

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "assets" / "images"
SHARED = Path(os.environ.get("MMGEN_WEIGHTS_DIR", "/nonexistent"))
HAVE = all((SHARED / f).is_file() for f in ("yolo11n_int8.tflite", "yolo11n-seg_full_integer_quant.tflite"))
needs_weights = pytest.mark.skipif(not HAVE, reason="MMGEN_WEIGHTS_DIR does not hold the YOLO11n TFLite files")


def cup(box=(10, 10, 30, 30), score=0.8, oid="0") -> Object:
    return Object(oid, "cup", Box(*box), score)


# ---------------------------------------------------------------- synthetic: evidence
def test_faint_candidate_on_a_reported_object_of_the_same_label_is_not_evidence() -> None:
    reported = [cup()]
    cands = [("cup", Box(11, 10, 30, 30), 0.2),      # the reported cup seen again: left out
             ("cup", Box(60, 60, 80, 80), 0.2),      # another, faint cup: kept
             ("bowl", Box(10, 10, 30, 30), 0.1),     # same place, other label: kept
             ("cup", Box(60, 60, 80, 80), 0.01),     # under the floor: left out
             ("cup", Box(0, 60, 20, 80), 0.3)]       # at or over the threshold: it was reported or merged away
    assert faint_candidates(cands, reported, threshold=0.25) == [("cup", 0.2), ("bowl", 0.1)]


def test_search_record_summarises_best_and_count_per_label() -> None:
    cands = [("cup", Box(60, 60, 80, 80), 0.2), ("cup", Box(0, 60, 20, 80), 0.12), ("dog", Box(0, 0, 5, 5), 0.1),
             ("zebra", Box(0, 0, 5, 5), 0.2)]
    s = search_record("detect", ["cup", "dog", "bowl"], 0.25, cands, [cup()])
    assert s.best_below == {"cup": 0.2, "dog": 0.1} and s.count_below == {"cup": 2, "dog": 1}
    assert "zebra" not in s.best_below       # outside the vocabulary: not recorded
    g = SceneGraph("x", 100, 100, objects=(cup(),), evidence=(s,), fields={"objects"})
    assert g.confirms_absent("bowl") and not g.confirms_absent("dog") and not g.confirms_absent("cup")
    assert not g.confirms_absent("zebra") and not g.searched_for("zebra") and g.faint_count("cup") == 2


# ---------------------------------------------------------------- synthetic: views
def test_a_box_both_views_see_keeps_its_score_and_one_view_halves_it() -> None:
    image = [Detection((10, 10, 50, 50), 0.8, "cup", "m"), Detection((60, 0, 90, 30), 0.6, "ball", "m")]
    flip = [Detection((12, 10, 50, 50), 0.6, "cup", "m"), Detection((60, 0, 90, 30), 0.5, "person", "m")]
    fused = {(d.label, round(d.score, 4)): d for d in fuse_views([image, flip])}
    assert set(fused) == {("cup", 0.7), ("ball", 0.3), ("person", 0.25)}
    box = fused[("cup", 0.7)].box
    assert box[0] == pytest.approx((10 * 0.8 + 12 * 0.6) / 1.4) and box[2] == 50


def test_fusing_is_one_to_one_and_needs_overlap() -> None:
    image = [Detection((0, 0, 10, 10), 0.9, "cup", "m"), Detection((1, 0, 11, 10), 0.5, "cup", "m")]
    flip = [Detection((0, 0, 10, 10), 0.7, "cup", "m"), Detection((40, 40, 50, 50), 0.7, "cup", "m")]
    scores = sorted(round(d.score, 4) for d in fuse_views([image, flip]))
    assert scores == [0.25, 0.35, 0.8]        # 0.9+0.7 pair; 0.5 alone; the far flip box alone


# ---------------------------------------------------------------- real photos
@pytest.fixture(scope="module")
def photos():
    if not HAVE:
        pytest.skip("MMGEN_WEIGHTS_DIR does not hold the YOLO11n TFLite files")
    os.environ.setdefault("MMGEN_OFFLINE", "1")
    from scene_graphs.perception.detect import Detector
    from scene_graphs.perception.segment import Segmenter

    names = ["people_astronaut_collins.jpg", "street_bus.jpg", "vehicle_rocket_launch.jpg"]
    items = [load_image(PHOTOS / n, PHOTOS) for n in names]
    graphs = [SceneGraph(i.image_id, i.width, i.height, i.path, i.sha256) for i in items]
    detected = Detector().load("cpu")(items, graphs)
    segmented = Segmenter().load("cpu")(items, detected)
    return dict(zip(names, zip(detected, segmented)))


@needs_weights
def test_detector_records_its_search(photos) -> None:
    det, _ = photos["vehicle_rocket_launch.jpg"]
    (s,) = det.evidence
    assert s.annotator == "detect" and len(s.vocabulary) == 80 and s.threshold == 0.25 and s.floor == 0.05
    assert not det.objects                     # nothing reported on the launch pad ...
    assert s.best_below and all(0.05 <= v < 0.25 for v in s.best_below.values())  # ... but faint guesses seen
    assert det.confirms_absent("giraffe") and not det.searched_for("rocket")
    assert det.provenance["stages"]["detect"]["views"] == ["image"]
    bus, _ = photos["street_bus.jpg"]
    assert "person" not in bus.evidence[0].best_below   # every faint person is a reported one seen again


@needs_weights
def test_helmet_sports_ball_is_not_confident_without_agreement(photos) -> None:
    """The astronaut's helmet: YOLO says "sports ball" 0.63, the segmenter (on the mirrored image) nothing."""
    det, seg = photos["people_astronaut_collins.jpg"]
    ball = [o for o in det.objects if o.label == "sports ball"]
    assert ball and ball[0].score > 0.6                 # the detector alone is confident ...
    seg_ball = [o for o in seg.objects if o.label == "sports ball"]
    assert seg_ball and seg_ball[0].score < 0.35        # ... the segmenter does not confirm it
    person = next(o for o in seg.objects if o.label == "person")
    assert person.score > 0.8                           # both views agree


@needs_weights
def test_flip_view_of_the_detector_halves_an_unconfirmed_box() -> None:
    from scene_graphs.perception.detect import Detector

    item = load_image(PHOTOS / "people_astronaut_collins.jpg", PHOTOS)
    g = SceneGraph(item.image_id, item.width, item.height, item.path, item.sha256)
    (g,) = Detector(flip=True).load("cpu")([item], [g])
    assert g.provenance["stages"]["detect"]["views"] == ["image", "flip"]
    ball = [o for o in g.objects if o.label == "sports ball"]
    assert ball and ball[0].score < 0.45                # 0.63 and 0.17 averaged
    assert next(o for o in g.objects if o.label == "person").score > 0.8


@needs_weights
def test_agreed_objects_keep_their_score(photos) -> None:
    det, seg = photos["street_bus.jpg"]
    before = {o.id: o.score for o in det.objects}
    after = {o.id: o.score for o in seg.objects}
    assert [o.id for o in det.objects] == [o.id for o in seg.objects]
    big = [o for o in seg.objects if o.label in {"bus", "person"} and before[o.id] > 0.8]
    assert len(big) >= 4 and all(after[o.id] > 0.7 for o in big)


# ---------------------------------------------------------------- calibration kept as data
def test_calibration_moves_each_label_threshold_onto_the_confident_score() -> None:
    from scene_graphs.perception.calibration import calibrate, load_thresholds

    assert calibrate(0.4, 0.4) == pytest.approx(0.5) and calibrate(0.2, 0.4) == pytest.approx(0.25)
    assert calibrate(1.0, 0.4) == pytest.approx(1.0) and calibrate(0.3, None) == 0.3
    grid = [i / 100 for i in range(101)]
    assert all(calibrate(a, 0.7) <= calibrate(b, 0.7) for a, b in zip(grid, grid[1:]))   # order kept
    table = load_thresholds()
    assert table["confident"] == 0.5 and all(0 < v < 1 for v in table["per_label"].values())


def test_calibrated_thresholds_from_labelled_graphs(tmp_path: Path) -> None:
    from mmgen.check.evaluate import calibrate_thresholds
    from scene_graphs.io import write_graphs

    ref_objs = tuple(Object(f"r{i}", "cup", Box(i * 10, 0, i * 10 + 8, 8), 1.0) for i in range(6))
    pred_objs = tuple(Object(f"p{i}", "cup", Box(i * 10, 0, i * 10 + 8, 8), 0.9 - i * 0.1) for i in range(6))
    pred_objs += (Object("fp", "cup", Box(0, 50, 8, 58), 0.75), Object("x", "dog", Box(0, 80, 8, 88), 0.6))
    write_graphs(tmp_path / "ref.jsonl", [SceneGraph("a", 100, 100, objects=ref_objs, fields={"objects"})])
    write_graphs(tmp_path / "pred.jsonl", [SceneGraph("a", 100, 100, objects=pred_objs, fields={"objects"})])
    # cups by score: .9 .8 .75(fp) .7 .6 .5 .4 -> precision 1, 1, .67, .75, .8, .83, .86
    got = calibrate_thresholds(tmp_path / "pred.jsonl", tmp_path / "ref.jsonl", target_precision=0.8, min_support=5)
    assert got == {"cup": 0.4}            # 6 of 7 right from 0.4; the dog has too few predictions to calibrate
    strict = calibrate_thresholds(tmp_path / "pred.jsonl", tmp_path / "ref.jsonl", target_precision=1.0)
    assert strict == {"cup": 0.8}


@needs_weights
def test_masks_from_the_mirrored_view_land_on_their_objects(photos) -> None:
    _, seg = photos["street_bus.jpg"]
    people = [o for o in seg.objects if o.label == "person" and o.score > 0.7]
    assert len(people) >= 3
    for o in people:   # a mask mirrored the wrong way would mostly fall outside the box and be cut off
        assert o.mask is not None and o.mask.area >= 0.25 * o.box.area  # 0.31..0.63 here


@pytest.mark.parametrize("fmt", ["vg", "gqa", "coco", "provision"])
def test_imported_graphs_carry_no_evidence(fmt: str, tmp_path: Path) -> None:
    """Other formats cannot say what was searched for: imports have unknown evidence (empty), so no
    absence is ever confirmed from them."""
    from scene_graphs.formats import get_format
    from scene_graphs.formats._common import ImportReport
    from scene_graphs.ids import image_id

    search = search_record("detect", ["dog", "cat"], 0.25, [], [])
    g = SceneGraph(image_id("a/7.jpg"), 20, 10, "a/7.jpg", objects=(Object("0", "dog", Box(1, 2, 5, 6)),),
                   fields={"objects"}, evidence=(search,), meta={"source_id": 7 if fmt in ("vg", "coco") else "7"})
    assert g.confirms_absent("cat")
    get_format(fmt).write([g], tmp_path / "ann")
    (back,) = list(get_format(fmt).read(tmp_path / "ann", report=ImportReport(source=str(tmp_path))))
    assert back.evidence == () and not back.confirms_absent("cat") and not back.searched_for("dog")
