"""Image sets for the multi-image programs: random, sharing a category, or listed in a file.

Every strategy returns sets as tuples of positions into the *sorted* list of image ids, the order
in a set being the order the programs see ("Image 1", "Image 2", ...). Sets depend only on the
image ids (and labels), the options and the seed: never on the worker count, the shard layout or
``PYTHONHASHSEED``.

* ``random``: shuffle the sorted ids with the seed and cut the shuffled list into sets (sizes drawn
  from the size range); one such pass uses each image at most once. With ``sets`` larger than a
  pass gives, further passes (new shuffles) follow.
* ``shared-category``: every set shares at least one confidently detected category, so questions
  such as "which image has the most cups" are not trivial. Images are visited in a seeded order;
  an image not yet used in this pass starts a set with other unused images that carry one of its
  categories (tried in a seeded order), taken from that category's posting list (an inverted index
  category -> images, in a per-pass seeded order, with a cursor that skips used images, so a pass
  costs O(total labels)). Images without a confident category never start a set.
* ``file``: JSON lines, each a list of 2-6 distinct image ids, used as given (the set size range
  does not apply); ``sets`` keeps the first ones.

**Reuse.** A set is used once: a set whose images (in any order) already form a set is dropped.
With ``reuse`` the same images may come back in another order (which makes different questions:
the names "Image k" change); the same ordered set is never repeated, as it would repeat its records.

**Memory.** :class:`ImageIndex` holds, for every graph, its id (a Python string), its shard number and
byte offset (12 bytes) and its label ids (4 bytes each, CSR layout); a pass adds a few arrays of one
number per image or per label occurrence. The sets are tuples of positions.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from programs.base import stable_int

log = logging.getLogger("mmgen.groups")

STRATEGIES = ("random", "shared-category", "file")
MIN_SET_SIZE, MAX_SET_SIZE = 2, 6
MAX_STALE_PASSES = 10
"""Passes in a row that add no new set before the search for more sets stops."""


@dataclass(frozen=True)
class GroupOptions:
    """How image sets are formed (part of a multi-image run's manifest)."""

    strategy: str = "shared-category"
    min_size: int = 2
    max_size: int = 4
    sets: int | None = None
    """How many sets to make (at most); ``None``: one pass over the images."""
    reuse: bool = False
    groups_file: str | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown grouping strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if not MIN_SET_SIZE <= self.min_size <= self.max_size <= MAX_SET_SIZE:
            raise ValueError(f"set sizes must satisfy {MIN_SET_SIZE} <= min <= max <= {MAX_SET_SIZE}, "
                             f"got {self.min_size}-{self.max_size}")
        if self.sets is not None and self.sets < 1:
            raise ValueError(f"the number of sets must be positive, got {self.sets}")
        if (self.strategy == "file") != (self.groups_file is not None):
            raise ValueError("the 'file' strategy needs a groups file, and a groups file needs the 'file' strategy")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_set_size(text: str) -> tuple[int, int]:
    """``"3"`` -> ``(3, 3)``; ``"2-4"`` -> ``(2, 4)``; sizes must lie in 2..6."""
    parts = str(text).replace(" ", "").split("-")
    try:
        lo, hi = (int(parts[0]), int(parts[-1])) if 1 <= len(parts) <= 2 else (0, -1)
    except ValueError:
        raise ValueError(f"set size must be a number or a range such as 2-4, got {text!r}") from None
    if not MIN_SET_SIZE <= lo <= hi <= MAX_SET_SIZE:
        raise ValueError(f"set size must lie in {MIN_SET_SIZE}-{MAX_SET_SIZE} (a number or a range such as 2-4), "
                         f"got {text!r}")
    return lo, hi


# --------------------------------------------------------------------------------------- index
@dataclass
class ImageIndex:
    """Image ids (sorted), where each graph is stored, and its confident categories."""

    ids: list[str]
    shard: np.ndarray
    """int32: position of the graph's shard in the stage's input list."""
    offset: np.ndarray
    """int64: byte offset of the graph's line in its shard."""
    label_ptr: np.ndarray
    """int64, ``len(ids) + 1``: labels of image ``i`` are ``label_ids[label_ptr[i]:label_ptr[i + 1]]``."""
    label_ids: np.ndarray
    """int32 positions into ``labels``."""
    labels: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def labels_of(self, i: int) -> list[str]:
        return [self.labels[j] for j in self.label_ids[self.label_ptr[i]:self.label_ptr[i + 1]]]

    @classmethod
    def build(cls, rows: Iterable[tuple[str, int, int, Sequence[str]]]) -> ImageIndex:
        """From ``(image id, shard, offset, labels)`` rows in any order; duplicate ids are refused."""
        rows = sorted(rows, key=lambda r: r[0])
        for a, b in itertools.pairwise(rows):
            if a[0] == b[0]:
                raise ValueError(f"image id {a[0]!r} appears twice (input shards {a[1]} and {b[1]}); "
                                 "image ids must be unique across the input")
        vocab = sorted({lbl for r in rows for lbl in r[3]})
        position = {lbl: i for i, lbl in enumerate(vocab)}
        lengths = np.fromiter((len(set(r[3])) for r in rows), dtype=np.int64, count=len(rows))
        ptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=ptr[1:])
        flat = np.fromiter((position[lbl] for r in rows for lbl in sorted(set(r[3]))), dtype=np.int32,
                           count=int(ptr[-1]))
        return cls(ids=[r[0] for r in rows], shard=np.array([r[1] for r in rows], dtype=np.int32),
                   offset=np.array([r[2] for r in rows], dtype=np.int64), label_ptr=ptr, label_ids=flat,
                   labels=vocab)


# --------------------------------------------------------------------------------------- collecting
class _Collector:
    """Keeps sets in order, dropping repeats (unordered, or ordered with ``reuse``), up to ``limit``."""

    def __init__(self, reuse: bool, limit: int | None) -> None:
        self.reuse = reuse
        self.limit = limit
        self.sets: list[tuple[int, ...]] = []
        self.seen: set[Any] = set()
        self.repeats = 0

    @property
    def full(self) -> bool:
        return self.limit is not None and len(self.sets) >= self.limit

    def add(self, members: Sequence[int]) -> bool:
        s = tuple(int(m) for m in members)
        key = s if self.reuse else frozenset(s)
        if key in self.seen:
            self.repeats += 1
            return False
        self.seen.add(key)
        self.sets.append(s)
        return True


def _rng(seed: int, strategy: str) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, stable_int(f"mmgen.groups:{strategy}")])


def _passes(opts: GroupOptions, collector: _Collector, one_pass) -> None:  # type: ignore[no-untyped-def]
    """Run ``one_pass()`` (returns how many sets it added) once, or until ``opts.sets`` are made."""
    stale = 0
    while True:
        added = one_pass()
        if opts.sets is None or collector.full:
            return
        stale = stale + 1 if added == 0 else 0
        if stale >= MAX_STALE_PASSES:
            log.warning("only %d distinct image sets could be made (asked for %d)", len(collector.sets), opts.sets)
            return


def random_sets(n_images: int, opts: GroupOptions, seed: int) -> list[tuple[int, ...]]:
    """Sets of positions ``0..n_images-1``: shuffled, then cut into sets (see module docstring)."""
    rng = _rng(seed, "random")
    out = _Collector(opts.reuse, opts.sets)

    def one_pass() -> int:
        perm = rng.permutation(n_images)
        pos = added = 0
        while pos + opts.min_size <= n_images and not out.full:
            k = min(int(rng.integers(opts.min_size, opts.max_size + 1)), n_images - pos)
            added += out.add(perm[pos:pos + k])
            pos += k
        return added

    if n_images >= opts.min_size:
        _passes(opts, out, one_pass)
    return out.sets


def shared_category_sets(index: ImageIndex, opts: GroupOptions, seed: int) -> list[tuple[int, ...]]:
    """Sets whose images share at least one category (see module docstring)."""
    rng = _rng(seed, "shared-category")
    out = _Collector(opts.reuse, opts.sets)
    n = len(index)
    ptr, flat = index.label_ptr, index.label_ids
    owners = np.repeat(np.arange(n, dtype=np.int64), np.diff(ptr))
    per_label = np.bincount(flat, minlength=len(index.labels)).astype(np.int64)
    starts = np.zeros(len(index.labels) + 1, dtype=np.int64)
    np.cumsum(per_label, out=starts[1:])

    def one_pass() -> int:
        rank = rng.permutation(n)
        postings = owners[np.lexsort((rank[owners], flat))]  # grouped by label, each group in rank order
        cursor = starts[:-1].copy()
        unused_at_most = per_label.copy()
        used = bytearray(n)
        added = 0
        for i in np.argsort(rank, kind="stable").tolist():
            if out.full:
                break
            if used[i] or ptr[i] == ptr[i + 1]:
                continue
            labels = flat[ptr[i]:ptr[i + 1]]
            labels = labels[rng.permutation(len(labels))].tolist()
            wanted = int(rng.integers(opts.min_size, opts.max_size + 1))
            members = None
            for size in dict.fromkeys((wanted, opts.min_size)):
                for lbl in labels:
                    if unused_at_most[lbl] < size:
                        continue
                    c, end = int(cursor[lbl]), int(starts[lbl + 1])
                    while c < end and used[postings[c]]:
                        c += 1
                    cursor[lbl] = c
                    found = [i]
                    j = c
                    while j < end and len(found) < size:
                        m = int(postings[j])
                        if m != i and not used[m]:
                            found.append(m)
                        j += 1
                    if len(found) == size:
                        members = found
                        break
                    unused_at_most[lbl] = len(found)  # scanned to the end: fewer unused than needed
                if members is not None:
                    break
            if members is None:
                continue
            for m in members:
                used[m] = 1
            order = rng.permutation(len(members))
            added += out.add([members[int(k)] for k in order])
        return added

    if n >= opts.min_size:
        _passes(opts, out, one_pass)
    return out.sets


def file_sets(path: str | Path, positions: dict[str, int], opts: GroupOptions) -> list[tuple[int, ...]]:
    """Sets listed in a JSON-lines file; errors name the file and line."""
    out = _Collector(opts.reuse, opts.sets)
    with Path(path).open("rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                ids = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{where}: malformed JSON ({exc})") from None
            if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
                raise ValueError(f"{where}: a set must be a JSON list of image ids (strings)")
            if not MIN_SET_SIZE <= len(ids) <= MAX_SET_SIZE:
                raise ValueError(f"{where}: a set has {MIN_SET_SIZE}-{MAX_SET_SIZE} images, got {len(ids)}")
            if len(set(ids)) != len(ids):
                raise ValueError(f"{where}: a set lists an image twice")
            unknown = [x for x in ids if x not in positions]
            if unknown:
                raise ValueError(f"{where}: no scene graph with image id {unknown[0]!r}")
            out.add([positions[x] for x in ids])
            if out.full:
                break
    if out.repeats:
        log.warning("%s: %d repeated set(s) skipped (use --reuse to keep sets listed again in another order)",
                    path, out.repeats)
    return out.sets


def make_sets(index: ImageIndex, opts: GroupOptions, seed: int) -> list[tuple[str, ...]]:
    """The image sets of a run, as tuples of image ids in "Image 1, Image 2, ..." order."""
    if opts.strategy == "random":
        sets = random_sets(len(index), opts, seed)
    elif opts.strategy == "shared-category":
        sets = shared_category_sets(index, opts, seed)
    else:
        sets = file_sets(opts.groups_file or "", {x: i for i, x in enumerate(index.ids)}, opts)
    return [tuple(index.ids[i] for i in s) for s in sets]
