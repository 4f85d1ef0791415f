"""Read access to an output folder (what ``mmgen run`` / the stage verbs write), behind ``mmgen.open``.

::

    out = mmgen.open("out/")
    out.graph("42c7731d942c67a4")             # one SceneGraph, loaded by byte offset
    for qa in out.qa(image_id, program="single.exists"): ...
    for qa in out.qa(program="single.count_objects"): ...
    out.find(label="cup")                     # image ids with an object labelled like "cup"

**What is found where.** Each direct subfolder of ``OUT`` is a :class:`~mmgen.store.folder.StageFolder`
classified by what it holds (:attr:`~mmgen.store.folder.StageFolder.kind`, never by its name): scene
graphs (``annotate.json`` / ``import_report.json`` beside ``part-*.jsonl``, or graph records in them;
the folder named ``scene_graphs`` wins when there are several), QA records (the ``manifest.json`` of a
generate or evolve stage, or records with ``program`` and ``question``; ``qa/``, a multi-image
``qa-multi/``, evolve output, ...) and curation (``manifest.json`` with stage ``curate``). ``OUT`` may
also be a scene-graph folder itself. The image root is the one given, else ``images_root`` in the
graphs' ``annotate.json``, else ``options.image_root`` of an export folder's ``export.json``.

**Curation** (the curate stage is optional): a curation folder's ``part-*.jsonl`` are the kept
records, ``dropped*.jsonl`` (or ``dropped/*.jsonl``) the dropped ones, as ``mmgen curate`` writes them
(``{"id", "filter", "reason", "record", ...}``: the filter is what it was dropped for, the reason the
detail); entries without ``filter`` give their reason under ``reason`` / ``drop_reason`` /
``curation.reason``. A record is then ``curated`` (its id was kept), ``dropped`` or ``uncurated``;
without a curation folder every record's status is ``None``.

**Bounded memory.** Opening scans every shard once and keeps columns, not records: per graph its id,
path, shard number, byte offset, object / relation / text counts, label codes and the hash of its id
(rows sorted by it: the id lookup); per QA record its
source, shard, byte offset and codes for program, answer type, form and curation status. Graphs and
records are read back by seeking to their line; a few recent graphs are cached. Safe to share
between threads (the viewer's server does).
"""

from __future__ import annotations

import logging
import threading
from array import array
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import orjson

from scene_graphs.io import RecordError
from scene_graphs.model import SceneGraph

from .folder import EXPORT_FILE, StageFolder, read_json
from .graphs import DepthFiles, graph_at, line_at, scan_records
from .paths import safe_join

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from programs.base import QA

log = logging.getLogger("mmgen.store")

GRAPH_CACHE = 32
"""Graphs kept loaded (least recently used out)."""
DROP_REASON_KEYS = ("reason", "drop_reason")
STATUSES = ("curated", "dropped", "uncurated")


class StringColumn(Sequence[str]):
    """Many strings in one UTF-8 blob with offsets (a few bytes each instead of a Python object)."""

    def __init__(self, values: Sequence[str] = ()) -> None:
        encoded = [v.encode("utf-8") for v in values]
        self._blob = b"".join(encoded)
        self._ends = np.cumsum([len(e) for e in encoded], dtype=np.int64) if encoded else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i: int | slice) -> Any:  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        start = int(self._ends[i - 1]) if i else 0
        return self._blob[start:int(self._ends[i])].decode("utf-8")


class _Vocab:
    """Strings to small integer codes, in first-seen order."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self._codes: dict[str, int] = {}

    def code(self, value: str) -> int:
        c = self._codes.get(value)
        if c is None:
            c = self._codes[value] = len(self.values)
            self.values.append(value)
        return c

    def get(self, value: str) -> int | None:
        return self._codes.get(value)


@dataclass(frozen=True)
class QASource:
    """A folder of QA records inside the output folder."""

    name: str
    path: Path
    stage: str
    """The ``stage`` of its ``manifest.json`` (``generate``, ``generate-multi``, ...), or ``""``."""
    config: dict[str, Any] | None
    shards: tuple[Path, ...]


@dataclass(frozen=True)
class ImageInfo:
    """What the index knows about one image without loading its graph."""

    image_id: str
    path: str
    objects: int
    relations: int
    text: int
    qa: int
    labels: tuple[str, ...]


def _drop_category(entry: dict[str, Any]) -> str:
    """What a ``dropped.jsonl`` entry was dropped for: its ``filter`` (the curate stage's entries:
    ``filter``, ``reason`` detail, ``record``), else its reason."""
    if isinstance(entry.get("filter"), str):
        return entry["filter"]
    return _drop_reason(entry)


def _drop_reason(rec: dict[str, Any]) -> str:
    for key in DROP_REASON_KEYS:
        if isinstance(rec.get(key), str):
            return rec[key]
    nested = rec.get("curation")
    if isinstance(nested, dict) and isinstance(nested.get("reason"), str):
        return nested["reason"]
    return "unspecified"


class Output:
    """An output folder opened for reading (see the module docstring). Use :func:`open_output`."""

    def __init__(self, root: str | Path, image_root: str | Path | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"no output folder at {self.root}")
        self.graphs_dir = self._find_graphs()
        self.qa_sources: tuple[QASource, ...] = ()
        self.curation_dirs: tuple[Path, ...] = ()
        self._classify()
        self.image_root: Path | None = Path(image_root) if image_root is not None else self._find_image_root()
        self._lock = threading.Lock()
        self._graph_cache: OrderedDict[str, SceneGraph] = OrderedDict()
        self._depths = DepthFiles()
        self._index_graphs()
        self._index_qa()
        if self.image_root is not None:
            from scene_graphs.draw import add_image_root

            add_image_root(self.image_root)

    # ------------------------------------------------------------------------------ discovery
    def _find_graphs(self) -> Path:
        root = StageFolder(self.root)
        if root.shards() and root.kind == "graphs":
            return self.root
        found = [d for d in sorted(self.root.iterdir()) if d.is_dir() and not d.name.startswith(".")
                 and StageFolder(d).kind == "graphs"]
        if not found:
            raise FileNotFoundError(f"no scene graphs under {self.root} (expected a folder of part-*.jsonl "
                                    "graph shards, such as scene_graphs/)")
        preferred = [d for d in found if d.name == "scene_graphs"]
        return (preferred or found)[0]

    def _classify(self) -> None:
        sources: list[QASource] = []
        curation: list[Path] = []
        if self.graphs_dir == self.root:
            return
        for d in sorted(self.root.iterdir()):
            if not d.is_dir() or d.name.startswith(".") or d == self.graphs_dir:
                continue
            folder = StageFolder(d)
            if folder.kind == "curation":
                curation.append(d)
            elif folder.kind == "qa":
                sources.append(QASource(d.name, d, folder.stage, folder.config, tuple(folder.shards())))
        # the plain generate output first, then the others by name
        self.qa_sources = tuple(sorted(sources, key=lambda s: (s.name != "qa", s.name)))
        self.curation_dirs = tuple(curation)

    def _find_image_root(self) -> Path | None:
        annotate = read_json(self.graphs_dir / "annotate.json")
        root = annotate.get("images_root") if isinstance(annotate, dict) else None
        if isinstance(root, str) and Path(root).is_dir():
            return Path(root)
        for export in sorted(self.root.glob(f"*/{EXPORT_FILE}")):
            data = read_json(export)
            options = data.get("options") if isinstance(data, dict) else None
            root = options.get("image_root") if isinstance(options, dict) else None
            if isinstance(root, str) and Path(root).is_dir():
                return Path(root)
        return None

    # ------------------------------------------------------------------------------ indexing
    def _index_graphs(self) -> None:
        self.graph_shards: tuple[Path, ...] = tuple(StageFolder(self.graphs_dir).graph_shards())
        ids: list[str] = []
        paths: list[str] = []
        shard: list[int] = []
        offset: list[int] = []
        counts: list[tuple[int, int, int]] = []
        label_codes: list[int] = []
        label_ends: list[int] = []
        self._labels = _Vocab()
        for s, path in enumerate(self.graph_shards):
            for lineno, here, rec in scan_records(path):
                image_id = rec.get("image_id")
                if not isinstance(image_id, str):
                    raise RecordError("image_id must be a string", "image_id", f"{path}:{lineno}")
                ids.append(image_id)
                paths.append(rec.get("path") or "")
                shard.append(s)
                offset.append(here)
                objects = rec.get("objects") or []
                counts.append((len(objects), len(rec.get("relations") or []), len(rec.get("text") or [])))
                label_codes.extend(sorted({self._labels.code(str(o.get("label"))) for o in objects
                                           if isinstance(o, dict)}))
                label_ends.append(len(label_codes))
        self._ids = StringColumn(ids)
        self._paths = StringColumn(paths)
        self._shard = np.asarray(shard, dtype=np.int32)
        self._offset = np.asarray(offset, dtype=np.int64)
        self._counts = np.asarray(counts, dtype=np.int32).reshape(-1, 3)
        self._label_codes = np.asarray(label_codes, dtype=np.int32)
        self._label_ends = np.asarray(label_ends, dtype=np.int64)
        # id -> row: the rows sorted by the ids' hashes (8 bytes each), the string compared on a hit
        hashes = np.fromiter((hash(i) for i in ids), dtype=np.int64, count=len(ids))
        self._hash_order = np.argsort(hashes, kind="stable")
        self._hash_sorted = hashes[self._hash_order]
        same = np.nonzero(self._hash_sorted[1:] == self._hash_sorted[:-1])[0]
        for i in same:  # equal hashes: the same id twice, or (rarely) a collision
            a, b = (ids[int(self._hash_order[j])] for j in (i, i + 1))
            if a == b:
                raise ValueError(f"image id {a!r} appears in more than one graph under {self.graphs_dir}")
        del ids, paths

    def _curation(self) -> dict[str, tuple[int, str, int, int]]:
        """Record id -> (status code, drop category, dropped file number, byte offset) from the curation
        folders (transient, while indexing)."""
        out: dict[str, tuple[int, str, int, int]] = {}
        for d in self.curation_dirs:
            folder = StageFolder(d)
            for shard in folder.shards():
                for _, _, rec in scan_records(shard):
                    if isinstance(rec.get("id"), str):
                        out[rec["id"]] = (STATUSES.index("curated"), "", -1, -1)
            for path in folder.dropped_files():
                file_no = len(self._drop_files)
                self._drop_files.append(path)
                for _, here, rec in scan_records(path):
                    if isinstance(rec.get("id"), str):
                        out.setdefault(rec["id"], (STATUSES.index("dropped"), _drop_category(rec), file_no, here))
        return out

    def _index_qa(self) -> None:
        self._drop_files: list[Path] = []
        curation = self._curation() if self.curation_dirs else {}
        self._programs, self._answer_types, self._forms, self._reasons = _Vocab(), _Vocab(), _Vocab(), _Vocab()
        self._reasons.code("")
        shard_paths: list[Path] = []
        names = ("source", "shard", "offset", "program", "answer_type", "form", "status", "reason", "drop_file",
                 "drop_offset")
        cols = {name: array("q") for name in names}  # typed columns while scanning: 8 bytes a value
        pair_image, pair_row = array("q"), array("q")  # (graph row, record row)
        uncurated = (STATUSES.index("uncurated"), "", -1, -1)
        self.orphans = 0
        """Records naming an image that has no graph here."""
        row = 0
        for src_no, source in enumerate(self.qa_sources):
            for path in source.shards:
                shard_no = len(shard_paths)
                shard_paths.append(path)
                for lineno, here, rec in scan_records(path):
                    images = rec.get("images")
                    if not isinstance(images, list) or not isinstance(rec.get("program"), str):
                        raise RecordError("a QA record needs 'program' and a list of 'images'",
                                          source=f"{path}:{lineno}")
                    status, reason, drop_file, drop_offset = -1, "", -1, -1
                    if self.curation_dirs:
                        status, reason, drop_file, drop_offset = curation.get(rec.get("id"), uncurated)
                    values = (src_no, shard_no, here, self._programs.code(rec["program"]),
                              self._answer_types.code(str(rec.get("answer_type", ""))),
                              self._forms.code(str(rec.get("question_type", ""))), status,
                              self._reasons.code(reason), drop_file, drop_offset)
                    for name, value in zip(names, values):
                        cols[name].append(value)
                    found = False
                    for image in dict.fromkeys(images):
                        g = self._row(image) if isinstance(image, str) else None
                        if g is not None:
                            pair_image.append(g)
                            pair_row.append(row)
                            found = True
                    self.orphans += not found
                    row += 1
        self._qa_shards = tuple(shard_paths)

        def column(name: str, dtype: type) -> np.ndarray:
            return np.frombuffer(cols.pop(name), dtype=np.int64).astype(dtype)  # a copy: the array goes

        self._qa_source = column("source", np.int16)
        self._qa_shard = column("shard", np.int32)
        self._qa_offset = column("offset", np.int64)
        self._qa_program = column("program", np.int32)
        self._qa_answer_type = column("answer_type", np.int32)
        self._qa_form = column("form", np.int16)
        self._qa_status = column("status", np.int8)
        self._qa_reason = column("reason", np.int32)
        self._qa_drop_file = column("drop_file", np.int16)
        self._qa_drop_offset = column("drop_offset", np.int64)
        images_of = np.frombuffer(pair_image, dtype=np.int64)
        rows_of = np.frombuffer(pair_row, dtype=np.int64)
        order = np.lexsort((rows_of, images_of))
        self._by_image_rows = rows_of[order]  # fancy indexing copies
        self._by_image_ptr = np.searchsorted(images_of[order], np.arange(len(self._ids) + 1), side="left")

    def _row(self, image_id: str) -> int | None:
        h = hash(image_id)
        i = int(np.searchsorted(self._hash_sorted, h))
        while i < len(self._hash_sorted) and self._hash_sorted[i] == h:
            row = int(self._hash_order[i])
            if self._ids[row] == image_id:
                return row
            i += 1
        return None

    # ------------------------------------------------------------------------------ images and graphs
    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, str) and self._row(image_id) is not None

    def __iter__(self) -> Iterator[SceneGraph]:
        """Every graph, in shard order (streamed, not cached)."""
        from scene_graphs.io import read_graphs

        for path in self.graph_shards:
            yield from read_graphs(path)

    def graph_records(self) -> Iterator[dict[str, Any]]:
        """Every graph as its raw JSON record (not validated, depth not loaded), in shard order: cheap
        reading for counting."""
        for path in self.graph_shards:
            for _, _, rec in scan_records(path):
                yield rec

    @property
    def image_ids(self) -> Sequence[str]:
        """Image ids in shard order."""
        return self._ids

    def resolve_image_id(self, key: str) -> str:
        """An image id from an id or an image path (as stored in the graphs); KeyError if neither."""
        if key in self:
            return key
        for i in range(len(self._paths)):
            if self._paths[i] == key:
                return self._ids[i]
        raise KeyError(f"no image with id or path {key!r} in {self.graphs_dir}")

    def info(self, image_id: str) -> ImageInfo:
        return self._info(self._require(image_id))

    def _info(self, row: int, qa: int | None = None) -> ImageInfo:
        lo, hi = int(self._label_ends[row - 1]) if row else 0, int(self._label_ends[row])
        n_obj, n_rel, n_text = (int(v) for v in self._counts[row])
        if qa is None:
            qa = int(self._by_image_ptr[row + 1] - self._by_image_ptr[row])
        return ImageInfo(self._ids[row], self._paths[row], n_obj, n_rel, n_text, qa,
                         tuple(self._labels.values[int(c)] for c in self._label_codes[lo:hi]))

    def _require(self, image_id: str) -> int:
        row = self._row(image_id)
        if row is None:
            raise KeyError(f"no scene graph with image id {image_id!r} in {self.graphs_dir}")
        return row

    def graph(self, image_id: str) -> SceneGraph:
        """The scene graph of one image (read by byte offset, depth map included)."""
        with self._lock:
            cached = self._graph_cache.get(image_id)
            if cached is not None:
                self._graph_cache.move_to_end(image_id)
                return cached
        row = self._require(image_id)
        graph = graph_at(self.graph_shards[int(self._shard[row])], int(self._offset[row]), image_id, self._depths)
        with self._lock:
            self._graph_cache[image_id] = graph
            if len(self._graph_cache) > GRAPH_CACHE:
                self._graph_cache.popitem(last=False)
        return graph

    def _label_rows(self, label: str, exact: bool = False) -> np.ndarray:
        needle = label.strip().lower()
        codes = [c for c, v in enumerate(self._labels.values)
                 if (v.lower() == needle if exact else needle in v.lower())]
        if not codes:
            return np.zeros(0, np.int64)
        hit = np.nonzero(np.isin(self._label_codes, codes))[0]
        return np.unique(np.searchsorted(self._label_ends, hit, side="right"))

    def find(self, label: str, exact: bool = False) -> list[str]:
        """Image ids with an object whose label contains ``label`` (case-insensitive), or equals it."""
        return [self._ids[int(r)] for r in self._label_rows(label, exact)]

    def image_path(self, image_id: str) -> Path | None:
        """The image file, when it exists inside the image root (never a path outside it)."""
        if self.image_root is None:
            return None
        return safe_join(self.image_root, self.info(image_id).path)

    def draw(self, image_id: str, show: Sequence[str] | None = None, **options: Any) -> Image.Image:
        """The overlay of one image (see :func:`scene_graphs.draw.draw_graph`)."""
        from scene_graphs.draw import LAYERS, draw_graph

        layers = LAYERS if show is None else show
        return draw_graph(self.graph(image_id), self.image_path(image_id), layers, **options)

    # ------------------------------------------------------------------------------ QA records
    @property
    def programs(self) -> dict[str, int]:
        """Record count per program (all sources)."""
        counts = np.bincount(self._qa_program, minlength=len(self._programs.values))
        return {p: int(counts[i]) for i, p in sorted(enumerate(self._programs.values), key=lambda t: t[1])}

    @property
    def answer_types(self) -> dict[str, int]:
        counts = np.bincount(self._qa_answer_type, minlength=len(self._answer_types.values))
        return {a: int(counts[i]) for i, a in sorted(enumerate(self._answer_types.values), key=lambda t: t[1])}

    @property
    def curated(self) -> bool:
        """Whether a curation folder was found (so records have a status)."""
        return bool(self.curation_dirs)

    @property
    def drop_reasons(self) -> dict[str, int]:
        dropped = self._qa_reason[self._qa_status == STATUSES.index("dropped")]
        counts = Counter(self._reasons.values[int(c)] for c in dropped)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def __getitem__(self, image_id: str) -> SceneGraph:
        return self.graph(image_id)

    def _mask(self, program: str | Sequence[str] | None, answer_type: str | None, status: str | None,
              question_type: str | None = None) -> np.ndarray:
        keep = np.ones(len(self._qa_program), dtype=bool)
        if program is not None:
            names = [program] if isinstance(program, str) else list(program)
            codes = [c for c in (self._programs.get(p) for p in names) if c is not None]
            keep &= np.isin(self._qa_program, codes)
        if answer_type is not None:
            code = self._answer_types.get(answer_type)
            keep &= self._qa_answer_type == (-1 if code is None else code)
        if question_type is not None:
            code = self._forms.get(question_type)
            keep &= self._qa_form == (-1 if code is None else code)
        if status is not None:
            if status not in STATUSES:
                raise ValueError(f"unknown status {status!r}; choose from {', '.join(STATUSES)}")
            keep &= self._qa_status == STATUSES.index(status)
        return keep

    def _rows(self, image_id: str | None, program: str | Sequence[str] | None, answer_type: str | None,
              status: str | None, question_type: str | None = None) -> np.ndarray:
        keep = self._mask(program, answer_type, status, question_type)
        if image_id is None:
            return np.nonzero(keep)[0]
        row = self._require(image_id)
        rows = self._by_image_rows[self._by_image_ptr[row]:self._by_image_ptr[row + 1]]
        return rows[keep[rows]]

    def count(self, image_id: str | None = None, program: str | Sequence[str] | None = None,
              answer_type: str | None = None, status: str | None = None) -> int:
        return len(self._rows(image_id, program, answer_type, status))

    def records(self, image_id: str | None = None, program: str | Sequence[str] | None = None,
                answer_type: str | None = None, status: str | None = None,
                question_type: str | None = None) -> Iterator[dict[str, Any]]:
        """Raw QA records (dicts, in file order) matching every filter given, each with ``_source``
        (folder name), ``_status``, ``_reason`` (what it was dropped for) and ``_detail`` (the drop's
        detailed reason, when the curation output gives one) added."""
        for row in self._rows(image_id, program, answer_type, status, question_type):
            yield self._record(int(row))

    def _record(self, row: int) -> dict[str, Any]:
        path = self._qa_shards[int(self._qa_shard[row])]
        offset = int(self._qa_offset[row])
        try:
            rec = orjson.loads(line_at(path, offset))
        except orjson.JSONDecodeError as exc:
            raise RecordError(f"malformed JSON ({exc}); did the shard change since it was opened?",
                              source=f"{path} (byte {offset})") from None
        status = int(self._qa_status[row])
        rec["_source"] = self.qa_sources[int(self._qa_source[row])].name
        rec["_status"] = STATUSES[status] if status >= 0 else None
        rec["_reason"] = self._reasons.values[int(self._qa_reason[row])] or None
        rec["_detail"] = self._drop_detail(row)
        return rec

    def _drop_detail(self, row: int) -> str | None:
        """The detailed reason of a dropped record (read from its ``dropped.jsonl`` entry)."""
        file_no = int(self._qa_drop_file[row])
        if file_no < 0:
            return None
        try:
            entry = orjson.loads(line_at(self._drop_files[file_no], int(self._qa_drop_offset[row])))
        except (OSError, orjson.JSONDecodeError):
            return None
        detail = entry.get("reason") if isinstance(entry, dict) and isinstance(entry.get("filter"), str) else None
        return detail if isinstance(detail, str) else None

    def qa(self, image_id: str | None = None, program: str | Sequence[str] | None = None,
           answer_type: str | None = None, status: str | None = None) -> Iterator[QA]:
        """QA records as :class:`programs.base.QA`, by image and/or program (all when neither)."""
        from programs.base import QA

        for rec in self.records(image_id, program, answer_type, status):
            yield QA.from_dict(rec)

    def source(self, name: str) -> QASource:
        for s in self.qa_sources:
            if s.name == name:
                return s
        raise KeyError(f"no QA folder {name!r} in {self.root}")

    def _select(self, program: str | Sequence[str] | None, answer_type: str | None, status: str | None,
                label: str | None) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the images :meth:`images` lists, and the matching record count of every image."""
        keep = self._mask(program, answer_type, status)
        cumulative = np.concatenate([[0], np.cumsum(keep[self._by_image_rows], dtype=np.int64)])
        per_image = cumulative[self._by_image_ptr[1:]] - cumulative[self._by_image_ptr[:-1]]
        rows = self._label_rows(label) if label else np.arange(len(self))
        if program is not None or answer_type is not None or status is not None:
            rows = rows[per_image[rows] > 0]
        return rows, per_image

    def images(self, program: str | Sequence[str] | None = None, answer_type: str | None = None,
               status: str | None = None, label: str | None = None, offset: int = 0,
               limit: int | None = None) -> list[ImageInfo]:
        """Images (shard order) with at least one record matching the QA filters (when any is given)
        and an object label matching ``label`` (when given); ``qa`` counts the matching records.
        ``offset`` / ``limit`` give one page (only its entries are built)."""
        rows, per_image = self._select(program, answer_type, status, label)
        page = rows[offset:] if limit is None else rows[offset:offset + limit]
        return [self._info(int(r), int(per_image[r])) for r in page]

    def count_images(self, program: str | Sequence[str] | None = None, answer_type: str | None = None,
                     status: str | None = None, label: str | None = None) -> int:
        """How many images :meth:`images` lists for these filters."""
        return len(self._select(program, answer_type, status, label)[0])

    def close(self) -> None:
        self._depths.close()
        with self._lock:
            self._graph_cache.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Output({str(self.root)!r}: {len(self)} images, {len(self._qa_program)} QA records in "
                f"{', '.join(s.name for s in self.qa_sources) or 'no QA folder'}"
                f"{', curated' if self.curated else ''})")


def open_output(root: str | Path, image_root: str | Path | None = None) -> Output:
    """Open an output folder for reading: ``mmgen.open("out/")``."""
    return Output(root, image_root)
