"""The ``generate`` stage: scene-graph shards in, QA-record shards out (one output shard per input shard).

Resumable: each output shard is written atomically, after its stats file, so an existing
``part-NNNNN.jsonl`` is complete and a rerun only does the missing ones. The run's manifest
(program config, program ids, input shards) must match on a rerun unless ``overwrite`` is set.
Output is identical for any worker count: seeds depend on (seed, image, program) only.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from scene_graphs.io import atomic_write, dumps, graph_files, read_graphs

from . import __version__

log = logging.getLogger("mmgen.generate")

MANIFEST = "manifest.json"
SUMMARY = "summary.json"


@dataclass
class GenerateSummary:
    """Counts of one generate run (all shards, the resumed ones included)."""

    graphs: int = 0
    records: int = 0
    per_program: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    shards_done: int = 0
    shards_skipped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"graphs": self.graphs, "records": self.records, "shards_done": self.shards_done,
                "shards_resumed": self.shards_skipped, "per_program": dict(sorted(self.per_program.items())),
                "skipped_and_abstained": dict(sorted(self.notes.items()))}


def shard_name(index: int) -> str:
    return f"part-{index:05d}"


def _process_shard(args: tuple[str, str, dict[str, Any], list[str]]) -> dict[str, Any]:
    """Worker: run the programs over one graph shard and write its QA shard (returns its stats)."""
    from programs.base import ProgramConfig, run_single, single_programs

    src, dst, config_dict, program_ids = args
    config = ProgramConfig(**config_dict)
    programs = single_programs(program_ids)
    notes: Counter = Counter()
    per_program: Counter = Counter()
    graphs = 0
    lines: list[bytes] = []
    for graph in read_graphs(src):
        graphs += 1
        for qa in run_single(graph, config, programs, notes):
            per_program[qa.program] += 1
            lines.append(dumps(qa.to_dict()))
    stats = {"source": src, "graphs": graphs, "records": len(lines), "per_program": dict(per_program),
             "notes": dict(notes)}
    dst_path = Path(dst)
    with atomic_write(dst_path.with_suffix(".stats.json")) as f:
        f.write(json.dumps(stats, sort_keys=True).encode())
    with atomic_write(dst_path) as f:
        f.writelines(lines)
    return stats


def generate(src: str | Path, out: str | Path, config: Any, program_ids: Sequence[str] | None = None,
             workers: int = 1, overwrite: bool = False) -> GenerateSummary:
    """Run the single-image programs over every graph shard under ``src`` into ``out``."""
    from programs.base import single_programs

    src, out = Path(src), Path(out)
    inputs = graph_files(src)
    if not inputs:
        raise FileNotFoundError(f"no scene-graph shards (*.jsonl) under {src}")
    programs = single_programs(program_ids)
    if not programs:
        raise ValueError(f"no program matches {list(program_ids or [])}; see `mmgen programs`")
    ids = [p.id for p in programs]
    manifest = {"stage": "generate", "mmgen_version": __version__, "config": config.to_dict(), "programs": ids,
                "inputs": [str(p.resolve()) for p in inputs], "outputs": [shard_name(i) + ".jsonl"
                                                                      for i in range(len(inputs))]}
    mpath = out / MANIFEST
    if mpath.exists():
        old = json.loads(mpath.read_text())
        same = {k: old.get(k) for k in ("config", "programs", "inputs")} == {k: manifest[k] for k in
                                                                            ("config", "programs", "inputs")}
        if not same and not overwrite:
            raise ValueError(f"{out} holds a generate run with another config, program set or input; "
                             "use --overwrite to replace it (or choose another output folder)")
        if not same:
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(mpath) as f:
        f.write((json.dumps(manifest, indent=2) + "\n").encode())

    todo = [(str(p), str(out / f"{shard_name(i)}.jsonl"), config.to_dict(), ids)
            for i, p in enumerate(inputs) if not (out / f"{shard_name(i)}.jsonl").exists()]
    summary = GenerateSummary(shards_skipped=len(inputs) - len(todo))
    if summary.shards_skipped:
        log.info("resuming: %d of %d shard(s) already done", summary.shards_skipped, len(inputs))
    from tqdm import tqdm

    from .log import progress_enabled

    with tqdm(total=len(todo), unit="shard", disable=not progress_enabled(), desc="generate") as bar:
        if workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(_process_shard, todo):
                    bar.update()
        else:
            for task in todo:
                _process_shard(task)
                bar.update()
    summary.shards_done = len(todo)
    for i in range(len(inputs)):
        stats = json.loads((out / f"{shard_name(i)}.stats.json").read_text())
        summary.graphs += stats["graphs"]
        summary.records += stats["records"]
        summary.per_program.update(stats["per_program"])
        summary.notes.update(stats["notes"])
    with atomic_write(out / SUMMARY) as f:
        f.write((json.dumps(summary.to_dict(), indent=2) + "\n").encode())
    return summary
