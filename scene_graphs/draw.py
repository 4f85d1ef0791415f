"""Draw a scene graph over its image: boxes with labels and scores, translucent masks, relation arrows
with predicates, OCR regions and a depth inset.

Pure Pillow + numpy (no plotting library). Layers are chosen with ``show``; coordinates are the graph's
pixel frame (EXIF-oriented), so the image is EXIF-transposed before drawing and, when its size differs
from the graph's (a resized copy), stretched to it. ``max_side`` / ``min_side`` rescale the result so
big photos stay light and tiny ones stay legible.

``SceneGraph._repr_png_`` calls :func:`graph_png`, which looks for the image at the graph's path, then
under the roots registered with :func:`add_image_root` (``mmgen.open`` registers its output's root),
and draws on a plain canvas when it finds none.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from .model import Box, SceneGraph

log = logging.getLogger("scene_graphs.draw")

LAYERS = ("boxes", "masks", "labels", "relations", "depth", "text")
"""Every layer :func:`draw_graph` can draw, in drawing order of importance."""

ImageLike = Image.Image | np.ndarray | str | Path | None

PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
    (0, 0, 128), (128, 128, 128),
)
"""Distinct colours (Sasha Trubetskoy's list), one per object in graph order, cycling."""
RELATION_COLOR = (255, 255, 255)
TEXT_COLOR = (0, 229, 255)
CANVAS_COLOR = (96, 96, 96)
MASK_ALPHA = 110
# A perceptually ordered dark-to-bright ramp (black, purple, red, orange, yellow, white) for depth.
_DEPTH_STOPS = np.array([(0, 0, 4), (80, 18, 123), (183, 55, 121), (251, 136, 97), (252, 253, 191)], dtype=float)

_image_roots: list[Path] = []


def add_image_root(root: str | Path) -> None:
    """Let :func:`graph_png` (Jupyter display) find images whose graph paths are relative to ``root``."""
    p = Path(root)
    if p not in _image_roots:
        _image_roots.insert(0, p)


def object_color(index: int) -> tuple[int, int, int]:
    """The colour of the ``index``-th object of a graph."""
    return PALETTE[index % len(PALETTE)]


def _font_files() -> list[str]:
    """TrueType fonts with wide glyph coverage, when the system (or matplotlib's data) has one."""
    import importlib.util

    files = ["DejaVuSans.ttf"]  # Pillow looks in the system font folders
    spec = importlib.util.find_spec("matplotlib")
    for location in (spec.submodule_search_locations or []) if spec else []:
        files.append(str(Path(location) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"))
    return files


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    for name in _font_files():
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size)  # Pillow's own font (fewer glyphs)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def find_image(graph: SceneGraph, roots: Iterable[str | Path] = ()) -> Path | None:
    """The image file of ``graph``: its path as stored (absolute), else below each root in turn."""
    if not graph.path:
        return None
    rel = Path(graph.path)
    candidates = [rel] if rel.is_absolute() else [Path(r) / rel for r in (*roots, *_image_roots)]
    return next((c for c in candidates if c.is_file()), None)


def _load(image: ImageLike, graph: SceneGraph) -> Image.Image:
    """The image as RGB in the graph's frame (EXIF-transposed, stretched to the graph's size)."""
    if image is None:
        return Image.new("RGB", (graph.width, graph.height), CANVAS_COLOR)
    if isinstance(image, (str, Path)):
        with Image.open(image) as im:
            im.load()
            img = ImageOps.exif_transpose(im)
    elif isinstance(image, np.ndarray):
        img = Image.fromarray(image)
    else:
        img = ImageOps.exif_transpose(image)
    img = img.convert("RGB")
    if img.size != (graph.width, graph.height):
        log.debug("image is %dx%d, graph %s is %dx%d: stretching the image to the graph", *img.size,
                  graph.image_id, graph.width, graph.height)
        img = img.resize((graph.width, graph.height), Image.Resampling.BILINEAR)
    return img


def _scale_for(graph: SceneGraph, max_side: int | None, min_side: int | None) -> float:
    side = max(graph.width, graph.height)
    if max_side and side > max_side:
        return max_side / side
    if min_side and side < min_side:
        return min_side / side
    return 1.0


def _contrast(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``color``."""
    r, g, b = color
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def _tag(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fill: tuple[int, int, int],
         font: ImageFont.ImageFont | ImageFont.FreeTypeFont, bounds: tuple[int, int], above: bool = True) -> None:
    """A filled label with ``text`` whose lower-left (``above``) or upper-left corner is ``xy``."""
    l, t, r, b = draw.textbbox((0, 0), text, font=font)
    w, h = r - l + 4, b - t + 4
    x = min(max(0.0, xy[0]), max(0.0, bounds[0] - w))
    y = xy[1] - h if above else xy[1]
    if y < 0:
        y = xy[1] if above else 0.0
    y = min(y, max(0.0, bounds[1] - h))
    draw.rectangle((x, y, x + w, y + h), fill=fill)
    draw.text((x + 2 - l, y + 2 - t), text, fill=_contrast(fill), font=font)


def _arrow(draw: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float],
           color: tuple[int, int, int], width: int) -> None:
    dx, dy = end[0] - start[0], end[1] - start[1]
    length = math.hypot(dx, dy)
    draw.line((start, end), fill=(0, 0, 0), width=width + 2)
    draw.line((start, end), fill=color, width=width)
    if length < 1:
        return
    ux, uy = dx / length, dy / length
    head = min(length / 2, 4.0 * width + 6)
    left = (end[0] - head * ux + head * 0.5 * uy, end[1] - head * uy - head * 0.5 * ux)
    right = (end[0] - head * ux - head * 0.5 * uy, end[1] - head * uy + head * 0.5 * ux)
    draw.polygon((end, left, right), fill=color, outline=(0, 0, 0))


def depth_colors(values: np.ndarray, larger_is_nearer: bool) -> np.ndarray:
    """An ``(h, w, 3)`` uint8 rendering of a depth map: bright is near, dark is far, whatever the map's
    convention."""
    v = np.asarray(values, dtype=np.float32)
    near = v if larger_is_nearer else -v
    lo, hi = float(near.min()), float(near.max())
    t = (near - lo) / (hi - lo) if hi > lo else np.zeros_like(near)
    pos = t * (len(_DEPTH_STOPS) - 1)
    i = np.clip(pos.astype(int), 0, len(_DEPTH_STOPS) - 2)
    frac = (pos - i)[..., None]
    rgb = _DEPTH_STOPS[i] * (1 - frac) + _DEPTH_STOPS[i + 1] * frac
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def _draw_masks(canvas: Image.Image, graph: SceneGraph, scale: float) -> Image.Image:
    size = canvas.size
    overlay = np.zeros((size[1], size[0], 4), dtype=np.uint8)
    for i, obj in enumerate(graph.objects):
        if obj.mask is None:
            continue
        m = obj.mask.to_array()
        if m.shape != (size[1], size[0]):
            m = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)) > 0
        overlay[m] = (*object_color(i), MASK_ALPHA)
    return Image.alpha_composite(canvas, Image.fromarray(overlay, "RGBA"))


def _draw_depth_inset(canvas: Image.Image, graph: SceneGraph, font: ImageFont.ImageFont | ImageFont.FreeTypeFont
                      ) -> None:
    assert graph.depth is not None
    w, h = canvas.size
    inset_w = max(48, w // 4)
    inset_h = max(1, round(inset_w * h / w))
    rgb = depth_colors(graph.depth.values, graph.depth.larger_is_nearer)
    inset = Image.fromarray(rgb, "RGB").resize((inset_w, inset_h), Image.Resampling.BILINEAR)
    margin = max(4, w // 100)
    x, y = w - inset_w - margin, h - inset_h - margin
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((x - 2, y - 2, x + inset_w + 1, y + inset_h + 1), fill=(255, 255, 255))
    canvas.paste(inset, (x, y))
    _tag(draw, (x - 2, y - 2), "depth (bright = near)", (255, 255, 255), font, (w, h))


def _relations_to_draw(graph: SceneGraph, kept: set[str], min_score: float, limit: int) -> list:
    """The relations worth an arrow: between kept objects, one per pair of objects (the best scored;
    ``a left of b`` and ``b right of a`` would draw the same line twice), at most ``limit``."""
    rels = [r for r in graph.relations if r.subject in kept and r.object in kept and r.score >= min_score]
    rels.sort(key=lambda r: -r.score)  # stable: graph order among equal scores
    seen: set[frozenset[str]] = set()
    out = []
    for r in rels:
        pair = frozenset((r.subject, r.object))
        if pair not in seen:
            seen.add(pair)
            out.append(r)
    return out[:limit]


def draw_graph(graph: SceneGraph, image: ImageLike = None, show: Iterable[str] = LAYERS, *,
               max_side: int | None = None, min_side: int | None = None, max_relations: int = 40,
               min_score: float = 0.0) -> Image.Image:
    """``graph`` drawn over ``image`` (a PIL image, array, file path, or None for a plain canvas).

    ``show`` picks layers from :data:`LAYERS`. Objects (and their relations and text) scoring below
    ``min_score`` are left out; relations are drawn one per pair of objects (the best scored), at most
    ``max_relations`` of them, highest score first.
    Returns a new RGB image of the graph's size, rescaled by ``max_side`` / ``min_side``.
    """
    layers = set(show)
    unknown = layers - set(LAYERS)
    if unknown:
        raise ValueError(f"unknown layer(s) {sorted(unknown)}; choose from {', '.join(LAYERS)}")
    scale = _scale_for(graph, max_side, min_side)
    base = _load(image, graph)
    size = (max(1, round(graph.width * scale)), max(1, round(graph.height * scale)))
    if base.size != size:
        base = base.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BILINEAR)
    canvas = base.convert("RGBA")
    kept = {o.id for o in graph.objects if o.score >= min_score}
    if "masks" in layers:
        shown = graph.replace(objects=tuple(o for o in graph.objects if o.id in kept), relations=(), text=())
        canvas = _draw_masks(canvas, shown, scale)
    canvas = canvas.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    short = min(size)
    line = max(2, round(short / 250))
    font = _font(max(10, min(28, round(short / 40))))

    def sbox(b: Box) -> tuple[float, float, float, float]:
        return b.x1 * scale, b.y1 * scale, b.x2 * scale, b.y2 * scale

    if "boxes" in layers:
        for i, obj in enumerate(graph.objects):
            if obj.id in kept:
                draw.rectangle(sbox(obj.box), outline=object_color(i), width=line)
    if "text" in layers:
        for region in graph.text:
            if region.score >= min_score and (region.object is None or region.object in kept):
                box = sbox(region.box)
                draw.rectangle(box, outline=TEXT_COLOR, width=max(1, line - 1))
                words = region.text if len(region.text) <= 32 else region.text[:31] + "…"
                _tag(draw, (box[0], box[3]), f'"{words}"', TEXT_COLOR, font, size, above=False)
    if "relations" in layers:
        rels = _relations_to_draw(graph, kept, min_score, max_relations)
        by_id = graph.objects_by_id
        for r in rels:
            a = tuple(v * scale for v in by_id[r.subject].box.center)
            b = tuple(v * scale for v in by_id[r.object].box.center)
            _arrow(draw, a, b, RELATION_COLOR, max(1, line - 1))
        for r in rels:  # predicates on top of every arrow
            a = by_id[r.subject].box.center
            b = by_id[r.object].box.center
            mid = ((a[0] + b[0]) / 2 * scale, (a[1] + b[1]) / 2 * scale)
            _tag(draw, mid, r.predicate, (40, 40, 40), font, size)
    if "labels" in layers:
        for i, obj in enumerate(graph.objects):
            if obj.id in kept:
                x1, y1, _, _ = sbox(obj.box)
                _tag(draw, (x1, y1), f"{obj.label} {obj.score:.2f}", object_color(i), font, size)
    if "depth" in layers and graph.depth is not None:
        _draw_depth_inset(canvas, graph, font)
    return canvas


def graph_png(graph: SceneGraph, max_side: int = 1024) -> bytes:
    """PNG bytes of ``graph`` drawn over its image when it can be found (for Jupyter's ``_repr_png_``)."""
    path = find_image(graph)
    try:
        img = draw_graph(graph, path, max_side=max_side, min_side=256)
    except OSError as exc:  # unreadable image file: the graph alone
        log.debug("cannot read %s (%s): drawing on a plain canvas", path, exc)
        img = draw_graph(graph, None, max_side=max_side, min_side=256)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()
