"""The multi-image generate stage and its verification: ``mmgen generate --multi`` writes sets and QA
shards (resumable, identical for any worker count and hash seed), ``mmgen verify`` re-derives every
multi-image record from the graphs of its whole set and catches tampering."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.stages.generate_multi import build_index
from mmgen.log import LOGGER_NAMES
from mmgen.store import GraphStore
from mmgen.check.verify import verify
from scene_graphs.io import RecordError, write_graphs
from scene_graphs.synthetic import random_graph


@pytest.fixture(scope="module")
def sg(tmp_path_factory) -> Path:
    """Two graph shards (with depth sidecars) of small random graphs sharing few labels."""
    root = tmp_path_factory.mktemp("sg")
    rng = np.random.default_rng(21)
    labels = ("person", "dog", "car", "cup", "chair", "horse")
    graphs = [random_graph(rng, f"img{i:03d}", labels=labels, n_objects=int(rng.integers(1, 7)), masks=False)
              for i in range(48)]
    write_graphs(root / "part-00000.jsonl", graphs[:30])
    write_graphs(root / "part-00001.jsonl", graphs[30:])
    return root


def run(*args: str) -> object:
    """Invoke the CLI, leaving the project loggers as they were (the CLI reconfigures them, and the
    module-scoped fixtures below run outside the per-test restoring fixture)."""
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in map(logging.getLogger, LOGGER_NAMES)]
    try:
        return CliRunner().invoke(main, ["-q", *args])
    finally:
        for lg, handlers, level, propagate in saved:
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for p in sorted(folder.glob("part-*.jsonl")) for line in p.read_text().splitlines()]


@pytest.fixture(scope="module")
def qa(sg, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("qa") / "multi"
    result = run("generate", str(sg), "-o", str(out), "--multi", "--sets", "36", "--set-size", "2-5",
                 "--sets-per-shard", "10", "--seed", "4")
    assert result.exit_code == 0, result.output
    return out


def test_generate_writes_sets_shards_manifest_and_summary(qa):
    sets = [json.loads(line) for line in (qa / "sets.jsonl").read_text().splitlines()]
    assert len(sets) == 36 and all(2 <= len(s) <= 5 and len(set(s)) == len(s) for s in sets)
    manifest = json.loads((qa / "manifest.json").read_text())
    assert manifest["stage"] == "generate-multi" and manifest["sets"] == 36
    assert manifest["outputs"] == [f"part-0000{i}.jsonl" for i in range(4)]
    assert manifest["grouping"]["strategy"] == "shared-category"
    recs = records(qa)
    summary = json.loads((qa / "summary.json").read_text())
    assert summary["records"] == len(recs) > 100 and summary["sets"] == 36 and summary["images"] == 48
    assert sum(summary["per_program"].values()) == len(recs)
    assert {tuple(r["images"]) for r in recs} <= {tuple(s) for s in sets}
    assert all(r["program"].startswith("multi.") for r in recs)
    assert len({r["id"] for r in recs}) == len(recs)


def test_verify_accepts_the_run(qa, sg):
    report = verify(qa, sg)
    assert report.ok, report.problems[:5]
    assert report.checked == len(records(qa))
    result = run("verify", str(qa), "--scene-graphs", str(sg))
    assert result.exit_code == 0, result.output


def _tamper(rec: dict, how: str, all_recs: list[dict]) -> None:
    if how == "value":
        rec["value"] = rec["value"] + 1 if isinstance(rec["value"], int) else "tampered"
    elif how == "answer":
        rec["answer"] = rec["answer"] + " (really)"
    elif how == "plan":
        rec["plan"] = dict(rec["plan"], label="unicorn") if "label" in rec["plan"] else {"label": "unicorn"}
    elif how == "image order":
        rec["images"] = list(reversed(rec["images"]))
    elif how == "unknown image":
        rec["images"] = rec["images"][:-1] + ["no-such-image"]


@pytest.mark.parametrize("how, expect", [
    ("value", "stored answer"), ("answer", "different records"), ("plan", "not valid"),
    ("image order", ""), ("unknown image", "no scene graph"),
])
def test_verify_catches_a_tampered_record(qa, sg, tmp_path, how, expect):
    bad = tmp_path / "qa"
    bad.mkdir()
    for p in qa.iterdir():
        (bad / p.name).write_bytes(p.read_bytes())
    shard = bad / "part-00001.jsonl"
    recs = [json.loads(line) for line in shard.read_text().splitlines()]
    target = next(r for r in recs if r["program"] == "multi.most_of_category") if how == "value" else recs[3]
    _tamper(target, how, recs)
    shard.write_text("".join(json.dumps(r) + "\n" for r in recs))
    report = verify(bad, sg)
    assert not report.ok
    assert any(expect in p for p in report.problems), report.problems
    result = run("verify", str(bad), "--scene-graphs", str(sg))
    assert result.exit_code == 1


def test_verify_a_lone_file_of_multi_records(qa, sg, tmp_path):
    """Without a manifest (records copied elsewhere) all graphs are loaded and each set is checked."""
    lone = tmp_path / "some.jsonl"
    first_sets = {tuple(json.loads(line)) for line in (qa / "sets.jsonl").read_text().splitlines()[:12]}
    recs = [r for r in records(qa) if tuple(r["images"]) in first_sets]
    lone.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert verify(lone, sg).ok
    recs[7]["value"] = "tampered"
    lone.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert not verify(lone, sg).ok


def test_resume_redoes_only_missing_shards(qa, sg, tmp_path):
    out = tmp_path / "again"
    args = ("generate", str(sg), "-o", str(out), "--multi", "--sets", "36", "--set-size", "2-5",
            "--sets-per-shard", "10", "--seed", "4")
    assert run(*args).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.glob("part-*.jsonl")}
    assert before == {p.name: p.read_bytes() for p in qa.glob("part-*.jsonl")}
    (out / "part-00002.jsonl").unlink()
    assert run(*args).exit_code == 0
    assert {p.name: p.read_bytes() for p in out.glob("part-*.jsonl")} == before
    assert json.loads((out / "summary.json").read_text())["shards_resumed"] == 3
    changed = run("generate", str(sg), "-o", str(out), "--multi", "--sets", "20", "--seed", "4")
    assert changed.exit_code == 1 and "--overwrite" in changed.output
    assert run("generate", str(sg), "-o", str(out), "--multi", "--sets", "20", "--seed", "4",
               "--overwrite").exit_code == 0
    assert json.loads((out / "manifest.json").read_text())["sets"] == 20


def test_random_and_file_strategies(sg, tmp_path):
    out = tmp_path / "random"
    assert run("generate", str(sg), "-o", str(out), "--multi", "--group-strategy", "random",
               "--set-size", "3").exit_code == 0
    sets = [json.loads(line) for line in (out / "sets.jsonl").read_text().splitlines()]
    assert len(sets) == 16 and all(len(s) == 3 for s in sets)  # 48 images, one pass
    groups = tmp_path / "groups.jsonl"
    groups.write_text('["img005", "img001"]\n["img010", "img020", "img030", "img040"]\n')
    out = tmp_path / "file"
    assert run("generate", str(sg), "-o", str(out), "--multi", "--groups", str(groups)).exit_code == 0
    assert (out / "sets.jsonl").read_text() == '["img005","img001"]\n["img010","img020","img030","img040"]\n'
    assert {tuple(r["images"]) for r in records(out)} <= {("img005", "img001"), ("img010", "img020", "img030", "img040")}
    assert verify(out, sg).ok


@pytest.mark.parametrize("args, message", [
    (["--sets", "3"], "only apply with --multi"),
    (["--reuse"], "only apply with --multi"),
    (["--multi", "--set-size", "7"], "set size"),
    (["--multi", "--set-size", "1-3"], "set size"),
    (["--multi", "--group-strategy", "file"], "needs --groups"),
])
def test_usage_errors(sg, tmp_path, args, message):
    result = run("generate", str(sg), "-o", str(tmp_path / "x"), *args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_groups_file_conflicts(sg, tmp_path):
    groups = tmp_path / "g.jsonl"
    groups.write_text('["img001", "img002"]\n')
    result = run("generate", str(sg), "-o", str(tmp_path / "x"), "--multi", "--groups", str(groups),
                 "--group-strategy", "random")
    assert result.exit_code == 2 and "--groups" in result.output
    groups.write_text('["img001", "nope"]\n')
    result = run("generate", str(sg), "-o", str(tmp_path / "y"), "--multi", "--groups", str(groups))
    assert result.exit_code == 1 and f"{groups}:1" in result.output and "nope" in result.output


def test_identical_across_hash_seeds_and_workers(sg, tmp_path):
    outputs = []
    for hashseed, workers in (("0", "1"), ("12345", "2")):
        out = tmp_path / f"qa-{hashseed}"
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        subprocess.run([sys.executable, "-m", "mmgen", "-q", "generate", str(sg), "-o", str(out), "--multi",
                        "--sets", "24", "--sets-per-shard", "8", "--workers", workers, "--seed", "5"],
                       check=True, env=env)
        outputs.append({p.name: p.read_bytes() for p in sorted(out.glob("*.jsonl"))})
    assert outputs[0] == outputs[1]
    assert outputs[0].pop("errors.jsonl") == b""  # the engine's list of skipped inputs: none here
    assert len(outputs[0]) == 4 and all(outputs[0].values())  # sets.jsonl + three shards


def test_graph_store_notices_a_changed_shard(sg, tmp_path):
    shard = tmp_path / "part-00000.jsonl"
    shard.write_bytes((sg / "part-00000.jsonl").read_bytes())
    depth = sg / "part-00000.depth.npz"
    (tmp_path / "part-00000.depth.npz").write_bytes(depth.read_bytes())
    index = build_index([shard])
    where = {x: (str(shard), int(o)) for x, o in zip(index.ids, index.offset)}
    with GraphStore(where, capacity=2) as store:
        g = store.get(index.ids[3])
        assert g.image_id == index.ids[3] and g.depth is not None
        assert store.get(index.ids[3]) is g
        for x in index.ids[:5]:
            store.get(x)
        with pytest.raises(KeyError):
            store.get("nope")
    shard.write_bytes(b"\n" + (sg / "part-00000.jsonl").read_bytes())
    with GraphStore(where) as store, pytest.raises(RecordError, match="since it was indexed"):
        store.get(index.ids[3])


def test_single_image_verify_is_unchanged(sg, tmp_path):
    out = tmp_path / "single"
    assert run("generate", str(sg), "-o", str(out), "--programs", "single.count_objects").exit_code == 0
    assert verify(out, sg).ok
    shard = out / "part-00000.jsonl"
    recs = [json.loads(line) for line in shard.read_text().splitlines()]
    recs[0]["value"] = 99
    shard.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert not verify(out, sg).ok
