"""Reading text in images: RapidOCR (default) or PaddleOCR.

* ``rapidocr``: the ``rapidocr`` wheel ships PP-OCR detection, angle and recognition models as ONNX
  and runs them with onnxruntime, offline. A folder holding those files can be given with
  ``--weights rapidocr-ppocr=DIR`` (or found in ``$MMGEN_WEIGHTS_DIR`` / the cache) instead.
* ``paddleocr``: PaddleOCR (``pip install 'mmgen[ocr-paddle]'``); it fetches its own models.

Each text line becomes a :class:`~scene_graphs.model.TextRegion` with the axis-aligned box around the
detected polygon (clipped to the image), its text (whitespace collapsed) and recognition score; lines
under ``min_score`` are dropped. ``TextRegion.object`` is the id of the *smallest* object whose box
contains at least ``contain`` of the text box's area (none when no object does). Region ids are
``t0``, ``t1``, ... in reading order (top to bottom, then left to right, by box top-left).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from ..model import Box, Object, SceneGraph, TextRegion
from .base import Annotator, AnnotatorError, MissingDependencyError, require
from .images import ImageItem

log = logging.getLogger("scene_graphs.perception.ocr")


def attach_to_object(box: Box, objects: Sequence[Object], contain: float) -> str | None:
    """Id of the smallest object whose box holds at least ``contain`` of ``box``'s area."""
    if box.area <= 0:
        cx, cy = box.center
        holders = [o for o in objects if o.box.contains_point(cx, cy)]
    else:
        holders = [o for o in objects if box.intersection(o.box) / box.area >= contain]
    if not holders:
        return None
    return min(holders, key=lambda o: (o.box.area, o.id)).id


def regions_from_lines(lines: Sequence[tuple[np.ndarray, str, float]], width: int, height: int,
                       objects: Sequence[Object], min_score: float, contain: float) -> list[TextRegion]:
    """Text regions from (polygon N x 2, text, score) lines; see the module docstring."""
    kept = []
    for poly, text, score in lines:
        text = " ".join(str(text).split())
        if not text or not np.isfinite(score) or score < min_score:
            continue
        pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        box, _ = Box(float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()),
                     float(pts[:, 1].max())).clip(width, height)
        kept.append((box, text, min(1.0, max(0.0, float(score)))))
    kept.sort(key=lambda t: (round(t[0].y1), round(t[0].x1), t[1]))
    return [TextRegion(f"t{i}", text, box, round(score, 4), attach_to_object(box, objects, contain))
            for i, (box, text, score) in enumerate(kept)]


class TextReader(Annotator):
    """Fills ``text`` with OCR lines, attached to the objects that carry them."""

    name = "ocr"
    fills = frozenset({"text"})
    model_choices = ("rapidocr-ppocr", "paddleocr")
    distributions = ("rapidocr", "onnxruntime", "paddleocr", "paddlepaddle")
    defaults = {
        "model": "rapidocr-ppocr",
        "min_score": 0.5,
        "contain": 0.8,
        "lang": "en",
    }

    def check_requires(self) -> None:
        if self.options["model"] == "paddleocr":
            require(self.name, {"paddleocr": "paddleocr", "paddle": "paddlepaddle"}, extra="mmgen[ocr-paddle]")
        else:
            require(self.name, {"rapidocr": "rapidocr", "onnxruntime": "onnxruntime"})

    def model_names(self) -> list[str]:
        return ["rapidocr-ppocr"] if self.options["model"] == "rapidocr-ppocr" else []

    def _load(self, device: str) -> None:
        if self.options["model"] == "paddleocr":
            self._load_paddle(device)
            return
        from rapidocr import RapidOCR

        resolved = self.resolve_weights("rapidocr-ppocr")
        params: dict[str, Any] = {"Global.log_level": "error", "Global.text_score": float(self.options["min_score"])}
        if resolved.origin != "bundled" and resolved.path is not None:
            folder = resolved.path if resolved.path.is_dir() else resolved.path.parent
            det, rec, cls = (folder / f.name for f in resolved.spec.files)
            params.update({"Det.model_path": str(det), "Rec.model_path": str(rec), "Cls.model_path": str(cls)})
        if device.startswith("cuda"):
            params["EngineConfig.onnxruntime.use_cuda"] = True
        self.engine = RapidOCR(params=params)
        self.backend = "rapidocr"

    def _load_paddle(self, device: str) -> None:
        try:
            from paddleocr import PaddleOCR
        except ImportError as exc:  # installed but broken (e.g. paddlepaddle missing its runtime)
            raise MissingDependencyError(f"stage 'ocr': PaddleOCR cannot be imported ({exc}): "
                                         f"pip install 'mmgen[ocr-paddle]'") from exc
        try:
            self.engine = PaddleOCR(lang=self.options["lang"])
        except Exception as exc:  # PaddleOCR fetches its models itself; any failure there is reported
            raise AnnotatorError(f"stage 'ocr': PaddleOCR could not load its models ({exc}); it downloads them "
                                 f"on first use, or use the default backend (model=rapidocr-ppocr)") from exc
        self.backend = "paddleocr"

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        prov["backend"] = getattr(self, "backend", self.options["model"])
        return prov

    def read_lines(self, item: ImageItem) -> list[tuple[np.ndarray, str, float]]:
        """(polygon, text, score) for every line the backend reads in one image."""
        if self.backend == "rapidocr":
            r = self.engine(item.bgr)
            if r.boxes is None or r.txts is None:
                return []
            return [(np.asarray(b), str(t), float(s)) for b, t, s in zip(r.boxes, r.txts, r.scores)]
        return _paddle_lines(self.engine, item.bgr)

    def process(self, batch: Sequence[ImageItem], graphs: Sequence[SceneGraph]) -> list[SceneGraph]:
        out = []
        for item, graph in zip(batch, graphs):
            regions = regions_from_lines(self.read_lines(item), item.width, item.height, graph.objects,
                                         self.options["min_score"], self.options["contain"])
            out.append(self.stamp(graph, text=tuple(regions)))
        return out


def _paddle_lines(engine: Any, bgr: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
    """Lines from PaddleOCR 3 (``predict`` -> dicts) or 2 (``ocr`` -> nested lists)."""
    lines: list[tuple[np.ndarray, str, float]] = []
    if hasattr(engine, "predict"):
        for page in engine.predict(bgr) or []:
            data = page if isinstance(page, dict) else getattr(page, "json", {}).get("res", {})
            for poly, text, score in zip(data.get("rec_polys", []), data.get("rec_texts", []), data.get("rec_scores", [])):
                lines.append((np.asarray(poly), str(text), float(score)))
        return lines
    for page in engine.ocr(bgr) or []:
        for poly, (text, score) in page or []:
            lines.append((np.asarray(poly), str(text), float(score)))
    return lines
