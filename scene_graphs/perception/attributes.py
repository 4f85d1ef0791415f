"""Object attributes: colour names from pixels, and CLIP zero-shot attributes over typed vocabularies.

**Colour** (:class:`ColorNamer`, no weights). The object's pixels (under its mask; without a mask,
its box shrunk by ``box_shrink`` on every side to leave out background) are sampled (at most
``max_pixels``, evenly spaced, so results are deterministic), converted to CIELAB
(``skimage.color.rgb2lab``) and each pixel is given the name of the nearest colour prototype by
CIEDE2000 distance (``skimage.color.deltaE_ciede2000``); pixels farther than ``max_distance`` from every
prototype stay unnamed. Each named pixel votes for its name; votes for the achromatic names (black,
white, gray) count ``achromatic_weight`` (default 0.5), because shadows, windows, tyres and
highlights are achromatic whatever colour people would call the object (a blue bus is a third dark
glass). A name's share is its votes over all votes (unnamed pixels vote for nothing but count in the
total); names with a share of at least ``min_fraction`` (default 0.08) become attributes (at most
``top_k``, largest share first) with the share as score. Shares are evidence, not claims: programs
state a colour only at a high share (their ``confident_score``) and read a far colour at a small share
(a white inside of a red cup, 0.11) as a sign that the object is multi-coloured, where "is it white?"
has no answer for the eye. Prototypes are a few sRGB shades per basic colour term (Berlin
& Kay's eleven) in :data:`COLOR_PROTOTYPES`.

**CLIP** (:class:`ClipAttributes`, OpenCLIP). Each object's crop (box padded by ``padding`` of its size,
at least ``min_side`` pixels) is embedded, batched; for each category in ``categories`` the crop is
compared with the prompts ``"a photo of a {word} {label}."`` of that category's words
(:data:`CLIP_VOCABULARY`) and the softmax over those words gives one probability per word. The best
word becomes an attribute when its probability reaches ``min_score`` and it is a real attribute word
(each list has a "none of these" word such as ``plain`` that absorbs crops without the property and
is never emitted). Colour is left to the pixel method unless ``color`` is listed in ``categories``.
Text embeddings are cached per (label, category).

**Label agreement** (``label_check``, default ``detect``: the annotator whose searched vocabulary the
labels compete with; empty turns it off). The same crop embeddings score each object's label against
the detector's vocabulary (prompt ensemble); an object whose label is not among CLIP's best
``label_top_k`` or lies more than ``label_margin`` logits below the best is demoted like an object one
more view did not see, and what CLIP said is recorded in the graph: see :mod:`.clip_check`. Graphs
without that annotator's search (imports, the ``quality`` profile) are left alone.

Both stages add attributes next to existing ones and never add a (name, category) pair twice.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from ..model import Attribute, Box, Object, SceneGraph
from . import clip_check
from .base import Annotator, AnnotatorError
from .images import ImageItem
from .weights import ResolvedWeights, download_failed

log = logging.getLogger("scene_graphs.perception.attributes")

COLOR_PROTOTYPES: Mapping[str, tuple[tuple[int, int, int], ...]] = MappingProxyType({
    "black": ((15, 15, 15), (45, 45, 48)),
    "white": ((250, 250, 250), (222, 224, 226)),
    "gray": ((85, 85, 85), (128, 128, 128), (175, 175, 175)),
    "red": ((200, 25, 25), (150, 20, 25), (235, 65, 55), (215, 30, 70)),
    "orange": ((245, 130, 30), (220, 105, 20), (250, 165, 70)),
    "yellow": ((250, 215, 40), (240, 235, 90), (205, 175, 30)),
    "green": ((40, 150, 50), (20, 90, 35), (120, 190, 70), (70, 200, 90), (50, 220, 60)),
    "blue": ((30, 70, 200), (20, 30, 100), (90, 150, 220), (40, 110, 170), (140, 190, 235), (10, 10, 230)),
    "purple": ((120, 40, 150), (75, 25, 100), (160, 110, 200)),
    "pink": ((240, 150, 180), (225, 90, 150), (250, 200, 210)),
    "brown": ((120, 75, 40), (80, 50, 30), (160, 110, 70), (145, 75, 25)),
})
"""Basic colour term -> sRGB prototypes (several shades each, light to dark)."""

ACHROMATIC = frozenset({"black", "white", "gray"})

CLIP_VOCABULARY: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "color": tuple(COLOR_PROTOTYPES),
    "material": ("wooden", "metal", "plastic", "glass", "fabric", "leather", "paper", "stone", "ceramic", "rubber"),
    "size": ("large", "small"),
    "state": ("open", "closed", "empty", "full", "wet", "broken", "dirty", "parked", "moving", "standing",
              "sitting", "lying"),
    "pattern": ("plain", "striped", "checkered", "spotted", "floral"),
})
"""Category -> words CLIP chooses among. Every word but the "none" words is in
:data:`scene_graphs.vocab.ATTRIBUTE_VOCABULARY` under the same category."""

NONE_WORDS = frozenset({"plain"})
"""Words that absorb crops without the property; never emitted as attributes."""

CLIP_PROMPT = "a photo of a {word} {label}."


def _add_attributes(obj: Object, new: Sequence[Attribute]) -> Object:
    have = {(a.name, a.category) for a in obj.attributes}
    extra = tuple(a for a in new if (a.name, a.category) not in have)
    return replace(obj, attributes=obj.attributes + extra) if extra else obj


# --------------------------------------------------------------------------- colour from pixels
class ColorNamer:
    """Nearest named colour per pixel in CIELAB (CIEDE2000); see the module docstring."""

    def __init__(self, prototypes: Mapping[str, Sequence[Sequence[int]]] = COLOR_PROTOTYPES) -> None:
        from skimage.color import rgb2lab

        self.names = [name for name, shades in prototypes.items() for _ in shades]
        rgb = np.array([shade for shades in prototypes.values() for shade in shades], dtype=np.float64) / 255.0
        self.lab = rgb2lab(rgb[None])[0]

    def name_pixels(self, rgb: np.ndarray, max_distance: float) -> tuple[np.ndarray, np.ndarray]:
        """For N x 3 uint8 pixels: index of the nearest name (-1 when farther than ``max_distance``) and distance."""
        from skimage.color import deltaE_ciede2000, rgb2lab

        if len(rgb) == 0:
            return np.zeros(0, dtype=int), np.zeros(0)
        rgb = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)
        # each distinct colour is measured once (a photo's object repeats about 40% of its sampled colours)
        keys = (rgb[:, 0].astype(np.int32) << 16) | (rgb[:, 1].astype(np.int32) << 8) | rgb[:, 2].astype(np.int32)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        lab = rgb2lab((rgb[first].astype(np.float64) / 255.0)[None])[0]
        n, p = len(lab), len(self.lab)
        dist = deltaE_ciede2000(np.repeat(lab, p, axis=0), np.tile(self.lab, (n, 1))).reshape(n, p)
        nearest = dist.argmin(axis=1)
        best = dist[np.arange(n), nearest]
        inverse = inverse.reshape(-1)
        return np.where(best <= max_distance, nearest, -1)[inverse], best[inverse]

    def colors(self, rgb: np.ndarray, *, max_distance: float, min_fraction: float, top_k: int,
               achromatic_weight: float = 0.5) -> list[tuple[str, float]]:
        """Colour names whose weighted share of the pixels is at least ``min_fraction``, with the shares."""
        idx, _ = self.name_pixels(rgb, max_distance)
        if len(idx) == 0:
            return []
        votes: dict[str, float] = {}
        for i in idx[idx >= 0]:
            name = self.names[i]
            votes[name] = votes.get(name, 0.0) + (achromatic_weight if name in ACHROMATIC else 1.0)
        total = sum(votes.values()) + float((idx < 0).sum())
        ranked = sorted(((v / total, name) for name, v in votes.items()), key=lambda t: (-t[0], t[1]))
        return [(name, share) for share, name in ranked if share >= min_fraction][:top_k]


def object_pixels(pixels: np.ndarray, obj: Object, *, max_pixels: int, box_shrink: float) -> np.ndarray:
    """Up to ``max_pixels`` RGB pixels of ``obj`` (under its mask, else its shrunk box), evenly spaced."""
    h, w = pixels.shape[:2]
    if obj.mask is not None:
        ys, xs = np.nonzero(obj.mask.to_array())
    else:
        b = obj.box
        dx, dy = b.width * box_shrink, b.height * box_shrink
        x1, x2 = int(np.floor(b.x1 + dx)), int(np.ceil(b.x2 - dx))
        y1, y2 = int(np.floor(b.y1 + dy)), int(np.ceil(b.y2 - dy))
        x1, y1 = max(0, min(x1, w - 1)), max(0, min(y1, h - 1))
        x2, y2 = max(x1 + 1, min(x2, w)), max(y1 + 1, min(y2, h))
        yy, xx = np.mgrid[y1:y2, x1:x2]
        ys, xs = yy.ravel(), xx.ravel()
    if len(ys) > max_pixels:
        pick = np.linspace(0, len(ys) - 1, max_pixels).astype(int)
        ys, xs = ys[pick], xs[pick]
    return pixels[ys, xs]


class ColorAttributes(Annotator):
    """Fills ``attributes`` with colour names measured on the object's pixels (no model)."""

    name = "color"
    fills = frozenset({"attributes"})
    needs = frozenset({"objects"})
    requires = {"skimage": "scikit-image"}
    distributions = ("scikit-image",)
    defaults = {
        "max_distance": 18.0,
        "min_fraction": 0.08,
        "achromatic_weight": 0.5,
        "top_k": 4,
        "max_pixels": 4096,
        "min_pixels": 16,
        "box_shrink": 0.15,
    }

    def _load(self, device: str) -> None:
        self.namer = ColorNamer()

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        prov["method"] = "nearest CIELAB prototype (CIEDE2000) per pixel, vote"
        return prov

    def colors_of(self, pixels: np.ndarray, obj: Object) -> list[Attribute]:
        o = self.options
        rgb = object_pixels(pixels, obj, max_pixels=o["max_pixels"], box_shrink=o["box_shrink"])
        if len(rgb) < o["min_pixels"]:
            return []
        found = self.namer.colors(rgb, max_distance=o["max_distance"], min_fraction=o["min_fraction"], top_k=o["top_k"],
                                  achromatic_weight=o["achromatic_weight"])
        return [Attribute(name, "color", round(frac, 4)) for name, frac in found]

    def process(self, batch: Sequence[ImageItem], graphs: Sequence[SceneGraph]) -> list[SceneGraph]:
        out = []
        for item, graph in zip(batch, graphs):
            objects = tuple(_add_attributes(o, self.colors_of(item.pixels, o)) for o in graph.objects)
            out.append(self.stamp(graph, objects=objects))
        return out


# --------------------------------------------------------------------------- CLIP
_CLIP_CACHE: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}

CLIP_ARCH = {"clip-vit-b-32": "ViT-B-32"}


def load_clip(stage: Annotator, model_name: str, device: str, random_init: bool) -> tuple[Any, Any, Any]:
    """(model, preprocess, tokenizer) for a CLIP spec, shared between stages in one process."""
    import open_clip

    arch = CLIP_ARCH.get(model_name)
    if arch is None:
        raise AnnotatorError(f"stage {stage.name!r}: unknown CLIP model {model_name!r}; choose {', '.join(CLIP_ARCH)}")
    if random_init:
        source = "random-init"
    else:
        resolved: ResolvedWeights = stage.resolve_weights(model_name)
        source = resolved.ref.split(":")[-1] if resolved.origin == "download" else str(resolved.path)  # type: ignore[union-attr]
    key = (arch, source, device)
    if key not in _CLIP_CACHE:
        import torch

        try:
            if random_init:
                torch.manual_seed(0)
            model, _, preprocess = open_clip.create_model_and_transforms(
                arch, pretrained=None if random_init else source, device=device)
        except (RuntimeError, OSError) as exc:
            if not random_init and resolved.origin == "download":
                raise download_failed(resolved, exc) from exc
            raise
        model.eval()
        _CLIP_CACHE[key] = (model, preprocess, open_clip.get_tokenizer(arch))
    return _CLIP_CACHE[key]


def crop_box(box: Box, width: int, height: int, padding: float, min_side: float) -> tuple[int, int, int, int]:
    """Integer crop around ``box``: padded by ``padding`` of its size, grown to ``min_side``, inside the image."""
    cx, cy = box.center
    w = max(box.width * (1 + 2 * padding), min_side)
    h = max(box.height * (1 + 2 * padding), min_side)
    x1, x2 = int(max(0, np.floor(cx - w / 2))), int(min(width, np.ceil(cx + w / 2)))
    y1, y2 = int(max(0, np.floor(cy - h / 2))), int(min(height, np.ceil(cy + h / 2)))
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


def encode_text_trimmed(model: Any, tokens: Any) -> Any:
    """``model.encode_text(tokens)`` computed on the tokens up to the longest prompt's end instead of
    the full 77-token context: CLIP's text tower is causal (a position attends only to earlier ones) and
    pools at the end-of-text token, so the padding after it changes nothing, and short prompts cost
    about a sixth. Models of another shape (no causal mask, pooling at the last position) get
    ``encode_text`` as it is."""
    from open_clip.transformer import text_global_pool

    mask = getattr(model, "attn_mask", None)
    pool = getattr(model, "text_pool_type", None)
    if (mask is None or pool not in {"argmax", "eos"} or not hasattr(model, "token_embedding")
            or not getattr(model.transformer, "batch_first", True)):
        return model.encode_text(tokens)
    used = (tokens != 0).any(dim=0).nonzero()
    length = int(used.max()) + 1 if len(used) else 1
    if length >= tokens.shape[1]:
        return model.encode_text(tokens)
    tokens = tokens[:, :length]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:length].to(cast)
    x = model.ln_final(model.transformer(x, attn_mask=mask[:length, :length]))
    x = text_global_pool(x, tokens, pool, eos_token_id=getattr(model, "text_eos_id", None))
    if model.text_projection is not None:
        x = model.text_projection(x) if callable(model.text_projection) else x @ model.text_projection
    return x


class ClipScorer:
    """Image crops and prompts through one OpenCLIP model (batched; text embeddings cached)."""

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any, device: str, batch_size: int) -> None:
        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        self.device, self.batch_size = device, max(1, batch_size)
        self._text: dict[tuple[str, ...], Any] = {}

    def embed_images(self, crops: Sequence[np.ndarray]) -> Any:
        import torch
        from PIL import Image

        feats = []
        with torch.inference_mode():
            for s in range(0, len(crops), self.batch_size):
                x = torch.stack([self.preprocess(Image.fromarray(c)) for c in crops[s:s + self.batch_size]])
                f = self.model.encode_image(x.to(self.device)).float()
                feats.append(f / f.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        return torch.cat(feats) if feats else torch.zeros(0)

    def embed_texts(self, prompts: Sequence[str]) -> Any:
        import torch

        key = tuple(prompts)
        if key not in self._text:
            with torch.inference_mode():
                f = encode_text_trimmed(self.model, self.tokenizer(list(prompts)).to(self.device)).float()
            self._text[key] = f / f.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return self._text[key]

    def probabilities(self, image_feat: Any, prompts: Sequence[str]) -> np.ndarray:
        """Softmax over ``prompts`` (CLIP's logit scale) for one image embedding."""
        import torch

        scale = self.model.logit_scale.exp().float() if hasattr(self.model, "logit_scale") else torch.tensor(100.0)
        with torch.inference_mode():
            logits = scale * image_feat[None] @ self.embed_texts(prompts).T
            return torch.softmax(logits[0], dim=-1).cpu().numpy().astype(np.float64)


class ClipAttributes(Annotator):
    """Fills ``attributes`` with CLIP zero-shot choices per category (material, size, state, pattern...)."""

    name = "clip_attributes"
    fills = frozenset({"attributes"})
    needs = frozenset({"objects"})
    requires = {"torch": "torch", "open_clip": "open_clip_torch"}
    distributions = ("open_clip_torch", "torch")
    model_choices = tuple(CLIP_ARCH)
    default_optional = True
    defaults = {
        "model": "clip-vit-b-32",
        "categories": ("material", "size", "state", "pattern"),
        "min_score": 0.3,
        "padding": 0.1,
        "min_side": 16.0,
        "batch_size": 32,
        "random_init": False,
        "label_check": "detect",
        "label_top_k": clip_check.TOP_K,
        "label_margin": clip_check.MARGIN,
        "label_prompts": clip_check.PROMPTS,
    }

    def _load(self, device: str) -> None:
        unknown = [c for c in self.options["categories"] if c not in CLIP_VOCABULARY]
        if unknown:
            raise AnnotatorError(f"stage 'clip_attributes': unknown categories {unknown}; known: {list(CLIP_VOCABULARY)}")
        model, preprocess, tokenizer = load_clip(self, self.options["model"], device, self.options["random_init"])
        self.scorer = ClipScorer(model, preprocess, tokenizer, device, self.options["batch_size"])
        try:
            self.label_checker = clip_check.LabelChecker(self.scorer, self.options["label_prompts"],
                                                         self.options["label_top_k"], self.options["label_margin"])
        except ValueError as exc:
            raise AnnotatorError(f"stage 'clip_attributes': {exc}") from None

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        if self.options["random_init"] and not prov["models"]:
            prov["models"] = [{"model": self.options["model"], "file": None, "sha256": None, "origin": "random-init"}]
        prov["prompt"] = CLIP_PROMPT
        return prov

    def attributes_for(self, feat: Any, label: str) -> list[Attribute]:
        out = []
        for category in self.options["categories"]:
            words = CLIP_VOCABULARY[category]
            probs = self.scorer.probabilities(feat, [CLIP_PROMPT.format(word=w, label=label) for w in words])
            best = int(np.argmax(probs))
            if probs[best] >= self.options["min_score"] and words[best] not in NONE_WORDS:
                out.append(Attribute(words[best], category, round(float(probs[best]), 4)))
        return out

    def process(self, batch: Sequence[ImageItem], graphs: Sequence[SceneGraph]) -> list[SceneGraph]:
        crops, where = [], []
        for gi, (item, graph) in enumerate(zip(batch, graphs)):
            for oi, o in enumerate(graph.objects):
                x1, y1, x2, y2 = crop_box(o.box, item.width, item.height, self.options["padding"], self.options["min_side"])
                crops.append(np.ascontiguousarray(item.pixels[y1:y2, x1:x2]))
                where.append((gi, oi))
        feats = self.scorer.embed_images(crops) if crops else []
        new: dict[tuple[int, int], list[Attribute]] = {}
        for (gi, oi), feat in zip(where, feats):
            new[(gi, oi)] = self.attributes_for(feat, graphs[gi].objects[oi].label)
        out = []
        for gi, graph in enumerate(graphs):
            rows = [k for k, (g, _) in enumerate(where) if g == gi]
            objects, record = self.check_labels(graph, feats[rows] if rows else None)
            objects = tuple(_add_attributes(o, new.get((gi, oi), [])) for oi, o in enumerate(objects))
            stamped = self.stamp(graph, objects=objects)
            if record is not None:
                stamped = _with_stage_record(stamped, self.name, "label_check", record)
            out.append(stamped)
        return out

    def check_labels(self, graph: SceneGraph, feats: Any) -> tuple[tuple[Object, ...], dict[str, Any] | None]:
        """``graph``'s objects after CLIP's label agreement (crop embeddings ``feats``, one row per
        object) and the evidence record; unchanged objects and None when the check does not apply."""
        against = self.options["label_check"]
        vocabulary = clip_check.searched_vocabulary(graph, against) if against else None
        if vocabulary is None or feats is None or not graph.objects:
            return graph.objects, None
        verdicts = self.label_checker.verdicts(feats, [o.label for o in graph.objects], vocabulary)
        views = clip_check.views_so_far(graph)
        objects, per_object = clip_check.apply_verdicts(graph.objects, verdicts, views)
        return objects, clip_check.label_check_record(against, self.label_checker.top_k, self.label_checker.margin,
                                                      views, per_object)


def _with_stage_record(graph: SceneGraph, stage: str, key: str, record: Mapping[str, Any]) -> SceneGraph:
    """``graph`` with ``record`` under ``provenance["stages"][stage][key]`` (this graph's own copy)."""
    prov = dict(graph.provenance)
    stages = dict(prov.get("stages", {}))
    stages[stage] = {**stages.get(stage, {}), key: dict(record)}
    prov["stages"] = stages
    return graph.replace(provenance=prov)
