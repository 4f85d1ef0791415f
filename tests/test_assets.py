"""The bundled sample assets: images, their SOURCES.md entries and the hand-made scene-graph fixtures."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scene_graphs.ids import file_sha256, image_id
from scene_graphs.io import iter_graphs, read_jsonl
from scene_graphs.model import FIELDS, SceneGraph
from scene_graphs.schema import validate_against_schema

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
IMAGES = ASSETS / "images"
SHARDS = ASSETS / "scene_graphs"
SOURCES_MD = ASSETS / "SOURCES.md"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
MAX_SIDE = 640
MAX_TOTAL_BYTES = 1_500_000
MASK_SLACK = 1.0  # pixels a mask's bounding box may exceed its object's box

IMAGE_FILES = sorted(p for p in IMAGES.rglob("*") if p.is_file())
IMAGE_KEYS = [p.relative_to(IMAGES).as_posix() for p in IMAGE_FILES]
GRAPHS: list[SceneGraph] = list(iter_graphs(SHARDS))
RECORDS = [r for shard in sorted(SHARDS.glob("*.jsonl")) for r in read_jsonl(shard)]


def _sources_entries() -> dict[str, str]:
    """``{path below images/: its section text}`` from SOURCES.md."""
    text = SOURCES_MD.read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    out = {}
    for section in sections:
        m = re.match(r"`images/([^`]+)`", section)
        assert m, f"SOURCES.md section without an `images/...` heading: {section[:60]!r}"
        assert m.group(1) not in out, f"SOURCES.md lists {m.group(1)} twice"
        out[m.group(1)] = section
    return out


# ------------------------------------------------------------------------------------------ images
def test_there_are_enough_images_and_one_is_nested() -> None:
    assert 8 <= len(IMAGE_FILES) <= 12, IMAGE_KEYS
    assert all(p.suffix.lower() in IMAGE_SUFFIXES for p in IMAGE_FILES), IMAGE_KEYS
    assert any("/" in key for key in IMAGE_KEYS), "no image in a sub-folder"


def test_total_size_is_small() -> None:
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    assert total <= MAX_TOTAL_BYTES, f"assets/ weighs {total} bytes"


@pytest.mark.parametrize("key", IMAGE_KEYS)
def test_image_decodes_small_and_without_metadata(key: str) -> None:
    path = IMAGES / key
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        im.load()
        assert im.format == {".png": "PNG"}.get(path.suffix.lower(), "JPEG")
        assert im.mode in ("L", "RGB"), im.mode
        assert max(im.size) <= MAX_SIDE, im.size
        assert min(im.size) >= 64, im.size
        assert not set(im.info) & {"exif", "icc_profile", "comment", "xmp"}, sorted(im.info)
        assert len(im.getexif()) == 0
        pixels = np.asarray(im)
    assert pixels.std() > 10, "image looks blank"


def test_sources_md_lists_exactly_the_images() -> None:
    entries = _sources_entries()
    assert sorted(entries) == IMAGE_KEYS


@pytest.mark.parametrize("key", IMAGE_KEYS)
def test_sources_md_entry_is_complete(key: str) -> None:
    section = _sources_entries()[key]
    for field in ("Origin:", "Licence:", "Processing:", "Credit:"):
        assert f"- {field}" in section, f"{key}: no {field} line"
    assert re.search(r"version \d+\.\d+", section), f"{key}: no package version"
    m = re.search(r"sha256: `([0-9a-f]{64})`", section)
    assert m and m.group(1) == file_sha256(IMAGES / key), f"{key}: sha256 in SOURCES.md is stale"
    with Image.open(IMAGES / key) as im:
        assert f"{im.width}x{im.height}" in section, f"{key}: size in SOURCES.md is stale"


# ---------------------------------------------------------------------------------------- fixtures
def test_fixtures_cover_the_features_tests_need() -> None:
    assert len(GRAPHS) >= 4
    assert len({g.image_id for g in GRAPHS}) == len(GRAPHS), "duplicate image ids"
    assert any(g.has("masks") for g in GRAPHS)
    assert any(g.depth is not None for g in GRAPHS)
    assert any(g.text for g in GRAPHS)
    assert any(g.relations for g in GRAPHS)
    assert any("/" in g.path for g in GRAPHS), "no fixture for a nested image"


@pytest.mark.parametrize("record", RECORDS, ids=[r.get("path", "?") for r in RECORDS])
def test_fixture_record_matches_the_schema(record: dict) -> None:
    validate_against_schema(record)


@pytest.mark.parametrize("graph", GRAPHS, ids=[g.path for g in GRAPHS])
def test_fixture_points_at_its_image(graph: SceneGraph) -> None:
    path = IMAGES / graph.path
    assert path.is_file(), graph.path
    assert graph.path == path.relative_to(IMAGES).as_posix()
    assert graph.image_id == image_id(path, IMAGES)
    assert graph.sha256 == file_sha256(path)
    with Image.open(path) as im:
        assert (graph.width, graph.height) == im.size
    assert graph.provenance.get("annotator") == "hand"


@pytest.mark.parametrize("graph", GRAPHS, ids=[g.path for g in GRAPHS])
def test_fixture_fields_say_what_was_annotated(graph: SceneGraph) -> None:
    assert graph.fields <= set(FIELDS) and "objects" in graph.fields and graph.objects
    assert graph.has("masks") == all(o.mask is not None for o in graph.objects)
    assert graph.has("masks") or all(o.mask is None for o in graph.objects)
    assert graph.has("depth") == (graph.depth is not None)
    assert graph.has("attributes") or not any(o.attributes for o in graph.objects)
    assert graph.has("relations") or not graph.relations
    assert graph.has("text") or not graph.text
    assert all(r.source == "human" and r.score == 1.0 for r in graph.relations)


@pytest.mark.parametrize("graph", GRAPHS, ids=[g.path for g in GRAPHS])
def test_fixture_boxes_lie_inside_the_image(graph: SceneGraph) -> None:
    for item in (*graph.objects, *graph.text):
        b = item.box
        assert 0 <= b.x1 < b.x2 <= graph.width and 0 <= b.y1 < b.y2 <= graph.height, (item.id, b)


@pytest.mark.parametrize("graph", GRAPHS, ids=[g.path for g in GRAPHS])
def test_fixture_masks_lie_inside_their_boxes(graph: SceneGraph) -> None:
    for o in graph.objects:
        if o.mask is None:
            continue
        assert (o.mask.height, o.mask.width) == (graph.height, graph.width)
        assert o.mask.area > 0, o.id
        m = o.mask.bbox()
        b = o.box
        assert (m.x1 >= b.x1 - MASK_SLACK and m.y1 >= b.y1 - MASK_SLACK
                and m.x2 <= b.x2 + MASK_SLACK and m.y2 <= b.y2 + MASK_SLACK), (o.id, m.to_list(), b.to_list())
        # a traced outline should fill a fair part of its box, not be a sliver of it
        assert o.mask.area >= 0.2 * b.area, (o.id, o.mask.area, b.area)


@pytest.mark.parametrize("graph", GRAPHS, ids=[g.path for g in GRAPHS])
def test_fixture_text_lies_on_its_object(graph: SceneGraph) -> None:
    for t in graph.text:
        if t.object is None:
            continue
        b = graph.objects_by_id[t.object].box
        assert b.contains_box(t.box), (t.id, t.box.to_list(), t.object, b.to_list())


def test_fixture_depth_is_consistent() -> None:
    graphs = [g for g in GRAPHS if g.depth is not None]
    for g in graphs:
        assert g.depth.larger_is_nearer
        assert all(o.depth is not None for o in g.objects)
        for o in g.objects:
            assert o.depth == pytest.approx(g.depth.median_in(o.box, g.width, g.height, o.mask), abs=1e-3), o.id
        # the motorcycle stands in front of the shelf behind it (disparity: larger is nearer)
        by_id = g.objects_by_id
        if "motorcycle" in by_id and "shelf" in by_id:
            assert by_id["motorcycle"].depth > by_id["shelf"].depth


def _load_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_assets", REPO / "scripts" / "make_assets.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_assets", module)
    spec.loader.exec_module(module)
    return module


def test_fixtures_are_what_the_script_writes() -> None:
    """The shard on disk is exactly what ``scripts/make_assets.py --fixtures`` builds from its tables."""
    pytest.importorskip("skimage")
    script = _load_script()
    built = {g.image_id: g for g in (script.build_graph(spec) for spec in script.FIXTURES)}
    stored = {g.image_id: g for g in GRAPHS}
    assert sorted(built) == sorted(stored)
    for key, graph in built.items():
        assert graph.to_dict() == stored[key].to_dict(), graph.path
        if graph.depth is not None:
            np.testing.assert_array_equal(graph.depth.values, stored[key].depth.values)


def test_script_sources_table_matches_the_images() -> None:
    script = _load_script()
    assert sorted(s.path for s in script.SOURCES) == IMAGE_KEYS
