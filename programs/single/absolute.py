"""Absolute position (TaskMeAnything's "where in the image"): is a named object in a given one of nine
parts of the image (a 3x3 grid: top left ... bottom right)?

An answer needs the object's box centre at least :data:`CELL_MARGIN` (share of the image side) from
the grid lines of its cell, and at least :data:`CELL_SHARE` of its box inside that cell, so that box
noise cannot move it to a neighbouring part and a large object is never said to be in one part;
"no" needs at most :data:`STRAY_SHARE` of the box in the part asked about. Parts are named so that
none contains another ("top middle", not "top", which a top-left object is also in). Asked as
multiple choice over the nine parts, the answers' uneven spread (objects lie in the centre more
than in corners) would let a text-only model guess; as yes/no with the "no" parts taken from other
objects of the same image, it cannot. The reverse question ("which object is in the top-left
part?") would claim that nothing else is there, which no detector can back; it is not asked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..base import YES_NO, GraphView, Plan, Program, Realized, Template, register
from ..common import box_text, unit_boxes
from ..grammar import capitalize
from .compare_attributes import as_many_of_each
from .objects import spatial_by_id, spatial_pool

ROWS = ("top", "middle", "bottom")
COLUMNS = ("left", "middle", "right")
CELL_MARGIN = 0.05
"""Least distance (share of the image side) of the box centre from its cell's grid lines."""
CELL_SHARE = 0.6
"""Least share of the box's area inside its cell."""
STRAY_SHARE = 0.1
"""Most share of the box's area inside a part for "no, it is not in that part"."""


def part_name(row: int, column: int) -> str:
    """``top left`` ... ``bottom right``; the centre cell is ``center``."""
    if row == 1 and column == 1:
        return "center"
    return f"{ROWS[row]} {COLUMNS[column]}"


PARTS = tuple(part_name(r, c) for r in range(3) for c in range(3))


def _cell(lo: float, hi: float) -> int | None:
    """The third of [0, 1] holding the interval's centre clear of the grid lines, or ``None``."""
    centre = (lo + hi) / 2
    if min(abs(centre - 1 / 3), abs(centre - 2 / 3)) < CELL_MARGIN:
        return None  # the image's own edges are no grid lines: a centre near them is clearly placed
    return min(2, max(0, int(centre * 3)))


def _cell_share(view: GraphView, object_id: str, row: int, column: int) -> float:
    """Share of the object's box area inside cell (``row``, ``column``) of the 3x3 grid."""
    x1, y1, x2, y2 = unit_boxes(view)[object_id]
    area = (x2 - x1) * (y2 - y1)
    ix = max(0.0, min(x2, (column + 1) / 3) - max(x1, column / 3))
    iy = max(0.0, min(y2, (row + 1) / 3) - max(y1, row / 3))
    return ix * iy / area if area > 0 else 0.0


def image_part(view: GraphView, object_id: str) -> str | None:
    """The part of the image the object clearly lies in (see module docstring), or ``None``."""
    x1, y1, x2, y2 = unit_boxes(view)[object_id]
    column, row = _cell(x1, x2), _cell(y1, y2)
    if column is None or row is None or _cell_share(view, object_id, row, column) < CELL_SHARE:
        return None
    return part_name(row, column)


@register
class InImagePart(Program):
    """Yes/no: is a named object in a given part of the image (3x3 grid)? The parts asked about in "no"
    questions are those of other objects of the same image, so that the part named in a question (like
    the answer's vocabulary in multiple choice) tells nothing: both answers draw parts from one process."""

    id = "single.in_image_part"
    family = "spatial"
    answer_type = YES_NO
    num_options = 2
    templates = (
        Template("is_in_part", "Is {obj} in the {part} part of the image?"),
        Template("grid_cell", "If the image is divided into a 3x3 grid, is {obj} in the {part} cell?"),
        Template("can_be_found", "Can {obj} be found in the {part} part of the picture?"),
    )

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        placed = [(o.id, part) for o, _ in spatial_pool(view) if (part := image_part(view, o.id)) is not None]
        out: list[tuple[Plan, Any]] = []
        for oid, part in placed:
            out.append(({"object_id": oid, "part": part}, True))
            for other in dict.fromkeys(p for i, p in placed if i != oid and p != part):
                plan = {"object_id": oid, "part": other}
                if self.solve(view, plan) is False:
                    out.append((plan, False))
        return as_many_of_each(out)

    def solve(self, view: GraphView, plan: Plan) -> Any:
        oid, part = plan["object_id"], plan["part"]
        if oid not in spatial_by_id(view) or part not in PARTS:
            return None
        actual = image_part(view, oid)
        if actual is None:
            return None
        if actual == part:
            return True
        row, column = divmod(PARTS.index(part), 3)
        return False if _cell_share(view, oid, row, column) <= STRAY_SHARE else None

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        o, ref = spatial_by_id(view)[plan["object_id"]]
        t = self.pick_template(rng)
        actual = image_part(view, o.id)
        cx, cy = o.box.center
        answer = "yes" if value else "no"
        rationale = (f"{capitalize(ref.text)} is at {box_text(view, o)}, centred at "
                     f"({cx / view.width:.2f}, {cy / view.height:.2f}): in a 3x3 grid of the image most of its "
                     f"box lies in the {actual} cell. So the answer is: {answer}.")
        return Realized(t.id, t.text.format(obj=ref.text, part=plan["part"]), answer, rationale,
                        ["no" if value else "yes"], objects=list(ref.mentions))
