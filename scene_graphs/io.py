"""Reading and writing JSONL shards, atomically.

A graph shard is ``NAME.jsonl`` (one graph per line) plus, when any graph has a depth map,
``NAME.depth.npz`` beside it (arrays keyed by image id, read with ``allow_pickle=False``).
Every write goes to a temporary file in the same folder and is renamed into place, so a reader
never sees half a shard and a killed writer leaves nothing behind under the final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

import numpy as np
import orjson

from .model import DepthMap, SceneGraph, ValidationError

DEPTH_SUFFIX = ".depth.npz"


class RecordError(ValidationError):
    """A record in a file cannot be read: malformed JSON or an invalid graph, with file and line."""


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a temporary file beside ``path`` for binary writing; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def dumps(record: Any) -> bytes:
    """One JSON line (with newline), keys in insertion order, numpy scalars and arrays allowed."""
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY)


def write_jsonl(path: str | os.PathLike[str], records: Iterable[Any]) -> int:
    """Write ``records`` as JSON lines atomically; returns how many were written."""
    n = 0
    with atomic_write(path) as f:
        for record in records:
            f.write(dumps(record))
            n += 1
    return n


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[Any]:
    """Yield the JSON value on each non-blank line; a malformed line raises :class:`RecordError`."""
    with Path(path).open("rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise RecordError(f"malformed JSON ({exc})", source=f"{path}:{lineno}") from None


def depth_path(shard: str | os.PathLike[str]) -> Path:
    """Where the depth maps of a graph shard live."""
    p = Path(shard)
    return p.with_name(p.name.removesuffix(".jsonl") + DEPTH_SUFFIX)


def write_graphs(path: str | os.PathLike[str], graphs: Iterable[SceneGraph]) -> int:
    """Write a graph shard (and its depth ``.npz`` when needed) atomically; returns the count."""
    lines: list[bytes] = []
    depths: dict[str, np.ndarray] = {}
    flags: dict[str, bool] = {}
    for g in graphs:
        if g.depth is not None:
            if g.image_id in depths:
                raise ValidationError(f"two graphs with image id {g.image_id!r} in one shard", source=str(path))
            depths[g.image_id] = g.depth.values
            flags[g.image_id] = g.depth.larger_is_nearer
        lines.append(dumps(g.to_dict(depth_key=g.image_id)))
    dpath = depth_path(path)
    if depths:
        with atomic_write(dpath) as f:
            np.savez_compressed(f, **depths)
    elif dpath.exists():
        dpath.unlink()
    with atomic_write(path) as f:
        f.writelines(lines)
    return len(lines)


def _record_source(path: Path, lineno: int, data: Any) -> str:
    rid = data.get("image_id") if isinstance(data, dict) else None
    return f"{path}:{lineno}" + (f" (image {rid})" if rid else "")


def read_graphs(path: str | os.PathLike[str]) -> Iterator[SceneGraph]:
    """Yield the graphs of one shard, validated; errors name the file, line, image and field."""
    path = Path(path)
    npz = None
    try:
        with path.open("rb") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    data = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise RecordError(f"malformed JSON ({exc})", source=f"{path}:{lineno}") from None
                depth = None
                header = data.get("depth") if isinstance(data, dict) else None
                if isinstance(header, dict):
                    if npz is None and depth_path(path).exists():
                        npz = np.load(depth_path(path), allow_pickle=False)
                    key = header.get("key")
                    if npz is not None and key in npz:
                        try:
                            depth = DepthMap(npz[key], bool(header.get("larger_is_nearer")))
                        except ValidationError as exc:
                            raise RecordError(exc.message, exc.where, _record_source(path, lineno, data)) from None
                try:
                    yield SceneGraph.from_dict(data, depth)
                except ValidationError as exc:
                    raise RecordError(exc.message, exc.where, _record_source(path, lineno, data)) from None
    finally:
        if npz is not None:
            npz.close()


def graph_files(src: str | os.PathLike[str]) -> list[Path]:
    """The graph shards at ``src``: the file itself, or every ``*.jsonl`` below a folder, sorted."""
    src = Path(src)
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise FileNotFoundError(f"no scene-graph file or folder at {src}")
    return sorted(p for p in src.rglob("*.jsonl") if not p.name.startswith("."))


def iter_graphs(src: str | os.PathLike[str]) -> Iterator[SceneGraph]:
    """Every graph in a shard file or a folder of shards, in sorted file order."""
    for p in graph_files(src):
        yield from read_graphs(p)
