"""The ``generate`` stage: scene-graph shards in, QA-record shards out (one output shard per input shard),
on the engine (:mod:`mmgen.engine`).

Each input shard ``i`` (in sorted order) becomes ``part-i.jsonl`` with its completion marker; the
manifest pairs ``inputs`` (graph shards) with ``outputs`` (QA shards), which ``mmgen verify`` and the
LLM stages read. A shard's input key is its file name, size and modification time, so a graph
shard that changed is redone on a rerun and the others are kept. The program config and program set
are the run's identity: another one in the same folder needs ``overwrite``. Output is identical
for any worker count, rank split or engine: seeds depend on (seed, image, program) only.

A graph line that cannot be read, or a program that raises on a graph, is skipped and recorded in
``errors.jsonl`` (with file and line, or image id); the other graphs go on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scene_graphs.io import RecordError, atomic_write, depth_path, dumps, graph_files

from ..engine import EngineOptions, Plan, RunSummary, ShardFiles, ShardOutcome, ShardSpec, ShardWorker, Stage, run_stage
from ..engine.core import MANIFEST, SUMMARY, shard_name, warn_skipped
from ..store.folder import limit_shards
from ..store.graphs import read_graphs_tolerant

log = logging.getLogger("mmgen.generate")

__all__ = ["MANIFEST", "SUMMARY", "GenerateStage", "file_key", "generate", "read_graphs_tolerant", "shard_name"]


def file_key(path: Path, name: str, extra: Any = None) -> str:
    """Input key of a file: its name (relative to the input folder), size and modification time."""
    st = path.stat()
    dpath = depth_path(path)
    depth = dpath.stat() if dpath.exists() else None
    text = f"{name}|{st.st_size}|{st.st_mtime_ns}|{depth.st_size if depth else '-'}|" \
           f"{depth.st_mtime_ns if depth else '-'}|{extra}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def record_error(err: RecordError, stage: str) -> dict[str, Any]:
    where = f" at {err.where}" if getattr(err, "where", None) else ""
    return {"path": err.source, "image_id": None, "stage": stage, "kind": "bad-record",
            "error": f"{err.source}: {err.message}{where}"}


class GenerateWorker(ShardWorker):
    """Runs the single-image programs over one graph shard, streaming records to its QA shard."""

    def __init__(self, config: dict[str, Any], program_ids: Sequence[str]) -> None:
        self.config_dict = dict(config)
        self.program_ids = list(program_ids)

    def setup(self) -> None:
        from programs.base import ProgramConfig, single_programs

        self.config = ProgramConfig(**self.config_dict)
        self.programs = single_programs(self.program_ids)

    def run(self, payload: Any, files: ShardFiles) -> ShardOutcome:
        from programs.base import run_single

        out = ShardOutcome()
        per_program: Counter = Counter()
        notes: Counter = Counter()
        seconds: Counter = Counter()
        with atomic_write(files.path(".jsonl")) as f:
            t = time.perf_counter()
            for graph in read_graphs_tolerant(payload["src"], payload.get("max_graphs")):
                now = time.perf_counter()
                seconds["read"] += now - t
                t = now
                if isinstance(graph, RecordError):
                    out.errors.append(record_error(graph, "generate"))
                    warn_skipped(f"skipped {graph}", log.name)
                    continue
                out.units += 1
                try:
                    records = run_single(graph, self.config, self.programs, notes)
                except Exception as exc:  # noqa: BLE001 - one graph must not sink a 10M-graph run
                    out.errors.append({"path": graph.path, "image_id": graph.image_id, "stage": "generate",
                                       "kind": "program-error", "error": f"{type(exc).__name__}: {exc}"})
                    warn_skipped(f"image {graph.image_id}: a program failed ({type(exc).__name__}: {exc}); skipped",
                                 log.name)
                    continue
                now = time.perf_counter()
                seconds["programs"] += now - t
                t = now
                for qa in records:
                    per_program[qa.program] += 1
                    f.write(dumps(qa.to_dict()))
                out.records += len(records)
                now = time.perf_counter()
                seconds["write"] += now - t
                t = now
        out.counts = {"per_program": per_program, "notes": notes}
        out.seconds = dict(seconds)
        return out


class GenerateStage(Stage):
    """Single-image programs over every graph shard under ``src``."""

    name = "generate"
    unit = "graph"

    def __init__(self, src: str | os.PathLike[str], config: Any, program_ids: Sequence[str] | None = None) -> None:
        from programs.base import single_programs

        self.src = Path(src)
        self.inputs = graph_files(self.src)
        if not self.inputs:
            raise FileNotFoundError(f"no scene-graph shards (part-*.jsonl) under {self.src}")
        programs = single_programs(program_ids)
        if not programs:
            raise ValueError(f"no program matches {list(program_ids or [])}; see `mmgen programs`")
        self.config = config
        self.program_ids = [p.id for p in programs]
        self._limits: list[int | None] = []

    def identity(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "programs": self.program_ids}

    def _name(self, p: Path) -> str:
        return p.name if self.src.is_file() else p.relative_to(self.src).as_posix()

    def plan(self, out: Path, options: EngineOptions) -> Plan:
        inputs, limits = limit_shards(self.inputs, options.limit)
        self.inputs, self._limits = inputs, limits
        shards = [ShardSpec(i, file_key(p, self._name(p), lim)) for i, (p, lim) in enumerate(zip(inputs, limits))]
        manifest = {"inputs": [str(p.resolve()) for p in inputs], "outputs": [shard_name(i) + ".jsonl"
                                                                            for i in range(len(inputs))],
                    "seed": self.config.seed, "limit": options.limit}
        return Plan(shards, manifest)

    def payload(self, spec: ShardSpec) -> dict[str, Any]:
        return {"src": str(self.inputs[spec.index]), "max_graphs": self._limits[spec.index]}

    def worker(self) -> GenerateWorker:
        return GenerateWorker(self.config.to_dict(), self.program_ids)

    def summary_fields(self, totals: dict[str, Any]) -> dict[str, Any]:
        counts = totals["counts"]
        return {"graphs": totals["units"],
                "per_program": dict(sorted((counts.get("per_program") or {}).items())),
                "skipped_and_abstained": dict(sorted((counts.get("notes") or {}).items()))}


def generate(src: str | Path, out: str | Path, config: Any, program_ids: Sequence[str] | None = None,
             workers: int = 1, overwrite: bool = False, options: EngineOptions | None = None) -> RunSummary:
    """Run the single-image programs over every graph shard under ``src`` into ``out``.

    ``options`` (ranks, limit, Ray...) win over ``workers`` and ``overwrite`` when given."""
    options = options or EngineOptions(workers=workers, overwrite=overwrite)
    return run_stage(GenerateStage(src, config, program_ids), out, options)
