"""The engine every stage runs on: shards, resuming, ranks, worker processes, progress and summaries.

A :class:`Stage` (annotate, generate, generate --multi, ...) says what its shards are
(:meth:`Stage.plan`) and gives a light, picklable :class:`ShardWorker` that turns one shard's payload
into files. :func:`run_stage` does the rest, the same way for every stage, locally or on Ray
(:mod:`mmgen.engine.ray_data`).

**Output folder** of any stage::

    OUT/manifest.json         the run: stage, config (and its fingerprint), inputs, outputs, versions, seed
    OUT/part-NNNNN.jsonl      one shard's records (plus sidecars such as part-NNNNN.depth.npz)
    OUT/part-NNNNN.done.json  its completion marker: config fingerprint, input key, output sizes, counts,
                              skipped inputs with reasons, seconds per step
    OUT/errors.jsonl          every input that was skipped, with the reason (listing first, then shard order)
    OUT/summary.json          counts over all complete shards, time per step, what this run did

**Completion and resuming.** Output files are written to a temporary name and renamed into place,
then the marker is written the same way. A shard is complete when its marker exists, carries the
run's config fingerprint and the shard's *input key* (a digest of exactly what the shard reads) and
every file it lists has the listed size. After any interruption, ``kill -9`` included, a shard is
either complete or redone whole on the next run, so no record is lost or written twice. Temporary
files left by a killed process are removed (for the shards the process owns) when it starts. A
shard whose inputs changed (an image edited or added) gets a new key and is redone; shards left
over from a larger input are removed.

**Reuse.** A stage with :attr:`Stage.reuses` (annotate) keeps the files of every shard it is about to
redo and of shards left over from a larger input in ``OUT/.reuse/`` until the run is complete, so a
worker takes the records of unchanged inputs from there: an image added or removed moves the later
shards, but only the changed images go through the models again.

**Worker processes** end with the driver (``prctl(PR_SET_PDEATHSIG)`` on Linux and a watchdog thread
checking the parent everywhere, see :func:`die_with_parent`): ``kill -9`` of the main process leaves
no worker behind, and a worker that checkpoints saves the units it finished before it exits.

**Config.** :meth:`Stage.identity` is what shapes the records (program config, perception settings,
shard size...). An output folder made with another identity is refused unless ``overwrite``; with
``overwrite`` the owned shards are all redone.

**Ranks.** Shard ``i`` belongs to rank ``i % world_size``: each machine runs the same command with its
``rank`` (into a shared folder or into separate folders whose ``part-*`` files are then put
together); the union is byte for byte what one run writes. Every rank rewrites the same manifest
and a summary of all complete shards it can see (``complete`` once every shard is there).

**Failures.** An input a stage cannot use (a corrupt image, a malformed graph line) is skipped and
recorded in the marker and ``errors.jsonl``. A shard whose worker raises is logged and left without
a marker (the run goes on; the summary counts it as missing and a rerun retries it), except for the
stage's :attr:`ShardWorker.fatal` errors (missing weights...), which stop the run at once.

**Memory.** The driver holds one :class:`ShardSpec` per shard (a few hundred bytes) and the payloads
of at most ``2 * workers`` shards; a worker holds one shard's data. Summaries are summed marker by
marker and ``errors.jsonl`` is streamed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import signal
import sys
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from scene_graphs.io import atomic_write, dumps

from ..store.folder import (ERRORS, MANIFEST, SUMMARY, StageFolder, marker_path, read_json, shard_name,
                            write_json)

log = logging.getLogger("mmgen.engine")

REUSE_DIR = ".reuse"
CHECKPOINT_INFIX = ".c"
"""Checkpoints of an unfinished shard: ``OUT/.reuse/KEY.cNNNNN.jsonl`` (see :class:`ShardFiles`)."""
DUPLICATE = "duplicate"
"""Error kind of an exact duplicate image (reported, but not a bad input for ``--strict``)."""
MAX_SHARDS_SORTED = 100_000
"""Shard names have five digits: beyond this many shards, names no longer sort in shard order."""

_SHARD_FILE = re.compile(r"^part-(\d+)\.")
_TEMP_FILE = re.compile(r"^\.part-(\d+)\..*\.tmp$")


class EngineError(ValueError):
    """A run cannot start or was stopped (config clash, a fatal worker error); one line, names the folder."""


def fingerprint(data: Any) -> str:
    """Short stable digest of JSON-able settings."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_output_apart(out: Path, inputs: Iterable[Path], *, may_nest: Iterable[Path] = ()) -> None:
    """Refuse an output folder that is, holds or lies inside one of ``inputs`` (replacing it would delete
    the input), or that is or holds one of ``may_nest`` (folders the output may lie inside, such as an
    images root)."""
    where = out.resolve()
    for path in inputs:
        src = path.resolve()
        if where == src or src.is_relative_to(where) or (src.is_dir() and where.is_relative_to(src)):
            raise EngineError(f"output folder {out} overlaps the input {path}; choose an output folder outside it")
    for path in may_nest:
        src = path.resolve()
        if where == src or src.is_relative_to(where):
            raise EngineError(f"output folder {out} holds {path}, which the run reads; choose another output folder")


MAX_WARNINGS_PER_PROCESS = 20
_warned = 0


def warn_skipped(message: str, logger: str = "mmgen.engine") -> None:
    """Log a skipped input as it happens (the first :data:`MAX_WARNINGS_PER_PROCESS` per process; all
    of them are in ``errors.jsonl``)."""
    global _warned
    _warned += 1
    if _warned <= MAX_WARNINGS_PER_PROCESS:
        logging.getLogger(logger).warning("%s", message)
    elif _warned == MAX_WARNINGS_PER_PROCESS + 1:
        logging.getLogger(logger).warning("more inputs skipped; they are all listed in errors.jsonl")


# --------------------------------------------------------------------------------------- stage API
@dataclass(frozen=True)
class ShardSpec:
    """One shard of a plan: its number, the digest of what it reads, and how many units it holds
    (images, graphs, sets; ``None`` when unknown before reading)."""

    index: int
    key: str
    units: int | None = None


@dataclass
class Plan:
    """What :meth:`Stage.plan` returns: the shards, manifest entries (inputs, outputs...), seconds
    spent planning per step and plan-level counts (images listed...)."""

    shards: list[ShardSpec]
    manifest: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)


@dataclass
class ShardOutcome:
    """What a worker did with one shard: ``units`` read, ``records`` written, named counters
    (``per_program``, ``notes``...), the inputs it skipped (``path``/``image_id``, ``stage``, ``kind``,
    ``error``) and seconds per step."""

    units: int = 0
    records: int = 0
    counts: dict[str, Counter] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    """Anything else worth keeping (JSON-able), e.g. the models that ran; the summary shows the first
    complete shard's."""

    def count(self, counter: str, key: str, n: int = 1) -> None:
        self.counts.setdefault(counter, Counter())[key] += n


class ShardFiles:
    """The files of one shard in the output folder; paths asked for are recorded in the marker.

    A long shard can also checkpoint: :meth:`checkpoint_path` names a record file in ``OUT/.reuse/``
    (``KEY.cNNNNN.jsonl``) that a stage with :attr:`Stage.reuses` picks up when the shard is redone
    after an interruption; the engine removes a shard's checkpoints once its marker is written.
    :meth:`advance` moves the progress bar by units done inside the shard."""

    def __init__(self, out: Path, index: int, key: str = "", progress: Callable[[int], None] | None = None) -> None:
        self.out = out
        self.index = index
        self.key = key
        self.stem = shard_name(index)
        self.names: list[str] = []
        self.checkpoints = 0
        self._progress = progress

    def path(self, suffix: str = ".jsonl") -> Path:
        name = self.stem + suffix
        if name not in self.names:
            self.names.append(name)
        return self.out / name

    def path_in(self, folder: str, suffix: str = ".jsonl") -> Path:
        """A file of this shard in the subfolder ``folder`` of the output (``.dropped/part-NNNNN.jsonl``),
        recorded in the marker like :meth:`path` (so a missing or truncated one makes the shard redone)."""
        name = f"{folder}/{self.stem}{suffix}"
        if name not in self.names:
            self.names.append(name)
        (self.out / folder).mkdir(parents=True, exist_ok=True)
        return self.out / name

    def checkpoint_path(self) -> Path:
        """A new checkpoint file of this shard (write it atomically, e.g. with ``write_graphs``)."""
        folder = self.out / REUSE_DIR
        folder.mkdir(exist_ok=True)
        self.checkpoints += 1
        return folder / f"{self.key or self.stem}{CHECKPOINT_INFIX}{self.checkpoints:05d}.jsonl"

    def checkpointing(self) -> contextlib.AbstractContextManager[None]:
        """Where an interrupt may stop the shard (for a :attr:`ShardWorker.checkpoints` worker)::

            try:
                with files.checkpointing():
                    ...  # the long loop
            except KeyboardInterrupt:
                ...  # write a checkpoint of what is finished
                raise

        In a worker process an interrupt (Ctrl-C, ``kill``, the driver's death) raises
        :class:`KeyboardInterrupt` only inside the block, once per shard (later ones do not break the
        checkpoint being written); one that came before the block raises on entering it, one after
        it lets the shard finish. In the driver (one worker) interrupts are Python's own."""
        return checkpointing_zone()

    def advance(self, units: int = 1) -> None:
        """Report ``units`` more inputs done (images...), for a progress bar finer than shards."""
        if self._progress is not None and units:
            self._progress(units)


class ShardWorker(ABC):
    """Turns one shard's payload into files. Pickled to worker processes and Ray actors, so keep it
    light; load models in :meth:`setup` (called once per process before the first shard)."""

    fatal: ClassVar[tuple[type[BaseException], ...]] = ()
    """Errors that stop the whole run (they would fail every shard the same way)."""
    reports_progress: ClassVar[bool] = False
    """Calls :meth:`ShardFiles.advance` for every unit, so the progress bar moves inside shards."""
    checkpoints: ClassVar[bool] = False
    """Saves the units it finished when interrupted, inside :meth:`ShardFiles.checkpointing` (else an
    interrupt raises anywhere in :meth:`run`, and a worker process whose driver died exits at once)."""

    def setup(self) -> None:
        """Load what every shard needs (models, programs)."""

    @abstractmethod
    def run(self, payload: Any, files: ShardFiles) -> ShardOutcome:
        """Process one shard; write its files through ``files`` (atomically)."""


class Stage(ABC):
    """A stage of the flow on the engine (see the module docstring)."""

    name: ClassVar[str]
    reuses: ClassVar[bool] = False
    """Keep the files of shards about to be redone (their inputs changed) and of shards left over from a
    larger input in ``OUT/.reuse/`` (named by their old input key), so that workers can take the
    records of unchanged inputs from them (see :func:`reuse_files`); removed once the run is complete."""
    unit: ClassVar[str] = "shard"
    """What :attr:`ShardSpec.units` counts, for the progress bar and the summary."""
    stateful: ClassVar[bool] = False
    """Workers load models: on Ray they become an actor pool (else plain tasks)."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """Settings that shape the output; stored in the manifest and compared on a rerun."""

    @abstractmethod
    def plan(self, out: Path, options: EngineOptions) -> Plan:
        """The shards (may write side files into ``out``: an input index, image sets)."""

    @abstractmethod
    def payload(self, spec: ShardSpec) -> Any:
        """What the worker needs for one shard (JSON-able: it may travel to Ray)."""

    @abstractmethod
    def worker(self) -> ShardWorker:
        """A fresh worker (picklable)."""

    def plan_errors(self, out: Path) -> Iterable[dict[str, Any]]:
        """Inputs skipped while planning (listing problems), written first to ``errors.jsonl``."""
        return ()

    def versions(self) -> dict[str, str]:
        """Library versions that matter to this stage (added to the manifest)."""
        return {}

    def summary_fields(self, totals: dict[str, Any]) -> dict[str, Any]:
        """Stage-specific summary entries computed from the generic ``totals``."""
        return {}

    def ray_options(self, options: EngineOptions) -> dict[str, Any]:
        """Resources of one Ray task/actor (``num_cpus``, ``num_gpus``)."""
        return {"num_cpus": 1}

    def fold(self, acc: dict[str, Any], marker: Mapping[str, Any]) -> None:
        """Add one complete shard's marker to ``acc`` (``totals["folded"]`` in :meth:`summary_fields`), in
        shard order: for totals that are not plain counters (nested usage, lists, what this run did)."""


@dataclass
class EngineOptions:
    """How a stage is run (none of these change the records)."""

    workers: int = 1
    rank: int = 0
    world_size: int = 1
    overwrite: bool = False
    limit: int | None = None
    engine: str = "local"
    address: str | None = None
    """Ray cluster address (``auto``, ``ray://host:10001``); ``None`` starts a local Ray."""
    num_gpus: float | None = None
    """GPUs per annotator actor on Ray (default: 1 when the device is CUDA, else 0)."""
    progress: bool | None = None
    """Progress bar; ``None``: on when stderr is a terminal and logging is at info."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must lie in 0..world_size-1, got rank {self.rank} of {self.world_size}")
        if self.engine not in ("local", "ray"):
            raise ValueError(f"unknown engine {self.engine!r}; choose local or ray")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be positive, got {self.limit}")

    def owns(self, index: int) -> bool:
        return index % self.world_size == self.rank


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/8"`` -> ``(2, 8)`` (rank 2 of 8, counted from 0)."""
    rank, sep, world = str(text).partition("/")
    try:
        r, w = int(rank), int(world)
    except ValueError:
        raise ValueError(f"expected RANK/WORLD_SIZE such as 0/4, got {text!r}") from None
    if not sep or w < 1 or not 0 <= r < w:
        raise ValueError(f"expected RANK/WORLD_SIZE with 0 <= RANK < WORLD_SIZE, got {text!r}")
    return r, w


# --------------------------------------------------------------------------------------- running one shard
@dataclass
class ShardJob:
    """Everything a worker needs to do one shard (travels to processes and Ray)."""

    out: str
    stage: str
    index: int
    key: str
    config_id: str
    payload: Any


def execute_shard(worker: ShardWorker, job: ShardJob, progress: Callable[[int], None] | None = None
                  ) -> dict[str, Any]:
    """Run one shard, then write its marker (after its files) and drop its checkpoints; returns the marker."""
    out = Path(job.out)
    marker_path(out, job.index).unlink(missing_ok=True)
    files = ShardFiles(out, job.index, job.key, progress)
    started = time.perf_counter()
    outcome = worker.run(job.payload, files)
    seconds = {k: round(v, 4) for k, v in sorted(outcome.seconds.items())}
    seconds["total"] = round(time.perf_counter() - started, 4)
    sizes = {name: (out / name).stat().st_size for name in files.names if (out / name).exists()}
    marker = {"stage": job.stage, "shard": job.index, "config": job.config_id, "key": job.key, "files": sizes,
              "units": outcome.units, "records": outcome.records,
              "counts": {k: dict(sorted(v.items())) for k, v in sorted(outcome.counts.items())},
              "errors": outcome.errors, "seconds": seconds, "info": outcome.info}
    with atomic_write(marker_path(out, job.index)) as f:
        f.write(json.dumps(marker).encode() + b"\n")
    if job.key and (out / REUSE_DIR).is_dir():
        for p in (out / REUSE_DIR).glob(f"{job.key}{CHECKPOINT_INFIX}*"):
            p.unlink(missing_ok=True)
    return marker


def safe_execute(worker: ShardWorker, job: ShardJob, progress: Callable[[int], None] | None = None
                 ) -> dict[str, Any]:
    """:func:`execute_shard`, with a failure returned as ``{"shard", "failed", "fatal"}`` instead of raised
    (so that one broken shard does not take a process pool or a Ray dataset down)."""
    try:
        return execute_shard(worker, job, progress)
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which decides
        return {"shard": job.index, "failed": f"{type(exc).__name__}: {exc}",
                "fatal": isinstance(exc, worker.fatal), "traceback": traceback.format_exc(limit=8)}


_POOL_WORKER: ShardWorker | None = None
_POOL_READY = False
_PR_SET_PDEATHSIG = 1
PARENT_DEATH_SIGNAL: int | None = getattr(signal, "SIGUSR1", None)
"""The signal a worker process gets when its driver dies (``prctl(PR_SET_PDEATHSIG)`` on Linux, and
from its own watchdog thread); kept apart from SIGINT so that a worker knows the difference between
a Ctrl-C (the driver goes on and collects the shards) and a dead driver (nobody will)."""
ORPHAN_GRACE_SECONDS = 10.0
"""How long a worker whose driver died may take to save its shard before its watchdog ends it."""
WATCH_SECONDS = 0.2
"""How often a worker's watchdog thread checks that its driver is alive."""


@dataclass
class _WorkerState:
    """What a worker process knows about its driver and the shard in hand (read by its signal handlers).

    The kernel sends the parent-death signal once per reparenting: when the driver's thread that
    forked the worker exits, and again when its last thread does (``getppid()`` changes only then),
    so a worker gets it twice within milliseconds, and a Ctrl-C in a terminal reaches a worker twice
    (from the terminal and from the driver). Only the first interrupt of a shard is raised; the later
    ones must not break the checkpoint the first one is writing."""

    parent: int
    in_shard: bool = False
    checkpoints: bool = False
    """The worker of the shard in hand saves finished units when interrupted (:attr:`ShardWorker.checkpoints`)."""
    saving_zone: bool = False
    """Inside :meth:`ShardFiles.checkpointing`: an interrupt raises there."""
    raised: bool = False
    """The shard in hand was interrupted (a :class:`KeyboardInterrupt` raised in it)."""
    interrupted: bool = False
    """An interrupt arrived (sticky: no new shard starts in this process)."""
    parent_died: bool = False


_STATE: _WorkerState | None = None
"""Set in worker processes of :func:`process_pool`; ``None`` in the driver."""


def die_with_parent(parent: int) -> None:
    """Make this (worker) process end when the process ``parent`` dies, ``kill -9`` included.

    On Linux the kernel sends :data:`PARENT_DEATH_SIGNAL` when the parent goes
    (``prctl(PR_SET_PDEATHSIG)``); a watchdog thread checks the parent every :data:`WATCH_SECONDS`
    (on any platform) and sends the same signal to the main thread, so that a main thread blocked in
    a system call wakes up. Either way the shard in hand saves what it finished (see
    :meth:`ShardFiles.checkpointing`) and the process exits; the watchdog ends it for good
    :data:`ORPHAN_GRACE_SECONDS` later if it has not. A parent that died before the call is caught
    by the parent-pid check that follows it."""
    global _STATE
    _STATE = _STATE or _WorkerState(parent)
    if PARENT_DEATH_SIGNAL is not None:
        signal.signal(PARENT_DEATH_SIGNAL, _on_signal)
    if sys.platform.startswith("linux") and PARENT_DEATH_SIGNAL is not None:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, PARENT_DEATH_SIGNAL, 0, 0, 0) != 0:
                log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        except (OSError, AttributeError) as exc:
            log.debug("prctl unavailable: %s", exc)
    if os.getppid() != parent:
        os._exit(1)  # the driver is gone: nobody will read what this worker writes
    threading.Thread(target=_watch_parent, args=(_STATE,), name="mmgen-watch-parent", daemon=True).start()


def _watch_parent(state: _WorkerState) -> None:
    while os.getppid() == state.parent and not state.parent_died:
        time.sleep(WATCH_SECONDS)
    state.parent_died = True
    if not state.in_shard:
        os._exit(1)
    if PARENT_DEATH_SIGNAL is not None:
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_kill(threading.main_thread().ident or 0, PARENT_DEATH_SIGNAL)
    time.sleep(ORPHAN_GRACE_SECONDS)  # time to checkpoint the shard in hand
    os._exit(1)


def _on_signal(signum: int, frame: Any) -> None:
    """In a worker: SIGINT (Ctrl-C, the driver stopping) or the parent-death signal.

    Between shards: exit if the driver is gone, else ignore (the driver stops the pool). In a shard
    whose worker checkpoints: raise :class:`KeyboardInterrupt` inside :meth:`ShardFiles.checkpointing`
    (elsewhere at its next entry, or after the shard); in one that does not: exit at once if the
    driver is gone, else raise. Only the first interrupt of a shard is raised."""
    state = _STATE
    if state is None:  # not a pool worker (cannot happen: the handlers are installed with the state)
        raise KeyboardInterrupt
    state.interrupted = True
    if signum == PARENT_DEATH_SIGNAL or os.getppid() != state.parent:
        state.parent_died = True
    if not state.in_shard:
        if state.parent_died:
            os._exit(1)
        return
    if state.raised:
        return  # the shard is saving what it finished: do not break that
    if not state.checkpoints:
        if state.parent_died:
            os._exit(1)  # nothing to save, nobody to hand the shard to
        state.raised = True
        raise KeyboardInterrupt
    if state.saving_zone:
        state.raised = True
        raise KeyboardInterrupt
    # a checkpointing shard outside its zone: it stops at the zone's next entry, or after the shard


def checkpointing_zone() -> contextlib.AbstractContextManager[None]:
    """See :meth:`ShardFiles.checkpointing`."""
    return _checkpointing_zone(_STATE)


@contextlib.contextmanager
def _checkpointing_zone(state: _WorkerState | None) -> Iterator[None]:
    if state is None or not state.in_shard:
        yield
        return
    state.saving_zone = True
    try:
        if state.interrupted and not state.raised:
            state.raised = True
            raise KeyboardInterrupt  # an interrupt arrived before the zone
        yield
    finally:
        state.saving_zone = False


def process_pool(workers: int, initializer: Any = None, initargs: tuple[Any, ...] = ()) -> ProcessPoolExecutor:
    """A process pool whose workers end when this process dies (see :func:`die_with_parent`): the one
    way the project starts worker processes."""
    return ProcessPoolExecutor(max_workers=workers, initializer=_init_child,
                               initargs=(os.getpid(), initializer, initargs))


def _init_child(parent: int, initializer: Any, initargs: tuple[Any, ...]) -> None:
    global _STATE
    _STATE = _WorkerState(parent)
    signal.signal(signal.SIGINT, _on_signal)
    die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


_POOL_PROGRESS: Any = None


def _pool_init(worker: ShardWorker, parent: int | None = None, progress: Any = None) -> None:
    global _POOL_WORKER, _POOL_READY, _POOL_PROGRESS
    _POOL_WORKER, _POOL_READY, _POOL_PROGRESS = worker, False, progress


def _pool_advance(units: int) -> None:
    with _POOL_PROGRESS.get_lock():
        _POOL_PROGRESS.value += units


def _pool_run(job: ShardJob) -> dict[str, Any]:
    global _POOL_READY
    assert _POOL_WORKER is not None
    state = _STATE
    assert state is not None, "_pool_run runs in workers of process_pool"
    if state.parent_died or os.getppid() != state.parent:
        os._exit(1)  # the driver is gone: nobody will read what this worker writes
    if state.interrupted:
        raise KeyboardInterrupt  # the run was stopped: start nothing new
    state.checkpoints, state.raised, state.in_shard = False, False, True  # setup has nothing to save
    try:
        if not _POOL_READY:
            try:
                _POOL_WORKER.setup()
            except Exception as exc:  # noqa: BLE001
                return {"shard": job.index, "failed": f"{type(exc).__name__}: {exc}",
                        "fatal": True, "traceback": traceback.format_exc(limit=8)}
            _POOL_READY = True
        state.checkpoints = _POOL_WORKER.checkpoints
        return safe_execute(_POOL_WORKER, job, _pool_advance if _POOL_PROGRESS is not None else None)
    except KeyboardInterrupt:
        if state.parent_died or os.getppid() != state.parent:
            os._exit(1)  # the shard has saved what it finished; nobody is waiting for the rest
        raise
    finally:
        state.in_shard = False
        if state.parent_died:
            os._exit(1)  # died while the shard finished (its marker is written)


class UnitCounter:
    """Units done inside shards, across worker processes (what :meth:`ShardFiles.advance` adds to)."""

    def __init__(self) -> None:
        import multiprocessing

        self.shared = multiprocessing.Value("q", 0)

    @property
    def value(self) -> int:
        return int(self.shared.value)

    def add(self, units: int) -> None:
        with self.shared.get_lock():
            self.shared.value += units


def run_local(worker: ShardWorker, jobs: Iterable[ShardJob], workers: int = 1,
              counter: UnitCounter | None = None) -> Iterator[dict[str, Any]]:
    """Run ``jobs`` in this process (``workers == 1``) or a process pool; yields markers (or failures)
    as shards finish. At most ``2 * workers`` jobs are submitted ahead. ``counter`` receives the
    units workers report inside shards. On an interrupt the workers are interrupted too (each
    checkpoints its shard) and nothing new is started."""
    if workers <= 1:
        worker.setup()
        for job in jobs:
            yield safe_execute(worker, job, counter.add if counter is not None else None)
        return
    pending: set[Future[dict[str, Any]]] = set()
    jobs = iter(jobs)
    pool = process_pool(workers, _pool_init, (worker, os.getpid(), counter.shared if counter is not None else None))
    interrupted = False
    try:
        for job in jobs:
            pending.add(pool.submit(_pool_run, job))
            if len(pending) >= 2 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
    except BaseException:
        interrupted = True
        raise
    finally:
        for fut in pending:
            fut.cancel()
        if interrupted:
            _interrupt_workers(pool)
        pool.shutdown(wait=True, cancel_futures=True)


def _interrupt_workers(pool: ProcessPoolExecutor) -> None:
    """SIGINT every worker of ``pool`` (a Ctrl-C in a terminal already did): each checkpoints its shard."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, AttributeError, ValueError):
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGINT)


RUNNERS: dict[str, Callable[[Stage, Iterator[ShardJob], EngineOptions], Iterator[dict[str, Any]]]] = {}
"""Engines other than ``local``, by name: ``ray`` (:mod:`mmgen.engine.ray_data`, registered when
:mod:`mmgen.engine` is imported). A runner yields each shard's marker, or failure, as it finishes."""


# --------------------------------------------------------------------------------------- the run
def _valid(marker: Any, out: Path, config_id: str, key: str) -> bool:
    if not isinstance(marker, dict) or marker.get("config") != config_id or marker.get("key") != key:
        return False
    return _files_intact(marker, out)


def _check_manifest(out: Path, stage: Stage, config_id: str, overwrite: bool) -> None:
    old = read_json(out / MANIFEST)
    if old is None:
        if (out / MANIFEST).exists() and not overwrite:
            raise EngineError(f"{out / MANIFEST} is unreadable; use --overwrite to replace the run in {out}")
        if StageFolder(out).shards() and not overwrite:
            raise EngineError(f"{out} holds shards (part-*.jsonl) but no manifest.json; use --overwrite to replace "
                              "them (or choose another output folder)")
        return
    if isinstance(old, dict) and old.get("stage") == stage.name and old.get("config_id") == config_id:
        return
    if not overwrite:
        what = old.get("stage") if isinstance(old, dict) else "unknown"
        changed = sorted(k for k, v in stage.identity().items() if not isinstance(old, dict) or old.get(k) != v)
        detail = f" (differs: {', '.join(changed)})" if changed and what == stage.name else ""
        raise EngineError(f"{out} holds a {what} run with another config{detail}; use --overwrite to replace it "
                          "(or choose another output folder)")


def _clean_temp_files(out: Path, options: EngineOptions) -> None:
    for p in out.iterdir():
        m = _TEMP_FILE.match(p.name)
        if m and options.owns(int(m.group(1))):
            p.unlink(missing_ok=True)
            log.debug("removed %s (left by an interrupted run)", p.name)


def _remove_stale_shards(out: Path, n_shards: int, keep_for_reuse: str | None = None) -> None:
    if keep_for_reuse is not None:
        stale = {int(m.group(1)) for p in out.iterdir() if (m := _SHARD_FILE.match(p.name))}
        for index in sorted(i for i in stale if i >= n_shards):
            set_aside(out, index, keep_for_reuse)
    for p in sorted(out.iterdir()):
        m = _SHARD_FILE.match(p.name)
        if m and int(m.group(1)) >= n_shards and p.is_file():
            p.unlink(missing_ok=True)
            log.info("removed %s (left over from a larger earlier input)", p.name)


def sizes_intact(sizes: Mapping[str, int], out: Path) -> bool:
    """Whether every file named in ``sizes`` exists below ``out`` with its recorded size."""
    for name, size in sizes.items():
        try:
            if (out / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def _files_intact(marker: Any, out: Path) -> bool:
    files = marker.get("files") if isinstance(marker, dict) else None
    return isinstance(files, dict) and bool(files) and sizes_intact(files, out)


def set_aside(out: Path, index: int, config_id: str) -> bool:
    """Move the files of complete shard ``index`` (made with ``config_id``) into ``OUT/.reuse/`` under its
    input key (``part-00003.jsonl`` -> ``.reuse/KEY.jsonl``) and drop its marker; whether it moved."""
    marker = read_json(marker_path(out, index))
    if not isinstance(marker, dict) or marker.get("config") != config_id or not _files_intact(marker, out) \
            or not re.fullmatch(r"[0-9a-f]+", str(marker.get("key", ""))):
        return False
    dest = out / REUSE_DIR
    dest.mkdir(exist_ok=True)
    stem = shard_name(index)
    marker_path(out, index).unlink(missing_ok=True)
    for name in marker["files"]:
        os.replace(out / name, dest / (marker["key"] + name[len(stem):]))
    log.debug("kept %s for reuse as %s/%s", stem, REUSE_DIR, marker["key"])
    return True


def reuse_files(out: Path) -> list[Path]:
    """The record files kept for reuse in ``OUT/.reuse/`` (see :attr:`Stage.reuses`), sorted."""
    folder = out / REUSE_DIR
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def library_versions() -> dict[str, str]:
    from importlib import metadata

    from .. import __version__

    out = {"mmgen": __version__, "python": platform.python_version()}
    for name in ("numpy", "orjson", "pillow"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def run_stage(stage: Stage, out: str | os.PathLike[str], options: EngineOptions | None = None) -> RunSummary:
    """Run ``stage`` into ``out`` (see the module docstring); returns the summary (also in ``summary.json``)."""
    options = options or EngineOptions()
    out = Path(out)
    started = time.perf_counter()
    identity = stage.identity()
    config_id = fingerprint({"stage": stage.name, **identity})
    out.mkdir(parents=True, exist_ok=True)
    _check_manifest(out, stage, config_id, options.overwrite)
    t = time.perf_counter()
    plan = stage.plan(out, options)
    plan_seconds = {"plan": round(time.perf_counter() - t, 4), **{k: round(v, 4) for k, v in plan.seconds.items()}}
    n = len(plan.shards)
    if n > MAX_SHARDS_SORTED:
        log.warning("%d shards: names beyond part-99999 do not sort in shard order; use a larger shard size", n)
    reuse = stage.reuses and not options.overwrite
    _remove_stale_shards(out, n, config_id if reuse else None)
    _clean_temp_files(out, options)
    manifest = {"stage": stage.name, "config_id": config_id, **identity, **plan.manifest, "shards": n,
                "versions": {**library_versions(), **stage.versions()}}
    write_json(out / MANIFEST, manifest)

    owned = [s for s in plan.shards if options.owns(s.index)]
    if options.overwrite:
        pending = owned
    else:
        pending = [s for s in owned if not _valid(read_json(marker_path(out, s.index)), out, config_id, s.key)]
    resumed = len(owned) - len(pending)
    if reuse:
        kept = sum(set_aside(out, s.index, config_id) for s in pending)
        if kept:
            log.info("%s: %d shard(s) to redo; their records of unchanged inputs are reused", stage.name, kept)
    if resumed:
        log.info("%s: resuming: %d of %d shard(s) already complete, skipping them", stage.name, resumed, len(owned))
    jobs = (ShardJob(str(out), stage.name, s.index, s.key, config_id, stage.payload(s)) for s in pending)
    try:
        with _sigterm_interrupts():
            done_now, failed, units_now = _run_jobs(stage, jobs, pending, options)
    except KeyboardInterrupt:
        _report_interrupt(stage, out, plan, config_id)
        raise
    summary = summarize(stage, out, plan, config_id, options, plan_seconds=plan_seconds, done_now=done_now,
                        resumed=resumed, failed=failed, units_now=units_now,
                        wall=time.perf_counter() - started)
    if summary["complete"] and (out / REUSE_DIR).is_dir():
        shutil.rmtree(out / REUSE_DIR, ignore_errors=True)
    return summary


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While running shards, SIGTERM (``kill``) interrupts like Ctrl-C, so finished work is checkpointed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _report_interrupt(stage: Stage, out: Path, plan: Plan, config_id: str) -> None:
    """Say what an interrupted run kept and how to go on."""
    complete = sum(_valid(read_json(marker_path(out, s.index)), out, config_id, s.key) for s in plan.shards)
    kept = 0
    if stage.reuses and (out / REUSE_DIR).is_dir():
        for p in (out / REUSE_DIR).glob(f"*{CHECKPOINT_INFIX}*.jsonl"):
            with contextlib.suppress(OSError):
                kept += p.read_bytes().count(b"\n")
    more = f", and {kept} {stage.unit}(s) of unfinished shards checkpointed in {out / REUSE_DIR}" if kept else ""
    log.warning("%s: interrupted: %d of %d shard(s) complete in %s%s; rerun the same command to continue "
                "(finished work is not redone)", stage.name, complete, len(plan.shards), out, more)


def _run_jobs(stage: Stage, jobs: Iterator[ShardJob], pending: list[ShardSpec], options: EngineOptions
              ) -> tuple[int, list[int], int]:
    """Run the pending shards with a progress bar; returns (shards done, shards failed, units done)."""
    from tqdm import tqdm

    from ..log import progress_enabled

    if not pending:
        return 0, [], 0
    known = all(s.units is not None for s in pending)
    total = sum(s.units or 0 for s in pending) if known else len(pending)
    show = progress_enabled() if options.progress is None else options.progress
    done, failed, units = 0, [], 0
    worker = stage.worker()
    counter = UnitCounter() if known and show and worker.reports_progress and options.engine == "local" else None
    if options.engine == "local":
        results = run_local(worker, jobs, options.workers, counter)
    else:
        results = RUNNERS[options.engine](stage, jobs, options)
    with tqdm(total=total, unit=stage.unit if known else "shard", desc=stage.name, disable=not show,
              dynamic_ncols=True) as bar, contextlib.closing(results), _follow(counter, bar):
        for result in results:
            if "failed" in result:
                if result.get("fatal"):
                    raise EngineError(f"{stage.name}: shard {result['shard']} failed: {result['failed']}")
                failed.append(int(result["shard"]))
                log.error("%s: shard %d failed (a rerun retries it): %s", stage.name, result["shard"], result["failed"])
                log.debug("%s", result.get("traceback", ""))
                bar.update(0)
                continue
            done += 1
            units += int(result.get("units", 0))
            if counter is None:
                bar.update(int(result.get("units", 0)) if known else 1)
            bar.set_postfix(records=result.get("records"), refresh=False)
            log.debug("%s: shard %d done: %d %s(s), %d record(s), %d skipped", stage.name, result["shard"],
                      result.get("units", 0), stage.unit, result.get("records", 0), len(result.get("errors", ())))
    return done, failed, units


@contextlib.contextmanager
def _follow(counter: UnitCounter | None, bar: Any, every: float = 0.25) -> Iterator[None]:
    """Move ``bar`` to ``counter`` (units done inside shards) every ``every`` seconds while running."""
    if counter is None:
        yield
        return
    stop = threading.Event()

    def follow() -> None:
        while not stop.wait(every):
            bar.update(counter.value - bar.n)

    thread = threading.Thread(target=follow, name="mmgen-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.update(counter.value - bar.n)


# --------------------------------------------------------------------------------------- summary
class RunSummary(Mapping[str, Any]):
    """The summary of a run (what ``summary.json`` holds), readable as a mapping or by attribute."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["data"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def per_program(self) -> Counter:
        return Counter(self.data.get("per_program", {}))

    @property
    def notes(self) -> Counter:
        return Counter(self.data.get("skipped_and_abstained", {}))

    @property
    def shards_skipped(self) -> int:
        """Shards already complete before this run (kept for the pre-engine API)."""
        return int(self.data.get("shards_resumed", 0))

    @property
    def bad_inputs(self) -> int:
        """Skipped inputs other than exact duplicates (what ``--strict`` fails on)."""
        return sum(v for k, v in self.data.get("skipped", {}).items() if k != DUPLICATE)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


def summarize(stage: Stage, out: Path, plan: Plan, config_id: str, options: EngineOptions, *,
              plan_seconds: Mapping[str, float] | None = None, done_now: int = 0, resumed: int = 0,
              failed: Iterable[int] = (), units_now: int = 0, wall: float = 0.0) -> RunSummary:
    """Sum the markers of every complete shard into ``summary.json`` and ``errors.jsonl``."""
    units = records = complete = 0
    counts: dict[str, Counter] = {}
    skipped: Counter = Counter()
    seconds: Counter = Counter()
    missing: list[int] = []
    info: dict[str, Any] | None = None
    folded: dict[str, Any] = {}
    with atomic_write(out / ERRORS) as errors_out:
        for err in stage.plan_errors(out):
            skipped[err.get("kind") or "error"] += 1
            errors_out.write(dumps(err))
        for spec in plan.shards:
            marker = read_json(marker_path(out, spec.index))
            if not _valid(marker, out, config_id, spec.key):
                missing.append(spec.index)
                continue
            complete += 1
            if info is None:
                info = marker.get("info") or {}
            units += int(marker.get("units", 0))
            records += int(marker.get("records", 0))
            for name, counter in (marker.get("counts") or {}).items():
                counts.setdefault(name, Counter()).update(counter)
            for err in marker.get("errors") or ():
                skipped[err.get("kind") or "error"] += 1
                errors_out.write(dumps(err))
            seconds.update(marker.get("seconds") or {})
            stage.fold(folded, marker)
    totals: dict[str, Any] = {"units": units, "records": records, "counts": counts, "plan": plan.counts,
                              "info": info or {}, "folded": folded}
    data: dict[str, Any] = {
        "stage": stage.name,
        "complete": not missing,
        "shards": len(plan.shards),
        "shards_done": done_now,
        "shards_resumed": resumed,
        "shards_failed": sorted(failed),
        "shards_missing": len(missing),
        "rank": options.rank,
        "world_size": options.world_size,
        stage.unit + "s" if stage.unit != "shard" else "units": units,
        **stage.summary_fields(totals),
        "records": records,
        "skipped": dict(sorted(skipped.items())),
        "errors": sum(skipped.values()),
        "counts": {k: dict(sorted(v.items())) for k, v in sorted(counts.items())},
        "plan": plan.counts,
        "seconds": {**(plan_seconds or {}), **{f"shards.{k}": round(v, 3) for k, v in sorted(seconds.items())}},
        "this_run": {"wall_seconds": round(wall, 3), "shards_done": done_now, stage.unit + "s": units_now,
                     "per_second": round(units_now / wall, 2) if wall > 0 else None,
                     "engine": options.engine, "workers": options.workers},
    }
    if missing and len(missing) <= 20:
        data["missing"] = missing
    write_json(out / SUMMARY, data)
    summary = RunSummary(data)
    _log_summary(stage, summary, out)
    return summary


def _log_summary(stage: Stage, s: RunSummary, out: Path) -> None:
    skipped = ", ".join(f"{k} {v}" for k, v in s["skipped"].items())
    unit_key = stage.unit + "s" if stage.unit != "shard" else "units"
    this = s["this_run"]
    rate = f", {this['per_second']:g} {stage.unit}s/s" if this.get("per_second") else ""
    log.info("%s: %d %s(s) -> %d record(s)%s; %d shard(s): %d done now, %d already complete, %d missing "
             "(%.1f s%s) -> %s", stage.name, s[unit_key], stage.unit, s["records"],
             f"; {s['errors']} skipped ({skipped}, see {out / ERRORS})" if s["errors"] else "", s["shards"],
             s["shards_done"], s["shards_resumed"], s["shards_missing"], this["wall_seconds"], rate, out)
    if s["shards_failed"]:
        log.error("%s: %d shard(s) failed; rerun the same command to retry them", stage.name, len(s["shards_failed"]))
