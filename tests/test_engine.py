"""The engine (mmgen.engine): resuming after kill -9, ranks, workers, config clashes, failures, summaries.

The byte-for-byte checks compare every ``part-*`` file (records and sidecars) of two output folders.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.engine import (
    EngineError,
    EngineOptions,
    Plan,
    ShardFiles,
    ShardOutcome,
    ShardSpec,
    ShardWorker,
    Stage,
    parse_shard,
    run_stage,
)
from mmgen.stages.annotate import annotate
from mmgen.stages.generate import generate
from programs.base import ProgramConfig
from scene_graphs.io import read_jsonl, write_graphs
from scene_graphs.synthetic import random_graph
from tests.test_engine_fakes import SlowFactory, fake_pipeline, make_images, shard_bytes, summary_of

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = "objects"  # one family: fast, and enough records per graph
N_SHARDS = 240


@pytest.fixture(scope="module")
def sg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Many small graph shards (two graphs each), so a run lasts long enough to be killed mid-way."""
    root = tmp_path_factory.mktemp("engine") / "sg"
    rng = np.random.default_rng(3)
    for s in range(N_SHARDS):
        write_graphs(root / f"part-{s:05d}.jsonl",
                     [random_graph(rng, f"g{s:04d}{k}", n_objects=int(rng.integers(1, 5)), masks=False, depth=False,
                                   text=False) for k in range(2)])
    return root


def _cli(*args: str, cwd: Path = ROOT) -> list[str]:
    return [sys.executable, "-m", "mmgen", "-q", *args]


@pytest.fixture(scope="module")
def reference(sg: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted run (in-process) to compare against."""
    out = tmp_path_factory.mktemp("ref") / "qa"
    generate(sg, out, ProgramConfig(seed=7), [PROGRAMS])
    return out


def _wait_then_kill(proc: subprocess.Popen, out: Path, min_markers: int, timeout: float = 60.0) -> None:
    """SIGKILL ``proc`` once ``min_markers`` shards are complete and a shard is being written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail("the run finished before it could be killed; give it more shards")
        if out.is_dir():
            names = os.listdir(out)
            if sum(n.endswith(".done.json") for n in names) >= min_markers and \
                    any(n.startswith(".part-") and n.endswith(".tmp") for n in names):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return
        time.sleep(0.002)
    proc.kill()
    pytest.fail("the run never reached the point to kill it")


def test_kill_9_mid_shard_then_rerun_equals_an_uninterrupted_run(sg: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "qa"
    args = _cli("generate", str(sg), "-o", str(out), "--seed", "7", "--programs", PROGRAMS)
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_then_kill(proc, out, min_markers=10)
    assert proc.returncode == -signal.SIGKILL
    leftovers = [n for n in os.listdir(out) if n.endswith(".tmp")]
    assert leftovers, "killed while no shard was being written"
    done_before = sum(n.endswith(".done.json") for n in os.listdir(out))
    assert 10 <= done_before < N_SHARDS

    subprocess.run(args, cwd=ROOT, check=True)
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]  # the killed run's temp files are gone
    assert shard_bytes(out) == shard_bytes(reference)
    summary = summary_of(out)
    assert summary["complete"] and summary["shards_resumed"] == done_before
    assert summary["shards_done"] == N_SHARDS - done_before
    ids = [r["id"] for p in sorted(out.glob("part-*.jsonl")) for r in read_jsonl(p)]
    assert len(ids) == len(set(ids)) == summary["records"]  # nothing lost, nothing twice
    assert summary == {**summary_of(reference), "shards_done": summary["shards_done"],
                       "shards_resumed": summary["shards_resumed"], "seconds": summary["seconds"],
                       "this_run": summary["this_run"]}


_ANNOTATE_SCRIPT = """
import sys
from mmgen.stages.annotate import annotate
from tests.test_engine_fakes import SlowFactory
annotate(sys.argv[1], sys.argv[2], factory=SlowFactory(delay=0.02), shard_size=3)
"""


def test_annotate_killed_mid_shard_resumes_exactly(tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    make_images(images, 45)
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    ref = tmp_path / "ref"
    annotate(images, ref, factory=SlowFactory(delay=0.02), shard_size=3)
    out = tmp_path / "sg"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", _ANNOTATE_SCRIPT, str(images), str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:  # kill while a shard's images are being annotated
        if out.is_dir() and sum(n.endswith(".done.json") for n in os.listdir(out)) >= 3:
            time.sleep(0.03)
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = sum(n.endswith(".done.json") for n in os.listdir(out))
    assert 3 <= partial < 16
    summary = annotate(images, out, factory=SlowFactory(delay=0.02), shard_size=3)
    assert summary["shards_resumed"] == partial and summary["complete"]
    assert shard_bytes(out) == shard_bytes(ref)
    assert (out / "errors.jsonl").read_bytes() == (ref / "errors.jsonl").read_bytes()
    assert summary["graphs"] == 45 and summary["skipped"] == {"not-an-image": 1}


# ------------------------------------------------------------------------------------ ranks and workers
@pytest.mark.parametrize("world", [2, 3])
def test_ranks_together_equal_one_run(sg: Path, reference: Path, tmp_path: Path, world: int) -> None:
    shared, parts = tmp_path / "shared", []
    for rank in range(world):
        opts = EngineOptions(rank=rank, world_size=world)
        s = generate(sg, shared, ProgramConfig(seed=7), [PROGRAMS], options=opts)
        assert s["complete"] == (rank == world - 1)
        alone = tmp_path / f"rank{rank}"
        generate(sg, alone, ProgramConfig(seed=7), [PROGRAMS], options=opts)
        mine = shard_bytes(alone)
        assert {int(n[5:10]) % world for n in mine} == {rank}  # shard i belongs to rank i % world
        parts.append(mine)
    union = {k: v for part in parts for k, v in part.items()}
    assert sum(len(p) for p in parts) == len(union)
    assert union == shard_bytes(reference) == shard_bytes(shared)
    assert (shared / "manifest.json").read_bytes() == (reference / "manifest.json").read_bytes()
    assert summary_of(shared)["records"] == summary_of(reference)["records"]


def test_annotate_ranks_and_workers_match_one_process(tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    make_images(images, 14)
    one = tmp_path / "one"
    annotate(images, one, factory=fake_pipeline, shard_size=3)
    two = tmp_path / "two"
    annotate(images, two, factory=fake_pipeline, shard_size=3, options=EngineOptions(workers=2))
    split = tmp_path / "split"
    for rank in range(2):
        annotate(images, split, factory=fake_pipeline, shard_size=3, options=EngineOptions(rank=rank, world_size=2))
    assert shard_bytes(one) == shard_bytes(two) == shard_bytes(split)
    assert len(shard_bytes(one)) == 5
    assert summary_of(split)["graphs"] == summary_of(two)["graphs"] == 14


def test_generate_workers_cli_matches(sg: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "qa"
    res = CliRunner().invoke(main, ["-q", "generate", str(sg), "-o", str(out), "--seed", "7", "--programs", PROGRAMS,
                                    "--workers", "2", "--shard", "1/2"])
    assert res.exit_code == 0, res.output
    assert shard_bytes(out) == {k: v for k, v in shard_bytes(reference).items() if int(k[5:10]) % 2 == 1}


# ------------------------------------------------------------------------------------ resuming and config
def test_rerun_keeps_complete_shards_and_redoes_damaged_ones(sg: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "qa"
    generate(sg, out, ProgramConfig(seed=7), [PROGRAMS])
    stamp = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.jsonl")}
    (out / "part-00003.jsonl").unlink()                                    # lost
    with (out / "part-00005.jsonl").open("ab") as f:                       # grew (a foreign append)
        f.write(b'{"id": "intruder"}\n')
    (out / "part-00007.done.json").unlink()                               # never marked complete
    (out / ".part-00009.jsonl.abc.tmp").write_bytes(b"half")               # a killed writer's leftover
    (out / "part-99999.jsonl").write_bytes(b"old")                         # from a larger earlier input
    s = generate(sg, out, ProgramConfig(seed=7), [PROGRAMS])
    assert (s["shards_done"], s["shards_resumed"]) == (3, N_SHARDS - 3)
    assert shard_bytes(out) == shard_bytes(reference)
    changed = {n for n, t in stamp.items() if (out / n).stat().st_mtime_ns != t}
    assert changed == {"part-00003.jsonl", "part-00005.jsonl", "part-00007.jsonl"}
    assert not (out / ".part-00009.jsonl.abc.tmp").exists() and not (out / "part-99999.jsonl").exists()


def test_changed_input_shard_is_redone(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    graphs = [random_graph(rng, f"i{k}", masks=False, depth=False) for k in range(6)]
    sg = tmp_path / "sg"
    write_graphs(sg / "part-00000.jsonl", graphs[:3])
    write_graphs(sg / "part-00001.jsonl", graphs[3:])
    out = tmp_path / "qa"
    generate(sg, out, ProgramConfig(seed=2))
    before = (out / "part-00001.jsonl").read_bytes()
    time.sleep(0.01)
    write_graphs(sg / "part-00001.jsonl", graphs[3:5])
    s = generate(sg, out, ProgramConfig(seed=2))
    assert (s["shards_done"], s["shards_resumed"], s["graphs"]) == (1, 1, 5)
    assert (out / "part-00001.jsonl").read_bytes() != before


def test_other_config_is_refused_unless_overwrite(sg: Path, tmp_path: Path) -> None:
    out = tmp_path / "qa"
    runner = CliRunner()
    base = ["generate", str(sg), "-o", str(out), "--programs", PROGRAMS, "--limit", "10"]
    assert runner.invoke(main, [*base, "--seed", "1"]).exit_code == 0
    res = runner.invoke(main, [*base, "--seed", "2"])
    assert res.exit_code == 1 and "another config" in res.output and "--overwrite" in res.output
    assert "config" in res.output
    res = runner.invoke(main, [*base, "--seed", "2", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "manifest.json").read_text())["config"]["seed"] == 2
    images = tmp_path / "imgs"
    make_images(images, 4)
    annotate(images, tmp_path / "sg", factory=fake_pipeline, shard_size=2)
    with pytest.raises(EngineError, match="shard_size"):
        annotate(images, tmp_path / "sg", factory=fake_pipeline, shard_size=3)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "part-00000.jsonl").write_text("{}\n")
    with pytest.raises(EngineError, match="no manifest"):
        generate(sg, tmp_path / "foreign", ProgramConfig())


def test_limit(sg: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "qa"
    s = generate(sg, out, ProgramConfig(seed=7), [PROGRAMS], options=EngineOptions(limit=5))
    assert s["graphs"] == 5 and s["shards"] == 3
    ref = [r for p in sorted(reference.glob("part-*.jsonl")) for r in read_jsonl(p)]
    got = [r for p in sorted(out.glob("part-*.jsonl")) for r in read_jsonl(p)]
    # the first five graphs in shard order (some graphs yield no record, so not the first five images of ref)
    graphs = [g for p in sorted(sg.glob("part-*.jsonl")) for g in read_jsonl(p)]
    first5 = {g["path"] or g["image_id"] for g in graphs[:5]}
    assert got and got == [r for r in ref if r["images"][0] in first5]
    images = tmp_path / "imgs"
    make_images(images, 9)
    a = annotate(images, tmp_path / "sg", factory=fake_pipeline, shard_size=4, options=EngineOptions(limit=6))
    assert (a["images"], a["graphs"], a["shards"]) == (6, 6, 2)


# ------------------------------------------------------------------------------------ failures
class _Flaky(ShardWorker):
    fatal = (KeyError,)

    def __init__(self, broken: set[int], fatal_at: int | None = None) -> None:
        self.broken, self.fatal_at = broken, fatal_at

    def run(self, payload, files: ShardFiles) -> ShardOutcome:
        if payload == self.fatal_at:
            raise KeyError("the model is gone")
        if payload in self.broken:
            raise RuntimeError(f"disk hiccup on shard {payload}")
        with open(files.path(".jsonl"), "w") as f:
            f.write(json.dumps({"n": payload}) + "\n")
        return ShardOutcome(units=1, records=1)


class _Numbers(Stage):
    name = "numbers"
    unit = "number"

    def __init__(self, n: int, worker: _Flaky) -> None:
        self.n, self._worker = n, worker

    def identity(self):
        return {"n": self.n}

    def plan(self, out, options):
        return Plan([ShardSpec(i, f"k{i}", 1) for i in range(self.n)])

    def payload(self, spec):
        return spec.index

    def worker(self):
        return self._worker


def test_a_failing_shard_is_retried_by_the_next_run_and_fatal_errors_stop(tmp_path: Path) -> None:
    s = run_stage(_Numbers(6, _Flaky({2, 4})), tmp_path / "out")
    assert s["shards_failed"] == [2, 4] and not s["complete"] and s["shards_missing"] == 2 and s["records"] == 4
    s = run_stage(_Numbers(6, _Flaky(set())), tmp_path / "out")
    assert s["complete"] and (s["shards_done"], s["shards_resumed"]) == (2, 4)
    with pytest.raises(EngineError, match="the model is gone"):
        run_stage(_Numbers(6, _Flaky(set(), fatal_at=1)), tmp_path / "other")


def test_summary_and_errors_and_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = tmp_path / "imgs"
    make_images(images, 7)
    (images / "empty.png").write_bytes(b"")
    out = tmp_path / "sg"
    s = annotate(images, out, factory=SlowFactory(fail_on="img0004.png"), shard_size=3,
                 options=EngineOptions(progress=True))
    err = capsys.readouterr().err
    assert "annotate: 100%" in err and "8/8" in err and "image/s" in err  # tqdm with rate
    assert s["skipped"] == {"annotate-failed": 1, "empty": 1} and s["errors"] == 2 and s.bad_inputs == 2
    errors = list(read_jsonl(out / "errors.jsonl"))
    assert [(e["path"], e["stage"], e["kind"]) for e in errors] == [
        ("d1/img0004.png", "annotate", "annotate-failed"), ("empty.png", "decode", "empty")]
    assert "chokes on d1/img0004.png" in errors[0]["error"]
    assert {"plan", "list", "dedup", "shards.decode", "shards.detect", "shards.write", "shards.total"} <= set(s["seconds"])
    saved = json.loads((out / "annotate.json").read_text())
    assert saved["images_root"] == str(images.resolve()) and saved["graphs"] == 6 == s["graphs"]
    assert saved["stages"]["detect"]["options"]["fail_on"] == "img0004.png"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "annotate" and manifest["inputs"]["images"] == 8
    assert {"mmgen", "python", "numpy"} <= set(manifest["versions"])


@pytest.mark.parametrize("text, expected", [("0/1", (0, 1)), ("3/4", (3, 4))])
def test_parse_shard(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize("args, message", [
    (["--shard", "4/4"], "0 <= RANK < WORLD_SIZE"),
    (["--shard", "x"], "RANK/WORLD_SIZE"),
    (["--rank", "1"], "go together"),
    (["--rank", "2", "--world-size", "2"], "not below"),
    (["--shard", "0/2", "--rank", "0", "--world-size", "2"], "give one or the other"),
    (["--address", "auto"], "only applies with --engine ray"),
])
def test_engine_option_errors(sg: Path, tmp_path: Path, args: list[str], message: str) -> None:
    res = CliRunner().invoke(main, ["generate", str(sg), "-o", str(tmp_path / "x"), *args])
    assert res.exit_code == 2 and message in res.output, res.output
