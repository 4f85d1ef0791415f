"""One stage's output folder: its shards, manifest, completion markers, errors and summary.

Every stage (annotate, import, generate, evolve, curate) writes the same layout (see
:mod:`mmgen.engine.core`)::

    OUT/manifest.json         the run: stage, config, inputs, outputs, versions
    OUT/part-NNNNN.jsonl      one shard's records (sidecars such as part-NNNNN.depth.npz beside it)
    OUT/part-NNNNN.done.json  the shard's completion marker
    OUT/errors.jsonl          inputs that were skipped, with the reason
    OUT/summary.json          counts over the complete shards
    OUT/dropped.jsonl         records a filtering stage (evolve, curate) left out, with the reason

:class:`StageFolder` names these files, and :func:`qa_shards` is the one way to list a folder's record
shards: ``part-*.jsonl`` directly inside it (never ``dropped.jsonl``, ``errors.jsonl`` or anything in
a dot-folder). Graph inputs may be a tree of shards (ranks writing into subfolders), listed by
:func:`scene_graphs.io.graph_files`. :attr:`StageFolder.kind` tells what a folder holds from what it
holds (its manifest's stage, the files an annotate or import run leaves, else its first record), never
from its name.
"""

from __future__ import annotations

import json
from functools import cached_property
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import orjson

from scene_graphs.io import SHARD_GLOB, atomic_write, graph_files

MANIFEST = "manifest.json"
SUMMARY = "summary.json"
ERRORS = "errors.jsonl"
DROPPED = "dropped.jsonl"
"""Every record a stage left out, one JSON object a line: ``id``, ``stage``, ``filter``, ``reason``,
``shard`` and the ``record`` itself (never named ``part-*``, so no later stage reads it as data)."""
SHARD_PREFIX = "part-"
MARKER_SUFFIX = ".done.json"
GRAPH_MARKERS = ("annotate.json", "import_report.json")
"""Files an annotate or import run leaves beside its graph shards."""
GRAPH_STAGES = ("annotate", "import")
QA_STAGES = ("generate", "generate-multi", "evolve")
CURATE_STAGE = "curate"
EXPORT_FILE = "export.json"

Kind = Literal["graphs", "qa", "curation", "export", ""]


def shard_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index:05d}"


def marker_path(out: Path, index: int) -> Path:
    return out / (shard_name(index) + MARKER_SUFFIX)


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or ``None`` when it is missing or malformed."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON, written atomically."""
    with atomic_write(path) as f:
        f.write((json.dumps(data, indent=2) + "\n").encode())


def is_graph_record(rec: Any) -> bool:
    return isinstance(rec, dict) and {"image_id", "width", "height"} <= rec.keys()


def is_qa_record(rec: Any) -> bool:
    return isinstance(rec, dict) and {"program", "question", "images"} <= rec.keys()


class StageFolder:
    """The output folder of one stage (see the module docstring); nothing is read until asked."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"StageFolder({str(self.path)!r})"

    @cached_property
    def manifest(self) -> dict[str, Any]:
        """``manifest.json`` (``{}`` when missing or unreadable)."""
        data = read_json(self.path / MANIFEST)
        return data if isinstance(data, dict) else {}

    @property
    def stage(self) -> str:
        """The stage that wrote the folder (its manifest's ``stage``), or ``""``."""
        stage = self.manifest.get("stage")
        return stage if isinstance(stage, str) else ""

    @property
    def config(self) -> dict[str, Any] | None:
        """The program config a QA folder was made with (its manifest's ``config``)."""
        config = self.manifest.get("config")
        return config if isinstance(config, dict) else None

    def shards(self) -> list[Path]:
        """The record shards (``part-*.jsonl`` directly inside), sorted: the one way QA shards are listed."""
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.glob(SHARD_GLOB) if p.is_file())

    def graph_shards(self) -> list[Path]:
        """Graph shards: every ``part-*.jsonl`` below the folder (:func:`scene_graphs.io.graph_files`)."""
        return graph_files(self.path)

    def marker(self, index: int) -> Path:
        return marker_path(self.path, index)

    @property
    def errors(self) -> Path:
        return self.path / ERRORS

    def summary(self) -> dict[str, Any]:
        data = read_json(self.path / SUMMARY)
        return data if isinstance(data, dict) else {}

    def dropped_files(self) -> list[Path]:
        """The files of dropped records: ``dropped*.jsonl`` (and ``dropped/*.jsonl``), sorted."""
        return sorted(self.path.glob("dropped*.jsonl")) + sorted((self.path / "dropped").glob("*.jsonl"))

    def first_record(self) -> dict[str, Any] | None:
        """The first record of the first shard (``None`` when there is none or it is malformed)."""
        for shard in self.shards():
            try:
                with shard.open("rb") as f:
                    for line in f:
                        if line.strip():
                            rec = orjson.loads(line)
                            return rec if isinstance(rec, dict) else None
            except (OSError, orjson.JSONDecodeError):
                return None
        return None

    @cached_property
    def kind(self) -> Kind:
        """What the folder holds: ``graphs``, ``qa`` records, a ``curation`` (curate's kept and dropped
        records), an ``export``, or ``""`` (nothing known)."""
        stage = self.stage
        if stage == CURATE_STAGE:
            return "curation"
        if stage in GRAPH_STAGES or any((self.path / m).is_file() for m in GRAPH_MARKERS):
            return "graphs"
        has_shards = bool(self.shards())
        if stage in QA_STAGES and has_shards:
            return "qa"
        rec = self.first_record()
        if is_graph_record(rec):
            return "graphs"
        if is_qa_record(rec):
            return "qa"
        if (self.path / EXPORT_FILE).is_file():
            return "export"
        return ""


def qa_shards(src: str | Path, required: bool = True) -> list[Path]:
    """The QA shards at ``src``: the file itself, or the folder's shards (:meth:`StageFolder.shards`).
    ``required``: a missing source or a folder without shards is a :class:`FileNotFoundError`."""
    src = Path(src)
    if src.is_file():
        return [src]
    if not src.is_dir():
        if not required:
            return []
        raise FileNotFoundError(f"no QA file or folder at {src}")
    files = StageFolder(src).shards()
    if not files and required:
        raise FileNotFoundError(f"no QA shards (part-*.jsonl) in {src}")
    return files


def limit_shards(paths: Sequence[Path], limit: int | None) -> tuple[list[Path], list[int | None]]:
    """The shards that hold the first ``limit`` records (non-blank lines) and each one's own limit:
    ``None`` (read it whole) for all but the last, which is cut at what is left of ``limit``."""
    paths, limits = list(paths), [None] * len(paths)
    if limit is None:
        return paths, limits
    left = limit
    for i, p in enumerate(paths):
        n = 0
        with p.open("rb") as f:
            for line in f:
                if line.strip():
                    n += 1
                    if n >= left:
                        break
        if n >= left:
            return paths[:i + 1], [None] * i + [left]
        left -= n
    return paths, limits
