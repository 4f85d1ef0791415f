"""Inspection: drawing a graph over its image (layer by layer, pixel checks), the text tree, per-image
verification, Jupyter display and ``mmgen inspect``.

``build_output`` (used by the store, viewer and stats tests too) makes a real output folder from the
hand-checked graphs in ``assets/scene_graphs`` (two shards, one graph with a depth map, one with
masks, one with text) and the real ``generate`` stage, optionally with a curation folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mmgen.cli import main
from mmgen.inspect import LAYERS, draw, format_graph, format_records, verify_image
from mmgen.store import open_output
from scene_graphs.draw import CANVAS_COLOR, MASK_ALPHA, RELATION_COLOR, TEXT_COLOR, depth_colors, object_color
from scene_graphs.io import iter_graphs, read_jsonl, write_graphs, write_jsonl
from scene_graphs.model import Box, DepthMap, Mask, Object, Relation, SceneGraph, TextRegion

ASSETS = Path(__file__).resolve().parents[1] / "assets"
XSS_TEXT = '<img src=x id="pwned" onerror="document.body.dataset.pwned=1">'
DROP_REASONS = ("near_duplicate", "quality")


def build_output(root: Path, *, curate: bool = False, xss: bool = False, multi: bool = False) -> Path:
    """A real output folder under ``root`` (see the module docstring)."""
    from mmgen.stages.generate import generate
    from programs.base import ProgramConfig

    graphs = list(iter_graphs(ASSETS / "scene_graphs"))
    if xss:  # OCR text that is HTML: the viewer must show it as text
        bus = next(i for i, g in enumerate(graphs) if g.path == "street_bus.jpg")
        g = graphs[bus]
        graphs[bus] = g.replace(text=(*g.text, TextRegion("xss", XSS_TEXT, Box(40, 40, 200, 80), 0.9)))
    sg = root / "scene_graphs"
    write_graphs(sg / "part-00000.jsonl", graphs[:3])
    write_graphs(sg / "part-00001.jsonl", graphs[3:])
    (sg / "annotate.json").write_text(json.dumps({"images_root": str(ASSETS / "images")}))
    generate(sg, root / "qa", ProgramConfig(seed=0))
    if curate:
        records = [r for p in sorted((root / "qa").glob("part-*.jsonl")) for r in read_jsonl(p)]
        cur = root / "curated"
        write_jsonl(cur / "part-00000.jsonl", records[::2])
        write_jsonl(cur / "dropped.jsonl", [  # as `mmgen curate` writes them: filter, detail, the record
            {"id": r["id"], "stage": "curate", "filter": DROP_REASONS[i % 2], "reason": f"detail {i}",
             "shard": "part-00000.jsonl", "record": r} for i, r in enumerate(records[1::2])])
        (cur / "manifest.json").write_text(json.dumps({"stage": "curate"}))
    if multi:  # hand-made multi-image records (no manifest: indexed, not verified)
        ids = [g.image_id for g in graphs]
        recs = [{"id": f"{ids[0]}+{ids[1]}:multi.same_label:0", "program": "multi.same_label", "family": "multi",
                 "template": "t", "question_type": "free_form", "answer_type": "yes/no",
                 "images": [ids[0], ids[1]], "question": "Do both images show a person?", "answer": "yes",
                 "options": [], "answer_index": None, "rationale": "", "plan": {}, "value": True,
                 "provenance": {}, "seed": 0},
                {"id": "nope+x:multi.same_label:0", "program": "multi.same_label", "family": "multi",
                 "template": "t", "question_type": "free_form", "answer_type": "yes/no", "images": ["nope", "x"],
                 "question": "?", "answer": "no", "options": [], "answer_index": None, "rationale": "",
                 "plan": {}, "value": False, "provenance": {}, "seed": 0}]
        write_jsonl(root / "qa-multi" / "part-00000.jsonl", recs)
    (root / "llava").mkdir()
    (root / "llava" / "train.json").write_text("[]")
    return root


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_output(tmp_path_factory.mktemp("out"))


# ------------------------------------------------------------------------------------ drawing
W, H = 200, 100


def toy_graph(larger_is_nearer: bool = True, low_score: float = 0.9) -> SceneGraph:
    """Two objects far apart (the first with a mask smaller than its box), a relation, a text region
    and a depth map growing from left to right."""
    mask = np.zeros((H, W), bool)
    mask[20:50, 20:50] = True
    a = Object("a", "cup", Box(10, 10, 60, 60), 0.9, Mask.from_array(mask))
    b = Object("b", "table", Box(120, 20, 180, 80), low_score)
    depth = DepthMap(np.tile(np.linspace(0, 1, 40, dtype=np.float32), (20, 1)), larger_is_nearer)
    return SceneGraph("toy", W, H, objects=(a, b), relations=(Relation("a", "left of", "b", 0.8, "geometry"),),
                      text=(TextRegion("t0", "EXIT", Box(130, 30, 170, 45), 0.9, "b"),), depth=depth,
                      fields=frozenset({"objects", "masks", "relations", "text", "depth"}))


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB")).astype(int)


def count_color(a: np.ndarray, color: tuple[int, int, int], tol: int = 0) -> int:
    return int((np.abs(a - np.array(color)).max(axis=-1) <= tol).sum())


def test_nothing_shown_gives_the_plain_canvas_or_the_image() -> None:
    g = toy_graph()
    assert (pixels(draw(g, None, show=())) == CANVAS_COLOR).all()
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    assert (pixels(draw(g, photo, show=())) == pixels(photo)).all()


def test_boxes_are_outlined_in_their_object_colour() -> None:
    a = pixels(draw(toy_graph(), None, show=("boxes",)))
    assert tuple(a[35, 10]) == object_color(0)  # left edge of the first box
    assert tuple(a[50, 120]) == object_color(1)  # left edge of the second
    assert tuple(a[35, 35]) == CANVAS_COLOR  # inside: not filled
    assert tuple(a[5, 90]) == CANVAS_COLOR  # between the boxes: nothing


def test_masks_are_translucent_and_only_where_the_mask_is() -> None:
    a = pixels(draw(toy_graph(), None, show=("masks",)))
    alpha = MASK_ALPHA / 255
    expected = np.array(CANVAS_COLOR) * (1 - alpha) + np.array(object_color(0)) * alpha
    assert np.abs(a[35, 35] - expected).max() <= 2  # inside the mask: blended
    assert tuple(a[15, 15]) == CANVAS_COLOR  # inside the box, outside the mask
    assert tuple(a[50, 150]) == CANVAS_COLOR  # the second object has no mask


@pytest.mark.parametrize("layer, color", [("relations", RELATION_COLOR), ("text", TEXT_COLOR)])
def test_relation_and_text_layers_draw_in_their_colour_only_when_shown(layer: str, color: tuple) -> None:
    g = toy_graph()
    others = tuple(x for x in LAYERS if x not in (layer, "depth", "labels"))  # tags use white lettering
    assert count_color(pixels(draw(g, None, show=others)), color) == 0
    assert count_color(pixels(draw(g, None, show=(*others, layer))), color) > 20


def test_relation_arrow_runs_between_the_two_box_centres() -> None:
    a = pixels(draw(toy_graph(), None, show=("relations",)))
    (x0, y0), (x1, y1) = (35, 35), (150, 50)
    on_line = [(x, round(y0 + (y1 - y0) * (x - x0) / (x1 - x0))) for x in range(45, 75)]
    hits = sum(any(tuple(a[y + d, x]) == RELATION_COLOR for d in (-1, 0, 1)) for x, y in on_line)
    assert hits >= len(on_line) - 2
    assert count_color(a[:, :, :][80:, :], RELATION_COLOR) == 0  # nothing far below the segment


def test_labels_put_a_tag_in_the_object_colour_at_the_box() -> None:
    g = toy_graph()
    without = count_color(pixels(draw(g, None, show=("boxes",))), object_color(0))
    with_labels = count_color(pixels(draw(g, None, show=("boxes", "labels"))), object_color(0))
    assert with_labels > without + 100


@pytest.mark.parametrize("larger_is_nearer", [True, False])
def test_depth_inset_is_bright_where_near_whatever_the_convention(larger_is_nearer: bool) -> None:
    g = toy_graph(larger_is_nearer)
    a = pixels(draw(g, None, show=("depth",)))
    changed = np.argwhere((a != CANVAS_COLOR).any(axis=-1))
    assert changed[:, 0].min() > H / 2 and changed[:, 1].min() > W / 3  # an inset (and caption) low and right
    row = a[H - 8, W - 45:W - 8].sum(axis=-1)  # a row across the inset (below its caption)
    near_side_brighter = row[-3:].mean() > row[:3].mean()
    assert near_side_brighter == larger_is_nearer  # values grow left to right
    assert (pixels(draw(g.replace(depth=None, fields=g.fields - {"depth"}), None, show=("depth",)))
            == CANVAS_COLOR).all()


def test_depth_colors_ramp_from_dark_far_to_bright_near() -> None:
    v = np.array([[0.0, 0.5, 1.0]])
    near = depth_colors(v, larger_is_nearer=True).sum(axis=-1)[0]
    far = depth_colors(v, larger_is_nearer=False).sum(axis=-1)[0]
    assert near[0] < near[1] < near[2] and far[0] > far[1] > far[2]
    assert (depth_colors(np.ones((2, 2)), True) == depth_colors(np.ones((2, 2)), True)[0, 0]).all()  # flat map


def test_objects_below_min_score_are_left_out_with_their_relations_and_text() -> None:
    g = toy_graph(low_score=0.1)
    a = pixels(draw(g, None, min_score=0.5))
    assert count_color(a, object_color(1)) == 0
    assert count_color(a, TEXT_COLOR) == 0  # the text sits on the left-out object
    assert count_color(pixels(draw(g, None, show=("relations",), min_score=0.5)), RELATION_COLOR) == 0


@pytest.mark.parametrize("options, size", [({"max_side": 100}, (100, 50)), ({"min_side": 400}, (400, 200)),
                                           ({"max_side": 1000}, (200, 100)), ({}, (200, 100))])
def test_output_size_follows_max_and_min_side(options: dict, size: tuple[int, int]) -> None:
    img = draw(toy_graph(), None, **options)
    assert img.size == size and img.mode == "RGB"


def test_scaled_drawing_keeps_boxes_in_place() -> None:
    a = pixels(draw(toy_graph(), None, show=("boxes",), min_side=400))  # scale 2
    assert tuple(a[70, 20]) == object_color(0) and tuple(a[100, 240]) == object_color(1)


def test_image_of_another_size_is_stretched_to_the_graph() -> None:
    half = Image.new("RGB", (W // 2, H // 2), (10, 200, 30))
    img = draw(toy_graph(), half, show=())
    assert img.size == (W, H) and tuple(pixels(img)[H - 1, W - 1]) == (10, 200, 30)


def test_exif_orientation_is_applied_before_drawing(tmp_path: Path) -> None:
    raw = np.zeros((W, H, 3), np.uint8)  # stored as 100 wide, 200 high; displayed rotated to 200x100
    raw[: W // 2] = (255, 0, 0)
    raw[W // 2:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rotated.png"
    Image.fromarray(raw).save(path, exif=exif)
    a = pixels(draw(toy_graph(), path, show=()))
    assert a.shape == (H, W, 3)
    assert tuple(a[50, 20]) == (0, 0, 255) and tuple(a[50, 180]) == (255, 0, 0)  # top of the stored image is now right


def test_unknown_layer_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown layer"):
        draw(toy_graph(), None, show=("boxes", "glow"))


def test_overlay_on_a_real_photo_changes_pixels_on_box_edges(out_dir: Path) -> None:
    output = open_output(out_dir)
    image_id = next(i for i in output.image_ids if output.info(i).path == "vehicle_motorcycle_garage.jpg")
    graph = output.graph(image_id)
    photo = pixels(Image.open(ASSETS / "images" / graph.path))
    a = pixels(output.draw(image_id, show=("boxes",)))
    for i, obj in enumerate(graph.objects):
        x, y1, y2 = int(obj.box.x1), int(obj.box.y1) + 1, int(obj.box.y2) - 1
        edge = (np.abs(a[y1:y2, x:x + 2] - np.array(object_color(i))).max(axis=-1) == 0).any(axis=1)
        assert edge.mean() > 0.3, obj  # most of the left edge (other boxes may cross it)
    assert (a != photo).any(axis=-1).mean() < 0.2  # outlines only: the photo stays visible
    assert graph.depth is not None
    with_depth = pixels(output.draw(image_id, show=("depth",)))
    assert (with_depth[: graph.height // 2] == photo[: graph.height // 2]).all()  # the inset is low and right
    assert (with_depth[-20:, -20:] != photo[-20:, -20:]).any()


# ------------------------------------------------------------------------------------ text
def test_format_graph_lists_every_object_relation_and_text_region() -> None:
    g = toy_graph()
    text = format_graph(g)
    assert text.splitlines()[0].startswith("image toy")
    assert "objects (2)" in text and "relations (1)" in text and "text (1)" in text
    assert "a: cup 0.90 [10, 10, 60, 60]" in text and "mask 4.5%" in text  # 30x30 of 200x100
    assert "a cup --left of--> b table  (0.80, geometry)" in text
    assert "t0: 'EXIT'" in text and "on b table" in text
    assert "40x20 map" in text and "larger is nearer" in text


def test_format_records_marks_the_correct_option_and_statuses() -> None:
    from mmgen.inspect import RecordCheck

    rec = {"id": "x:p:0", "program": "single.p", "question_type": "multiple_choice", "answer_type": "color",
           "question": "What colour?", "answer": "red", "options": ["blue", "red"], "answer_index": 1,
           "rationale": "Because.", "_status": "dropped", "_reason": "duplicate"}
    text = format_records([rec], {"x:p:0": RecordCheck(False, "stored answer differs")})
    assert "   A. blue" in text and "  *B. red" in text
    assert "dropped (duplicate)" in text and "NOT VERIFIED: stored answer differs" in text
    assert "why: Because." in text


# ------------------------------------------------------------------------------------ verification
def test_verify_image_passes_fresh_records_and_flags_a_tampered_one(tmp_path: Path, out_dir: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(out_dir, out)
    output = open_output(out)
    image_id = max(output.image_ids, key=lambda i: output.count(i))
    checks = verify_image(output, image_id)
    assert len(checks) == output.count(image_id) > 3 and all(c.ok for c in checks.values())
    # change one stored answer: only that record (and its program's regeneration) fails
    shard = next(p for p in sorted((out / "qa").glob("part-*.jsonl"))
                 if any(r["images"] == [image_id] for r in read_jsonl(p)))
    records = list(read_jsonl(shard))
    target = next(r for r in records if r["images"] == [image_id] and isinstance(r["value"], str))
    target["value"] = target["answer"] = target["value"] + " (tampered)"
    write_jsonl(shard, records)
    checks = verify_image(open_output(out), image_id)
    failed = {rid for rid, c in checks.items() if c.ok is False}
    assert target["id"] in failed
    assert all(rid.split(":")[1] == target["program"] for rid in failed)
    assert "stored answer" in checks[target["id"]].message


def test_records_of_a_folder_without_manifest_are_not_checked(tmp_path: Path) -> None:
    out = build_output(tmp_path, multi=True)
    output = open_output(out)
    checks = verify_image(output, output.image_ids[0])
    multi = [c for rid, c in checks.items() if "multi." in rid]
    assert multi and all(c.ok is None and "qa-multi" in c.message for c in multi)
    assert all(c.ok for rid, c in checks.items() if "multi." not in rid)


# ------------------------------------------------------------------------------------ Jupyter
def test_scene_graph_renders_as_png_in_jupyter(out_dir: Path) -> None:
    import io

    output = open_output(out_dir)  # registers the image root, so the photo is found
    graph = output.graph(output.image_ids[0])
    img = Image.open(io.BytesIO(graph._repr_png_()))
    assert img.format == "PNG" and img.size == (graph.width, graph.height)
    photo = pixels(Image.open(ASSETS / "images" / graph.path))
    assert np.abs(pixels(img) - photo).mean() < 60  # drawn over the photo, not a blank canvas


def test_qa_renders_as_escaped_html() -> None:
    from programs.base import QA

    qa = QA("i:p:0", "single.p", "f", "t", "multiple_choice", "label", ("i",), "Is <b>this</b> a cup?", "yes",
            ("no", "yes"), 1, "It is & so.", {}, "yes", {}, 0)
    out = qa._repr_html_()
    assert "&lt;b&gt;this&lt;/b&gt;" in out and "<b>this</b>" not in out and "It is &amp; so." in out
    assert 'color:#1b7f3b">yes</li>' in out  # the correct option is marked


# ------------------------------------------------------------------------------------ CLI
@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_cli_lists_images_with_counts(runner: CliRunner, out_dir: Path) -> None:
    result = runner.invoke(main, ["inspect", str(out_dir)])
    assert result.exit_code == 0, result.output
    output = open_output(out_dir)
    for image_id in output.image_ids:
        line = next(ln for ln in result.output.splitlines() if ln.startswith(image_id))
        info = output.info(image_id)
        assert line.split()[1:5] == [str(info.objects), str(info.relations), str(info.text), str(info.qa)]


def test_cli_prints_tree_and_records_and_writes_the_overlay(runner: CliRunner, out_dir: Path, tmp_path: Path
                                                            ) -> None:
    png = tmp_path / "bus.png"
    result = runner.invoke(main, ["inspect", str(out_dir), "--image", "street_bus.jpg", "--out", str(png),
                                  "--show", "boxes,labels", "--verify"])
    assert result.exit_code == 0, result.output
    output = open_output(out_dir)
    image_id = output.resolve_image_id("street_bus.jpg")
    graph = output.graph(image_id)
    assert f"image {image_id}  street_bus.jpg  {graph.width}x{graph.height}" in result.output
    assert f"objects ({len(graph.objects)})" in result.output
    n = output.count(image_id)
    assert f"QA records ({n}):" in result.output and result.output.count(" · verified") == n
    img = Image.open(png)
    assert img.size == (graph.width, graph.height)
    assert count_color(pixels(img), object_color(0)) > 100


def test_cli_program_filter_and_errors(runner: CliRunner, out_dir: Path) -> None:
    output = open_output(out_dir)
    image_id = output.image_ids[0]
    program = next(iter(output.programs))
    result = runner.invoke(main, ["inspect", str(out_dir), "--image", image_id, "--program", program])
    assert result.exit_code == 0, result.output
    shown = [ln for ln in result.output.splitlines() if ln.startswith("[")]
    assert len(shown) == output.count(image_id, program=program) and all(f"[{program}]" in s for s in shown)
    assert runner.invoke(main, ["inspect", str(out_dir), "--image", "no-such-image"]).exit_code == 2
    assert runner.invoke(main, ["inspect", str(out_dir), "--image", image_id, "--program", "nope"]).exit_code == 2
    assert runner.invoke(main, ["inspect", str(out_dir), "--image", image_id, "--show", "glow"]).exit_code == 2
    assert runner.invoke(main, ["inspect", str(out_dir), "--out", "x.png"]).exit_code == 2


def test_cli_without_an_image_root_draws_on_a_plain_canvas(runner: CliRunner, out_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(out_dir, out)
    (out / "scene_graphs" / "annotate.json").unlink()
    png = tmp_path / "canvas.png"
    result = runner.invoke(main, ["inspect", str(out), "--image", "street_bus.jpg", "-o", str(png), "--show", ""])
    assert result.exit_code == 0, result.output
    assert "not found under the image root" in result.output
    assert (pixels(Image.open(png)) == CANVAS_COLOR).all()
    with_root = tmp_path / "photo.png"
    result = runner.invoke(main, ["inspect", str(out), "--image", "street_bus.jpg", "-o", str(with_root), "--show",
                                  "", "--image-root", str(ASSETS / "images")])
    assert result.exit_code == 0, result.output
    assert (pixels(Image.open(with_root)) == pixels(Image.open(ASSETS / "images" / "street_bus.jpg"))).all()
