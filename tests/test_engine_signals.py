"""Interrupts reach a worker process more than once (the kernel's parent-death signal comes once per
reparenting, a terminal's Ctrl-C reaches the workers and the driver forwards it): only the first may
stop the shard, and none may break the checkpoint it is writing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mmgen.engine.core import ShardFiles, ShardOutcome, ShardWorker

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, PR_SET_PDEATHSIG")


class SlowSaver(ShardWorker):
    """Finishes a unit every 20 ms (noted in ``OUT/done-SHARD.txt`` as it happens) and, when interrupted,
    writes a checkpoint of every finished unit slowly (half, 0.5 s, the rest), so a second interrupt
    lands in the middle of it."""

    checkpoints = True

    def run(self, payload: Any, files: ShardFiles) -> ShardOutcome:
        finished: list[str] = []
        log = files.out / f"done-{files.index}.txt"
        try:
            with files.checkpointing():
                for i in range(payload["units"]):
                    time.sleep(0.02)
                    finished.append(f"unit {i}\n")
                    with log.open("a") as f:
                        f.write(finished[-1])
        except KeyboardInterrupt:
            target = files.checkpoint_path()
            tmp = target.with_name("." + target.name + ".tmp")
            text = "".join(finished)
            with tmp.open("w") as f:
                f.write(text[: len(text) // 2])
                f.flush()
                (files.out / f"saving-{files.index}").touch()
                time.sleep(0.5)
                f.write(text[len(text) // 2:])
            os.replace(tmp, target)
            raise
        with files.path().open("w") as f:
            f.writelines(finished)
        return ShardOutcome(units=len(finished), records=len(finished))


_DRIVER = """
import sys
from mmgen.engine.core import ShardJob, run_local
from tests import test_engine_signals
worker = getattr(test_engine_signals, sys.argv[2])()
jobs = [ShardJob(sys.argv[1], "slow", i, f"key{i}", "c", {"units": 1000}) for i in range(2)]
for _ in run_local(worker, jobs, 2):
    pass
"""


def _workers(pid: int) -> list[int]:
    return [int(k) for t in os.listdir(f"/proc/{pid}/task")
            for k in Path(f"/proc/{pid}/task/{t}/children").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start(out: Path) -> tuple[subprocess.Popen[bytes], list[int]]:
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(out), "SlowSaver"], cwd=ROOT, env=env,
                            start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all((out / f"done-{i}.txt").exists() for i in (0, 1)):
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.01)
    time.sleep(0.3)  # a dozen units each
    workers = _workers(proc.pid)
    assert len(workers) == 2, workers
    return proc, workers


def _wait_saving(out: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all((out / f"saving-{i}").exists() for i in (0, 1)):
        time.sleep(0.005)
    assert all((out / f"saving-{i}").exists() for i in (0, 1)), "the workers did not start saving"


def _check_kept(out: Path) -> None:
    for i in (0, 1):
        done = (out / f"done-{i}.txt").read_text()
        saved = [p.read_text() for p in (out / ".reuse").glob(f"key{i}.c*.jsonl")]
        assert saved == [done], f"shard {i}: {len(done.splitlines())} unit(s) finished, saved {saved!r:.80}"


def test_the_drivers_kill_9_then_more_signals_keep_every_finished_unit(tmp_path: Path) -> None:
    """kill -9 of the driver; while the workers save, the parent-death signal again and a SIGINT."""
    from mmgen.engine.core import PARENT_DEATH_SIGNAL

    out = tmp_path / "out"
    proc, workers = _start(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _wait_saving(out)
    for pid in workers:
        for sig in (PARENT_DEATH_SIGNAL, signal.SIGINT):
            os.kill(pid, sig)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(map(_alive, workers)):
        time.sleep(0.02)
    survivors = [p for p in workers if _alive(p)]
    for p in survivors:
        os.kill(p, signal.SIGKILL)
    assert not survivors, "workers outlived the driver by 5 s"
    _check_kept(out)
    assert not list(out.glob("part-*"))  # no shard was complete


def test_ctrl_c_reaching_the_workers_twice_keeps_every_finished_unit(tmp_path: Path) -> None:
    """A terminal's Ctrl-C goes to the whole process group; the driver forwards it to each worker."""
    out = tmp_path / "out"
    proc, workers = _start(out)
    os.killpg(proc.pid, signal.SIGINT)
    _wait_saving(out)
    for pid in workers:
        os.kill(pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and b"KeyboardInterrupt" in err
    assert not [p for p in workers if _alive(p)]
    _check_kept(out)


def test_a_worker_that_does_not_checkpoint_exits_at_once_when_the_driver_dies(tmp_path: Path) -> None:
    """Generate's workers save nothing: the driver's death ends them within a second, not after the
    watchdog's grace."""
    from mmgen.engine.core import ORPHAN_GRACE_SECONDS

    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(out), "Plain"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all((out / f"done-{i}.txt").exists() for i in (0, 1)):
        assert proc.poll() is None
        time.sleep(0.01)
    workers = _workers(proc.pid)
    assert len(workers) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone_by = time.monotonic() + min(2.0, ORPHAN_GRACE_SECONDS / 2)
    while time.monotonic() < gone_by and any(map(_alive, workers)):
        time.sleep(0.02)
    survivors = [p for p in workers if _alive(p)]
    for p in survivors:
        os.kill(p, signal.SIGKILL)
    assert not survivors


class Plain(ShardWorker):
    """A worker without checkpoints (like generate's): notes each unit, saves nothing when stopped."""

    def run(self, payload: Any, files: ShardFiles) -> ShardOutcome:
        for i in range(payload["units"]):
            time.sleep(0.02)
            with (files.out / f"done-{files.index}.txt").open("a") as f:
                f.write(f"unit {i}\n")
        return ShardOutcome(units=payload["units"])
