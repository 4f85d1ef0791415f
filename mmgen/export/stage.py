"""``export`` on the engine: every format renders shard by shard on the workers, then the files are written.

Two phases:

1. *rendering* (per QA shard, on the engine's workers; :class:`ExportStage`): input shard ``i`` is read,
   rendered (:func:`mmgen.export.render.render`: paths, image checks, target conversions, options,
   per-image merging) and each record made by the format, written as ``[split, record]`` lines to
   ``part-0000i.jsonl`` in a work folder beside the output, ``.OUT.export/``, with the engine's
   manifest, markers and summary (counts per split, family, program, question type; notes; skipped
   records). A shard's key is its input file (name, size, modification time), so a run killed here
   is resumed by the next one, ranks and ``--workers`` split the shards and give the same bytes;
2. *writing* (in the driver, once every shard is complete): the format's own ``write`` takes the made
   records in shard order (so ``train.json``, ``val.json``, LLaMA-Factory's ``dataset_info.json`` are
   written as before, each renamed into place), then the driver writes the trainer files and
   ``export.json``, whose ``run`` entry (the work's config and input keys, the written files' sizes)
   makes a rerun over unchanged inputs a no-op (the images are not looked at again: after editing
   images behind unchanged QA shards, use ``--overwrite``). The work folder is removed after a
   complete export; one left by a failed export (a record the export cannot take) keeps the shards
   already rendered for the next run.

``hf`` (parquet): a worker writes its shard's rows with the format's writer (images read and embedded
there) into ``hf/part-0000i.FAMILY.SPLIT.parquet`` in the work folder; the writing phase streams the
rows of every shard in order into ``data/FAMILY/SPLIT.parquet`` with the format's row groups and writes
the dataset card, so the files are those of the one-process export.

The records of one image are merged (``merge_per_image``) inside a shard; an image whose records
reach over a shard boundary is refused, as records that are not together always were.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import shutil
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

import orjson

from scene_graphs.io import atomic_write, read_jsonl

from ..engine.core import (EngineError, EngineOptions, Plan, RunSummary, ShardFiles, ShardOutcome, ShardSpec,
                           ShardWorker, Stage, fingerprint, run_stage, sizes_intact)
from ..llm.stage import qa_file_key
from ..store import limit_shards, read_json
from ..store.folder import MANIFEST as STAGE_MANIFEST
from .base import JsonFormat
from .options import ExportError, ExportOptions

log = logging.getLogger("mmgen.export")

STAGE = "export"
COUNTERS = ("per_split", "per_family", "per_program", "per_question_type", "notes", "skipped", "image_counts")
"""What a shard's marker counts (``image_counts``: records of one image and of several)."""
HF_DIR = "hf"
"""The work folder's subfolder of each shard's parquet files (``hf`` format)."""


def work_folder(out: Path) -> Path:
    """Where the rendering phase keeps its shards: ``.OUT.export/`` beside the output folder."""
    out = out.resolve()
    return out.parent / f".{out.name}.{STAGE}"


@dataclass(frozen=True)
class Made:
    """A record made by the rendering phase, for the format's ``write`` (which asks for ``split``)."""

    split: str
    record: Any


def _identity(item: Made) -> Any:
    return item.record


def writer_of(format_: JsonFormat) -> JsonFormat:
    """The format, taking :class:`Made` records (made by the workers) instead of rendered ones."""
    prebuilt = copy.copy(format_)
    prebuilt.recorder = lambda options: _identity  # type: ignore[method-assign]
    return prebuilt


class ExportWorker(ShardWorker):
    """Renders one QA shard and makes its records (see the module docstring)."""

    fatal = (ExportError, ValueError, OSError)
    """A record the export cannot take stops the run, as it always did (fix the input and rerun)."""

    def __init__(self, fmt: str, options: ExportOptions) -> None:
        self.fmt = fmt
        self.options = options

    def run(self, payload: Any, files: ShardFiles) -> ShardOutcome:
        from . import ExportSummary, _counted, _rendered, get_format, merged_per_image

        format_ = get_format(self.fmt)
        summary = ExportSummary(format_.name)
        sizes: Counter = Counter()
        items = _rendered([(Path(payload["src"]), payload["limit"])], self.options, summary)
        if self.options.merge_per_image:
            items = merged_per_image(items, self.options, summary)
        out = ShardOutcome()
        edges: list[Any] = []

        def counted() -> Iterator[Any]:
            for item in _counted(items, summary, sizes):
                if len(item.qa.images) == 1:
                    edges[:] = [edges[0] if edges else item.qa.images[0], item.qa.images[0]]
                yield item

        if isinstance(format_, JsonFormat):
            make = format_.recorder(self.options)
            with atomic_write(files.path(".jsonl")) as f:
                for item in counted():
                    f.write(orjson.dumps([item.split, make(item)]) + b"\n")
        else:
            self._write_parquet(format_, counted(), files, out)
        first, last = edges if edges else (None, None)
        out.records = summary.records
        for name in COUNTERS:
            counter = sizes if name == "image_counts" else getattr(summary, name)
            for key, n in counter.items():
                out.count(name, str(key), n)
        out.units = summary.records + sum(summary.skipped.values())
        out.info = {"first_image": first, "last_image": last}
        return out

    def _write_parquet(self, format_: Any, items: Iterator[Any], files: ShardFiles, out: ShardOutcome) -> None:
        """``hf``: the format writes this shard's rows; its parquet files move to ``hf/`` (see the module
        docstring), the rows per file and the programs per family are counted in ``out``."""
        from .hf import config_name

        def by_family() -> Iterator[Any]:
            for item in items:
                out.count("hf_programs", f"{config_name(item.qa.family)}\t{item.qa.program}")
                yield item

        tmp = files.out / f".{files.stem}.hf.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            written = format_.write(by_family(), tmp, self.options)
            for name, n in written.items():
                parts = name.split("/")
                if len(parts) != 3 or parts[0] != "data":
                    continue  # the dataset card: written once for the whole export
                fam, split = parts[1], parts[2].removesuffix(".parquet")
                os.replace(tmp / name, files.path_in(HF_DIR, f".{fam}.{split}.parquet"))
                out.count("hf_rows", f"{fam}/{split}", n)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class ExportStage(Stage):
    """QA shards -> made records per shard, in the work folder (see the module docstring)."""

    name = STAGE
    unit = "record"

    def __init__(self, src: str | Path, fmt: str, options: ExportOptions) -> None:
        from . import qa_files

        self.src = Path(src)
        self.inputs = qa_files(self.src)
        self.limits: list[int | None] = [None] * len(self.inputs)
        self.fmt = fmt
        self.options = options
        self.keys: list[str] = []

    def identity(self) -> dict[str, Any]:
        return {"format": self.fmt, "options": self.options.to_dict(), "source": str(self.src.resolve())}

    def config_id(self) -> str:
        return fingerprint({"stage": self.name, **self.identity()})

    def shard_specs(self, limit: int | None) -> list[ShardSpec]:
        self.inputs, self.limits = limit_shards(self.inputs, limit)
        specs = [ShardSpec(i, qa_file_key(p, p.name, lim)) for i, (p, lim) in enumerate(zip(self.inputs, self.limits))]
        self.keys = [s.key for s in specs]
        return specs

    def plan(self, out: Path, options: EngineOptions) -> Plan:
        shards = self.shard_specs(options.limit)
        return Plan(shards, {"inputs": [str(p.resolve()) for p in self.inputs], "limit": options.limit})

    def payload(self, spec: ShardSpec) -> dict[str, Any]:
        return {"src": str(self.inputs[spec.index]), "limit": self.limits[spec.index]}

    def worker(self) -> ExportWorker:
        return ExportWorker(self.fmt, self.options)

    def fold(self, acc: dict[str, Any], marker: Mapping[str, Any]) -> None:
        info = marker.get("info") or {}
        acc.setdefault("edges", []).append((int(marker["shard"]), info.get("first_image"), info.get("last_image")))

    def summary_fields(self, totals: dict[str, Any]) -> dict[str, Any]:
        return {"edges": totals["folded"].get("edges", [])}


def run_key(stage: ExportStage) -> str:
    """What the written files are made of: the work's config and every input shard's key."""
    return fingerprint({"config": stage.config_id(), "inputs": stage.keys})


def unchanged(out: Path, manifest: Any, key: str) -> bool:
    """Whether ``export.json`` says the files in ``out`` were written from ``key`` and they are all there."""
    run = manifest.get("run") if isinstance(manifest, dict) else None
    if not isinstance(run, dict) or run.get("key") != key or not isinstance(run.get("sizes"), dict):
        return False
    return sizes_intact(run["sizes"], out)


def _made(work: Path, n: int) -> Iterator[Made]:
    for i in range(n):
        for split, record in read_jsonl(work / f"part-{i:05d}.jsonl"):
            yield Made(split, record)


def render_on_engine(src: str | Path, out: Path, format_: JsonFormat, options: ExportOptions,
                     engine: EngineOptions | None, old_manifest: Any) -> tuple[Any, Counter, str, bool]:
    """Phase 1 on the engine, then phase 2 (the format's files); returns (summary, records per image
    count, run key, whether nothing had to be written). Raises :class:`ExportError` for a record the
    export cannot take (what stopped the shard), :class:`EngineError` when shards are left to other ranks."""
    from . import ExportSummary

    engine = engine or EngineOptions()
    stage = ExportStage(src, format_.name, options)
    stage.shard_specs(engine.limit)
    key = run_key(stage)
    if not engine.overwrite and unchanged(out, old_manifest, key):
        log.info("export: %s is up to date (same inputs and options); nothing to write", out)
        return ExportSummary.from_dict(old_manifest), Counter(), key, True
    work = work_folder(out)
    previous = read_json(work / STAGE_MANIFEST)
    fresh = not (isinstance(previous, dict) and previous.get("config_id") == stage.config_id())
    try:
        summary = run_stage(stage, work, replace(engine, overwrite=engine.overwrite or fresh))
    except EngineError as exc:
        text = str(exc)
        if ": shard " in text and " failed: " in text:  # a fatal record error: the shard's own message
            raise ExportError(text.split(" failed: ", 1)[1].split(": ", 1)[-1]) from None
        raise
    if not summary["complete"]:
        raise EngineError(f"export: {summary['shards_missing']} shard(s) not rendered yet (other ranks, or failed); "
                          "the files are written once every shard is complete")
    _check_edges(summary["edges"], options)
    result = ExportSummary(format_.name)
    counts = summary["counts"]
    for name in COUNTERS[:-1]:
        getattr(result, name).update(counts.get(name) or {})
    result.records = int(summary["records"])
    if isinstance(format_, JsonFormat):
        result.files = writer_of(format_).write(_made(work, summary["shards"]), out, options)
    else:
        result.files = _write_hf(work, summary["shards"], out, options, counts)
    return result, Counter(counts.get("image_counts") or {}), key, False


def _write_hf(work: Path, shards: int, out: Path, options: ExportOptions, counts: Mapping[str, Any]
              ) -> dict[str, int]:
    """``hf``: every shard's rows, in shard order, into ``data/FAMILY/SPLIT.parquet`` with the format's
    row groups, and the dataset card; returns {file: rows} as the format's ``write`` does."""
    from .hf import CARD, _PartWriter, arrow_schema, dataset_card, require_hf

    _, pa, pq = require_hf()
    schema = arrow_schema(pa)
    rows = {tuple(k.split("/", 1)): int(n) for k, n in (counts.get("hf_rows") or {}).items()}
    programs: dict[str, Counter] = {}
    for k, n in (counts.get("hf_programs") or {}).items():
        fam, program = k.split("\t", 1)
        programs.setdefault(fam, Counter())[program] += int(n)
    with contextlib.ExitStack() as stack:  # every file renamed into place only if all succeed
        for fam, split in sorted(rows):
            f = stack.enter_context(atomic_write(out / "data" / fam / f"{split}.parquet"))
            part = _PartWriter(pq.ParquetWriter(f, schema), pa, schema)
            for i in range(shards):
                path = work / HF_DIR / f"part-{i:05d}.{fam}.{split}.parquet"
                if not path.is_file():
                    continue
                for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
                    for row in batch.to_pylist():
                        part.add(row, sum(len(image["bytes"] or b"") for image in row["images"]))
            part.close()
    with atomic_write(out / CARD) as f:
        f.write(dataset_card(rows, programs, options).encode())
    written: dict[str, int] = {f"data/{fam}/{split}.parquet": n for (fam, split), n in sorted(rows.items())}
    written[CARD] = 0
    return written


def _check_edges(edges: list[Any], options: ExportOptions) -> None:
    if not options.merge_per_image:
        return
    edges = sorted(edges)
    for (i, _, last), (j, first, _) in zip(edges, edges[1:]):
        if last is not None and last == first:
            raise ExportError(f"the records of image {last} are not together in one QA shard (shards {i} and {j}); "
                              "merge_per_image needs each image's records in a row in one shard (as generate "
                              "writes them)")


def remove_work(out: Path) -> None:
    shutil.rmtree(work_folder(out), ignore_errors=True)


__all__ = ["ExportStage", "ExportWorker", "Made", "RunSummary", "remove_work", "render_on_engine", "work_folder"]
