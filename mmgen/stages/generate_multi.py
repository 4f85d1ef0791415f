"""The multi-image ``generate`` stage: scene-graph shards in, image sets formed, QA shards out.

Three steps:

1. **Index** (:func:`build_index`): every graph shard is read once, keeping per graph only its image
   id, where its line is (shard, byte offset) and its confident categories (for grouping). Shards are
   scanned in parallel with ``workers`` processes; the result does not depend on their number.
2. **Group** (:func:`mmgen.groups.make_sets`): image sets, written to ``sets.jsonl`` (one JSON list of
   image ids per line, in "Image 1, Image 2, ..." order).
3. **Generate** (on the engine, :mod:`mmgen.engine`): the sets are cut into output shards of
   ``sets_per_shard`` sets; each shard is a task that loads just the graphs of its sets (by byte
   offset, depth maps read one by one from the ``.npz``), runs every applicable multi-image program
   on each set and writes ``part-NNNNN.jsonl`` and its completion marker atomically. A shard's input
   key is the digest of its sets and of every input shard's name, size and modification time, so a
   rerun only does missing shards, and redoes everything when the graphs changed. The program
   config, program set, grouping and shard size are the run's identity (another one needs
   ``overwrite``).

**Memory bound.** The main process holds the index (per graph: id string, 12 bytes of location,
4 bytes per confident category) and the sets (a tuple of positions each), never a full graph. A
worker holds the graphs of at most :data:`GRAPH_CACHE` images at a time (a least-recently-used
cache: sets of one shard often share images) plus the records of one shard being streamed to disk.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from scene_graphs.io import RecordError, atomic_write, dumps, graph_files

from ..engine import EngineOptions, Plan, RunSummary, ShardFiles, ShardOutcome, ShardSpec, ShardWorker, Stage, run_stage
from ..engine.core import process_pool, shard_name
from .generate import file_key
from ..store.graphs import GraphStore, scan_records
from ..groups import GroupOptions, ImageIndex, make_sets

log = logging.getLogger("mmgen.generate")

STAGE = "generate-multi"
SETS_FILE = "sets.jsonl"
SETS_PER_SHARD = 2000
"""Image sets per output shard (fixed per run: part of the manifest)."""
GRAPH_CACHE = 256
"""Graphs (with their views) a worker keeps loaded at once."""


# --------------------------------------------------------------------------------------- index
def confident_labels(data: dict[str, Any], min_score: float, confident_score: float) -> list[str]:
    """Labels of a serialized graph whose every object (above ``min_score``) is confident: what
    ``GraphView.countable_labels`` gives, read from the raw record without building the graph."""
    from programs.base import raw_thresholds, score_source  # the thresholds on this graph's score scale

    min_score, confident_score = raw_thresholds(score_source(data.get("provenance")), min_score, confident_score)
    seen: dict[str, bool] = {}
    for o in data.get("objects") or ():
        score = o.get("score", 1.0)
        if score < min_score:
            continue
        label = o["label"]
        seen[label] = seen.get(label, True) and score >= confident_score
    return sorted(lbl for lbl, ok in seen.items() if ok)


def scan_shard(args: tuple[str, int, float, float]) -> list[tuple[str, int, int, list[str]]]:
    """``(image id, shard number, byte offset, confident labels)`` of every graph of one shard."""
    path, number, min_score, confident_score = args
    rows = []
    for lineno, offset, data in scan_records(path):
        try:
            image_id = data["image_id"]
            labels = confident_labels(data, min_score, confident_score)
        except (KeyError, TypeError, AttributeError) as exc:
            raise RecordError(f"cannot index this graph ({type(exc).__name__}: {exc})",
                              source=f"{path}:{lineno}") from None
        if not isinstance(image_id, str):
            raise RecordError("image_id must be a string", "image_id", f"{path}:{lineno}")
        rows.append((image_id, number, offset, labels))
    return rows


def build_index(inputs: Sequence[Path], min_score: float = 0.2, confident_score: float = 0.5,
                workers: int = 1) -> ImageIndex:
    """The :class:`~mmgen.groups.ImageIndex` of every graph in ``inputs`` (shard order = numbering)."""
    tasks = [(str(p), i, min_score, confident_score) for i, p in enumerate(inputs)]
    if workers > 1 and len(tasks) > 1:
        with process_pool(workers) as pool:
            parts = list(pool.map(scan_shard, tasks))
    else:
        parts = [scan_shard(t) for t in tasks]
    try:
        return ImageIndex.build(row for part in parts for row in part)
    except ValueError as exc:
        raise ValueError(f"{exc} (shards: {', '.join(str(p) for p in inputs)})") from None


# --------------------------------------------------------------------------------------- stage
class MultiWorker(ShardWorker):
    """Runs the multi-image programs over the sets of one output shard and writes it."""

    def __init__(self, config: dict[str, Any], program_ids: Sequence[str]) -> None:
        self.config_dict = dict(config)
        self.program_ids = list(program_ids)

    def setup(self) -> None:
        from programs.base import ProgramConfig
        from programs.multi.common import multi_programs

        self.config = ProgramConfig(**self.config_dict)
        self.programs = multi_programs(self.program_ids)

    def run(self, payload: Any, files: ShardFiles) -> ShardOutcome:
        from programs.base import GraphView
        from programs.multi.common import run_multi

        sets: list[list[str]] = payload["sets"]
        locations = {k: (v[0], int(v[1])) for k, v in payload["locations"].items()}
        out = ShardOutcome()
        notes: Counter = Counter()
        per_program: Counter = Counter()
        views: OrderedDict[str, GraphView] = OrderedDict()
        started = time.perf_counter()

        def view_of(image_id: str, store: GraphStore) -> GraphView:
            v = views.get(image_id)
            if v is None:
                v = views[image_id] = GraphView(store.get(image_id), self.config, notes)
                if len(views) > GRAPH_CACHE:
                    views.popitem(last=False)
            else:
                views.move_to_end(image_id)
            return v

        with GraphStore(locations, capacity=GRAPH_CACHE) as store, atomic_write(files.path(".jsonl")) as f:
            for image_ids in sets:
                out.units += 1
                try:
                    records = run_multi([view_of(i, store) for i in image_ids], self.config, self.programs, notes)
                except RecordError as exc:
                    out.errors.append({"path": exc.source, "image_id": None, "stage": "generate-multi",
                                       "kind": "bad-record", "error": f"set {'+'.join(image_ids)}: {exc.message}"})
                    continue
                except Exception as exc:  # noqa: BLE001 - one set must not sink the run
                    out.errors.append({"path": None, "image_id": "+".join(image_ids), "stage": "generate-multi",
                                       "kind": "program-error", "error": f"{type(exc).__name__}: {exc}"})
                    log.warning("set %s: a program failed (%s: %s); skipped", "+".join(image_ids),
                                type(exc).__name__, exc)
                    continue
                for qa in records:
                    per_program[qa.program] += 1
                    f.write(dumps(qa.to_dict()))
                out.records += len(records)
        out.counts = {"per_program": per_program, "notes": notes}
        out.seconds = {"programs": time.perf_counter() - started}
        return out


def _sets_digest(sets: Sequence[Sequence[str]]) -> str:
    h = hashlib.sha256()
    for s in sets:
        h.update(orjson.dumps(list(s)) + b"\n")
    return h.hexdigest()


def _file_digest(path: str | None) -> str | None:
    if path is None:
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class MultiStage(Stage):
    """Image sets from the graphs under ``src``, then the multi-image programs over each set."""

    name = STAGE
    unit = "set"

    def __init__(self, src: str | Path, config: Any, grouping: GroupOptions, program_ids: Sequence[str] | None = None,
                 sets_per_shard: int = SETS_PER_SHARD) -> None:
        from programs.multi.common import multi_programs

        self.src = Path(src)
        self.inputs = graph_files(self.src)
        if not self.inputs:
            raise FileNotFoundError(f"no scene-graph shards (*.jsonl) under {self.src}")
        programs = multi_programs(program_ids)
        if not programs:
            raise ValueError(f"no multi-image program matches {list(program_ids or [])}; see `mmgen programs`")
        if sets_per_shard < 1:
            raise ValueError("sets_per_shard must be positive")
        self.config, self.grouping, self.sets_per_shard = config, grouping, sets_per_shard
        self.program_ids = [p.id for p in programs]
        grouping_dict = dict(grouping.to_dict(), groups_file_sha256=_file_digest(grouping.groups_file))
        if grouping.groups_file is not None:
            grouping_dict["groups_file"] = str(Path(grouping.groups_file).resolve())
        self.grouping_dict = grouping_dict
        self._chunks: list[list[tuple[str, ...]]] = []
        self._index: ImageIndex | None = None

    def identity(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "programs": self.program_ids, "grouping": self.grouping_dict,
                "sets_per_shard": self.sets_per_shard}

    def plan(self, out: Path, options: EngineOptions) -> Plan:
        t = time.perf_counter()
        index = build_index(self.inputs, self.config.min_score, self.config.confident_score, options.workers)
        t_index = time.perf_counter() - t
        sets = make_sets(index, self.grouping, self.config.seed)
        if not sets:
            log.warning("no image set could be formed from %d graph(s) with the %s strategy", len(index),
                        self.grouping.strategy)
        with atomic_write(out / SETS_FILE) as f:
            f.writelines(orjson.dumps(list(s), option=orjson.OPT_APPEND_NEWLINE) for s in sets)
        names = [p.name if self.src.is_file() else p.relative_to(self.src).as_posix() for p in self.inputs]
        inputs_key = hashlib.sha256("\n".join(file_key(p, n) for p, n in zip(self.inputs, names)).encode()).hexdigest()
        self._index = index
        self._chunks = [sets[i:i + self.sets_per_shard] for i in range(0, len(sets), self.sets_per_shard)]
        shards = [ShardSpec(i, hashlib.sha256((inputs_key + _sets_digest(c)).encode()).hexdigest()[:32], len(c))
                  for i, c in enumerate(self._chunks)]
        manifest = {"inputs": [str(p.resolve()) for p in self.inputs], "images": len(index), "sets": len(sets),
                    "sets_sha256": _sets_digest(sets), "outputs": [shard_name(i) + ".jsonl" for i in range(len(shards))],
                    "seed": self.config.seed}
        return Plan(shards, manifest, seconds={"index": t_index, "group": time.perf_counter() - t - t_index},
                    counts={"images": len(index), "sets": len(sets)})

    def payload(self, spec: ShardSpec) -> dict[str, Any]:
        index = self._index
        assert index is not None
        chunk = self._chunks[spec.index]
        paths = [str(p) for p in self.inputs]
        members = sorted({x for s in chunk for x in s})
        positions = [bisect.bisect_left(index.ids, x) for x in members]
        where = {x: [paths[int(index.shard[i])], int(index.offset[i])] for x, i in zip(members, positions)}
        return {"sets": [list(s) for s in chunk], "locations": where}

    def worker(self) -> MultiWorker:
        return MultiWorker(self.config.to_dict(), self.program_ids)

    def summary_fields(self, totals: dict[str, Any]) -> dict[str, Any]:
        counts = totals["counts"]
        return {"images": totals["plan"].get("images", 0), "sets": totals["units"],
                "per_program": dict(sorted((counts.get("per_program") or {}).items())),
                "skipped_and_abstained": dict(sorted((counts.get("notes") or {}).items()))}


def generate_multi(src: str | Path, out: str | Path, config: Any, grouping: GroupOptions,
                   program_ids: Sequence[str] | None = None, workers: int = 1, overwrite: bool = False,
                   sets_per_shard: int = SETS_PER_SHARD, options: EngineOptions | None = None) -> RunSummary:
    """Form image sets from the graphs under ``src`` and run the multi-image programs into ``out``.

    ``options`` (ranks, Ray...) win over ``workers`` and ``overwrite`` when given."""
    options = options or EngineOptions(workers=workers, overwrite=overwrite)
    return run_stage(MultiStage(src, config, grouping, program_ids, sets_per_shard), out, options)
