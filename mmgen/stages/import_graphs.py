"""The ``import`` stage on the engine: annotations in another format (Visual Genome, GQA, COCO, ProVision)
-> scene-graph shards (``part-NNNNN.jsonl``, ``part-NNNNN.depth.npz`` where graphs have depth maps).

A source in these formats is one JSON document (ProVision's, a few joined by image), which cannot be
cut before it is parsed, so the stage has two phases, like curate:

1. *reading* (run-wide, before the engine starts; :meth:`ImportStage.prepare`): the importer
   (:mod:`scene_graphs.formats`) reads and validates the whole source once, all or nothing, into a
   staging folder beside the output, ``.OUT.staging-KEY-rRANK/`` (``NNNNN.jsonl`` + ``.depth.npz`` per
   shard of ``shard_size`` graphs, and ``plan.json``: each shard's digest and graph count, the
   :class:`~scene_graphs.formats.ImportReport`). On any error the staging folder is removed and the
   output folder is left as it was (not even created);
2. *placing* (per shard, on the engine's workers): staged shard ``i`` becomes ``part-0000i.jsonl`` (and
   its sidecar) and the marker. A shard's input key is the digest of its staged bytes, so ranks,
   ``--workers`` and resuming behave as for every stage and give the same bytes.

``KEY`` is the *source key*: names, sizes and modification times of the files under the source and the
image root (the images give sizes and sha256s), plus the settings. A run killed while placing leaves
the staging folder, which the next run takes as it is (the source unchanged); one killed while
reading leaves a staging folder without ``plan.json``, which the next run replaces. Once every shard is
complete the staging folder is removed and ``OUT/import_report.json`` written; ``OUT/import_plan.json``
(source key, shard keys, report) stays, so a rerun of the same command over an unchanged source does
not read it again and rewrites nothing.

The output folder must be empty, or an earlier import; ``overwrite`` replaces anything else in it
(after the source was read). It never lies in, holds or is the source (refused before anything is
read or written).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from itertools import islice
from pathlib import Path
from typing import Any

from scene_graphs.io import DEPTH_SUFFIX, atomic_write, depth_path

from ..store.folder import ERRORS, MANIFEST, MARKER_SUFFIX, SHARD_PREFIX, SUMMARY, StageFolder, read_json, write_json
from ..engine.core import (EngineError, EngineOptions, Plan, RunSummary, ShardFiles, ShardOutcome, ShardSpec, ShardWorker,
                   Stage, _valid, check_output_apart, fingerprint, marker_path)

log = logging.getLogger("mmgen.import")

STAGE = "import"
DEFAULT_SHARD_SIZE = 1000
REPORT = "import_report.json"
PLAN = "import_plan.json"
STAGED_PLAN = "plan.json"
OWN_FILES = frozenset({MANIFEST, SUMMARY, ERRORS, REPORT, PLAN})
"""What an import leaves in its output folder besides its shards and their markers."""


def default_image_root(src: Path) -> Path:
    """The images root when none is given: ``src`` when it is a folder, else the folder holding it."""
    return src if src.is_dir() else src.parent


def source_key(paths: list[Path], skip: list[Path], extra: Any) -> str:
    """Digest of the names, sizes and modification times of the files under ``paths`` (not under ``skip``
    nor in hidden folders) and of ``extra``."""
    h = hashlib.sha256(repr(extra).encode())
    skipped = {p.resolve() for p in skip}
    for root in paths:
        root = root.resolve()
        if root.is_file():
            st = root.stat()
            h.update(f"{root}|{st.st_size}|{st.st_mtime_ns}\n".encode())
            continue
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and Path(folder, d).resolve() not in skipped)
            for name in sorted(names):
                p = Path(folder, name)
                try:
                    st = p.stat()
                except OSError:
                    continue
                h.update(f"{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _file_digest(path: Path, h: Any) -> None:
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)


class PlaceWorker(ShardWorker):
    """Puts one staged shard in place (a byte copy: the reading phase made the graphs)."""

    def run(self, payload: Any, files: ShardFiles) -> ShardOutcome:
        staged = Path(payload["staged"]) / f"{payload['index']:05d}.jsonl"
        target = files.path(".jsonl")
        sidecar = files.path(DEPTH_SUFFIX)
        if depth_path(staged).is_file():
            with atomic_write(sidecar) as f, depth_path(staged).open("rb") as src:
                shutil.copyfileobj(src, f)
        else:
            sidecar.unlink(missing_ok=True)
        with atomic_write(target) as f, staged.open("rb") as src:
            shutil.copyfileobj(src, f)
        return ShardOutcome(units=payload["graphs"], records=payload["graphs"])


class ImportStage(Stage):
    """Annotations in another format -> scene-graph shards (see the module docstring)."""

    name = STAGE
    unit = "graph"

    def __init__(self, fmt: str, src: str | os.PathLike[str], *, image_root: str | os.PathLike[str] | None = None,
                 allow_pickle: bool = False, shard_size: int = DEFAULT_SHARD_SIZE) -> None:
        from scene_graphs.formats import get_format

        if shard_size < 1:
            raise ValueError("shard size must be positive")
        self.reader = get_format(fmt)
        self.fmt = fmt
        self.src = Path(src)
        self.image_root = Path(image_root) if image_root is not None else None
        self.allow_pickle = allow_pickle
        self.shard_size = shard_size
        self.staged: Path | None = None
        self.plan_data: dict[str, Any] = {}

    def identity(self) -> dict[str, Any]:
        return {"format": self.fmt, "source": str(self.src.resolve()),
                "image_root": str(self.image_root.resolve()) if self.image_root is not None else None,
                "allow_pickle": self.allow_pickle, "shard_size": self.shard_size}

    def config_id(self) -> str:
        """The run's config fingerprint, as :func:`~mmgen.engine.core.run_stage` computes it."""
        return fingerprint({"stage": self.name, **self.identity()})

    # ----------------------------------------------------------------------------- phase 1: reading
    def prepare(self, out: Path, options: EngineOptions) -> None:
        """Read the source into the staging folder, unless an earlier run's plan still holds (module
        docstring); raises the importer's error, having removed what it staged, when the source is bad."""
        roots = [self.src] + ([self.image_root] if self.image_root is not None else [])
        key = source_key(roots, [out], (self.identity(), options.limit))
        staged = out.parent / f".{out.name}.staging-{key[:16]}-r{options.rank}"
        kept = read_json(out / PLAN)
        if isinstance(kept, dict) and kept.get("source_key") == key and not options.overwrite \
                and self._all_complete(out, kept, options):
            self.plan_data, self.staged = kept, None
            return
        plan = read_json(staged / STAGED_PLAN)
        if isinstance(plan, dict) and plan.get("source_key") == key and self._intact(staged, plan):
            self.plan_data, self.staged = plan, staged
            return
        for old in out.parent.glob(f".{out.name}.staging-*-r{options.rank}"):
            shutil.rmtree(old, ignore_errors=True)  # an interrupted reading, or one of another source
        self.plan_data, self.staged = self._read(staged, key, options.limit), staged

    def _all_complete(self, out: Path, plan: dict[str, Any], options: EngineOptions) -> bool:
        config_id = self.config_id()
        return all(_valid(read_json(marker_path(out, i)), out, config_id, s["key"])
                   for i, s in enumerate(plan.get("shards", ())) if options.owns(i))

    @staticmethod
    def _intact(staged: Path, plan: dict[str, Any]) -> bool:
        return all((staged / f"{i:05d}.jsonl").is_file() for i in range(len(plan.get("shards", ()))))

    def _read(self, staged: Path, key: str, limit: int | None) -> dict[str, Any]:
        from scene_graphs.formats import ImportReport
        from scene_graphs.io import write_graphs

        report = ImportReport(source=str(self.src))
        staged.parent.mkdir(parents=True, exist_ok=True)
        staged.mkdir()
        try:
            graphs = self.reader.read(self.src, image_root=self.image_root, report=report,
                                      allow_pickle=self.allow_pickle)
            if limit is not None:
                graphs = islice(graphs, limit)
            shards = []
            while batch := list(islice(graphs, self.shard_size)):
                path = staged / f"{len(shards):05d}.jsonl"
                write_graphs(path, batch)
                report.graphs += len(batch)
                h = hashlib.sha256()
                for part in (path, depth_path(path)):
                    if part.is_file():
                        _file_digest(part, h)
                        h.update(b"\0")
                shards.append({"key": h.hexdigest()[:32], "graphs": len(batch)})
            plan = {"stage": STAGE, "source_key": key, "config_id": self.config_id(), "limit": limit,
                    "shards": shards, "report": report.to_dict()}
            write_json(staged / STAGED_PLAN, plan)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        return plan

    # ----------------------------------------------------------------------------- phase 2: placing
    def plan(self, out: Path, options: EngineOptions) -> Plan:
        shards = [ShardSpec(i, s["key"], s["graphs"]) for i, s in enumerate(self.plan_data["shards"])]
        if read_json(out / PLAN) != self.plan_data:
            write_json(out / PLAN, self.plan_data)
        manifest = {"inputs": {"format": self.fmt, "source": str(self.src.resolve())},
                    "outputs": [f"{SHARD_PREFIX}{i:05d}.jsonl" for i in range(len(shards))],
                    "limit": options.limit, "seed": None}
        return Plan(shards, manifest, counts={"graphs_read": self.plan_data["report"]["graphs"]})

    def payload(self, spec: ShardSpec) -> dict[str, Any]:
        if self.staged is None:  # prepare() found every shard complete; a shard missing since is read again
            raise EngineError(f"shard {spec.index} of the import is missing and nothing is staged; rerun the command")
        return {"staged": str(self.staged), "index": spec.index, "graphs": spec.units}

    def worker(self) -> PlaceWorker:
        return PlaceWorker()

    def summary_fields(self, totals: dict[str, Any]) -> dict[str, Any]:
        return {"graphs": totals["records"]}

    def finish(self, out: Path, summary: RunSummary) -> None:
        """After a complete run: ``import_report.json`` and no staging folder."""
        if not summary["complete"]:
            return
        if read_json(out / REPORT) != self.plan_data["report"]:
            write_json(out / REPORT, self.plan_data["report"])
        for staged in out.parent.glob(f".{out.name}.staging-{self.plan_data['source_key'][:16]}-r*"):
            shutil.rmtree(staged, ignore_errors=True)  # every rank's: no shard needs them any more


def _clear_foreign(out: Path) -> None:
    """Remove what an import does not write from ``out`` (``overwrite`` of a folder holding something else)."""
    for p in sorted(out.iterdir()):
        if p.name in OWN_FILES or (p.name.startswith(SHARD_PREFIX) and
                                   (p.name.endswith((".jsonl", DEPTH_SUFFIX, MARKER_SUFFIX)))):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
        log.info("removed %s (--overwrite)", p)


def import_graphs(fmt: str, src: str | os.PathLike[str], out: str | os.PathLike[str], *,
                  image_root: str | os.PathLike[str] | None = None, allow_pickle: bool = False,
                  shard_size: int = DEFAULT_SHARD_SIZE, options: EngineOptions | None = None) -> RunSummary:
    """Import the annotations at ``src`` (format ``fmt``: vg, gqa, coco, provision) into ``out`` (see the
    module docstring); returns the summary (also in ``summary.json``)."""
    from ..engine.core import run_stage

    options = options or EngineOptions()
    src, out = Path(src), Path(out)
    check_output_apart(out, [src], may_nest=[Path(image_root) if image_root is not None else default_image_root(src)])
    if out.exists() and not out.is_dir():
        raise EngineError(f"output folder {out} is a file")
    if out.is_dir() and any(out.iterdir()) and StageFolder(out).stage != STAGE and not options.overwrite:
        raise EngineError(f"output folder {out} is not empty (use --overwrite to replace it)")
    stage = ImportStage(fmt, src, image_root=image_root, allow_pickle=allow_pickle, shard_size=shard_size)
    stage.prepare(out, options)
    if options.overwrite and out.is_dir():
        _clear_foreign(out)
    summary = run_stage(stage, out, options)
    stage.finish(out, summary)
    plan = stage.plan_data
    report = plan["report"]
    log.info("imported %d scene graphs from %s into %s (%d shard(s))", report["graphs"], src, out,
             len(plan["shards"]))
    if report["clipped_boxes"]:
        log.info("clipped %d box(es) that spilled over the image edge", report["clipped_boxes"])
    if report["missing_images"]:
        log.warning("%d image(s) could not be found under the image root, e.g. %s", report["missing_images"],
                    ", ".join(report["missing_image_examples"][:3]))
    for reason, count in sorted(report["dropped"].items()):
        log.warning("dropped %d: %s", count, reason)
    return summary
