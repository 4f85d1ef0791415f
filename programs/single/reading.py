"""Text-rich images (LLaVAR-style): what the text at a region says, which of a few lines comes first or
last in reading order, and a transcription of all the text.

Every quoted string passes the one legibility gate (:func:`programs.legibility.quotable`). Beyond it:

* region to text: no other text region of the graph (at any score) overlaps the region asked about, so
  the box names one text;
* reading order: 2-3 quotable lines of one column (their boxes overlap horizontally) whose boxes are
  apart vertically by :data:`LINE_GAP` of the image height, with different texts; two lines make one
  question ("first" or "last", not both: one fact), three make two;
* transcription: claims *all* the text, so every region of the graph at any score must be quotable and a
  text reader's search must be recorded with no faint unread candidate (as ``single.count_text``); the
  lines must read in one order: regions side by side on one row only when there is a single row, rows
  apart vertically. Free-form only.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from scene_graphs.model import TextRegion

from ..base import GraphView, Plan, Program, Realized, Template, register
from ..common import hashed_order
from ..grammar import fmt_box, join
from ..legibility import quotable, quotable_regions
from .objects import MAX_PLANS
from .text import TEXT_LABEL, _casefold

LINE_GAP = 0.005
"""Least vertical gap between two lines' boxes (share of the image height) for one to come first."""
MAX_LINES = 12
"""Most lines a transcription quotes."""


def _box(view: GraphView, region: TextRegion) -> str:
    return fmt_box(region.box.normalized(view.width, view.height))


def _quoted(view: GraphView) -> dict[str, TextRegion]:
    """Region id -> region, for the regions programs may quote."""
    def build() -> dict[str, TextRegion]:
        return {r.id: r for r in view.text if quotable(view, r)}
    return view.memo("reading:quoted", build)


@register
class TextAtRegion(Program):
    """What the text at a given box (normalised coordinates) says."""

    id = "single.text_at_region"
    family = "text"
    requires = frozenset({"text"})
    answer_type = "text"
    num_options = 3
    templates = (
        Template("what_says_at", "What does the text at {box} say?"),
        Template("read_region", "Read the text in the region {box}."),
        Template("written_at", "What is written at {box} in the image?"),
    )

    def _region(self, view: GraphView, plan: Plan) -> TextRegion | None:
        region = _quoted(view).get(plan.get("region_id"))  # type: ignore[arg-type]
        if region is None:
            return None
        if any(t.id != region.id and t.box.intersection(region.box) > 0 for t in view.graph.text):
            return None
        return region

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        quotable_regions(view, self.id)  # counts the regions the gate refuses
        out = []
        for rid in hashed_order(view, self.id, sorted(_quoted(view))):
            plan = {"region_id": rid}
            value = self.solve(view, plan)
            if value is not None:
                out.append((plan, value))
        return out[:MAX_PLANS]

    def solve(self, view: GraphView, plan: Plan) -> Any:
        region = self._region(view, plan)
        return None if region is None else region.text.strip()

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        region = self._region(view, plan)
        assert region is not None
        t = self.pick_template(rng)
        box = _box(view, region)
        rationale = f"The text region at {box} reads \"{value}\". So the answer is: {value}."
        others = list(dict.fromkeys(r.text.strip() for r in sorted(_quoted(view).values(), key=lambda r: r.id)
                                    if _casefold(r.text) != _casefold(value)))
        return Realized(t.id, t.text.format(box=box), value, rationale, others)


def _above(view: GraphView, a: TextRegion, b: TextRegion) -> bool:
    """Whether line ``a`` lies wholly above line ``b``, apart by :data:`LINE_GAP`."""
    return a.box.y2 + LINE_GAP * view.height <= b.box.y1


def _one_column(a: TextRegion, b: TextRegion) -> bool:
    return min(a.box.x2, b.box.x2) > max(a.box.x1, b.box.x1)


@register
class ReadingOrder(Program):
    """Which of 2-3 quoted lines of one column comes first (last) when reading from top to bottom."""

    id = "single.reading_order"
    family = "text"
    requires = frozenset({"text"})
    answer_type = "text"
    num_options = 3
    templates = (
        Template("comes_which", "Reading from top to bottom, which of these lines comes {which}: {lines}?"),
        Template("read_which", "Which of {lines} is read {which} in this image?"),
        Template("order_which", "Of the lines {lines_and}, which one comes {which} in reading order?"),
    )

    def _lines(self, view: GraphView, plan: Plan) -> list[TextRegion] | None:
        """The plan's lines from top to bottom, or ``None`` when they do not read in one clear order."""
        ids, which = plan.get("region_ids"), plan.get("which")
        if which not in ("first", "last") or not isinstance(ids, list) or not 2 <= len(ids) <= 3:
            return None
        quoted = _quoted(view)
        if len(set(ids)) != len(ids) or any(i not in quoted for i in ids):
            return None
        lines = sorted((quoted[i] for i in ids), key=lambda r: (r.box.y1, r.id))
        if len({_casefold(r.text) for r in lines}) != len(lines):
            return None
        for a, b in itertools.combinations(lines, 2):
            if not _above(view, a, b) or not _one_column(a, b):
                return None
        return lines

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        quotable_regions(view, self.id)  # counts the regions the gate refuses
        ids = hashed_order(view, self.id, sorted(_quoted(view)))[:8]
        out: list[tuple[Plan, Any]] = []
        for k in (3, 2):
            if out:
                break  # three lines found: their pairs would ask the same facts again
            for group in itertools.combinations(ids, k):
                order = hashed_order(view, f"{self.id}|{group}", list(group))
                # two lines: one fact, asked once ("first" or "last" drawn per pair); three: two facts
                both = ["first", "last"]
                asked = both if k == 3 else hashed_order(view, f"{self.id}|{group}|w", both)[:1]
                for which in asked:
                    plan = {"region_ids": order, "which": which}
                    value = self.solve(view, plan)
                    if value is not None:
                        out.append((plan, value))
                if len(out) >= MAX_PLANS:
                    return out
        return out

    def solve(self, view: GraphView, plan: Plan) -> Any:
        lines = self._lines(view, plan)
        if lines is None:
            return None
        return (lines[0] if plan["which"] == "first" else lines[-1]).text.strip()

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        lines = self._lines(view, plan)
        assert lines is not None
        by_id = _quoted(view)
        texts = [f"\"{by_id[i].text.strip()}\"" for i in plan["region_ids"]]
        t = self.pick_template(rng)
        listed = "; ".join(f"\"{r.text.strip()}\" at {_box(view, r)}" for r in lines)
        rationale = (f"From top to bottom the lines are: {listed}. The {plan['which']} one is \"{value}\". "
                     f"So the answer is: {value}.")
        question = t.text.format(which=plan["which"], lines=join(texts, "or"), lines_and=join(texts))
        return Realized(t.id, question, value, rationale,
                        [by_id[i].text.strip() for i in plan["region_ids"] if by_id[i].text.strip() != value])


def _rows(view: GraphView, regions: list[TextRegion]) -> list[list[TextRegion]] | None:
    """Regions grouped into rows read top to bottom, each row left to right; ``None`` when the order is
    unclear (rows overlapping vertically, regions of a row overlapping, or several rows of several regions:
    maybe columns)."""
    rows: list[list[TextRegion]] = []
    for r in sorted(regions, key=lambda r: (r.box.y1, r.box.x1, r.id)):
        cy = (r.box.y1 + r.box.y2) / 2
        row = next((row for row in rows if row[0].box.y1 <= cy <= row[0].box.y2), None)
        if row is None:
            rows.append([r])
        else:
            row.append(r)
    for row in rows:
        row.sort(key=lambda r: (r.box.x1, r.id))
        if any(a.box.x2 > b.box.x1 for a, b in zip(row, row[1:])):
            return None
    for upper, lower in zip(rows, rows[1:]):
        if max(r.box.y2 for r in upper) > min(r.box.y1 for r in lower):
            return None
    if len(rows) > 1 and any(len(row) > 1 for row in rows):
        return None
    return rows


@register
class TranscribeText(Program):
    """All the text of the image, line by line, top to bottom (free-form)."""

    id = "single.transcribe_text"
    family = "text"
    requires = frozenset({"text"})
    answer_type = "transcription"
    num_options = 0
    templates = (
        Template("transcribe", "Transcribe all the text in this image."),
        Template("write_out", "What text appears in the image? Write it out line by line."),
        Template("read_all", "Read out everything that is written in the picture, from top to bottom."),
    )

    def candidates(self, view: GraphView) -> list[Plan]:
        if not view.text:
            return []
        if not all(quotable(view, t) for t in view.graph.text):
            view.abstain(self.id, "some text not legible or not read well enough to quote")
            return []
        if not view.graph.searched_for(TEXT_LABEL) or view.graph.faint_count(TEXT_LABEL):
            view.abstain(self.id, "no evidence that the reader saw all the text")
            return []
        return [{"what": "all text"}]

    def _rows(self, view: GraphView) -> list[list[TextRegion]] | None:
        if not view.text or len(view.text) > MAX_LINES:
            return None
        if not all(quotable(view, t) for t in view.graph.text):
            return None
        if not view.graph.searched_for(TEXT_LABEL) or view.graph.faint_count(TEXT_LABEL):
            return None
        return _rows(view, list(view.text))

    def solve(self, view: GraphView, plan: Plan) -> Any:
        if plan.get("what") != "all text":
            return None
        rows = self._rows(view)
        if rows is None:
            return None
        return "\n".join(" ".join(r.text.strip() for r in row) for row in rows)

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        rows = self._rows(view)
        assert rows is not None
        t = self.pick_template(rng)
        listed = "; ".join(f"\"{r.text.strip()}\" at {_box(view, r)}" for row in rows for r in row)
        rationale = (f"The text reader found {len(view.text)} text region(s), all legible: {listed}. Read top to "
                     f"bottom and left to right, the text is as follows. So the answer is:\n{value}")
        return Realized(t.id, t.text, value, rationale)
