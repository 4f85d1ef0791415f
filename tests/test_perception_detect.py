"""Detection with the real YOLO11n INT8 weights (from $MMGEN_WEIGHTS_DIR), merging and vocabularies."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scene_graphs.model import Box, SceneGraph
from scene_graphs.perception.detect import Detection, Detector, merge_detections, read_vocabulary
from scene_graphs.perception.images import item_from_array, load_image

pytest.importorskip("ultralytics")
import ultralytics

ASSETS = Path(ultralytics.__file__).parent / "assets"
SHARED = Path(os.environ.get("MMGEN_WEIGHTS_DIR", "/nonexistent"))
needs_weights = pytest.mark.skipif(not (SHARED / "yolo11n_int8.tflite").is_file(),
                                   reason="MMGEN_WEIGHTS_DIR does not hold yolo11n_int8.tflite")

# Hand-drawn boxes for ultralytics' bus.jpg (810 x 1080), read off a 100 px grid.
BUS = Box(10, 230, 805, 730)
PEOPLE = [Box(50, 400, 245, 900), Box(225, 405, 345, 860), Box(670, 390, 810, 880)]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MMGEN_OFFLINE", "1")
    monkeypatch.setenv("MMGEN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def detector() -> Detector:
    if not (SHARED / "yolo11n_int8.tflite").is_file():
        pytest.skip("MMGEN_WEIGHTS_DIR does not hold yolo11n_int8.tflite")
    os.environ.setdefault("MMGEN_OFFLINE", "1")
    return Detector().load("cpu")


def _graph(item) -> SceneGraph:
    return SceneGraph(item.image_id, item.width, item.height, item.path, item.sha256)


def _best_iou(box: Box, objects, label: str) -> float:
    return max((o.box.iou(box) for o in objects if o.label == label), default=0.0)


@needs_weights
def test_finds_the_bus_and_the_people(detector: Detector) -> None:
    item = load_image(ASSETS / "bus.jpg", ASSETS)
    (g,) = detector([item], [_graph(item)])
    labels = [o.label for o in g.objects]
    assert labels.count("bus") >= 1 and labels.count("person") >= 3
    assert _best_iou(BUS, g.objects, "bus") >= 0.8
    for person in PEOPLE:
        assert _best_iou(person, g.objects, "person") >= 0.6
    assert [o.id for o in g.objects] == [str(i) for i in range(len(g.objects))]
    assert [o.score for o in g.objects] == sorted((o.score for o in g.objects), reverse=True)
    assert g.fields == {"objects"}
    prov = g.provenance["stages"]["detect"]
    assert prov["models"][0]["sha256"] == "cd49cd708633a6a2378c433d9c55f9212485b5042dbddcead02eb2563ea387b7"
    assert prov["options"]["conf"] == 0.25 and "ultralytics-opencv-headless" in prov["libraries"]


@needs_weights
def test_boxes_are_in_the_original_frame(detector: Detector) -> None:
    """The bus pasted into a larger canvas at an offset: the box moves with it (no letterbox coordinates)."""
    bus = np.asarray(Image.open(ASSETS / "bus.jpg").convert("RGB"))
    canvas = np.full((1400, 1600, 3), 114, np.uint8)
    canvas[200:200 + bus.shape[0], 700:700 + bus.shape[1]] = bus
    item = item_from_array(canvas, "canvas.png")
    (g,) = detector([item], [_graph(item)])
    moved = Box(BUS.x1 + 700, BUS.y1 + 200, BUS.x2 + 700, BUS.y2 + 200)
    assert _best_iou(moved, g.objects, "bus") >= 0.75


@needs_weights
def test_exif_rotated_file_gives_boxes_in_the_displayed_frame(detector: Detector, tmp_path: Path) -> None:
    shown = Image.open(ASSETS / "bus.jpg").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90 degrees counter-clockwise; viewers turn it back
    shown.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "rotated.png", exif=exif.tobytes())
    item = load_image(tmp_path / "rotated.png", tmp_path)
    assert (item.width, item.height) == shown.size
    (g,) = detector([item], [_graph(item)])
    assert _best_iou(BUS, g.objects, "bus") >= 0.8


@needs_weights
def test_a_batch_gives_the_same_as_one_by_one(detector: Detector) -> None:
    items = [load_image(ASSETS / n, ASSETS) for n in ("bus.jpg", "zidane.jpg")]
    together = detector(items, [_graph(i) for i in items])
    alone = [detector([i], [_graph(i)])[0] for i in items]
    for a, b in zip(together, alone):
        assert [(o.label, o.box.to_list()) for o in a.objects] == [(o.label, o.box.to_list()) for o in b.objects]
    assert {o.label for o in together[1].objects} >= {"person"}


MERGE_TABLE = [
    pytest.param(  # same place, different labels: class-agnostic NMS keeps the better one
        [Detection((10, 10, 90, 90), 0.6, "truck", "m"), Detection((12, 10, 92, 88), 0.9, "bus", "m")],
        [("bus", (12, 10, 92, 88))], id="agnostic-nms"),
    pytest.param(  # far apart: both kept, best first
        [Detection((0, 0, 20, 20), 0.5, "cup", "m"), Detection((50, 50, 90, 90), 0.8, "cup", "m")],
        [("cup", (50, 50, 90, 90)), ("cup", (0, 0, 20, 20))], id="both"),
    pytest.param(  # under the score threshold
        [Detection((0, 0, 20, 20), 0.1, "cup", "m")], [], id="threshold"),
    pytest.param(  # spilling over the edge: clipped; reversed corners: ordered
        [Detection((-5, 90, 30, 130), 0.7, "dog", "m"), Detection((60, 40, 40, 10), 0.6, "cat", "m")],
        [("dog", (0, 90, 30, 100)), ("cat", (40, 10, 60, 40))], id="clip-and-order"),
    pytest.param(  # thinner than min_side once clipped
        [Detection((99.5, 0, 130, 50), 0.7, "pole", "m")], [], id="sliver"),
]


@pytest.mark.parametrize("candidates, expected", MERGE_TABLE)
def test_merge_detections(candidates, expected) -> None:
    objects = merge_detections(candidates, 100, 100, nms_iou=0.7, conf=0.25, max_objects=10, min_side=2.0)
    assert [(o.label, tuple(o.box.to_list())) for o in objects] == [(lab, tuple(map(float, b))) for lab, b in expected]
    assert [o.id for o in objects] == [str(i) for i in range(len(objects))]


def test_merge_keeps_max_objects_best() -> None:
    cands = [Detection((i * 10, 0, i * 10 + 8, 8), 0.3 + i / 100, "x", "m") for i in range(9)]
    objects = merge_detections(cands, 100, 100, nms_iou=0.7, conf=0.25, max_objects=3, min_side=1.0)
    assert [o.box.x1 for o in objects] == [80.0, 70.0, 60.0]


def test_read_vocabulary(tmp_path: Path) -> None:
    f = tmp_path / "classes.txt"
    f.write_text("# things\ntraffic cone\n\nfire  hydrant  # red ones\ntraffic cone\n")
    assert read_vocabulary(str(f)) == ["traffic cone", "fire hydrant"]
    assert read_vocabulary("cat, dog,cat") == ["cat", "dog"]
    assert read_vocabulary(["a", " b "]) == ["a", "b"]


@needs_weights
def test_open_vocabulary_without_its_weights_warns_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    det = Detector(open_vocab="yolov8s-worldv2", vocabulary="traffic cone,scooter")
    with caplog.at_level(logging.WARNING, logger="scene_graphs.perception"):
        det.load("cpu")
    assert "yolov8s-worldv2.pt" in caplog.text and "open-vocabulary detection is off" in caplog.text
    assert [name for name, _, _ in det.models] == ["yolo11n"]
    assert [m["model"] for m in det.provenance()["models"]] == ["yolo11n"]


def test_missing_detector_weights_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scene_graphs.perception.weights import MissingWeightsError

    monkeypatch.setenv("MMGEN_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(MissingWeightsError) as info:
        Detector().load("cpu")
    assert "yolo11n_int8.tflite" in str(info.value) and "cd49cd708633a6a2" in str(info.value)


def test_bad_option_is_refused() -> None:
    with pytest.raises(Exception, match="has no option 'conff'"):
        Detector(conff=0.3)
    with pytest.raises(Exception, match="must be a number"):
        Detector(conf="high")
