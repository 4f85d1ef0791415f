"""Geometric and depth relation rules, on hand-built geometry tables."""

from __future__ import annotations

import numpy as np
import pytest

from scene_graphs.model import Box, DepthMap, Object, Relation, SceneGraph
from scene_graphs.perception.images import item_from_array
from scene_graphs.perception.relations import (
    PREDICATES,
    GeometryRelations,
    RelationRules,
    edge_distance,
    normalized_nearness,
)

W, H = 1000, 800


def obj(i: str, label: str, x1: float, y1: float, x2: float, y2: float, depth: float | None = None) -> Object:
    return Object(i, label, Box(x1, y1, x2, y2), 0.9, depth=depth)


def masked(o: Object, hand: tuple[int, int, int, int]) -> Object:
    """``o`` with a mask covering the rectangle ``hand`` (x1, y1, x2, y2) of a W x H image."""
    from dataclasses import replace

    from scene_graphs.model import Mask

    m = np.zeros((H, W), bool)
    x1, y1, x2, y2 = hand
    m[y1:y2, x1:x2] = True
    return replace(o, mask=Mask.from_array(m))


def rels(objects: list[Object], nearness=None, **kw) -> set[tuple[str, str, str]]:
    return {(r.subject, r.predicate, r.object) for r in RelationRules(**kw).relations(objects, nearness)}


# (scene, relations that must be found, relations that must not)
GEOMETRY_TABLE = [
    pytest.param(  # two cars side by side on a road, same size, a gap of 20 px
        [obj("a", "car", 100, 400, 300, 500), obj("b", "car", 320, 410, 520, 505)],
        {("a", "left of", "b"), ("b", "right of", "a"), ("a", "next to", "b"), ("b", "next to", "a")},
        {("a", "right of", "b"), ("a", "above", "b"), ("a", "on", "b"), ("a", "inside", "b")},
        id="side-by-side"),
    pytest.param(  # far apart horizontally: left/right but not next to
        [obj("a", "car", 0, 400, 100, 500), obj("b", "car", 800, 400, 900, 500)],
        {("a", "left of", "b"), ("b", "right of", "a")},
        {("a", "next to", "b")},
        id="far-apart"),
    pytest.param(  # a cup standing on a table
        [obj("cup", "cup", 420, 260, 480, 330), obj("tbl", "dining table", 200, 300, 800, 600)],
        {("cup", "on", "tbl"), ("tbl", "under", "cup")},
        {("tbl", "on", "cup"), ("cup", "next to", "tbl"), ("cup", "inside", "tbl"),
         ("cup", "above", "tbl")},  # resting on it, the boxes overlap: "on", not "above"
        id="cup-on-table"),
    pytest.param(  # a lamp high above a table, not touching it: above, not on
        [obj("lamp", "lamp", 450, 20, 550, 100), obj("tbl", "dining table", 200, 400, 800, 600)],
        {("lamp", "above", "tbl"), ("tbl", "below", "lamp")},
        {("lamp", "on", "tbl")},
        id="lamp-above-table"),
    pytest.param(  # things at different heights that do not overlap along x are not above/below
        [obj("a", "bird", 0, 0, 50, 50), obj("b", "dog", 600, 600, 700, 700)],
        {("a", "left of", "b")},
        {("a", "above", "b"), ("b", "below", "a")},
        id="diagonal"),
    pytest.param(  # a sign well inside a bus
        [obj("s", "sign", 300, 300, 380, 340), obj("bus", "bus", 100, 200, 900, 600)],
        {("s", "inside", "bus")},
        {("bus", "inside", "s"), ("s", "next to", "bus")},
        id="inside"),
    pytest.param(  # a person holding a cell phone at chest height, the hand reaching into the phone's box
        [masked(obj("p", "person", 400, 100, 600, 700), hand=(470, 330, 530, 370)),
         obj("ph", "cell phone", 480, 300, 520, 360)],
        {("p", "holding", "ph")},
        {("ph", "holding", "p"), ("ph", "inside", "p")},   # a person is not a container
        id="holding"),
    pytest.param(  # the same without a mask: no hand region, no holding
        [obj("p", "person", 400, 100, 600, 700), obj("ph", "cell phone", 480, 300, 520, 360)],
        set(),
        {("p", "holding", "ph")},
        id="holding-needs-the-hand"),
    pytest.param(  # the phone covered by the person's pixels all over (painted on the shirt): not held
        [masked(obj("p", "person", 400, 100, 600, 700), hand=(400, 100, 600, 700)),
         obj("ph", "cell phone", 480, 300, 520, 360)],
        set(),
        {("p", "holding", "ph")},
        id="holding-not-all-over"),
    pytest.param(  # a man standing in front of a bus, inside its box along x: not left of it
        [obj("man", "person", 150, 300, 300, 750), obj("bus", "bus", 100, 200, 900, 600)],
        set(),
        {("man", "left of", "bus"), ("bus", "right of", "man"), ("man", "on", "bus"), ("man", "inside", "bus")},
        id="separation"),
    pytest.param(  # a cup standing over a table's box: the table is no container
        [obj("cup", "cup", 420, 320, 480, 400), obj("tbl", "dining table", 200, 300, 800, 600)],
        set(),
        {("cup", "inside", "tbl")},
        id="table-is-no-container"),
    pytest.param(  # a spoon low in a cup's box (on the saucer in front of it) is not inside; coffee at the top is
        [obj("cup", "cup", 170, 17, 420, 319), obj("spoon", "spoon", 324, 218, 406, 327),
         obj("coffee", "coffee", 206, 95, 382, 198)],
        {("coffee", "inside", "cup")},
        {("spoon", "inside", "cup")},
        id="open-container"),
    pytest.param(  # a spectator's box on the batter's head: a person is no supporting surface
        [obj("fan", "person", 300, 100, 360, 230), obj("bat", "person", 200, 200, 500, 700)],
        set(),
        {("fan", "on", "bat"), ("bat", "under", "fan")},
        id="person-is-no-support"),
    pytest.param(  # a far-off person (small) beside a near cup (large): scale says far apart, no relation
        [obj("p", "person", 500, 300, 520, 340), obj("cup", "cup", 200, 200, 480, 500)],
        set(),
        {("p", "right of", "cup"), ("cup", "left of", "p"), ("p", "next to", "cup")},
        id="apparent-scale"),
    pytest.param(  # a ball at the feet is not held
        [obj("p", "person", 400, 100, 600, 700), obj("b", "sports ball", 480, 640, 530, 690)],
        set(),
        {("p", "holding", "b")},
        id="ball-at-feet"),
    pytest.param(  # a car is not holdable, whatever the overlap
        [obj("p", "person", 0, 0, 900, 700), obj("c", "car", 300, 300, 400, 360)],
        set(),
        {("p", "holding", "c")},
        id="not-holdable"),
]


@pytest.mark.parametrize("objects, present, absent", GEOMETRY_TABLE)
def test_geometry_rules(objects: list[Object], present: set, absent: set) -> None:
    found = rels(objects)
    assert present <= found, present - found
    assert not (absent & found), absent & found


@pytest.mark.parametrize("dn, expected_front", [(0.3, True), (0.1, True), (0.05, False), (-0.3, False)])
def test_depth_front_and_behind(dn: float, expected_front: bool) -> None:
    objects = [obj("a", "person", 100, 100, 300, 700), obj("b", "bus", 250, 100, 900, 600)]
    found = rels(objects, [0.5 + dn, 0.5])
    assert (("a", "in front of", "b") in found) is expected_front
    assert (("b", "behind", "a") in found) is expected_front
    if dn < -0.1:
        assert ("b", "in front of", "a") in found


def test_depth_scores_and_source() -> None:
    objects = [obj("a", "person", 100, 100, 260, 700), obj("b", "bus", 250, 100, 900, 600)]
    rs = {(r.subject, r.predicate, r.object): r for r in RelationRules().relations(objects, [0.9, 0.75])}
    front = rs[("a", "in front of", "b")]
    assert front.source == "depth" and front.score == pytest.approx(0.75)  # 0.15 / (2 * 0.1)
    assert rs[("a", "left of", "b")].source == "geometry"


def test_depth_vetoes_inside_on_and_next_to() -> None:
    # a person fully inside the box of a bus, but much nearer: in front of it, not inside
    objects = [obj("p", "person", 300, 250, 400, 550), obj("bus", "bus", 100, 200, 900, 600)]
    assert ("p", "inside", "bus") in rels(objects)
    found = rels(objects, [0.9, 0.3])
    assert ("p", "inside", "bus") not in found and ("p", "in front of", "bus") in found
    cup_table = [obj("cup", "cup", 420, 260, 480, 330), obj("tbl", "dining table", 200, 300, 800, 600)]
    assert ("cup", "on", "tbl") in rels(cup_table, [0.55, 0.5])
    assert ("cup", "on", "tbl") not in rels(cup_table, [0.95, 0.3])


def test_scores_are_in_range_sorted_and_deterministic() -> None:
    rng = np.random.default_rng(0)
    objects = []
    for i in range(12):
        x, y = rng.uniform(0, 800), rng.uniform(0, 600)
        objects.append(obj(str(i), "person" if i % 3 == 0 else "cup", x, y, x + rng.uniform(20, 200), y + rng.uniform(20, 200)))
    nearness = list(rng.uniform(0, 1, 12))
    a = RelationRules().relations(objects, nearness)
    assert a and all(0.5 <= r.score <= 1 for r in a)
    assert [(-r.score, r.subject, r.predicate, r.object) for r in a] == sorted((-r.score, r.subject, r.predicate, r.object) for r in a)
    assert a == RelationRules().relations(objects, nearness)
    b = RelationRules().relations(objects)
    assert b == RelationRules().relations(list(reversed(objects)))  # object order does not matter
    assert all(r.predicate in PREDICATES for r in a + b)
    assert len(RelationRules(max_relations=5).relations(objects)) == 5


def test_only_near_pairs_are_related() -> None:
    objects = [obj(str(i), "box", 100 * i, 0, 100 * i + 50, 50) for i in range(8)]
    pairs = RelationRules(neighbours=1).near_pairs(objects)
    assert (0, 1) in pairs and (1, 0) in pairs
    assert (0, 7) not in pairs
    found = rels(objects, neighbours=1)
    assert ("0", "left of", "1") in found and ("0", "left of", "7") not in found
    assert edge_distance(objects[0].box, objects[2].box) == pytest.approx(150)


def test_normalized_nearness_follows_the_map_convention() -> None:
    values = np.linspace(0, 10, 100, dtype=np.float32).reshape(10, 10)
    near = Object("n", "x", Box(0, 0, 1, 1), depth=9.8)
    far = Object("f", "x", Box(0, 0, 1, 1), depth=0.2)
    g = SceneGraph("i", 10, 10, objects=(near, far), depth=DepthMap(values, True), fields={"objects", "depth"})
    a, b = normalized_nearness(g)
    assert a == pytest.approx(1.0) and b == pytest.approx(0.0, abs=1e-6)
    metric = g.replace(depth=DepthMap(values, False))
    a, b = normalized_nearness(metric)
    assert a == pytest.approx(0.0, abs=1e-6) and b == pytest.approx(1.0)
    assert normalized_nearness(g.replace(depth=None)) == [None, None]


def test_annotator_replaces_only_its_own_relations() -> None:
    objects = (obj("a", "car", 100, 400, 300, 500), obj("b", "car", 320, 410, 520, 505))
    human = Relation("a", "parked beside", "b", 1.0, "human")
    stale = Relation("b", "left of", "a", 0.9, "geometry")
    g = SceneGraph("img", W, H, objects=objects, relations=(human, stale), fields={"objects", "relations"})
    item = item_from_array(np.zeros((H, W, 3), np.uint8), "x.png", image_id="img")
    ann = GeometryRelations(predicates=("left of", "right of")).load("cpu")
    (out,) = ann([item], [g])
    triples = {(r.subject, r.predicate, r.object, r.source) for r in out.relations}
    assert triples == {("a", "parked beside", "b", "human"), ("a", "left of", "b", "geometry"),
                       ("b", "right of", "a", "geometry")}
    assert "relations" in out.fields and out.provenance["stages"]["relations"]["options"]["predicates"] == ["left of", "right of"]


def test_unknown_predicate_is_refused() -> None:
    with pytest.raises(Exception, match="unknown predicates"):
        GeometryRelations(predicates=("beside",)).load("cpu")


@pytest.mark.slow
def test_clip_relation_check_plumbing_with_random_weights() -> None:
    pytest.importorskip("open_clip")
    from scene_graphs.perception.relations import ClipRelationCheck

    objects = (obj("cup", "cup", 420, 260, 480, 330), obj("tbl", "dining table", 200, 300, 800, 600))
    checked = Relation("cup", "on", "tbl", 0.8, "geometry")
    unchecked = Relation("cup", "above", "tbl", 0.7, "geometry")
    g = SceneGraph("img", W, H, objects=objects, relations=(checked, unchecked), fields={"objects", "relations"})
    pixels = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    item = item_from_array(pixels, "x.png", image_id="img")
    keep_all = ClipRelationCheck(random_init=True, min_prob=0.0).load("cpu")
    (out,) = keep_all([item], [g])
    on, above = out.relations
    assert above == unchecked  # predicates not in the list are left alone
    assert on.predicate == "on" and 0 < on.score <= 1 and on.score != checked.score
    from scene_graphs.perception.attributes import crop_box

    x1, y1, x2, y2 = crop_box(Box(200, 260, 800, 600), W, H, 0.05, 16.0)  # around both boxes
    feat = keep_all.scorer.embed_images([np.ascontiguousarray(pixels[y1:y2, x1:x2])])[0]
    p = float(keep_all.scorer.probabilities(feat, keep_all.sentences("cup", "on", "dining table"))[0])
    assert on.score == pytest.approx(np.sqrt(0.8 * p), abs=1e-3)
    drop_all = ClipRelationCheck(random_init=True, min_prob=1.0).load("cpu")
    (out,) = drop_all([item], [g])
    assert out.relations == (unchecked,)
