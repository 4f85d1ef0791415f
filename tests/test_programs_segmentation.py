"""Segmentation family: points on the same / a different object, checked against decoded masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from programs.single.segmentation import inside, rle_run_ends, rle_run_ends_many
from scene_graphs.model import Mask, Object, SceneGraph
from tests import strategies as sgst
from tests.test_programs_relations import CONFIG, graphs, realized, template_fields

# small images (up to 128 px) keep mask decoding in the test cheap; the programs check each point's 3 x 3
# pixel neighbourhood exactly, which is what the tests below verify against pycocotools' decoding
GRAPHS = graphs(120, seed=4, masks=True, relations=False, width=None, height=None)
GRAPHS = [g for g in GRAPHS if max(g.width, g.height) <= 128] + graphs(60, seed=5, masks=True, relations=False,
                                                                       width=128, height=96)
PROGRAMS = ("single.same_object_point", "single.different_object_point")


@given(sgst.image_sizes(40).flatmap(lambda wh: st.lists(sgst.mask_arrays(*wh), min_size=1, max_size=4)))
def test_rle_decoder_matches_pycocotools(arrays):
    """Decoding several masks at once gives, for each, exactly pycocotools' pixels."""
    masks = [Mask.from_array(a) for a in arrays]
    h, w = arrays[0].shape
    for mask, ends in zip(masks, rle_run_ends_many(masks)):
        got = inside(ends, np.arange(h * w)).reshape(w, h).T
        assert (got == mask.to_array()).all()
    assert (rle_run_ends(masks[-1]) == rle_run_ends_many(masks)[-1]).all()


def _pixel(g: SceneGraph, p) -> tuple[int, int]:
    return min(g.width - 1, int(p[0] * g.width)), min(g.height - 1, int(p[1] * g.height))


def _owners(g: SceneGraph, p, radius: int) -> set[str]:
    """Ids of every graph object (any score) with a mask or box pixel within ``radius`` of the point."""
    x, y = _pixel(g, p)
    out = set()
    for o in g.objects:
        if o.mask is not None:
            window = o.mask.to_array()[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1]
            if window.any():
                out.add(o.id)
        elif o.box.x1 - radius <= x + 0.5 <= o.box.x2 + radius and o.box.y1 - radius <= y + 0.5 <= o.box.y2 + radius:
            out.add(o.id)
    return out


def _fmt(p) -> str:
    return f"({p[0]:.2f}, {p[1]:.2f})"


@pytest.mark.parametrize("pid", PROGRAMS)
def test_points_lie_well_inside_one_object(pid):
    same = pid == "single.same_object_point"
    n = 0
    for view, plan, value, r in realized(pid, GRAPHS):
        g = view.graph
        x, y = plan["object_id"], plan["other_id"]
        assert x != y and min(view.by_id[x].score, view.by_id[y].score) >= CONFIG.confident_score
        # the question shows exactly the points that were checked
        assert all(round(c, 2) == c for q in [plan["anchor"], *plan["points"]] for c in q)
        radius = 1  # at least one pixel of clearance all round, in every mask of the graph
        assert _owners(g, plan["anchor"], radius) == {x}
        on = [_owners(g, p, radius) for p in plan["points"]]
        assert sorted(map(sorted, on)) == sorted([[x], [y]]), on
        same_index = on.index({x})
        assert value == (same_index if same else 1 - same_index)
        assert math.dist(plan["anchor"], plan["points"][same_index]) >= 0.05
        assert r.answer == _fmt(plan["points"][value]) and r.options == [_fmt(plan["points"][1 - value])]
        f = template_fields(pid, r)
        assert f["anchor"] == _fmt(plan["anchor"]) and [f["a"], f["b"]] == [_fmt(p) for p in plan["points"]]
        n += 1
    assert n > 150


def test_same_and_different_answer_opposite_points():
    same = {(p["object_id"], str(p["points"])): v for _, p, v, _ in realized(PROGRAMS[0], GRAPHS[:40])}
    diff = {(p["object_id"], str(p["points"])): v for _, p, v, _ in realized(PROGRAMS[1], GRAPHS[:40])}
    shared = same.keys() & diff.keys()
    assert all(same[k] == 1 - diff[k] for k in shared)


def test_objects_without_masks_are_avoided():
    """An object without a mask (here: a big box over the middle) must never be under a point."""
    out = []
    for g in GRAPHS[:60]:
        blocker = Object("blocker", "wall", g.objects[0].box.__class__(g.width * 0.3, g.height * 0.3,
                                                                      g.width * 0.7, g.height * 0.7))
        out.append(g.replace(objects=g.objects + (blocker,)))
    n = 0
    for view, plan, value, r in realized(PROGRAMS[0], out):
        for p in [plan["anchor"], *plan["points"]]:
            px, py = _pixel(view.graph, p)
            assert not (view.width * 0.3 - 1 <= px + 0.5 <= view.width * 0.7 + 1
                        and view.height * 0.3 - 1 <= py + 0.5 <= view.height * 0.7 + 1)
        n += 1
    assert n > 10


def test_points_are_deterministic_and_seeded():
    a = [(p, v) for _, p, v, _ in realized(PROGRAMS[0], GRAPHS[:20])]
    b = [(p, v) for _, p, v, _ in realized(PROGRAMS[0], GRAPHS[:20])]
    assert a == b
    from programs.base import ProgramConfig
    c = [(p, v) for _, p, v, _ in realized(PROGRAMS[0], GRAPHS[:20], ProgramConfig(seed=99))]
    assert a != c


@given(st.integers(0, 2**32 - 1))
def test_overlapping_masks_never_share_a_point(seed):
    """Two heavily overlapping masks: no point may be where both are."""
    g = graphs(1, seed=seed % 1000, masks=True, relations=False, n_objects=4, width=64, height=64)[0]
    for view, plan, value, r in realized(PROGRAMS[1], [g]):
        for p in [plan["anchor"], *plan["points"]]:
            assert len(_owners(g, p, 0)) == 1
