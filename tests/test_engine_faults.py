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
        script = ("import sys\nfrom mmgen.engine import EngineOptions\nfrom mmgen.engine.annotate import annotate\n"
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

    from mmgen.engine.annotate import annotate
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
    from mmgen.engine.annotate import annotate
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
