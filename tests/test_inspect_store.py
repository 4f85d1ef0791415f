"""``mmgen.open``: the index of an output folder agrees with a brute-force read of its files; graphs and
records come back by image and by program; curation status; bounded caches; refused inputs."""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import pytest

import mmgen
from mmgen.store import StringColumn, open_output
from mmgen.store import output as store_output
from scene_graphs.io import RecordError, iter_graphs, read_jsonl, write_graphs
from tests.test_inspect import ASSETS, DROP_REASONS, build_output


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_output(tmp_path_factory.mktemp("out"), curate=True, multi=True)


def all_records(out: Path, folder: str = "qa") -> list[dict]:
    return [r for p in sorted((out / folder).glob("part-*.jsonl")) for r in read_jsonl(p)]


def test_mmgen_open_is_lazy_and_finds_the_parts(out_dir: Path) -> None:
    output = mmgen.open(out_dir)
    assert output.graphs_dir == out_dir / "scene_graphs"
    assert [s.name for s in output.qa_sources] == ["qa", "qa-multi"]  # llava/ is not QA
    assert output.source("qa").stage == "generate" and output.source("qa").config["seed"] == 0
    assert output.curation_dirs == (out_dir / "curated",)
    assert output.image_root == ASSETS / "images"
    with pytest.raises(AttributeError):
        mmgen.no_such_thing  # noqa: B018


def test_graphs_by_id_equal_the_graphs_in_the_shards(out_dir: Path) -> None:
    output = open_output(out_dir)
    expected = {g.image_id: g for g in iter_graphs(out_dir / "scene_graphs")}
    assert list(output.image_ids) == [g.image_id for g in iter_graphs(out_dir / "scene_graphs")]
    assert len(output) == len(expected) == 5
    for image_id, g in sorted(expected.items()):  # another order than the shards'
        got = output.graph(image_id)
        assert got.to_dict() == g.to_dict()
        assert (got.depth is None) == (g.depth is None)
        if g.depth is not None:
            assert (got.depth.values == g.depth.values).all()
    assert [g.image_id for g in output] == list(output.image_ids)
    with pytest.raises(KeyError, match="no scene graph"):
        output.graph("nope")


def test_records_by_image_and_program_match_a_brute_force_read(out_dir: Path) -> None:
    output = open_output(out_dir)
    records = all_records(out_dir) + all_records(out_dir, "qa-multi")
    by_image: dict[str, list[str]] = defaultdict(list)
    for r in records:
        for i in r["images"]:
            by_image[i].append(r["id"])
    for image_id in output.image_ids:
        assert [r["id"] for r in output.records(image_id)] == by_image[image_id]
        assert output.info(image_id).qa == len(by_image[image_id])
    per_program = Counter(r["program"] for r in records)
    assert output.programs == dict(sorted(per_program.items()))
    for program, n in per_program.items():
        got = list(output.qa(program=program))
        assert len(got) == n and {q.program for q in got} == {program}
    assert output.orphans == 1  # the multi-image record about images that have no graph
    image_id = output.image_ids[0]
    program = next(r["program"] for r in records if r["images"] == [image_id])
    assert [q.id for q in output.qa(image_id, program=program)] == \
        [r["id"] for r in records if r["images"] == [image_id] and r["program"] == program]


def test_multi_image_records_are_found_from_each_of_their_images(out_dir: Path) -> None:
    output = open_output(out_dir)
    first, second = output.image_ids[:2]
    for image_id in (first, second):
        multi = [r for r in output.records(image_id) if r["program"] == "multi.same_label"]
        assert [r["images"] for r in multi] == [[first, second]] and multi[0]["_source"] == "qa-multi"


@pytest.mark.parametrize("field, key", [("answer_type", "answer_type"), ("question_type", "question_type")])
def test_record_filters(out_dir: Path, field: str, key: str) -> None:
    output = open_output(out_dir)
    records = all_records(out_dir) + all_records(out_dir, "qa-multi")
    for value in {r[key] for r in records}:
        got = [r["id"] for r in output.records(**{field: value})]
        assert got == [r["id"] for r in records if r[key] == value]


def test_curation_status_and_drop_reasons(out_dir: Path) -> None:
    output = open_output(out_dir)
    kept = {r["id"] for r in all_records(out_dir, "curated")}
    entries = {e["id"]: e for e in read_jsonl(out_dir / "curated" / "dropped.jsonl")}
    dropped = {i: e["filter"] for i, e in entries.items()}
    assert output.curated and kept and dropped
    for r in output.records():
        if r["id"] in kept:
            assert (r["_status"], r["_reason"], r["_detail"]) == ("curated", None, None)
        elif r["id"] in dropped:
            assert (r["_status"], r["_reason"], r["_detail"]) == ("dropped", dropped[r["id"]],
                                                                  entries[r["id"]]["reason"])
        else:
            assert r["_status"] == "uncurated" and r["_source"] == "qa-multi"
    assert output.drop_reasons == dict(Counter(dropped.values()).most_common())
    assert set(output.drop_reasons) == set(DROP_REASONS)
    assert output.count(status="dropped") == len(dropped)
    with pytest.raises(ValueError, match="unknown status"):
        output.count(status="gone")


@pytest.mark.parametrize("entry, category", [
    ({"reason": "too short"}, "too short"), ({"drop_reason": "blurry"}, "blurry"),
    ({"curation": {"reason": "judge 3/10"}}, "judge 3/10"), ({}, "unspecified"),
    ({"filter": "balance", "reason": "answer 'yes' over its share"}, "balance"),
])
def test_drop_entries_in_other_shapes(tmp_path: Path, entry: dict, category: str) -> None:
    out = build_output(tmp_path)
    record = all_records(out)[0]
    (out / "curate").mkdir()
    (out / "curate" / "manifest.json").write_text(json.dumps({"stage": "curate"}))
    (out / "curate" / "dropped.jsonl").write_text(json.dumps({"id": record["id"], **entry}) + "\n")
    output = open_output(out)
    assert output.drop_reasons == {category: 1}
    got = next(output.records(status="dropped"))
    assert got["id"] == record["id"] and got["_reason"] == category
    assert got["_detail"] == (entry["reason"] if "filter" in entry else None)
    assert output.count(status="uncurated") == output.count() - 1


def test_without_curation_records_have_no_status(tmp_path: Path) -> None:
    output = open_output(build_output(tmp_path))
    assert not output.curated and output.drop_reasons == {}
    assert {r["_status"] for r in output.records()} == {None}


def test_images_filters_and_label_search(out_dir: Path) -> None:
    output = open_output(out_dir)
    graphs = list(iter_graphs(out_dir / "scene_graphs"))
    records = all_records(out_dir)
    assert [i.image_id for i in output.images()] == [g.image_id for g in graphs]
    program = "single.exists"
    with_program = Counter(i for r in records if r["program"] == program for i in r["images"])
    rows = output.images(program=program)
    assert {i.image_id: i.qa for i in rows} == dict(with_program)
    for needle in ("man", "MOTOR", "cat", "zebra"):
        expected = [g.image_id for g in graphs if any(needle.lower() in o.label.lower() for o in g.objects)]
        assert output.find(needle) == expected
        assert [i.image_id for i in output.images(label=needle)] == expected
    exact = output.find("man", exact=True)
    assert exact == [g.image_id for g in graphs if any(o.label == "man" for o in g.objects)]
    info = output.info(graphs[0].image_id)
    assert set(info.labels) == {o.label for o in graphs[0].objects}
    assert (info.objects, info.relations, info.text) == (len(graphs[0].objects), len(graphs[0].relations),
                                                         len(graphs[0].text))


def test_resolve_image_id_takes_an_id_or_a_path(out_dir: Path) -> None:
    output = open_output(out_dir)
    image_id = output.image_ids[3]
    assert output.resolve_image_id(image_id) == image_id
    assert output.resolve_image_id(output.info(image_id).path) == image_id
    with pytest.raises(KeyError):
        output.resolve_image_id("missing.jpg")


def test_graph_cache_is_bounded(out_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_output, "GRAPH_CACHE", 2)
    output = open_output(out_dir)
    for image_id in output.image_ids:
        output.graph(image_id)
    assert len(output._graph_cache) == 2
    assert list(output._graph_cache) == list(output.image_ids[-2:])


def test_image_path_never_leaves_the_image_root(tmp_path: Path) -> None:
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "ok.jpg").write_bytes(b"x")
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    (root / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    g = next(iter_graphs(ASSETS / "scene_graphs"))
    graphs = [g.replace(image_id=f"g{i}", path=p) for i, p in
              enumerate(["sub/ok.jpg", "../secret.jpg", str(tmp_path / "secret.jpg"), "link.jpg", "sub/none.jpg"])]
    write_graphs(tmp_path / "out" / "scene_graphs" / "part-00000.jsonl", graphs)
    output = open_output(tmp_path / "out", image_root=root)
    assert output.image_path("g0") == (root / "sub" / "ok.jpg").resolve()
    assert [output.image_path(f"g{i}") for i in range(1, 5)] == [None] * 4


def test_a_folder_of_graph_shards_opens_too(out_dir: Path) -> None:
    output = open_output(out_dir / "scene_graphs")
    assert len(output) == 5 and output.qa_sources == () and output.count() == 0


@pytest.mark.parametrize("case", ["no graphs", "duplicate ids", "bad json", "not a folder"])
def test_refused_inputs(tmp_path: Path, case: str) -> None:
    sg = tmp_path / "out" / "scene_graphs"
    graphs = list(iter_graphs(ASSETS / "scene_graphs"))[:2]
    if case == "no graphs":
        (tmp_path / "out" / "qa").mkdir(parents=True)
        with pytest.raises(FileNotFoundError, match="no scene graphs"):
            open_output(tmp_path / "out")
    elif case == "duplicate ids":
        write_graphs(sg / "part-00000.jsonl", graphs)
        write_graphs(sg / "part-00001.jsonl", graphs[:1])
        with pytest.raises(ValueError, match="appears in more than one graph"):
            open_output(tmp_path / "out")
    elif case == "bad json":
        write_graphs(sg / "part-00000.jsonl", graphs)
        with (sg / "part-00000.jsonl").open("ab") as f:
            f.write(b"{not json\n")
        with pytest.raises(RecordError, match="part-00000.jsonl:3"):
            open_output(tmp_path / "out")
    else:
        with pytest.raises(FileNotFoundError):
            open_output(tmp_path / "missing")


def test_a_shard_changed_after_opening_is_reported(tmp_path: Path, out_dir: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(out_dir, out)
    output = open_output(out)
    shard = out / "scene_graphs" / "part-00000.jsonl"
    lines = shard.read_bytes().splitlines(keepends=True)
    shard.write_bytes(lines[1] + lines[0] + b"".join(lines[2:]))
    with pytest.raises(RecordError, match="did the shard change"):
        output.graph(output.image_ids[0])


def test_image_root_falls_back_to_the_export_options(tmp_path: Path, out_dir: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(out_dir, out)
    (out / "scene_graphs" / "annotate.json").unlink()
    (out / "scene_graphs" / "import_report.json").write_text("{}")
    assert open_output(out).image_root is None
    (out / "llava" / "export.json").write_text(json.dumps({"options": {"image_root": str(ASSETS / "images")}}))
    assert open_output(out).image_root == ASSETS / "images"


@pytest.mark.parametrize("values", [[], ["a"], ["", "é", "a/b c", "x" * 300, "日本"]])
def test_string_column_round_trips(values: list[str]) -> None:
    col = StringColumn(values)
    assert len(col) == len(values) and list(col) == values and col[:] == values
    if values:
        assert col[-1] == values[-1]
    with pytest.raises(IndexError):
        col[len(values)]


def test_statuses_follow_the_real_curate_stage(tmp_path: Path) -> None:
    curate_stage = pytest.importorskip("mmgen.curate", reason="the curate stage is not in this tree")
    out = build_output(tmp_path)
    summary = curate_stage.curate(out / "qa", out / "curated", curate_stage.CurateOptions(max_answer_share=0.3,
                                                                                          min_answer_count=2))
    output = open_output(out)
    kept = {r["id"] for r in all_records(out, "curated")}
    entries = {e["id"]: e for e in read_jsonl(out / "curated" / "dropped.jsonl")}
    assert summary["dropped"] == len(entries) > 0 and output.count(status="curated") == len(kept)
    for r in output.records(status="dropped"):
        assert (r["_reason"], r["_detail"]) == (entries[r["id"]]["filter"], entries[r["id"]]["reason"])
    assert output.drop_reasons == dict(Counter(e["filter"] for e in entries.values()).most_common())


@pytest.mark.parametrize("offset, limit", [(0, None), (0, 2), (1, 2), (3, 10), (9, 1)])
def test_images_pages(out_dir: Path, offset: int, limit: int | None) -> None:
    output = open_output(out_dir)
    everything = output.images()
    end = None if limit is None else offset + limit
    assert output.images(offset=offset, limit=limit) == everything[offset:end]
    assert output.count_images() == len(everything) == 5
    assert output.count_images(program="single.exists") == len(output.images(program="single.exists"))
