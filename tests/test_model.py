"""The scene-graph data model: validation (with field paths), round trips, the JSON Schema, the
networkx view, box / mask / depth helpers and immutability."""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, Callable

import networkx
import numpy as np
import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from scene_graphs.model import (
    BOX_TOLERANCE,
    Attribute,
    Box,
    DepthMap,
    Mask,
    Object,
    Relation,
    SceneGraph,
    TextRegion,
    ValidationError,
)
from scene_graphs.schema import validate_against_schema
from tests import strategies as sgst

W, H = 64, 48


def _mask_dict(h: int = H, w: int = W) -> dict[str, Any]:
    a = np.zeros((h, w), dtype=bool)
    a[2:10, 3:12] = True
    return Mask.from_array(a).to_dict()


def valid_record() -> dict[str, Any]:
    """A small valid serialized graph: 3 objects (one with a mask and attributes), 2 relations, 2 text regions."""
    return {
        "version": 1, "image_id": "0123456789abcdef", "path": "a/img.jpg", "width": W, "height": H,
        "sha256": "ab" * 32, "fields": ["attributes", "objects", "relations", "text"],
        "objects": [
            {"id": "1", "label": "dog", "box": [3.0, 2.0, 12.0, 10.0], "score": 0.9, "mask": _mask_dict(),
             "attributes": [{"name": "brown", "category": "color", "score": 0.8}]},
            {"id": "2", "label": "ball", "box": [20.0, 20.0, 30.0, 30.0], "score": 0.7},
            {"id": "3", "label": "sign", "box": [40.0, 5.0, 60.0, 15.0], "score": 1.0},
        ],
        "relations": [
            {"subject": "1", "predicate": "next to", "object": "2", "score": 0.6, "source": "model"},
            {"subject": "2", "predicate": "below", "object": "3", "score": 1.0, "source": "geometry"},
        ],
        "text": [
            {"id": "t0", "text": "STOP", "box": [41.0, 6.0, 59.0, 14.0], "score": 0.95, "object": "3"},
            {"id": "t1", "text": "42", "box": [0.0, 40.0, 8.0, 48.0], "score": 0.5},
        ],
        "depth": None, "provenance": {"objects": {"model": "yolo"}}, "meta": {},
    }


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """A mutation that sets ``record[path]`` (dotted, with [i] indices) to ``value``."""
    def mutate(record: dict) -> None:
        parts = path.replace("[", ".").replace("]", "").split(".")
        target: Any = record
        for p in parts[:-1]:
            target = target[int(p)] if isinstance(target, list) else target[p]
        last = parts[-1]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return mutate


def _delete(path: str) -> Callable[[dict], None]:
    def mutate(record: dict) -> None:
        *head, last = path.split(".")
        target: Any = record
        for p in head:
            target = target[p]
        del target[last]
    return mutate


def _dup_object_id(record: dict) -> None:
    record["objects"][1]["id"] = record["objects"][0]["id"]


def _dup_text_id(record: dict) -> None:
    record["text"][1]["id"] = record["text"][0]["id"]


nan, inf = float("nan"), float("inf")

# (case id, mutation, expected ValidationError.where, whether the JSON Schema must refuse it too)
INVALID = [
    ("nan-box", _set("objects[2].box", [nan, 5.0, 60.0, 15.0]), "objects[2].box", False),
    ("inf-box", _set("objects[2].box", [40.0, 5.0, inf, 15.0]), "objects[2].box", False),
    ("inverted-x", _set("objects[2].box", [60.0, 5.0, 40.0, 15.0]), "objects[2].box", False),
    ("inverted-y", _set("objects[1].box", [20.0, 30.0, 30.0, 20.0]), "objects[1].box", False),
    ("box-right-of-image", _set("objects[2].box", [40.0, 5.0, W + BOX_TOLERANCE + 0.01, 15.0]), "objects[2].box",
     False),
    ("box-above-image", _set("objects[0].box", [3.0, -1.0, 12.0, 10.0]), "objects[0].box", False),
    ("box-three-numbers", _set("objects[1].box", [1.0, 2.0, 3.0]), "objects[1].box", True),
    ("box-string-coordinate", _set("objects[1].box", ["1", 2.0, 3.0, 4.0]), "objects[1].box", True),
    ("box-bool-coordinate", _set("objects[1].box", [True, 2.0, 3.0, 4.0]), "objects[1].box", True),
    ("box-missing", lambda r: r["objects"][1].pop("box"), "objects[1].box", True),
    ("text-box-outside", _set("text[1].box", [0.0, 40.0, 8.0, H + 1.0]), "text[1].box", False),
    ("duplicate-object-id", _dup_object_id, "objects[1].id", False),
    ("duplicate-text-id", _dup_text_id, "text[1].id", False),
    ("dangling-subject", _set("relations[1].subject", "99"), "relations[1].subject", False),
    ("dangling-object", _set("relations[0].object", "99"), "relations[0].object", False),
    ("text-unknown-object", _set("text[0].object", "99"), "text[0].object", False),
    ("score-above-1", _set("objects[0].score", 1.5), "objects[0].score", True),
    ("score-below-0", _set("objects[1].score", -0.1), "objects[1].score", True),
    ("score-nan", _set("objects[1].score", nan), "objects[1].score", False),
    ("score-bool", _set("objects[1].score", True), "objects[1].score", True),
    ("score-string", _set("objects[1].score", "0.9"), "objects[1].score", True),
    ("relation-score", _set("relations[1].score", 2), "relations[1].score", True),
    ("attribute-score", _set("objects[0].attributes[0].score", -1), "objects[0].attributes[0].score", True),
    ("text-score", _set("text[1].score", "high"), "text[1].score", True),
    ("empty-label", _set("objects[1].label", ""), "objects[1].label", True),
    ("blank-label", _set("objects[1].label", "   "), "objects[1].label", False),
    ("empty-predicate", _set("relations[0].predicate", ""), "relations[0].predicate", True),
    ("empty-text", _set("text[0].text", ""), "text[0].text", True),
    ("empty-attribute-name", _set("objects[0].attributes[0].name", ""), "objects[0].attributes[0].name", True),
    ("unknown-attribute-category", _set("objects[0].attributes[0].category", "smell"),
     "objects[0].attributes[0].category", True),
    ("unknown-relation-source", _set("relations[0].source", "oracle"), "relations[0].source", True),
    ("unknown-field-name", _set("fields", ["objects", "segmentation"]), "fields", True),
    ("field-name-not-string", _set("fields", [["objects"]]), "fields", True),
    ("unknown-graph-key", _set("objcts", []), "objcts", True),
    ("unknown-object-key", _set("objects[1].lable", "cat"), "objects[1].lable", True),
    ("unknown-relation-key", _set("relations[0].confidence", 0.5), "relations[0].confidence", True),
    ("unknown-attribute-key", _set("objects[0].attributes[0].value", 1), "objects[0].attributes[0].value", True),
    ("unknown-text-key", _set("text[0].lang", "en"), "text[0].lang", True),
    ("mask-size-differs", _set("objects[0].mask", _mask_dict(H, W + 1)), "objects[0].mask", False),
    ("mask-missing-counts", _set("objects[0].mask", {"size": [H, W]}), "objects[0].mask", True),
    ("mask-counts-number", _set("objects[0].mask", {"size": [H, W], "counts": 5}), "objects[0].mask.counts", True),
    ("mask-not-object", _set("objects[0].mask", "RLE"), "objects[0].mask", True),
    ("sha256-short", _set("sha256", "abc"), "sha256", True),
    ("sha256-uppercase", _set("sha256", "AB" * 32), "sha256", True),
    ("sha256-number", _set("sha256", 12345), "sha256", True),
    ("version-2", _set("version", 2), "version", True),
    ("version-missing", _delete("version"), "version", True),
    ("version-string", _set("version", "1"), "version", True),
    ("version-bool", _set("version", True), "version", True),
    ("width-string", _set("width", "640"), "width", True),
    ("width-zero", _set("width", 0), "width", True),
    ("width-float", _set("width", 64.5), "width", True),
    ("height-missing", _delete("height"), "height", True),
    ("image-id-null", _set("image_id", None), "image_id", True),
    ("image-id-number", _set("image_id", 7), "image_id", True),
    ("object-id-number", _set("objects[1].id", 2), "objects[1].id", True),
    ("relation-subject-null", _set("relations[0].subject", None), "relations[0].subject", True),
    ("text-object-number", _set("text[0].object", 3), "text[0].object", True),
    ("object-depth-string", _set("objects[1].depth", "far"), "objects[1].depth", True),
    ("synset-number", _set("objects[1].synset", 3), "objects[1].synset", True),
    ("path-number", _set("path", 5), "path", True),
    ("objects-is-object", _set("objects", {"1": {}}), "objects", True),
    ("objects-is-string", _set("objects", "dog"), "objects", True),
    ("object-is-list", _set("objects[0]", [1, 2]), "objects[0]", True),
    ("relation-is-string", _set("relations[0]", "1 next to 2"), "relations[0]", True),
    ("attributes-is-object", _set("objects[0].attributes", {"name": "red"}), "objects[0].attributes", True),
    ("fields-is-string", _set("fields", "objects"), "fields", True),
    ("provenance-is-list", _set("provenance", ["yolo"]), "provenance", True),
    ("meta-is-string", _set("meta", "x"), "meta", True),
    ("depth-header-string", _set("depth", "depth.npz"), "depth", True),
]


def test_valid_record_is_valid() -> None:
    """The base of the table is valid for both the model and the schema (so each case tests one change)."""
    record = valid_record()
    graph = SceneGraph.from_dict(record)
    validate_against_schema(record)
    assert graph.to_dict() == record


@pytest.mark.parametrize("mutate, where", [pytest.param(m, w, id=i) for i, m, w, _ in INVALID])
def test_invalid_record_names_field(mutate: Callable[[dict], None], where: str) -> None:
    record = valid_record()
    mutate(record)
    with pytest.raises(ValidationError) as info:
        SceneGraph.from_dict(record)
    assert info.value.where == where
    assert where in str(info.value)


@pytest.mark.parametrize("mutate, where", [pytest.param(m, w, id=i) for i, m, w, s in INVALID if s])
def test_schema_refuses_what_model_refuses(mutate: Callable[[dict], None], where: str) -> None:
    """The JSON Schema is as strict as the model wherever JSON Schema can express the rule."""
    record = valid_record()
    mutate(record)
    with pytest.raises(ValidationError) as info:
        validate_against_schema(record)
    head = where.split(".")[0].split("[")[0]
    assert info.value.where.startswith(head) or info.value.where == ""


@pytest.mark.parametrize("box", [
    [-BOX_TOLERANCE, -BOX_TOLERANCE, W + BOX_TOLERANCE, H + BOX_TOLERANCE],
    [0.0, 0.0, float(W), float(H)],
    [5.0, 5.0, 5.0, 5.0],  # degenerate boxes are allowed
])
def test_boxes_within_tolerance_are_accepted(box: list[float]) -> None:
    record = valid_record()
    record["objects"][1]["box"] = box
    assert SceneGraph.from_dict(record).objects[1].box.to_list() == box


def test_source_and_where_in_message() -> None:
    err = ValidationError("bad", "box").at("objects[2]").in_source("x.jsonl:3")
    assert (err.where, err.source, err.message) == ("objects[2].box", "x.jsonl:3", "bad")
    assert str(err) == "x.jsonl:3: objects[2].box: bad"
    assert ValidationError("bad", "[1].x").at("relations").where == "relations[1].x"


@pytest.mark.parametrize("build, where", [
    (lambda: Box(float("nan"), 0, 1, 1), ""),
    (lambda: Box(2, 0, 1, 1), ""),
    (lambda: Attribute("red", "taste"), "category"),
    (lambda: Attribute("red", "color", 1.01), "score"),
    (lambda: Relation("a", "on", "b", source="oracle"), "source"),
    (lambda: Object("", "dog", Box(0, 0, 1, 1)), "id"),
    (lambda: Object("1", "dog", [0, 0, 1, 1]), "box"),
    (lambda: Object("1", "dog", Box(0, 0, 1, 1), attributes=("red",)), "attributes[0]"),
    (lambda: TextRegion("t", "hi", Box(0, 0, 1, 1), object=5), "object"),
    (lambda: Mask("abc", 0, 4), "size"),
    (lambda: SceneGraph("x", 4, 4, sha256=5), "sha256"),
    (lambda: SceneGraph("x", 4, 4, fields={"objects", "segmentation"}), "fields"),
    (lambda: SceneGraph("x", 4, 4, path=b"a.jpg"), "path"),
    (lambda: SceneGraph("x", 4, 4, meta=[1]), "meta"),
    (lambda: SceneGraph("x", 4, 4, objects=[Object("1", "a", Box(0, 0, 5, 1))]), "objects[0].box"),
    (lambda: SceneGraph("x", 4, 4, relations=[Relation("1", "on", "2")]), "relations[0].subject"),
    # non-UTF-8 names (surrogate escapes) cannot be written as JSON: refused at construction, not at write
    (lambda: SceneGraph("x", 4, 4, path="caf\udce9.jpg"), "path"),
    (lambda: Object("1", "caf\udce9", Box(0, 0, 1, 1)), "label"),
    (lambda: DepthMap(np.zeros((2, 2), dtype=complex), True), "depth"),
    (lambda: DepthMap(np.array([[1.0, np.nan]]), True), "depth"),
    (lambda: DepthMap(np.zeros(3), True), "depth"),
    (lambda: DepthMap(np.zeros((2, 2)), "yes"), "depth.larger_is_nearer"),
])
def test_constructors_validate(build: Callable[[], Any], where: str) -> None:
    with pytest.raises(ValidationError) as info:
        build()
    assert info.value.where == where


def test_numpy_scalars_are_accepted_and_converted() -> None:
    """Detectors hand over numpy scalars; the model stores plain Python numbers (JSON-safe)."""
    box = Box(*np.array([1, 2, 3, 4], dtype=np.float32))
    obj = Object("1", "dog", box, score=np.float32(0.5), depth=np.float64(2.0))
    graph = SceneGraph("x", np.int64(8), np.int32(6), objects=[obj], fields={"objects"})
    assert type(box.x1) is float and type(obj.score) is float and type(obj.depth) is float
    assert type(graph.width) is int and type(graph.height) is int
    validate_against_schema(orjson.loads(orjson.dumps(graph.to_dict())))
    with pytest.raises(ValidationError):
        Object("1", "dog", box, score=np.bool_(True))


def test_depth_header_must_match_depth_map() -> None:
    depth = DepthMap(np.ones((3, 4), np.float32), larger_is_nearer=True)
    graph = SceneGraph("x", 8, 6, depth=depth, fields={"depth"})
    record = graph.to_dict()
    assert SceneGraph.from_dict(record, depth).depth is depth
    with pytest.raises(ValidationError) as info:
        SceneGraph.from_dict(record)  # no depth supplied
    assert info.value.where == "depth"
    with pytest.raises(ValidationError) as info:
        SceneGraph.from_dict(record, DepthMap(np.ones((3, 4)), larger_is_nearer=False))
    assert info.value.where == "depth.larger_is_nearer"
    with pytest.raises(ValidationError) as info:
        SceneGraph.from_dict(record, DepthMap(np.ones((4, 3)), larger_is_nearer=True))
    assert info.value.where == "depth"


def test_replace_revalidates() -> None:
    graph = SceneGraph.from_dict(valid_record())
    smaller = graph.replace(objects=graph.objects[1:2], relations=(), text=())
    assert [o.id for o in smaller.objects] == ["2"] and graph.objects[0].id == "1"
    with pytest.raises(ValidationError) as info:
        graph.replace(width=10)  # objects no longer fit
    assert info.value.where.endswith(".box")
    with pytest.raises(ValidationError):
        graph.replace(relations=graph.relations + (Relation("1", "on", "404"),))


def test_lists_are_stored_as_tuples() -> None:
    objs = [Object("1", "dog", Box(0, 0, 1, 1), attributes=[Attribute("red", "color")])]
    graph = SceneGraph("x", 4, 4, objects=objs, fields=["objects"])
    objs.append(Object("2", "cat", Box(0, 0, 1, 1)))  # the caller's list changing does not change the graph
    assert isinstance(graph.objects, tuple) and len(graph.objects) == 1
    assert isinstance(graph.objects[0].attributes, tuple)
    assert graph.fields == frozenset({"objects"})


# ----------------------------------------------------------------------------- immutability
@pytest.mark.parametrize("instance, attr", [
    (Box(0, 0, 1, 1), "x1"),
    (Mask.from_array(np.ones((2, 2))), "counts"),
    (Attribute("red", "color"), "name"),
    (Object("1", "dog", Box(0, 0, 1, 1)), "label"),
    (Relation("1", "on", "2"), "predicate"),
    (TextRegion("t", "hi", Box(0, 0, 1, 1)), "text"),
    (DepthMap(np.zeros((2, 2)), True), "larger_is_nearer"),
    (SceneGraph("x", 4, 4), "objects"),
    (SceneGraph("x", 4, 4), "width"),
], ids=lambda v: type(v).__name__ if not isinstance(v, str) else v)
def test_frozen(instance: Any, attr: str) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(instance, attr, getattr(instance, attr))


def test_depth_values_are_read_only_and_private() -> None:
    source = np.arange(6, dtype=np.float32).reshape(2, 3)
    depth = DepthMap(source, larger_is_nearer=False)
    with pytest.raises(ValueError):
        depth.values[0, 0] = 42.0
    assert source.flags.writeable, "the caller's array must not be frozen as a side effect"
    source[0, 0] = 42.0
    assert depth.values[0, 0] == 0.0, "changing the caller's array must not change the depth map"
    assert depth.values.dtype == np.float32


def test_nx_view_is_frozen() -> None:
    graph = SceneGraph.from_dict(valid_record())
    with pytest.raises(networkx.NetworkXError):
        graph.nx.add_node("intruder")
    with pytest.raises(networkx.NetworkXError):
        graph.nx.remove_edge("1", "2", key="next to")
    editable = graph.nx.copy()
    editable.add_node("mine")
    assert "mine" not in graph.nx


# ----------------------------------------------------------------------------- properties of whole graphs
@given(sgst.scene_graphs())
def test_dict_round_trip_is_identity(graph: SceneGraph) -> None:
    record = graph.to_dict()
    via_json = orjson.loads(orjson.dumps(record))
    assert via_json == record
    again = SceneGraph.from_dict(via_json, graph.depth)
    assert again.to_dict() == record
    assert again.fields == graph.fields
    assert again.objects == graph.objects and again.relations == graph.relations and again.text == graph.text


@given(sgst.scene_graphs())
def test_serialized_graph_matches_schema(graph: SceneGraph) -> None:
    validate_against_schema(orjson.loads(orjson.dumps(graph.to_dict())))


@given(sgst.scene_graphs(relations=True))
def test_nx_has_a_node_per_object_and_an_edge_per_relation(graph: SceneGraph) -> None:
    g = graph.nx
    assert g.number_of_nodes() == len(graph.objects)
    assert g.number_of_edges() == len(graph.relations)
    assert {(s, o, k) for s, o, k in g.edges(keys=True)} == {(r.subject, r.object, r.predicate)
                                                             for r in graph.relations}
    for r in graph.relations:
        edge = g.edges[r.subject, r.object, r.predicate]
        assert (edge["predicate"], edge["score"], edge["source"]) == (r.predicate, r.score, r.source)
    for o in graph.objects:
        assert g.nodes[o.id]["label"] == o.label
        assert g.nodes[o.id]["attributes"] == [a.name for a in o.attributes]


@given(sgst.scene_graphs())
def test_lookups_agree_with_objects(graph: SceneGraph) -> None:
    assert list(graph.objects_by_id) == [o.id for o in graph.objects]
    assert sum(len(v) for v in graph.objects_by_label.values()) == len(graph.objects)
    for label, group in graph.objects_by_label.items():
        assert all(o.label == label for o in group)
    assert graph.has(*graph.fields) and not graph.has("no-such-field")


@given(sgst.scene_graphs())
def test_deepcopy_and_pickle_keep_the_graph(graph: SceneGraph) -> None:
    import pickle

    for clone in (copy.deepcopy(graph), pickle.loads(pickle.dumps(graph))):
        assert clone.to_dict() == graph.to_dict()
        if graph.depth is not None:
            assert np.array_equal(clone.depth.values, graph.depth.values)
            assert not clone.depth.values.flags.writeable


# ----------------------------------------------------------------------------- boxes
_coords = st.floats(-1e4, 1e4, allow_nan=False)


@st.composite
def any_boxes(draw: st.DrawFn) -> Box:
    xs = sorted((draw(_coords), draw(_coords)))
    ys = sorted((draw(_coords), draw(_coords)))
    return Box(xs[0], ys[0], xs[1], ys[1])


@given(any_boxes(), st.integers(1, 5000), st.integers(1, 5000))
def test_clip_is_inside_and_idempotent(box: Box, width: int, height: int) -> None:
    clipped, changed = box.clip(width, height)
    assert 0 <= clipped.x1 <= clipped.x2 <= width
    assert 0 <= clipped.y1 <= clipped.y2 <= height
    inside = box.x1 >= 0 and box.y1 >= 0 and box.x2 <= width and box.y2 <= height
    assert changed == (not inside)
    assert (clipped == box) == inside
    again, changed_again = clipped.clip(width, height)
    assert again == clipped and not changed_again
    SceneGraph("x", width, height, objects=[Object("1", "thing", clipped)])  # the graph accepts it


@given(any_boxes(), any_boxes())
def test_iou_symmetric_and_bounded(a: Box, b: Box) -> None:
    assert a.iou(b) == b.iou(a)
    assert 0.0 <= a.iou(b) <= 1.0
    if a.area > 0:
        assert a.iou(a) == pytest.approx(1.0)
    if a.intersection(b) == 0:
        assert a.iou(b) == 0.0


@pytest.mark.parametrize("a, b, expected", [
    ((0, 0, 2, 2), (1, 1, 3, 3), 1 / 7),
    ((0, 0, 2, 2), (2, 0, 4, 2), 0.0),  # touching edges
    ((0, 0, 4, 4), (1, 1, 3, 3), 4 / 16),  # nested
    ((0, 0, 1, 1), (5, 5, 6, 6), 0.0),
])
def test_iou_known_values(a: tuple, b: tuple, expected: float) -> None:
    assert Box(*a).iou(Box(*b)) == pytest.approx(expected)


def test_box_conversions() -> None:
    box = Box.from_xywh(10, 20, 30, 40)
    assert box.to_list() == [10, 20, 40, 60] and box.to_xywh() == [10, 20, 30, 40]
    assert (box.width, box.height, box.area, box.center) == (30, 40, 1200, (25, 40))
    assert box.normalized(100, 200) == [0.1, 0.1, 0.4, 0.3]
    assert Box.from_list([1, 2, 3, 4]) == Box(1, 2, 3, 4)
    with pytest.raises(ValidationError):
        Box.from_list([1, 2, 3])


# ----------------------------------------------------------------------------- masks
@given(st.integers(1, 40).flatmap(lambda w: st.integers(1, 40).flatmap(lambda h: sgst.mask_arrays(w, h))))
def test_mask_array_round_trip(array: np.ndarray) -> None:
    mask = Mask.from_array(array)
    assert (mask.height, mask.width) == array.shape
    back = mask.to_array()
    assert back.dtype == bool and np.array_equal(back, array)
    assert mask.area == int(array.sum())
    assert Mask.from_rle(mask.to_dict()) == mask
    if array.any():
        rows, cols = np.nonzero(array)
        assert mask.bbox() == Box(cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)


@pytest.mark.parametrize("dtype, on", [(np.uint8, 255), (np.int32, 256), (np.float32, 0.5), (bool, True)])
def test_mask_from_array_takes_nonzero_as_inside(dtype: Any, on: Any) -> None:
    a = np.zeros((5, 7), dtype=dtype)
    a[1:3, 2:6] = on
    assert np.array_equal(Mask.from_array(a).to_array(), a != 0)


def test_mask_from_polygon_and_uncompressed_rle() -> None:
    # a 4x4 square on pixel edges covers the 16 pixels whose centres lie inside it
    square = Mask.from_polygons([[2, 2, 6, 2, 6, 6, 2, 6]], height=10, width=10)
    assert square.area == 16 and square.bbox() == Box(2, 2, 6, 6)
    two = Mask.from_polygons([[2, 2, 6, 2, 6, 6, 2, 6], [0, 8, 2, 8, 2, 10, 0, 10], [1, 1]], height=10, width=10)
    assert two.area == 16 + 4  # polygons merged; the one with fewer than 3 points is ignored
    with pytest.raises(ValidationError):
        Mask.from_polygons([[1, 1, 2, 2]], height=10, width=10)
    uncompressed = {"size": [3, 2], "counts": [1, 2, 3]}  # column-major runs: 1 off, 2 on, 3 off
    assert np.array_equal(Mask.from_rle(uncompressed).to_array(), np.array([[0, 0], [1, 0], [1, 0]], bool))


# ----------------------------------------------------------------------------- depth
@given(sgst.depth_maps(), st.data())
def test_nearness_flips_with_convention(depth: DepthMap, data: st.DataObject) -> None:
    a, b = sorted(data.draw(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=2)))
    assume(a < b)
    flipped = DepthMap(depth.values, not depth.larger_is_nearer)
    if depth.larger_is_nearer:
        assert depth.nearness(b) > depth.nearness(a) and flipped.nearness(a) > flipped.nearness(b)
    else:
        assert depth.nearness(a) > depth.nearness(b) and flipped.nearness(b) > flipped.nearness(a)


@given(st.floats(-1e3, 1e3, width=32), sgst.image_sizes(), sgst.image_sizes(), st.data())
def test_median_of_constant_map_is_the_constant(value: float, map_size: tuple[int, int],
                                                image_size: tuple[int, int], data: st.DataObject) -> None:
    (mw, mh), (w, h) = map_size, image_size
    depth = DepthMap(np.full((mh, mw), value, np.float32), True)
    box = data.draw(sgst.boxes(w, h))
    mask = data.draw(st.none() | sgst.masks(w, h))
    assert depth.median_in(box, w, h, mask) == pytest.approx(value)
    assert depth.value_at(*box.center, w, h) == pytest.approx(value)


def test_median_in_uses_the_mask_and_maps_boxes_to_map_pixels() -> None:
    values = np.arange(16, dtype=np.float32).reshape(4, 4)  # row-major 0..15
    depth = DepthMap(values, larger_is_nearer=True)
    # image 8x8 -> each map pixel covers 2x2 image pixels; the box covers the map's top-left 2x2
    assert depth.median_in(Box(0, 0, 4, 4), 8, 8) == np.median([0, 1, 4, 5])
    mask = np.zeros((8, 8), bool)
    mask[6:8, 6:8] = True  # bottom-right map pixel only
    assert depth.median_in(Box(0, 0, 8, 8), 8, 8, Mask.from_array(mask)) == 15.0
    # an empty mask falls back to the box
    assert depth.median_in(Box(0, 0, 4, 4), 8, 8, Mask.from_array(np.zeros((8, 8)))) == np.median([0, 1, 4, 5])


@pytest.mark.parametrize("box", [Box(-0.5, -0.5, 1, 1), Box(-0.5, 0, 0.5, 0.5), Box(1.5, 1.5, 2.5, 2.5)])
def test_median_in_boxes_over_the_edge_stay_finite(box: Box) -> None:
    """Boxes may spill BOX_TOLERANCE over the edge; on a map larger than the image this must not wrap around."""
    depth = DepthMap(np.arange(16, dtype=np.float32).reshape(4, 4), True)  # map 4x4 over a 2x2 image
    m = depth.median_in(box, 2, 2)
    assert math.isfinite(m) and 0 <= m <= 15
