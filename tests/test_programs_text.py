"""Text family: what a sign says, which object carries a text, how many texts, does a word appear."""

from __future__ import annotations

import re

import numpy as np
import pytest

from programs.base import GraphView, get_program
from programs.single.text import legible, word_like
from scene_graphs.model import Box, Object, SceneGraph, TextRegion
from scene_graphs.model import Search
from tests.strategies import with_evidence
from tests.test_programs_relations import CONFIG, graphs, realized, resolve, template_fields

_RNG = np.random.default_rng(6)
GRAPHS = [with_evidence(g, _RNG, share=0.8) for g in graphs(200, seed=6, text=True, relations=False)]
"""Most with a detector's and a text reader's search recorded (so "0 texts" can be said), some without."""
MIN, CONF = CONFIG.min_score, CONFIG.confident_score
READ = 0.8
"""Text is quoted only from regions read at least this well (``programs.single.text.READ_SCORE``)."""

# OCR output of the bundled sample photos: what may be quoted and asked about, and what may not
OCR_LEGIBLE = ["MADRID", "cero", "emisiones", "COMO HOPPER", "Region-based segmentation", "42", "Gate C3", "10:30",
               "histogram of grey values:", "No Entry", "café"]
OCR_GARBLED = ["**", "***", "C3", "C000", "X1", "MaST", "eléctricamEMTe", "M15OL/SUTLLR", "In mins oo ctico e pln",
               "markers = np.zeros like(coins)"]


def fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def owned_by(view: GraphView, obj: Object) -> list[TextRegion]:
    """Visible regions attached to the object, or without an object and inside its box (and no
    smaller box)."""
    return [t for t in view.graph.text if t.score >= MIN and _carrier(view, t) == obj.id]


def over(view: GraphView, obj: Object) -> list[TextRegion]:
    """Visible regions lying at least half inside the object's box."""
    return [t for t in view.graph.text
            if t.score >= MIN and t.box.area and t.box.intersection(obj.box) / t.box.area >= 0.5]


def _carrier(view: GraphView, t: TextRegion) -> str | None:
    if t.object is not None:
        return t.object
    holders = sorted((o for o in view.objects if o.box.contains_box(t.box)), key=lambda o: o.box.area)
    return holders[0].id if holders else None


def test_text_on_object():
    n = 0
    for view, plan, value, r in realized("single.text_on_object", GRAPHS):
        obj = view.by_id[plan["object_id"]]
        assert resolve(view, template_fields("single.text_on_object", r)["obj"]) == {obj.id}
        on = owned_by(view, obj)
        assert len(on) == 1 and on[0].score >= READ and obj.score >= CONF
        assert {t.id for t in over(view, obj)} <= {on[0].id}
        assert r.answer == value == on[0].text.strip()
        # the options are the image's other readable texts only (never made-up filler beside a real reading)
        others = {fold(t.text.strip()) for t in view.text if t.score >= READ} - {fold(value)}
        assert all(fold(d) != fold(value) and fold(d) in others for d in r.options), (r.options, others)
        # they take the answer's letter case, so case never gives the answer away
        if value.isupper():
            assert all(d == d.upper() for d in r.options), r.options
        elif value.islower():
            assert all(d == d.lower() for d in r.options), r.options
        n += 1
    assert n > 25


def test_object_with_text():
    n = 0
    for view, plan, value, r in realized("single.object_with_text", GRAPHS):
        text = template_fields("single.object_with_text", r)["text"]
        assert text == plan["text"]
        same = [t for t in view.graph.text if fold(t.text) == fold(text)]
        carriers = {_carrier(view, t) for t in same}
        assert len(carriers) == 1 and all(t.score >= MIN for t in same)
        carrier = view.by_id[carriers.pop()]
        assert carrier.score >= CONF and r.answer == value == carrier.label
        assert any(t.score >= READ for t in same), "only well-read text is quoted"
        for label in r.options:
            assert label != value
            assert not any(o.box.intersection(t.box) > 0 for o in view.objects if o.label == label for t in same)
        n += 1
    assert n > 40


def test_count_text():
    n = 0
    for view, plan, value, r in realized("single.count_text", GRAPHS):
        visible = [t for t in view.graph.text if t.score >= MIN]
        assert all(t.score >= READ for t in visible), "a poorly read region makes the count unsure"
        assert value == len(visible) and r.answer == str(value)
        assert str(value) not in r.options and len(r.options) >= 3 and all(int(o) >= 0 for o in r.options)
        n += 1
    assert n > 40
    view_stats = {}
    for g in GRAPHS:
        view = GraphView(g, CONFIG)
        get_program("single.count_text").candidates(view)
        view_stats.update(view.stats)
    assert any("uncertain text" in k for k in view_stats), "uncertain text must be an abstention"


def test_count_text_zero_only_when_the_reader_searched_and_saw_nothing():
    searched = (Search("ocr", ("text",), 0.5, 0.05),)
    g = SceneGraph("empty", 100, 80, objects=(Object("o1", "cup", Box(0, 0, 10, 10)),), text=(),
                   fields=frozenset({"objects", "text"}), evidence=searched)
    [(_, _, value, r)] = list(realized("single.count_text", [g]))
    assert value == 0 and r.answer == "0"
    assert not list(realized("single.count_text", [g.replace(fields=frozenset({"objects"}))]))
    # no recorded search (an import), or a faint unread candidate: "0" would claim more than is known
    assert not list(realized("single.count_text", [g.replace(evidence=())]))
    faint = (Search("ocr", ("text",), 0.5, 0.05, {"text": 0.3}, {"text": 2}),)
    assert not list(realized("single.count_text", [g.replace(evidence=faint)]))


def test_contains_word():
    answers = {"yes": 0, "no": 0}
    for view, plan, value, r in realized("single.contains_word", GRAPHS):
        word = template_fields("single.contains_word", r)["word"]
        assert word == plan["word"] == word.upper()
        if value == "yes":
            tokens = {w.casefold() for t in view.graph.text if t.score >= READ for w in re.findall(r"\w+", t.text)}
            assert word.casefold() in tokens and len(word) >= 3 and word.isalpha()
        else:
            assert not any(word.casefold() in fold(t.text) for t in view.graph.text)
        assert r.options == ["no" if value == "yes" else "yes"]
        answers[value] += 1
    assert answers["yes"] > 50 and answers["no"] > 50, answers


def test_uncertain_text_is_never_read_out():
    lowered = [g.replace(text=tuple(TextRegion(t.id, t.text, t.box, 0.4, t.object) for t in g.text))
               for g in GRAPHS if g.text]
    for pid in ("single.text_on_object", "single.object_with_text", "single.count_text"):
        assert not list(realized(pid, lowered)), pid
    assert all(v == "no" for _, _, v, _ in realized("single.contains_word", lowered))


@pytest.mark.parametrize("text", OCR_LEGIBLE)
def test_legible_text(text):
    assert legible(text)


@pytest.mark.parametrize("text", OCR_GARBLED)
def test_garbled_text_is_not_legible(text):
    assert not legible(text)


@pytest.mark.parametrize("word, ok", [("MADRID", True), ("cero", True), ("Hotel", True), ("PLN", False),
                                      ("pln", False), ("MaST", False), ("ab", False), ("C3PO", False),
                                      ("emisiones", True)])
def test_word_like(word, ok):
    assert word_like(word) is ok


def test_garbled_and_poorly_read_text_is_never_quoted():
    """The sample bus photo's OCR: only the well-read, word-like words are asked about and quoted."""
    objects = (Object("bus", "bus", Box(10, 10, 190, 90)),)
    read = [("M15OL/SUTLLR", 0.738), ("EMT", 0.916), ("In mins oo ctico e pln", 0.534), ("MADRID", 0.998),
            ("eléctricamEMTe", 0.997), ("MaST", 0.682), ("cero", 0.998), ("emisiones", 1.0)]
    regions = tuple(TextRegion(f"t{i}", text, Box(20 + 10 * i, 20, 28 + 10 * i, 30), score, "bus")
                    for i, (text, score) in enumerate(read))
    g = SceneGraph("bus", 200, 100, objects=objects, text=regions, fields=frozenset({"objects", "text"}))
    view = GraphView(g, CONFIG)
    words = {p["word"] for p in get_program("single.contains_word").candidates(view)
             if get_program("single.contains_word").solve(view, p) == "yes"}
    assert words == {"EMT", "MADRID", "CERO", "EMISIONES"}  # EMT really is on the bus (well read)
    texts = {p["text"] for p in get_program("single.object_with_text").candidates(view)}
    assert texts <= {"EMT", "MADRID", "cero", "emisiones"} and "MADRID" in texts
    for view_, plan, value, r in realized("single.dense_caption", [g]):
        for garbled in ("PLN", "pln", "MaST", "M15OL", "eléctricamEMTe"):
            assert garbled not in r.answer
