"""The ``vlm`` annotate stage against a fake OpenAI-compatible server on 127.0.0.1 that checks the image
part of every request: attributes and relations land with ``source: "vlm"``, answers outside the
vocabulary are dropped and counted, malformed ones are asked again once, and a failing server fails the
image (or the whole run, when it cannot be reached) instead of producing an empty verdict."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from scene_graphs.io import read_jsonl
from scene_graphs.model import Box, Object, Relation, SceneGraph
from scene_graphs.perception.base import AnnotatorError
from scene_graphs.perception.images import load_image
from scene_graphs.perception.profiles import STAGE_ORDER, build_pipeline, make_config
from scene_graphs.perception.vlm import VlmAnnotator, VlmServerError, data_url, parse_json_object
from scene_graphs.schema import validate_against_schema
from tests.llm_server import FakeServer, Reply, completion, free_port

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "assets" / "images"
SIDE = 96
SHARED = Path(os.environ.get("MMGEN_WEIGHTS_DIR", "/nonexistent"))
HAVE_YOLO = all((SHARED / f).is_file() for f in ("yolo11n_int8.tflite", "yolo11n-seg_full_integer_quant.tflite"))


def image_of(body: dict) -> Image.Image:
    """The one image of a request, checked: a JPEG data URL whose longest side is :data:`SIDE`."""
    (user,) = [m for m in body["messages"] if m["role"] == "user"]
    parts = user["content"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert len(urls) == 1 and urls[0].startswith("data:image/jpeg;base64,")
    im = Image.open(io.BytesIO(base64.b64decode(urls[0].split(",", 1)[1])))
    im.load()
    assert im.format == "JPEG" and max(im.size) == SIDE
    return im


def text_of(body: dict) -> str:
    (user,) = [m for m in body["messages"] if m["role"] == "user"]
    return "\n".join(p["text"] for p in user["content"] if p["type"] == "text")


def scripted(body: dict, n: int) -> Reply:
    """cup: red + an unknown material; table: malformed twice; pairs: cup on table, a made-up predicate
    for table->cup, none for the rest."""
    image_of(body)
    text = text_of(body)
    assert body["temperature"] == 0 and body["seed"] == 0
    if "red box marks" in text:
        if "marks a cup; the blue box marks a dining table" in text:
            return Reply(completion(json.dumps({"predicate": "on"})))
        if "marks a dining table; the blue box marks a cup" in text:
            return Reply(completion(json.dumps({"predicate": "levitating over"})))
        return Reply(completion(json.dumps({"predicate": "none"})))
    if "around one cup" in text:
        return Reply(completion("```json\n" + json.dumps({"color": "Red", "material": "unobtainium",
                                                            "state": None}) + "\n```"))
    if "around one dining table" in text:
        return Reply(completion("I think it is a wooden table."))
    return Reply(completion(json.dumps({"color": None, "material": "wooden", "state": "empty"})))


@pytest.fixture(scope="module")
def cup_item():
    return load_image(IMAGES / "indoor_coffee_cup.jpg", IMAGES)


def cup_graph(item) -> SceneGraph:
    w, h = item.width, item.height
    objects = (Object("o0", "cup", Box(0.3 * w, 0.3 * h, 0.6 * w, 0.6 * h), 0.9),
               Object("o1", "dining table", Box(0.0, 0.5 * h, w, h), 0.8),
               Object("o2", "spoon", Box(0.65 * w, 0.55 * h, 0.8 * w, 0.65 * h), 0.5))
    return SceneGraph(image_id=item.image_id, path=item.path, width=w, height=h, sha256=item.sha256,
                      fields=frozenset({"objects", "relations"}), objects=objects,
                      relations=(Relation("o0", "above", "o1", 0.7, "geometry"),))


def vlm_stage(url: str, **options) -> VlmAnnotator:
    return VlmAnnotator(base_url=url, model="fake-vlm", image_side=SIDE, **options).load("cpu")


def test_answers_land_with_source_vlm_and_strays_are_dropped(cup_item) -> None:
    with FakeServer(scripted) as srv:
        (graph,) = vlm_stage(srv.url, max_pairs=4)([cup_item], [cup_graph(cup_item)])
        requests = list(srv.requests)
    by_id = graph.objects_by_id
    assert [(a.name, a.category, a.source) for a in by_id["o0"].attributes] == [("red", "color", "vlm")]
    assert by_id["o1"].attributes == ()  # malformed twice: nothing added
    assert {(a.name, a.category) for a in by_id["o2"].attributes} == {("wooden", "material"), ("empty", "state")}
    vlm_rels = [(r.subject, r.predicate, r.object) for r in graph.relations if r.source == "vlm"]
    assert vlm_rels == [("o0", "on", "o1")]
    assert Relation("o0", "above", "o1", 0.7, "geometry") in graph.relations  # the geometry stays
    counts = graph.provenance["stages"]["vlm"]["counts"]
    assert counts["out_of_vocabulary"] == 2 and counts["malformed"] == 1
    assert set(counts["dropped_words"]) == {"material=unobtainium", "predicate=levitating over"}
    table_asks = [b for b in requests if "around one dining table" in text_of(b)]
    assert len(table_asks) == 2  # retried once
    assert counts["requests"] == len(requests) == 3 + 1 + 4  # 3 objects (one retried), 4 pairs
    assert {"attributes", "relations"} <= graph.fields
    record = graph.to_dict()
    validate_against_schema(record)
    assert SceneGraph.from_dict(record).to_dict() == record
    assert "api_key" not in graph.provenance["stages"]["vlm"]["options"]


def test_rerun_replaces_its_own_answers(cup_item) -> None:
    with FakeServer(scripted) as srv:
        stage = vlm_stage(srv.url, max_pairs=4)
        (once,) = stage([cup_item], [cup_graph(cup_item)])
        (twice,) = stage([cup_item], [once])
    assert twice.objects == once.objects and twice.relations == once.relations


def test_a_relation_the_graph_has_is_counted_not_added_twice(cup_item) -> None:
    def agreeing(body: dict, n: int) -> Reply:
        image_of(body)
        return Reply(completion(json.dumps({"predicate": "above"})))

    with FakeServer(agreeing) as srv:
        (graph,) = vlm_stage(srv.url, max_pairs=1, max_objects=0)([cup_item], [cup_graph(cup_item)])
    assert graph.relations == (Relation("o0", "above", "o1", 0.7, "geometry"),)
    assert graph.provenance["stages"]["vlm"]["counts"]["agreed"] == 1


def test_the_first_pairs_are_those_of_the_existing_relations(cup_item) -> None:
    with FakeServer(scripted) as srv:
        vlm_stage(srv.url, max_pairs=1, max_objects=0)([cup_item], [cup_graph(cup_item)])
        (only,) = srv.requests
    assert "marks a cup; the blue box marks a dining table" in text_of(only)


@pytest.mark.parametrize("status", [500, 503, 401])
def test_a_server_error_fails_the_image(cup_item, status: int) -> None:
    def broken(body: dict, n: int) -> Reply:
        return Reply({"error": {"message": "model crashed"}}, status=status)

    with FakeServer(broken) as srv:
        stage = vlm_stage(srv.url)
        with pytest.raises(VlmServerError, match="failed on indoor_coffee_cup.jpg"):
            stage([cup_item], [cup_graph(cup_item)])


def test_a_timeout_fails_the_image(cup_item) -> None:
    with FakeServer(lambda body, n: Reply(completion("{}"), delay=2.0)) as srv:
        stage = vlm_stage(srv.url, timeout=0.3, max_pairs=0, max_objects=1)
        with pytest.raises(VlmServerError, match="APITimeoutError"):
            stage([cup_item], [cup_graph(cup_item)])


def test_a_dead_server_is_refused_at_load() -> None:
    stage = VlmAnnotator(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m")
    with pytest.raises(VlmServerError, match="cannot be reached"):
        stage.load("cpu")


def test_server_and_model_are_required() -> None:
    with pytest.raises(AnnotatorError, match="needs base_url"):
        VlmAnnotator(model="m").load("cpu")


@pytest.mark.parametrize("text,parsed", [
    ('{"color": "red"}', {"color": "red"}),
    ('```json\n{"predicate": "on"}\n```', {"predicate": "on"}),
    ('["red"]', None),
    ("red", None),
    ("", None),
    ('{"color": "red"} and more', None),
])
def test_parse_is_strict(text: str, parsed) -> None:
    assert parse_json_object(text) == parsed


def test_data_url_scales_the_longest_side(cup_item) -> None:
    for side in (64, 1000):
        url = data_url(cup_item.pixels, side)
        im = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert max(im.size) == side
        assert abs(im.width / im.height - cup_item.width / cup_item.height) < 0.05


def test_quality_has_the_stage_off_until_enabled() -> None:
    assert STAGE_ORDER.index("clip_relations") < STAGE_ORDER.index("vlm") < STAGE_ORDER.index("ocr")
    assert "vlm" not in make_config("quality").enabled_stages()
    cfg = make_config("quality", overrides=["vlm.enabled=true", "vlm.base_url=http://127.0.0.1:8000/v1",
                                            "vlm.model=NAME"])
    stages = cfg.enabled_stages()
    assert stages[-2:] == ["vlm", "ocr"]
    vlm = next(s for s in build_pipeline(cfg).stages if s.name == "vlm")
    assert vlm.options["base_url"] == "http://127.0.0.1:8000/v1" and vlm.options["image_side"] == 768


# ------------------------------------------------------------------------------ through `mmgen annotate`
def annotate(out: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    images = out.parent / "images"
    if not images.exists():
        images.mkdir()
        for name in ("indoor_coffee_cup.jpg", "street_bus.jpg"):
            (images / name).write_bytes((IMAGES / name).read_bytes())
    cmd = [sys.executable, "-m", "mmgen", "annotate", str(images), "-o", str(out), "--profile", "fast",
           "--skip", "ocr", "--device", "cpu", "--offline", "--set", "vlm.enabled=true",
           "--set", f"vlm.base_url={url}", "--set", "vlm.model=fake-vlm", "--set", f"vlm.image_side={SIDE}",
           "--set", "vlm.max_objects=3", "--set", "vlm.max_pairs=3", *extra]
    env = {**os.environ, "MMGEN_WEIGHTS_DIR": str(SHARED)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)


needs_yolo = pytest.mark.skipif(not HAVE_YOLO, reason="MMGEN_WEIGHTS_DIR does not hold the YOLO11n TFLite files")


@needs_yolo
def test_cli_annotates_with_the_vlm(tmp_path: Path) -> None:
    with FakeServer(scripted) as srv:
        run = annotate(tmp_path / "sg", srv.url)
        asked = srv.count
    assert run.returncode == 0, run.stderr[-3000:]
    graphs = [g for f in sorted((tmp_path / "sg").glob("**/*.jsonl")) if f.name != "errors.jsonl"
              for g in read_jsonl(f) if "objects" in g]
    assert len(graphs) == 2 and asked > 0
    sources = {a.get("source") for g in graphs for o in g["objects"] for a in o.get("attributes", [])}
    assert "vlm" in sources and None in sources  # the colour stage's own attributes stay unmarked
    assert all(g["provenance"]["stages"]["vlm"]["counts"]["requests"] > 0 for g in graphs)


@needs_yolo
def test_cli_exits_non_zero_when_the_server_is_dead(tmp_path: Path) -> None:
    run = annotate(tmp_path / "sg", f"http://127.0.0.1:{free_port()}/v1")
    assert run.returncode != 0
    assert "cannot be reached" in run.stderr
    assert not [g for f in (tmp_path / "sg").glob("**/*.jsonl") for g in read_jsonl(f) if "objects" in g]


@needs_yolo
def test_cli_a_server_failing_mid_run_is_no_verdict_and_a_rerun_finishes(tmp_path: Path) -> None:
    """Without --strict too: the command exits non-zero, no image is written off as failed (errors.jsonl)
    and no graph is written; the same command against a working server then annotates both images."""
    down = [True]

    def flaky(body: dict, n: int) -> Reply:
        return Reply({"error": {"message": "out of memory"}}, status=500) if down[0] else scripted(body, n)

    with FakeServer(flaky) as srv:
        run = annotate(tmp_path / "sg", srv.url)
        errors = tmp_path / "sg" / "errors.jsonl"
        failed_images = list(read_jsonl(errors)) if errors.exists() else []
        graphs = [g for f in (tmp_path / "sg").glob("**/*.jsonl") if f.name != "errors.jsonl"
                  for g in read_jsonl(f) if "objects" in g]
        down[0] = False  # the server is back: the same command finishes the run
        rerun = annotate(tmp_path / "sg", srv.url)
    assert run.returncode != 0, run.stderr[-3000:]
    assert failed_images == []  # a dead server is not the images' fault
    assert graphs == []  # nothing written as a verdict
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    graphs = [g for f in sorted((tmp_path / "sg").glob("**/*.jsonl")) if f.name != "errors.jsonl"
              for g in read_jsonl(f) if "objects" in g]
    assert len(graphs) == 2
