"""Instance masks for the detected objects, as COCO RLE at the original resolution.

Two ways, chosen by ``model``:

* ``yolo11n-seg`` (default; ``.pt``, ``.onnx`` or the full-INT8 ``.tflite``): the segmenter runs on
  the whole image (NMS ``iou=0.5``: at 0.7 it doubles people, see the weights manifest) with
  ``retina_masks`` so masks come at the original resolution. Its instances are matched one-to-one to
  the graph's objects by box IoU (minimum-cost assignment, :func:`linear_assignment`: scipy's algorithm),
  pairs under ``match_iou`` left unmatched. Labels are not compared: the mask of a box the segmenter
  calls "truck" still belongs to the detector's "bus" at the same place.
* ``mobile_sam`` / ``sam2.1_t``: SAM through Ultralytics, prompted with every object's box.

A mask is limited to its object's box grown by ``box_margin`` of the box's size on each side: the
segmenter's own box can be wider than the detector's (an instance cut by the image edge, say), and
mask and box must describe the same thing. A mask left empty by that is no mask.

With ``yolo11n-seg``, objects left without a mask are prompted to SAM (``sam``, default
``mobile_sam``) when that model's weights are present; when they are not, those objects keep no mask.
The ``masks`` field is listed once the stage has run (it looked), even when some objects have none.

**Agreement** (``agreement``, on by default with ``yolo11n-seg``): the segmenter is a second network
that also names what it finds, so it is one more view of each object; with ``mirror`` (default) it
looks at the image mirrored left to right (boxes and masks mirrored back), so the one extra pass is
both a second network and test-time augmentation (a flip) for the detector's view. The segmenter runs with
``conf=floor`` (0.05); an object's segmenter score is the best score of an instance *of the same
label* whose box has IoU >= ``agree_iou`` (0.5) with the object's (0 when none). The object's score
becomes the mean over all views, ``(score * n + seg_score) / (n + 1)``, where ``n`` is the number of
views the detector already averaged (its provenance ``views``; 1 when unknown). An object the segmenter
does not confirm so keeps a lower score; object ids and order are left as the detector gave them.
Only instances scoring at least ``conf`` give masks.

**Calibration** (``thresholds``: a JSON table, by default the bundled ``data/thresholds.json``; empty to
turn it off): after agreement, each listed label's calibrated threshold is mapped onto the global
confident score 0.5 (:mod:`.calibration`).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from ..model import Box, Mask, SceneGraph
from ._ultralytics import load_yolo, ultralytics_device, weights_path
from .base import Annotator
from .detect import skip_cpu_warmup
from .images import ImageItem
from .weights import MissingWeightsError

log = logging.getLogger("scene_graphs.perception.segment")

SAM_MODELS = ("mobile_sam", "sam2.1_t")


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every box of ``a`` (N x 4) and ``b`` (M x 4), xyxy."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def linear_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one assignment of a finite N x M cost matrix: (rows, cols) as
    ``scipy.optimize.linear_sum_assignment`` returns them, ties included (the same shortest augmenting
    path algorithm, Crouse 2016, visiting columns in the same order), without importing
    ``scipy.optimize`` (about 0.3-0.5 s of start-up on the CPU, more than matching a few images costs).
    The inner loop over columns is vectorised; the tie rule (among equally cheap columns, the last free
    one, else the first) is scipy's sequential rule."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be a matrix, got shape {cost.shape}")
    if cost.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if not np.isfinite(cost).all():
        raise ValueError("cost matrix has non-finite entries")
    transpose = cost.shape[1] < cost.shape[0]
    if transpose:
        cost = cost.T
    nr, nc = cost.shape
    u, v = np.zeros(nr), np.zeros(nc)
    path = np.full(nc, -1, dtype=np.int64)
    col4row = np.full(nr, -1, dtype=np.int64)
    row4col = np.full(nc, -1, dtype=np.int64)
    for cur in range(nr):
        remaining = np.arange(nc - 1, -1, -1, dtype=np.int64)
        n_remaining = nc
        rows_seen = np.zeros(nr, dtype=bool)
        cols_seen = np.zeros(nc, dtype=bool)
        shortest = np.full(nc, np.inf)
        min_val, i, sink = 0.0, cur, -1
        while sink == -1:
            rows_seen[i] = True
            rem = remaining[:n_remaining]
            r = min_val + cost[i, rem] - u[i] - v[rem]
            better = r < shortest[rem]
            path[rem[better]] = i
            shortest[rem[better]] = r[better]
            values = shortest[rem]
            lowest = values.min()
            at_lowest = np.flatnonzero(values == lowest)
            free = at_lowest[row4col[rem[at_lowest]] == -1]
            index = int(free[-1]) if len(free) else int(at_lowest[0])
            min_val = float(lowest)
            j = int(remaining[index])
            if row4col[j] == -1:
                sink = j
            else:
                i = int(row4col[j])
            cols_seen[j] = True
            n_remaining -= 1
            remaining[index] = remaining[n_remaining]
        u[cur] += min_val
        others = rows_seen.copy()
        others[cur] = False
        u[others] += min_val - shortest[col4row[others]]
        v[cols_seen] -= min_val - shortest[cols_seen]
        j = sink
        while True:
            i = int(path[j])
            row4col[j] = i
            col4row[i], j = j, int(col4row[i])
            if i == cur:
                break
    if transpose:
        order = np.argsort(col4row, kind="stable")
        return col4row[order], order.astype(np.int64)
    return np.arange(nr, dtype=np.int64), col4row


def match_boxes(objects: np.ndarray, instances: np.ndarray, min_iou: float) -> dict[int, int]:
    """One-to-one matching maximising total IoU (:func:`linear_assignment`); object index -> instance
    index, pairs >= ``min_iou``."""
    iou = box_iou_matrix(objects, instances)
    if iou.size == 0:
        return {}
    rows, cols = linear_assignment(-iou)
    return {int(r): int(c) for r, c in zip(rows, cols) if iou[r, c] >= min_iou}


def _mask_or_none(array: np.ndarray, box: Box, margin: float) -> Mask | None:
    """RLE of ``array`` limited to ``box`` grown by ``margin`` of its size (None when nothing is left)."""
    m = np.asarray(array) > 0.5 if array.dtype != bool else np.asarray(array)
    h, w = m.shape
    dx, dy = box.width * margin, box.height * margin
    x1, y1 = max(0, int(np.floor(box.x1 - dx))), max(0, int(np.floor(box.y1 - dy)))
    x2, y2 = min(w, int(np.ceil(box.x2 + dx))), min(h, int(np.ceil(box.y2 + dy)))
    limited = np.zeros_like(m)
    limited[y1:y2, x1:x2] = m[y1:y2, x1:x2]
    return Mask.from_array(limited) if limited.any() else None


class Segmenter(Annotator):
    """Fills ``masks``: one RLE mask per object where the segmenter finds one."""

    name = "segment"
    fills = frozenset({"masks"})
    needs = frozenset({"objects"})
    requires = {"ultralytics": "ultralytics-opencv-headless"}
    distributions = ("ultralytics-opencv-headless", "torch", "ai-edge-litert", "onnxruntime")
    model_choices = ("yolo11n-seg",) + SAM_MODELS
    defaults = {
        "model": "yolo11n-seg",
        "sam": "mobile_sam",
        "conf": 0.25,
        "iou": 0.5,
        "match_iou": 0.5,
        "box_margin": 0.05,
        "imgsz": 640,
        "agreement": True,
        "floor": 0.05,
        "agree_iou": 0.5,
        "thresholds": "default",
        "mirror": True,
    }

    def model_names(self) -> list[str]:
        names = [self.options["model"]]
        if self.options["model"] not in SAM_MODELS and self.options["sam"] in SAM_MODELS:
            names.append(self.options["sam"])
        return names

    def _load(self, device: str) -> None:
        self._device = ultralytics_device(device)
        self.seg_model: Any = None
        self.sam_model: Any = None
        model = self.options["model"]
        if model in SAM_MODELS:
            self.sam_model = self._load_sam(model, required=True)
            return
        path, self.resolved[model] = weights_path(self.name, self.resolve_weights(model))
        self.seg_model = skip_cpu_warmup(load_yolo(path, "segment"))
        if self.options["sam"]:
            self.sam_model = self._load_sam(self.options["sam"], required=False)

    def _load_sam(self, name: str, required: bool) -> Any:
        if name not in SAM_MODELS:
            from .base import AnnotatorError

            raise AnnotatorError(f"stage 'segment': sam must be one of {', '.join(SAM_MODELS)} or empty, got {name!r}")
        try:
            resolved = self.resolve_weights(name) if required else self._resolve_local(name)
            if resolved is None:
                log.info("no %s weights here: objects the segmenter misses keep no mask", name)
                return None
            path, self.resolved[name] = weights_path(self.name, resolved)
        except MissingWeightsError:
            self.resolved.pop(name, None)
            if required:
                raise
            return None
        from ultralytics import SAM

        return SAM(path)

    def _resolve_local(self, name: str) -> Any:
        """The helper SAM is used only when its weights are already here (never downloaded)."""
        from .weights import get_spec, locate

        found, _ = locate(get_spec(name), self.explicit_for(name))
        return found

    # ------------------------------------------------------------------ running
    def _yolo_masks(self, batch: Sequence[ImageItem]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Per image: instance boxes (M x 4) and masks (M x H x W bool, original resolution) of the
        instances scoring at least ``conf``; the labelled candidates down to ``floor`` go to
        :attr:`candidates` (for agreement)."""
        conf = self.options["conf"]
        floor = min(self.options["floor"], conf) if self.options["agreement"] else conf
        mirror = bool(self.options["mirror"])
        frames = [np.ascontiguousarray(it.bgr[:, ::-1]) if mirror else it.bgr for it in batch]
        results = self.seg_model.predict(frames, conf=floor, iou=self.options["iou"],
                                         imgsz=self.options["imgsz"], retina_masks=True, device=self._device,
                                         verbose=False, max_det=100)
        out = []
        self.candidates: list[list[tuple[str, Box, float]]] = []
        for item, r in zip(batch, results):
            if r.boxes is None or len(r.boxes) == 0 or r.masks is None:
                out.append((np.zeros((0, 4)), None))
                self.candidates.append([])
                continue
            boxes = r.boxes.xyxy.cpu().numpy().astype(np.float64)
            if mirror:  # back into the original frame
                boxes = np.stack([item.width - boxes[:, 2], boxes[:, 1], item.width - boxes[:, 0], boxes[:, 3]], axis=1)
            scores = r.boxes.conf.cpu().numpy().astype(np.float64)
            labels = [str(r.names[int(c)]) for c in r.boxes.cls.cpu().numpy()]
            self.candidates.append([(lab, Box(*map(float, b)), float(sc)) for lab, b, sc in zip(labels, boxes, scores)])
            keep = scores >= conf
            masks = r.masks.data.cpu().numpy()[keep] > 0.5
            if masks.shape[1:] != (item.height, item.width):  # defensive: retina masks are full size
                masks = _resize_masks(masks, item.height, item.width)
            if mirror:
                masks = np.ascontiguousarray(masks[:, :, ::-1])
            out.append((boxes[keep], masks))
        return out

    def calibrated(self, label: str, score: float) -> float:
        """``score`` through the per-label calibration table (see the module docstring)."""
        source = self.options["thresholds"]
        if not source:
            return score
        from .calibration import THRESHOLDS_FILE, calibrate, load_thresholds

        table = load_thresholds(str(THRESHOLDS_FILE) if source == "default" else source)
        return round(calibrate(score, table["per_label"].get(label), table["confident"]), 6)

    def agreed_score(self, graph: SceneGraph, obj: Any, candidates: Sequence[tuple[str, Box, float]]) -> float:
        """``obj``'s score with the segmenter as one more view (module docstring)."""
        seg = max((s for lab, b, s in candidates if lab == obj.label and b.iou(obj.box) >= self.options["agree_iou"]),
                  default=0.0)
        views = len(graph.provenance.get("stages", {}).get("detect", {}).get("views", ())) or 1
        return round(min(1.0, (obj.score * views + seg) / (views + 1)), 6)

    def _sam_masks(self, item: ImageItem, boxes: list[Box]) -> list[Mask | None]:
        if not boxes:
            return []
        r = self.sam_model.predict(item.bgr, bboxes=[b.to_list() for b in boxes], device=self._device, verbose=False)[0]
        if r.masks is None:
            return [None] * len(boxes)
        masks = r.masks.data.cpu().numpy() > 0.5
        if masks.shape[1:] != (item.height, item.width):
            masks = _resize_masks(masks, item.height, item.width)
        margin = self.options["box_margin"]
        return ([_mask_or_none(m, b, margin) for m, b in zip(masks, boxes)]
                + [None] * max(0, len(boxes) - len(masks)))

    def process(self, batch: Sequence[ImageItem], graphs: Sequence[SceneGraph]) -> list[SceneGraph]:
        per_image = self._yolo_masks(batch) if self.seg_model is not None else [None] * len(batch)
        agree = self.seg_model is not None and self.options["agreement"]
        out = []
        for gi, (item, graph, found) in enumerate(zip(batch, graphs, per_image)):
            masks: dict[int, Mask | None] = {}
            if found is not None:
                inst_boxes, inst_masks = found
                obj_boxes = np.array([o.box.to_list() for o in graph.objects], dtype=np.float64).reshape(-1, 4)
                for oi, ii in match_boxes(obj_boxes, inst_boxes, self.options["match_iou"]).items():
                    masks[oi] = _mask_or_none(inst_masks[ii], graph.objects[oi].box, self.options["box_margin"])
            missing = [i for i in range(len(graph.objects)) if masks.get(i) is None]
            if missing and self.sam_model is not None:
                for i, m in zip(missing, self._sam_masks(item, [graph.objects[i].box for i in missing])):
                    masks[i] = m
            objects = tuple(o if masks.get(i) is None else _with_mask(o, masks[i]) for i, o in enumerate(graph.objects))
            if agree:
                objects = tuple(_with_score(o, self.calibrated(o.label, self.agreed_score(graph, o, self.candidates[gi])))
                                for o in objects)
            out.append(self.stamp(graph, objects=objects))
        return out


def _with_mask(obj: Any, mask: Mask | None) -> Any:
    from dataclasses import replace

    return replace(obj, mask=mask)


def _with_score(obj: Any, score: float) -> Any:
    from dataclasses import replace

    return replace(obj, score=score)


def _resize_masks(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of boolean masks (M x h x w) to (M x height x width)."""
    _, h, w = masks.shape
    rows = np.minimum((np.arange(height) * h) // height, h - 1)
    cols = np.minimum((np.arange(width) * w) // width, w - 1)
    return masks[:, rows[:, None], cols[None, :]]
