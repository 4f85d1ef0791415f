"""One legibility gate (programs.legibility.quotable) for every text any program quotes, single or multi."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from programs.base import GraphView, ProgramConfig, get_program, load_all, run_single, single_programs
from programs.legibility import READ_SCORE, legible
from programs.multi.common import run_multi
from programs.single.text import SIGN_WORDS
from scene_graphs.model import Box, Object, SceneGraph, TextRegion
from scene_graphs.synthetic import random_graph
from tests.strategies import with_evidence

CONFIG = ProgramConfig(seed=3, max_per_image=50)

# what the sample photos' OCR and imported graphs carry and no program may quote (multi.which_image_has_text
# quoted the first three before the gate was shared)
UNQUOTABLE = ["C000", "X1", "M15OL/SUTLLR", "C3", "**", "MaST", "SUTLLLR", "In mins oo ctico e pln", "0", "A"]
QUOTABLE = ["MADRID", "cero emisiones", "EXIT", "Bus 42", "Gate C3", "10:30", "No Entry", "42"]


@pytest.mark.parametrize("text", UNQUOTABLE)
def test_unjudgeable_strings_are_not_legible(text: str) -> None:
    assert not legible(text)


@pytest.mark.parametrize("text", QUOTABLE)
def test_words_and_numbers_are_legible(text: str) -> None:
    assert legible(text)


def _text_graph(iid: str, *regions: tuple[str, float]) -> SceneGraph:
    texts = tuple(TextRegion(f"t{i}", t, Box(5, 5 + 10 * i, 60, 12 + 10 * i), s) for i, (t, s) in enumerate(regions))
    return SceneGraph(iid, 100, 100, objects=(Object("o", "sign", Box(0, 0, 80, 80), 0.9),), text=texts,
                      fields=frozenset({"objects", "text"}))


@pytest.mark.parametrize("garbled", ["C000", "X1", "M15OL/SUTLLR"])
def test_which_image_has_text_never_quotes_garbled_ocr(garbled: str) -> None:
    """Well-read codes and garbled lines (score 0.99) are refused, and each refusal is counted."""
    program = get_program("multi.which_image_has_text")
    views = [GraphView(_text_graph("a", (garbled, 0.99), ("EXIT", 0.95)), CONFIG),
             GraphView(_text_graph("b", ("HOTEL", 0.95)), CONFIG)]
    texts = {p["text"] for p in program.candidates(program.subject(views))}
    assert texts == {"EXIT", "HOTEL"}
    assert any("abstained multi.which_image_has_text" in k for k in views[0].stats), dict(views[0].stats)


_STRINGS = st.sampled_from(UNQUOTABLE + QUOTABLE + list(SIGN_WORDS[:6]))
_SCORES = st.sampled_from([0.3, 0.6, 0.79, 0.8, 0.95, 1.0])
SINGLE_TEXT = single_programs(["text", "single.dense_caption"])
assert "multi.which_image_has_text" in load_all()


def _with_text(seed: int, iid: str, regions: list[tuple[str, float]]) -> SceneGraph:
    g = random_graph(np.random.default_rng(seed), iid, text=False, depth=False, masks=False)
    boxes = [o.box for o in g.objects] or [Box(0, 0, g.width, g.height)]
    texts = []
    for i, (t, s) in enumerate(regions):
        b = boxes[i % len(boxes)]
        texts.append(TextRegion(f"t{i}", t, Box(b.x1, b.y1, b.x1 + (b.x2 - b.x1) / 2, b.y1 + (b.y2 - b.y1) / 2), s,
                                g.objects[i % len(g.objects)].id if g.objects and i % 2 else None))
    g = g.replace(text=tuple(texts), fields=g.fields | {"text"})
    return with_evidence(g, np.random.default_rng(seed), share=0.8)


def _quoted(record_text: str) -> list[str]:
    return re.findall(r'"([^"]+)"', record_text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**16), st.lists(st.lists(st.tuples(_STRINGS, _SCORES), max_size=4), min_size=2, max_size=3))
def test_every_quoted_text_passes_the_gate(seed: int, per_image: list[list[tuple[str, float]]]) -> None:
    """Any string a text program quotes (question, answer, rationale) is legible and read at least
    READ_SCORE in some region (or is a sign word named as a negative)."""
    graphs = [_with_text(seed + k, f"g{k}", regions) for k, regions in enumerate(per_image)]
    read = [t.text for g in graphs for t in g.text if t.score >= READ_SCORE]
    records = []
    stats: Counter = Counter()
    for g in graphs:
        records += run_single(g, CONFIG, SINGLE_TEXT, stats)
    views = [GraphView(g, CONFIG) for g in graphs]
    records += [qa for qa in run_multi(views, CONFIG, [get_program("multi.which_image_has_text")], stats)]
    for qa in records:
        quoted = [q for field in (qa.question, qa.answer, qa.rationale) for q in _quoted(field)]
        if qa.program == "single.text_on_object":
            quoted.append(qa.answer)
        for q in quoted:
            if q.upper() in SIGN_WORDS and qa.program == "single.contains_word":
                continue
            assert legible(q), (qa.program, q, qa.question)
            assert any(q.casefold() in r.casefold() for r in read), (qa.program, q, qa.question)
