"""evolve and curate as engine stages: markers, resuming after ``kill -9``, changed inputs, workers and ranks
(byte-identical output), curate's plan file (a rerun is a no-op), counted at a fake server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mmgen.cli import main
from scene_graphs.io import read_jsonl, write_jsonl
from tests.llm_server import FakeServer, Reply, scripted_model

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets" / "scene_graphs"
PROGRAMS = ("single.count_objects", "single.exists", "single.attribute_color", "single.relative_position")
N_SHARDS = 4


@pytest.fixture(scope="module")
def qa_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample graphs' QA records split into four shards (with the generate manifest's config)."""
    from mmgen.stages.generate import generate
    from programs.base import ProgramConfig

    gen = tmp_path_factory.mktemp("gen")
    generate(ASSETS, gen, ProgramConfig(seed=0), list(PROGRAMS))
    records = list(read_jsonl(gen / "part-00000.jsonl"))
    assert len(records) >= 2 * N_SHARDS
    out = tmp_path_factory.mktemp("qa")
    size = -(-len(records) // N_SHARDS)
    for i in range(N_SHARDS):
        write_jsonl(out / f"part-{i:05d}.jsonl", records[i * size:(i + 1) * size])
    manifest = json.loads((gen / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({k: manifest[k] for k in ("stage", "config", "programs")}))
    return out


def llm_args(server: FakeServer, *extra: str) -> list[str]:
    return ["--llm-base-url", server.url, "--llm-model", "fake", "--no-llm-cache", "--llm-concurrency", "1", *extra]


def evolve_args(qa: Path, out: Path, server: FakeServer, *extra: str) -> list[str]:
    return ["evolve", str(qa), "-o", str(out), "--scene-graphs", str(ASSETS), *llm_args(server), *extra]


def invoke(args: list[str]) -> Any:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def shard_bytes(out: Path) -> dict[str, bytes]:
    """Every record file of a stage folder: the shards, their drops and dropped.jsonl."""
    files = sorted(out.glob("part-*.jsonl")) + sorted((out / ".dropped").glob("part-*.jsonl")) + [out / "dropped.jsonl"]
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in files}


def marker(out: Path, i: int) -> dict[str, Any]:
    return json.loads((out / f"part-{i:05d}.done.json").read_text())


@pytest.fixture(scope="module")
def reference(qa_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted evolve run (one worker) to compare the others with."""
    out = tmp_path_factory.mktemp("ref") / "evo"
    with FakeServer(scripted_model()) as srv:
        invoke(evolve_args(qa_dir, out, srv))
        assert srv.count == sum(marker(out, i)["info"]["llm"]["requests"] for i in range(N_SHARDS)) > 0
    return out


# --------------------------------------------------------------------------------------- evolve
def test_evolve_writes_a_marker_per_shard_and_accounts_for_every_record(qa_dir: Path, reference: Path) -> None:
    n_in = [sum(1 for _ in read_jsonl(p)) for p in sorted(qa_dir.glob("part-*.jsonl"))]
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["stage"] == "evolve" and manifest["config"] and manifest["shards"] == N_SHARDS
    assert manifest["evolve"]["rounds"] == 1 and len(manifest["qa_inputs"]) == N_SHARDS
    for i in range(N_SHARDS):
        m = marker(reference, i)
        assert m["units"] == n_in[i] and m["records"] == sum(1 for _ in read_jsonl(reference / f"part-{i:05d}.jsonl"))
        assert f".dropped/part-{i:05d}.jsonl" in m["files"]
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["complete"] and summary["inputs"] == sum(n_in) and summary["evolved"] > 0
    assert summary["llm"]["requests"] == summary["llm_this_run"]["requests"] > 0
    dropped = list(read_jsonl(reference / "dropped.jsonl"))
    assert len(dropped) == summary["dropped"]


def test_evolve_kill_9_then_rerun_loses_nothing_and_asks_only_for_unfinished_shards(
        qa_dir: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "evo"
    first_two = sum(marker(reference, i)["info"]["llm"]["requests"] for i in range(2))
    release = threading.Event()
    model = scripted_model()

    def behaviour(body: dict, n: int) -> Reply:
        if n >= first_two:  # the first request of the third shard: hang until the process is killed
            release.wait(60)
        return model(body, n)

    with FakeServer(behaviour) as srv:
        proc = subprocess.Popen([sys.executable, "-m", "mmgen", *evolve_args(qa_dir, out, srv)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while srv.count <= first_two and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            assert srv.count == first_two + 1
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
            release.set()
    assert proc.returncode == -signal.SIGKILL
    assert (out / "part-00001.done.json").exists() and not (out / "part-00002.done.json").exists()
    # what a torn write of the third shard could have left: garbage under its name and a temporary file
    (out / "part-00002.jsonl").write_bytes(b'{"id": "half-written", "quest')
    (out / ".part-00002.jsonl.abc123.tmp").write_bytes(b"junk")
    with FakeServer(scripted_model()) as srv:
        invoke(evolve_args(qa_dir, out, srv))
        assert srv.count == sum(marker(reference, i)["info"]["llm"]["requests"] for i in (2, 3))
    assert shard_bytes(out) == shard_bytes(reference)  # nothing lost, nothing written twice
    assert not list(out.glob(".*.tmp"))
    ids = [r["id"] for p in sorted(out.glob("part-*.jsonl")) for r in read_jsonl(p)]
    assert len(ids) == len(set(ids))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["shards_resumed"] == 2 and summary["shards_done"] == 2 and summary["complete"]


def test_evolve_workers_and_ranks_give_the_same_bytes(qa_dir: Path, reference: Path, tmp_path: Path) -> None:
    with FakeServer(scripted_model()) as srv:
        invoke(evolve_args(qa_dir, tmp_path / "w2", srv, "--workers", "2"))
        assert srv.count == json.loads((reference / "summary.json").read_text())["llm"]["requests"]
        invoke(evolve_args(qa_dir, tmp_path / "ranks", srv, "--shard", "1/2"))
        assert sorted(p.name for p in (tmp_path / "ranks").glob("*.done.json")) == \
            ["part-00001.done.json", "part-00003.done.json"]
        invoke(evolve_args(qa_dir, tmp_path / "ranks", srv, "--shard", "0/2"))
    assert shard_bytes(tmp_path / "w2") == shard_bytes(reference)
    assert shard_bytes(tmp_path / "ranks") == shard_bytes(reference)
    assert json.loads((tmp_path / "ranks" / "summary.json").read_text())["complete"]


def test_evolve_redoes_only_an_input_shard_that_changed(qa_dir: Path, reference: Path, tmp_path: Path) -> None:
    qa = tmp_path / "qa"
    shutil.copytree(qa_dir, qa)
    out = tmp_path / "evo"
    shutil.copytree(reference, out)
    shutil.copystat(qa_dir / "part-00000.jsonl", qa / "part-00000.jsonl")  # copies keep size and time: same keys
    with FakeServer(scripted_model()) as srv:
        invoke(evolve_args(qa, out, srv))
        assert srv.count == 0  # nothing changed: every shard is complete
        records = list(read_jsonl(qa / "part-00001.jsonl"))
        write_jsonl(qa / "part-00001.jsonl", records[:-1])
        invoke(evolve_args(qa, out, srv))
        assert 0 < srv.count <= marker(reference, 1)["info"]["llm"]["requests"]
    before, after = shard_bytes(reference), shard_bytes(out)
    changed = sorted(k for k in before if before[k] != after.get(k))
    assert changed and set(changed) <= {"part-00001.jsonl", ".dropped/part-00001.jsonl", "dropped.jsonl"}
    roots = [r.get("evolved", {}).get("root_id", r["id"]) for r in read_jsonl(out / "part-00001.jsonl")]
    assert records[-1]["id"] not in roots and records[0]["id"] in roots


def test_evolve_other_settings_are_refused_not_deleted(qa_dir: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "evo"
    shutil.copytree(reference, out)
    before = shard_bytes(out)
    with FakeServer(scripted_model()) as srv:
        result = CliRunner().invoke(main, evolve_args(qa_dir, out, srv, "--rounds", "2"))
        assert result.exit_code == 1 and "--overwrite" in result.output and "evolve" in result.output
        assert srv.count == 0
    assert shard_bytes(out) == before


# --------------------------------------------------------------------------------------- curate
def judge_score(data: dict, body: dict) -> dict:
    return {"score": sum(map(ord, data["record"]["question"])) % 10 + 1, "reason": "scored"}


def curate_args(qa: Path, out: Path, server: FakeServer, *extra: str) -> list[str]:
    return ["curate", str(qa), "-o", str(out), "--judge", "--judge-top", "0.5", "--scene-graphs", str(ASSETS),
            "--max-answer-share", "0.5", "--min-answer-count", "1", *llm_args(server), *extra]


def stamps(out: Path) -> dict[str, int]:
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in ("summary.json", "errors.jsonl", "manifest.json", "dropped.jsonl")}


def test_curate_plans_first_and_a_rerun_with_the_same_plan_is_a_no_op(qa_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cur"
    with FakeServer(scripted_model(judge=judge_score)) as srv:
        args = curate_args(qa_dir, out, srv)
        args[args.index("--no-llm-cache")] = "--llm-cache"
        args.insert(args.index("--llm-cache") + 1, str(tmp_path / "c.sqlite"))
        invoke(args)
        sent = srv.count
        assert sent > 0
        plan = json.loads((out / "plan.json").read_text())
        decisions = list(read_jsonl(out / "decisions.jsonl"))
        before = stamps(out)
        time.sleep(0.01)
        invoke(args)
        assert srv.count == sent  # the judge replies come from the cache
    assert stamps(out) == before  # the same plan: no shard, plan or decision file rewritten
    summary = json.loads((out / "summary.json").read_text())
    assert summary["shards_resumed"] == N_SHARDS and summary["shards_done"] == 0 and summary["complete"]
    # the plan says what every shard applies: each drop is a decision of its shard
    assert [s["name"] for s in plan["shards"]] == [f"part-{i:05d}.jsonl" for i in range(N_SHARDS)]
    assert sum(s["records"] for s in plan["shards"]) == summary["inputs"] == summary["kept"] + summary["dropped"]
    dropped = list(read_jsonl(out / "dropped.jsonl"))
    planned = {(d["shard"], d["line"]): d for d in decisions if "drop" in d}
    assert len(planned) == len(dropped) == summary["dropped"]
    for d in dropped:
        p = planned[(d["shard"], d["line"])]
        assert (p["id"], p["drop"]) == (d["id"], [d["filter"], d["reason"]])
    assert {d["filter"] for d in dropped} >= {"judge"}
    assert sum(1 for d in decisions if "judge" in d) == summary["judge"]["judged"]


def test_curate_workers_and_ranks_give_the_same_bytes(qa_dir: Path, tmp_path: Path) -> None:
    with FakeServer(scripted_model(judge=judge_score)) as srv:
        invoke(curate_args(qa_dir, tmp_path / "w1", srv))
        invoke(curate_args(qa_dir, tmp_path / "w2", srv, "--workers", "2"))
        invoke(curate_args(qa_dir, tmp_path / "ranks", srv, "--shard", "1/2"))
        assert not (tmp_path / "ranks" / "part-00000.jsonl").exists()
        invoke(curate_args(qa_dir, tmp_path / "ranks", srv, "--shard", "0/2"))
    reference = shard_bytes(tmp_path / "w1")
    assert len(reference) == 2 * N_SHARDS + 1
    for name in ("w2", "ranks"):
        assert shard_bytes(tmp_path / name) == reference, name
        for side in ("plan.json", "decisions.jsonl"):
            assert (tmp_path / name / side).read_bytes() == (tmp_path / "w1" / side).read_bytes()


def test_curate_redoes_only_the_shards_whose_input_or_decisions_changed(qa_dir: Path, tmp_path: Path) -> None:
    qa = tmp_path / "qa"
    shutil.copytree(qa_dir, qa)
    out = tmp_path / "cur"
    args = ["curate", str(qa), "-o", str(out), "--max-answer-share", "1"]
    invoke(args)
    before = stamps(out)
    first = next(iter(read_jsonl(qa / "part-00000.jsonl")))
    last = list(read_jsonl(qa / "part-00003.jsonl"))
    write_jsonl(qa / "part-00003.jsonl", [*last, dict(first, id=first["id"] + "-again")])  # a duplicate of shard 0's
    time.sleep(0.01)
    invoke(args)
    after = stamps(out)
    changed = sorted(k for k in after if after[k] != before.get(k))
    assert changed == [".dropped/part-00003.jsonl", "decisions.jsonl", "part-00003.done.json", "part-00003.jsonl",
                       "plan.json"]
    dropped = {d["id"]: d for d in read_jsonl(out / "dropped.jsonl")}
    assert dropped[first["id"] + "-again"]["filter"] == "exact_duplicate"
    assert first["id"] in {r["id"] for r in read_jsonl(out / "part-00000.jsonl")}
