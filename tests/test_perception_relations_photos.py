"""Relation rules on the bundled photos, through the real detector and segmenter ($MMGEN_WEIGHTS_DIR):
the wrong relations the old rules stated there are gone, the true ones stay."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scene_graphs.model import SceneGraph
from scene_graphs.perception.images import load_image

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "assets" / "images"
SHARED = Path(os.environ.get("MMGEN_WEIGHTS_DIR", "/nonexistent"))
HAVE = all((SHARED / f).is_file() for f in ("yolo11n_int8.tflite", "yolo11n-seg_full_integer_quant.tflite"))
pytestmark = pytest.mark.skipif(not HAVE, reason="MMGEN_WEIGHTS_DIR does not hold the YOLO11n TFLite files")
NAMES = ["street_bus.jpg", "indoor_coffee_cup.jpg", "people_grace_hopper.jpg"]


@pytest.fixture(scope="module")
def graphs() -> dict[str, SceneGraph]:
    os.environ.setdefault("MMGEN_OFFLINE", "1")
    from scene_graphs.perception.detect import Detector
    from scene_graphs.perception.relations import GeometryRelations
    from scene_graphs.perception.segment import Segmenter

    items = [load_image(PHOTOS / n, PHOTOS) for n in NAMES]
    out = [SceneGraph(i.image_id, i.width, i.height, i.path, i.sha256) for i in items]
    for stage in (Detector(), Segmenter(), GeometryRelations()):
        out = stage.load("cpu")(items, out)
    return dict(zip(NAMES, out))


def triples(g: SceneGraph) -> set[tuple[str, str, str]]:
    by_id = g.objects_by_id
    return {(by_id[r.subject].label, r.predicate, by_id[r.object].label) for r in g.relations}


def test_people_in_front_of_the_bus_are_not_left_or_right_of_it(graphs) -> None:
    found = triples(graphs["street_bus.jpg"])
    assert not {t for t in found if "bus" in (t[0], t[2]) and t[1] in {"left of", "right of", "on", "inside"}}
    assert ("person", "left of", "person") in found and ("person", "next to", "person") in found


def test_nothing_is_inside_the_table_and_the_spoon_is_not_inside_the_cup(graphs) -> None:
    found = triples(graphs["indoor_coffee_cup.jpg"])
    assert not {t for t in found if t[1] == "inside"}, found


def test_a_tie_is_not_inside_a_person(graphs) -> None:
    assert ("tie", "inside", "person") not in triples(graphs["people_grace_hopper.jpg"])
