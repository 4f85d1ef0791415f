"""Depth: the real Depth Anything V2 architecture with random weights (plumbing, batching), and
per-object depth summaries checked on skimage's stereo_motorcycle disparity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scene_graphs.model import Box, DepthMap, Mask, Object, SceneGraph
from scene_graphs.perception.depth import DepthEstimator, resize_map, with_object_depths
from scene_graphs.perception.images import item_from_array
from scene_graphs.perception.relations import RelationRules, normalized_nearness

pytest.importorskip("transformers")
pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MMGEN_OFFLINE", "1")
    monkeypatch.setenv("MMGEN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def estimator() -> DepthEstimator:
    return DepthEstimator(random_init=True, input_size=56, map_max_side=40, batch_size=2).load("cpu")


def _graph(item, objects=()) -> SceneGraph:
    return SceneGraph(item.image_id, item.width, item.height, item.path, item.sha256, objects=tuple(objects),
                      fields={"objects"})


def _images() -> list:
    rng = np.random.default_rng(0)
    return [item_from_array(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), f"img{i}.png")
            for i, (h, w) in enumerate([(60, 80), (90, 60), (60, 80)])]


@pytest.mark.slow
def test_random_init_batch_fills_depth_and_object_medians(estimator: DepthEstimator) -> None:
    items = _images()
    mask = np.zeros((60, 80), bool)
    mask[10:30, 5:25] = True
    objs = [Object("0", "thing", Box(5, 10, 25, 30), 0.9, Mask.from_array(mask)), Object("1", "other", Box(40, 20, 80, 60))]
    graphs = [_graph(items[0], objs), _graph(items[1]), _graph(items[2])]
    out = estimator(items, graphs)
    for g, item in zip(out, items):
        assert g.depth is not None and g.depth.larger_is_nearer
        assert max(g.depth.shape) <= 40 and "depth" in g.fields
        assert np.isfinite(g.depth.values).all() and g.depth.values.std() > 0
        # the map keeps the image's aspect ratio (up to the multiple-of-14 rounding)
        assert abs(g.depth.shape[1] / g.depth.shape[0] - item.width / item.height) < 0.35
    g0 = out[0]
    for o in g0.objects:
        assert o.depth == pytest.approx(g0.depth.median_in(o.box, g0.width, g0.height, o.mask))
    # the masked object's median is over the mask, computed here independently
    mh, mw = g0.depth.shape
    rows = (np.arange(mh) * 60 // mh)
    cols = (np.arange(mw) * 80 // mw)
    assert g0.objects[0].depth == pytest.approx(float(np.median(g0.depth.values[mask[np.ix_(rows, cols)]])))
    prov = g0.provenance["stages"]["depth"]
    assert prov["models"][0]["origin"] == "random-init" and prov["larger_is_nearer"] is True


@pytest.mark.slow
def test_batching_does_not_change_results(estimator: DepthEstimator) -> None:
    items = _images()
    together = estimator(items, [_graph(i) for i in items])
    alone = [estimator([i], [_graph(i)])[0] for i in items]
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a.depth.values, b.depth.values, rtol=1e-4, atol=1e-4)


def test_missing_weights_name_the_snapshot_folder() -> None:
    from scene_graphs.perception.weights import MissingWeightsError

    with pytest.raises(MissingWeightsError) as info:
        DepthEstimator().load("cpu")
    assert "Depth-Anything-V2-Small-hf" in str(info.value) and "MMGEN_WEIGHTS_DIR" in str(info.value)
    with pytest.raises(Exception, match="random_init is available"):
        DepthEstimator(model="dpt-hybrid-midas", random_init=True).load("cpu")


def test_resize_map_keeps_the_mean_and_aspect() -> None:
    values = np.random.default_rng(0).uniform(0, 5, (300, 450)).astype(np.float32)
    small = resize_map(values, 90)
    assert small.shape == (60, 90)
    assert small.mean() == pytest.approx(values.mean(), rel=1e-4)
    assert resize_map(values, 0) is not None and resize_map(values, 0).shape == values.shape


# Hand-drawn boxes on skimage's stereo_motorcycle left image (741 x 500).
MOTO_TANK = Box(330, 165, 480, 235)     # red fuel tank, nearest
WHITEBOARD = Box(185, 5, 285, 85)       # white board on the back wall
SHELF_BOX = Box(530, 30, 595, 95)       # cardboard box on the top shelf, far


def _motorcycle_disparity():
    import skimage.data

    try:
        left, _, disparity = skimage.data.stereo_motorcycle()
    except Exception as exc:  # noqa: BLE001 - skimage fetches it with pooch; offline it may be missing
        pytest.skip(f"skimage stereo_motorcycle unavailable: {exc}")
    return left, np.where(np.isfinite(disparity), disparity, 0.0).astype(np.float32)


def test_object_depths_on_real_disparity() -> None:
    _, disparity = _motorcycle_disparity()
    h, w = disparity.shape
    objects = (Object("tank", "motorcycle", MOTO_TANK), Object("board", "whiteboard", WHITEBOARD),
               Object("box", "box", SHELF_BOX))
    g = SceneGraph("moto", w, h, objects=objects, fields={"objects"})
    dm = DepthMap(disparity, larger_is_nearer=True)  # disparity: larger means nearer
    got = {o.id: o.depth for o in with_object_depths(g, dm)}
    for o in objects:  # the same map resolution as the image: the median is over the box slice
        b = o.box
        expected = float(np.median(disparity[int(b.y1):int(np.ceil(b.y2)), int(b.x1):int(np.ceil(b.x2))]))
        assert got[o.id] == pytest.approx(expected)
    assert got["tank"] > got["board"] and got["tank"] > got["box"]
    g2 = g.replace(objects=with_object_depths(g, dm), depth=dm, fields={"objects", "depth"})
    near = normalized_nearness(g2)
    found = {(r.subject, r.predicate, r.object, r.source) for r in RelationRules().relations(g2.objects, near)}
    assert ("tank", "in front of", "board", "depth") in found and ("board", "behind", "tank", "depth") in found


def test_object_depth_uses_the_mask_not_the_box() -> None:
    _, disparity = _motorcycle_disparity()
    h, w = disparity.shape
    big = Box(95, 95, 685, 450)  # the whole motorcycle, with garage floor and wall in the box
    mask = np.zeros((h, w), bool)
    mask[165:235, 330:480] = True  # only the tank
    g = SceneGraph("moto", w, h, objects=(Object("m", "motorcycle", big, mask=Mask.from_array(mask)),),
                   fields={"objects", "masks"})
    (o,) = with_object_depths(g, DepthMap(disparity, True))
    assert o.depth == pytest.approx(float(np.median(disparity[mask])))
    assert o.depth != pytest.approx(float(np.median(disparity[95:450, 95:685])))


@pytest.mark.parametrize("shape", [(100, 150), (25, 40)])
def test_object_depths_on_a_stretched_gradient(shape: tuple[int, int]) -> None:
    """A map at another resolution than the image is stretched over it: a left-to-right ramp gives
    each box the ramp value at its centre column."""
    mh, mw = shape
    ramp = np.tile(np.linspace(0, 1, mw, dtype=np.float32), (mh, 1))
    g = SceneGraph("g", 300, 200, objects=(Object("l", "a", Box(0, 50, 60, 150)), Object("r", "b", Box(240, 50, 300, 150))),
                   fields={"objects"})
    left, right = with_object_depths(g, DepthMap(ramp, True))
    assert left.depth == pytest.approx(0.1, abs=0.05) and right.depth == pytest.approx(0.9, abs=0.05)
