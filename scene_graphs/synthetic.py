"""Random but plausible scene graphs, for property tests and benchmarks (never for training data).

``random_graph(rng)`` fills every field (objects with masks and typed attributes, relations,
text regions, a depth map) with values that pass validation, from a seeded ``numpy`` generator,
so the same seed always gives the same graph. With ``metric=True`` the depth map is in metres (a
floor receding from :data:`METRIC_NEAR` at the bottom to :data:`METRIC_FAR` at the top, each object a
plateau at its own distance) and the graph carries camera intrinsics; without it, the same seed gives
the same graph as before the option existed.
"""

from __future__ import annotations

import numpy as np

from .model import Attribute, Box, Camera, DepthMap, Mask, Object, Relation, SceneGraph, TextRegion

LABELS = ("person", "car", "bus", "dog", "cat", "cup", "table", "chair", "bottle", "bicycle", "tree", "sign",
          "umbrella", "bench", "horse", "laptop", "book", "bowl", "clock", "traffic light")
ATTRIBUTES = {
    "color": ("red", "blue", "green", "white", "black", "yellow", "brown", "gray"),
    "material": ("wooden", "metal", "plastic", "glass"),
    "size": ("small", "large"),
    "state": ("open", "closed", "parked", "standing"),
}
PREDICATES = ("on", "next to", "holding", "behind", "in front of", "under", "near", "wearing", "riding")
WORDS = ("STOP", "EXIT", "OPEN", "SALE", "CAFE", "BUS", "PARKING", "HOTEL", "MAIN ST", "NO ENTRY")
METRIC_NEAR, METRIC_FAR = 1.0, 20.0
"""Metres of the background at the bottom and top of a metric synthetic map."""
OBJECT_DEPTHS = (0.8, 12.0)
"""Range of the objects' distances (metres) in a metric synthetic map."""


def _ellipse_mask(box: Box, width: int, height: int) -> Mask:
    yy, xx = np.mgrid[0:height, 0:width]
    cx, cy = box.center
    rx, ry = max(box.width / 2, 0.5), max(box.height / 2, 0.5)
    return Mask.from_array(((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1.0)


def random_graph(rng: np.random.Generator, image_id: str | None = None, *, n_objects: int | None = None,
                 n_relations: int | None = None, width: int | None = None, height: int | None = None,
                 masks: bool = True, depth: bool = True, text: bool = True, uncertain: float = 0.1,
                 labels: tuple[str, ...] = LABELS, metric: bool = False) -> SceneGraph:
    """A valid graph with every field filled. ``uncertain`` is the share of objects scored in [0.2, 0.5);
    ``metric``: depth in metres and camera intrinsics (with ``depth``)."""
    w = int(width or rng.integers(48, 160))
    h = int(height or rng.integers(48, 160))
    n = int(n_objects if n_objects is not None else rng.integers(1, 9))
    pool = labels[: int(rng.integers(2, len(labels) + 1))]
    objects = []
    for i in range(n):
        bw, bh = rng.uniform(0.08, 0.6) * w, rng.uniform(0.08, 0.6) * h
        x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        box = Box(round(x1, 1), round(y1, 1), round(x1 + bw, 1), round(y1 + bh, 1))
        attrs = []
        for cat, names in ATTRIBUTES.items():
            if rng.random() < 0.5:
                attrs.append(Attribute(str(names[int(rng.integers(len(names)))]), cat,
                                       round(float(rng.uniform(0.3, 1.0)), 2)))
        score = float(rng.uniform(0.2, 0.5)) if rng.random() < uncertain else float(rng.uniform(0.5, 1.0))
        objects.append(Object(f"o{i}", str(pool[int(rng.integers(len(pool)))]), box, round(score, 3),
                              _ellipse_mask(box, w, h) if masks else None, tuple(attrs)))
    relations = []
    seen = set()
    n_rel = int(n_relations if n_relations is not None else rng.integers(0, 2 * n + 1))
    for _ in range(n_rel if n > 1 else 0):
        a, b = (int(v) for v in rng.choice(n, size=2, replace=False))
        p = str(PREDICATES[int(rng.integers(len(PREDICATES)))])
        if (a, p, b) in seen:
            continue
        seen.add((a, p, b))
        relations.append(Relation(f"o{a}", p, f"o{b}", round(float(rng.uniform(0.4, 1.0)), 2), "model"))
    regions = []
    if text:
        for j in range(int(rng.integers(0, 4))):
            host = objects[int(rng.integers(n))] if n and rng.random() < 0.7 else None
            base = host.box if host is not None else Box(0, 0, w, h)
            tw, th = base.width * 0.5, base.height * 0.3
            tx, ty = base.x1 + rng.uniform(0, base.width - tw), base.y1 + rng.uniform(0, base.height - th)
            regions.append(TextRegion(f"t{j}", str(WORDS[int(rng.integers(len(WORDS)))]),
                                      Box(round(tx, 1), round(ty, 1), round(tx + tw, 1), round(ty + th, 1)),
                                      round(float(rng.uniform(0.5, 1.0)), 2), host.id if host else None))
    dmap = None
    camera = None
    if depth:
        lo, hi = (METRIC_FAR, METRIC_NEAR) if metric else (0.0, 1.0)
        gy = np.linspace(lo, hi, h // 4 or 1, dtype=np.float32)[:, None]
        values = np.repeat(gy, w // 4 or 1, axis=1)
        for o in objects:  # each object a plateau at its own depth
            d = np.float32(rng.uniform(*OBJECT_DEPTHS) if metric else rng.uniform(0, 1))
            values[int(o.box.y1 // 4):int(o.box.y2 // 4) + 1, int(o.box.x1 // 4):int(o.box.x2 // 4) + 1] = d
        if metric:
            dmap = DepthMap(values, larger_is_nearer=False, unit="metres")
            f = float(rng.uniform(0.7, 1.4)) * w
            camera = Camera(round(f, 2), round(f * float(rng.uniform(0.98, 1.02)), 2),
                            round(w / 2 + float(rng.uniform(-2, 2)), 2), round(h / 2 + float(rng.uniform(-2, 2)), 2))
        else:
            dmap = DepthMap(values, larger_is_nearer=bool(rng.random() < 0.5))
        objects = [Object(o.id, o.label, o.box, o.score, o.mask, o.attributes,
                          dmap.median_in(o.box, w, h, o.mask)) for o in objects]
    fields = {"objects", "attributes", "relations"} | ({"masks"} if masks else set()) \
        | ({"depth"} if depth else set()) | ({"text"} if text else set())
    return SceneGraph(image_id or f"synthetic-{int(rng.integers(1 << 62)):016x}", w, h, path="",
                      objects=tuple(objects), relations=tuple(relations), text=tuple(regions), depth=dmap,
                      fields=frozenset(fields), provenance={"annotator": "synthetic"}, camera=camera)
