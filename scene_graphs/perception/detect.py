"""Object detection with Ultralytics: a closed-set YOLO detector plus an optional open-vocabulary one.

* The closed-set model (default ``yolo11n``; any of its accepted files: ``.pt``, ``.onnx`` or the INT8
  ``.tflite`` that LiteRT runs) finds the 80 COCO classes.
* When ``open_vocab`` names a YOLO-World / YOLOE model and ``vocabulary`` lists class names (a file with
  one name per line, ``#`` comments allowed, or a comma-separated string), that model runs too with
  ``set_classes(vocabulary)``. Its weights are looked up like any other; when they are missing the
  stage logs a warning and goes on with the closed-set model alone.
* The boxes of all models are merged with **class-agnostic** NMS (``torchvision.ops.nms`` at
  ``nms_iou``): where two boxes overlap that much, the higher score wins whatever its label (this also
  drops the duplicate "truck" that YOLO sometimes puts on a bus). Then boxes scoring under ``conf``
  are dropped, the best ``max_objects`` kept, boxes are clipped to the image and those thinner than
  ``min_side`` pixels dropped.
* Images go to Ultralytics as BGR arrays of the EXIF-oriented frame, so the boxes it returns are
  already in the original image frame (Ultralytics undoes its own letterboxing).

Object ids are ``"0"``, ``"1"``, ... in order of decreasing score (ties by box position), so the same
image and weights always give the same ids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..model import Box, Object, SceneGraph
from ._ultralytics import load_yolo, ultralytics_device, weights_path
from .base import Annotator, AnnotatorError
from .images import ImageItem
from .weights import MissingWeightsError

log = logging.getLogger("scene_graphs.perception.detect")

OPEN_VOCAB_MODELS = ("yolov8s-worldv2", "yoloe-11s-seg")


@dataclass(frozen=True)
class Detection:
    """One candidate box before merging: pixels in the original frame."""

    box: tuple[float, float, float, float]
    score: float
    label: str
    model: str


def read_vocabulary(value: str | Sequence[str]) -> list[str]:
    """Class names from a file (one per line, ``#`` comments), a comma-separated string or a list;
    blank and repeated names dropped, order kept."""
    if isinstance(value, str):
        p = Path(value).expanduser()
        if value and (p.is_file() or p.suffix in {".txt", ".csv"}):
            if not p.is_file():
                raise AnnotatorError(f"vocabulary file {p} does not exist")
            lines = [line.split("#", 1)[0] for line in p.read_text(encoding="utf-8").splitlines()]
        else:
            lines = value.split(",")
    else:
        lines = list(value)
    seen: dict[str, None] = {}
    for name in lines:
        name = " ".join(str(name).split())
        if name:
            seen.setdefault(name, None)
    return list(seen)


def merge_detections(candidates: Sequence[Detection], width: int, height: int, *, nms_iou: float, conf: float,
                     max_objects: int, min_side: float) -> list[Object]:
    """Class-agnostic NMS over all candidates, score threshold, top-k, clipping; objects with ids."""
    kept = [d for d in candidates if d.score >= conf]
    if not kept:
        return []
    import torch
    from torchvision.ops import nms

    boxes = torch.tensor([d.box for d in kept], dtype=torch.float32)
    scores = torch.tensor([d.score for d in kept], dtype=torch.float32)
    keep = nms(boxes, scores, nms_iou).tolist()
    objects: list[tuple[float, tuple[float, ...], Detection, Box]] = []
    for i in keep:
        d = kept[i]
        box, _ = Box(*(float(v) for v in _ordered(d.box))).clip(width, height)
        if box.width < min_side or box.height < min_side:
            continue
        objects.append((d.score, tuple(box.to_list()), d, box))
    objects.sort(key=lambda t: (-t[0], t[1], t[2].label))
    return [Object(id=str(n), label=d.label, box=box, score=min(1.0, max(0.0, score)))
            for n, (score, _, d, box) in enumerate(objects[:max_objects])]


def _ordered(b: Sequence[float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in b)
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def detections_from_result(result: Any, model: str) -> list[Detection]:
    """Candidates from one Ultralytics ``Results``."""
    boxes = result.boxes
    if boxes is None or len(boxes) == 0:
        return []
    xyxy = boxes.xyxy.cpu().numpy().astype(np.float64)
    conf = boxes.conf.cpu().numpy().astype(np.float64)
    cls = boxes.cls.cpu().numpy().astype(int)
    names = result.names
    out = []
    for b, s, c in zip(xyxy, conf, cls):
        if np.isfinite(b).all():
            out.append(Detection(tuple(b.tolist()), float(s), str(names[int(c)]), model))
    return out


class Detector(Annotator):
    """Fills ``objects`` from YOLO (and an optional open-vocabulary YOLO-World / YOLOE)."""

    name = "detect"
    fills = frozenset({"objects"})
    requires = {"ultralytics": "ultralytics-opencv-headless", "torch": "torch", "torchvision": "torchvision"}
    distributions = ("ultralytics", "ultralytics-opencv-headless", "torch", "torchvision", "ai-edge-litert",
                     "onnxruntime")
    defaults = {
        "model": "yolo11n",
        "open_vocab": "",
        "vocabulary": "",
        "conf": 0.25,
        "iou": 0.7,
        "nms_iou": 0.7,
        "max_objects": 50,
        "imgsz": 640,
        "min_side": 2.0,
    }

    def model_names(self) -> list[str]:
        names = [self.options["model"]]
        if self.options["open_vocab"] and self.options["vocabulary"]:
            names.append(self.options["open_vocab"])
        return names

    def _load(self, device: str) -> None:
        if self.options["open_vocab"] and self.options["open_vocab"] not in OPEN_VOCAB_MODELS:
            raise AnnotatorError(f"stage 'detect': open_vocab must be one of {', '.join(OPEN_VOCAB_MODELS)}, "
                                 f"got {self.options['open_vocab']!r}")
        self.models: list[tuple[str, Any, dict[str, Any]]] = []
        name = self.options["model"]
        path, self.resolved[name] = weights_path(self.name, self.resolve_weights(name))
        self.models.append((name, load_yolo(path, "detect"), {"iou": self.options["iou"]}))
        ov = self.options["open_vocab"]
        if ov and self.options["vocabulary"]:
            vocabulary = read_vocabulary(self.options["vocabulary"])
            if not vocabulary:
                raise AnnotatorError("stage 'detect': the open-vocabulary vocabulary is empty")
            try:
                path, self.resolved[ov] = weights_path(self.name, self.resolve_weights(ov))
                model = load_yolo(path, "detect")
                model.set_classes(vocabulary)
            except MissingWeightsError as exc:
                self.resolved.pop(ov, None)
                log.warning("open-vocabulary detection is off: %s", exc)
            else:
                self.models.append((ov, model, {"iou": self.options["iou"]}))
                self.vocabulary = vocabulary
        elif ov:
            log.warning("open_vocab=%s is set but no vocabulary was given; it will not run", ov)
        self._device = ultralytics_device(device)

    def detect(self, batch: Sequence[ImageItem]) -> list[list[Detection]]:
        """Candidates of every model for each image (before merging)."""
        found: list[list[Detection]] = [[] for _ in batch]
        frames = [item.bgr for item in batch]
        for name, model, kw in self.models:
            results = model.predict(frames, conf=self.options["conf"], imgsz=self.options["imgsz"],
                                    max_det=max(self.options["max_objects"] * 2, 100), device=self._device,
                                    verbose=False, **kw)
            for i, r in enumerate(results):
                found[i].extend(detections_from_result(r, name))
        return found

    def process(self, batch: Sequence[ImageItem], graphs: Sequence[SceneGraph]) -> list[SceneGraph]:
        out = []
        for item, graph, cands in zip(batch, graphs, self.detect(batch)):
            if graph.objects:
                raise AnnotatorError(f"stage 'detect': graph {graph.image_id} already has objects")
            objects = merge_detections(cands, item.width, item.height, nms_iou=self.options["nms_iou"],
                                       conf=self.options["conf"], max_objects=self.options["max_objects"],
                                       min_side=self.options["min_side"])
            out.append(self.stamp(graph, objects=tuple(objects)))
        return out
