"""The Ray engine (``--engine ray``) on a local Ray instance: annotators as an actor pool, programs as
tasks, the same shard files as the local engine record for record; a fatal worker error stops the run.

Ray starts once per session (slow: several seconds), with two CPUs and no dashboard.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmgen.engine import EngineError, EngineOptions
from mmgen.stages.annotate import annotate
from mmgen.stages.generate import generate
from programs.base import ProgramConfig
from scene_graphs.io import read_jsonl
from tests.test_engine_fakes import SlowFactory, fake_pipeline, make_images, shard_bytes, summary_of

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ray_local():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    started = not ray.is_initialized()
    if started:
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
                 runtime_env={"env_vars": {"PYTHONPATH": path}})  # workers import tests.test_engine_fakes
    yield ray
    if started:
        ray.shutdown()


def test_ray_matches_local_record_for_record(ray_local, tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    make_images(images, 9)
    (images / "broken.png").write_bytes(b"nope")
    local_sg, ray_sg = tmp_path / "sg-local", tmp_path / "sg-ray"
    annotate(images, local_sg, factory=fake_pipeline, shard_size=4)
    s = annotate(images, ray_sg, factory=fake_pipeline, shard_size=4, options=EngineOptions(engine="ray", workers=2))
    assert shard_bytes(ray_sg) == shard_bytes(local_sg) and len(shard_bytes(ray_sg)) == 3
    assert (ray_sg / "errors.jsonl").read_bytes() == (local_sg / "errors.jsonl").read_bytes()
    assert (s["graphs"], s["skipped"], s["this_run"]["engine"]) == (9, {"not-an-image": 1}, "ray")

    local_qa, ray_qa = tmp_path / "qa-local", tmp_path / "qa-ray"
    generate(local_sg, local_qa, ProgramConfig(seed=3))
    generate(local_sg, ray_qa, ProgramConfig(seed=3), options=EngineOptions(engine="ray", workers=2))
    assert shard_bytes(ray_qa) == shard_bytes(local_qa)
    records = [r for p in sorted(ray_qa.glob("part-*.jsonl")) for r in read_jsonl(p)]
    assert len(records) == summary_of(ray_qa)["records"] == summary_of(local_qa)["records"] > 9
    assert summary_of(ray_qa)["per_program"] == summary_of(local_qa)["per_program"]

    # a rerun on Ray resumes: nothing left to do
    again = generate(local_sg, ray_qa, ProgramConfig(seed=3), options=EngineOptions(engine="ray", workers=2))
    assert (again["shards_done"], again["shards_resumed"]) == (0, 3)


class _NoWeights(SlowFactory):
    def __call__(self):
        from scene_graphs.perception.weights import WeightsError

        raise WeightsError("no weights for the test detector here")


def test_ray_actor_that_cannot_load_stops_the_run(ray_local, tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    make_images(images, 2)
    with pytest.raises(EngineError, match="no weights for the test detector"):
        annotate(images, tmp_path / "sg", factory=_NoWeights(), options=EngineOptions(engine="ray"))
