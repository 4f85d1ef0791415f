"""``import`` on the engine: a rerun is a no-op (the source is not read again), a kill while placing or
reading then a rerun gives a fresh run's bytes, workers and ranks give the same bytes, a changed source
is read again, the output never overlaps the source."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmgen.engine import EngineOptions
from mmgen.engine.core import EngineError
from mmgen.stages.import_graphs import PlaceWorker, import_graphs
from tests.test_engine_fakes import shard_bytes
from tests.test_formats import dump, provision_sample, save_image

ROOT = Path(__file__).resolve().parents[1]


def coco_many(root: Path, n: int = 24) -> Path:
    """``n`` images (the first three on disk), one or two boxes each."""
    for i in range(3):
        save_image(root / "images" / f"{i}.jpg", 20 + i, 10, fmt="JPEG")
    images = [{"id": i + 1, "file_name": f"{i}.jpg", "width": 20 + i if i < 3 else 30, "height": 10}
              for i in range(n)]
    anns = [{"id": 100 + k, "image_id": 1 + k % n, "category_id": 1 + k % 2, "bbox": [1, 1, 5 + k % 4, 4],
             "iscrowd": 0} for k in range(n + n // 2)]
    return dump(root / "ann" / "instances.json", {"images": images, "annotations": anns,
                                                   "categories": [{"id": 1, "name": "cup"}, {"id": 2, "name": "dog"}]})


def _import(src: Path, out: Path, root: Path, **kw) -> dict:
    return import_graphs("coco", src, out, image_root=root / "images", shard_size=kw.pop("shard_size", 4),
                         options=EngineOptions(**kw))


def _forbid_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    from scene_graphs.formats import coco

    def refuse(*args, **kwargs):
        raise AssertionError("the source was read again")

    monkeypatch.setattr(coco, "read", refuse)


def test_rerun_is_a_no_op_without_reading_the_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, out = coco_many(tmp_path), tmp_path / "out"
    first = _import(src, out, tmp_path)
    assert first["complete"] and first["graphs"] == 24 and first["shards"] == 6
    assert json.loads((out / "import_report.json").read_text())["graphs"] == 24
    assert not list(tmp_path.glob(".out.staging-*"))  # removed once complete
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("part-*")}
    _forbid_reading(monkeypatch)
    again = _import(src, out, tmp_path)
    assert again["complete"] and again["shards_done"] == 0 and again["shards_resumed"] == 6
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("part-*")} == before


def test_a_changed_source_is_read_again(tmp_path: Path) -> None:
    src, out = coco_many(tmp_path, 24), tmp_path / "out"
    _import(src, out, tmp_path)
    src = coco_many(tmp_path, 13)  # fewer images: fewer shards, left-over ones removed
    again = _import(src, out, tmp_path)
    assert again["complete"] and again["graphs"] == 13 and again["shards"] == 4
    fresh = tmp_path / "fresh"
    _import(src, fresh, tmp_path)
    assert shard_bytes(out) == shard_bytes(fresh)


@pytest.mark.parametrize("run", [dict(workers=2), dict(rank=0, world_size=2)])
def test_workers_and_ranks_give_one_runs_bytes(tmp_path: Path, run: dict) -> None:
    src = coco_many(tmp_path)
    one, other = tmp_path / "one", tmp_path / "other"
    _import(src, one, tmp_path)
    if "rank" in run:
        part = _import(src, other, tmp_path, rank=0, world_size=2)
        assert not part["complete"]
        _import(src, other, tmp_path, rank=1, world_size=2)
    else:
        _import(src, other, tmp_path, **run)
    assert shard_bytes(other) == shard_bytes(one) and len(shard_bytes(one)) == 6
    assert not list(tmp_path.glob(".other.staging-*"))


def test_provision_depth_sidecars_are_placed(tmp_path: Path) -> None:
    src = provision_sample(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    for out, workers in ((one, 1), (two, 2)):
        import_graphs("provision", src, out, allow_pickle=True, shard_size=1, options=EngineOptions(workers=workers))
    files = shard_bytes(one)
    assert any(n.endswith(".depth.npz") for n in files) and shard_bytes(two) == files


def test_an_interrupt_while_placing_then_a_rerun_gives_the_same_bytes(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    src, out = coco_many(tmp_path), tmp_path / "out"
    place = PlaceWorker.run

    def stop_at_third(self, payload, files):
        if payload["index"] == 3:
            raise KeyboardInterrupt
        return place(self, payload, files)

    monkeypatch.setattr(PlaceWorker, "run", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        _import(src, out, tmp_path)
    assert len(list(out.glob("part-*.done.json"))) == 3 and list(tmp_path.glob(".out.staging-*"))
    monkeypatch.setattr(PlaceWorker, "run", place)
    _forbid_reading(monkeypatch)  # the staged shards are taken as they are
    again = _import(src, out, tmp_path)
    assert again["shards_done"] == 3 and again["shards_resumed"] == 3
    monkeypatch.undo()
    fresh = tmp_path / "fresh"
    _import(src, fresh, tmp_path)
    assert shard_bytes(out) == shard_bytes(fresh)


def test_an_interrupt_while_reading_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scene_graphs.formats import coco

    src, out = coco_many(tmp_path), tmp_path / "out"
    read = coco.read

    def stop_midway(*args, **kwargs):
        for n, g in enumerate(read(*args, **kwargs)):
            if n == 10:
                raise KeyboardInterrupt
            yield g

    monkeypatch.setattr(coco, "read", stop_midway)
    with pytest.raises(KeyboardInterrupt):
        _import(src, out, tmp_path)
    assert not out.exists() and not list(tmp_path.glob(".out.staging-*"))


_SLOW_PLACING = """
import sys, time
from mmgen.engine import EngineOptions
from mmgen.stages import import_graphs as import_stage
place = import_stage.PlaceWorker.run
def slow(self, payload, files):
    time.sleep(0.3)
    return place(self, payload, files)
import_stage.PlaceWorker.run = slow
import_stage.import_graphs("coco", sys.argv[1], sys.argv[2], image_root=sys.argv[3], shard_size=2,
                           options=EngineOptions(workers=int(sys.argv[4])))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kill -9")
@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_while_placing_then_a_rerun_gives_the_same_bytes(tmp_path: Path, workers: int) -> None:
    src, out = coco_many(tmp_path), tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_PLACING, str(src), str(out), str(tmp_path / "images"),
                             str(workers)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and \
            not (out.is_dir() and len(list(out.glob("part-*.done.json"))) >= 3):
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(out.glob("part-*.done.json")))
    assert 3 <= done < 12
    again = import_graphs("coco", src, out, image_root=tmp_path / "images", shard_size=2)
    assert again["complete"] and again["shards_resumed"] >= 3 and again["shards"] == 12
    fresh = tmp_path / "fresh"
    import_graphs("coco", src, fresh, image_root=tmp_path / "images", shard_size=2)
    assert shard_bytes(out) == shard_bytes(fresh)
    assert not list(tmp_path.glob(".out.staging-*"))


def test_another_config_needs_overwrite_and_overwrite_replaces(tmp_path: Path) -> None:
    src, out = coco_many(tmp_path), tmp_path / "out"
    _import(src, out, tmp_path)
    with pytest.raises(EngineError, match="another config"):
        _import(src, out, tmp_path, shard_size=5)
    (out / "stray.txt").write_text("x")
    again = _import(src, out, tmp_path, shard_size=5, overwrite=True)
    assert again["complete"] and again["shards"] == 5 and not (out / "stray.txt").exists()
    fresh = tmp_path / "fresh"
    _import(src, fresh, tmp_path, shard_size=5)
    assert shard_bytes(out) == shard_bytes(fresh)


@pytest.mark.parametrize("where", ["src-folder", "holds-src"])
def test_overwrite_into_the_source_is_refused_before_anything_is_touched(tmp_path: Path, where: str) -> None:
    src = coco_many(tmp_path / "data")
    out = src.parent if where == "src-folder" else tmp_path
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(EngineError, match="overlaps the input"):
        import_graphs("coco", src, out, options=EngineOptions(overwrite=True))
    assert sorted(tmp_path.rglob("*")) == before
