"""OCR with RapidOCR's bundled PP-OCR models, and attaching text to the objects that carry it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from scene_graphs.model import Box, Object, SceneGraph
from scene_graphs.perception.images import item_from_array, load_image
from scene_graphs.perception.ocr import TextReader, attach_to_object, plausible_text, regions_from_lines

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets" / "images"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MMGEN_OFFLINE", "1")
    monkeypatch.setenv("MMGEN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def reader() -> TextReader:
    pytest.importorskip("rapidocr")
    return TextReader().load("cpu")


def _graph(item, objects=()) -> SceneGraph:
    return SceneGraph(item.image_id, item.width, item.height, item.path, item.sha256, objects=tuple(objects),
                      fields={"objects"})


def _rendered(words: list[tuple[str, tuple[int, int]]], size=(720, 260)) -> np.ndarray:
    im = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=56)
    for text, xy in words:
        draw.text(xy, text, fill="black", font=font)
    return np.asarray(im)


@pytest.mark.slow
def test_reads_rendered_words_and_attaches_them(reader: TextReader) -> None:
    pixels = _rendered([("HARBOUR", (40, 30)), ("Station 42", (330, 160))])
    sign = Object("sign", "sign", Box(20, 10, 360, 120))       # holds HARBOUR
    wall = Object("wall", "wall", Box(0, 0, 720, 260))         # holds everything
    item = item_from_array(pixels, "sign.png")
    (g,) = reader([item], [_graph(item, (wall, sign))])
    texts = {t.text.lower(): t for t in g.text}
    assert "harbour" in texts and "station 42" in texts, list(texts)
    assert texts["harbour"].object == "sign"       # the smallest object containing it
    assert texts["station 42"].object == "wall"
    h = texts["harbour"].box
    assert Box(30, 20, 360, 110).contains_box(h) and h.width > 150
    assert [t.id for t in g.text] == [f"t{i}" for i in range(len(g.text))]
    assert g.fields == {"objects", "text"}
    prov = g.provenance["stages"]["ocr"]
    assert prov["backend"] == "rapidocr" and prov["models"][0]["origin"] == "bundled"


@pytest.mark.slow
@pytest.mark.parametrize("name, words", [
    ("text_printed_page.png", ["segmentation", "markers"]),   # skimage's page of text
    ("street_bus.jpg", ["cero", "emisiones"]),                 # the words on the bus (the small MADRID is
                                                               # missed at the image's own resolution)
])
def test_reads_known_words_in_photos(reader: TextReader, name: str, words: list[str]) -> None:
    path = ASSETS / name
    if not path.is_file():
        pytest.skip(f"{path} is not there")
    item = load_image(path, ASSETS)
    (g,) = reader([item], [_graph(item)])
    found = " ".join(t.text.lower() for t in g.text)
    for w in words:
        assert w in found, found
    assert all(t.object is None for t in g.text)  # no objects in this graph


def test_blank_image_gives_no_text(reader: TextReader) -> None:
    item = item_from_array(np.full((64, 64, 3), 255, np.uint8), "blank.png")
    (g,) = reader([item], [_graph(item)])
    assert g.text == () and g.has("text")  # looked, found none


@pytest.mark.parametrize("text_box, expected", [
    (Box(110, 110, 130, 120), "small"),   # inside both: the smaller wins
    (Box(10, 10, 50, 30), "big"),         # only inside the big one
    (Box(185, 110, 230, 120), None),      # sticks out of "small" by half, and out of "big": nobody
    (Box(190, 150, 205, 160), None),      # 10/15 inside "big": under the 0.8 needed
    (Box(50, 50, 50, 60), "big"),         # zero width: the object holding its centre
])
def test_attach_to_smallest_containing_object(text_box: Box, expected) -> None:
    objects = [Object("big", "bus", Box(0, 0, 200, 200)), Object("small", "sign", Box(100, 100, 190, 140))]
    assert attach_to_object(text_box, objects, 0.8) == expected


def test_regions_filter_sort_and_clip() -> None:
    lines = [
        (np.array([[300, 50], [400, 50], [400, 80], [300, 80]]), " second  line ", 0.9),
        (np.array([[10, 10], [120, 12], [118, 40], [8, 38]]), "first", 0.95),
        (np.array([[10, 100], [50, 100], [50, 120], [10, 120]]), "weak", 0.3),
        (np.array([[-5, 200], [60, 200], [60, 260], [-5, 260]]), "edge", 0.8),
        (np.array([[0, 0], [1, 0], [1, 1], [0, 1]]), "   ", 0.99),
    ]
    regions = regions_from_lines(lines, 500, 240, [], min_score=0.5, contain=0.8)
    assert [r.text for r in regions] == ["first", "second line", "edge"]
    assert regions[0].box == Box(8, 10, 120, 40)
    assert regions[2].box == Box(0, 200, 60, 240)


def test_paddle_backend_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from scene_graphs.perception.base import MissingDependencyError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in {"paddleocr", "paddle"} else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"mmgen\[ocr-paddle\]"):
        TextReader(model="paddleocr").load("cpu")


# ---------------------------------------------------------------- the legibility gate
@pytest.mark.parametrize("text, legible", [
    ("cero emisiones", True), ("MADRID", True), ("YAMAHA", True), ("Region-based segmentation", True),
    ("markers = np.zeros_like(coins)", True), ("Station 42", True), ("2024", True), ("EMT", True),
    # misreads the default profile used to quote (bundled photos)
    ("C000", False), ("X1", False), ("***", False), ("**", False), ("O", False), ("1", False), ("8", False),
    ("M15OL/SUTLLR", False), ("In mins oo ctico e pln", False), ("the o sr e t te re s the", False),
    ("eléctricamEMTe", False), ("", False), ("zqxwv kjhgf", False),
])
def test_plausible_text(text: str, legible: bool) -> None:
    pytest.importorskip("wordfreq")
    assert plausible_text(text) is legible


def test_regions_need_score_and_legibility() -> None:
    pytest.importorskip("wordfreq")
    square = np.array([[0, 0], [40, 0], [40, 10], [0, 10]])
    lines = [(square, "cero", 0.99), (square, "C000", 0.99), (square, "emisiones", 0.6)]
    kept = regions_from_lines(lines, 100, 100, [], min_score=0.8, contain=0.8, legible=plausible_text)
    assert [t.text for t in kept] == ["cero"]


@pytest.mark.slow
@pytest.mark.parametrize("name, banned", [
    ("people_grace_hopper.jpg", {"***", "**", "X1"}),
    ("people_cameraman.jpg", {"C000"}),
    ("objects_greek_coins.jpg", {"O"}),
    ("street_bus.jpg", {"M15OL/SUTLLR", "MaST", "In mins oo ctico e pln"}),
    ("text_printed_page.png", {"the o sr e t te re s the"}),
])
def test_photos_keep_no_illegible_string(reader: TextReader, name: str, banned: set[str]) -> None:
    item = load_image(ASSETS / name, ASSETS)
    (g,) = reader([item], [_graph(item)])
    texts = {t.text for t in g.text}
    assert not texts & banned, texts
    assert all(plausible_text(t) and r.score >= 0.8 for t, r in ((r.text, r) for r in g.text))


@pytest.mark.slow
def test_recognition_sees_only_accepted_boxes(reader: TextReader) -> None:
    """Squarish and tiny detections never reach the recogniser."""
    item = load_image(ASSETS / "people_grace_hopper.jpg", ASSETS)
    boxes = reader.text_boxes(item)
    assert boxes and all(np.ptp(b[:, 0]) >= 1.4 * np.ptp(b[:, 1]) >= 1.4 * 8 for b in boxes)


@pytest.mark.slow
def test_reader_records_its_search_for_text(reader: TextReader) -> None:
    """Unread or illegible text boxes are faint candidates of "text"; a photo without any text box
    confirms that there is no text."""
    bus = load_image(ASSETS / "street_bus.jpg", ASSETS)
    cat = load_image(ASSETS / "more" / "animal_cat_chelsea.jpg", ASSETS)
    g_bus, g_cat = reader([bus, cat], [_graph(bus), _graph(cat)])
    (s,) = g_bus.evidence
    assert s.annotator == "ocr" and s.vocabulary == ("text",) and s.threshold == 0.8
    assert g_bus.faint_count("text") >= 1 and 0.05 <= s.best_below["text"] < 0.8   # e.g. "eléctricamEMTe"
    assert not g_bus.confirms_absent("text")
    assert not g_cat.text and g_cat.confirms_absent("text")


def test_onnxruntime_sessions_use_half_the_cores(reader: TextReader) -> None:
    """The OCR reads ahead while the detector runs, so its onnxruntime sessions take half the cores
    (onnxruntime's default, every core with spinning threads, only burns CPU on a shared machine)."""
    from scene_graphs.perception.ocr import onnx_threads

    item = load_image(ASSETS / "text_printed_page.png", ASSETS)
    reader.read_batch([item])  # RapidOCR makes its sessions on first use
    engine = reader.engine
    for part in (engine.text_det, engine.text_rec):
        assert part.session.session.get_session_options().intra_op_num_threads == onnx_threads()
    assert onnx_threads() >= 1 and onnx_threads() <= max(1, (os.cpu_count() or 1) // 2)


def test_read_ahead_consults_the_legibility_gate_and_changes_no_region(reader: TextReader) -> None:
    """The gate's word lists (about a second to load) are consulted in the read-ahead (the pipeline's
    background thread), and the regions are those of reading in turn."""
    from scene_graphs.perception.ocr import word_zipf

    item = load_image(ASSETS / "text_printed_page.png", ASSETS)
    word_zipf.cache_clear()
    ahead = reader.read_ahead([item])
    assert word_zipf.cache_info().currsize > 10  # the words of the page were looked up
    (with_ahead,) = reader([item], [_graph(item)], ahead)
    (in_turn,) = reader([item], [_graph(item)])
    assert with_ahead.text == in_turn.text and len(in_turn.text) >= 3
    assert [e.to_dict() for e in with_ahead.evidence] == [e.to_dict() for e in in_turn.evidence]
