"""COCO instances (``instances_*.json``: ``images``, ``annotations``, ``categories``).

Reading. ``src`` is one file, or a folder whose ``instances*.json`` files (else all ``*.json``) are
read in name order. Each image's ``file_name`` is its path under the image root (found directly, else
by name anywhere below it); ``width`` / ``height`` are read from the image file when absent.
Annotations become objects (id = annotation id, label = category name lower-cased and trimmed,
``bbox`` ``[x, y, w, h]`` -> ``x1, y1, x2, y2``, ``score`` when present, 1.0 otherwise). Segmentation
may be polygons, uncompressed RLE (``counts`` a list, usually with ``iscrowd``) or compressed RLE;
an empty one means no mask. Crowd annotations are kept as objects and their ids listed in
``meta["crowd"]``. ``fields`` come from :func:`~scene_graphs.model.infer_fields` (``masks`` when every
object has one). ``meta``: ``source_id`` (the COCO image id). Objects come in annotation-id order,
graphs in ascending image id. An annotation naming an unknown image or category is an error.

Writing produces one instances JSON (``dst`` the file, or a folder that gets ``instances.json``):
categories numbered 1.. in label order, masks as compressed RLE, ``area`` from the mask (else the
box), ``iscrowd`` from ``meta["crowd"]``, ``score`` only when below 1. Lost on a round trip:
attributes, relations, depth, text, synsets, ``provenance`` and other ``meta``, the original category
ids; annotation ids are kept when all are distinct integers (else renumbered), image ids likewise
from ``meta["source_id"]``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..model import Mask, Object, SceneGraph, ValidationError, infer_fields
from . import ImportReport
from ._common import (
    DuplicateGuard,
    ImageLocator,
    Record,
    as_dict,
    as_id,
    as_int,
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

log = logging.getLogger("scene_graphs.formats.coco")

FORMAT = "coco"
DEFAULT_FILE = "instances.json"


def _files(src: Path) -> list[Path]:
    if not src.is_dir():
        return [src]
    files = sorted(p for p in src.glob("instances*.json") if not p.name.startswith("."))
    files = files or sorted(p for p in src.glob("*.json") if not p.name.startswith("."))
    if not files:
        raise ValidationError("no COCO instances .json file in this folder", source=str(src))
    return files


def _mask(segmentation: Any, rec: Record, where: str, width: int, height: int) -> Mask | None:
    """The mask of a COCO ``segmentation`` value (None when it is empty)."""
    if segmentation is None or segmentation == [] or segmentation == {}:
        return None
    if isinstance(segmentation, list):
        polygons = []
        for j, poly in enumerate(segmentation):
            coords = as_list(poly, rec, f"{where}[{j}]")
            if len(coords) % 2:
                raise rec.error(f"{where}[{j}]", f"a polygon needs x, y pairs, got {len(coords)} numbers")
            polygons.append([as_number(v, rec, f"{where}[{j}][{k}]") for k, v in enumerate(coords)])
        if not any(len(p) >= 6 for p in polygons):
            raise rec.error(where, "no polygon with at least 3 points")
        with rec.checking(where):
            return Mask.from_polygons(polygons, height, width)
    d = as_dict(segmentation, rec, where)
    size = as_list(require(d, "size", rec, f"{where}.size"), rec, f"{where}.size")
    if len(size) != 2:
        raise rec.error(f"{where}.size", f"must be [height, width], got {size!r}")
    h, w = (as_int(v, rec, f"{where}.size[{k}]", positive=True) for k, v in enumerate(size))
    if (h, w) != (height, width):
        raise rec.error(f"{where}.size", f"RLE size {h}x{w} differs from the image {height}x{width}")
    counts = require(d, "counts", rec, f"{where}.counts")
    if isinstance(counts, list):
        for k, c in enumerate(counts):
            if as_int(c, rec, f"{where}.counts[{k}]") < 0:
                raise rec.error(f"{where}.counts[{k}]", "run lengths must not be negative")
        if sum(counts) != h * w:
            raise rec.error(f"{where}.counts", f"run lengths add up to {sum(counts)}, not {h}x{w} = {h * w}")
    elif not isinstance(counts, str):
        raise rec.error(f"{where}.counts", f"must be a list (uncompressed) or a string, got {type(counts).__name__}")
    with rec.checking(where):
        mask = Mask.from_rle({"size": [h, w], "counts": counts})
    if isinstance(counts, str):
        try:
            mask.area  # decodes the string: refuse garbage now, with the field named
        except Exception as exc:  # pycocotools raises bare exceptions on corrupt strings
            raise rec.error(f"{where}.counts", f"not a valid compressed RLE ({exc})") from None
    return mask


def _read_file(path: Path, src: Path, locator: ImageLocator, guard: DuplicateGuard,
               report: ImportReport) -> Iterator[SceneGraph]:
    data = load_json(path)
    top = Record(str(path))
    d = as_dict(data, top, "")
    images = as_list(require(d, "images", top, "images"), top, "images")
    annotations = as_list(d.get("annotations") or [], top, "annotations")
    categories = as_list(d.get("categories") or [], top, "categories")

    labels: dict[str, str] = {}
    for i, c in enumerate(categories):
        cd = as_dict(c, top, f"categories[{i}]")
        cid = as_id(require(cd, "id", top, f"categories[{i}].id"), top, f"categories[{i}].id")
        if cid in labels:
            raise top.error(f"categories[{i}].id", f"category id {cid} appears twice")
        labels[cid] = normalize(as_str(require(cd, "name", top, f"categories[{i}].name"), top,
                                       f"categories[{i}].name"))

    by_id: dict[str, tuple[int, dict[str, Any]]] = {}
    for i, im in enumerate(images):
        imd = as_dict(im, top, f"images[{i}]")
        iid = as_id(require(imd, "id", top, f"images[{i}].id"), top, f"images[{i}].id")
        if iid in by_id:
            raise Record(str(path), iid).error(f"images[{i}].id", "image id appears twice")
        by_id[iid] = (i, imd)

    per_image: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    seen_ann: set[str] = set()
    for i, a in enumerate(annotations):
        ad = as_dict(a, top, f"annotations[{i}]")
        aid = as_id(require(ad, "id", top, f"annotations[{i}].id"), top, f"annotations[{i}].id")
        iid = as_id(require(ad, "image_id", top, f"annotations[{i}].image_id"), top, f"annotations[{i}].image_id")
        rec = Record(str(path), iid)
        if iid not in by_id:
            raise rec.error(f"annotations[{i}].image_id", f"annotation {aid} refers to image {iid}, "
                                                          "which is not in 'images'")
        if aid in seen_ann:
            raise rec.error(f"annotations[{i}].id", f"annotation id {aid} appears twice")
        seen_ann.add(aid)
        per_image[iid].append((i, ad))

    files = [source_name(path, src)]
    for iid in sorted(by_id, key=natural_key):
        i, imd = by_id[iid]
        rec = Record(str(path), iid)
        where = f"images[{i}]"
        file_name = as_str(require(imd, "file_name", rec, f"{where}.file_name"), rec, f"{where}.file_name")
        image = resolve_image(locator, file_name, report)
        guard.check(image, rec)
        width, height = image.size(imd.get("width"), imd.get("height"), rec, where)
        objects: list[Object] = []
        crowd: list[str] = []
        for j, ad in sorted(per_image.get(iid, []), key=lambda t: natural_key(t[1]["id"])):
            aw = f"annotations[{j}]"
            aid = str(ad["id"])
            cid = as_id(require(ad, "category_id", rec, f"{aw}.category_id"), rec, f"{aw}.category_id")
            if cid not in labels:
                raise rec.error(f"{aw}.category_id", f"category {cid} is not in 'categories'")
            bbox = as_list(require(ad, "bbox", rec, f"{aw}.bbox"), rec, f"{aw}.bbox")
            if len(bbox) != 4:
                raise rec.error(f"{aw}.bbox", f"expected [x, y, width, height], got {len(bbox)} values")
            x, y, w, h = (as_number(v, rec, f"{aw}.bbox[{k}]") for k, v in enumerate(bbox))
            box = box_from_xywh(x, y, w, h, rec, f"{aw}.bbox", report, width, height)
            mask = _mask(ad.get("segmentation"), rec, f"{aw}.segmentation", width, height)
            score = as_number(ad["score"], rec, f"{aw}.score") if ad.get("score") is not None else 1.0
            iscrowd = as_int(ad.get("iscrowd") or 0, rec, f"{aw}.iscrowd")
            if iscrowd not in (0, 1):
                raise rec.error(f"{aw}.iscrowd", f"must be 0 or 1, got {iscrowd}")
            if iscrowd:
                crowd.append(aid)
            with rec.checking(aw):
                objects.append(Object(aid, labels[cid], box, score=score, mask=mask))
        meta: dict[str, Any] = {"source_id": int(iid) if iid.isdigit() and str(int(iid)) == iid else iid}
        if crowd:
            meta["crowd"] = crowd
        with rec.checking():
            graph = SceneGraph(image_id=image.image_id, width=width, height=height, path=image.path,
                               sha256=image.sha256, objects=tuple(objects), fields=infer_fields(objects),
                               provenance=provenance(FORMAT, files), meta=meta)
        yield graph


def read(src: Path, *, image_root: Path | None = None, report: ImportReport | None = None,
         allow_pickle: bool = False) -> Iterator[SceneGraph]:
    """COCO instances file(s) at ``src`` -> validated scene graphs, file by file in ascending image id."""
    src = Path(src)
    report = report if report is not None else ImportReport(source=str(src))
    locator = ImageLocator(image_root if image_root is not None else default_root(src))
    guard = DuplicateGuard()
    for path in _files(src):
        yield from _read_file(path, src, locator, guard, report)
    if locator.ambiguous:
        log.warning("%d image name(s) matched several files under %s; the closest path was used",
                    locator.ambiguous, locator.root)


def write(graphs: Iterable[SceneGraph], dst: Path, *, image_root: Path | None = None) -> None:
    """Write one COCO instances JSON (``dst`` a ``.json`` file, or a folder that gets ``instances.json``)."""
    graphs = list(graphs)
    dst = Path(dst)
    image_ids = int_ids([g.meta.get("source_id") for g in graphs]) or list(range(1, len(graphs) + 1))
    all_objects = [o for g in graphs for o in g.objects]
    ann_ids = int_ids([o.id for o in all_objects])
    if ann_ids is None:
        if all_objects:
            log.info("object ids are not distinct integers across graphs; annotations renumbered 1..%d",
                     len(all_objects))
        ann_ids = list(range(1, len(all_objects) + 1))
    category_ids = {label: k for k, label in enumerate(sorted({o.label for o in all_objects}), 1)}
    images_out, annotations_out = [], []
    next_ann = iter(ann_ids)
    for g, iid in zip(graphs, image_ids):
        images_out.append({"id": iid, "file_name": written_path(g.path, image_root) or f"{iid}.jpg",
                           "width": g.width, "height": g.height})
        crowd_ids = g.meta.get("crowd")
        crowd = set(map(str, crowd_ids)) if isinstance(crowd_ids, list) else set()
        for o in g.objects:
            ann: dict[str, Any] = {"id": next(next_ann), "image_id": iid, "category_id": category_ids[o.label],
                                   "bbox": o.box.to_xywh(), "area": float(o.mask.area if o.mask else o.box.area),
                                   "iscrowd": int(o.id in crowd), "segmentation": o.mask.to_dict() if o.mask else []}
            if o.score < 1.0:
                ann["score"] = o.score
            annotations_out.append(ann)
    categories_out = [{"id": k, "name": label, "supercategory": ""} for label, k in category_ids.items()]
    write_json(dst if dst.suffix == ".json" else dst / DEFAULT_FILE,
               {"info": {"description": "written by mmgen"}, "images": images_out,
                "annotations": annotations_out, "categories": categories_out})
