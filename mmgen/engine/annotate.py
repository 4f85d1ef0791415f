"""The ``annotate`` stage on the engine: images (a folder, a list file or a glob) -> scene-graph shards.

Planning builds the input index (:mod:`mmgen.inputs`: sorted relative paths, sizes, modification
times, exact duplicates) in the output folder and cuts it into shards of ``shard_size`` images; a
shard's input key is the digest of its index lines, so an edited or added image redoes only the
shard it lands in. A worker loads the perception pipeline once (:class:`PipelineFactory`), decodes
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

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from scene_graphs.ids import image_id
from scene_graphs.io import atomic_write

from ..inputs import InputIndex, InputSource, build_index, entries_key, read_entries
from .core import (
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
    run_stage,
    shard_name,
)

log = logging.getLogger("mmgen.annotate")

DEFAULT_SHARD_SIZE = 1000
DEFAULT_BATCH_SIZE = 8
DEFAULT_DECODE_THREADS = 2
SUMMARY_FILE = "annotate.json"
MAX_LOGGED_PER_PROCESS = 20
_logged = 0


class PipelineFactory:
    """Builds and loads the perception pipeline inside a worker (only settings travel)."""

    def __init__(self, config: Any, device: str = "auto", offline: bool | None = None,
                 provenance: dict[str, Any] | None = None) -> None:
        self.config = config
        self.device = device
        self.offline = offline
        self.provenance = dict(provenance or {})

    def __call__(self) -> Any:
        from scene_graphs.perception.profiles import build_pipeline

        pipeline = build_pipeline(self.config, offline=self.offline, provenance=self.provenance).load(self.device)
        log.info("stages: %s%s", ", ".join(s.name for s in pipeline.stages),
                 f" (skipped: {', '.join(pipeline.skipped)})" if pipeline.skipped else "")
        return pipeline


def _fatal_errors() -> tuple[type[BaseException], ...]:
    from scene_graphs.perception.base import AnnotatorError, MissingDependencyError
    from scene_graphs.perception.profiles import ConfigError
    from scene_graphs.perception.weights import WeightsError

    return (WeightsError, MissingDependencyError, AnnotatorError, ConfigError)


class AnnotateWorker(ShardWorker):
    """Decodes and annotates one shard of images."""

    def __init__(self, factory: Callable[[], Any], batch_size: int, max_pixels: int, decode_threads: int) -> None:
        self.factory = factory
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.decode_threads = decode_threads
        self.pipeline: Any = None
        self.fatal = _fatal_errors()

    def setup(self) -> None:
        self.pipeline = self.factory()

    def run(self, payload: Any, files: ShardFiles) -> ShardOutcome:
        from scene_graphs.io import write_graphs
        from scene_graphs.perception.pipeline import ImageFailure, annotate_paths

        global _logged
        root = Path(payload["root"])
        entries = read_entries(Path(payload["index"]), payload["offset"], payload["count"])
        if entries_key(entries) != payload["key"]:
            raise RuntimeError(f"the input index {payload['index']} changed since this run planned its shards "
                               "(another rank listing changed images?); rerun to pick the new listing up")
        out = ShardOutcome(units=len(entries))
        todo: list[Path] = []
        for entry in entries:
            dup = entry.duplicate_of
            if dup is not None:
                out.errors.append({"path": entry.path, "image_id": image_id(entry.path), "stage": "dedup",
                                   "kind": DUPLICATE, "error": f"{entry.path}: same bytes as {dup} "
                                                               f"(image {image_id(dup)}), which is kept",
                                   "duplicate_of": dup, "duplicate_of_id": image_id(dup)})
            else:
                todo.append(root / entry.path)
        before = dict(self.pipeline.seconds)
        graphs = []
        for res in annotate_paths(self.pipeline, todo, root, batch_size=self.batch_size, max_pixels=self.max_pixels,
                                  threads=self.decode_threads):
            if isinstance(res, ImageFailure):
                out.errors.append(res.to_dict())
                _logged += 1
                if _logged <= MAX_LOGGED_PER_PROCESS:
                    log.warning("skipped %s: %s", res.path, res.reason)
                elif _logged == MAX_LOGGED_PER_PROCESS + 1:
                    log.warning("more images skipped; they are all listed in errors.jsonl")
            else:
                graphs.append(res)
        t = time.perf_counter()
        files.path(".depth.npz")  # written beside the shard when a graph has a depth map
        write_graphs(files.path(".jsonl"), graphs)
        out.records = len(graphs)
        out.seconds = {k: v - before.get(k, 0.0) for k, v in self.pipeline.seconds.items()}
        out.seconds["write"] = time.perf_counter() - t
        out.info = {"stages": {s.name: s.provenance() for s in self.pipeline.stages},
                    "skipped_stages": dict(self.pipeline.skipped)}
        return out


class AnnotateStage(Stage):
    """Images -> scene graphs (see the module docstring)."""

    name = "annotate"
    unit = "image"
    stateful = True

    def __init__(self, source: InputSource, factory: Callable[[], Any], settings: dict[str, Any], *,
                 shard_size: int = DEFAULT_SHARD_SIZE, batch_size: int = DEFAULT_BATCH_SIZE,
                 max_pixels: int | None = None, decode_threads: int = DEFAULT_DECODE_THREADS,
                 hash_threads: int = 4, gpus: float = 0.0) -> None:
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
        self._index: InputIndex | None = None
        self._where: list[tuple[int, int]] = []

    def identity(self) -> dict[str, Any]:
        return {"perception": self.settings, "max_pixels": self.max_pixels, "shard_size": self.shard_size}

    def plan(self, out: Path, options: EngineOptions) -> Plan:
        index = build_index(self.source, out, limit=options.limit, threads=self.hash_threads)
        self._index = index
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
        return {"root": str(self.source.root), "index": str(self._index.path), "offset": offset, "count": count,
                "key": spec.key}

    def worker(self) -> AnnotateWorker:
        return AnnotateWorker(self.factory, self.batch_size, self.max_pixels, self.decode_threads)

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
             decode_threads: int = DEFAULT_DECODE_THREADS, options: EngineOptions | None = None) -> RunSummary:
    """Annotate every image of ``images`` (folder, list file or glob) into ``out``.

    ``config`` is a :class:`~scene_graphs.perception.profiles.PerceptionConfig` (default: the fast
    profile); ``factory`` replaces the pipeline it builds (a picklable callable returning a loaded
    :class:`~scene_graphs.perception.pipeline.Pipeline`; tests use small fake annotators)."""
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
                          max_pixels=max_pixels, decode_threads=decode_threads, gpus=gpus)
    summary = run_stage(stage, out, options)
    extra = {"mmgen": __version__, "images_root": str(source.root.resolve()), "profile": getattr(config, "profile", None),
             "config": config_id, "settings": settings, "device": device}
    with atomic_write(Path(out) / SUMMARY_FILE) as f:
        f.write((json.dumps({**extra, **summary.to_dict()}, indent=2) + "\n").encode())
    return summary
