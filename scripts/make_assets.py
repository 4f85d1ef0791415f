"""Rebuild the bundled sample assets (``assets/``) from images that installed packages ship.

Usage::

    python scripts/make_assets.py --images     # assets/images/** and assets/SOURCES.md
    python scripts/make_assets.py --fixtures   # assets/scene_graphs/part-00000.jsonl (+ .depth.npz)
    python scripts/make_assets.py              # both

Every image comes from a package file that loads offline (scikit-image's bundled ``skimage/data``
files, Ultralytics' package ``assets/``, Matplotlib's ``sample_data``). Each is decoded, oriented,
shrunk so that its longer side is at most ``MAX_SIDE`` pixels, and re-encoded without metadata
(no EXIF, ICC profile or comment). ``SOURCES.md`` is written from the ``SOURCES`` table below, so
origin, version, licence and processing of every file are stated in one reviewable place.

The scene-graph fixtures are hand annotations: every box, polygon, attribute, relation and text
string is written out literally in ``FIXTURES`` below, checked by eye against the image. Image ids
follow the project rule with the input root ``assets/images``: ``image_id(<path below
assets/images>, ...)``, and ``path`` is that relative path. Only the depth map (Middlebury's
ground-truth disparity for the motorcycle) and the per-object depth medians derived from it are
computed rather than typed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
IMAGES = ASSETS / "images"
FIXTURES_SHARD = ASSETS / "scene_graphs" / "part-00000.jsonl"
MAX_SIDE = 640
JPEG_QUALITY = 90

log = logging.getLogger("mmgen.scripts.make_assets")


# --------------------------------------------------------------------------------------- sources
def _site_file(package_path: str) -> Path:
    """Absolute path of ``package_path`` (``<import package>/<file inside it>``) in the installed package."""
    import importlib

    package, _, inner = package_path.partition("/")
    module = importlib.import_module(package)
    return Path(module.__file__).resolve().parent / inner


def load_original(package_path: str) -> tuple[Image.Image, str]:
    """The original image, EXIF-oriented, as ``L`` or ``RGB`` in sRGB; also a note on colour handling.

    An embedded RGB ICC profile other than sRGB is converted to sRGB (so dropping the profile later
    does not change the colours); an sRGB or grayscale profile is dropped as is.
    """
    from PIL import ImageCms

    with Image.open(_site_file(package_path)) as opened:
        im = ImageOps.exif_transpose(opened)
        icc = opened.info.get("icc_profile")
        note = ""
        if im.mode not in ("L", "RGB"):
            im = im.convert("RGB")
        if icc and im.mode == "RGB":
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            name = ImageCms.getProfileDescription(profile).strip()
            if "srgb" not in name.lower():
                im = ImageCms.profileToProfile(im, profile, ImageCms.createProfile("sRGB"), outputMode="RGB")
                note = f"converted from its embedded '{name}' profile to sRGB; "
        im.load()
    return Image.fromarray(np.asarray(im)), note  # a fresh image: no info, no metadata


@dataclass(frozen=True)
class Source:
    """One bundled image: where it comes from and under which terms."""

    path: str            # below assets/images
    distribution: str    # the pip distribution that ships the original
    package_path: str    # the original file: import package, then the path inside it
    licence: str
    credit: str
    content: str         # what the photo shows (for people choosing a test image)
    fmt: str = "JPEG"


SKIMAGE_BSD = ("BSD-3-Clause (scikit-image package licence, `Files: *` in its LICENSE.txt); the file carries "
               "no separate notice")

SOURCES: tuple[Source, ...] = (
    Source("people_astronaut_collins.jpg", "scikit-image", "skimage/data/astronaut.png",
           "Public domain (NASA; \"no known copyright restrictions\" per `skimage.data.astronaut` docstring)",
           "NASA Great Images database, via scikit-image",
           "Astronaut Eileen Collins in an orange flight suit, US flag, shuttle model, white helmet"),
    Source("people_grace_hopper.jpg", "matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
           "Public domain (official U.S. Navy portrait, work of the U.S. federal government); shipped in "
           "Matplotlib's sample data under the Matplotlib licence (PSF-based)",
           "U.S. Navy, via Matplotlib `cbook.get_sample_data('grace_hopper.jpg')`",
           "Portrait of Grace Hopper in U.S. Navy uniform and cap, US flag behind"),
    Source("people_cameraman.jpg", "scikit-image", "skimage/data/camera.png",
           "CC0 (photographer Lav Varshney, per `skimage.data.camera` docstring)",
           "Lav Varshney, via scikit-image",
           "Grayscale: man with a film camera on a tripod on a lawn, buildings behind (single-channel image)"),
    Source("street_bus.jpg", "ultralytics-opencv-headless", "ultralytics/assets/bus.jpg",
           "AGPL-3.0 (Ultralytics package licence; the image has no separate notice)",
           "Ultralytics, `ultralytics/assets/bus.jpg`",
           "Street: blue electric bus with the words 'cero emisiones', pedestrians on the pavement"),
    Source("vehicle_rocket_launch.jpg", "scikit-image", "skimage/data/rocket.jpg",
           "Public domain (SpaceX released its photos into the public domain, per `skimage.data.rocket` docstring)",
           "SpaceX, via scikit-image",
           "Falcon 9 rocket on the launch pad at dusk between lightning towers, lights"),
    Source("vehicle_motorcycle_garage.jpg", "scikit-image", "skimage/data/motorcycle_left.png",
           SKIMAGE_BSD + "; originally the left view of 'Motorcycle' from the Middlebury 2014 stereo dataset "
           "(Scharstein et al., GCPR 2014), whose authors ask users to cite that paper",
           "Middlebury College stereo dataset 2014, via `skimage.data.stereo_motorcycle`",
           "Red motorcycle in a workshop, wooden bench, shelves with boxes; has ground-truth disparity"),
    Source("indoor_coffee_cup.jpg", "scikit-image", "skimage/data/coffee.png",
           "CC0 (photographer Rachel Michetti, per `skimage.data.coffee` docstring)",
           "Rachel Michetti / Pikolo Espresso Bar, via scikit-image",
           "Red espresso cup on a red saucer with a spoon, on a wooden table"),
    Source("objects_greek_coins.jpg", "scikit-image", "skimage/data/coins.png",
           "No known copyright restrictions (Brooklyn Museum collection, per `skimage.data.coins` docstring)",
           "Brooklyn Museum, via scikit-image",
           "Grayscale: 24 Greek coins from Pompeii in four rows (counting)"),
    Source("text_printed_page.png", "scikit-image", "skimage/data/page.png",
           SKIMAGE_BSD,
           "scikit-image (a photographed page of its own tutorial text)",
           "Grayscale photo of a printed page: heading 'Region-based segmentation', a paragraph, a code line "
           "(OCR). Kept as PNG: the text is small and JPEG ringing would hurt OCR",
           fmt="PNG"),
    Source("more/animal_cat_chelsea.jpg", "scikit-image", "skimage/data/chelsea.png",
           "CC0 (photographer Stefan van der Walt, per `skimage.data.chelsea` docstring)",
           "Stefan van der Walt, via scikit-image",
           "Close-up of a tabby cat (in a sub-folder, to exercise nested input folders)"),
)


def _distribution_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _shrink(im: Image.Image) -> tuple[Image.Image, tuple[int, int]]:
    """The image with its longer side at most ``MAX_SIDE``; also the original size."""
    original = im.size
    scale = MAX_SIDE / max(im.size)
    if scale < 1:
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im = im.resize(size, Image.Resampling.LANCZOS)
    return im, original


def _encode(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        im.save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
    elif fmt == "PNG":
        im.save(buf, "PNG", optimize=True)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return buf.getvalue()


def build_images() -> list[dict[str, Any]]:
    """Write every image of ``SOURCES`` below ``assets/images``; returns one row per file for SOURCES.md."""
    from scene_graphs.io import atomic_write

    rows = []
    expected = {s.path for s in SOURCES}
    for old in sorted(p for p in IMAGES.rglob("*") if p.is_file()):
        if old.relative_to(IMAGES).as_posix() not in expected:
            log.info("removing %s (no longer in SOURCES)", old)
            old.unlink()
    for src in SOURCES:
        original_image, colour_note = load_original(src.package_path)
        im, original = _shrink(original_image)
        data = _encode(im, src.fmt)
        target = IMAGES / src.path
        with atomic_write(target) as f:
            f.write(data)
        done = (f"resized from {original[0]}x{original[1]} to {im.width}x{im.height} (Lanczos)"
                if im.size != original else f"kept at {im.width}x{im.height}")
        encoded = (f"JPEG quality {JPEG_QUALITY}" if src.fmt == "JPEG" else "lossless PNG")
        rows.append({
            "src": src, "version": _distribution_version(src.distribution), "mode": im.mode,
            "done": f"{colour_note}{done}; re-encoded as {encoded} without metadata", "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        })
        log.info("wrote %s (%dx%d, %d bytes)", target, im.width, im.height, len(data))
    return rows


def write_sources(rows: list[dict[str, Any]]) -> None:
    """Write ``assets/SOURCES.md`` from the rows :func:`build_images` returned."""
    from scene_graphs.io import atomic_write

    lines = [
        "# Sample assets: sources and licences",
        "",
        "Written by `python scripts/make_assets.py --images` from the `SOURCES` table in that script;",
        "edit the table, not this file. Every image is a real photograph taken from a file that an",
        "installed Python package ships (no download). Each was decoded, shrunk so the longer side is at most",
        f"{MAX_SIDE} px, and re-encoded without metadata (no EXIF, ICC profile or comment).",
        "Grayscale originals stay single-channel so that readers of the assets meet an `L`-mode image.",
        "",
        "Licence note: `street_bus.jpg` comes from the AGPL-3.0 Ultralytics package; all other files are",
        "public domain, CC0 or BSD-3-Clause.",
        "",
        "Scene-graph fixtures: `scene_graphs/part-00000.jsonl` (+ `part-00000.depth.npz`), hand annotations",
        "written by `python scripts/make_assets.py --fixtures`. Image ids use the input root `assets/images`:",
        "`image_id(path, root)` of the path below `assets/images` (for example `more/animal_cat_chelsea.jpg`).",
        "",
    ]
    for row in rows:
        src: Source = row["src"]
        lines += [
            f"## `images/{src.path}`",
            "",
            f"- Shows: {src.content}",
            f"- Origin: `{src.package_path}` in the `{src.distribution}` distribution, version {row['version']}",
            f"- Credit: {src.credit}",
            f"- Licence: {src.licence}",
            f"- Processing: {row['done']}; mode {row['mode']}; {row['bytes']} bytes",
            f"- sha256: `{row['sha256']}`",
            "",
        ]
    with atomic_write(ASSETS / "SOURCES.md") as f:
        f.write("\n".join(lines).encode("utf-8"))


# -------------------------------------------------------------------------------------- fixtures
# Hand annotations. Coordinates are pixels of the bundled (resized) image, x1, y1, x2, y2, read off
# zoomed crops with a 10 px grid and checked by drawing them back onto the image. Each object row is
# (id, label, box, attributes); attributes are (name, category). Relations are (subject, predicate,
# object); text rows are (id, text, box, id of the object carrying it or None).
# ``polygons`` (COCO [x0, y0, x1, y1, ...] outlines, traced by hand) give masks; ``occluded_by``
# lists the objects in front of one, whose polygons are cut out so that each mask holds the visible
# pixels only. When an image has masks, every object in it has one (so ``fields`` lists "masks").
FIXTURES: tuple[dict[str, Any], ...] = (
    {
        "path": "street_bus.jpg",
        "fields": ("objects", "attributes", "relations", "text"),
        "objects": (
            ("bus", "bus", (8, 138, 476, 432), (("blue", "color"), ("white", "color"))),
            ("man_coat", "man", (31, 236, 142, 532), ()),
            ("man_red_shirt", "man", (134, 241, 204, 508), ()),
            ("beige_coat", "coat", (35, 266, 120, 417), (("beige", "color"), ("fluffy", "pattern"))),
            ("black_coat", "coat", (134, 279, 202, 413), (("black", "color"),)),
            ("sunglasses_left", "sunglasses", (69, 253, 91, 261), (("black", "color"),)),
            ("sunglasses_right", "sunglasses", (157, 259, 181, 268), (("black", "color"),)),
            ("walker_right", "person", (396, 233, 480, 521), ()),
            ("walker_left", "person", (0, 327, 46, 513), ()),
            ("bollard_near", "bollard", (252, 390, 272, 448), (("black", "color"),)),
            ("bollard_far", "bollard", (390, 370, 408, 423), (("black", "color"),)),
            ("sign", "traffic sign", (0, 154, 20, 193), (("round", "shape"),)),
            ("building", "building", (0, 0, 480, 215), (("yellow", "color"),)),
        ),
        "relations": (
            ("man_coat", "wearing", "beige_coat"),
            ("man_coat", "wearing", "sunglasses_left"),
            ("man_red_shirt", "wearing", "black_coat"),
            ("man_red_shirt", "wearing", "sunglasses_right"),
            ("man_coat", "left of", "man_red_shirt"),
            ("man_coat", "next to", "man_red_shirt"),
            ("man_coat", "in front of", "bus"),
            ("man_red_shirt", "in front of", "bus"),
            ("walker_right", "right of", "man_red_shirt"),
            ("bollard_near", "in front of", "bus"),
            ("bus", "in front of", "building"),
        ),
        "text": (
            ("cero", "cero", (332, 327, 359, 345), "bus"),
            ("emisiones", "emisiones", (331, 341, 401, 365), "bus"),
        ),
        "meta": {"scene": "street", "note": "the bus destination sign and the 'electrica EMT' logo are too "
                 "small or stylised to transcribe with certainty and are left out of `text`"},
    },
    {
        "path": "indoor_coffee_cup.jpg",
        "fields": ("objects", "masks", "attributes", "relations", "text"),
        "objects": (
            ("cup", "cup", (172, 18, 409, 311), (("red", "color"), ("white", "color"), ("ceramic", "material"))),
            ("coffee", "coffee", (206, 95, 382, 198), (("brown", "color"),)),
            ("saucer", "saucer", (76, 69, 479, 398), (("red", "color"), ("round", "shape"))),
            ("spoon", "spoon", (326, 66, 423, 325), (("silver", "color"), ("metal", "material"))),
            ("table", "table", (0, 0, 600, 400), (("brown", "color"), ("wooden", "material"))),
        ),
        "polygons": {
            "cup": ((172, 103, 176, 80, 190, 58, 210, 40, 235, 27, 265, 20, 293, 18, 322, 20, 352, 27, 378, 42,
                     398, 62, 407, 85, 408, 110, 405, 135, 398, 165, 392, 190, 385, 210, 376, 228, 362, 240,
                     348, 246, 335, 262, 320, 275, 300, 283, 275, 285, 252, 283, 248, 296, 238, 307, 224, 310,
                     210, 303, 201, 287, 200, 266, 204, 248, 211, 236, 205, 215, 194, 192, 184, 172, 176, 150,
                     173, 125),),
            "coffee": ((207, 140, 215, 118, 235, 104, 265, 98, 300, 96, 335, 99, 360, 108, 377, 122, 381, 142,
                        375, 165, 355, 183, 325, 195, 293, 197, 260, 193, 230, 181, 212, 163),),
            "saucer": ((110, 100, 137, 80, 170, 70, 290, 58, 405, 95, 417, 110, 437, 123, 457, 147, 470, 177,
                        477, 210, 478, 247, 473, 277, 460, 310, 440, 340, 413, 363, 380, 380, 347, 390, 313, 395,
                        280, 397, 267, 395, 233, 390, 200, 380, 170, 367, 140, 347, 113, 320, 93, 287, 80, 247,
                        77, 210, 80, 170, 90, 133),),
            "spoon": ((398, 72, 404, 67, 412, 67, 421, 71, 422, 78, 417, 95, 412, 110, 407, 125, 402, 125,
                       400, 100, 397, 85),
                      (389, 193, 392, 200, 388, 218, 390, 238, 398, 254, 406, 278, 405, 296, 395, 311, 378, 321,
                       360, 324, 343, 318, 332, 304, 327, 285, 330, 266, 340, 250, 352, 241, 366, 237, 378, 228,
                       383, 212, 386, 195)),
            "table": ((0, 0, 600, 0, 600, 400, 0, 400),),
        },
        "occluded_by": {"cup": ("spoon",), "saucer": ("cup", "spoon"), "table": ("cup", "saucer", "spoon")},
        "relations": (
            ("cup", "on", "saucer"),
            ("spoon", "on", "saucer"),
            ("saucer", "on", "table"),
            ("coffee", "in", "cup"),
            ("spoon", "next to", "cup"),
            ("spoon", "right of", "cup"),
        ),
        "text": (),
        "meta": {"scene": "cafe table", "note": "the cup mask includes the coffee inside it"},
    },
    {
        "path": "vehicle_motorcycle_garage.jpg",
        "fields": ("objects", "attributes", "relations", "depth"),
        "objects": (
            ("motorcycle", "motorcycle", (80, 64, 592, 390), (("red", "color"),)),
            ("rear_wheel", "wheel", (105, 206, 234, 347), (("black", "color"),)),
            ("front_wheel", "wheel", (436, 245, 591, 389), (("black", "color"),)),
            ("seat", "seat", (128, 137, 309, 221), (("black", "color"),)),
            ("headlight", "headlight", (448, 110, 487, 160), (("round", "shape"),)),
            ("bench", "bench", (41, 91, 243, 267), (("wooden", "material"),)),
            ("shelf", "shelf", (292, 0, 612, 253), (("metal", "material"), ("gray", "color"))),
            ("red_bin", "bin", (451, 155, 532, 219), (("red", "color"), ("plastic", "material"))),
            ("cardboard_box", "box", (530, 158, 590, 238), (("brown", "color"), ("cardboard", "material"))),
            ("white_tray", "tray", (485, 113, 539, 146), (("white", "color"),)),
        ),
        "relations": (
            ("rear_wheel", "part of", "motorcycle"),
            ("front_wheel", "part of", "motorcycle"),
            ("seat", "part of", "motorcycle"),
            ("headlight", "part of", "motorcycle"),
            ("front_wheel", "right of", "rear_wheel"),
            ("motorcycle", "in front of", "shelf"),
            ("motorcycle", "in front of", "bench"),
            ("bench", "left of", "shelf"),
            ("red_bin", "on", "shelf"),
            ("cardboard_box", "on", "shelf"),
            ("white_tray", "on", "shelf"),
            ("cardboard_box", "right of", "red_bin"),
            ("white_tray", "above", "red_bin"),
        ),
        "text": (),
        "depth": "middlebury_disparity",
        "meta": {"scene": "garage", "note": "text on the tank and the engine cover is too small to transcribe; "
                 "`text` was not annotated"},
    },
    {
        "path": "more/animal_cat_chelsea.jpg",
        "fields": ("objects", "attributes", "relations", "text"),
        "objects": (
            ("cat", "cat", (0, 0, 400, 300), (("brown", "color"), ("tabby", "pattern"))),
            ("eye_left", "eye", (134, 86, 206, 146), (("green", "color"),)),
            ("eye_right", "eye", (296, 109, 344, 165), (("green", "color"),)),
            ("nose", "nose", (229, 225, 294, 265), (("pink", "color"),)),
        ),
        "relations": (
            ("eye_left", "part of", "cat"),
            ("eye_right", "part of", "cat"),
            ("nose", "part of", "cat"),
            ("eye_left", "left of", "eye_right"),
            ("eye_left", "above", "nose"),
            ("eye_right", "above", "nose"),
        ),
        "text": (),
        "meta": {"scene": "close-up",
                 "note": "in a sub-folder on purpose: its id hashes 'more/animal_cat_chelsea.jpg'"},
    },
    {
        "path": "text_printed_page.png",
        "fields": ("objects", "attributes", "relations", "text"),
        "objects": (
            ("page", "page", (0, 0, 384, 191), (("white", "color"), ("printed", "state"))),
        ),
        "relations": (),
        "text": (
            ("heading", "Region-based segmentation", (5, 12, 293, 34), "page"),
            ("line_1", "Let us first determine markers of the coins and the", (5, 49, 378, 66), "page"),
            ("line_2", "background. These markers are pixels that we can label", (5, 65, 379, 81), "page"),
            ("line_3", "unambiguously as either object or background. Here,", (5, 82, 378, 99), "page"),
            ("line_4", "the markers are found at the two extreme parts of the", (5, 99, 378, 116), "page"),
            ("line_5", "histogram of grey values:", (5, 117, 172, 136), "page"),
            ("code", ">>> markers = np.zeros_like(coins)", (17, 169, 241, 191), "page"),
        ),
        "meta": {"scene": "document", "note": "one text region per printed line; a line cut by the bottom "
                 "edge is left out"},
    },
)

DEPTH_GRID = (108, 160)
"""Rows, columns of the stored motorcycle disparity (the full 500x741 map would weigh ~1 MB)."""


def _middlebury_disparity() -> tuple[np.ndarray, dict[str, Any]]:
    """Middlebury's ground-truth disparity for the motorcycle, holes filled, shrunk to ``DEPTH_GRID``."""
    import skimage.data
    from scipy import ndimage
    from skimage.transform import resize

    _left, _right, disp = skimage.data.stereo_motorcycle()
    disp = np.asarray(disp, dtype=np.float64)
    holes = ~np.isfinite(disp)
    # Fill unknown pixels (occlusions) with the nearest known disparity.
    _, (rows, cols) = ndimage.distance_transform_edt(holes, return_indices=True)
    filled = disp[rows, cols]
    small = resize(filled, DEPTH_GRID, order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)
    meta = {
        "depth_source": "Middlebury 2014 ground-truth disparity via skimage.data.stereo_motorcycle "
                        "(pixels of the 741 px wide left view; larger is nearer)",
        "depth_processing": f"{int(holes.sum())} unknown pixels filled with the nearest known value, "
                            f"resized to {DEPTH_GRID[1]}x{DEPTH_GRID[0]} with anti-aliasing",
    }
    return small, meta


def _masks(spec: dict[str, Any], height: int, width: int) -> dict[str, Any]:
    """Visible-pixel masks from the traced polygons, with occluders cut out."""
    from scene_graphs.model import Mask

    polygons = spec.get("polygons") or {}
    full = {oid: Mask.from_polygons([list(p) for p in polys], height, width).to_array()
            for oid, polys in polygons.items()}
    out = {}
    for oid, array in full.items():
        visible = array.copy()
        for front in spec.get("occluded_by", {}).get(oid, ()):
            visible &= ~full[front]
        out[oid] = Mask.from_array(visible)
    return out


def build_graph(spec: dict[str, Any]) -> Any:
    """One hand-annotated :class:`SceneGraph` from a ``FIXTURES`` entry."""
    from scene_graphs.ids import file_sha256, image_id
    from scene_graphs.model import Attribute, Box, DepthMap, Object, Relation, SceneGraph, TextRegion

    image_path = IMAGES / spec["path"]
    with Image.open(image_path) as im:
        width, height = im.size
    masks = _masks(spec, height, width)
    depth = None
    meta = dict(spec.get("meta") or {})
    provenance: dict[str, Any] = {
        "annotator": "hand",
        "method": "boxes, polygons, attributes, relations and text read off zoomed crops of the bundled image "
                  "and checked by drawing them back on it",
        "script": "scripts/make_assets.py",
    }
    if spec.get("depth") == "middlebury_disparity":
        values, depth_meta = _middlebury_disparity()
        depth = DepthMap(values, larger_is_nearer=True)
        meta.update(depth_meta)
        provenance["depth"] = "Middlebury 2014 stereo ground truth (structured light), not a model"
    objects = []
    for oid, label, box, attrs in spec["objects"]:
        b = Box.from_list(list(box))
        mask = masks.get(oid)
        if masks and mask is None:
            raise ValueError(f"{spec['path']}: object {oid!r} has no polygon, but other objects have masks")
        if mask is not None:
            mb = mask.bbox()
            if mask.area == 0 or not (mb.x1 >= b.x1 - 1 and mb.y1 >= b.y1 - 1 and mb.x2 <= b.x2 + 1
                                      and mb.y2 <= b.y2 + 1):
                raise ValueError(f"{spec['path']}: mask of {oid!r} spans {mb.to_list()}, outside its box {box}")
        obj_depth = None if depth is None else round(depth.median_in(b, width, height, mask), 3)
        objects.append(Object(oid, label, b, 1.0, mask, tuple(Attribute(n, c) for n, c in attrs), obj_depth))
    relations = [Relation(s, p, o, 1.0, "human") for s, p, o in spec["relations"]]
    text = [TextRegion(tid, t, Box.from_list(list(box)), 1.0, obj) for tid, t, box, obj in spec["text"]]
    return SceneGraph(
        image_id=image_id(image_path, IMAGES),
        width=width, height=height, path=spec["path"], sha256=file_sha256(image_path),
        objects=tuple(objects), relations=tuple(relations), text=tuple(text), depth=depth,
        fields=frozenset(spec["fields"]), provenance=provenance, meta=meta,
    )


def build_fixtures() -> int:
    """Write every ``FIXTURES`` graph to ``assets/scene_graphs/part-00000.jsonl``; returns the count."""
    from scene_graphs.io import write_graphs

    return write_graphs(FIXTURES_SHARD, [build_graph(spec) for spec in FIXTURES])


# ----------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", action="store_true", help="rebuild assets/images and SOURCES.md")
    parser.add_argument("--fixtures", action="store_true", help="rebuild assets/scene_graphs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    both = not (args.images or args.fixtures)
    if args.images or both:
        write_sources(build_images())
    if args.fixtures or both:
        n = build_fixtures()
        log.info("wrote %d hand-annotated graphs to %s", n, FIXTURES_SHARD)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
