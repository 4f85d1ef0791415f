"""Segmentation: given a point on an object, which of two other points lies on the same (or a different) object.

Points are normalized ``(x, y)``. They are drawn deterministically (an rng derived from the seed and
the image, shared by the two programs) from pixels well inside one object's mask:

* on a coarse grid (at most :data:`GRID_SIDE` cells along the longer side), every cell within
  ``BORDER_SHARE`` of the image's shorter side (at least one cell) around the point's cell is covered
  by this object's mask and by no other object's mask (any score; objects without a mask count by
  their box, widened by a cell), and
* at pixel level, the point's pixel and its 8 neighbours are inside the mask and inside no other
  object's mask or box,

so a small error in a mask or in reading the point cannot change the answer. Masks are decoded once
per view, as run ends (no full-size arrays), and only the cells of each mask's bounding box are looked
up. ``solve`` re-reads the three points in the masks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from scene_graphs.model import Mask

from ..base import GraphView, Plan, Program, Realized, Template, make_rng, register
from ..common import hashed_order
from ..grammar import with_article
from .depth import fmt_point
from .relations import cached, is_confident  # noqa: F401  (re-exported names of the old module)

GRID_SIDE = 64
"""The occupancy grid has at most this many cells along the image's longer side."""
BORDER_SHARE = 0.02
"""Clearance around a point, as a share of the image's shorter side (at least one grid cell)."""
MIN_SEPARATION = 0.05
"""Normalized distance between the anchor and the same-object point."""
MAX_PAIRS = 4
"""Anchor objects per image (each gives two plans, the same-object point first or second)."""
POINTS_PER_OBJECT = 6
"""Safe points drawn per object (the anchor and its same-object point come from them)."""


def _run_ends(masks: list[Mask]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The run ends of every mask, concatenated: ``(run_ends, first, sizes)``, mask ``i``'s run ends
    being ``run_ends[first[i]:first[i] + sizes[i]]`` (see :func:`rle_run_ends_many`)."""
    v = np.frombuffer("".join(m.counts for m in masks).encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    ends = np.flatnonzero((v & 0x20) == 0)  # the last character of each token
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    widths = ends - starts + 1
    x = v[starts] & 0x1F
    for k in range(1, int(widths.max())):  # the few tokens longer than one character
        longer = np.flatnonzero(widths > k)
        x[longer] |= (v[starts[longer] + k] & 0x1F) << (5 * k)
    negative = np.flatnonzero(v[ends] & 0x10)
    x[negative] |= -1 << (5 * widths[negative])
    # tokens of each mask (every mask's string ends with a token's last character, and has one)
    char_ends = np.cumsum([len(m.counts) for m in masks])
    token_ends = np.searchsorted(ends, char_ends - 1, side="right")
    sizes = np.diff(token_ends, prepend=0)
    first = token_ends - sizes
    start = np.repeat(first, sizes)  # for each count, the index of its mask's first count
    m = np.arange(x.size) - start  # index of each count within its mask
    odd = (m & 1).astype(bool)

    def segmented_cumsum(a: np.ndarray) -> np.ndarray:
        c = np.cumsum(a)
        return c - (c[start] - a[start])

    plain = segmented_cumsum(x)
    alternating = segmented_cumsum(np.where(odd, -x, x))
    counts = np.where(odd, (plain - alternating) // 2, (plain + alternating) // 2)  # sums of one parity
    counts = np.where(odd | (m == 0), counts, counts - x[start])  # even counts start at the third
    return segmented_cumsum(counts), first, sizes


def rle_run_ends_many(masks: list[Mask]) -> list[np.ndarray]:
    """Cumulative run ends of compressed COCO RLEs, decoded together with numpy (no full-size arrays).

    Pixel ``(x, y)`` (column-major index ``x * height + y``) is inside a mask when the number of its run
    ends ``<=`` that index is odd. Mirrors pycocotools' ``rleFrString``: 5-bit groups with a continuation
    bit, sign-extended, each count from the third on stored as a difference to the count two before
    (so counts of one parity are running sums of the stored values of that parity)."""
    if not masks:
        return []
    runs, first, sizes = _run_ends(masks)
    return [runs[f:f + n] for f, n in zip(first.tolist(), sizes.tolist())]


def rle_run_ends(mask: Mask) -> np.ndarray:
    """:func:`rle_run_ends_many` for one mask."""
    return rle_run_ends_many([mask])[0]


def inside(run_ends: np.ndarray, index: np.ndarray | int) -> np.ndarray:
    """Whether column-major pixel indices lie inside the mask with these run ends."""
    return (np.searchsorted(run_ends, index, side="right") & 1).astype(bool)


def _uniform(grid: np.ndarray, r: int) -> np.ndarray:
    """Whether every cell within ``r`` cells (a square; cells off the grid count as different) holds the
    same value as the cell itself."""
    padded = np.pad(grid, r, mode="constant", constant_values=-3)
    n0, n1 = grid.shape
    same = np.ones(grid.shape, dtype=bool)
    for dx in range(2 * r + 1):
        for dy in range(2 * r + 1):
            if dx != r or dy != r:
                same &= padded[dx:dx + n0, dy:dy + n1] == grid
    return same


_NEIGHBOURS = (np.repeat([-1, 0, 1], 3), np.tile([-1, 0, 1], 3))
"""Column and row offsets of a pixel's 3 x 3 neighbourhood."""


class Occupancy:
    """Which object covers each cell of a coarse grid (``-1`` none, ``-2`` several), the cells whose
    whole neighbourhood is one object ("safe" cells, grouped per object), and exact mask look-ups."""

    def __init__(self, view: GraphView) -> None:
        g = view.graph
        h, w = g.height, g.width
        self.width, self.height = w, h
        s = max(1, math.ceil(max(h, w) / GRID_SIDE))
        self.stride = s
        self.rows = np.arange(s // 2, h, s)
        self.cols = np.arange(s // 2, w, s)
        shape = (len(self.cols), len(self.rows))
        count = np.zeros(shape, dtype=np.int32)
        owner_sum = np.zeros(shape, dtype=np.int32)
        self.index: dict[str, int] = {o.id: i for i, o in enumerate(g.objects)}
        self.mask_boxes: dict[str, tuple[float, float, float, float]] = {}
        """Object id -> pixel bounds ``(x1, y1, x2, y2)`` (exclusive ends) of its mask, or of its box
        widened by a pixel when it has no mask: nothing of the object lies outside."""
        self.run_ends: dict[str, np.ndarray] = {}
        self._position: dict[str, int] = {}
        self._first = np.zeros(0, dtype=np.int64)
        self._shifted = np.zeros(0, dtype=np.int64)
        # every object, whatever its score: a point must avoid them all
        for i, o in enumerate(g.objects):
            if o.mask is None:
                b = o.box
                self.mask_boxes[o.id] = (b.x1 - 1, b.y1 - 1, b.x2 + 1, b.y2 + 1)
                c0, c1 = np.searchsorted(self.cols, [b.x1 - s, b.x2 + s], side="right")
                r0, r1 = np.searchsorted(self.rows, [b.y1 - s, b.y2 + s], side="right")
                count[c0:c1, r0:r1] += 1
                owner_sum[c0:c1, r0:r1] += i
        masked = [o for o in g.objects if o.mask is not None]
        if masked:
            self._cover_masks(masked, count, owner_sum)
        self._bounds = np.array([self.mask_boxes.get(o.id, (0.0, 0.0, 0.0, 0.0)) for o in g.objects],
                                dtype=np.float64).reshape(len(g.objects), 4)
        """Bounds of each object (graph order), as :attr:`mask_boxes`."""
        self._mask_position = np.array([self._position.get(o.id, -1) for o in g.objects], dtype=np.int64)
        """Position of each object's mask in the concatenated run ends (graph order), -1 without a mask."""
        owner = np.where(count == 1, owner_sum, np.where(count == 0, -1, -2))
        r = max(1, math.ceil(BORDER_SHARE * min(h, w) / s))
        self.safe_owner = np.where(_uniform(owner, r) & (owner >= 0), owner, -1)
        safe = np.flatnonzero(self.safe_owner >= 0)
        owners = owner.ravel()[safe]
        order = np.argsort(owners, kind="stable")
        safe, owners = safe[order], owners[order]
        bounds = np.searchsorted(owners, np.arange(len(g.objects) + 1))
        self.safe_cells = {o.id: safe[bounds[i]:bounds[i + 1]] for i, o in enumerate(g.objects)}
        self.n_rows = len(self.rows)

    def _cover_masks(self, masked: list, count: np.ndarray, owner_sum: np.ndarray) -> None:
        """Decode the masks (run ends) and add, for each grid cell inside a mask, one to ``count`` and
        the object's index to ``owner_sum``."""
        h, w = self.height, self.width
        shape = count.shape
        runs, first, sizes = _run_ends([o.mask for o in masked])  # type: ignore[misc]
        for o, f, n in zip(masked, first.tolist(), sizes.tolist()):
            self.run_ends[o.id] = runs[f:f + n]
        self._position = {o.id: k for k, o in enumerate(masked)}
        self._first = first
        area = h * w
        self._shifted = runs + np.repeat(np.arange(len(masked)) * area, sizes)
        """Every mask's run ends, mask k's shifted by k times the image size (one sorted array)."""
        bbox = mask_utils.toBbox([o.mask.rle for o in masked])  # type: ignore[union-attr]
        bx, by = bbox[:, 0], bbox[:, 1]
        bx2, by2 = bx + bbox[:, 2], by + bbox[:, 3]
        for o, box in zip(masked, np.stack([bx, by, bx2, by2], axis=1).tolist()):
            self.mask_boxes[o.id] = tuple(box)  # type: ignore[assignment]
        # the grid cells inside each mask's bounding box, all masks looked up at once: mask k's run
        # ends and queries are shifted by k times the image size
        c0, c1 = np.searchsorted(self.cols, bx), np.searchsorted(self.cols, bx2)
        r0, r1 = np.searchsorted(self.rows, by), np.searchsorted(self.rows, by2)
        nr = np.maximum(r1 - r0, 0)
        n = np.where((sizes >= 2) & (bbox[:, 2] > 0) & (bbox[:, 3] > 0), np.maximum(c1 - c0, 0) * nr, 0)
        if n.sum():
            k = np.repeat(np.arange(len(masked)), n)
            j = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
            col, row = np.divmod(j, nr[k])
            col += c0[k]
            row += r0[k]
            s = self.stride  # grid column c is pixel column s // 2 + c * s (rows alike)
            half = s // 2
            pixels = (half + col * s) * h + (half + row * s) + k * area
            hit = ((np.searchsorted(self._shifted, pixels, side="right") - first[k]) & 1).astype(bool)
            cell = col[hit] * len(self.rows) + row[hit]
            objects = np.array([self.index[o.id] for o in masked])[k[hit]]
            count += np.bincount(cell, minlength=count.size).reshape(shape).astype(np.int32)
            owner_sum += np.bincount(cell, weights=objects, minlength=count.size).reshape(shape).astype(np.int32)

    def _pixel(self, point: list[float]) -> tuple[int, int]:
        return min(self.width - 1, int(point[0] * self.width)), min(self.height - 1, int(point[1] * self.height))

    def on_mask(self, obj_id: str, point: list[float]) -> bool:
        """Whether the pixel under normalized ``point`` is inside the object's mask."""
        ends = self.run_ends.get(obj_id)
        if ends is None:
            return False
        col, row = self._pixel(point)
        return bool(inside(ends, col * self.height + row))

    def cell_of(self, point: list[float]) -> tuple[int, int]:
        """The grid cell nearest to the pixel under a normalized point."""
        s = self.stride
        col, row = self._pixel(point)
        return (min(len(self.cols) - 1, max(0, round((col - s // 2) / s))),
                min(self.n_rows - 1, max(0, round((row - s // 2) / s))))

    def safe_points_many(self, obj_ids: list[str], rng: np.random.Generator, n: int) -> dict[str, list[list[float]]]:
        """Up to ``n`` distinct normalized points per object (two decimals, as questions write them),
        drawn from the object's safe cells and kept when, once rounded, the point is still in a safe
        cell of the object and its pixel and the 8 around it (inside the image) are on the object's
        mask and on no other object (mask, or box widened by a pixel for objects without a mask).
        All objects are handled together (a handful of array operations in all)."""
        ids = [i for i in obj_ids if i in self.run_ends and self.safe_cells[i].size]
        out: dict[str, list[list[float]]] = {i: [] for i in obj_ids}
        if not ids:
            return out
        h, w, s = self.height, self.width, self.stride
        sizes = np.array([self.safe_cells[i].size for i in ids])
        cells = np.concatenate([self.safe_cells[i] for i in ids])
        offsets = np.cumsum(sizes) - sizes
        picks = (rng.random((len(ids), n)) * sizes[:, None]).astype(np.int64) + offsets[:, None]
        owner = np.repeat(np.arange(len(ids)), n)
        ci, ri = np.divmod(cells[picks.ravel()], self.n_rows)
        px = np.round((self.cols[ci] + 0.5) / w, 2)
        py = np.round((self.rows[ri] + 0.5) / h, 2)
        col = np.minimum(w - 1, (px * w).astype(np.int64))
        row = np.minimum(h - 1, (py * h).astype(np.int64))
        gc = np.clip(np.rint((col - s // 2) / s).astype(np.int64), 0, len(self.cols) - 1)
        gr = np.clip(np.rint((row - s // 2) / s).astype(np.int64), 0, self.n_rows - 1)
        index = np.fromiter((self.index[i] for i in ids), dtype=np.int64, count=len(ids))
        ok = self.safe_owner[gc, gr] == index[owner]
        # exact pixel check of each point's 3 x 3 neighbourhood against every object whose bounds touch it
        # (objects are in graph order: self.index; bounds and mask positions per object)
        wc = np.clip(col[:, None] + _NEIGHBOURS[0], 0, w - 1)
        wr = np.clip(row[:, None] + _NEIGHBOURS[1], 0, h - 1)
        bounds = self._bounds
        touch = ((bounds[None, :, 0] < (col + 2)[:, None]) & (bounds[None, :, 2] > (col - 1)[:, None])
                 & (bounds[None, :, 1] < (row + 2)[:, None]) & (bounds[None, :, 3] > (row - 1)[:, None]))
        own = index[owner]
        touch[np.arange(len(owner)), own] = True
        point, obj = np.nonzero(touch)
        masked = self._mask_position[obj]
        is_mask = masked >= 0
        on = np.zeros((len(point), 9), dtype=bool)
        if is_mask.any():
            p, m = point[is_mask], masked[is_mask]
            queries = (wc[p] * h + wr[p]) + (m * (h * w))[:, None]
            counts = np.searchsorted(self._shifted, queries, side="right")
            on[is_mask] = ((counts - self._first[m][:, None]) & 1).astype(bool)
        if (~is_mask).any():  # no mask: the (widened) box
            p, b = point[~is_mask], bounds[obj[~is_mask]]
            xc, yc = wc[p] + 0.5, wr[p] + 0.5
            on[~is_mask] = ((xc >= b[:, 0:1]) & (xc <= b[:, 2:3]) & (yc >= b[:, 1:2]) & (yc <= b[:, 3:4]))
        mine = obj == own[point]
        ok &= np.bincount(point[mine], weights=on[mine].all(axis=1), minlength=len(owner)).astype(bool)
        ok &= ~np.bincount(point[~mine], weights=on[~mine].any(axis=1), minlength=len(owner)).astype(bool)
        for k, x, y in zip(owner[ok].tolist(), px[ok].tolist(), py[ok].tolist()):
            pts = out[ids[k]]
            if [x, y] not in pts:
                pts.append([x, y])
        return out

    def safe_points(self, obj_id: str, rng: np.random.Generator, n: int) -> list[list[float]]:
        """:meth:`safe_points_many` for one object."""
        return self.safe_points_many([obj_id], rng, n)[obj_id]


def occupancy(view: GraphView) -> Occupancy:
    return view.memo("occupancy", lambda: Occupancy(view))


def _far(p: list[float], q: list[float]) -> bool:
    return math.hypot(p[0] - q[0], p[1] - q[1]) >= MIN_SEPARATION


def point_plans(view: GraphView) -> list[Plan]:
    """The plans both point programs ask about (drawn once per image): for up to :data:`MAX_PAIRS`
    anchor objects, a point on it, another point on it and a point on another object, the two
    points in both orders."""
    def build() -> list[Plan]:
        occ = occupancy(view)
        rng = make_rng(view.config.seed, (view.image_id,), "single.segmentation:points")
        ids = [o.id for o in view.confident_objects if o.mask is not None and occ.safe_cells[o.id].size]
        order = hashed_order(view, "segmentation", ids)
        points = occ.safe_points_many(order, rng, POINTS_PER_OBJECT)

        def points_of(oid: str) -> list[list[float]]:
            return points[oid]

        plans: list[Plan] = []
        anchors = 0
        for oid in order:
            if anchors >= MAX_PAIRS:
                break
            pts = points_of(oid)
            if not pts:
                continue
            anchor = pts[0]
            same = next((p for p in pts[1:] if _far(p, anchor)), None)
            if same is None:
                continue
            start = int(rng.random() * len(order))
            other_id = None
            for j in range(len(order)):  # the first other object with points, from a random start
                cand = order[(start + j) % len(order)]
                if cand != oid and points_of(cand):
                    other_id = cand
                    break
            if other_id is None:
                continue
            other = points_of(other_id)[0]
            anchors += 1
            for first, second in ((same, other), (other, same)):
                plans.append({"object_id": oid, "other_id": other_id, "anchor": list(anchor),
                              "points": [list(first), list(second)]})
        return plans
    return view.memo("segmentation_plans", build)


class _PointObject(Program):
    """Shared by the same-object / different-object point programs."""

    family = "segmentation"
    requires = frozenset({"objects", "masks"})
    answer_type = "point"
    num_options = 2
    same: bool = True

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        # point_plans checked every point against the masks: the same-object point is first in the
        # even plans, second in the odd ones (solve, which re-reads the masks, agrees)
        out = []
        for i, p in enumerate(point_plans(view)):
            plan = {"object_id": p["object_id"], "other_id": p["other_id"], "anchor": list(p["anchor"]),
                    "points": [list(q) for q in p["points"]]}
            same = i % 2
            out.append((plan, same if self.same else 1 - same))
        return out

    def solve(self, view: GraphView, plan: Plan) -> Any:
        obj, other = view.by_id.get(plan["object_id"]), view.by_id.get(plan["other_id"])
        if obj is None or other is None or not is_confident(view, obj) or not is_confident(view, other):
            return None
        occ = occupancy(view)
        oid, other_id = obj.id, other.id
        if not occ.on_mask(oid, plan["anchor"]):
            return None
        on_same = [occ.on_mask(oid, p) for p in plan["points"]]
        on_other = [occ.on_mask(other_id, p) for p in plan["points"]]
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
