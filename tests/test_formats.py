"""Importers and exporters: Visual Genome, GQA, COCO, ProVision (``scene_graphs.formats``).

* Round trips over generated graphs: ``read(write(graphs)) == graphs`` for what each format represents.
* Hand-written samples in each real format: specific conversions (xywh -> xyxy, synsets, attribute
  categories, polygon / RLE masks, stale paths, image sizes from headers, depth and masks).
* A table of malformed inputs, each giving one ValidationError that names file, record and field.
* The restricted unpickler and ProVision's pickle policy.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from scene_graphs.formats import FORMAT_NAMES, ImportReport, get_format, safe_pickle
from scene_graphs.formats import _common
from scene_graphs.ids import file_sha256, image_id
from scene_graphs.model import Attribute, Box, DepthMap, Mask, Object, Relation, SceneGraph, ValidationError, infer_fields
from scene_graphs.schema import validate_against_schema
from scene_graphs.vocab import ATTRIBUTE_VOCABULARY, attribute_category, normalize
from tests import strategies as sgst

ROUND_TRIP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# =========================================================================== helpers
def read_all(fmt: str, src: Path, **kwargs: Any) -> tuple[list[SceneGraph], ImportReport]:
    report = ImportReport(source=str(src))
    graphs = list(get_format(fmt).read(src, report=report, **kwargs))
    return graphs, report


def comparable(g: SceneGraph) -> dict[str, Any]:
    """Everything a format can carry back: the serialized graph without provenance, plus depth values."""
    d = g.to_dict()
    d.pop("provenance")
    d["depth_values"] = None if g.depth is None else g.depth.values.tolist()
    return d


def save_image(path: Path, width: int, height: int, fmt: str = "PNG", exif_orientation: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(width * 1000 + height)
    im = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        im.save(path, fmt, exif=exif)
    else:
        im.save(path, fmt)
    return path


def dump(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))  # json.dumps writes NaN as NaN, which the readers must refuse by field
    return path


# =========================================================================== strategies
LABELS = ("person", "dog", "traffic light", "baseball bat", "cup", "tree")
PREDICATES = ("on", "next to", "holding", "wearing", "in front of")
ATTRIBUTE_WORDS = ("red", "dark blue", "wooden", "large", "round", "striped", "open", "shiny", "fluffy")
_words = st.text("abcdefgé日 ", min_size=1, max_size=10).map(normalize).filter(bool)
labels = st.one_of(st.sampled_from(LABELS), _words)


@st.composite
def grid_boxes(draw: st.DrawFn, width: int, height: int) -> Box:
    """Boxes on a quarter-pixel grid inside the image: xywh <-> xyxy conversions are exact on it."""
    xs = sorted(draw(st.integers(0, 4 * width)) / 4 for _ in range(2))
    ys = sorted(draw(st.integers(0, 4 * height)) / 4 for _ in range(2))
    return Box(xs[0], ys[0], xs[1], ys[1])


@st.composite
def mask_for(draw: st.DrawFn, width: int, height: int) -> Mask:
    seed = draw(st.integers(0, 2**32 - 1))
    return Mask.from_array(np.random.default_rng(seed).random((height, width)) < draw(st.sampled_from((0.0, 0.3, 1.0))))


@st.composite
def graph_lists(draw: st.DrawFn, fmt: str) -> list[SceneGraph]:
    """Graphs holding only what ``fmt`` represents, in the form its reader produces."""
    source_ids = draw(st.lists(st.integers(1, 10**6), min_size=1, max_size=4, unique=True))
    vg_attributes = draw(st.booleans())  # VG writes attributes for all graphs or none
    next_ann = 1
    graphs = []
    for k, sid in enumerate(source_ids):
        width, height = draw(st.integers(1, 24)), draw(st.integers(1, 24))
        if fmt == "coco":  # annotation ids: distinct over the dataset, ascending (the order the reader gives)
            n_obj = draw(st.integers(0, 5))
            ids = [str(next_ann + i) for i in range(n_obj)]
            next_ann += n_obj + draw(st.integers(0, 3))
        elif fmt == "provision":  # object ids are list indices
            ids = [str(i) for i in range(draw(st.integers(0, 5)))]
        else:  # any distinct integers, in any order
            ids = [str(i) for i in draw(st.lists(st.integers(0, 10**7), max_size=5, unique=True))]
        with_attributes = {"vg": vg_attributes, "gqa": True, "coco": False}.get(fmt, draw(st.booleans()))
        with_relations = {"vg": draw(st.booleans()), "gqa": True, "coco": False}.get(fmt, draw(st.booleans()))
        with_masks = fmt in ("coco", "provision") and draw(st.booleans())
        with_depth = fmt == "provision" and draw(st.booleans())
        depth = None
        if with_depth:
            dh, dw = draw(st.integers(1, 8)), draw(st.integers(1, 8))
            seed = draw(st.integers(0, 2**32 - 1))
            depth = DepthMap(np.random.default_rng(seed).integers(0, 256, (dh, dw)).astype(np.float32), True)
        objects = []
        for oid in ids:
            box = draw(grid_boxes(width, height))
            mask = None
            if with_masks and (fmt == "provision" or draw(st.booleans())):
                mask = draw(mask_for(width, height))
            attributes: tuple[Attribute, ...] = ()
            if with_attributes:
                names = draw(st.lists(st.one_of(st.sampled_from(ATTRIBUTE_WORDS), _words), max_size=3, unique=True))
                attributes = tuple(Attribute(a, attribute_category(a)) for a in names)
            score = draw(st.floats(0, 1)) if fmt in ("coco", "provision") else 1.0
            object_depth = depth.median_in(box, width, height, mask) if depth is not None else None
            synset = draw(st.none() | st.sampled_from(("dog.n.01", "tree.n.01"))) if fmt == "vg" else None
            objects.append(Object(oid, draw(labels), box, score, mask, attributes, object_depth, synset))
        relations = ()
        if with_relations and ids:
            ends = st.sampled_from(ids)
            triples = draw(st.lists(st.tuples(ends, st.sampled_from(PREDICATES), ends), max_size=6, unique=True))
            if fmt == "gqa":  # GQA stores relations under their subject: they come back grouped by it
                triples.sort(key=lambda t: ids.index(t[0]))
            source = "model" if fmt == "provision" else "human"
            relations = tuple(Relation(s, p, o, source=source) for s, p, o in triples)
        if fmt in ("vg", "gqa"):
            path = f"{sid}.jpg"  # these formats name images by id
        else:
            path = f"{draw(st.sampled_from(('a', 'b', 'a/b')))}/img{k}.jpg"
        fields = {"objects"}
        if fmt == "coco":
            fields = set(infer_fields(objects))
        if with_attributes:
            fields.add("attributes")
        if with_relations:
            fields.add("relations")
        if with_masks and fmt == "provision":
            fields.add("masks")
        if depth is not None:
            fields.add("depth")
        meta: dict[str, Any] = {"source_id": sid if fmt in ("vg", "coco") else str(sid)}
        if fmt == "gqa" and draw(st.booleans()):
            meta["location"] = "living room"
        if fmt == "coco" and objects and draw(st.booleans()):
            meta["crowd"] = [ids[0]]
        graphs.append(SceneGraph(image_id=image_id(path), width=width, height=height, path=path, objects=tuple(objects),
                                 relations=relations, depth=depth, fields=frozenset(fields), meta=meta))
    return graphs


# =========================================================================== round trips
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@ROUND_TRIP
@given(data=st.data())
def test_round_trip_over_generated_graphs(fmt: str, data: st.DataObject) -> None:
    graphs = data.draw(graph_lists(fmt))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        get_format(fmt).write(graphs, out)
        back, report = read_all(fmt, out)
    assert [comparable(g) for g in sorted(back, key=lambda g: g.image_id)] == \
           [comparable(g) for g in sorted(graphs, key=lambda g: g.image_id)]
    assert [int(g.meta["source_id"]) for g in back] == sorted(int(g.meta["source_id"]) for g in graphs)
    assert sorted(report.missing_images) == sorted(g.path for g in graphs)  # no image files were written
    assert report.clipped_boxes == 0 and not report.dropped
    for g in back:
        assert g.provenance["import"]["format"] == fmt


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_round_trip_with_images_keeps_paths_and_hashes(fmt: str, tmp_path: Path) -> None:
    """With the images present, paths come back relative to the image root and hashes are filled in."""
    root = tmp_path / "root"
    graphs = []
    for k, (sid, sub) in enumerate(((7, "imgs/one"), (12, "imgs/two"))):
        name = f"{sid}.jpg" if fmt in ("vg", "gqa") else "img.jpg"  # same name in two folders for coco/provision
        rel = f"{sub}/{name}"
        save_image(root / rel, 20 + k, 10 + k, fmt="JPEG")
        obj = Object("0", "dog", Box(1, 2, 5, 6))
        graphs.append(SceneGraph(image_id(rel), 20 + k, 10 + k, rel, objects=(obj,), fields={"objects"},
                                 meta={"source_id": sid if fmt in ("vg", "coco") else str(sid)}))
    get_format(fmt).write(graphs, tmp_path / "ann")
    back, report = read_all(fmt, tmp_path / "ann", image_root=root)
    assert not report.missing_images
    assert {g.path: g.image_id for g in back} == {g.path: g.image_id for g in graphs}
    for g in back:
        assert g.sha256 == file_sha256(root / g.path)
    assert len({g.image_id for g in back}) == 2


# =========================================================================== Visual Genome
def vg_sample(root: Path, *, with_image_data: bool = True) -> Path:
    """A VG folder (attributes, objects, relationships, image data) and its image at VG_100K_2/1.jpg."""
    folder = root / "vg"
    save_image(folder / "VG_100K_2" / "1.jpg", 64, 72, fmt="JPEG")
    clock = {"object_id": 10, "x": 10, "y": 20, "w": 30, "h": 40, "names": [" Clock ", "timepiece"],
             "synsets": ["clock.n.01"], "attributes": ["White", "wooden", "open", "shiny", "white"]}
    sign = {"object_id": 11, "x": 50, "y": 30, "w": 30, "h": 30, "names": ["sign"], "synsets": [],
            "merged_object_ids": [12]}
    dump(folder / "attributes.json", [{"image_id": 1, "attributes": [clock, sign]}])
    dump(folder / "objects.json", [{"image_id": 1, "objects": [dict(clock, names=["NOT USED"]), sign]}])
    subject = {"object_id": 10, "x": 10, "y": 20, "w": 30, "h": 40, "name": "clock", "synsets": ["clock.n.01"]}
    target = {"object_id": 11, "x": 50, "y": 30, "w": 30, "h": 30, "name": "sign", "synsets": []}
    ghost = {"object_id": 99, "x": 0, "y": 0, "w": 1, "h": 1, "name": "ghost", "synsets": []}
    dump(folder / "relationships.json", [{"image_id": 1, "relationships": [
        {"relationship_id": 1, "predicate": "ON", "synsets": ["along.r.01"], "subject": subject, "object": target},
        {"relationship_id": 2, "predicate": "on ", "synsets": [], "subject": subject, "object": target},
        {"relationship_id": 3, "predicate": "near", "synsets": [], "subject": ghost, "object": target},
        {"relationship_id": 4, "predicate": "under", "synsets": [], "subject": dict(target, object_id=12),
         "object": subject},  # 12 was merged into 11 (VG v1.4)
    ]}, {"image_id": 2, "relationships": []}])
    if with_image_data:
        dump(folder / "image_data.json", [{"image_id": 1, "url": "https://cs.stanford.edu/people/rak248/VG_100K_2/1.jpg",
                                           "width": 64, "height": 72, "coco_id": 42, "flickr_id": None}])
    return folder


def test_vg_sample_conversions(tmp_path: Path) -> None:
    src = vg_sample(tmp_path)
    (g,), report = read_all("vg", src)
    assert g.path == "VG_100K_2/1.jpg"  # url file name, found below the root
    assert g.image_id == image_id("VG_100K_2/1.jpg")
    assert g.sha256 == file_sha256(src / "VG_100K_2" / "1.jpg")
    assert (g.width, g.height) == (64, 72)
    clock, sign = g.objects
    assert (clock.id, clock.label, clock.synset) == ("10", "clock", "clock.n.01")  # attributes.json, not objects.json
    assert clock.box.to_list() == [10.0, 20.0, 40.0, 60.0]  # x, y, w, h -> x1, y1, x2, y2
    assert [(a.name, a.category) for a in clock.attributes] == [
        ("white", "color"), ("wooden", "material"), ("open", "state"), ("shiny", "other")]
    assert sign.box.to_list() == [50.0, 30.0, 64.0, 60.0]  # spilled over the right edge: clipped
    assert report.clipped_boxes == 1
    assert [(r.subject, r.predicate, r.object, r.source) for r in g.relations] == [
        ("10", "on", "11", "human"), ("11", "under", "10", "human")]
    assert report.dropped["vg duplicate relation"] == 1
    assert report.dropped["vg relation whose subject or object is not among the image's objects"] == 1
    assert report.dropped["vg relationships record for an image with no objects record"] == 1
    assert g.fields == {"objects", "attributes", "relations"}
    assert g.meta == {"source_id": 1, "coco_id": 42}
    assert sorted(g.provenance["import"]["files"]) == ["attributes.json", "image_data.json", "relationships.json"]


def test_vg_objects_file_as_src_and_size_from_image(tmp_path: Path) -> None:
    src = vg_sample(tmp_path, with_image_data=False)
    (g,), _ = read_all("vg", src / "objects.json")
    assert g.objects[0].label == "not used"  # the given file is used, not attributes.json
    assert g.fields == {"objects", "relations"}  # no attribute annotation in objects.json
    assert (g.width, g.height) == (64, 72)  # read from the JPEG header
    assert g.path == "VG_100K_2/1.jpg"  # <image id>.jpg found by name


def test_image_size_follows_exif_orientation(tmp_path: Path) -> None:
    path = save_image(tmp_path / "rotated.jpg", 30, 10, fmt="JPEG", exif_orientation=6)
    assert _common.image_size(path) == (10, 30)


# =========================================================================== GQA
def gqa_sample(root: Path) -> Path:
    save_image(root / "images" / "2354786.jpg", 50, 40, fmt="JPEG")
    return dump(root / "val_sceneGraphs.json", {"2354786": {
        "width": 50, "height": 40, "location": "street", "objects": {
            "7": {"name": "Car", "x": 1, "y": 2, "w": 10, "h": 20, "attributes": ["red", "parked", "red"],
                  "relations": [{"name": "to the left of", "object": "8"}, {"name": "to the left of", "object": "8"}]},
            "8": {"name": "tree", "x": 20, "y": 0, "w": 5, "h": 30, "attributes": [], "relations": []},
        }}})


def test_gqa_sample_conversions(tmp_path: Path) -> None:
    (g,), report = read_all("gqa", gqa_sample(tmp_path))
    car, tree = g.objects
    assert car.box.to_list() == [1.0, 2.0, 11.0, 22.0]
    assert car.label == "car"
    assert [(a.name, a.category) for a in car.attributes] == [("red", "color"), ("parked", "state")]
    assert [(r.subject, r.predicate, r.object) for r in g.relations] == [("7", "to the left of", "8")]
    assert report.dropped["gqa duplicate relation"] == 1
    assert g.path == "images/2354786.jpg"
    assert g.meta == {"source_id": "2354786", "location": "street"}
    assert g.fields == {"objects", "attributes", "relations"}


# =========================================================================== COCO
def coco_sample(root: Path) -> Path:
    """Three images: a polygon, an uncompressed crowd RLE and a compressed RLE; one image has no size."""
    from pycocotools import mask as mask_utils

    save_image(root / "val2017" / "1.jpg", 40, 40, fmt="JPEG")
    save_image(root / "val2017" / "2.jpg", 10, 5, fmt="JPEG")
    save_image(root / "val2017" / "3.jpg", 8, 6, fmt="JPEG")
    block = np.zeros((6, 8), dtype=np.uint8)
    block[1:4, 2:7] = 1
    compressed = mask_utils.encode(np.asfortranarray(block))
    return dump(root / "annotations" / "instances_val2017.json", {
        "info": {}, "licenses": [],
        "images": [{"id": 1, "file_name": "old/place/1.jpg", "width": 40, "height": 40},
                   {"id": 2, "file_name": "val2017/2.jpg"},
                   {"id": 3, "file_name": "val2017/3.jpg", "width": 8, "height": 6}],
        "categories": [{"id": 18, "name": "Dog", "supercategory": "animal"}, {"id": 1, "name": "person"}],
        "annotations": [
            {"id": 5, "image_id": 1, "category_id": 18, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0,
             "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]]},
            {"id": 6, "image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 5], "iscrowd": 1,
             "segmentation": {"size": [5, 10], "counts": [5, 10, 35]}},
            {"id": 7, "image_id": 3, "category_id": 1, "bbox": [2, 1, 5, 3], "iscrowd": 0, "score": 0.5,
             "segmentation": {"size": [6, 8], "counts": compressed["counts"].decode("ascii")}},
            {"id": 4, "image_id": 1, "category_id": 1, "bbox": [35, 35, 10, 10], "iscrowd": 0, "segmentation": []},
        ]})


def test_coco_sample_conversions(tmp_path: Path) -> None:
    src = coco_sample(tmp_path)
    graphs, report = read_all("coco", src, image_root=tmp_path)
    g1, g2, g3 = graphs
    assert [g.meta["source_id"] for g in graphs] == [1, 2, 3]
    assert g1.path == "val2017/1.jpg"  # stale file_name resolved by file name
    assert [o.id for o in g1.objects] == ["4", "5"]  # annotation-id order
    person, dog = g1.objects
    assert dog.label == "dog" and person.label == "person"  # category ids mapped to lower-cased names
    assert dog.box.to_list() == [10.0, 10.0, 30.0, 30.0]
    assert dog.mask is not None and abs(dog.mask.area - 400) <= 0.05 * 400  # polygon area 20 x 20
    assert dog.mask.bbox().iou(dog.box) > 0.9
    assert person.mask is None and person.box.to_list() == [35.0, 35.0, 40.0, 40.0]  # clipped at the edge
    assert report.clipped_boxes == 1
    assert g1.fields == {"objects"}  # not every object has a mask
    assert (g2.width, g2.height) == (10, 5)  # read from the image header
    (crowd,) = g2.objects
    assert crowd.mask.area == 10  # runs 5 off, 10 on, 35 off
    assert crowd.mask.to_array()[:, 1].all() and not crowd.mask.to_array()[:, 0].any()  # column-major runs
    assert g2.meta["crowd"] == ["6"] and g2.fields == {"objects", "masks"}
    (scored,) = g3.objects
    assert scored.score == 0.5
    assert scored.mask.area == 15 and scored.mask.to_array()[1:4, 2:7].all()


def test_coco_two_img_jpg_in_different_folders_get_different_ids(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        save_image(tmp_path / sub / "img.jpg", 8, 8)
    src = dump(tmp_path / "instances.json", {
        "images": [{"id": 1, "file_name": "a/img.jpg", "width": 8, "height": 8},
                   {"id": 2, "file_name": "b/img.jpg", "width": 8, "height": 8}],
        "annotations": [], "categories": []})
    graphs, report = read_all("coco", src)
    assert [g.path for g in graphs] == ["a/img.jpg", "b/img.jpg"]
    assert graphs[0].image_id != graphs[1].image_id
    assert not report.missing_images


def test_two_records_for_one_image_are_refused(tmp_path: Path) -> None:
    src = dump(tmp_path / "instances.json", {
        "images": [{"id": 1, "file_name": "x.jpg", "width": 8, "height": 8},
                   {"id": 2, "file_name": "x.jpg", "width": 8, "height": 8}], "annotations": [], "categories": []})
    with pytest.raises(ValidationError, match=r"\(image 2\).*same image"):
        read_all("coco", src)


# =========================================================================== ProVision
def provision_sample(root: Path, *, pickled: bool = True) -> Path:
    """Five stage files as ProVision writes them, with stale data_paths and per-stage sizes that disagree."""
    ann = root / "ann"
    save_image(root / "ann" / "images" / "baseball_1.png", 40, 30)
    boxes = [[5, 4, 26, 25], [20, 12, 34, 21], [0, 0, 45, 10]]
    labels = ["Batter", "bat", "ball"]
    stale = "sample_data/images/baseball_1.png"
    dump(ann / "object-detection-annotations.json", {
        "baseball_1": {"data_path": stale, "annotation": {"width": 40, "height": 30, "det_scores": [0.9, 0.5, 0.25],
                                                          "labels": labels, "bboxes": boxes}, "source": "demo"},
        "baseball_2": {"data_path": "/elsewhere/baseball_2.png",
                       "annotation": {"width": 20, "height": 10, "det_scores": [], "labels": [], "bboxes": []},
                       "source": None}})
    dump(ann / "image-attributes-annotations.json", {"baseball_1": {"data_path": stale, "annotation": {
        "width": 40, "height": 30, "attributes": [["swinging", "white"], ["wooden"], []]}}})
    dump(ann / "relation-annotations-parsed.json", {"baseball_1": {"data_path": stale, "annotation": {
        "width": 401, "height": 400, "relations": [[0, "holding", 1], [0, "about to hit", 2], [0, "holding", 1]]}}})
    depth = np.zeros((15, 20), dtype=np.uint8)
    depth[:, 10:] = 200  # right half near
    (ann / "depth_masks").mkdir()
    np.save(ann / "depth_masks" / "baseball_1_depth.npy", depth)
    dump(ann / "depth-estimation-annotations.json", {"baseball_1": {"data_path": stale, "annotation": {
        "width": 40, "height": 30, "depth_mask_id": "baseball_1_depth.npy"}}})
    masks = []
    for x1, y1, x2, y2 in boxes:
        a = np.zeros((30, 40), dtype=bool)
        a[y1:y2, x1:min(x2, 40)] = True
        masks.append(sp.csr_matrix(a))
    (ann / "seg_masks").mkdir()
    if pickled:
        name = "baseball_1_mask.pkl"
        with (ann / "seg_masks" / name).open("wb") as f:
            pickle.dump(masks, f)
    else:
        name = "baseball_1_mask.npy"
        np.save(ann / "seg_masks" / name, np.stack([m.toarray() for m in masks]))
    dump(ann / "segmentation-annotations.json", {"baseball_1": {"data_path": stale, "annotation": {
        "width": 40, "height": 30, "seg_mask_id": name, "bboxes": boxes, "labels": labels}}})
    return ann


def test_provision_sample_merges_stages(tmp_path: Path) -> None:
    src = provision_sample(tmp_path)
    (g1, g2), report = read_all("provision", src, allow_pickle=True)
    assert g1.path == "images/baseball_1.png"  # stale data_path found by file name
    assert g1.sha256 == file_sha256(src / "images" / "baseball_1.png")
    assert (g1.width, g1.height) == (40, 30)  # the detection stage's size wins over the relation stage's
    assert report.dropped["provision width/height that disagree with the detection stage (ignored)"] == 1
    assert g1.fields == {"objects", "attributes", "relations", "depth", "masks"}
    batter, bat, ball = g1.objects
    assert [o.id for o in g1.objects] == ["0", "1", "2"] and batter.label == "batter"
    assert [o.score for o in g1.objects] == [0.9, 0.5, 0.25]
    assert ball.box.to_list() == [0.0, 0.0, 40.0, 10.0] and report.clipped_boxes == 1
    assert [(a.name, a.category) for a in batter.attributes] == [("swinging", "state"), ("white", "color")]
    assert [(r.subject, r.predicate, r.object, r.source) for r in g1.relations] == [
        ("0", "holding", "1", "model"), ("0", "about to hit", "2", "model")]
    assert report.dropped["provision duplicate relation"] == 1
    assert bat.mask.area == (21 - 12) * (34 - 20)
    assert g1.depth is not None and g1.depth.larger_is_nearer is True and g1.depth.shape == (15, 20)
    assert bat.depth == 200.0  # mask lies in the near (right) half: median of the map under it
    assert g1.meta == {"source_id": "baseball_1", "provision_source": "demo"}
    assert g1.provenance["import"]["parts"]["masks"] == "segmentation-annotations.json"
    # the second image is nowhere under the root: reported, kept with its path as given and no hash
    assert report.missing_images == ["/elsewhere/baseball_2.png"]
    assert g2.path == "/elsewhere/baseball_2.png" and g2.sha256 is None and g2.objects == ()
    assert g2.fields == {"objects"}


def test_provision_npy_masks_need_no_pickle(tmp_path: Path) -> None:
    (g1, _), _ = read_all("provision", provision_sample(tmp_path, pickled=False))
    assert "masks" in g1.fields and g1.objects[1].mask.area == 9 * 14


def test_provision_refuses_pickles_without_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="--allow-pickle") as info:
        read_all("provision", provision_sample(tmp_path))
    assert "segmentation-annotations.json" in str(info.value) and info.value.where == "annotation.seg_mask_id"


def test_provision_malicious_pickle_is_refused_even_when_allowed(tmp_path: Path) -> None:
    src = provision_sample(tmp_path)
    marker = tmp_path / "pwned"
    (src / "seg_masks" / "baseball_1_mask.pkl").write_bytes(pickle.dumps(_Evil(f"touch {marker}")))
    with pytest.raises(ValidationError, match="refusing to unpickle"):
        read_all("provision", src, allow_pickle=True)
    assert not marker.exists()


def test_provision_builds_one_index_of_the_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "imgs"
    for k in range(4):
        save_image(root / f"d{k}" / f"p{k}.png", 4, 4)
    dump(tmp_path / "det.json", {f"p{k}": {"data_path": f"/stale/p{k}.png", "annotation": {
        "width": 4, "height": 4, "labels": ["x"], "bboxes": [[0, 0, 1, 1]]}} for k in range(4)})
    walks = []
    real_walk = os.walk
    monkeypatch.setattr(_common.os, "walk", lambda top, **kw: walks.append(top) or real_walk(top, **kw))
    graphs, report = read_all("provision", tmp_path / "det.json", image_root=root)
    assert [g.path for g in graphs] == [f"d{k}/p{k}.png" for k in range(4)]
    assert sum(1 for top in walks if Path(top) == root) == 1 and not report.missing_images


# =========================================================================== malformed input table
def _vg(root: Path, mutate: Callable[[dict], None]) -> Path:
    record = {"image_id": 1, "attributes": [{"object_id": 5, "x": 1, "y": 1, "w": 2, "h": 2, "names": ["cup"]}]}
    mutate(record)
    dump(root / "image_data.json", [{"image_id": 1, "url": "1.jpg", "width": 10, "height": 10}])
    return dump(root / "attributes.json", [record])


def _gqa(root: Path, mutate: Callable[[dict], None]) -> Path:
    record = {"width": 10, "height": 10, "objects": {"10": {"name": "cup", "x": 1, "y": 1, "w": 2, "h": 2,
                                                             "attributes": [], "relations": []}}}
    mutate(record)
    return dump(root / "sceneGraphs.json", {"77": record})


def _coco(root: Path, mutate: Callable[[dict], None]) -> Path:
    data = {"images": [{"id": 3, "file_name": "3.jpg", "width": 10, "height": 10}],
            "annotations": [{"id": 1, "image_id": 3, "category_id": 1, "bbox": [1, 1, 2, 2], "segmentation": []}],
            "categories": [{"id": 1, "name": "cup"}]}
    mutate(data)
    return dump(root / "instances.json", data)


def _provision(root: Path, mutate: Callable[[dict], None]) -> Path:
    ann = {"width": 10, "height": 10, "labels": ["cup", "mug"], "bboxes": [[1, 1, 3, 3], [2, 2, 4, 4]],
           "det_scores": [0.5, 0.4], "relations": [[0, "near", 1]]}
    mutate(ann)
    return dump(root / "det.json", {"k9": {"data_path": "k9.jpg", "annotation": ann}})


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """A mutation setting (or, with ``_DELETE``, removing) the value at a dotted path; numbers index lists."""
    def mutate(d: dict) -> None:
        *parents, last = path.split(".")
        target: Any = d
        for k in parents:
            target = target[int(k)] if isinstance(target, list) else target[k]
        key: Any = int(last) if isinstance(target, list) else last
        if value is _DELETE:
            del target[key]
        else:
            target[key] = value
    return mutate


_DELETE = object()
NAN = float("nan")

BAD_INPUTS = [
    # (format, builder, mutation, expected record, expected field)
    ("vg", _vg, _set("attributes.0.x", "ten"), "1", "attributes[0].x"),
    ("vg", _vg, _set("attributes.0.w", NAN), "1", "attributes[0].w"),
    ("vg", _vg, _set("attributes.0.w", -3), "1", "attributes[0]"),
    ("vg", _vg, _set("attributes.0.names", _DELETE), "1", "attributes[0].names"),
    ("vg", _vg, _set("attributes.0.object_id", None), "1", "attributes[0].object_id"),
    ("vg", _vg, _set("attributes", {"not": "a list"}), "1", "attributes"),
    ("gqa", _gqa, _set("objects.10.relations", [{"name": "on", "object": "11"}]), "77", "objects.10.relations[0].object"),
    ("gqa", _gqa, _set("objects.10.y", NAN), "77", "objects.10.y"),
    ("gqa", _gqa, _set("objects.10.name", 3), "77", "objects.10.name"),
    ("gqa", _gqa, _set("objects", []), "77", "objects"),
    ("gqa", _gqa, _set("width", "wide"), "77", "width"),
    ("coco", _coco, _set("annotations.0.image_id", 4), "4", "annotations[0].image_id"),
    ("coco", _coco, _set("annotations.0.category_id", 2), "3", "annotations[0].category_id"),
    ("coco", _coco, _set("annotations.0.bbox", [1, 1, 2]), "3", "annotations[0].bbox"),
    ("coco", _coco, _set("annotations.0.bbox", [5, 5, -2, 2]), "3", "annotations[0].bbox"),
    ("coco", _coco, _set("annotations.0.bbox", [1, 1, NAN, 2]), "3", "annotations[0].bbox[2]"),
    ("coco", _coco, _set("annotations.0.segmentation", {"size": [5, 5], "counts": [25]}), "3",
     "annotations[0].segmentation.size"),
    ("coco", _coco, _set("annotations.0.segmentation", {"size": [10, 10], "counts": [3, 4]}), "3",
     "annotations[0].segmentation.counts"),
    ("coco", _coco, _set("images.0.width", -10), "3", "images[0].width"),
    ("provision", _provision, _set("bboxes.0", [3, 1, 1, 3]), "k9", "annotation.bboxes[0]"),
    ("provision", _provision, _set("relations.0", [0, "near", 2]), "k9", "annotation.relations[0][2]"),
    ("provision", _provision, _set("bboxes", [[1, 1, 3, 3]]), "k9", "annotation.bboxes"),
    ("provision", _provision, _set("det_scores.0", NAN), "k9", "annotation.det_scores[0]"),
    ("provision", _provision, _set("labels.1", ""), "k9", "annotation.labels[1]"),
    ("provision", _provision, _set("width", "401px"), "k9", "annotation.width"),
    ("provision", _provision, _set("labels", _DELETE), "k9", "annotation.labels"),
]


@pytest.mark.parametrize(("fmt", "build", "mutate", "record", "where"), BAD_INPUTS,
                         ids=[f"{c[0]}-{c[4]}-{i}" for i, c in enumerate(BAD_INPUTS)])
def test_bad_input_names_file_record_and_field(fmt: str, build: Callable, mutate: Callable, record: str, where: str,
                                               tmp_path: Path) -> None:
    src = build(tmp_path, mutate)
    with pytest.raises(ValidationError) as info:
        read_all(fmt, src)
    err = info.value
    assert err.where == where, str(err)
    assert src.name in err.source and f"(image {record})" in err.source, str(err)
    assert str(err).count("\n") == 0 and where in str(err)


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@pytest.mark.parametrize("content", [b'{"images": [', b"\xff\xfe not utf-8", b"[1, 2,,]"])
def test_malformed_json_names_the_file(fmt: str, content: bytes, tmp_path: Path) -> None:
    src = tmp_path / ("attributes.json" if fmt == "vg" else "instances.json")
    src.write_bytes(content)
    with pytest.raises(ValidationError, match="malformed JSON") as info:
        read_all(fmt, src)
    assert info.value.source == str(src)


@pytest.mark.parametrize(("fmt", "top"), [("vg", {"a": 1}), ("gqa", [1]), ("coco", [1]), ("provision", [])])
def test_wrong_top_level_type_is_refused(fmt: str, top: Any, tmp_path: Path) -> None:
    src = dump(tmp_path / "x.json", top)
    with pytest.raises(ValidationError) as info:
        read_all(fmt, src)
    assert str(src) in str(info.value)


def test_conflicting_values_between_stage_files_are_an_error(tmp_path: Path) -> None:
    dump(tmp_path / "a.json", {"k": {"data_path": "k.jpg", "annotation": {"width": 4, "height": 4, "labels": ["x"],
                                                                          "bboxes": [[0, 0, 1, 1]]}}})
    dump(tmp_path / "b.json", {"k": {"data_path": "k.jpg", "annotation": {"labels": ["y"]}}})
    with pytest.raises(ValidationError, match=r"b\.json \(image k\): annotation\.labels: differs"):
        read_all("provision", tmp_path)


def test_missing_size_without_image_is_a_clear_error(tmp_path: Path) -> None:
    src = dump(tmp_path / "instances.json", {"images": [{"id": 1, "file_name": "gone.jpg"}], "annotations": [],
                                              "categories": []})
    with pytest.raises(ValidationError, match="not found") as info:
        read_all("coco", src)
    assert info.value.where == "images[0].width"


# =========================================================================== restricted unpickler
class _Evil:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return (os.system, (self.command,))


class _EvalPayload:
    def __reduce__(self) -> tuple:
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_restricted_unpickler_loads_sparse_masks(protocol: int) -> None:
    masks = [sp.csr_matrix(np.eye(4, dtype=bool)), sp.coo_matrix(np.ones((2, 3), dtype=bool)),
             sp.csc_array(np.eye(3, dtype=bool)), np.zeros((2, 2), dtype=np.uint8)]
    out = safe_pickle.loads(pickle.dumps(masks, protocol=protocol))
    assert [type(m) for m in out] == [type(m) for m in masks]
    for a, b in zip(out, masks):
        np.testing.assert_array_equal(a.toarray() if sp.issparse(a) else a, b.toarray() if sp.issparse(b) else b)


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("payload", ["os.system", "eval", "numpy.load", "subprocess"])
def test_restricted_unpickler_refuses_code(payload: str, protocol: int, tmp_path: Path) -> None:
    import subprocess

    marker = tmp_path / "pwned"
    obj: Any = {
        "os.system": _Evil(f"touch {marker}"),
        "eval": _EvalPayload(),
        "numpy.load": _Reduce(np.load, (str(marker),)),
        "subprocess": _Reduce(subprocess.call, (["touch", str(marker)],)),
    }[payload]
    data = pickle.dumps([sp.csr_matrix(np.eye(2, dtype=bool)), obj], protocol=protocol)
    with pytest.raises(safe_pickle.UnsafePickleError, match="refusing"):
        safe_pickle.loads(data)
    assert not marker.exists()


class _Reduce:
    def __init__(self, fn: Callable, args: tuple) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple:
        return (self.fn, self.args)


def test_restricted_unpickler_refuses_persistent_ids() -> None:
    import io

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return "ext" if isinstance(obj, str) else None

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(["x"])
    with pytest.raises(safe_pickle.UnsafePickleError, match="persistent"):
        safe_pickle.loads(buf.getvalue())


# =========================================================================== vocabulary
def test_attribute_vocabulary_is_unambiguous_and_categorizes() -> None:
    seen: dict[str, str] = {}
    for category, words in ATTRIBUTE_VOCABULARY.items():
        for w in words:
            assert w == normalize(w), w
            assert seen.setdefault(w, category) == category, f"{w!r} in {seen[w]} and {category}"
    cases = {"Red": "color", "dark  green": "color", "light blue": "color", "wooden": "material",
             "tiny": "size", "round": "shape", "striped": "pattern", "open": "state", "shiny": "other",
             "dark": "other", "green car": "other"}
    assert {w: attribute_category(w) for w in cases} == cases


def test_locator_prefers_the_path_sharing_the_longest_tail(tmp_path: Path) -> None:
    for sub in ("x/train", "y/val", "z"):
        (tmp_path / sub).mkdir(parents=True)
        (tmp_path / sub / "img.jpg").write_bytes(b"data")
    locator = _common.ImageLocator(tmp_path)
    assert locator.locate("/old/root/val/img.jpg")[0] == "y/val/img.jpg"
    assert locator.locate("z/img.jpg")[0] == "z/img.jpg"  # direct hit, no index needed
    assert locator.locate("missing/other.jpg") == ("missing/other.jpg", None)
    assert locator.ambiguous == 1


# =========================================================================== any valid graph can be exported
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs=st.lists(sgst.scene_graphs(max_side=16), min_size=1, max_size=3,
                       unique_by=(lambda g: os.path.normpath(g.path) if g.path else "", lambda g: g.image_id)))
def test_any_valid_graph_exports_to_a_readable_file(fmt: str, graphs: list[SceneGraph]) -> None:
    """Whatever the graph holds (free-text ids and labels, metric depth, text, odd meta), the writer makes
    files the reader accepts, and no object is lost."""
    with tempfile.TemporaryDirectory() as tmp:
        get_format(fmt).write(graphs, Path(tmp) / "out")
        back, _ = read_all(fmt, Path(tmp) / "out", allow_pickle=False)
    for g in back:
        validate_against_schema(g.to_dict())

    def labels_of(gs: list[SceneGraph]) -> list[tuple[str, ...]]:
        return sorted(tuple(sorted(normalize(o.label) for o in g.objects)) for g in gs)

    assert labels_of(back) == labels_of(graphs)
