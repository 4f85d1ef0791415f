"""Running an engine stage on Ray Data (``--engine ray [--address ...]``).

The pending shards of a run become the rows of a Ray dataset (one row per shard: the
:class:`~mmgen.engine.core.ShardJob`, its payload included, as JSON). Each row goes through
``map_batches`` with ``batch_size=1``:

* stages that load models (:attr:`Stage.stateful`, e.g. annotate) run in an **actor pool**
  (``ActorPoolStrategy(size=--workers)``, each actor with the stage's ``num_gpus``/``num_cpus``):
  every actor loads the pipeline once and then takes shard after shard;
* the other stages (generate, generate --multi) run as plain **CPU tasks**
  (``TaskPoolStrategy(size=--workers)``, ``num_cpus=1``).

Each row runs :func:`~mmgen.engine.core.safe_execute`, the very function the local engine runs, so
the shard files, markers and records are the same byte for byte; the driver only reads back the
markers (for the progress bar and the summary). Output must therefore go to a folder every Ray
node can write (a shared file system): the workers write their shards there themselves.

A shard that fails comes back as a failure row (the run goes on; a rerun retries it); a fatal error
(missing weights) or an actor that cannot load its models stops the run. Payloads are sent in
windows of at most :data:`WINDOW_BYTES`, so the driver never holds every shard's payload at once;
Ray Data retries a task that died with its node, and rewriting a shard is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from typing import Any

import orjson

from ..extras import require
from .core import RUNNERS, EngineOptions, ShardJob, ShardWorker, Stage, safe_execute

log = logging.getLogger("mmgen.ray")

WINDOW_BYTES = 64 << 20
"""Payload bytes handed to one Ray dataset at most (the rest wait for the next window)."""


def _job(blob: Any) -> ShardJob:
    return ShardJob(**orjson.loads(bytes(blob)))


def _encode(result: dict[str, Any]) -> bytes:
    return orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)


class ShardActor:
    """One Ray actor: loads the stage's worker once, then runs the shards it is given."""

    def __init__(self, worker: ShardWorker) -> None:
        self.worker = worker
        self.setup_error: str | None = None
        try:
            worker.setup()
        except Exception as exc:  # noqa: BLE001 - reported per shard, as fatal, to the driver
            self.setup_error = f"{type(exc).__name__}: {exc}"

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[bytes]]:
        out = []
        for blob in batch["job"]:
            job = _job(blob)
            if self.setup_error is not None:
                out.append(_encode({"shard": job.index, "failed": self.setup_error, "fatal": True}))
            else:
                out.append(_encode(safe_execute(self.worker, job)))
        return {"result": out}


def run_task(batch: dict[str, Any], worker: ShardWorker) -> dict[str, list[bytes]]:
    """One Ray task: set the worker up and run the shards of the batch."""
    return ShardActor(worker)(batch)


def init_ray(options: EngineOptions) -> bool:
    """Connect to (``options.address``) or start a local Ray; returns whether this call started it."""
    ray = require("ray", "ray", "--engine ray")

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "ignore_reinit_error": True,
                              "logging_level": logging.WARNING}
    if options.address is not None:
        kwargs["address"] = options.address
    ray.init(**kwargs)
    return True


def _windows(jobs: Iterable[ShardJob]) -> Iterator[list[dict[str, bytes]]]:
    rows: list[dict[str, bytes]] = []
    size = 0
    for job in jobs:
        blob = orjson.dumps(asdict(job))
        rows.append({"job": blob})
        size += len(blob)
        if size >= WINDOW_BYTES:
            yield rows
            rows, size = [], 0
    if rows:
        yield rows


def run_ray(stage: Stage, jobs: Iterable[ShardJob], options: EngineOptions) -> Iterator[dict[str, Any]]:
    """Run ``jobs`` on Ray Data; yields each shard's marker (or failure) as it comes back."""
    ray = require("ray", "ray", "--engine ray")
    require("ray", "ray.data", "--engine ray")

    started = init_ray(options)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the engine shows its own bar
    ctx.print_on_execution_start = False
    if not log.isEnabledFor(logging.DEBUG):  # Ray Data's per-dataset chatter, unless mmgen -v
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    resources = stage.ray_options(options)
    worker = stage.worker()
    try:
        for rows in _windows(jobs):
            ds = ray.data.from_items(rows, override_num_blocks=len(rows))
            concurrency = max(1, min(options.workers, len(rows)))
            if stage.stateful:
                ds = ds.map_batches(ShardActor, fn_constructor_kwargs={"worker": worker}, batch_size=1,
                                    compute=ray.data.ActorPoolStrategy(size=concurrency), **resources)
            else:
                ds = ds.map_batches(run_task, fn_kwargs={"worker": worker}, batch_size=1,
                                    compute=ray.data.TaskPoolStrategy(size=concurrency), **resources)
            rows_back = ds.iter_rows()
            try:
                for row in rows_back:
                    yield orjson.loads(bytes(row["result"]))
            finally:
                close = getattr(rows_back, "close", None)
                if close is not None:
                    close()
    finally:
        if started:
            ray.shutdown()


RUNNERS["ray"] = run_ray
