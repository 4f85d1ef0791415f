"""``mmgen import``: each format to schema-valid shards; all-or-nothing on errors; output folder rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import orjson
import pytest
from click.testing import CliRunner, Result

from mmgen.cli import main
from scene_graphs.io import depth_path, graph_files, iter_graphs
from scene_graphs.schema import validate_against_schema
from tests.test_formats import coco_sample, dump, gqa_sample, provision_sample, save_image, vg_sample

SAMPLES: dict[str, tuple[Callable[[Path], Path], list[str], int]] = {
    # format: (sample builder, extra options, graphs expected)
    "vg": (vg_sample, [], 1),
    "gqa": (gqa_sample, [], 1),
    "coco": (coco_sample, ["--images", "{root}"], 3),
    "provision": (provision_sample, ["--allow-pickle"], 2),
}


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["import", *args], catch_exceptions=False)


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_import_writes_schema_valid_shards(fmt: str, tmp_path: Path) -> None:
    build, extra, expected = SAMPLES[fmt]
    src = build(tmp_path)
    out = tmp_path / "out"
    result = run("--format", fmt, str(src), "-o", str(out), "--shard-size", "1",
                 *[e.format(root=tmp_path) for e in extra])
    assert result.exit_code == 0, result.output
    shards = graph_files(out)
    assert len(shards) == expected  # one graph per shard here
    for shard in shards:
        for line in shard.read_bytes().splitlines():
            validate_against_schema(orjson.loads(line))
    graphs = list(iter_graphs(out))
    assert len(graphs) == expected and len({g.image_id for g in graphs}) == expected
    assert all(g.provenance["import"]["format"] == fmt for g in graphs)
    report = json.loads((out / "import_report.json").read_text())
    assert report["graphs"] == expected
    if fmt == "provision":  # depth maps travel in the .npz beside the shard
        with_depth = [g for g in graphs if g.depth is not None]
        assert len(with_depth) == 1 and with_depth[0].depth.larger_is_nearer
        assert any(depth_path(s).exists() for s in shards)
        assert report["missing_images"] == 1


def test_provision_pickles_need_the_flag(tmp_path: Path) -> None:
    src = provision_sample(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["import", "--format", "provision", str(src), "-o", str(out)])
    assert result.exit_code == 1
    assert "--allow-pickle" in result.output
    assert not out.exists()


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_bad_file_exits_non_zero_and_leaves_no_output(fmt: str, tmp_path: Path) -> None:
    build, extra, _ = SAMPLES[fmt]
    src = build(tmp_path)
    target = {"vg": src / "attributes.json", "gqa": src, "coco": src,
              "provision": src / "relation-annotations-parsed.json"}[fmt]
    data = json.loads(target.read_text())
    text = json.dumps(data)
    target.write_text(text[: len(text) // 2])  # truncated: malformed JSON
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["import", "--format", fmt, str(src), "-o", str(out),
                                       *[e.format(root=tmp_path) for e in extra]])
    assert result.exit_code == 1
    assert "malformed JSON" in result.output and target.name in result.output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.staging")]


def test_invalid_record_names_it_and_leaves_no_output(tmp_path: Path) -> None:
    src = dump(tmp_path / "instances.json", {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 8}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [6, 6, -4, 1]}],
        "categories": [{"id": 1, "name": "cup"}]})
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["import", "--format", "coco", str(src), "-o", str(out)])
    assert result.exit_code == 1
    assert "instances.json (image 1): annotations[0].bbox: inverted box" in result.output
    assert not out.exists()


def test_non_empty_output_needs_overwrite(tmp_path: Path) -> None:
    src = gqa_sample(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.jsonl").write_text("{}\n")
    refused = CliRunner().invoke(main, ["import", "--format", "gqa", str(src), "-o", str(out)])
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    assert (out / "old.jsonl").exists()
    result = run("--format", "gqa", str(src), "-o", str(out), "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (out / "old.jsonl").exists()
    assert len(list(iter_graphs(out))) == 1


def test_same_file_name_in_two_folders_gets_two_ids(tmp_path: Path) -> None:
    for sub in ("cam1", "cam2"):
        save_image(tmp_path / "images" / sub / "img.jpg", 12, 10, fmt="JPEG")
    src = dump(tmp_path / "instances.json", {
        "images": [{"id": 1, "file_name": "cam1/img.jpg"}, {"id": 2, "file_name": "cam2/img.jpg"}],
        "annotations": [], "categories": []})
    out = tmp_path / "out"
    result = run("--format", "coco", str(src), "-o", str(out), "--images", str(tmp_path / "images"))
    assert result.exit_code == 0, result.output
    graphs = list(iter_graphs(out))
    assert sorted(g.path for g in graphs) == ["cam1/img.jpg", "cam2/img.jpg"]
    assert len({g.image_id for g in graphs}) == 2
    assert all(g.sha256 is not None and (g.width, g.height) == (12, 10) for g in graphs)


@pytest.mark.parametrize("where", ["src-folder", "holds-src", "inside-src", "holds-images"])
def test_overwrite_never_deletes_the_input(tmp_path: Path, where: str) -> None:
    src = gqa_sample(tmp_path / "data")
    images = tmp_path / "data" / "images"  # the sample's image is there
    out = {"src-folder": src.parent, "holds-src": tmp_path, "inside-src": src.parent / "sg",
           "holds-images": images}[where]
    args = ["import", "--format", "gqa", str(src.parent if where == "inside-src" else src), "-o", str(out),
            "--overwrite"]
    if where == "holds-images":
        args[4:4] = ["--images", str(images)]
    before = sorted(p for p in tmp_path.rglob("*"))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "output folder" in result.output and "choose" in result.output
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing deleted, nothing staged
