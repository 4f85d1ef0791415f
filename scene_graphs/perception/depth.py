"""Monocular relative depth with transformers, and a depth summary per object.

Models (``model``): ``depth-anything-v2-small`` (default), ``depth-anything-v2-large`` (the quality
profile; CC-BY-NC-4.0, non-commercial) and ``dpt-hybrid-midas`` (MiDaS v3 hybrid),
both loaded with ``AutoModelForDepthEstimation`` / ``AutoImageProcessor`` from a local Hugging Face
snapshot or the hub. All predict relative *inverse* depth, so the map is stored with
``larger_is_nearer=True``.

* Each image is preprocessed alone (the processor keeps the aspect ratio, so sizes differ); images
  whose tensors have the same shape are stacked and run together, ``batch_size`` at a time.
* ``input_size`` (0 = the model's own, 518 for Depth Anything) sets the processor's target size.
* The predicted map covers the whole image. It is stored downsized so its longer side is at most
  ``map_max_side`` (area interpolation); ``0`` keeps the model's resolution.
* ``Object.depth`` is :meth:`~scene_graphs.model.DepthMap.median_in` of the stored map under the
  object's mask (its box when it has none), so anyone can recompute it from the saved graph.
* ``random_init=True`` builds the real Depth Anything V2 small or large architecture from its
  configuration with random weights (``random_init_config``: a ``config.json`` to build instead, for
  tests): for timing and tests on machines without the weights. Its output is noise; the provenance
  says ``random-init``.
* ``mixed_precision``: bfloat16 autocast on CUDA (the quality profile turns it on); no effect on the CPU.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..model import DepthMap, SceneGraph
from .base import Annotator, AnnotatorError
from .images import ImageItem
from .weights import download_failed

log = logging.getLogger("scene_graphs.perception.depth")

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def depth_anything_v2_small_config() -> Any:
    """The configuration of Depth Anything V2 small (ViT-S/14 DINOv2 backbone, DPT head)."""
    from transformers import DepthAnythingConfig, Dinov2Config

    backbone = Dinov2Config(hidden_size=384, num_attention_heads=6, num_hidden_layers=12, intermediate_size=1536,
                            patch_size=14, image_size=518, out_features=["stage3", "stage6", "stage9", "stage12"],
                            out_indices=[3, 6, 9, 12], reshape_hidden_states=False)
    return DepthAnythingConfig(backbone_config=backbone, fusion_hidden_size=64, head_hidden_size=32,
                               neck_hidden_sizes=[48, 96, 192, 384], reassemble_hidden_size=384,
                               reassemble_factors=[4, 2, 1, 0.5], depth_estimation_type="relative")


def depth_anything_v2_large_config() -> Any:
    """The configuration of Depth Anything V2 large (ViT-L/14 DINOv2 backbone, DPT head)."""
    from transformers import DepthAnythingConfig, Dinov2Config

    backbone = Dinov2Config(hidden_size=1024, num_attention_heads=16, num_hidden_layers=24, intermediate_size=4096,
                            patch_size=14, image_size=518, out_features=["stage5", "stage12", "stage18", "stage24"],
                            out_indices=[5, 12, 18, 24], reshape_hidden_states=False)
    return DepthAnythingConfig(backbone_config=backbone, fusion_hidden_size=256, head_hidden_size=32,
                               neck_hidden_sizes=[256, 512, 1024, 1024], reassemble_hidden_size=1024,
                               reassemble_factors=[4, 2, 1, 0.5], depth_estimation_type="relative")


RANDOM_INIT_CONFIGS = {"depth-anything-v2-small": depth_anything_v2_small_config,
                       "depth-anything-v2-large": depth_anything_v2_large_config}


def random_depth_config(model_name: str, path: str = "") -> Any:
    """The configuration a ``random_init`` depth stage builds: the real model's, or a Hugging Face
    ``config.json`` (``random_init_config``: same classes, other sizes, for tests)."""
    if not path:
        return RANDOM_INIT_CONFIGS[model_name]()
    from transformers import DepthAnythingConfig

    p = Path(path).expanduser()
    if not p.is_file():
        raise AnnotatorError(f"stage 'depth': random_init_config {p} is not a file")
    return DepthAnythingConfig.from_json_file(str(p))


def dpt_processor(size: int) -> Any:
    """The Depth Anything preprocessing: shorter side to ``size`` (multiple of 14), keep aspect, ImageNet norm."""
    from transformers import DPTImageProcessor

    return DPTImageProcessor(do_resize=True, size={"height": size, "width": size}, keep_aspect_ratio=True,
                             ensure_multiple_of=14, resample=3, do_rescale=True, do_normalize=True,
                             image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, do_pad=False)


def resize_map(values: np.ndarray, max_side: int) -> np.ndarray:
    """``values`` shrunk (area interpolation) so the longer side is at most ``max_side``; 0 = unchanged."""
    h, w = values.shape
    if max_side <= 0 or max(h, w) <= max_side:
        return values.astype(np.float32)
    import torch
    import torch.nn.functional as F

    scale = max_side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    t = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None, None]
    return F.interpolate(t, size=size, mode="area")[0, 0].numpy()


def with_object_depths(graph: SceneGraph, depth: DepthMap) -> tuple:
    """The graph's objects with ``depth`` set to the median of the map under mask (or box)."""
    return tuple(replace(o, depth=depth.median_in(o.box, graph.width, graph.height, o.mask)) for o in graph.objects)


class DepthEstimator(Annotator):
    """Fills ``depth``: a relative depth map per image and ``Object.depth`` per object."""

    name = "depth"
    fills = frozenset({"depth"})
    requires = {"torch": "torch", "transformers": "transformers"}
    distributions = ("transformers", "torch")
    model_choices = ("depth-anything-v2-small", "depth-anything-v2-large", "dpt-hybrid-midas")
    defaults = {
        "model": "depth-anything-v2-small",
        "input_size": 0,
        "map_max_side": 320,
        "batch_size": 4,
        "mixed_precision": False,
        "random_init": False,
        "random_init_config": "",
    }

    def _load(self, device: str) -> None:
        import torch
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        model_name = self.options["model"]
        size = int(self.options["input_size"])
        if size and size < 14:
            raise AnnotatorError("stage 'depth': input_size must be 0 (the model's own) or at least 14")
        if self.options["random_init"]:
            if model_name not in RANDOM_INIT_CONFIGS:
                raise AnnotatorError(f"stage 'depth': random_init is available for {', '.join(RANDOM_INIT_CONFIGS)} only")
            torch.manual_seed(0)
            self.model = AutoModelForDepthEstimation.from_config(random_depth_config(
                model_name, self.options["random_init_config"]))
            self.processor = dpt_processor(size or 518)
        else:
            resolved = self.resolve_weights(model_name)
            source = resolved.ref if resolved.origin == "download" else str(resolved.path)
            try:
                self.model = AutoModelForDepthEstimation.from_pretrained(source)
                self.processor = AutoImageProcessor.from_pretrained(source)
            except OSError as exc:
                if resolved.origin == "download":
                    raise download_failed(resolved, exc) from exc
                raise
            if size:
                self.processor.size = {"height": size, "width": size}
        self.model.eval().to(device)
        self.larger_is_nearer = True

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        if self.options["random_init"] and not prov["models"]:
            prov["models"] = [{"model": self.options["model"], "file": None, "sha256": None, "origin": "random-init"}]
        prov["larger_is_nearer"] = True
        return prov

    def predict(self, batch: Sequence[ImageItem]) -> list[np.ndarray]:
        """Depth maps (model resolution, float32) for a batch, in order."""
        import torch

        tensors = [self.processor(images=np.array(it.pixels), return_tensors="pt")["pixel_values"][0] for it in batch]
        maps: list[np.ndarray | None] = [None] * len(batch)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, t in enumerate(tensors):
            groups.setdefault(tuple(t.shape), []).append(i)
        step = max(1, int(self.options["batch_size"]))
        cast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.options["mixed_precision"]
                and self.device.startswith("cuda") else nullcontext())
        with torch.inference_mode(), cast:
            for indices in groups.values():
                for start in range(0, len(indices), step):
                    chunk = indices[start:start + step]
                    x = torch.stack([tensors[i] for i in chunk]).to(self.device)
                    pred = self.model(pixel_values=x).predicted_depth
                    if pred.ndim == 4:
                        pred = pred[:, 0]
                    for i, m in zip(chunk, pred.float().cpu().numpy()):
                        maps[i] = m
        return [m for m in maps if m is not None]

    def process(self, batch: Sequence[ImageItem], graphs: Sequence[SceneGraph]) -> list[SceneGraph]:
        out = []
        for graph, raw in zip(graphs, self.predict(batch)):
            values = resize_map(np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0), self.options["map_max_side"])
            depth = DepthMap(values, larger_is_nearer=True)
            out.append(self.stamp(graph, depth=depth, objects=with_object_depths(graph, depth)))
        return out
