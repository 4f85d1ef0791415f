"""What the LLM stages share: graphs by image id, manifests, drop records, summing usage (QA shards are\nlisted by :func:`mmgen.store.qa_shards`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

from scene_graphs.io import graph_files
from scene_graphs.model import SceneGraph

from ..store import MANIFEST, GraphStore, StageFolder, write_json


def upstream_manifest(src: str | Path) -> dict[str, Any]:
    path = Path(src) / MANIFEST if Path(src).is_dir() else Path(src).parent / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: malformed manifest ({exc})") from None
    return data if isinstance(data, dict) else {}


def stage_manifest(stage: str, src: str | Path, inputs: Sequence[Path], settings: Mapping[str, Any]) -> dict[str, Any]:
    """A stage's manifest. It carries the upstream program ``config`` and ``programs`` (what
    ``mmgen verify`` reads), and the upstream graph-shard pairing (``inputs``/``outputs``) when the
    upstream was a single-image ``generate`` whose shards map one to one to ours; the stage's own
    settings live under its name; ``qa_inputs`` are the QA shards read."""
    from .. import __version__

    up = upstream_manifest(src)
    source_stage = up.get("source_stage") or up.get("stage")
    manifest: dict[str, Any] = {"stage": stage, "source_stage": source_stage, "mmgen_version": __version__}
    for key in ("config", "programs"):
        if key in up:
            manifest[key] = up[key]
    names = [p.name for p in inputs]
    if "inputs" in up and "outputs" in up and up.get("stage") in ("generate", "evolve", "curate") \
            and source_stage == "generate":
        pairs = dict(zip(up["outputs"], up["inputs"], strict=False))
        if all(n in pairs for n in names):
            manifest["inputs"] = [pairs[n] for n in names]
            manifest["outputs"] = names
    manifest["qa_inputs"] = [str(p.resolve()) for p in inputs]
    manifest[stage] = dict(settings)
    return manifest


def prepare_output(out: Path, manifest: dict[str, Any], keys: Sequence[str], overwrite: bool) -> bool:
    """Create ``out`` for ``manifest``; an existing run with other ``keys`` needs ``overwrite`` (then it
    is removed). Returns whether a matching earlier run is there (to resume)."""
    mpath = out / MANIFEST
    resume = False
    if mpath.exists():
        old = json.loads(mpath.read_text())
        same = all(old.get(k) == manifest.get(k) for k in keys)
        if not same and not overwrite:
            raise ValueError(f"{out} holds a {old.get('stage', 'stage')} run with other settings or inputs; "
                             "use --overwrite to replace it (or choose another output folder)")
        if not same or overwrite:
            shutil.rmtree(out)
        else:
            resume = True
    elif StageFolder(out).shards():
        if not overwrite:
            raise ValueError(f"{out} holds QA shards without a manifest; use --overwrite or another output folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(mpath, manifest)
    return resume


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
        from ..generate_multi import build_index

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
