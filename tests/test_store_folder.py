"""mmgen.store: a stage folder's kind comes from what it holds (manifest, markers, records), never from its
name, and its record shards are listed one way (``part-*.jsonl`` directly inside) for every reader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mmgen.store import StageFolder, open_output, qa_shards
from scene_graphs.io import write_jsonl
from tests.test_inspect import build_output


def test_a_qa_folder_named_like_a_curation_is_qa_and_a_curation_is_found_by_its_manifest(tmp_path: Path) -> None:
    out = build_output(tmp_path, curate=True)
    (out / "qa").rename(out / "curated-qa")  # a generate run whose folder name starts like "curate"
    (out / "curated").rename(out / "kept")   # a curate run in a folder of any name
    output = open_output(out)
    assert [s.name for s in output.qa_sources] == ["curated-qa"]
    assert output.curation_dirs == (out / "kept",)
    assert output.count(status="curated") > 0 and output.count(status="dropped") > 0


def test_a_folder_named_curate_without_a_curate_manifest_is_not_a_curation(tmp_path: Path) -> None:
    out = build_output(tmp_path)
    shutil.copytree(out / "qa", out / "curate-notes")
    (out / "curate-notes" / "manifest.json").unlink()
    output = open_output(out)
    assert not output.curated and {s.name for s in output.qa_sources} == {"qa", "curate-notes"}


@pytest.mark.parametrize("files, kind", [
    ({"manifest.json": {"stage": "curate"}}, "curation"),
    ({"manifest.json": {"stage": "generate"}, "part-00000.jsonl": [{"x": 1}]}, "qa"),
    ({"manifest.json": {"stage": "generate"}}, ""),  # no shards yet
    ({"annotate.json": {}}, "graphs"),
    ({"import_report.json": {}}, "graphs"),
    ({"part-00000.jsonl": [{"image_id": "a", "width": 2, "height": 2}]}, "graphs"),
    ({"part-00000.jsonl": [{"program": "p", "question": "q?", "images": ["a"]}]}, "qa"),
    ({"export.json": {}, "train.json": []}, "export"),
    ({"dropped.jsonl": [{"id": "x"}]}, ""),
])
def test_kind_comes_from_the_contents(tmp_path: Path, files: dict, kind: str) -> None:
    folder = tmp_path / "curated"  # the name says nothing
    folder.mkdir()
    for name, data in files.items():
        if name.endswith(".jsonl"):
            write_jsonl(folder / name, data)
        else:
            (folder / name).write_text(json.dumps(data))
    assert StageFolder(folder).kind == kind


def test_qa_shards_are_the_part_files_directly_inside(tmp_path: Path) -> None:
    for name in ("part-00001.jsonl", "part-00000.jsonl", "dropped.jsonl", "errors.jsonl", ".dropped/part-00000.jsonl",
                 "sub/part-00002.jsonl", ".part-00003.jsonl.x.tmp"):
        write_jsonl(tmp_path / name, [{"id": name}])
    (tmp_path / "part-00004.jsonl").mkdir()  # a folder is not a shard
    expected = [tmp_path / "part-00000.jsonl", tmp_path / "part-00001.jsonl"]
    assert qa_shards(tmp_path) == StageFolder(tmp_path).shards() == expected
    assert qa_shards(tmp_path / "part-00001.jsonl") == [tmp_path / "part-00001.jsonl"]
    assert qa_shards(tmp_path / "missing", required=False) == []
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no QA shards"):
        qa_shards(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no QA file or folder"):
        qa_shards(tmp_path / "missing")
