"""Faults found by injection: worker processes outliving a killed driver, ``import --overwrite`` into its
own input, and an added image redoing every annotate shard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scene_graphs.io import write_graphs
from scene_graphs.synthetic import random_graph

ROOT = Path(__file__).resolve().parents[1]


def _children(pid: int) -> set[int]:
    """Every descendant process of ``pid`` (from ``/proc``)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                kids = Path(f"/proc/{p}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            for k in map(int, kids):
                if k not in found:
                    found.add(k)
                    todo.append(k)
    return found


def _alive(pid: int) -> bool:
    """Running (not gone and not a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("verb", ["generate", "annotate"])
def test_kill_9_of_the_driver_leaves_no_worker_behind(tmp_path: Path, verb: str) -> None:
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if verb == "generate":
        sg = tmp_path / "sg"
        rng = np.random.default_rng(0)
        for s in range(400):
            write_graphs(sg / f"part-{s:05d}.jsonl", [random_graph(rng, f"g{s}", n_objects=3, masks=False,
                                                                   depth=False, text=False)])
        args = [sys.executable, "-m", "mmgen", "-q", "generate", str(sg), "-o", str(out), "--workers", "2",
                "--programs", "objects"]
    else:
        from tests.test_engine_fakes import make_images

        make_images(tmp_path / "imgs", 200)
        script = ("import sys\nfrom mmgen.engine import EngineOptions\nfrom mmgen.stages.annotate import annotate\n"
                  "from tests.test_engine_fakes import SlowFactory\n"
                  "annotate(sys.argv[1], sys.argv[2], factory=SlowFactory(delay=0.05), shard_size=2,"
                  " options=EngineOptions(workers=2))\n")
        args = [sys.executable, "-c", script, str(tmp_path / "imgs"), str(out)]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    workers: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and any(n.endswith(".done.json") for n in os.listdir(out)):
            workers = _children(proc.pid)
            if len(workers) >= 2:
                break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    assert len(workers) >= 2, f"expected two worker processes, saw {sorted(workers)}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.05)
    survivors = sorted(p for p in workers if _alive(p))
    for p in survivors:  # do not leave them running whatever the outcome
        os.kill(p, signal.SIGKILL)
    assert not survivors, f"worker processes {survivors} outlived the killed driver"


# ------------------------------------------------------------------------------ an added image
def _annotated(summary) -> int:
    """Images the models ran on in a run: images of the shards done now minus the graphs reused (every
    shard reusing something is done now)."""
    return summary["this_run"]["images"] - summary["counts"].get("reuse", {}).get("graphs", 0)


@pytest.mark.parametrize("change", ["add-first", "add-middle", "remove-first", "edit-one"])
def test_a_changed_image_reannotates_only_itself(tmp_path: Path, change: str) -> None:
    from PIL import Image

    from mmgen.stages.annotate import annotate
    from tests.test_engine_fakes import fake_pipeline, make_images, shard_bytes

    images = tmp_path / "imgs"
    paths = make_images(images, 14)
    out = tmp_path / "sg"
    first = annotate(images, out, factory=fake_pipeline, shard_size=3)
    assert _annotated(first) == 14
    expected_new = 1
    if change == "add-first":
        Image.new("RGB", (20, 12), (200, 10, 10)).save(images / "d0" / "aaa.png")
    elif change == "add-middle":
        Image.new("RGB", (20, 12), (10, 200, 10)).save(images / "d1" / "img0003b.png")
    elif change == "remove-first":
        paths[0].unlink()
        expected_new = 0
    else:
        Image.new("RGB", (24, 16), (1, 2, 250)).save(paths[4])
    again = annotate(images, out, factory=fake_pipeline, shard_size=3)
    # an addition or removal moves every later shard; an edit touches one shard
    assert again["complete"] and again["shards_done"] >= (1 if change == "edit-one" else 3)
    assert _annotated(again) == expected_new  # only the changed image goes through the models again
    assert not (out / ".reuse").exists()
    fresh = tmp_path / "fresh"
    annotate(images, fresh, factory=fake_pipeline, shard_size=3)
    assert shard_bytes(out) == shard_bytes(fresh)


def test_reuse_survives_a_kill_and_ranks(tmp_path: Path) -> None:
    """Shards set aside by a run that dies are still reused by the next one, rank by rank."""
    from PIL import Image

    from mmgen.engine import EngineOptions
    from mmgen.stages.annotate import annotate
    from tests.test_engine_fakes import fake_pipeline, make_images, shard_bytes

    images = tmp_path / "imgs"
    make_images(images, 10)
    out = tmp_path / "sg"
    annotate(images, out, factory=fake_pipeline, shard_size=2)
    Image.new("RGB", (20, 12), (200, 10, 10)).save(images / "d0" / "aaa.png")
    # rank 0 alone sets its shards aside and redoes them; rank 1's shards wait in .reuse meanwhile
    r0 = annotate(images, out, factory=fake_pipeline, shard_size=2, options=EngineOptions(rank=0, world_size=2))
    assert not r0["complete"] and (out / ".reuse").is_dir()
    r1 = annotate(images, out, factory=fake_pipeline, shard_size=2, options=EngineOptions(rank=1, world_size=2))
    assert r1["complete"] and not (out / ".reuse").exists()
    total = r0["counts"].get("reuse", {}).get("graphs", 0)  # rank 0's summary holds its own shards only
    assert r1["graphs"] == 11 and total >= 1
    fresh = tmp_path / "fresh"
    annotate(images, fresh, factory=fake_pipeline, shard_size=2)
    assert shard_bytes(out) == shard_bytes(fresh)


# ------------------------------------------------------------------------------ interrupted inside a shard
_BIG_SHARDS = """
import sys
from mmgen.engine import EngineOptions
from mmgen.stages.annotate import annotate
from tests.test_engine_fakes import SlowFactory
annotate(sys.argv[1], sys.argv[2], factory=SlowFactory(delay=0.12), shard_size=40,
         options=EngineOptions(workers=int(sys.argv[3])), checkpoint_seconds=float(sys.argv[4]))
"""


def _checkpointed(out: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in (out / ".reuse").glob("*.c*.jsonl"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how, workers, every", [
    ("SIGTERM", 1, 1000.0), ("SIGINT", 2, 1000.0), ("SIGKILL", 2, 1000.0), ("SIGKILL", 1, 0.0)])
def test_an_interrupt_keeps_every_finished_image(tmp_path: Path, how: str, workers: int, every: float) -> None:
    """Ctrl-C, kill and the driver's kill -9 (workers checkpoint when their parent dies; alone, a
    checkpoint every batch) keep the images finished inside unfinished 40-image shards."""
    from mmgen.stages.annotate import annotate
    from tests.test_engine_fakes import SlowFactory, make_images, shard_bytes

    images, out = tmp_path / "imgs", tmp_path / "sg"
    make_images(images, 80)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", _BIG_SHARDS, str(images), str(out), str(workers), str(every)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not (out / "inputs.jsonl").exists():
        time.sleep(0.01)
    while workers > 1 and time.monotonic() < deadline and len(_children(proc.pid)) < workers:
        time.sleep(0.01)
    # a worker starts in up to ~2 s (imports on 2 busy cores); then a batch of 8 images takes 0.96 s and a
    # 40-image shard 4.8 s: at 3 s each running shard has a finished batch and no shard is complete
    time.sleep(3.0)
    assert proc.poll() is None
    workers_seen = _children(proc.pid)
    proc.send_signal(getattr(signal, how))
    _, err = proc.communicate(timeout=30)
    if how != "SIGKILL":
        assert "interrupted: 0 of 2 shard(s) complete" in err.decode() and "checkpointed" in err.decode()
        assert "rerun the same command" in err.decode()
    time.sleep(0.5)
    assert not [p for p in workers_seen if _alive(p)]
    kept = _checkpointed(out)
    assert kept >= 8 * workers, f"only {kept} image(s) kept"
    again = annotate(images, out, factory=SlowFactory(delay=0.12), shard_size=40)
    assert again["complete"] and _annotated(again) == 80 - kept
    assert not (out / ".reuse").exists()
    fresh = tmp_path / "fresh"
    annotate(images, fresh, factory=SlowFactory(delay=0.12), shard_size=40)  # provenance holds the delay
    assert shard_bytes(out) == shard_bytes(fresh)


# ------------------------------------------------------------------------------ progress inside shards
def test_workers_report_progress_inside_shards(tmp_path: Path) -> None:
    from mmgen.engine import EngineOptions
    from mmgen.stages.annotate import AnnotateStage
    from mmgen.engine.core import ShardJob, UnitCounter, run_local
    from mmgen.inputs import InputSource
    from tests.test_engine_fakes import fake_pipeline, make_images

    images = tmp_path / "imgs"
    make_images(images, 9)
    stage = AnnotateStage(InputSource.parse(images), fake_pipeline, {"test": 1}, shard_size=4)
    out = tmp_path / "sg"
    out.mkdir()
    plan = stage.plan(out, EngineOptions())
    for workers in (1, 2):
        counter = UnitCounter()
        jobs = [ShardJob(str(out), stage.name, s.index, s.key, "c", stage.payload(s)) for s in plan.shards]
        markers = list(run_local(stage.worker(), jobs, workers, counter))
        assert sorted(m["units"] for m in markers) == [1, 4, 4]
        assert counter.value == 9  # every image, counted as it was done (not per shard)
