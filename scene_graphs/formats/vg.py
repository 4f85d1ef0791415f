"""Visual Genome (``objects.json`` / ``attributes.json`` / ``relationships.json`` / ``image_data.json``).

Reading. ``src`` is a folder holding the files, or the objects file itself (``attributes.json`` or
``objects.json``; ``relationships.json`` and ``image_data.json`` are then taken from beside it).
In a folder, ``attributes.json`` (objects *with* their attributes) is used when present, else
``objects.json``; versioned names (``objects_v1_4.json``) are accepted when they are the only one.
Each file is a list of per-image records keyed ``image_id`` (``id`` in v1.0):

* objects: ``{"object_id", "x", "y", "w", "h", "names": [...], "synsets": [...], "attributes": [...]}``;
  the label is the first name, lower-cased and trimmed; the first synset is kept; attribute words
  are filed under a category with :func:`scene_graphs.vocab.attribute_category`.
* relationships: ``{"predicate", "subject": {...object...}, "object": {...object...}}``; endpoints are
  matched to the image's objects by ``object_id`` (or an id listed in an object's ``merged_object_ids``,
  VG v1.4). An endpoint that is not among the image's objects,
  an empty predicate or a repeated ``(subject, predicate, object)`` is dropped and counted in
  ``report.dropped`` (so is a relationships record for an image the objects file does not have).
  Predicates are lower-cased and trimmed.
* image_data: ``{"image_id", "url", "width", "height", "coco_id", "flickr_id"}``. The image is
  ``<file name of url>`` (``<id>.jpg`` without a url) found under the image root (directly, else by
  name anywhere below it); without ``image_data.json`` the size is read from the image file.

``fields``: ``objects`` always; ``attributes`` when the objects came from an attributes file;
``relations`` when ``relationships.json`` has a record for the image. ``meta``: ``source_id`` (the VG
image id) and ``coco_id`` / ``flickr_id`` when given. Objects keep file order; graphs come in
ascending VG image id.

Writing produces ``objects.json``, ``image_data.json`` and, when any graph has the field,
``attributes.json`` and ``relationships.json`` (records only for graphs that have it) in folder
``dst``. The ``url`` is the graph's relative image path. Lost on a round trip: scores, masks, depth,
text, relation sources and scores, attribute categories and scores (re-derived from the words),
``provenance`` and other ``meta``; non-numeric object ids are renumbered, and graphs without an
integer ``meta["source_id"]`` get new image ids. When graphs disagree on having ``attributes``, all
are written with it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import urlparse

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
    int_ids,
    load_json,
    natural_key,
    normalize,
    provenance,
    require,
    resolve_image,
    source_name,
    write_json,
    written_path,
)

log = logging.getLogger("scene_graphs.formats.vg")

FORMAT = "vg"
DROP_MISSING_ENDPOINT = "vg relation whose subject or object is not among the image's objects"
DROP_DUPLICATE_RELATION = "vg duplicate relation"
DROP_EMPTY_PREDICATE = "vg relation with an empty predicate"
DROP_EMPTY_ATTRIBUTE = "vg empty attribute"
DROP_ORPHAN_RELATIONSHIPS = "vg relationships record for an image with no objects record"
MERGED_DUPLICATE_OBJECT = "vg repeated object entry (attributes merged into the first)"


# --------------------------------------------------------------------------- reading
def _find(folder: Path, stem: str) -> Path | None:
    exact = folder / f"{stem}.json"
    if exact.is_file():
        return exact
    versioned = sorted(folder.glob(f"{stem}_v*.json"))
    if len(versioned) > 1:
        raise ValidationError(f"several versions of {stem}.json ({', '.join(p.name for p in versioned)}); "
                              "pass the one to use as SRC", source=str(folder))
    return versioned[0] if versioned else None


def _sources(src: Path) -> tuple[Path, Path | None, Path | None]:
    """(objects or attributes file, relationships file, image data file)."""
    if src.is_dir():
        objects_file = _find(src, "attributes") or _find(src, "objects")
        if objects_file is None:
            raise ValidationError("no attributes.json or objects.json in this folder", source=str(src))
        folder = src
    else:
        objects_file, folder = src, src.parent
    rels = _find(folder, "relationships")
    images = _find(folder, "image_data")
    return objects_file, (rels if rels != objects_file else None), (images if images != objects_file else None)


def _record_id(item: Any, file: Path, index: int) -> str:
    rec = Record(str(file), f"#{index}")
    d = as_dict(item, rec, f"[{index}]")
    key = "image_id" if "image_id" in d else "id"
    return as_id(require(d, key, rec, f"[{index}].image_id"), rec, f"[{index}].{key}")


def _by_image(path: Path) -> dict[str, dict[str, Any]]:
    data = load_json(path)
    if not isinstance(data, list):
        raise ValidationError(f"must be a list of per-image records, got {type(data).__name__}", source=str(path))
    out: dict[str, dict[str, Any]] = {}
    for i, item in enumerate(data):
        sid = _record_id(item, path, i)
        if sid in out:
            raise ValidationError("image id appears in two records", f"[{i}].image_id",
                                  Record(str(path), sid).source)
        out[sid] = item
    return out


def _names(d: dict[str, Any], rec: Record, where: str) -> list[str]:
    if "names" in d:
        names = as_list(d["names"], rec, f"{where}.names")
        for j, n in enumerate(names):
            as_str(n, rec, f"{where}.names[{j}]")
        if names:
            return names
    if "name" in d:
        return [as_str(d["name"], rec, f"{where}.name")]
    raise rec.error(f"{where}.names", "missing required field (no names and no name)")


def _object_id(d: dict[str, Any], rec: Record, where: str) -> str:
    key = "object_id" if "object_id" in d else "id"
    return as_id(require(d, key, rec, f"{where}.object_id"), rec, f"{where}.{key}")


def _parse_objects(items: list[Any], key: str, rec: Record, report: ImportReport, width: int,
                   height: int) -> tuple[list[Object], dict[str, str]]:
    """The image's objects, and a map from ids merged into an object (v1.4 ``merged_object_ids``) to its id."""
    objects: dict[str, Object] = {}
    aliases: dict[str, str] = {}
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        d = as_dict(item, rec, where)
        oid = _object_id(d, rec, where)
        x, y, w, h = (as_number(require(d, k, rec, f"{where}.{k}"), rec, f"{where}.{k}") for k in "xywh")
        box = box_from_xywh(x, y, w, h, rec, where, report, width, height)
        label = normalize(_names(d, rec, where)[0])
        if not label:
            raise rec.error(f"{where}.names[0]", "blank object name")
        synsets = as_list(d.get("synsets") or [], rec, f"{where}.synsets")
        synset = as_str(synsets[0], rec, f"{where}.synsets[0]") if synsets else None
        attributes: list[Attribute] = []
        raw = d.get("attributes")
        for j, a in enumerate(as_list(raw, rec, f"{where}.attributes") if raw is not None else []):
            if not isinstance(a, str):
                raise rec.error(f"{where}.attributes[{j}]", f"must be a string, got {type(a).__name__}")
            name = normalize(a)
            if not name:
                report.dropped[DROP_EMPTY_ATTRIBUTE] += 1
                continue
            attributes.append(Attribute(name, attribute_category(name)))
        for j, merged in enumerate(as_list(d.get("merged_object_ids") or [], rec, f"{where}.merged_object_ids")):
            aliases.setdefault(as_id(merged, rec, f"{where}.merged_object_ids[{j}]"), oid)
        if oid in objects:  # VG lists some objects twice: keep the first box, merge the attributes
            report.dropped[MERGED_DUPLICATE_OBJECT] += 1
            first = objects[oid]
            objects[oid] = Object(first.id, first.label, first.box,
                                  attributes=_dedupe(list(first.attributes) + attributes), synset=first.synset)
            continue
        with rec.checking(where):
            objects[oid] = Object(oid, label, box, attributes=_dedupe(attributes), synset=synset)
    return list(objects.values()), {k: v for k, v in aliases.items() if k not in objects}


def _dedupe(attributes: list[Attribute]) -> tuple[Attribute, ...]:
    seen: set[str] = set()
    out = []
    for a in attributes:
        if a.name not in seen:
            seen.add(a.name)
            out.append(a)
    return tuple(out)


def _parse_relations(record: dict[str, Any], rec: Record, report: ImportReport, ids: set[str],
                     aliases: dict[str, str]) -> list[Relation]:
    items = as_list(require(record, "relationships", rec, "relationships"), rec, "relationships")
    out: list[Relation] = []
    seen: set[tuple[str, str, str]] = set()
    for i, item in enumerate(items):
        where = f"relationships[{i}]"
        d = as_dict(item, rec, where)
        predicate = require(d, "predicate", rec, f"{where}.predicate")
        if not isinstance(predicate, str):
            raise rec.error(f"{where}.predicate", f"must be a string, got {type(predicate).__name__}")
        subject = _object_id(as_dict(require(d, "subject", rec, f"{where}.subject"), rec, f"{where}.subject"),
                             rec, f"{where}.subject")
        obj = _object_id(as_dict(require(d, "object", rec, f"{where}.object"), rec, f"{where}.object"),
                         rec, f"{where}.object")
        subject, obj = aliases.get(subject, subject), aliases.get(obj, obj)
        predicate = normalize(predicate)
        if not predicate:
            report.dropped[DROP_EMPTY_PREDICATE] += 1
            continue
        if subject not in ids or obj not in ids:
            report.dropped[DROP_MISSING_ENDPOINT] += 1
            continue
        triple = (subject, predicate, obj)
        if triple in seen:
            report.dropped[DROP_DUPLICATE_RELATION] += 1
            continue
        seen.add(triple)
        out.append(Relation(subject, predicate, obj, source="human"))
    return out


def _image_name(sid: str, info: dict[str, Any] | None, info_rec: Record, record: dict[str, Any],
                rec: Record) -> str:
    """The image's path as the annotation gives it: the url's file name, a relative url as is, or ``<id>.jpg``."""
    url = None
    if info is not None and info.get("url"):
        url = as_str(info["url"], info_rec, "url")
    elif record.get("image_url"):
        url = as_str(record["image_url"], rec, "image_url")
    if not url:
        return f"{sid}.jpg"
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https", "ftp", "s3", "gs"):
        name = Path(parsed.path).name
        return name or f"{sid}.jpg"
    return url


def read(src: Path, *, image_root: Path | None = None, report: ImportReport | None = None,
         allow_pickle: bool = False) -> Iterator[SceneGraph]:
    """Visual Genome files at ``src`` -> validated scene graphs in ascending VG image id."""
    src = Path(src)
    report = report if report is not None else ImportReport(source=str(src))
    objects_file, rel_file, images_file = _sources(src)
    locator = ImageLocator(image_root if image_root is not None else default_root(src))
    records = _by_image(objects_file)
    relationships = _by_image(rel_file) if rel_file else {}
    image_data = _by_image(images_file) if images_file else {}
    guard = DuplicateGuard()
    for sid in sorted(records, key=natural_key):
        rec = Record(str(objects_file), sid)
        record = records[sid]
        key = "attributes" if "attributes" in record else "objects"
        items = as_list(require(record, key, rec, "objects"), rec, key)
        info_record = image_data.get(sid)
        info_rec = Record(str(images_file), sid) if images_file else rec
        if info_record is not None:
            info_record = as_dict(info_record, info_rec, "")
        image = resolve_image(locator, _image_name(sid, info_record, info_rec, record, rec), report)
        guard.check(image, rec)
        if info_record is not None and ("width" in info_record or "height" in info_record):
            width, height = image.size(require(info_record, "width", info_rec, "width"),
                                       require(info_record, "height", info_rec, "height"), info_rec)
        else:
            width, height = image.size(None, None, rec)
        objects, aliases = _parse_objects(items, key, rec, report, width, height)
        fields = {"objects"} | ({"attributes"} if key == "attributes" else set())
        relations: list[Relation] = []
        files = [source_name(objects_file, src)]
        if sid in relationships:
            rrec = Record(str(rel_file), sid)
            relations = _parse_relations(as_dict(relationships[sid], rrec, ""), rrec, report,
                                         {o.id for o in objects}, aliases)
            fields.add("relations")
            files.append(source_name(rel_file, src))  # type: ignore[arg-type]
        meta: dict[str, Any] = {"source_id": int(sid) if sid.isdigit() and str(int(sid)) == sid else sid}
        if info_record is not None:
            files.append(source_name(images_file, src))  # type: ignore[arg-type]
            for extra in ("coco_id", "flickr_id"):
                if info_record.get(extra) is not None:
                    meta[extra] = info_record[extra]
        with rec.checking():
            graph = SceneGraph(image_id=image.image_id, width=width, height=height, path=image.path,
                               sha256=image.sha256, objects=tuple(objects), relations=tuple(relations),
                               fields=frozenset(fields), provenance=provenance(FORMAT, files), meta=meta)
        yield graph
    orphans = len(set(relationships) - set(records))
    if orphans:
        report.dropped[DROP_ORPHAN_RELATIONSHIPS] += orphans
    if locator.ambiguous:
        log.warning("%d image name(s) matched several files under %s; the closest path was used",
                    locator.ambiguous, locator.root)


# --------------------------------------------------------------------------- writing
def _object_entry(o: Object, oid: int, with_attributes: bool) -> dict[str, Any]:
    x, y, w, h = o.box.to_xywh()
    d: dict[str, Any] = {"object_id": oid, "x": x, "y": y, "w": w, "h": h, "names": [o.label],
                         "synsets": [o.synset] if o.synset else []}
    if with_attributes:
        d["attributes"] = [a.name for a in o.attributes]
    return d


def write(graphs: Iterable[SceneGraph], dst: Path, *, image_root: Path | None = None) -> None:
    """Write Visual Genome files into folder ``dst`` (see the module docstring for what is kept)."""
    graphs = list(graphs)
    dst = Path(dst)
    source_ids = int_ids([g.meta.get("source_id") for g in graphs]) or list(range(1, len(graphs) + 1))
    with_attributes = any("attributes" in g.fields for g in graphs)
    with_relations = any("relations" in g.fields for g in graphs)
    objects_out, attributes_out, relations_out, images_out = [], [], [], []
    relationship_id = 0
    for g, sid in zip(graphs, source_ids):
        ids = int_ids([o.id for o in g.objects])
        if ids is None:
            log.info("image %s: object ids are not all integers; renumbered 1..%d", g.image_id, len(g.objects))
            ids = list(range(1, len(g.objects) + 1))
        by_id = {o.id: (o, i) for o, i in zip(g.objects, ids)}
        objects_out.append({"image_id": sid, "objects": [_object_entry(o, i, False) for o, i in zip(g.objects, ids)]})
        if with_attributes:
            attributes_out.append({"image_id": sid,
                                   "attributes": [_object_entry(o, i, True) for o, i in zip(g.objects, ids)]})
        if "relations" in g.fields:
            rels = []
            for r in g.relations:
                relationship_id += 1
                rels.append({"relationship_id": relationship_id, "predicate": r.predicate, "synsets": [],
                             "subject": _object_entry(*by_id[r.subject], False),
                             "object": _object_entry(*by_id[r.object], False)})
            relations_out.append({"image_id": sid, "relationships": rels})
        images_out.append({"image_id": sid, "url": written_path(g.path, image_root) or f"{sid}.jpg",
                           "width": g.width, "height": g.height,
                           "coco_id": g.meta.get("coco_id"), "flickr_id": g.meta.get("flickr_id")})
    dst.mkdir(parents=True, exist_ok=True)
    write_json(dst / "objects.json", objects_out)
    write_json(dst / "image_data.json", images_out)
    if with_attributes:
        write_json(dst / "attributes.json", attributes_out)
    if with_relations:
        write_json(dst / "relationships.json", relations_out)
    log.debug("wrote %d Visual Genome image records to %s", len(graphs), dst)
