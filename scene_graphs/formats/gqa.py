"""GQA scene graphs (``train_sceneGraphs.json`` / ``val_sceneGraphs.json``).

Reading. ``src`` is one file, or a folder whose ``*sceneGraphs*.json`` files (else all ``*.json``)
are read in name order. A file is one JSON object::

    {"<image id>": {"width": W, "height": H, "location": ..., "weather": ...,
                    "objects": {"<object id>": {"name": ..., "x": ..., "y": ..., "w": ..., "h": ...,
                                                "attributes": ["white", ...],
                                                "relations": [{"name": "on", "object": "<object id>"}]}}}}

The image is ``<image id>.jpg`` under the image root (directly, else by name anywhere below it).
Labels, attribute words and predicates are lower-cased and trimmed; attribute categories come from
:func:`scene_graphs.vocab.attribute_category`. A relation to an object id that is not in the same
image is an error; a repeated ``(subject, predicate, object)`` is dropped and counted. ``fields`` are
``objects``, ``attributes`` and ``relations`` (GQA annotates all three). ``meta``: ``source_id``
(the GQA id, a string) and ``location`` / ``weather`` when given. Graphs come in ascending id.

Writing produces one JSON object (``dst`` is the file, or a folder that gets ``sceneGraphs.json``).
Lost on a round trip: scores, masks, depth, text, synsets, relation sources and scores, attribute
categories and scores, ``provenance`` and other ``meta``; the image path becomes ``<id>.jpg`` found
by name (graphs without a distinct ``meta["source_id"]`` are keyed by their mmgen image id).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..model import Attribute, Object, Relation, SceneGraph, ValidationError
from ..vocab import attribute_category
from . import ImportReport
from ._common import (
    DuplicateGuard,
    ImageLocator,
    Record,
    as_dict,
    as_id,
    as_list,
    as_number,
    as_str,
    box_from_xywh,
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
)

log = logging.getLogger("scene_graphs.formats.gqa")

FORMAT = "gqa"
DEFAULT_FILE = "sceneGraphs.json"
DROP_DUPLICATE_RELATION = "gqa duplicate relation"
META_KEYS = ("location", "weather")


def _files(src: Path) -> list[Path]:
    if not src.is_dir():
        return [src]
    files = sorted(p for p in src.glob("*sceneGraphs*.json") if not p.name.startswith("."))
    files = files or sorted(p for p in src.glob("*.json") if not p.name.startswith("."))
    if not files:
        raise ValidationError("no GQA scene-graph .json file in this folder", source=str(src))
    return files


def _graph(key: str, value: Any, rec: Record, locator: ImageLocator, guard: DuplicateGuard, report: ImportReport,
           files: list[str]) -> SceneGraph:
    g = as_dict(value, rec, "")
    image = resolve_image(locator, f"{key}.jpg", report)
    guard.check(image, rec)
    width, height = image.size(g.get("width"), g.get("height"), rec)
    raw_objects = as_dict(require(g, "objects", rec, "objects"), rec, "objects")
    objects: list[Object] = []
    pending: list[tuple[str, str, str, str]] = []  # subject, predicate, object, where
    for oid, item in raw_objects.items():
        where = f"objects.{oid}"
        d = as_dict(item, rec, where)
        x, y, w, h = (as_number(require(d, k, rec, f"{where}.{k}"), rec, f"{where}.{k}") for k in "xywh")
        box = box_from_xywh(x, y, w, h, rec, where, report, width, height)
        label = normalize(as_str(require(d, "name", rec, f"{where}.name"), rec, f"{where}.name"))
        attributes: dict[str, Attribute] = {}
        for j, a in enumerate(as_list(d.get("attributes") or [], rec, f"{where}.attributes")):
            name = normalize(as_str(a, rec, f"{where}.attributes[{j}]"))
            attributes.setdefault(name, Attribute(name, attribute_category(name)))
        for j, r in enumerate(as_list(d.get("relations") or [], rec, f"{where}.relations")):
            rw = f"{where}.relations[{j}]"
            rd = as_dict(r, rec, rw)
            predicate = normalize(as_str(require(rd, "name", rec, f"{rw}.name"), rec, f"{rw}.name"))
            target = as_id(require(rd, "object", rec, f"{rw}.object"), rec, f"{rw}.object")
            pending.append((oid, predicate, target, f"{rw}.object"))
        with rec.checking(where):
            objects.append(Object(oid, label, box, attributes=tuple(attributes.values())))
    ids = {o.id for o in objects}
    relations: list[Relation] = []
    seen: set[tuple[str, str, str]] = set()
    for subject, predicate, target, where in pending:
        if target not in ids:
            raise rec.error(where, f"refers to object {target!r}, which is not in this image")
        if (subject, predicate, target) in seen:
            report.dropped[DROP_DUPLICATE_RELATION] += 1
            continue
        seen.add((subject, predicate, target))
        relations.append(Relation(subject, predicate, target, source="human"))
    meta: dict[str, Any] = {"source_id": key}
    for k in META_KEYS:
        if g.get(k) is not None:
            meta[k] = g[k]
    with rec.checking():
        return SceneGraph(image_id=image.image_id, width=width, height=height, path=image.path, sha256=image.sha256,
                          objects=tuple(objects), relations=tuple(relations),
                          fields=frozenset({"objects", "attributes", "relations"}),
                          provenance=provenance(FORMAT, files), meta=meta)


def read(src: Path, *, image_root: Path | None = None, report: ImportReport | None = None,
         allow_pickle: bool = False) -> Iterator[SceneGraph]:
    """GQA scene-graph file(s) at ``src`` -> validated scene graphs, file by file in ascending image id."""
    src = Path(src)
    report = report if report is not None else ImportReport(source=str(src))
    locator = ImageLocator(image_root if image_root is not None else default_root(src))
    guard = DuplicateGuard()
    for path in _files(src):
        data = load_json(path)
        if not isinstance(data, dict):
            raise ValidationError(f"must be a JSON object keyed by image id, got {type(data).__name__}",
                                  source=str(path))
        files = [source_name(path, src)]
        for key in sorted(data, key=natural_key):
            rec = Record(str(path), key)
            yield _graph(key, data[key], rec, locator, guard, report, files)
    if locator.ambiguous:
        log.warning("%d image name(s) matched several files under %s; the closest path was used",
                    locator.ambiguous, locator.root)


def write(graphs: Iterable[SceneGraph], dst: Path, *, image_root: Path | None = None) -> None:
    """Write one GQA scene-graph JSON (``dst`` a ``.json`` file, or a folder that gets ``sceneGraphs.json``)."""
    graphs = list(graphs)
    dst = Path(dst)
    out: dict[str, Any] = {}
    for key, g in zip(unique_keys(graphs), graphs):
        objects: dict[str, Any] = {}
        for o in g.objects:
            x, y, w, h = o.box.to_xywh()
            objects[o.id] = {"name": o.label, "x": x, "y": y, "w": w, "h": h,
                             "attributes": [a.name for a in o.attributes], "relations": []}
        for r in g.relations:
            objects[r.subject]["relations"].append({"name": r.predicate, "object": r.object})
        entry: dict[str, Any] = {"width": g.width, "height": g.height}
        entry.update({k: g.meta[k] for k in META_KEYS if g.meta.get(k) is not None})
        entry["objects"] = objects
        out[key] = entry
    write_json(dst if dst.suffix == ".json" else dst / DEFAULT_FILE, out)
