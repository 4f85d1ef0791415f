"""ProVision per-stage annotation files (detection, attributes, relations, depth, segmentation).

Reading. ``src`` is one file, or a folder whose ``*.json`` files are all stage files; records are
merged by image id (the JSON key). Each file is a JSON object::

    {"<image id>": {"data_path": "path/to/image.jpg", "source": ...,
                    "annotation": {"width": W, "height": H,
                                   "labels": [...], "bboxes": [[x1, y1, x2, y2], ...], "det_scores": [...],
                                   "attributes": [[...], ...], "relations": [[head, "rel", tail], ...],
                                   "depth_mask_id": "x_depth.npy", "seg_mask_id": "x_mask.pkl"}}}

* Objects are the ``labels`` / ``bboxes`` (``x1, y1, x2, y2``) / ``det_scores`` lists; object ids are
  their indices (``"0"``, ``"1"``, ...). ``attributes`` and segmentation masks are aligned with them;
  ``relations`` refer to them by index (an index out of range is an error).
* The same key given by two stages with different values is an error, except ``width`` / ``height``:
  ProVision's own files disagree there, so the size of the stage holding the boxes wins and the
  others are counted in ``report.dropped``.
* ``data_path`` is often stale: the image is looked up relative to the image root, then by file
  name anywhere below it (one index of the tree). Images not found are listed in
  ``report.missing_images``; their graph keeps ``data_path`` as its path and has no sha256.
* ``depth_mask_id`` names a ``.npy`` (uint8 or any numeric 2-D array, larger = nearer), loaded with
  ``allow_pickle=False``; it becomes a :class:`~scene_graphs.model.DepthMap` with
  ``larger_is_nearer=True`` and each object's ``depth`` is the median under its mask (else box).
* ``seg_mask_id`` names a ``.npy`` of shape ``(objects, height, width)`` (``allow_pickle=False``), or a
  pickled list of ``scipy.sparse`` boolean matrices. Pickles are refused unless ``allow_pickle=True``
  and are then read with :mod:`scene_graphs.formats.safe_pickle` (numpy / scipy.sparse classes only).
* Depth and mask files are looked up like images, below the folder of the annotation files and
  then the image root; one that is missing is left out (counted in ``report.dropped``), and so is
  its field.

``fields``: ``objects`` (when labels are given), ``attributes``, ``relations``, ``masks``, ``depth`` as
present. Relations have ``source="model"`` and score 1; attribute categories come from
:func:`scene_graphs.vocab.attribute_category`. ``meta``: ``source_id`` (the key) and
``provision_source`` (the record's ``source``) when set. Graphs come in ascending key order.

Writing produces, in folder ``dst``, one stage file per field (a graph appears in a stage file only
when it has that field): ``object-detection-annotations.json``, ``image-attributes-annotations.json``,
``relation-annotations.json``, ``depth-estimation-annotations.json`` with ``depth_masks/*.npy`` and
``segmentation-annotations.json`` with ``seg_masks/*.npy`` (dense ``(objects, height, width)`` booleans,
never pickles). Lost on a round trip:
object ids (become indices), attribute categories and scores, relation sources and scores, synsets,
text, ``provenance`` and other ``meta``; masks of a graph where some object has none; a metric
(``larger_is_nearer=False``) depth map is written as ``max - value`` (nearness, same units).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from ..model import Attribute, DepthMap, Mask, Object, Relation, SceneGraph, ValidationError
from ..vocab import attribute_category
from . import ImportReport
from ._common import (
    DuplicateGuard,
    ImageLocator,
    Record,
    as_dict,
    as_int,
    as_list,
    as_number,
    as_str,
    box_from_xyxy,
    default_root,
    load_json,
    natural_key,
    normalize,
    provenance,
    require,
    resolve_image,
    source_name,
    unique_keys,
    write_json,
    written_path,
)

log = logging.getLogger("scene_graphs.formats.provision")

FORMAT = "provision"
MERGED_KEYS = ("labels", "bboxes", "det_scores", "attributes", "relations", "depth_mask_id", "seg_mask_id")
PICKLE_SUFFIXES = (".pkl", ".pickle")
DROP_SIZE_CONFLICT = "provision width/height that disagree with the detection stage (ignored)"
DROP_DUPLICATE_RELATION = "provision duplicate relation"
DROP_DEPTH_FILE = "provision depth map file not found (depth left out)"
DROP_MASK_FILE = "provision segmentation file not found (masks left out)"

STAGE_FILES = {
    "objects": "object-detection-annotations.json",
    "attributes": "image-attributes-annotations.json",
    "relations": "relation-annotations.json",
    "depth": "depth-estimation-annotations.json",
    "masks": "segmentation-annotations.json",
}
DEPTH_DIR = "depth_masks"
MASK_DIR = "seg_masks"


# --------------------------------------------------------------------------- merging stage files
@dataclass
class _Entry:
    """One image's annotation, merged over the stage files."""

    key: str
    data_path: str | None = None
    data_path_has_boxes: bool = False
    values: dict[str, tuple[Any, Path]] = field(default_factory=dict)
    sizes: list[tuple[Any, Any, Path, bool]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    source: Any = None

    def rec(self, key: str | None = None) -> Record:
        """The record naming the file that gave ``key`` (else the first file)."""
        path = self.values[key][1] if key in self.values else self.files[0]
        return Record(str(path), self.key)


def _stage_files(src: Path) -> list[Path]:
    if not src.is_dir():
        return [src]
    files = sorted(p for p in src.glob("*.json") if not p.name.startswith("."))
    if not files:
        raise ValidationError("no ProVision annotation .json file in this folder", source=str(src))
    return files


def _merge(files: list[Path]) -> dict[str, _Entry]:
    entries: dict[str, _Entry] = {}
    for path in files:
        data = load_json(path)
        if not isinstance(data, dict):
            raise ValidationError(f"must be a JSON object keyed by image id, got {type(data).__name__}",
                                  source=str(path))
        for key, value in data.items():
            rec = Record(str(path), key)
            d = as_dict(value, rec, "")
            ann = as_dict(require(d, "annotation", rec, "annotation"), rec, "annotation")
            entry = entries.setdefault(key, _Entry(key))
            entry.files.append(path)
            has_boxes = "bboxes" in ann
            if d.get("data_path") is not None:
                data_path = as_str(d["data_path"], rec, "data_path")
                if entry.data_path is None or (has_boxes and not entry.data_path_has_boxes):
                    entry.data_path, entry.data_path_has_boxes = data_path, has_boxes
            if entry.source is None and d.get("source") is not None:
                entry.source = d["source"]
            for k in MERGED_KEYS:
                if k not in ann:
                    continue
                if k in entry.values and entry.values[k][0] != ann[k]:
                    raise rec.error(f"annotation.{k}", f"differs from the value given in {entry.values[k][1]}")
                entry.values.setdefault(k, (ann[k], path))
            if "width" in ann or "height" in ann:
                entry.sizes.append((ann.get("width"), ann.get("height"), path, has_boxes))
    return entries


# --------------------------------------------------------------------------- arrays
def _load_npy(file: Path, rec: Record, where: str) -> np.ndarray:
    try:
        array = np.load(file, allow_pickle=False)
    except ValueError as exc:  # object arrays need pickle: refused
        raise rec.error(where, f"{file}: not a plain numeric .npy ({exc})") from None
    except OSError as exc:
        raise rec.error(where, f"{file}: cannot read ({exc})") from None
    if not isinstance(array, np.ndarray):
        raise rec.error(where, f"{file}: expected one array, got {type(array).__name__}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise rec.error(where, f"{file}: expected a numeric array, got dtype {array.dtype}")
    return array


def _load_mask_arrays(file: Path, rec: Record, where: str, allow_pickle: bool) -> list[np.ndarray]:
    """The per-object 2-D arrays stored in a segmentation file."""
    if file.suffix.lower() == ".npy":
        stack = _load_npy(file, rec, where)
        if stack.ndim == 2:
            stack = stack[None]
        if stack.ndim != 3:
            raise rec.error(where, f"{file}: expected shape (objects, height, width), got {stack.shape}")
        return list(stack)
    if not allow_pickle:
        raise rec.error(where, f"segmentation masks in {file} are pickled; pass --allow-pickle (allow_pickle=True) "
                               "to read them with a restricted unpickler (numpy and scipy.sparse only), and only "
                               "for files you trust")
    import scipy.sparse

    from . import safe_pickle

    try:
        loaded = safe_pickle.load(file)
    except safe_pickle.UnsafePickleError as exc:
        raise rec.error(where, f"{file}: {exc}") from None
    except Exception as exc:  # truncated or corrupt pickles raise many kinds of errors
        raise rec.error(where, f"{file}: cannot unpickle ({type(exc).__name__}: {exc})") from None
    if isinstance(loaded, np.ndarray) and loaded.ndim == 3:
        loaded = list(loaded)
    if not isinstance(loaded, (list, tuple)):
        raise rec.error(where, f"{file}: expected a list of masks, got {type(loaded).__name__}")
    arrays = []
    for i, item in enumerate(loaded):
        if scipy.sparse.issparse(item):
            item = item.toarray()
        if not isinstance(item, np.ndarray) or item.ndim != 2:
            raise rec.error(f"{where}[{i}]", f"{file}: expected a 2-D sparse matrix or array, got "
                                             f"{type(item).__name__}")
        if not (np.issubdtype(item.dtype, np.number) or item.dtype == np.bool_):
            raise rec.error(f"{where}[{i}]", f"{file}: expected a numeric mask, got dtype {item.dtype}")
        arrays.append(item)
    return arrays


# --------------------------------------------------------------------------- building a graph
class _Reader:
    def __init__(self, src: Path, image_root: Path | None, report: ImportReport, allow_pickle: bool) -> None:
        self.src = src
        self.report = report
        self.allow_pickle = allow_pickle
        self.images = ImageLocator(image_root if image_root is not None else default_root(src))
        self.aux = ImageLocator(default_root(src))
        self.guard = DuplicateGuard()

    def _aux_file(self, given: str) -> Path | None:
        _, file = self.aux.locate(given)
        if file is None and self.images.root != self.aux.root:
            _, file = self.images.locate(given)
        return file

    def _size(self, entry: _Entry) -> tuple[Any, Any, Record]:
        if not entry.sizes:
            return None, None, entry.rec()
        chosen = next((s for s in entry.sizes if s[3]), entry.sizes[0])
        for w, h, path, _ in entry.sizes:
            if (w, h) != chosen[:2]:
                self.report.dropped[DROP_SIZE_CONFLICT] += 1
                log.debug("%s (image %s): size %sx%s differs from %sx%s in %s; ignored", path, entry.key, w, h,
                          chosen[0], chosen[1], chosen[2])
        return chosen[0], chosen[1], Record(str(chosen[2]), entry.key)

    def graph(self, entry: _Entry) -> SceneGraph:
        report = self.report
        values = {k: v for k, (v, _) in entry.values.items()}
        if entry.data_path is None:
            raise entry.rec().error("data_path", "missing in every stage file")
        image = resolve_image(self.images, entry.data_path, report)
        self.guard.check(image, entry.rec("bboxes"))
        w_given, h_given, size_rec = self._size(entry)
        width, height = image.size(w_given, h_given, size_rec, "annotation")
        fields: set[str] = set()
        parts: dict[str, str] = {}

        def note(part: str, key: str) -> None:
            fields.add(part)
            parts[part] = source_name(entry.values[key][1], self.src)

        # objects
        labels, bboxes = values.get("labels"), values.get("bboxes")
        if (labels is None) != (bboxes is None):
            missing = "labels" if labels is None else "bboxes"
            raise entry.rec("bboxes" if labels is None else "labels").error(
                f"annotation.{missing}", "missing: labels and bboxes come together")
        n = 0
        boxes, names, scores = [], [], []
        if labels is not None:
            rec = entry.rec("labels")
            labels = as_list(labels, rec, "annotation.labels")
            brec = entry.rec("bboxes")
            bboxes = as_list(bboxes, brec, "annotation.bboxes")
            if len(bboxes) != len(labels):
                raise brec.error("annotation.bboxes", f"{len(bboxes)} boxes for {len(labels)} labels")
            n = len(labels)
            for i, label in enumerate(labels):
                name = normalize(as_str(label, rec, f"annotation.labels[{i}]"))
                names.append(name)
                boxes.append(box_from_xyxy(bboxes[i], brec, f"annotation.bboxes[{i}]", report, width, height))
            if "det_scores" in values:
                srec = entry.rec("det_scores")
                raw = as_list(values["det_scores"], srec, "annotation.det_scores")
                if len(raw) != n:
                    raise srec.error("annotation.det_scores", f"{len(raw)} scores for {n} objects")
                scores = [as_number(s, srec, f"annotation.det_scores[{i}]") for i, s in enumerate(raw)]
                for i, s in enumerate(scores):
                    if not 0.0 <= s <= 1.0:
                        raise srec.error(f"annotation.det_scores[{i}]", f"score must be in [0, 1], got {s}")
            else:
                scores = [1.0] * n
            note("objects", "labels")
        elif any(k in values for k in ("attributes", "relations", "seg_mask_id")):
            key = next(k for k in ("attributes", "relations", "seg_mask_id") if k in values)
            raise entry.rec(key).error(f"annotation.{key}", "refers to objects, but no stage file gives labels "
                                                             "and bboxes for this image")

        # attributes
        attributes: list[tuple[Attribute, ...]] = [()] * n
        if "attributes" in values:
            rec = entry.rec("attributes")
            raw = as_list(values["attributes"], rec, "annotation.attributes")
            if len(raw) != n:
                raise rec.error("annotation.attributes", f"{len(raw)} attribute lists for {n} objects")
            for i, words in enumerate(raw):
                seen: dict[str, Attribute] = {}
                for j, word in enumerate(as_list(words, rec, f"annotation.attributes[{i}]")):
                    name = normalize(as_str(word, rec, f"annotation.attributes[{i}][{j}]"))
                    seen.setdefault(name, Attribute(name, attribute_category(name)))
                attributes[i] = tuple(seen.values())
            note("attributes", "attributes")

        # relations
        relations: list[Relation] = []
        if "relations" in values:
            rec = entry.rec("relations")
            seen_triples: set[tuple[str, str, str]] = set()
            for i, triple in enumerate(as_list(values["relations"], rec, "annotation.relations")):
                where = f"annotation.relations[{i}]"
                items = as_list(triple, rec, where)
                if len(items) != 3:
                    raise rec.error(where, f"expected [head index, relation, tail index], got {items!r}")
                head = as_int(items[0], rec, f"{where}[0]")
                tail = as_int(items[2], rec, f"{where}[2]")
                predicate = normalize(as_str(items[1], rec, f"{where}[1]"))
                for k, idx in ((0, head), (2, tail)):
                    if not 0 <= idx < n:
                        raise rec.error(f"{where}[{k}]", f"object index {idx} is out of range ({n} objects)")
                t = (str(head), predicate, str(tail))
                if t in seen_triples:
                    report.dropped[DROP_DUPLICATE_RELATION] += 1
                    continue
                seen_triples.add(t)
                relations.append(Relation(*t, source="model"))
            note("relations", "relations")

        # segmentation
        masks: list[Mask | None] = [None] * n
        if "seg_mask_id" in values:
            rec = entry.rec("seg_mask_id")
            given = as_str(values["seg_mask_id"], rec, "annotation.seg_mask_id")
            file = self._aux_file(given)
            if file is None:
                report.dropped[DROP_MASK_FILE] += 1
            else:
                arrays = _load_mask_arrays(file, rec, "annotation.seg_mask_id", self.allow_pickle)
                if len(arrays) != n:
                    raise rec.error("annotation.seg_mask_id", f"{file}: {len(arrays)} masks for {n} objects")
                for i, a in enumerate(arrays):
                    if a.shape != (height, width):
                        raise rec.error(f"annotation.seg_mask_id[{i}]",
                                        f"{file}: mask shape {a.shape} differs from the image ({height}, {width})")
                    masks[i] = Mask.from_array(a != 0)
                note("masks", "seg_mask_id")

        # depth
        depth: DepthMap | None = None
        if "depth_mask_id" in values:
            rec = entry.rec("depth_mask_id")
            given = as_str(values["depth_mask_id"], rec, "annotation.depth_mask_id")
            file = self._aux_file(given)
            if file is None:
                report.dropped[DROP_DEPTH_FILE] += 1
            else:
                values_ = _load_npy(file, rec, "annotation.depth_mask_id")
                with rec.checking("annotation.depth_mask_id"):
                    depth = DepthMap(values_, larger_is_nearer=True)
                note("depth", "depth_mask_id")

        rec = entry.rec("labels")
        objects = []
        for i in range(n):
            d = depth.median_in(boxes[i], width, height, masks[i]) if depth is not None else None
            with rec.checking(f"objects[{i}]"):
                objects.append(Object(str(i), names[i], boxes[i], score=scores[i], mask=masks[i],
                                      attributes=attributes[i], depth=d))
        meta: dict[str, Any] = {"source_id": entry.key}
        if entry.source is not None:
            meta["provision_source"] = entry.source
        prov = provenance(FORMAT, (source_name(p, self.src) for p in entry.files))
        prov["import"]["parts"] = dict(sorted(parts.items()))
        with rec.checking():
            return SceneGraph(image_id=image.image_id, width=width, height=height, path=image.path,
                              sha256=image.sha256, objects=tuple(objects), relations=tuple(relations), depth=depth,
                              fields=frozenset(fields), provenance=prov, meta=meta)


def read(src: Path, *, image_root: Path | None = None, report: ImportReport | None = None,
         allow_pickle: bool = False) -> Iterator[SceneGraph]:
    """ProVision stage file(s) at ``src`` -> validated scene graphs in ascending image key."""
    src = Path(src)
    report = report if report is not None else ImportReport(source=str(src))
    entries = _merge(_stage_files(src))
    reader = _Reader(src, image_root, report, allow_pickle)
    for key in sorted(entries, key=natural_key):
        yield reader.graph(entries[key])
    if reader.images.ambiguous:
        log.warning("%d image name(s) matched several files under %s; the closest path was used",
                    reader.images.ambiguous, reader.images.root)


# --------------------------------------------------------------------------- writing
def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _file_stem(key: str) -> str:
    """``key`` when it is a safe file name, else a hash of it (keys are distinct, so stems are too)."""
    import hashlib
    import re

    if re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,100}", key):
        return key
    return "k" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _depth_array(depth: DepthMap) -> np.ndarray:
    values = depth.values
    if not depth.larger_is_nearer:
        values = (values.max() - values).astype(np.float32)
    if np.all((values >= 0) & (values <= 255) & (values == np.round(values))):
        return values.astype(np.uint8)
    return values.astype(np.float32)


def write(graphs: Iterable[SceneGraph], dst: Path, *, image_root: Path | None = None) -> None:
    """Write ProVision stage files into folder ``dst`` (see the module docstring for what is kept)."""
    from ..io import atomic_write

    graphs = list(graphs)
    dst = Path(dst)
    stages: dict[str, dict[str, Any]] = {part: {} for part in STAGE_FILES}
    arrays: list[tuple[Path, np.ndarray]] = []
    for key, g in zip(unique_keys(graphs), graphs):
        index = {o.id: i for i, o in enumerate(g.objects)}
        data_path = written_path(g.path, image_root) or key

        def record(annotation: dict[str, Any], g: SceneGraph = g, data_path: str = data_path) -> dict[str, Any]:
            return {"data_path": data_path, "annotation": {"width": g.width, "height": g.height, **annotation},
                    "source": g.meta.get("provision_source")}

        detection = {"labels": [o.label for o in g.objects], "bboxes": [o.box.to_list() for o in g.objects],
                     "det_scores": [o.score for o in g.objects]}
        if g.objects or g.fields & {"objects", "attributes", "relations", "masks"}:  # the others index into it
            stages["objects"][key] = record(detection)
        if "attributes" in g.fields:
            stages["attributes"][key] = record({"attributes": [[a.name for a in o.attributes] for o in g.objects]})
        if "relations" in g.fields:
            stages["relations"][key] = record({"relations": [[index[r.subject], r.predicate, index[r.object]]
                                                             for r in g.relations]})
        if g.depth is not None:
            name = f"{_file_stem(key)}_depth.npy"
            arrays.append((dst / DEPTH_DIR / name, _depth_array(g.depth)))
            stages["depth"][key] = record({"depth_mask_id": name})
        if "masks" in g.fields:
            if all(o.mask is not None for o in g.objects):
                name = f"{_file_stem(key)}_mask.npy"
                stack = np.zeros((len(g.objects), g.height, g.width), dtype=bool)
                for i, o in enumerate(g.objects):
                    stack[i] = o.mask.to_array()  # type: ignore[union-attr]
                arrays.append((dst / MASK_DIR / name, stack))
                stages["masks"][key] = record({"seg_mask_id": name, "bboxes": detection["bboxes"],
                                               "labels": detection["labels"]})
            else:
                log.info("image %s: some objects have no mask; masks not written", g.image_id)
    dst.mkdir(parents=True, exist_ok=True)
    for path, array in arrays:
        with atomic_write(path) as f:
            f.write(_npy_bytes(array))
    for part, records in stages.items():
        if records:
            write_json(dst / STAGE_FILES[part], records)
