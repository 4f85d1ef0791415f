"""Reading and writing JSONL shards, atomically.

A graph shard is ``NAME.jsonl`` (one graph per line) plus, when any graph has a depth map,
``NAME.depth.npz`` beside it (arrays keyed by image id, read with ``allow_pickle=False``).
Every write goes to a temporary file in the same folder and is renamed into place, so a reader
never sees half a shard and a killed writer leaves nothing behind under the final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

import numpy as np
import orjson

from .model import DepthMap, SceneGraph, ValidationError

DEPTH_SUFFIX = ".depth.npz"
SHARD_GLOB = "part-*.jsonl"
"""File names of shards inside a stage's output folder."""


class RecordError(ValidationError):
    """A record in a file cannot be read: malformed JSON or an invalid graph, with file and line."""


@lru_cache(maxsize=None)
def _umask() -> int:
    """The process umask (read once; ``os.umask`` can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a temporary file beside ``path`` for binary writing; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left as it was. The new file gets
    the permissions a plain ``open()`` would give it (``mkstemp`` alone would leave it owner-only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
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


def _depth_key(image_id: str) -> str:
    """The ``.npz`` key of a graph's depth map: its image id, unless a zip member name cannot hold it
    (zip names end at a NUL character)."""
    if "\x00" not in image_id:
        return image_id
    return "sha256-" + hashlib.sha256(image_id.encode("utf-8")).hexdigest()


def write_graphs(path: str | os.PathLike[str], graphs: Iterable[SceneGraph]) -> int:
    """Write a graph shard (and its depth ``.npz`` when needed) atomically; returns the count."""
    lines: list[bytes] = []
    depths: dict[str, np.ndarray] = {}
    for g in graphs:
        key = _depth_key(g.image_id)
        if g.depth is not None:
            if key in depths:
                raise ValidationError(f"two graphs with image id {g.image_id!r} in one shard", source=str(path))
            depths[key] = g.depth.values
        lines.append(dumps(g.to_dict(depth_key=key)))
    dpath = depth_path(path)
    if depths:
        with atomic_write(dpath) as f:
            _write_npz(f, depths)
    elif dpath.exists():
        dpath.unlink()
    with atomic_write(path) as f:
        f.writelines(lines)
    return len(lines)


def _write_npz(f: IO[bytes], arrays: dict[str, np.ndarray]) -> None:
    """A compressed ``.npz`` readable by ``np.load``; unlike ``np.savez_compressed(f, **arrays)`` any key
    works (an image id such as ``file`` or ``allow_pickle`` would clash with its keyword arguments)."""
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, array in arrays.items():
            with zf.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def _load_depth(npz: Any, dpath: Path, header: dict[str, Any], source: str) -> DepthMap:
    """The depth map a graph's header points to, or a :class:`RecordError` naming the ``.npz`` and key."""
    key = header.get("key")
    if npz is None:
        raise RecordError(f"graph refers to depth map {key!r} but {dpath} does not exist", "depth", source)
    if not isinstance(key, str) or key not in npz.files:
        raise RecordError(f"depth map {key!r} is not in {dpath}", "depth.key", source)
    try:
        values = npz[key]
    except (ValueError, OSError, zipfile.BadZipFile) as exc:  # object arrays (pickle) are refused here
        raise RecordError(f"cannot read depth map {key!r} from {dpath}: {exc}", "depth", source) from None
    try:
        return DepthMap.from_header(values, header)
    except ValidationError as exc:
        raise RecordError(exc.message, exc.where, source) from None


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
                    dpath = depth_path(path)
                    if npz is None and dpath.exists():
                        try:
                            npz = np.load(dpath, allow_pickle=False)
                        except (ValueError, OSError, zipfile.BadZipFile) as exc:
                            raise RecordError(f"cannot read depth maps: {exc}", source=str(dpath)) from None
                    depth = _load_depth(npz, dpath, header, _record_source(path, lineno, data))
                try:
                    yield SceneGraph.from_dict(data, depth)
                except ValidationError as exc:
                    raise RecordError(exc.message, exc.where, _record_source(path, lineno, data)) from None
    finally:
        if npz is not None:
            npz.close()


def graph_files(src: str | os.PathLike[str]) -> list[Path]:
    """The graph shards at ``src``: the file itself, or every ``part-*.jsonl`` below a folder, sorted.

    Only ``part-*`` files are shards: stages keep other JSON lines (``errors.jsonl``) beside them."""
    src = Path(src)
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise FileNotFoundError(f"no scene-graph file or folder at {src}")
    return sorted(p for p in src.rglob(SHARD_GLOB)
                  if not any(part.startswith(".") for part in p.relative_to(src).parts))


def iter_graphs(src: str | os.PathLike[str]) -> Iterator[SceneGraph]:
    """Every graph in a shard file or a folder of shards, in sorted file order."""
    for p in graph_files(src):
        yield from read_graphs(p)
