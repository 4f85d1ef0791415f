"""Reading scene-graph shards the way every mmgen stage and tool does: one depth loader
(:class:`DepthFiles`), one record reader (:func:`graph_from_line`, :func:`graph_at`,
:func:`read_graphs_tolerant`), one offset scan (:func:`scan_records`) and one loader by image id
(:class:`GraphStore`), used by generate, generate --multi, evolve, curate, verify and the store's
:class:`~mmgen.store.Output` (viewer, stats, inspect).

Unlike :func:`scene_graphs.io.read_graphs`, nothing here raises on a bad record in the middle of a
shard: a record that cannot be used becomes a :class:`~scene_graphs.io.RecordError` naming the file,
line or byte offset, image and field, which the caller skips or reports.
"""

from __future__ import annotations

import os
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import numpy as np
import orjson

from scene_graphs.io import RecordError, depth_path
from scene_graphs.model import DepthMap, SceneGraph, ValidationError


class DepthFiles:
    """The depth maps (``part-NNNNN.depth.npz``) of graph shards, each opened once on first use and
    read under a lock (an open ``.npz`` is a zip file: one reader at a time)."""

    def __init__(self) -> None:
        self._npz: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> DepthFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            for npz in self._npz.values():
                if npz is not None and not isinstance(npz, RecordError):
                    npz.close()
            self._npz.clear()

    def depth(self, shard: str | os.PathLike[str], header: dict[str, Any], source: str) -> DepthMap:
        """The depth map a graph record's ``depth`` header points to; a :class:`RecordError` if it cannot be read."""
        dpath = depth_path(shard)
        key = header.get("key")
        with self._lock:
            name = str(shard)
            if name not in self._npz:
                try:
                    self._npz[name] = np.load(dpath, allow_pickle=False) if dpath.exists() else None
                except (ValueError, OSError, zipfile.BadZipFile) as exc:
                    self._npz[name] = RecordError(f"cannot read depth maps {dpath}: {exc}", "depth")
            npz = self._npz[name]
            if isinstance(npz, RecordError):
                raise RecordError(npz.message, "depth", source)
            if npz is None or not isinstance(key, str) or key not in npz.files:
                raise RecordError(f"depth map {key!r} is not in {dpath}", "depth.key", source)
            try:
                values = npz[key]
            except (ValueError, OSError, zipfile.BadZipFile) as exc:
                raise RecordError(f"cannot read depth map {key!r}: {exc}", "depth", source) from None
        try:
            return DepthMap(values, bool(header.get("larger_is_nearer")))
        except ValidationError as exc:
            raise RecordError(exc.message, exc.where, source) from None


def graph_from_line(line: bytes, shard: str | os.PathLike[str], source: str, depths: DepthFiles,
                    image_id: str | None = None) -> SceneGraph:
    """The graph of one shard line (its depth map loaded through ``depths``); raises :class:`RecordError`.
    With ``image_id``, the line must be that image's (a record read by byte offset)."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        hint = "; did the shard change since it was indexed?" if image_id is not None else ""
        raise RecordError(f"malformed JSON ({exc}){hint}", source=source) from None
    if not isinstance(data, dict):
        raise RecordError("a graph record must be a JSON object", source=source)
    if image_id is not None and data.get("image_id") != image_id:
        raise RecordError("the record here is another image's; did the shard change since it was indexed?",
                          source=source)
    if image_id is None and isinstance(data.get("image_id"), str):
        source += f" (image {data['image_id']})"
    header = data.get("depth")
    depth = depths.depth(shard, header, source) if isinstance(header, dict) else None
    try:
        return SceneGraph.from_dict(data, depth)
    except ValidationError as exc:
        raise RecordError(exc.message, exc.where, source) from None


def scan_records(path: str | os.PathLike[str]) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """``(line number, byte offset, record)`` of every non-blank line of a JSONL shard (what an offset
    index is built from); a :class:`RecordError` for a line that is not a JSON object."""
    offset = 0
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            here, offset = offset, offset + len(line)
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise RecordError(f"malformed JSON ({exc})", source=f"{path}:{lineno}") from None
            if not isinstance(rec, dict):
                raise RecordError(f"expected a JSON object, got {type(rec).__name__}", source=f"{path}:{lineno}")
            yield lineno, here, rec


def line_at(path: str | os.PathLike[str], offset: int) -> bytes:
    """The line of a file that starts at byte ``offset``."""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.readline()


def graph_at(shard: str | os.PathLike[str], offset: int, image_id: str, depths: DepthFiles) -> SceneGraph:
    """The graph of ``image_id`` at byte ``offset`` of ``shard`` (from an index); raises :class:`RecordError`."""
    return graph_from_line(line_at(shard, offset), shard, f"{shard} (byte {offset}, image {image_id})", depths,
                           image_id)


def read_graphs_tolerant(path: str | os.PathLike[str], limit: int | None = None
                         ) -> Iterator[SceneGraph | RecordError]:
    """Every record of one graph shard: a graph, or a :class:`RecordError` for a line that cannot be
    used (the others go on). ``limit`` stops after that many non-blank lines."""
    path = Path(path)
    n = 0
    with DepthFiles() as depths, path.open("rb") as f:
        for lineno, line in enumerate(f, 1):
            if limit is not None and n >= limit:
                return
            if not line.strip():
                continue
            n += 1
            try:
                yield graph_from_line(line, path, f"{path}:{lineno}", depths)
            except RecordError as err:
                yield err


class GraphStore:
    """Loads graphs by image id from ``{id: (shard path, byte offset)}``, keeping the last
    ``capacity`` of them (least recently used first out). Not thread-safe: one per thread."""

    def __init__(self, locations: dict[str, tuple[str, int]], capacity: int = 256) -> None:
        self.locations = locations
        self.capacity = capacity
        self._graphs: OrderedDict[str, SceneGraph] = OrderedDict()
        self._depths = DepthFiles()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._depths.close()

    def get(self, image_id: str) -> SceneGraph:
        graph = self._graphs.get(image_id)
        if graph is not None:
            self._graphs.move_to_end(image_id)
            return graph
        if image_id not in self.locations:
            raise KeyError(f"no scene graph with image id {image_id!r}")
        shard, offset = self.locations[image_id]
        graph = graph_at(shard, offset, image_id, self._depths)
        self._graphs[image_id] = graph
        if len(self._graphs) > self.capacity:
            self._graphs.popitem(last=False)
        return graph
