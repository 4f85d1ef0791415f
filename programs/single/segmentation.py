"""Segmentation: given a point on an object, which of two other points lies on the same (or a different) object.

Points are normalized ``(x, y)``. They are drawn deterministically (an rng derived from the seed, the
image and the program) from pixels that are well inside one object's mask: at least
``BORDER_SHARE`` of the image's shorter side away from the mask's boundary and from every other
object's mask (any score, masks or, for objects without one, boxes), so a small error in a mask or in
reading the point cannot change the answer. ``solve`` re-reads the three points in the masks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from scipy.ndimage import maximum_filter, minimum_filter

from scene_graphs.model import Mask

from ..base import GraphView, Plan, Program, Realized, Template, make_rng, register
from ..grammar import with_article
from .depth import fmt_point
from .relations import cached, is_confident

GRID_SIDE = 96
"""The occupancy grid has at most this many cells along the image's longer side."""
BORDER_SHARE = 0.02
"""Clearance around a point, as a share of the image's shorter side."""
MIN_SEPARATION = 0.05
"""Normalized distance between the anchor and the same-object point."""
MAX_PAIRS = 8


def _segmented_cumsum(values: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Cumulative sums restarting wherever ``segments`` (non-decreasing) changes."""
    if values.size == 0:
        return values
    total = np.cumsum(values)
    first = np.flatnonzero(np.concatenate(([True], segments[1:] != segments[:-1])))
    before = total[first] - values[first]
    return total - np.repeat(before, np.diff(np.append(first, values.size)))


def rle_run_ends_many(masks: list[Mask]) -> list[np.ndarray]:
    """Cumulative run ends of compressed COCO RLEs, decoded together with numpy (no full-size arrays).

    Pixel ``(x, y)`` (column-major index ``x * height + y``) is inside a mask when the number of its run
    ends ``<=`` that index is odd. Mirrors pycocotools' ``rleFrString``: 5-bit groups with a continuation
    bit, sign-extended, each count from the third on stored as a difference to the count two before."""
    if not masks:
        return []
    lengths = np.array([len(m.counts) for m in masks])
    v = np.frombuffer("".join(m.counts for m in masks).encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    last = (v & 0x20) == 0  # a token's last character (every mask's string ends with one)
    starts = np.flatnonzero(np.concatenate(([True], last[:-1])))
    token = np.cumsum(np.concatenate(([0], last[:-1].astype(np.int64))))
    k = np.arange(v.size) - starts[token]
    x = np.add.reduceat((v & 0x1F) << (5 * k), starts)
    ends = np.flatnonzero(last)
    negative = (v[ends] & 0x10) != 0
    x[negative] |= -1 << (5 * (k[ends][negative] + 1))
    owner = np.repeat(np.arange(len(masks)), lengths)[starts]  # mask of each token
    per_mask = np.bincount(owner, minlength=len(masks))
    m = np.arange(x.size) - np.repeat(np.cumsum(per_mask) - per_mask, per_mask)  # index within its mask
    counts = x.copy()
    for parity, first in ((1, 1), (0, 2)):  # c[m] = x[m] + c[m - 2] from m = 3 on
        pick = (m % 2 == parity) & (m >= first)
        counts[pick] = _segmented_cumsum(x[pick], owner[pick])
    return np.split(_segmented_cumsum(counts, owner), np.cumsum(per_mask)[:-1])


def rle_run_ends(mask: Mask) -> np.ndarray:
    """:func:`rle_run_ends_many` for one mask."""
    return rle_run_ends_many([mask])[0]


def inside(run_ends: np.ndarray, index: np.ndarray | int) -> np.ndarray:
    """Whether column-major pixel indices lie inside the mask with these run ends."""
    return (np.searchsorted(run_ends, index, side="right") & 1).astype(bool)


class Occupancy:
    """Which object covers each cell of a coarse grid (``-1`` none, ``-2`` several), the cells whose
    whole neighbourhood is one object ("safe" cells, grouped per object), and exact mask look-ups."""

    def __init__(self, view: GraphView) -> None:
        g = view.graph
        h, w = g.height, g.width
        s = max(1, math.ceil(max(h, w) / GRID_SIDE))
        self.rows = np.arange(s // 2, h, s)
        self.cols = np.arange(s // 2, w, s)
        shape = (len(self.cols), len(self.rows))
        count = np.zeros(shape, dtype=np.int32)
        owner_sum = np.zeros(shape, dtype=np.int32)
        self.index: dict[str, int] = {}
        masked = [o for o in g.objects if o.mask is not None]
        self.run_ends = dict(zip((o.id for o in masked), rle_run_ends_many([o.mask for o in masked])))  # type: ignore[misc]
        boxes = dict(zip((o.id for o in masked),
                         mask_utils.toBbox([o.mask.rle for o in masked]).tolist() if masked else []))  # type: ignore[union-attr]
        # every object, whatever its score: a point must avoid them all. Masks are looked up together:
        # each mask's run ends and queries are shifted by its own multiple of the image size.
        area = h * w
        shifted, queries, spans = [], [], []
        runs_before = 0
        for i, o in enumerate(g.objects):
            self.index[o.id] = i
            if o.mask is None:
                c0, c1 = np.searchsorted(self.cols, [o.box.x1 - s, o.box.x2 + s], side="right")
                r0, r1 = np.searchsorted(self.rows, [o.box.y1 - s, o.box.y2 + s], side="right")
                count[c0:c1, r0:r1] += 1
                owner_sum[c0:c1, r0:r1] += i
                continue
            ends = self.run_ends[o.id]
            bx, by, bw, bh = boxes[o.id]
            if len(ends) < 2 or bw <= 0 or bh <= 0:
                continue  # empty mask
            # only the grid cells inside the mask's bounding box
            c0, c1 = np.searchsorted(self.cols, [bx, bx + bw])
            r0, r1 = np.searchsorted(self.rows, [by, by + bh])
            offset = len(shifted) * area
            shifted.append(ends + offset)
            queries.append((self.cols[c0:c1, None] * h + self.rows[None, r0:r1]).ravel() + offset)
            spans.append((i, int(c0), int(c1), int(r0), int(r1), runs_before))
            runs_before += len(ends)
        if shifted:
            run = np.searchsorted(np.concatenate(shifted), np.concatenate(queries), side="right")
            at = 0
            for i, c0, c1, r0, r1, before in spans:
                n = (c1 - c0) * (r1 - r0)
                cells = ((run[at:at + n] - before) & 1).astype(bool).reshape(c1 - c0, r1 - r0)
                at += n
                count[c0:c1, r0:r1] += cells
                owner_sum[c0:c1, r0:r1] += cells * i
        owner = np.where(count == 1, owner_sum, np.where(count == 0, -1, -2))
        size = 2 * max(1, math.ceil(BORDER_SHARE * min(h, w) / s)) + 1
        lo = minimum_filter(owner, size=size, mode="constant", cval=-3)
        hi = maximum_filter(owner, size=size, mode="constant", cval=-3)
        self.safe_owner = np.where((lo == hi) & (owner >= 0), owner, -1)
        safe = np.flatnonzero(self.safe_owner >= 0)
        owners = owner.ravel()[safe]
        order = np.argsort(owners, kind="stable")
        safe, owners = safe[order], owners[order]
        bounds = np.searchsorted(owners, np.arange(len(g.objects) + 1))
        self.safe_cells = {o.id: safe[bounds[i]:bounds[i + 1]] for i, o in enumerate(g.objects)}
        self.n_rows = len(self.rows)
        self.stride = s
        self.width, self.height = w, h

    def on_mask(self, obj_id: str, point: list[float]) -> bool:
        """Whether the pixel under normalized ``point`` is inside the object's mask."""
        ends = self.run_ends.get(obj_id)
        if ends is None:
            return False
        col = min(self.width - 1, int(point[0] * self.width))
        row = min(self.height - 1, int(point[1] * self.height))
        return bool(inside(ends, col * self.height + row))

    def cell_of(self, point: list[float]) -> tuple[int, int]:
        """The grid cell nearest to the pixel under a normalized point."""
        s = self.stride
        col = min(self.width - 1, int(point[0] * self.width))
        row = min(self.height - 1, int(point[1] * self.height))
        return (min(len(self.cols) - 1, max(0, round((col - s // 2) / s))),
                min(self.n_rows - 1, max(0, round((row - s // 2) / s))))

    def safe_points(self, obj_id: str, rng: np.random.Generator, n: int) -> list[list[float]]:
        """Up to ``n`` distinct normalized points (two decimals, as questions write them) drawn from the
        object's safe cells, each still safe and on the mask once rounded."""
        cells = self.safe_cells.get(obj_id)
        if cells is None or cells.size == 0:
            return []
        index = self.index[obj_id]
        picks = rng.choice(cells.size, size=min(n, cells.size), replace=False)
        out: list[list[float]] = []
        for cell in cells[np.sort(picks)].tolist():
            ci, ri = divmod(cell, self.n_rows)
            point = [round((float(self.cols[ci]) + 0.5) / self.width, 2),
                     round((float(self.rows[ri]) + 0.5) / self.height, 2)]
            if point not in out and self.safe_owner[self.cell_of(point)] == index and self.on_mask(obj_id, point):
                out.append(point)
        return out


def occupancy(view: GraphView) -> Occupancy:
    return cached(view, "occupancy", lambda: Occupancy(view))


def _far(p: list[float], q: list[float]) -> bool:
    return math.hypot(p[0] - q[0], p[1] - q[1]) >= MIN_SEPARATION


class _PointObject(Program):
    """Shared by the same-object / different-object point programs."""

    family = "segmentation"
    requires = frozenset({"objects", "masks"})
    answer_type = "point"
    num_options = 2
    same: bool = True

    def candidates(self, view: GraphView) -> list[Plan]:
        occ = occupancy(view)
        rng = make_rng(view.config.seed, (view.image_id,), self.id + ":points")
        objs = sorted((o for o in view.objects if is_confident(view, o) and o.mask is not None), key=lambda o: o.id)
        points = {o.id: occ.safe_points(o.id, rng, 6) for o in objs}
        points = {k: v for k, v in points.items() if v}
        plans: list[Plan] = []
        for oid in sorted(points):
            if len(plans) >= 2 * MAX_PAIRS:
                break
            anchor = points[oid][0]
            same = next((p for p in points[oid][1:] if _far(p, anchor)), None)
            pool = sorted(k for k in points if k != oid)
            if same is None or not pool:
                continue
            other_id = pool[int(rng.integers(len(pool)))]
            other = points[other_id][0]
            for first, second in ((same, other), (other, same)):
                plans.append({"object_id": oid, "other_id": other_id, "anchor": list(anchor),
                              "points": [list(first), list(second)]})
        return plans

    def solve(self, view: GraphView, plan: Plan) -> Any:
        occ = occupancy(view)
        oid, other = plan["object_id"], plan["other_id"]
        if not occ.on_mask(oid, plan["anchor"]):
            return None
        on_same = [occ.on_mask(oid, p) for p in plan["points"]]
        on_other = [occ.on_mask(other, p) for p in plan["points"]]
        if sum(on_same) != 1:
            return None
        i = on_same.index(True)
        if not on_other[1 - i] or on_other[i]:
            return None
        return i if self.same else 1 - i

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        obj, other = view.by_id[plan["object_id"]], view.by_id[plan["other_id"]]
        anchor = fmt_point(plan["anchor"])
        a, b = (fmt_point(p) for p in plan["points"])
        t = self.pick_template(rng)
        same_i = value if self.same else 1 - value
        same_p, other_p = fmt_point(plan["points"][same_i]), fmt_point(plan["points"][1 - same_i])
        other_name = f"another {other.label}" if other.label == obj.label else with_article(other.label)
        answer = fmt_point(plan["points"][value])
        rationale = (f"{anchor} lies on {with_article(obj.label)}. {same_p} lies on the same {obj.label}, while "
                     f"{other_p} lies on {other_name}. So the answer is: {answer}.")
        return Realized(t.id, t.text.format(anchor=anchor, a=a, b=b), answer, rationale,
                        [fmt_point(plan["points"][1 - value])])


@register
class SameObjectPoint(_PointObject):
    """Given a point on an object, which of two other points lies on the same object."""

    id = "single.same_object_point"
    same = True
    templates = (
        Template("same_object", "The point {anchor} lies on an object. Which of the points {a} and {b} lies on "
                                "the same object?"),
        Template("belongs_same", "Is {a} or {b} on the same object as the point {anchor}?"),
        Template("touches_same", "Point {anchor} (x and y as fractions of the image width and height) touches "
                                 "one object. Which point, {a} or {b}, belongs to that object too?"),
    )


@register
class DifferentObjectPoint(_PointObject):
    """Given a point on an object, which of two other points lies on a different object."""

    id = "single.different_object_point"
    same = False
    templates = (
        Template("different_object", "The point {anchor} lies on an object. Which of the points {a} and {b} "
                                     "lies on a different object?"),
        Template("belongs_other", "Is {a} or {b} on another object than the point {anchor}?"),
        Template("touches_other", "Point {anchor} (x and y as fractions of the image width and height) touches "
                                  "one object. Which point, {a} or {b}, belongs to some other object?"),
    )
