"""The images of a run: a folder, a list file or a glob, turned into one sorted index on disk.

**Sources** (:meth:`InputSource.parse`):

* a *folder*: every file below it with an image extension (:data:`IMAGE_EXTENSIONS`, any case); hidden
  files and folders (name starting with ``.``) are left out. Symlinked folders are followed; a link
  back to a folder above it (a loop) is reported and not followed.
* a *list file* (any file without an image extension): one path per line, absolute or relative to
  the list file's folder; blank lines and lines starting with ``#`` are ignored. Listed files are
  used whatever their extension.
* a *glob* (a pattern with ``*``, ``?`` or ``[``; ``**`` recurses): every file it matches.
* a single image file.

**Image ids** are :func:`scene_graphs.ids.image_id` of the path relative to the *root*: the folder;
the list file's folder; the glob's folder part (``photos/**/*.jpg`` -> ``photos``); the image's folder;
or ``root`` when given. A listed path outside the root is reported (give ``root``).

**Problems found while listing** are reported, never fatal (:class:`InputProblem`, written to
``inputs.errors.jsonl``): ``non-utf8-name`` (the scene-graph model stores paths as UTF-8 text, so a
file whose name is not valid UTF-8 is skipped; its path is shown with ``\\xNN`` escapes: rename
it to include it), ``symlink-loop``, ``unreadable`` (a folder or file that cannot be listed or
stat'ed), ``missing`` (a listed path, or a symlink's target, that does not exist), ``not-a-file`` and
``outside-root``.

**The index** (:func:`build_index`) is ``inputs.jsonl`` in the output folder: one JSON object per
image, sorted by relative path (code point order, the same as UTF-8 byte order): ``path``, ``size``,
``mtime_ns``, and for images whose content was hashed ``sha256``, and for exact duplicates
``duplicate_of`` (the path of the first image, in sorted order, with the same bytes). Duplicates
are found without reading every file: only files whose byte size equals another file's size are
hashed (sha256, in ``threads`` threads); a hash from the previous index of the same folder is reused
when the file's size and modification time did not change. Two files are duplicates when size and
the first 128 bits of their sha256 agree. ``inputs.json`` holds what the index was built from and
its counts.

**Memory.** The problems found while listing are kept and sorted in memory (they are expected to be
few). Listing sorts in chunks of ``chunk_size`` entries spilled to temporary files and merged
(an external sort), so the listing itself needs O(``chunk_size``) memory. Finding duplicates holds
numpy columns for every image: its size (8 bytes), a duplicate pointer (8 bytes) and two flags,
plus 24 bytes per hashed image: about 18-42 bytes per image (180-420 MB at 10 million images).
Nothing else is proportional to the number of images.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import heapq
import itertools
import logging
import os
import shutil
import stat
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from scene_graphs.ids import relative_key
from scene_graphs.io import atomic_write, dumps
from scene_graphs.perception.images import IMAGE_EXTENSIONS

log = logging.getLogger("mmgen.inputs")

INDEX = "inputs.jsonl"
INDEX_META = "inputs.json"
INDEX_ERRORS = "inputs.errors.jsonl"
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list", ".csv", ".tsv"})
CHUNK_SIZE = 200_000
"""Entries sorted in memory at once while listing (the rest wait in sorted runs on disk)."""
HASH_CHUNK = 1 << 20
MAX_LOGGED = 20
"""Problems logged one by one (the rest at debug level; all are in ``inputs.errors.jsonl``)."""
PROBLEM_KINDS = ("non-utf8-name", "symlink-loop", "unreadable", "missing", "not-a-file", "outside-root")


def display_path(text: str) -> str:
    """A path as printable UTF-8: undecodable bytes (surrogate escapes) become ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class InputProblem:
    """An input found while listing that cannot be used (see the module docstring for the kinds)."""

    path: str
    kind: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "image_id": None, "stage": "list", "kind": self.kind, "error": self.error}


@dataclass(frozen=True)
class InputEntry:
    """One image of the index."""

    path: str
    size: int
    mtime_ns: int
    sha256: str | None = None
    duplicate_of: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns}
        if self.sha256 is not None:
            d["sha256"] = self.sha256
        if self.duplicate_of is not None:
            d["duplicate_of"] = self.duplicate_of
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputEntry:
        return cls(d["path"], int(d["size"]), int(d["mtime_ns"]), d.get("sha256"), d.get("duplicate_of"))


# --------------------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class InputSource:
    """Where the images come from: ``kind`` is ``folder``, ``list``, ``glob`` or ``file``."""

    kind: str
    spec: str
    root: Path

    @classmethod
    def parse(cls, spec: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> InputSource:
        text = os.fspath(spec)
        p = Path(text)
        if p.is_dir():
            kind, default_root = "folder", p
        elif p.is_file():
            if p.suffix.lower() in IMAGE_EXTENSIONS:
                kind, default_root = "file", p.parent
            else:
                kind, default_root = "list", p.parent
        elif glob.has_magic(text):
            kind, default_root = "glob", _glob_base(text)
        else:
            raise FileNotFoundError(f"no image folder, list file, image or glob match at {text}")
        return cls(kind, text, Path(root) if root is not None else default_root)

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "spec": str(Path(self.spec).resolve()) if self.kind != "glob" else self.spec,
                "root": str(self.root.resolve())}

    def candidates(self) -> Iterator[tuple[str, os.DirEntry[str] | None] | InputProblem]:
        """``(relative key, dir entry or None)`` of every file the source names, or a problem."""
        if self.kind == "folder":
            yield from _walk(Path(self.spec), self.root)
        elif self.kind == "file":
            yield from _named([self.spec], self.root)
        elif self.kind == "list":
            yield from _named(_list_lines(Path(self.spec)), self.root)
        else:
            yield from _named(glob.iglob(self.spec, recursive=True), self.root, skip_dirs=True)


def _glob_base(pattern: str) -> Path:
    parts = Path(pattern).parts
    base = [p for p in itertools.takewhile(lambda part: not glob.has_magic(part), parts)]
    return Path(*base) if base else Path(".")


def _list_lines(path: Path) -> Iterator[str]:
    folder = path.parent
    with path.open("rb") as f:
        for raw in f:
            line = os.fsdecode(raw.rstrip(b"\r\n"))
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            p = Path(line)
            yield str(p if p.is_absolute() else folder / p)


def _walk(top: Path, root: Path) -> Iterator[tuple[str, os.DirEntry[str] | None] | InputProblem]:
    """Files with an image extension below ``top`` (depth first, any order: the caller sorts)."""
    try:
        st = os.stat(top)
    except OSError as exc:
        yield InputProblem(display_path(str(top)), "unreadable", f"{display_path(str(top))}: cannot list ({exc})")
        return
    stack: list[tuple[str, frozenset[tuple[int, int]]]] = [(str(top), frozenset({(st.st_dev, st.st_ino)}))]
    while stack:
        folder, ancestors = stack.pop()
        try:
            entries = os.scandir(folder)
        except OSError as exc:
            shown = display_path(os.path.relpath(folder, root))
            yield InputProblem(shown, "unreadable", f"{shown}: cannot list this folder ({exc.strerror or exc})")
            continue
        with entries:
            for e in entries:
                if e.name.startswith("."):
                    continue
                try:
                    is_dir = e.is_dir()
                except OSError:
                    is_dir = False
                if is_dir:
                    try:
                        sub = e.stat()
                    except OSError as exc:
                        yield _stat_problem(os.path.relpath(e.path, root), exc)
                        continue
                    ident = (sub.st_dev, sub.st_ino)
                    if ident in ancestors:
                        shown = display_path(os.path.relpath(e.path, root))
                        yield InputProblem(shown, "symlink-loop",
                                           f"{shown}: links back to a folder above it (symlink loop); not followed")
                        continue
                    stack.append((e.path, ancestors | {ident}))
                elif os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS:
                    try:
                        yield relative_key(e.path, root), e
                    except ValueError:
                        shown = display_path(e.path)
                        yield InputProblem(shown, "outside-root", f"{shown}: not inside the input root {root}")


def _named(paths: Iterable[str], root: Path, skip_dirs: bool = False
           ) -> Iterator[tuple[str, os.DirEntry[str] | None] | InputProblem]:
    for path in paths:
        try:
            key = relative_key(path, root)
        except ValueError:
            shown = display_path(path)
            yield InputProblem(shown, "outside-root", f"{shown}: not inside the input root {root} "
                                                      "(give the root folder with --root)")
            continue
        if skip_dirs and os.path.isdir(path):
            continue
        yield key, None


def _stat_problem(key: str, exc: OSError) -> InputProblem:
    shown = display_path(key)
    if exc.errno == errno.ELOOP:
        return InputProblem(shown, "symlink-loop", f"{shown}: symlink loop")
    if isinstance(exc, FileNotFoundError):
        return InputProblem(shown, "missing", f"{shown}: no such file (or a symlink to nothing)")
    return InputProblem(shown, "unreadable", f"{shown}: cannot stat ({exc.strerror or exc})")


def list_source(source: InputSource) -> Iterator[tuple[str, int, int] | InputProblem]:
    """``(relative key, size, mtime_ns)`` of every usable file of ``source`` (unsorted), or a problem."""
    for item in source.candidates():
        if isinstance(item, InputProblem):
            yield item
            continue
        key, entry = item
        if not is_utf8(key):
            shown = display_path(key)
            yield InputProblem(shown, "non-utf8-name",
                               f"{shown}: file name is not valid UTF-8 (scene graphs store paths as text); "
                               "rename the file to include it")
            continue
        try:
            st = entry.stat() if entry is not None else os.stat(source.root / key)
        except OSError as exc:
            yield _stat_problem(key, exc)
            continue
        if not stat.S_ISREG(st.st_mode):
            yield InputProblem(key, "not-a-file", f"{key}: not a regular file")
            continue
        yield key, int(st.st_size), int(st.st_mtime_ns)


# --------------------------------------------------------------------------------------- sorting
def external_sort(rows: Iterable[tuple[str, int, int]], tmp: Path, chunk_size: int = CHUNK_SIZE
                  ) -> Iterator[tuple[str, int, int]]:
    """``rows`` sorted by key with repeated keys dropped, holding at most ``chunk_size`` rows in memory
    (the others wait in sorted runs under ``tmp``)."""
    runs: list[Path] = []
    chunk: list[tuple[str, int, int]] = []

    def spill() -> None:
        chunk.sort(key=lambda r: r[0])
        path = tmp / f"run-{len(runs):05d}.jsonl"
        with path.open("wb") as f:
            f.writelines(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in chunk)
        runs.append(path)
        chunk.clear()

    for row in rows:
        chunk.append(row)
        if len(chunk) >= chunk_size:
            spill()
    if not runs:
        chunk.sort(key=lambda r: r[0])
        merged: Iterator[tuple[str, int, int]] = iter(chunk)
    else:
        if chunk:
            spill()
        files = [p.open("rb") for p in runs]
        streams = [(tuple(orjson.loads(line)) for line in f) for f in files]
        merged = heapq.merge(*streams, key=lambda r: r[0])  # type: ignore[arg-type]
    last = None
    try:
        for row in merged:
            if row[0] != last:
                yield row  # type: ignore[misc]
                last = row[0]
    finally:
        if runs:
            for f in files:
                f.close()
        for p in runs:
            p.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------- index
@dataclass
class InputIndex:
    """The sorted index of a run's images (``inputs.jsonl``) and how it was made (``inputs.json``)."""

    folder: Path
    root: Path
    count: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.folder / INDEX

    @property
    def errors_path(self) -> Path:
        return self.folder / INDEX_ERRORS

    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> InputIndex:
        folder = Path(folder)
        meta = orjson.loads((folder / INDEX_META).read_bytes())
        return cls(folder, Path(meta["source"]["root"]), int(meta["images"]), meta)

    def __iter__(self) -> Iterator[InputEntry]:
        with self.path.open("rb") as f:
            for line in f:
                yield InputEntry.from_dict(orjson.loads(line))

    def shards(self, shard_size: int) -> Iterator[tuple[int, int, str]]:
        """``(byte offset, entry count, key)`` of each run of ``shard_size`` entries (see :func:`entries_key`)."""
        with self.path.open("rb") as f:
            while True:
                offset = f.tell()
                lines = list(itertools.islice(f, shard_size))
                if not lines:
                    return
                yield offset, len(lines), entries_key(InputEntry.from_dict(orjson.loads(line)) for line in lines)

    def read(self, offset: int, count: int) -> list[InputEntry]:
        return read_entries(self.path, offset, count)

    def problems(self) -> Iterator[dict[str, Any]]:
        if self.errors_path.exists():
            with self.errors_path.open("rb") as f:
                for line in f:
                    yield orjson.loads(line)


def entries_key(entries: Iterable[InputEntry]) -> str:
    """A shard's input key: sha256 of each entry's path, size, modification time and ``duplicate_of``;
    not of its hash, which is only there when another file happens to have the same size."""
    h = hashlib.sha256()
    for e in entries:
        h.update(orjson.dumps([e.path, e.size, e.mtime_ns, e.duplicate_of]) + b"\n")
    return h.hexdigest()[:32]


def read_entries(path: Path, offset: int, count: int) -> list[InputEntry]:
    """``count`` entries of an index file from byte ``offset`` (one shard's images)."""
    with path.open("rb") as f:
        f.seek(offset)
        return [InputEntry.from_dict(orjson.loads(line)) for line in itertools.islice(f, count)]


def file_digest(path: str | os.PathLike[str]) -> bytes:
    """sha256 of a file's bytes (read in 1 MiB pieces; hashlib releases the GIL)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.digest()


def _previous_hashes(path: Path) -> Iterator[tuple[str, int, int, str]]:
    if not path.exists():
        return
    try:
        with path.open("rb") as f:
            for line in f:
                d = orjson.loads(line)
                if d.get("sha256"):
                    yield d["path"], int(d["size"]), int(d["mtime_ns"]), d["sha256"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("ignoring an unreadable earlier index %s (hashes are recomputed)", path)


STALE_TEMP_SECONDS = 24 * 3600


def _remove_old_temp_dirs(folder: Path) -> None:
    """Remove listing folders (``.inputs-*``) a killed run left a day or more ago (younger ones may
    belong to another rank listing right now)."""
    now = time.time()
    for p in folder.glob(".inputs-*"):
        try:
            if p.is_dir() and now - p.stat().st_mtime > STALE_TEMP_SECONDS:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            continue


def build_index(source: InputSource, folder: str | os.PathLike[str], *, limit: int | None = None,
                threads: int = 4, chunk_size: int = CHUNK_SIZE,
                digest: Callable[[str | os.PathLike[str]], bytes] = file_digest) -> InputIndex:
    """List ``source``, sort it, find exact duplicates and write the index into ``folder``
    (see the module docstring). ``limit`` keeps the first images in sorted order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_old_temp_dirs(folder)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    problems: dict[str, int] = {}
    with tempfile.TemporaryDirectory(dir=folder, prefix=".inputs-") as tmp_name:
        tmp = Path(tmp_name)
        listing = tmp / "listing.jsonl"
        found: list[InputProblem] = []

        def usable() -> Iterator[tuple[str, int, int]]:
            for item in list_source(source):
                if isinstance(item, InputProblem):
                    problems[item.kind] = problems.get(item.kind, 0) + 1
                    (log.warning if len(found) < MAX_LOGGED else log.debug)("skipped %s", item.error)
                    found.append(item)
                else:
                    yield item

        n = 0
        with listing.open("wb") as f:
            for row in itertools.islice(external_sort(usable(), tmp, chunk_size), limit):
                f.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
                n += 1
        if len(found) > MAX_LOGGED:
            log.warning("... and %d more input(s) skipped while listing", len(found) - MAX_LOGGED)
        with atomic_write(folder / INDEX_ERRORS) as errors_out:
            for problem in sorted(found, key=lambda pr: (pr.path, pr.kind)):
                errors_out.write(dumps(problem.to_dict()))
        found.clear()
        seconds["list"] = time.perf_counter() - started
        t = time.perf_counter()
        hashed, duplicates, reused = _write_index(listing, n, source.root, folder, threads, digest)
        seconds["dedup"] = time.perf_counter() - t
    meta = {"source": source.to_dict(), "images": n, "limit": limit, "problems": dict(sorted(problems.items())),
            "hashed": hashed, "hashes_reused": reused, "duplicates": duplicates,
            "seconds": {k: round(v, 3) for k, v in seconds.items()}}
    with atomic_write(folder / INDEX_META) as f:
        f.write(orjson.dumps(meta, option=orjson.OPT_INDENT_2) + b"\n")
    log.info("%d image(s) listed from %s (%d skipped while listing, %d hashed, %d exact duplicate(s))", n,
             source.spec, sum(problems.values()), hashed, duplicates)
    return InputIndex(folder, source.root, n, meta)


def _rows(listing: Path) -> Iterator[tuple[str, int, int]]:
    with listing.open("rb") as f:
        for line in f:
            key, size, mtime = orjson.loads(line)
            yield key, size, mtime


def _write_index(listing: Path, n: int, root: Path, folder: Path, threads: int,
                 digest: Callable[[str | os.PathLike[str]], bytes]) -> tuple[int, int, int]:
    """Hash the files that share their size with another, mark duplicates, write ``inputs.jsonl``.
    Returns (files hashed, duplicates, hashes reused from the previous index)."""
    sizes = np.fromiter((r[1] for r in _rows(listing)), dtype=np.int64, count=n)
    order = np.argsort(sizes, kind="stable")
    same = sizes[order][1:] == sizes[order][:-1]
    shared = np.zeros(n, dtype=bool)
    shared[1:] |= same
    shared[:-1] |= same
    need = np.zeros(n, dtype=bool)
    need[order[shared]] = True
    del order, same, shared
    positions = np.flatnonzero(need)
    d0 = np.zeros(len(positions), dtype=np.uint64)
    d1 = np.zeros(len(positions), dtype=np.uint64)
    hexes = listing.with_name("hashes.txt")
    reused = 0
    previous = _previous_hashes(folder / INDEX)
    prev = next(previous, None)

    def cached(key: str, size: int, mtime: int) -> str | None:
        nonlocal prev
        while prev is not None and prev[0] < key:
            prev = next(previous, None)
        if prev is not None and prev[0] == key and prev[1] == size and prev[2] == mtime:
            return prev[3]
        return None

    def todo() -> Iterator[tuple[str, int, int]]:
        for pos, row in enumerate(_rows(listing)):
            if need[pos]:
                yield row

    with hexes.open("w") as hex_out, ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        queue: deque[tuple[str, Future[bytes] | None, str | None]] = deque()

        def finish() -> None:
            nonlocal reused
            key, future, known = queue.popleft()
            if known is not None:
                hex_digest = known
                reused += 1
            else:
                try:
                    hex_digest = future.result().hex()  # type: ignore[union-attr]
                except OSError as exc:  # unreadable now: never a duplicate; decoding reports it
                    log.debug("cannot hash %s: %s", key, exc)
                    hex_digest = ""
            hex_out.write(hex_digest + "\n")

        for key, size, mtime in todo():
            known = cached(key, size, mtime)
            queue.append((key, None if known is not None else pool.submit(digest, root / key), known))
            if len(queue) >= 4 * max(1, threads):
                finish()
        while queue:
            finish()
    with hexes.open() as f:
        for i, line in enumerate(f):
            h = line.strip()
            if h:
                d0[i] = int(h[:16], 16)
                d1[i] = int(h[16:32], 16)
            else:  # unhashable: a unique value so it matches nothing
                d0[i], d1[i] = np.uint64(i), np.uint64(2**64 - 1)
    dup_of = np.full(n, -1, dtype=np.int64)
    if len(positions):
        by = np.lexsort((positions, d1, d0, sizes[positions]))
        p, s, a, b = positions[by], sizes[positions][by], d0[by], d1[by]
        starts = np.ones(len(p), dtype=bool)
        starts[1:] = (s[1:] != s[:-1]) | (a[1:] != a[:-1]) | (b[1:] != b[:-1])
        first = p[np.maximum.accumulate(np.where(starts, np.arange(len(p)), 0))]
        dup_of[p[~starts]] = first[~starts]
    del sizes, d0, d1
    is_target = np.zeros(n, dtype=bool)
    is_target[dup_of[dup_of >= 0]] = True
    duplicates = int((dup_of >= 0).sum())
    targets: dict[int, str] = {}
    with atomic_write(folder / INDEX) as out, hexes.open() as hex_in:
        for pos, (key, size, mtime) in enumerate(_rows(listing)):
            sha = None
            if need[pos]:
                sha = hex_in.readline().strip() or None
            if is_target[pos]:
                targets[pos] = key
            dup = targets[int(dup_of[pos])] if dup_of[pos] >= 0 else None
            out.write(dumps(InputEntry(key, size, mtime, sha, dup).to_dict()))
    return len(positions), duplicates, reused
