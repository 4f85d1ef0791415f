"""What the LLM stages share: graphs by image id, manifests, drop records, summing usage (QA shards are\nlisted by :func:`mmgen.store.qa_shards`)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from scene_graphs.io import atomic_write, graph_files, read_jsonl
from scene_graphs.model import SceneGraph

from ..engine.core import EngineOptions, ShardSpec, Stage, fingerprint
from ..store import DROPPED, MANIFEST, GraphStore, limit_shards, qa_shards, shard_name


def upstream_manifest(src: str | Path) -> dict[str, Any]:
    path = Path(src) / MANIFEST if Path(src).is_dir() else Path(src).parent / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: malformed manifest ({exc})") from None
    return data if isinstance(data, dict) else {}


DROPS_DIR = ".dropped"
"""Each shard's dropped records, ``OUT/.dropped/part-NNNNN.jsonl``; ``dropped.jsonl`` joins those of the
complete shards in shard order after every run."""


def qa_file_key(path: Path, name: str, extra: Any = None) -> str:
    """Input key of a QA shard: its name, size and modification time (and ``extra``: a record limit, the
    shard's curation decisions...), so an input shard that changed is redone on a rerun."""
    st = path.stat()
    return hashlib.sha256(f"{name}|{st.st_size}|{st.st_mtime_ns}|{extra}".encode()).hexdigest()[:32]


class QAStage(Stage):
    """A stage over the QA shards of ``src`` (evolve, curate), on the engine: output shard ``i``
    (``part-0000i.jsonl``, its marker, its drops in ``.dropped/``) is made from the ``i``-th input shard
    (sorted), keyed by the input file. The identity is the stage's settings (under its name) and the
    upstream program ``config``; the manifest also carries the upstream ``programs``, the QA shards
    read (``qa_inputs``) and, when the upstream is a single-image ``generate`` whose shards map one to
    one to ours, its graph-shard pairing (``inputs``/``outputs``, what ``mmgen verify`` reads)."""

    drops_dir: ClassVar[str] = DROPS_DIR

    def __init__(self, src: str | Path, settings: Mapping[str, Any]) -> None:
        self.src = Path(src)
        self.inputs = qa_shards(self.src)
        self.upstream = upstream_manifest(self.src)
        self.settings = dict(settings)
        self.limits: list[int | None] = [None] * len(self.inputs)
        self.drop_files: list[str] = []

    def identity(self) -> dict[str, Any]:
        ident: dict[str, Any] = {self.name: self.settings}
        if "config" in self.upstream:
            ident["config"] = self.upstream["config"]
        return ident

    def config_id(self) -> str:
        """The run's config fingerprint, as :func:`~mmgen.engine.core.run_stage` computes it."""
        return fingerprint({"stage": self.name, **self.identity()})

    def input_specs(self, options: EngineOptions, extra: Sequence[Any] | None = None) -> list[ShardSpec]:
        """One shard per input shard (after ``options.limit`` records, the rest are left out); ``extra``
        (per shard) joins the input key."""
        inputs, limits = limit_shards(self.inputs, options.limit)
        self.inputs, self.limits = inputs, limits
        return [ShardSpec(i, qa_file_key(p, p.name, (lim, extra[i] if extra is not None else None)))
                for i, (p, lim) in enumerate(zip(inputs, limits))]

    def read(self, index: int) -> Iterator[Any]:
        """The records of input shard ``index`` (up to its limit)."""
        return read_limited(self.inputs[index], self.limits[index])

    def input_manifest(self) -> dict[str, Any]:
        """Manifest entries about the inputs (see the class docstring)."""
        from .. import __version__

        up = self.upstream
        source_stage = up.get("source_stage") or up.get("stage")
        manifest: dict[str, Any] = {"source_stage": source_stage, "mmgen_version": __version__}
        if "programs" in up:
            manifest["programs"] = up["programs"]
        names = [p.name for p in self.inputs]
        outputs = [shard_name(i) + ".jsonl" for i in range(len(self.inputs))]
        if "inputs" in up and "outputs" in up and up.get("stage") in ("generate", "evolve", "curate") \
                and source_stage == "generate":
            pairs = dict(zip(up["outputs"], up["inputs"], strict=False))
            if all(n in pairs for n in names):
                manifest["inputs"] = [pairs[n] for n in names]
                manifest["outputs"] = outputs
        manifest["qa_inputs"] = [str(p.resolve()) for p in self.inputs]
        return manifest

    def prune(self, out: Path, n: int) -> None:
        """Drop files of shards beyond ``n`` (left by a larger earlier input) and temporary files."""
        folder = out / self.drops_dir
        if not folder.is_dir():
            return
        for p in sorted(folder.iterdir()):
            m = re.match(r"^\.?part-(\d+)\.", p.name)
            if m and (p.name.endswith(".tmp") or int(m.group(1)) >= n):
                p.unlink(missing_ok=True)

    def fold(self, acc: dict[str, Any], marker: Mapping[str, Any]) -> None:
        acc.setdefault("drop_files", []).extend(n for n in marker.get("files") or {}
                                                 if n.startswith(self.drops_dir + "/"))

    def summary_fields(self, totals: dict[str, Any]) -> dict[str, Any]:
        self.drop_files = list(totals["folded"].get("drop_files", []))
        return {}

    def write_dropped(self, out: Path) -> None:
        """``dropped.jsonl``: the drops of every complete shard (see :meth:`fold`), in shard order."""
        with atomic_write(out / DROPPED) as f:
            for name in self.drop_files:
                with (out / name).open("rb") as src:
                    shutil.copyfileobj(src, f)


def read_limited(path: Path, limit: int | None) -> Iterator[Any]:
    """The records of a shard, the first ``limit`` only when given."""
    for n, rec in enumerate(read_jsonl(path)):
        if limit is not None and n >= limit:
            return
        yield rec


def drop_entry(stage: str, record: Mapping[str, Any], filter_name: str, reason: str, shard: str,
               **extra: Any) -> dict[str, Any]:
    return {"id": record.get("id"), "stage": stage, "filter": filter_name, "reason": reason, "shard": shard,
            **extra, "record": dict(record)}


def add_nested(total: dict[str, Any], part: Mapping[str, Any]) -> dict[str, Any]:
    """``total`` plus ``part``: numbers summed, dicts merged recursively, lists concatenated."""
    for k, v in part.items():
        if isinstance(v, bool) or v is None or isinstance(v, str):
            total.setdefault(k, v)
        elif isinstance(v, (int, float)):
            total[k] = round(total.get(k, 0) + v, 6) if isinstance(v, float) else total.get(k, 0) + v
        elif isinstance(v, Mapping):
            total[k] = add_nested(dict(total.get(k) or {}), v)
        elif isinstance(v, list):
            total[k] = list(total.get(k) or []) + list(v)
    return total


class GraphLookup:
    """Scene graphs by image id from a folder of graph shards, loaded on demand (bounded memory:
    an index of byte offsets, then a least-recently-used cache)."""

    def __init__(self, src: str | Path) -> None:
        from ..stages.generate_multi import build_index

        inputs = graph_files(src)
        if not inputs:
            raise FileNotFoundError(f"no scene-graph shards (part-*.jsonl) under {src}")
        index = build_index(inputs, 0.0, 0.0)  # thresholds 0: every label is listed
        paths = [str(p) for p in inputs]
        self.locations = {index.ids[i]: (paths[int(index.shard[i])], int(index.offset[i]))
                          for i in range(len(index.ids))}
        self._store = GraphStore(self.locations)
        self.labels = frozenset(index.labels)
        """Every object label in the graphs (the vocabulary of the evolution guard)."""

    def get(self, image_id: str) -> SceneGraph | None:
        if image_id not in self.locations:
            return None
        return self._store.get(image_id)

    def close(self) -> None:
        self._store.close()
