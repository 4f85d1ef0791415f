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
* **Test-time augmentation** (``flip``, off by default because the segmenter already looks at the
  mirrored image, see :mod:`.segment`): each model also sees the image mirrored left to right, its boxes
  mirrored back. The two views are fused per label (:func:`fuse_views`): a box of one
  view pairs with the same-label box of the other view of highest IoU (at least ``view_iou``, one to
  one, best scores first); the fused score is the *mean over the views*, a view that did not see the
  object counting 0, and the box is the score-weighted mean. So an object only one view sees keeps at
  most half its score: agreement comes before confidence (the segmenter adds its own view, see
  :mod:`.segment`). The views used are listed in the provenance (``views``).
* **Evidence** (:mod:`.evidence`): the models return candidates down to ``floor`` (0.05); after fusing,
  those under ``conf`` that are not a reported object seen again are summarised per label in the
  graph's ``evidence`` (a :class:`~scene_graphs.model.Search` named ``detect`` whose vocabulary is
  every class the models can report).
* Images go to Ultralytics as BGR arrays of the EXIF-oriented frame, so the boxes it returns are
  already in the original image frame (Ultralytics undoes its own letterboxing).
* **Start-up**: torchvision is never imported (its import pulls in ``torch._dynamo``, about 2 s of CPU,
  more than the whole detection of a few images). The merge's NMS is :func:`nms_indices` (NumPy, the
  same arithmetic and order as ``torchvision.ops.nms``), and on CPU Ultralytics' warm-up, which runs
  no model there but imports torchvision, is skipped (:func:`skip_cpu_warmup`); Ultralytics' own NMS
  then keeps what torchvision's would (ties between equal scores broken the same way).

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
from .evidence import FLOOR, search_record
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


def fuse_views(views: Sequence[Sequence[Detection]], view_iou: float = 0.5) -> list[Detection]:
    """Candidates of several views of one image fused per label: see the module docstring."""
    n = len(views)
    if n <= 1:
        return list(views[0]) if views else []
    groups: list[list[Detection | None]] = []
    for vi, view in enumerate(views):
        for d in sorted(view, key=lambda d: (-d.score, d.box, d.label)):
            best, best_iou = None, view_iou
            for g in groups:
                if g[vi] is not None:
                    continue
                first = next(x for x in g if x is not None)
                if first.label != d.label:
                    continue
                v = _box_iou(first.box, d.box)
                if v >= best_iou:
                    best, best_iou = g, v
            if best is None:
                best = [None] * n
                groups.append(best)
            best[vi] = d
    fused = []
    for g in groups:
        seen = [d for d in g if d is not None]
        total = sum(d.score for d in seen)
        box = tuple(sum(d.box[k] * d.score for d in seen) / total if total > 0 else seen[0].box[k] for k in range(4))
        fused.append(Detection(box, total / n, seen[0].label, seen[0].model))  # type: ignore[arg-type]
    return fused


def _box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def nms_indices(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression as ``torchvision.ops.nms`` does it on the CPU, without importing
    torchvision: boxes (N x 4 xyxy) and scores in float32, candidates by descending score (stable, so
    equal scores keep their input order), a box dropped when its IoU with a kept one is *above*
    ``iou_threshold``; returns the kept indices, best first."""
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float32).reshape(-1)
    if len(b) == 0:
        return []
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-s, kind="stable")
    thr = float(iou_threshold)  # compared in double precision, as the C++ kernel does
    zero = np.float32(0)
    suppressed = np.zeros(len(b), dtype=bool)
    keep: list[int] = []
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(int(i))
        rest = order[pos + 1:]
        rest = rest[~suppressed[rest]]
        if not len(rest):
            continue
        w = np.maximum(zero, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(zero, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        with np.errstate(invalid="ignore", divide="ignore"):  # two empty boxes: NaN, never above
            iou = inter / (areas[i] + areas[rest] - inter)
        suppressed[rest[iou.astype(np.float64) > thr]] = True
    return keep


def _nms_like_torchvision(boxes: Any, scores: Any, iou_threshold: float) -> Any:
    """Ultralytics' ``TorchNMS.nms`` signature, :func:`nms_indices`' answer (as a torch index tensor)."""
    import torch

    keep = nms_indices(boxes.detach().float().cpu().numpy(), scores.detach().float().cpu().numpy(), iou_threshold)
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)


def skip_cpu_warmup(model: Any) -> Any:
    """``model`` (an Ultralytics model) set to skip Ultralytics' warm-up on the CPU, where it runs no
    model (TorchScript and Triton aside) but imports torchvision (see the module docstring).

    Without torchvision, Ultralytics' NMS falls back on ``TorchNMS.nms``, whose unstable sort breaks
    ties between equal scores (frequent with INT8 models) otherwise than torchvision's stable one, which
    changes which of two near-identical boxes is kept; so that fallback is set to :func:`nms_indices`,
    which keeps what torchvision keeps. Without that fallback (another Ultralytics) nothing is changed."""
    try:
        from ultralytics.utils import nms as ultralytics_nms
    except ImportError:
        return model
    fallback = getattr(ultralytics_nms, "TorchNMS", None)
    if fallback is None or not hasattr(model, "add_callback"):
        return model
    fallback.nms = staticmethod(_nms_like_torchvision)

    def _mark_warm(predictor: Any) -> None:
        device = getattr(predictor, "device", None)
        backend = getattr(predictor, "model", None)
        if getattr(device, "type", None) == "cpu" and getattr(backend, "format", None) not in {"torchscript", "triton"}:
            predictor.done_warmup = True

    model.add_callback("on_predict_start", _mark_warm)
    return model


def merge_detections(candidates: Sequence[Detection], width: int, height: int, *, nms_iou: float, conf: float,
                     max_objects: int, min_side: float) -> list[Object]:
    """Class-agnostic NMS over all candidates, score threshold, top-k, clipping; objects with ids."""
    kept = [d for d in candidates if d.score >= conf]
    if not kept:
        return []
    keep = nms_indices(np.array([d.box for d in kept]), np.array([d.score for d in kept]), nms_iou)
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


def detections_from_result(result: Any, model: str, mirrored_width: int | None = None) -> list[Detection]:
    """Candidates from one Ultralytics ``Results`` (of the mirrored image when ``mirrored_width`` is given:
    boxes are mirrored back into the original frame)."""
    boxes = result.boxes
    if boxes is None or len(boxes) == 0:
        return []
    xyxy = boxes.xyxy.cpu().numpy().astype(np.float64)
    conf = boxes.conf.cpu().numpy().astype(np.float64)
    cls = boxes.cls.cpu().numpy().astype(int)
    if mirrored_width is not None:
        xyxy = np.stack([mirrored_width - xyxy[:, 2], xyxy[:, 1], mirrored_width - xyxy[:, 0], xyxy[:, 3]], axis=1)
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
        "floor": FLOOR,
        "flip": False,
        "view_iou": 0.5,
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
        self.models.append((name, skip_cpu_warmup(load_yolo(path, "detect")), {"iou": self.options["iou"]}))
        ov = self.options["open_vocab"]
        if ov and self.options["vocabulary"]:
            vocabulary = read_vocabulary(self.options["vocabulary"])
            if not vocabulary:
                raise AnnotatorError("stage 'detect': the open-vocabulary vocabulary is empty")
            try:
                path, self.resolved[ov] = weights_path(self.name, self.resolve_weights(ov))
                model = skip_cpu_warmup(load_yolo(path, "detect"))
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

    @property
    def views(self) -> tuple[str, ...]:
        """The views each model sees (``image``, and ``flip`` when test-time augmentation is on)."""
        return ("image", "flip") if self.options["flip"] else ("image",)

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        prov["views"] = list(self.views)
        return prov

    def detect(self, batch: Sequence[ImageItem]) -> list[list[Detection]]:
        """Fused candidates of every model for each image (before merging), down to ``floor``."""
        found: list[list[Detection]] = [[] for _ in batch]
        self.vocabularies: list[set[str]] = [set() for _ in batch]
        floor = min(self.options["floor"], self.options["conf"])
        for name, model, kw in self.models:
            per_view: list[list[list[Detection]]] = [[] for _ in batch]
            for view in self.views:
                if view == "flip":
                    frames = [np.ascontiguousarray(item.bgr[:, ::-1]) for item in batch]
                else:
                    frames = [item.bgr for item in batch]
                results = model.predict(frames, conf=floor, imgsz=self.options["imgsz"], max_det=300,
                                        device=self._device, verbose=False, **kw)
                for i, (item, r) in enumerate(zip(batch, results)):
                    self.vocabularies[i].update(str(v) for v in r.names.values())
                    per_view[i].append(detections_from_result(r, name, item.width if view == "flip" else None))
            for i, views in enumerate(per_view):
                found[i].extend(d for d in fuse_views(views, self.options["view_iou"]) if d.score >= floor)
        return found

    def process(self, batch: Sequence[ImageItem], graphs: Sequence[SceneGraph]) -> list[SceneGraph]:
        out = []
        found = self.detect(batch)
        for item, graph, cands, vocabulary in zip(batch, graphs, found, self.vocabularies):
            if graph.objects:
                raise AnnotatorError(f"stage 'detect': graph {graph.image_id} already has objects")
            objects = merge_detections(cands, item.width, item.height, nms_iou=self.options["nms_iou"],
                                       conf=self.options["conf"], max_objects=self.options["max_objects"],
                                       min_side=self.options["min_side"])
            boxes = [(d.label, Box(*_ordered(d.box)), d.score) for d in cands]
            search = search_record(self.name, vocabulary, self.options["conf"], boxes, objects,
                                   min(self.options["floor"], self.options["conf"]))
            evidence = tuple(e for e in graph.evidence if e.annotator != self.name) + (search,)
            out.append(self.stamp(graph, objects=tuple(objects), evidence=evidence))
        return out
