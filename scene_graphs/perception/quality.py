"""The ``quality`` profile's models: an open-vocabulary image tagger, open-vocabulary detection and
SAM-2 box-prompted masks, all batched, on ``--device cuda`` in mixed precision when there is a GPU.

* ``tag`` (:class:`ImageTagger`): OpenCLIP zero-shot over a large vocabulary (``data/tags.txt``, or any
  file / list given as ``vocabulary``; RAM++'s tag list works as is). Each image gets the tags whose
  softmax probability over the vocabulary is at least ``min_score`` (at most ``top_k``), written to
  ``graph.meta["tags"]`` as ``[{"name", "score"}]``. Whole images are embedded ``batch_size`` at a time.
* ``ov_detect`` (:class:`OpenVocabDetector`): OWLv2 (transformers) asked for the image's tags plus the
  fixed ``vocabulary``. Images of a batch run in one forward pass; each image's queries are padded with
  empty queries (token 0), which OWLv2 masks out, so an image's boxes do not depend on its batch. Boxes
  are merged like the YOLO detector's (class-agnostic NMS, ``conf``, ``max_objects``) and the search is
  recorded as evidence (:mod:`.evidence`) with the queried vocabulary.
* ``sam2`` (:class:`BoxSegmenter`): SAM 2.1 (transformers ``Sam2Model``) prompted with every object's
  box, one forward pass per batch (boxes padded with copies of the last box, whose masks are dropped).

``depth`` uses Depth Anything V2 large and ``clip_attributes`` / ``clip_relations`` the CLIP checks of
:mod:`.attributes` / :mod:`.relations` (see :mod:`.profiles`).

Every model resolves through :mod:`.weights` (explicit path, ``$MMGEN_WEIGHTS_DIR``, the user cache,
the Hugging Face cache, then the library's own download). ``random_init=True`` builds the real
architecture from its configuration with random weights (no files needed): for tests and timing on
machines without the weights; its output is noise and the provenance says ``random-init``.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

import numpy as np

from ..model import Box, Mask, SceneGraph
from .attributes import encode_text_trimmed, load_clip
from .base import Annotator, AnnotatorError
from .detect import Detection, merge_detections, read_vocabulary
from .evidence import FLOOR, search_record
from .images import ImageItem
from .weights import download_failed

log = logging.getLogger("scene_graphs.perception.quality")

TAG_PROMPT = "a photo of a {tag}"
DEFAULT_TAGS = "tags.txt"


def default_tag_vocabulary() -> list[str]:
    """The packaged open vocabulary (``scene_graphs/perception/data/tags.txt``)."""
    text = resources.files(__package__).joinpath("data", DEFAULT_TAGS).read_text(encoding="utf-8")
    return read_vocabulary([line.split("#", 1)[0] for line in text.splitlines()])


def autocast(device: str, enabled: bool) -> ContextManager[Any]:
    """bfloat16 autocast on CUDA when ``enabled`` (mixed precision); a no-op on the CPU."""
    if not enabled or not device.startswith("cuda"):
        return nullcontext()
    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16)


def load_hf(stage: Annotator, model_name: str, load: Callable[[str], tuple[Any, Any]],
            build_random: Callable[[], tuple[Any, Any]]) -> tuple[Any, Any]:
    """(model, processor) of a Hugging Face model: random-init from its config, or ``load(source)`` on the
    resolved snapshot / hub id (a failed download becomes one :class:`MissingWeightsError`)."""
    if stage.options["random_init"]:
        import torch

        torch.manual_seed(0)
        return build_random()
    resolved = stage.resolve_weights(model_name)
    source = resolved.ref if resolved.origin == "download" else str(resolved.path)
    try:
        return load(str(source))
    except OSError as exc:
        if resolved.origin == "download":
            raise download_failed(resolved, exc) from exc
        raise


def random_config(stage: Annotator, config_class: str, real: Callable[[], Any]) -> Any:
    """The configuration a ``random_init`` stage builds: the real model's (``real()``), or the Hugging Face
    ``config.json`` named by the stage's ``random_init_config`` option (same classes, other sizes)."""
    path = stage.options.get("random_init_config") or ""
    if not path:
        return real()
    import transformers

    p = Path(path).expanduser()
    if not p.is_file():
        raise AnnotatorError(f"stage {stage.name!r}: random_init_config {p} is not a file")
    return getattr(transformers, config_class).from_json_file(str(p))


class _RandomInitProvenance(Annotator):
    """Provenance of a stage that may run with random weights."""

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        if self.options.get("random_init") and not prov["models"]:
            prov["models"] = [{"model": self.options["model"], "file": None, "sha256": None, "origin": "random-init"}]
        return prov


# --------------------------------------------------------------------------- tagger
class ImageTagger(_RandomInitProvenance):
    """Writes ``meta["tags"]``: open-vocabulary tags of the whole image (CLIP zero-shot)."""

    name = "tag"
    fills: frozenset[str] = frozenset()
    requires = {"torch": "torch", "open_clip": "open_clip_torch"}
    distributions = ("open_clip_torch", "torch")
    model_choices = ("clip-vit-b-32",)
    defaults = {
        "model": "clip-vit-b-32",
        "vocabulary": "",
        "min_score": 0.02,
        "top_k": 16,
        "batch_size": 32,
        "random_init": False,
    }

    def _load(self, device: str) -> None:
        import torch

        vocab = self.options["vocabulary"]
        self.vocabulary = read_vocabulary(vocab) if vocab else default_tag_vocabulary()
        if not self.vocabulary:
            raise AnnotatorError("stage 'tag': the vocabulary is empty")
        self.model, self.preprocess, tokenizer = load_clip(self, self.options["model"], device,
                                                           self.options["random_init"])
        with torch.inference_mode():
            prompts = [TAG_PROMPT.format(tag=t) for t in self.vocabulary]
            feats = [encode_text_trimmed(self.model, tokenizer(prompts[s:s + 256]).to(device)).float()
                     for s in range(0, len(prompts), 256)]
        text = torch.cat(feats)
        self.text = text / text.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        prov["prompt"] = TAG_PROMPT
        prov["vocabulary_size"] = len(getattr(self, "vocabulary", ()))
        return prov

    def tags(self, batch: Sequence[ImageItem]) -> list[list[dict[str, Any]]]:
        """Tags (name, score) per image, best first (ties by name)."""
        import torch
        from PIL import Image

        out: list[list[dict[str, Any]]] = []
        scale = self.model.logit_scale.exp().float()
        step = max(1, int(self.options["batch_size"]))
        for s in range(0, len(batch), step):
            x = torch.stack([self.preprocess(Image.fromarray(it.pixels)) for it in batch[s:s + step]]).to(self.device)
            with torch.inference_mode():
                f = self.model.encode_image(x).float()
                f = f / f.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                probs = torch.softmax(scale * f @ self.text.T, dim=-1).cpu().numpy().astype(np.float64)
            for p in probs:
                ranked = sorted(((round(float(v), 4), t) for t, v in zip(self.vocabulary, p)
                                 if v >= self.options["min_score"]), key=lambda t: (-t[0], t[1]))
                out.append([{"name": t, "score": v} for v, t in ranked[:int(self.options["top_k"])]])
        return out

    def process(self, batch: Sequence[ImageItem], graphs: Sequence[SceneGraph]) -> list[SceneGraph]:
        return [self.stamp(g, meta={**g.meta, "tags": tags}) for g, tags in zip(graphs, self.tags(batch))]


# --------------------------------------------------------------------------- OWLv2
OWLV2_QUERY_TOKENS = 16
"""OWLv2's text context (``max_position_embeddings`` of its text model)."""


def owlv2_base_config(image_size: int = 960) -> Any:
    """The configuration of OWLv2 base/16 (``google/owlv2-base-patch16-ensemble``): CLIP B/16 towers, 960 px
    input; ``image_size`` changes only the input side (and so the number of patches)."""
    from transformers import Owlv2Config

    return Owlv2Config(
        text_config={"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8,
                     "max_position_embeddings": OWLV2_QUERY_TOKENS},
        vision_config={"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                       "num_attention_heads": 12, "image_size": image_size, "patch_size": 16},
        projection_dim=512)


def owlv2_random(config: Any) -> tuple[Any, Any]:
    """OWLv2 with random weights from ``config`` and its processor, built offline: the image processor from code
    and OpenCLIP's bundled BPE tokenizer (the CLIP vocabulary OWLv2 uses; 0 pads, as OWLv2's ``!`` does)."""
    import open_clip
    from transformers import Owlv2ForObjectDetection, Owlv2ImageProcessor

    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    context = int(config.text_config.max_position_embeddings)

    def tokenize(texts: Sequence[str]) -> Any:
        return tokenizer(list(texts), context_length=context)

    model = Owlv2ForObjectDetection(config)
    _spread_random_heads(model)
    side = int(config.vision_config.image_size)
    return model, (Owlv2ImageProcessor(size={"height": side, "width": side}), tokenize)


def _spread_random_heads(model: Any, std: float = 0.02) -> None:
    """transformers leaves OWLv2's prediction heads at unit-variance weights, which pushes every random box
    into a corner (zero width); the usual ``initializer_range`` keeps random boxes near their patches, so the
    stages after detection get boxes to work on (plumbing and timing only)."""
    import torch

    with torch.no_grad():
        for head in (model.box_head, model.class_head, model.objectness_head):
            for layer in head.modules():
                if isinstance(layer, torch.nn.Linear):
                    layer.weight.normal_(0.0, std)
                    if layer.bias is not None:
                        layer.bias.zero_()


def owlv2_pretrained(source: str) -> tuple[Any, Any]:
    """OWLv2 and its (image processor, tokenize) from a snapshot folder or hub id."""
    from transformers import Owlv2ForObjectDetection, Owlv2Processor

    processor = Owlv2Processor.from_pretrained(source)

    def tokenize(texts: Sequence[str]) -> Any:
        return processor.tokenizer(list(texts), padding="max_length", max_length=OWLV2_QUERY_TOKENS,
                                   truncation=True, return_tensors="pt")["input_ids"]

    return Owlv2ForObjectDetection.from_pretrained(source), (processor.image_processor, tokenize)


class OpenVocabDetector(_RandomInitProvenance):
    """Fills ``objects`` with OWLv2 boxes for the image's tags and a fixed vocabulary."""

    name = "ov_detect"
    fills = frozenset({"objects"})
    requires = {"torch": "torch", "transformers": "transformers", "torchvision": "torchvision"}
    distributions = ("transformers", "torch", "torchvision")
    model_choices = ("owlv2-base",)
    defaults = {
        "model": "owlv2-base",
        "vocabulary": "",
        "use_tags": True,
        "conf": 0.2,
        "nms_iou": 0.5,
        "max_objects": 50,
        "min_side": 2.0,
        "image_size": 0,
        "batch_size": 4,
        "mixed_precision": True,
        "random_init": False,
        "random_init_config": "",
    }

    @cached_property
    def fixed(self) -> list[str]:
        """The fixed vocabulary (asked for in every image)."""
        return read_vocabulary(self.options["vocabulary"]) if self.options["vocabulary"] else []

    def _load(self, device: str) -> None:
        if not self.fixed and not self.options["use_tags"]:
            raise AnnotatorError("stage 'ov_detect': give a vocabulary or keep use_tags on (run the tag stage)")
        size = int(self.options["image_size"])
        if size and size < 32:
            raise AnnotatorError("stage 'ov_detect': image_size must be 0 (the model's own) or at least 32")
        self.model, (self.image_processor, self.tokenize) = load_hf(
            self, self.options["model"], owlv2_pretrained,
            lambda: owlv2_random(random_config(self, "Owlv2Config", lambda: owlv2_base_config(size or 960))))
        native = int(self.model.config.vision_config.image_size)
        if size and size != native:
            self.image_processor.size = {"height": size, "width": size}
        self.interpolate = bool(size) and size != native
        self.model.eval().to(device)

    def queries(self, graph: SceneGraph) -> list[str]:
        """What to look for in one image: the fixed vocabulary, then its tags (no repeats)."""
        if not self.options["use_tags"]:
            return list(self.fixed)
        if "tags" not in graph.meta and not self.fixed:
            raise AnnotatorError(f"stage 'ov_detect' asks for the image's tags but graph {graph.image_id} has none "
                                 "(run the tag stage first, or give a vocabulary)")
        return read_vocabulary([*self.fixed, *(t["name"] for t in graph.meta.get("tags", ()))])

    def detect(self, batch: Sequence[ImageItem], queries: Sequence[list[str]]) -> list[list[Detection]]:
        """Candidate boxes (pixels of the original frame) per image, down to the evidence floor."""
        import torch

        out: list[list[Detection]] = []
        step = max(1, int(self.options["batch_size"]))
        for s in range(0, len(batch), step):
            items, qs = batch[s:s + step], queries[s:s + step]
            width = max(1, max(len(q) for q in qs))
            texts = [t for q in qs for t in [*q, *([""] * (width - len(q)))]]
            ids = self.tokenize(texts)
            ids[[i for i, t in enumerate(texts) if not t]] = 0  # OWLv2 masks queries starting with token 0
            pixels = self.image_processor(images=[it.pixels for it in items], return_tensors="pt")["pixel_values"]
            with torch.inference_mode(), autocast(self.device, self.options["mixed_precision"]):
                res = self.model(input_ids=ids.to(self.device), attention_mask=(ids > 0).long().to(self.device),
                                 pixel_values=pixels.to(self.device), interpolate_pos_encoding=self.interpolate)
            scores = torch.sigmoid(res.logits.float()).cpu().numpy()
            boxes = res.pred_boxes.float().cpu().numpy()
            for it, q, sc, bx in zip(items, qs, scores, boxes):
                out.append(owl_detections(sc[:, :len(q)], bx, q, it.width, it.height, self.options["model"],
                                          min(FLOOR, self.options["conf"])))
        return out

    def process(self, batch: Sequence[ImageItem], graphs: Sequence[SceneGraph]) -> list[SceneGraph]:
        for g in graphs:
            if g.objects:
                raise AnnotatorError(f"stage 'ov_detect': graph {g.image_id} already has objects (run detect or "
                                     "ov_detect, not both)")
        queries = [self.queries(g) for g in graphs]
        out = []
        for g, q, cands in zip(graphs, queries, self.detect(batch, queries)):
            o = self.options
            objects = merge_detections(cands, g.width, g.height, nms_iou=o["nms_iou"], conf=o["conf"],
                                       max_objects=int(o["max_objects"]), min_side=o["min_side"])
            search = search_record(self.name, q, o["conf"], [(d.label, Box(*d.box), d.score) for d in cands],
                                   objects, min(FLOOR, o["conf"]))
            evidence = tuple(e for e in g.evidence if e.annotator != self.name) + (search,)
            out.append(self.stamp(g, objects=tuple(objects), evidence=evidence))
        return out


def owl_detections(scores: np.ndarray, boxes: np.ndarray, labels: Sequence[str], width: int,
                   height: int, model: str = "owlv2-base", floor: float = FLOOR) -> list[Detection]:
    """OWLv2 patches -> candidates: each patch's best query, if it scores at least ``floor``.
    OWLv2 boxes are (cx, cy, w, h) relative to the square padded input, whose side is the longer image side."""
    if not labels or scores.size == 0:
        return []
    side = float(max(width, height))
    best = scores.argmax(axis=1)
    out = []
    for (cx, cy, w, h), k, row in zip(boxes, best, scores):
        if row[k] < floor or not np.isfinite([cx, cy, w, h]).all():
            continue
        box = ((cx - w / 2) * side, (cy - h / 2) * side, (cx + w / 2) * side, (cy + h / 2) * side)
        out.append(Detection(tuple(float(v) for v in box), float(row[k]), labels[int(k)], model))
    return out


# --------------------------------------------------------------------------- SAM 2
def sam2_config(model: str) -> Any:
    """The configuration of SAM 2.1 ``hiera-tiny`` (transformers' default ``Sam2Config``) or ``hiera-large``."""
    from transformers import Sam2Config, Sam2HieraDetConfig, Sam2VisionConfig

    if model == "sam2.1-hiera-tiny":
        return Sam2Config()
    if model == "sam2.1-hiera-large":
        hiera = {"hidden_size": 144, "num_attention_heads": 2, "blocks_per_stage": [2, 6, 36, 4],
                 "embed_dim_per_stage": [144, 288, 576, 1152], "num_attention_heads_per_stage": [2, 4, 8, 16],
                 "window_size_per_stage": [8, 4, 16, 8], "global_attention_blocks": [23, 33, 43],
                 "window_positional_embedding_background_size": [7, 7]}
        vision = Sam2VisionConfig(backbone_config=Sam2HieraDetConfig(**hiera),
                                  backbone_channel_list=[1152, 576, 288, 144])
        return Sam2Config(vision_config=vision)
    raise AnnotatorError(f"stage 'sam2': no configuration for {model!r}")


def sam2_random(config: Any) -> tuple[Any, Any]:
    """SAM 2 with random weights from ``config``, and a processor for its input side."""
    from transformers import Sam2ImageProcessor, Sam2Model, Sam2Processor

    side = int(config.prompt_encoder_config.image_size)
    return Sam2Model(config), Sam2Processor(image_processor=Sam2ImageProcessor(size={"height": side, "width": side}))


def sam2_pretrained(source: str) -> tuple[Any, Any]:
    from transformers import Sam2Model, Sam2Processor

    return Sam2Model.from_pretrained(source), Sam2Processor.from_pretrained(source)


class BoxSegmenter(_RandomInitProvenance):
    """Fills ``masks``: SAM 2.1 prompted with each object's box."""

    name = "sam2"
    fills = frozenset({"masks"})
    needs = frozenset({"objects"})
    requires = {"torch": "torch", "transformers": "transformers"}
    distributions = ("transformers", "torch")
    model_choices = ("sam2.1-hiera-tiny", "sam2.1-hiera-large")
    defaults = {
        "model": "sam2.1-hiera-tiny",
        "min_iou_score": 0.0,
        "batch_size": 4,
        "mixed_precision": True,
        "random_init": False,
        "random_init_config": "",
    }

    def _load(self, device: str) -> None:
        model = self.options["model"]
        self.model, self.processor = load_hf(
            self, model, sam2_pretrained, lambda: sam2_random(random_config(self, "Sam2Config", lambda: sam2_config(model))))
        self.model.eval().to(device)

    def masks(self, batch: Sequence[ImageItem], graphs: Sequence[SceneGraph]) -> list[list[Mask | None]]:
        """One mask (or None when SAM's own IoU estimate is under ``min_iou_score``) per object."""
        import torch

        out: list[list[Mask | None]] = [[] for _ in graphs]
        todo = [i for i, g in enumerate(graphs) if g.objects]
        step = max(1, int(self.options["batch_size"]))
        for s in range(0, len(todo), step):
            chunk = todo[s:s + step]
            width = max(len(graphs[i].objects) for i in chunk)
            boxes = [[o.box.to_list() for o in graphs[i].objects] for i in chunk]
            boxes = [b + [b[-1]] * (width - len(b)) for b in boxes]
            inputs = self.processor(images=[batch[i].pixels for i in chunk], input_boxes=boxes, return_tensors="pt")
            with torch.inference_mode(), autocast(self.device, self.options["mixed_precision"]):
                res = self.model(pixel_values=inputs["pixel_values"].to(self.device),
                                 input_boxes=inputs["input_boxes"].to(self.device), multimask_output=False)
            masks = self.processor.post_process_masks(res.pred_masks.float().cpu(), inputs["original_sizes"])
            ious = res.iou_scores.float().cpu().numpy()
            for i, m, iou in zip(chunk, masks, ious):
                for k in range(len(graphs[i].objects)):
                    keep = iou[k, 0] >= self.options["min_iou_score"] and bool(m[k, 0].any())
                    out[i].append(Mask.from_array(m[k, 0].numpy()) if keep else None)
        return out

    def process(self, batch: Sequence[ImageItem], graphs: Sequence[SceneGraph]) -> list[SceneGraph]:
        out = []
        for g, masks in zip(graphs, self.masks(batch, graphs)):
            objects = tuple(o if m is None else replace(o, mask=m) for o, m in zip(g.objects, masks))
            out.append(self.stamp(g, objects=objects))
        return out


# --------------------------------------------------------------------------- small random configurations
def small_random_configs(folder: str | Path) -> dict[str, str]:
    """``random_init_config`` files (stage name -> path, written into ``folder``) for ``ov_detect``, ``sam2``
    and ``depth``: the real configurations' classes with one to four narrow layers and small inputs, so the
    real loading and inference code runs in seconds on a CPU (tests and ``bench_perception.py --quick``).
    Their outputs are noise and their timings say nothing about the real models."""
    import json

    from .depth import depth_anything_v2_large_config

    out_dir = Path(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    narrow = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    owl = owlv2_base_config(64).to_dict()
    owl["text_config"].update(narrow)
    owl["vision_config"].update(narrow)
    owl["projection_dim"] = 32
    sam = sam2_config("sam2.1-hiera-tiny").to_dict()
    sam["vision_config"]["backbone_config"].update(image_size=[256, 256], blocks_per_stage=[1, 1, 2, 1],
                                                   global_attention_blocks=[3])
    sam["vision_config"]["backbone_feature_sizes"] = [[64, 64], [32, 32], [16, 16]]
    sam["prompt_encoder_config"]["image_size"] = 256
    depth = depth_anything_v2_large_config().to_dict()
    depth["backbone_config"].update(hidden_size=32, num_attention_heads=2, num_hidden_layers=4, intermediate_size=64,
                                    out_features=["stage1", "stage2", "stage3", "stage4"], out_indices=[1, 2, 3, 4])
    depth.update(fusion_hidden_size=16, head_hidden_size=8, neck_hidden_sizes=[8, 16, 32, 32],
                 reassemble_hidden_size=32)
    paths = {}
    for stage, config in (("ov_detect", owl), ("sam2", sam), ("depth", depth)):
        path = out_dir / f"{stage}.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        paths[stage] = str(path)
    return paths


__all__ = ["BoxSegmenter", "ImageTagger", "OpenVocabDetector", "default_tag_vocabulary", "small_random_configs"]
