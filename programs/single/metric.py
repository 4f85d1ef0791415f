"""Metric questions (VQASynth's): how far an object is from the camera, how far apart two objects are,
and how tall or wide an object is, in metres.

Asked only on a *metric* graph (:attr:`scene_graphs.model.SceneGraph.metric`: a depth map in metres and
the camera's intrinsics); on any other graph the programs do not apply (``applicable`` is False), since a
relative depth map has no scale. Every measurement comes from one object's mask:

* its depth is the **median** of the map's readings under the mask (cells at 0, no reading, left out);
  the object is measured only when at least :data:`MIN_CELLS` cells hold a reading, at least
  :data:`MIN_READ_SHARE` of its cells do, and the readings agree: their interquartile range is at most
  :data:`MAX_SPREAD` of the median (an object that recedes in depth, or one half hidden behind
  another, has no single distance);
* its centre is the mask's centroid, back-projected with the intrinsics at that depth
  (:meth:`~scene_graphs.model.Camera.back_project`); distances are between such points, "from the camera"
  is the length of the centre's ray (not the depth alone);
* its height and width are the mask's extent in pixels times depth over focal length (the size of the
  object as seen, at its depth), only for a side not cut by the image border and at least
  :data:`MIN_SIDE` pixels long.

Two objects are measured against each other only when they are not one thing and its part, holder or
container (:func:`programs.predicates.entangled`) and neither is named through the other ("the cup on
the table"), as in :mod:`programs.single.depth`; they must be at least :data:`MIN_SEPARATION` apart.
Answers are rounded to two significant figures and said as approximate ("about 2.3 m"). Multiple choice
offers as distractors what the same program measures for the *other* questions it could ask in the same
image (other objects' distances or sizes, other pairs' separations), each at least :data:`RATIO` times
larger or smaller than the answer and than each other (far enough that the measurement's error cannot
make a distractor right): an option set is drawn among all such sets of the image's answers, and the
record is free-form when it does not hold the answer (:func:`distractors`). Distractors drawn from the
answers' own distribution leave a text-only solver nothing to learn: a made-up ladder of values around
the answer would offer values (40 m, 3 cm) that are rarely answers, which is how a blind solver spots
the answer. Objects without a mask, or graphs without metric depth and intrinsics: the programs abstain
(counted) or do not apply.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from scene_graphs.model import Object, SceneGraph

from ..base import GraphView, Plan, Program, Realized, Template, draw, register, stable_int
from ..common import hashed_order, is_confident
from ..grammar import capitalize
from ..predicates import entangled
from ..refer import refer

MIN_CELLS = 9
"""Least depth-map cells with a reading under an object's mask."""
MIN_READ_SHARE = 0.8
"""Least share of an object's mask cells that hold a reading (a value above 0)."""
MAX_SPREAD = 0.2
"""Most interquartile range of the readings under a mask, as a share of their median."""
MIN_SIDE = 8
"""Least extent in pixels of a mask side for its size in metres (one pixel of noise is then <= 12%)."""
BORDER = 0.01
"""Share of the image side within which a mask edge counts as touching the border (maybe cut off)."""
MIN_DISTANCE = 0.2
"""Least distance from the camera, metres."""
MIN_SEPARATION = 0.3
"""Least distance between two objects' centres, metres."""
MIN_SIZE = 0.02
"""Least height or width asked about, metres."""
RATIO = 1.5
"""Ratio between neighbouring values of a multiple-choice ladder."""
NUM_OPTIONS = 3
MAX_OBJECTS = 6
MAX_PAIRS = 6


def significant(value: float, figures: int = 2) -> float:
    """``value`` rounded to ``figures`` significant figures (metres)."""
    if value <= 0 or not math.isfinite(value):
        raise ValueError(f"a measurement must be positive and finite, got {value}")
    return round(value, _decimals(value, figures))


def _decimals(value: float, figures: int = 2) -> int:
    return max(0, figures - 1 - math.floor(math.log10(value)))


def fmt_metres(value: float) -> str:
    """A rounded measurement as written: ``about 2.3 m``, ``about 0.45 m``, ``about 12 m``."""
    v = significant(value)
    return f"about {v:.{_decimals(v)}f} m"


@dataclass(frozen=True)
class Measure:
    """What one object's mask and the metric depth under it give (metres, camera frame)."""

    depth: float
    """Median depth under the mask."""
    cells: int
    """Depth-map cells with a reading under the mask."""
    pixel: tuple[float, float]
    """The mask's centroid, image pixels."""
    point: tuple[float, float, float]
    """The centroid back-projected at ``depth``."""
    extent: tuple[float, float]
    """(width, height) of the mask's bounding box, image pixels."""
    cut: tuple[bool, bool]
    """Whether the mask touches the left/right (width) or top/bottom (height) image border."""

    @property
    def distance(self) -> float:
        return math.sqrt(sum(c * c for c in self.point))

    def size(self, dimension: str, graph: SceneGraph) -> float | None:
        """Height or width in metres, or ``None`` when that side may be cut off or is too short."""
        i = 0 if dimension == "width" else 1
        if self.cut[i] or self.extent[i] < MIN_SIDE or graph.camera is None:
            return None
        focal = graph.camera.fx if i == 0 else graph.camera.fy
        return self.extent[i] * self.depth / focal


def _measure(view: GraphView, obj: Object) -> Measure | str:
    """The object's :class:`Measure`, or why it cannot be measured."""
    graph = view.graph
    depth, camera = graph.depth, graph.camera
    if not graph.metric or depth is None or camera is None:
        return "no metric depth or camera intrinsics"
    if obj.mask is None:
        return "no mask"
    cells = depth.mask_cells(obj.mask)
    values = depth.values[cells]
    read = values[values > 0]
    if len(read) < MIN_CELLS or len(read) < MIN_READ_SHARE * len(values):
        return "too few depth readings under the mask"
    median = float(np.median(read))
    q25, q75 = (float(q) for q in np.percentile(read, [25, 75]))
    if q75 - q25 > MAX_SPREAD * median:
        return "the depth under the mask varies too much (no single distance)"
    array = obj.mask.to_array()
    rows, cols = np.nonzero(array)
    sx, sy = view.width / array.shape[1], view.height / array.shape[0]
    u, v = (float(cols.mean()) + 0.5) * sx, (float(rows.mean()) + 0.5) * sy
    x1, x2 = float(cols.min()) * sx, float(cols.max() + 1) * sx
    y1, y2 = float(rows.min()) * sy, float(rows.max() + 1) * sy
    bx, by = BORDER * view.width, BORDER * view.height
    cut = (x1 <= bx or x2 >= view.width - bx, y1 <= by or y2 >= view.height - by)
    return Measure(median, int(len(read)), (u, v), camera.back_project(u, v, median), (x2 - x1, y2 - y1), cut)


def measure(view: GraphView, obj: Object) -> Measure | str:
    """:func:`_measure`, once per view and object."""
    return view.memo(("metric_measure", obj.id), lambda: _measure(view, obj))


def metric_objects(view: GraphView, program_id: str) -> list[tuple[Object, Measure, str]]:
    """Confident, nameable, measurable objects (object, measure, referent text) in a per-image order, at
    most :data:`MAX_OBJECTS`; each object left out for its measurement counted as an abstention."""
    out = []
    for o in hashed_order(view, "metric_objects", view.objects, key=lambda o: o.id):
        if not is_confident(view, o):
            continue
        ref = refer(view, o)
        if ref is None:
            continue
        m = measure(view, o)
        if isinstance(m, str):
            view.abstain(program_id, m)
            continue
        out.append((o, m, ref.text))
        if len(out) >= MAX_OBJECTS:
            break
    return out


def _named(view: GraphView, obj: Object) -> tuple[str, tuple[str, ...]] | None:
    ref = refer(view, obj)
    return None if ref is None else (ref.text, ref.mentions)


def apart(a: float, b: float) -> bool:
    """Whether two measurements differ by at least the factor :data:`RATIO`."""
    return max(a, b) >= RATIO * min(a, b)


def distractors(rng: np.random.Generator, value: float, answers: list[float]) -> list[str]:
    """The other ``NUM_OPTIONS - 1`` values of an option set drawn uniformly among every set of
    ``NUM_OPTIONS`` values of ``answers`` (the program's answers in this image, ``value`` among them)
    that are pairwise :func:`apart`; none (the record is then free-form) when the set drawn does not hold
    ``value``. Drawing the set before looking at the answer makes every member of a set equally likely to
    be the answer (each plan is asked with the same chance): neither the option texts nor the answer's
    rank among them (smallest, middle, largest) tells it. Choosing distractors around the answer instead
    favours the answer's rank where the values are crowded (pair distances: the largest)."""
    values = sorted(set(answers) | {value})
    sets = [s for s in itertools.combinations(values, NUM_OPTIONS)
            if all(apart(a, b) for a, b in itertools.combinations(s, 2))]
    if not sets:
        return []
    chosen = sets[draw(rng, len(sets))]
    return [fmt_metres(v) for v in chosen if v != value] if value in chosen else []


def _camera_words(view: GraphView) -> str:
    c = view.graph.camera
    assert c is not None
    return f"focal lengths {c.fx:.0f} and {c.fy:.0f} pixels, principal point ({c.cx:.0f}, {c.cy:.0f})"


def _where(view: GraphView, text: str, m: Measure) -> str:
    x, y, z = m.point
    return (f"the median depth under the mask of {text} is {m.depth:.2f} m ({m.cells} readings); its centre, "
            f"at pixel ({m.pixel[0]:.0f}, {m.pixel[1]:.0f}), is the point ({x:.2f}, {y:.2f}, {z:.2f}) m")


METRIC = "metric"
"""Named in ``requires`` beside the graph fields: no annotator fills it, the graph is metric or not
(:attr:`SceneGraph.metric`), so a graph without it is skipped as one that "lacks metric"."""


class _Metric(Program):
    """Shared by the metric programs: they apply to metric graphs only."""

    family = "metric"
    requires = frozenset({"objects", "masks", "depth", METRIC})
    answer_type = "metres"
    num_options = NUM_OPTIONS

    def applicable(self, graph: SceneGraph) -> bool:
        return graph.has(*(self.requires - {METRIC})) and graph.metric

    def options(self, view: GraphView, plan: Plan, value: float, rng: np.random.Generator) -> list[str]:
        """Distractors from the answers of this program's plans in the image (:func:`distractors`)."""
        return distractors(rng, value, [v for _, v in self.plans(view)])

    def _object(self, view: GraphView, object_id: Any) -> tuple[Object, Measure] | None:
        obj = view.by_id.get(object_id) if isinstance(object_id, str) else None
        if obj is None or not is_confident(view, obj) or refer(view, obj) is None:
            return None
        m = measure(view, obj)
        return None if isinstance(m, str) else (obj, m)


@register
class CameraDistance(_Metric):
    """About how far is a named object from the camera, in metres?"""

    id = "single.metric_camera_distance"
    templates = (
        Template("how_far", "About how far is {obj} from the camera, in metres?"),
        Template("distance_to", "Roughly what is the distance from the camera to {obj}?"),
        Template("metres_away", "Approximately how many metres away from the camera is {obj}?"),
    )

    def candidates(self, view: GraphView) -> list[Plan]:
        if not view.graph.metric:
            return []
        return [{"object_id": o.id} for o, m, _ in metric_objects(view, self.id) if m.distance >= MIN_DISTANCE]

    def solve(self, view: GraphView, plan: Plan) -> Any:
        if not view.graph.metric:
            return None
        found = self._object(view, plan.get("object_id"))
        if found is None or found[1].distance < MIN_DISTANCE:
            return None
        return significant(found[1].distance)

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        obj, m = self._object(view, plan["object_id"])  # type: ignore[misc]
        text, mentions = _named(view, obj)  # type: ignore[misc]
        t = self.pick_template(rng)
        answer = fmt_metres(value)
        rationale = (f"With the camera's {_camera_words(view)}, {_where(view, text, m)} from the camera, "
                     f"{m.distance:.2f} m along its ray. So the answer is: {answer}.")
        return Realized(t.id, t.text.format(obj=text), answer, rationale, self.options(view, plan, value, rng),
                        objects=list(mentions))


@register
class PairDistance(_Metric):
    """About how far apart are two named objects (centre to centre), in metres?"""

    id = "single.metric_pair_distance"
    templates = (
        Template("how_far_apart", "About how far apart are {a} and {b} (centre to centre), in metres?"),
        Template("distance_between", "Roughly what is the distance between the centres of {a} and {b}?"),
        Template("metres_between", "Approximately how many metres separate the centre of {a} from that of {b}?"),
    )

    def _pair_ok(self, view: GraphView, a: Object, b: Object) -> bool:
        named_a, named_b = _named(view, a), _named(view, b)
        if named_a is None or named_b is None or named_a[0] == named_b[0]:
            return False
        if b.id in named_a[1] or a.id in named_b[1] or entangled(view, a.id, b.id):
            return False  # the cup and the table it stands on: one named through the other, or one thing
        return True

    def candidates(self, view: GraphView) -> list[Plan]:
        if not view.graph.metric:
            return []
        plans: list[Plan] = []
        for (a, ma, _), (b, mb, _) in itertools.combinations(metric_objects(view, self.id), 2):
            if len(plans) >= MAX_PAIRS:
                break
            if not self._pair_ok(view, a, b) or math.dist(ma.point, mb.point) < MIN_SEPARATION:
                continue
            lo, hi = sorted((a.id, b.id))
            first = stable_int(f"{view.image_id}|metric pair|{lo}|{hi}") & 1  # one order per pair
            plans.append({"ids": [lo, hi] if first else [hi, lo]})
        return plans

    def solve(self, view: GraphView, plan: Plan) -> Any:
        ids = plan.get("ids")
        if not view.graph.metric or not isinstance(ids, list) or len(ids) != 2 or ids[0] == ids[1]:
            return None
        found = [self._object(view, i) for i in ids]
        if found[0] is None or found[1] is None or not self._pair_ok(view, found[0][0], found[1][0]):
            return None
        distance = math.dist(found[0][1].point, found[1][1].point)
        return significant(distance) if distance >= MIN_SEPARATION else None

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        (a, ma), (b, mb) = (self._object(view, i) for i in plan["ids"])  # type: ignore[misc]
        (ta, mentions_a), (tb, mentions_b) = _named(view, a), _named(view, b)  # type: ignore[misc]
        t = self.pick_template(rng)
        answer = fmt_metres(value)
        rationale = (f"With the camera's {_camera_words(view)}, {_where(view, ta, ma)}; {_where(view, tb, mb)}. "
                     f"The two points are {math.dist(ma.point, mb.point):.2f} m apart. So the answer is: {answer}.")
        return Realized(t.id, t.text.format(a=ta, b=tb), answer, rationale, self.options(view, plan, value, rng),
                        objects=list(dict.fromkeys(mentions_a + mentions_b)))


DIMENSIONS = {"height": ("tall", "height", "vertical", "fy"), "width": ("wide", "width", "horizontal", "fx")}
"""Dimension -> (adjective, noun, direction, focal length) as questions and rationales write them."""


@register
class ObjectSize(_Metric):
    """About how tall (wide) is a named object, in metres, as seen at its depth?"""

    id = "single.metric_size"
    templates = (
        Template("how_tall", "About how tall is {obj}, in metres?"),
        Template("height_of", "Roughly what is the height of {obj} in metres?"),
        Template("how_wide", "About how wide is {obj}, in metres?"),
        Template("width_of", "Roughly what is the width of {obj} in metres?"),
    )
    template_ids = {"height": ("how_tall", "height_of"), "width": ("how_wide", "width_of")}

    def candidates(self, view: GraphView) -> list[Plan]:
        """One dimension per object (drawn by a hash of the image and object among those it can be measured
        in): two questions about one object's mask would be nearly one fact twice."""
        if not view.graph.metric:
            return []
        plans: list[Plan] = []
        for o, m, _ in metric_objects(view, self.id):
            dims = [d for d in sorted(DIMENSIONS) if (s := m.size(d, view.graph)) is not None and s >= MIN_SIZE]
            if dims:
                plans.append({"object_id": o.id,
                              "dimension": dims[stable_int(f"{view.image_id}|metric size|{o.id}") % len(dims)]})
            else:
                view.abstain(self.id, "its mask is cut by the image border or too small")
        return plans

    def solve(self, view: GraphView, plan: Plan) -> Any:
        dimension = plan.get("dimension")
        if not view.graph.metric or dimension not in DIMENSIONS:
            return None
        found = self._object(view, plan.get("object_id"))
        size = None if found is None else found[1].size(dimension, view.graph)
        return None if size is None or size < MIN_SIZE else significant(size)

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        obj, m = self._object(view, plan["object_id"])  # type: ignore[misc]
        text, mentions = _named(view, obj)  # type: ignore[misc]
        dimension = plan["dimension"]
        _, noun, direction, focal_name = DIMENSIONS[dimension]
        t = self.pick_template(rng, self.template_ids[dimension])
        pixels = m.extent[0 if dimension == "width" else 1]
        focal = getattr(view.graph.camera, focal_name)
        answer = fmt_metres(value)
        rationale = (f"{capitalize(text)} spans {pixels:.0f} pixels in the {direction} direction at a median depth "
                     f"of {m.depth:.2f} m under its mask; with a focal length of {focal:.0f} pixels its {noun} is "
                     f"{pixels:.0f} x {m.depth:.2f} / {focal:.0f} = {pixels * m.depth / focal:.2f} m. "
                     f"So the answer is: {answer}.")
        return Realized(t.id, t.text.format(obj=text), answer, rationale, self.options(view, plan, value, rng),
                        objects=list(mentions))
