"""The ``annotate`` stage on the engine: images (a folder, a list file or a glob) -> scene-graph shards.

Planning builds the input index (:mod:`mmgen.inputs`: sorted relative paths, sizes, modification
times, exact duplicates) in the output folder and cuts it into shards of ``shard_size`` images; a
shard's input key is the digest of its index lines, so an edited or added image redoes the shard
it lands in (and, an addition or removal, the shards after it). A redone shard takes the graphs of
its images whose bytes did not change (same sha256) from the earlier run's files, kept in
``OUT/.reuse/`` (see :mod:`mmgen.engine.core`): only new and edited images are annotated again.
A worker loads the perception pipeline once (:class:`PipelineFactory`), decodes
its shard's images in ``decode_threads`` threads ahead of the models and writes
``part-NNNNN.jsonl`` (+ ``part-NNNNN.depth.npz``).

Every image that gives no graph is in ``errors.jsonl`` with ``path``, ``image_id``, ``stage``
(``list``, ``dedup``, ``decode``, ``annotate``), ``kind`` (``corrupt``, ``empty``, ``not-an-image``,
``too-large``, ``unreadable``, ``non-utf8-name``, ``symlink-loop``, ``duplicate``...) and ``error``
(one line). Exact duplicates (same bytes as an image earlier in sorted order) are not annotated:
their entry names the image they duplicate (``duplicate_of``, ``duplicate_of_id``).

Besides the engine's files the output folder holds ``annotate.json`` (the summary plus the images
root, profile, settings and the models that ran, what :mod:`mmgen.store` reads) and the input
index (``inputs.jsonl``, ``inputs.json``, ``inputs.errors.jsonl``).
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from scene_graphs.ids import image_id
from scene_graphs.io import atomic_write

from ..inputs import InputEntry, InputIndex, InputSource, build_index, entries_key, file_digest, read_entries
from ..engine.core import (
    DUPLICATE,
    EngineOptions,
    Plan,
    RunSummary,
    ShardFiles,
    ShardOutcome,
    ShardSpec,
    ShardWorker,
    Stage,
    fingerprint,
    reuse_files,
    run_stage,
    shard_name,
    warn_skipped,
)

log = logging.getLogger("mmgen.annotate")

DEFAULT_SHARD_SIZE = 1000
DEFAULT_BATCH_SIZE = 8
DEFAULT_DECODE_THREADS = 2
DEFAULT_CHECKPOINT_SECONDS = 60.0
"""How often a shard saves the graphs it made so far (``OUT/.reuse/KEY.cNNNNN.jsonl``)."""
SUMMARY_FILE = "annotate.json"


class PipelineFactory:
    """Builds and loads the perception pipeline inside a worker (only settings travel). With
    ``background`` (default) the stages after the read-ahead ones (OCR) load in a thread while the
    first batch is decoded and its text read (:meth:`scene_graphs.perception.pipeline.Pipeline.load`):
    a one-shot annotate of a few images spends most of its time starting up."""

    def __init__(self, config: Any, device: str = "auto", offline: bool | None = None,
                 provenance: dict[str, Any] | None = None, background: bool = True) -> None:
        self.config = config
        self.device = device
        self.offline = offline
        self.provenance = dict(provenance or {})
        self.background = background

    def __call__(self) -> Any:
        from scene_graphs.perception.profiles import build_pipeline

        pipeline = build_pipeline(self.config, offline=self.offline, provenance=self.provenance)
        pipeline.on_loaded = _announce
        return pipeline.load(self.device, background=self.background)


def _announce(pipeline: Any) -> None:
    log.info("stages: %s%s", ", ".join(s.name for s in pipeline.stages),
             f" (skipped: {', '.join(pipeline.skipped)})" if pipeline.skipped else "")


def _fatal_errors() -> tuple[type[BaseException], ...]:
    from scene_graphs.perception.base import AnnotatorError, MissingDependencyError
    from scene_graphs.perception.profiles import ConfigError
    from scene_graphs.perception.weights import WeightsError

    return (WeightsError, MissingDependencyError, AnnotatorError, ConfigError)


class AnnotateWorker(ShardWorker):
    """Decodes and annotates one shard of images, checkpointing the graphs made every
    ``checkpoint_seconds`` and when interrupted (Ctrl-C, ``kill``, the driver's death)."""

    reports_progress = True
    checkpoints = True

    def __init__(self, factory: Callable[[], Any], batch_size: int, max_pixels: int, decode_threads: int,
                 checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS) -> None:
        self.factory = factory
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.decode_threads = decode_threads
        self.checkpoint_seconds = checkpoint_seconds
        self.pipeline: Any = None
        self.fatal = _fatal_errors()

    def setup(self) -> None:
        self.pipeline = self.factory()

    def run(self, payload: Any, files: ShardFiles) -> ShardOutcome:
        from scene_graphs.io import write_graphs
        from scene_graphs.perception.pipeline import ImageFailure, annotate_paths

        root = Path(payload["root"])
        entries = read_entries(Path(payload["index"]), payload["offset"], payload["count"])
        if entries_key(entries) != payload["key"]:
            raise RuntimeError(f"the input index {payload['index']} changed since this run planned its shards "
                               "(another rank listing changed images?); rerun to pick the new listing up")
        out = ShardOutcome(units=len(entries))
        reused = _reusable_graphs(payload.get("reuse") or (), root, entries)
        todo: list[Path] = []
        for entry in entries:
            dup = entry.duplicate_of
            if dup is not None:
                out.errors.append({"path": entry.path, "image_id": image_id(entry.path), "stage": "dedup",
                                   "kind": DUPLICATE, "error": f"{entry.path}: same bytes as {dup} "
                                                               f"(image {image_id(dup)}), which is kept",
                                   "duplicate_of": dup, "duplicate_of_id": image_id(dup)})
            elif entry.path not in reused:
                todo.append(root / entry.path)
        files.advance(len(entries) - len(todo))
        before = dict(self.pipeline.seconds)
        made: dict[str, Any] = {}
        unsaved: list[Any] = []
        last_save = time.monotonic()
        try:
            with files.checkpointing():
                for res in annotate_paths(self.pipeline, todo, root, batch_size=self.batch_size,
                                          max_pixels=self.max_pixels, threads=self.decode_threads):
                    files.advance(1)
                    if isinstance(res, ImageFailure):
                        out.errors.append(res.to_dict())
                        warn_skipped(f"skipped {res.path}: {res.reason}", log.name)
                        continue
                    made[res.path] = res
                    unsaved.append(res)
                    if time.monotonic() - last_save >= self.checkpoint_seconds:
                        write_graphs(files.checkpoint_path(), unsaved)
                        unsaved, last_save = [], time.monotonic()
        except KeyboardInterrupt:
            if unsaved:  # keep every finished image for the rerun
                write_graphs(files.checkpoint_path(), unsaved)
            raise
        wait_loaded = getattr(self.pipeline, "wait_loaded", None)
        if wait_loaded is not None:  # a background load ends with the first batch; here when none was annotated
            wait_loaded()
        graphs = [g for e in entries if (g := reused.get(e.path) or made.get(e.path)) is not None]
        if len(graphs) != len(reused) + len(made):
            raise RuntimeError(f"graph paths do not match the shard's index entries ({payload['index']})")
        if reused:
            out.count("reuse", "graphs", len(reused))
        t = time.perf_counter()
        files.path(".depth.npz")  # written beside the shard when a graph has a depth map
        write_graphs(files.path(".jsonl"), graphs)
        out.records = len(graphs)
        out.seconds = {k: v - before.get(k, 0.0) for k, v in self.pipeline.seconds.items()}
        out.seconds["write"] = time.perf_counter() - t
        out.info = {"stages": {s.name: s.provenance() for s in self.pipeline.stages},
                    "skipped_stages": dict(self.pipeline.skipped)}
        return out


def _reusable_graphs(files: Iterable[str], root: Path, entries: list[InputEntry]) -> dict[str, Any]:
    """The graphs kept from an earlier run (``OUT/.reuse/``) of this shard's images whose bytes did not
    change (same sha256), by path."""
    from scene_graphs.io import read_graphs

    wanted = {e.path for e in entries if e.duplicate_of is None}
    found: dict[str, Any] = {}
    for name in files:
        try:
            for g in read_graphs(name):
                if g.path in wanted and g.sha256:
                    found[g.path] = g
        except (OSError, ValueError) as exc:
            log.warning("not reusing %s: %s", name, exc)
    kept = {}
    for path, g in found.items():
        try:
            if file_digest(root / path).hex() == g.sha256:
                kept[path] = g
        except OSError:
            continue  # unreadable now: annotating it reports why
    return kept


def _path_range(path: Path) -> tuple[str, str] | None:
    """The ``path`` of the first and the last graph of a graph shard (reads two lines)."""
    try:
        with path.open("rb") as f:
            first = f.readline()
            end = f.seek(0, os.SEEK_END)
            pos, tail = end, b""
            while pos > 0 and tail.rstrip(b"\n").count(b"\n") < 1:
                step = min(1 << 16, pos)
                pos -= step
                f.seek(pos)
                tail = f.read(step) + tail
            last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        return str(orjson.loads(first)["path"]), str(orjson.loads(last)["path"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class ReuseCatalog:
    """Which kept graph files (``OUT/.reuse/``) may hold the images between two paths."""

    def __init__(self, files: Iterable[Path]) -> None:
        ranges = sorted((r, str(p)) for p in files if (r := _path_range(p)) is not None)
        self.firsts = [r[0] for r, _ in ranges]
        self.lasts = [r[1] for r, _ in ranges]
        self.files = [f for _, f in ranges]
        self.max_last: list[str] = list(itertools.accumulate(self.lasts, max))

    def overlapping(self, lo: str, hi: str) -> list[str]:
        """Files whose path range meets ``[lo, hi]``, in file order."""
        out = []
        j = bisect.bisect_right(self.firsts, hi) - 1
        while j >= 0 and self.max_last[j] >= lo:
            if self.lasts[j] >= lo:
                out.append(self.files[j])
            j -= 1
        return out[::-1]


class AnnotateStage(Stage):
    """Images -> scene graphs (see the module docstring)."""

    name = "annotate"
    unit = "image"
    stateful = True
    reuses = True

    def __init__(self, source: InputSource, factory: Callable[[], Any], settings: dict[str, Any], *,
                 shard_size: int = DEFAULT_SHARD_SIZE, batch_size: int = DEFAULT_BATCH_SIZE,
                 max_pixels: int | None = None, decode_threads: int = DEFAULT_DECODE_THREADS,
                 hash_threads: int = 4, gpus: float = 0.0,
                 checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS) -> None:
        from scene_graphs.perception.images import DEFAULT_MAX_PIXELS

        if shard_size < 1 or batch_size < 1:
            raise ValueError("shard size and batch size must be positive")
        self.source = source
        self.factory = factory
        self.settings = settings
        self.shard_size = shard_size
        self.batch_size = batch_size
        self.max_pixels = max_pixels or DEFAULT_MAX_PIXELS
        self.decode_threads = max(1, decode_threads)
        self.hash_threads = hash_threads
        self.gpus = gpus
        self.checkpoint_seconds = checkpoint_seconds
        self._index: InputIndex | None = None
        self._where: list[tuple[int, int]] = []
        self._reuse: ReuseCatalog | None = None

    def identity(self) -> dict[str, Any]:
        return {"perception": self.settings, "max_pixels": self.max_pixels, "shard_size": self.shard_size}

    def plan(self, out: Path, options: EngineOptions) -> Plan:
        index = build_index(self.source, out, limit=options.limit, threads=self.hash_threads)
        self._index, self._reuse = index, None
        shards, self._where = [], []
        for i, (offset, count, digest) in enumerate(index.shards(self.shard_size)):
            shards.append(ShardSpec(i, digest, count))
            self._where.append((offset, count))
        meta = index.meta
        manifest = {"inputs": {**self.source.to_dict(), "images": index.count, "index": "inputs.jsonl"},
                    "images_root": str(self.source.root.resolve()), "outputs": [shard_name(i) + ".jsonl"
                                                                                for i in range(len(shards))],
                    "limit": options.limit, "seed": None}
        counts = {"images_listed": index.count, "listing_problems": sum(meta["problems"].values()),
                  "hashed": meta["hashed"], "hashes_reused": meta["hashes_reused"], "duplicates": meta["duplicates"]}
        return Plan(shards, manifest, seconds=dict(meta["seconds"]), counts=counts)

    def payload(self, spec: ShardSpec) -> dict[str, Any]:
        assert self._index is not None
        offset, count = self._where[spec.index]
        if self._reuse is None:
            self._reuse = ReuseCatalog(reuse_files(self._index.folder))
        reuse: list[str] = []
        if self._reuse.files:
            entries = self._index.read(offset, count)
            reuse = self._reuse.overlapping(entries[0].path, entries[-1].path) if entries else []
        return {"root": str(self.source.root), "index": str(self._index.path), "offset": offset, "count": count,
                "key": spec.key, "reuse": reuse}

    def worker(self) -> AnnotateWorker:
        return AnnotateWorker(self.factory, self.batch_size, self.max_pixels, self.decode_threads,
                              self.checkpoint_seconds)

    def plan_errors(self, out: Path) -> Iterable[dict[str, Any]]:
        return self._index.problems() if self._index is not None else ()

    def versions(self) -> dict[str, str]:
        from scene_graphs.perception.base import library_versions

        return library_versions(["pycocotools", "scikit-image", "torch", "ultralytics-opencv-headless", "ultralytics",
                                 "ai-edge-litert", "open_clip_torch", "rapidocr", "transformers"])

    def summary_fields(self, totals: dict[str, Any]) -> dict[str, Any]:
        info = totals.get("info") or {}
        plan = totals["plan"]
        return {"images": totals["units"] + plan.get("listing_problems", 0), "graphs": totals["records"],
                "duplicates": plan.get("duplicates", 0), "stages": info.get("stages", {}),
                "skipped_stages": info.get("skipped_stages", {})}

    def ray_options(self, options: EngineOptions) -> dict[str, Any]:
        return {"num_cpus": 1, "num_gpus": self.gpus if options.num_gpus is None else options.num_gpus}


def gpus_for(device: str) -> float:
    """GPUs an annotator actor asks Ray for: 1 for ``cuda``/``cuda:N``; for ``auto`` 1 when torch sees one."""
    device = (device or "auto").lower()
    if device.startswith("cuda"):
        return 1.0
    if device == "auto":
        try:
            import torch

            return 1.0 if torch.cuda.is_available() else 0.0
        except ImportError:
            return 0.0
    return 0.0


def annotate(images: str | os.PathLike[str], out: str | os.PathLike[str], *, config: Any = None,
             factory: Callable[[], Any] | None = None, root: str | os.PathLike[str] | None = None,
             device: str = "auto", offline: bool | None = None, shard_size: int = DEFAULT_SHARD_SIZE,
             batch_size: int = DEFAULT_BATCH_SIZE, max_pixels: int | None = None,
             decode_threads: int = DEFAULT_DECODE_THREADS, options: EngineOptions | None = None,
             checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS) -> RunSummary:
    """Annotate every image of ``images`` (folder, list file or glob) into ``out``.

    ``config`` is a :class:`~scene_graphs.perception.profiles.PerceptionConfig` (default: the fast
    profile); ``factory`` replaces the pipeline it builds (a picklable callable returning a loaded
    :class:`~scene_graphs.perception.pipeline.Pipeline`; tests use small fake annotators).
    ``checkpoint_seconds``: how often an unfinished shard saves its graphs, so that an interrupted run
    loses at most that much work (an interrupt itself saves everything finished)."""
    from .. import __version__

    options = options or EngineOptions()
    if config is None:
        from scene_graphs.perception.profiles import make_config

        config = make_config()
    max_pixels = max_pixels or getattr(config, "max_pixels", None)
    if max_pixels is not None:
        config.max_pixels = max_pixels
    settings = config.to_dict()
    config_id = fingerprint(settings)
    if factory is None:
        factory = PipelineFactory(config, device, offline, {"mmgen": __version__, "config": config_id})
    source = InputSource.parse(images, root)
    gpus = gpus_for(device) if options.engine == "ray" else 0.0
    stage = AnnotateStage(source, factory, settings, shard_size=shard_size, batch_size=batch_size,
                          max_pixels=max_pixels, decode_threads=decode_threads, gpus=gpus,
                          checkpoint_seconds=checkpoint_seconds)
    summary = run_stage(stage, out, options)
    extra = {"mmgen": __version__, "images_root": str(source.root.resolve()), "profile": getattr(config, "profile", None),
             "config": config_id, "settings": settings, "device": device}
    with atomic_write(Path(out) / SUMMARY_FILE) as f:
        f.write((json.dumps({**extra, **summary.to_dict()}, indent=2) + "\n").encode())
    return summary
