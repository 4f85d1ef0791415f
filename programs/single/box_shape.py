"""Apparent shape from the box (VQASynth's tall/short/wide/thin, as the image shows it): does a named
object look taller than it is wide, or wider than it is tall?

Answers come from the box's aspect ratio in pixels with a clear margin: "tall" when the height is at
least :data:`ASPECT_RATIO` times the width, "wide" when the width is at least that times the height;
in between the program abstains. A box touching the image border (within :data:`BORDER` of a side)
may be cut off, so its shape is not the object's: it is not asked about. With a mask, the mask's own
bounding box must agree. Asked as yes/no, once per object, a tall object and a wide one asked with the
same shape word (drawn per pair): as many "yes" as "no" per image, and the shape word in the question
tells nothing about the answer. Metric height and width (VQASynth's "how tall is...") are
``single.metric_size`` (:mod:`programs.single.metric`), asked only where the graph carries metric depth and
camera intrinsics.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scene_graphs.model import Object

from ..base import YES_NO, GraphView, Plan, Program, Realized, Template, register
from ..common import box_text, hashed_order
from ..grammar import capitalize
from .compare_attributes import as_many_of_each
from .objects import spatial_by_id, spatial_pool

ASPECT_RATIO = 1.5
"""Least ratio of the longer side of the box to the shorter for "tall" / "wide"."""
BORDER = 0.01
"""Share of the image side within which a box edge counts as touching the border (maybe cut off)."""
SHAPES = {"tall": ("tall and narrow", "taller than wide"), "wide": ("wide and low", "wider than tall")}
"""Shape -> (adjectives, comparison) as questions write them."""


def _shape_of(width: float, height: float) -> str | None:
    if width <= 0 or height <= 0:
        return None
    if height >= ASPECT_RATIO * width:
        return "tall"
    if width >= ASPECT_RATIO * height:
        return "wide"
    return None


def box_shape(view: GraphView, obj: Object) -> str | None:
    """``tall`` / ``wide`` for an uncut box with a clear aspect ratio (mask agreeing), else ``None``."""
    def build() -> str | None:
        b, w, h = obj.box, view.width, view.height
        if b.x1 <= BORDER * w or b.y1 <= BORDER * h or b.x2 >= (1 - BORDER) * w or b.y2 >= (1 - BORDER) * h:
            return None
        shape = _shape_of(b.width, b.height)
        if shape is None or obj.mask is None:
            return shape
        m = obj.mask.bbox()
        sx, sy = w / obj.mask.width, h / obj.mask.height  # the mask may be stored at another resolution
        mask_shape = _shape_of(m.width * sx, m.height * sy)
        return shape if mask_shape == shape else None
    return view.memo(("box_shape", obj.id), build)


@register
class BoxShape(Program):
    """Yes/no: does a named object look taller than wide (wider than tall) in the image?"""

    id = "single.box_shape"
    family = "spatial"
    answer_type = YES_NO
    num_options = 2
    templates = (
        Template("looks_shape", "Does {obj} look {adjectives} in this image?"),
        Template("is_compared", "In the picture, is {obj} {comparison}?"),
        Template("box_compared", "Is the region that {obj} takes up in the image {comparison}?"),
    )

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        """One question per object (one fact, one question), objects paired a tall one with a wide one and
        each pair asked with one shape word drawn per pair: every pair gives a "yes" and a "no" under the
        same word, so neither the answer nor the word asked tells the other."""
        shaped = {"tall": [], "wide": []}  # type: dict[str, list[str]]
        for o, _ in spatial_pool(view):
            shape = box_shape(view, o)
            if shape is not None:
                shaped[shape].append(o.id)
        out: list[tuple[Plan, Any]] = []
        for tall, wide in zip(shaped["tall"], shaped["wide"]):
            asked = hashed_order(view, f"{self.id}|{tall}|{wide}", sorted(SHAPES))[0]
            out.append(({"object_id": tall, "shape": asked}, asked == "tall"))
            out.append(({"object_id": wide, "shape": asked}, asked == "wide"))
        return as_many_of_each(out)

    def solve(self, view: GraphView, plan: Plan) -> Any:
        oid, asked = plan.get("object_id"), plan.get("shape")
        if asked not in SHAPES or oid not in spatial_by_id(view):
            return None
        shape = box_shape(view, view.by_id[oid])
        return None if shape is None else shape == asked

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        o, ref = spatial_by_id(view)[plan["object_id"]]
        adjectives, comparison = SHAPES[plan["shape"]]
        t = self.pick_template(rng)
        answer = "yes" if value else "no"
        shape = box_shape(view, o)
        rationale = (f"{capitalize(ref.text)} is at {box_text(view, o)}: its box is {o.box.width:.0f} pixels wide "
                     f"and {o.box.height:.0f} pixels tall, so it looks {SHAPES[shape][1]}. "  # type: ignore[index]
                     f"So the answer is: {answer}.")
        return Realized(t.id, t.text.format(obj=ref.text, adjectives=adjectives, comparison=comparison), answer,
                        rationale, ["no" if value else "yes"], objects=list(ref.mentions))
