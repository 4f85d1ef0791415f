"""Reading text in images: RapidOCR (default) or PaddleOCR.

* ``rapidocr``: the ``rapidocr`` wheel ships PP-OCR detection, angle and recognition models as ONNX
  and runs them with onnxruntime, offline. A folder holding those files can be given with
  ``--weights rapidocr-ppocr=DIR`` (or found in ``$MMGEN_WEIGHTS_DIR`` / the cache) instead.
* ``paddleocr``: PaddleOCR (``pip install 'mmgen[ocr-paddle]'``); it fetches its own models.

With RapidOCR the stages run separately, so that recognition (the slow part) only sees boxes worth
reading: **text detection** first, at the image's own resolution (``det_side``: images whose longer side
is larger are shrunk to it; never enlarged), no angle classifier unless ``angle`` is set; detected
boxes lower than ``min_height`` pixels, scoring under ``det_score``, or less than ``min_aspect`` times as
wide as tall (a horizontal line that could pass the legibility gate below holds at least three letters
or two digits, so it is wider than tall; squarish boxes read as "O", "8" or "***") are dropped; the crops of all
images of a batch are then **recognised together** in batches of ``rec_batch``.

**Legibility gate** (precision first: a misread quoted as text is worse than no text). A line is kept
only when its recognition score reaches ``min_score`` *and* it is plausible text
(:func:`plausible_text`): split into alphanumeric tokens, a token is *plausible* when it is a number
(digits only, at least two) or a word of at least three letters whose Zipf frequency in one of
``languages`` (from the maintained ``wordfreq`` library, not a hand list) is at least ``min_zipf``;
mixed letter-digit codes and tokens of one or two letters are neutral. The line needs at least one
plausible token, and plausible tokens must make up at least ``plausible_share`` of its alphanumeric
characters. So "cero emisiones", "MADRID" and a printed sentence pass; "C000", "X1", "***", a lone
"O" and "the o sr e t te re s the" do not.

**Evidence**: the stage records a :class:`~scene_graphs.model.Search` named ``ocr`` for the label
``text`` (threshold ``min_score``): every detected text box it did not keep (dropped by the box gate,
read below ``min_score`` or illegible) is a faint candidate, scored by its recognition score (its
detection score when it was never read), kept below the threshold. So "no text" has evidence only when
the detector found no text box at all.

**Speed**: on the CPU each onnxruntime session gets :func:`onnx_threads` threads (half the usable cores):
the pipeline reads text in a background thread while the detector and segmenter run (:mod:`.pipeline`),
so two models share the cores, and onnxruntime's default (a spinning pool over every core) costs about
half again the CPU time on a shared machine for the same text. The legibility gate's word lists (six
languages, about a second to load) are consulted in :meth:`TextReader.read_ahead`, in that thread too.

Each kept line becomes a :class:`~scene_graphs.model.TextRegion` with the axis-aligned box around the
detected polygon (clipped to the image), its text (whitespace collapsed) and recognition score. ``TextRegion.object`` is the id of the *smallest* object whose box
contains at least ``contain`` of the text box's area (none when no object does). Region ids are
``t0``, ``t1``, ... in reading order (top to bottom, then left to right, by box top-left).
"""

from __future__ import annotations

import logging
import os
import re
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from ..model import Box, Object, SceneGraph, TextRegion
from .base import Annotator, AnnotatorError, MissingDependencyError, require
from .evidence import FLOOR, search_record
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


def onnx_threads() -> int:
    """Threads per onnxruntime session on the CPU: half the cores this process may use, at least one
    (see the module docstring)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores // 2)


LANGUAGES = ("en", "es", "fr", "de", "it", "pt")
"""Languages whose word frequencies make a token plausible (wordfreq's large lists)."""


@lru_cache(maxsize=65536)
def word_zipf(word: str, languages: tuple[str, ...] = LANGUAGES) -> float:
    """Highest Zipf frequency of ``word`` over ``languages`` (0 when unknown)."""
    from wordfreq import zipf_frequency

    return max(zipf_frequency(word, lang) for lang in languages)


def plausible_text(text: str, languages: tuple[str, ...] = LANGUAGES, min_zipf: float = 2.5,
                   share: float = 0.6) -> bool:
    """Whether ``text`` reads as words or numbers (the gate in the module docstring)."""
    tokens = re.findall(r"[^\W_]+", text.casefold())
    total = sum(len(t) for t in tokens)
    if total < 2:
        return False
    good = 0
    for t in tokens:
        if t.isdigit():
            good += len(t) if len(t) >= 2 else 0
        elif t.isalpha() and len(t) >= 3 and word_zipf(t, tuple(languages)) >= min_zipf:
            good += len(t)
    return good > 0 and good >= share * total


def regions_from_lines(lines: Sequence[tuple[np.ndarray, str, float]], width: int, height: int,
                       objects: Sequence[Object], min_score: float, contain: float,
                       legible: Any = None) -> list[TextRegion]:
    """Text regions from (polygon N x 2, text, score) lines; lines under ``min_score`` or failing
    ``legible(text)`` (when given) are dropped. See the module docstring."""
    kept = []
    for poly, text, score in lines:
        text = " ".join(str(text).split())
        if not text or not np.isfinite(score) or score < min_score:
            continue
        if legible is not None and not legible(text):
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
    distributions = ("rapidocr", "onnxruntime", "paddleocr", "paddlepaddle", "wordfreq")
    defaults = {
        "model": "rapidocr-ppocr",
        "min_score": 0.8,
        "contain": 0.8,
        "lang": "en",
        "languages": LANGUAGES,
        "min_zipf": 2.5,
        "plausible_share": 0.6,
        "det_side": 960,
        "det_score": 0.5,
        "min_height": 8.0,
        "min_aspect": 1.4,
        "rec_batch": 8,
        "angle": False,
    }

    def check_requires(self) -> None:
        require(self.name, {"wordfreq": "wordfreq"})
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
        params: dict[str, Any] = {"Global.log_level": "error", "Global.text_score": float(self.options["min_score"]),
                                  "Global.use_cls": bool(self.options["angle"]), "Det.limit_type": "max",
                                  "Det.limit_side_len": int(self.options["det_side"]),
                                  "Rec.rec_batch_num": int(self.options["rec_batch"])}
        if resolved.origin != "bundled" and resolved.path is not None:
            folder = resolved.path if resolved.path.is_dir() else resolved.path.parent
            det, rec, cls = (folder / f.name for f in resolved.spec.files)
            params.update({"Det.model_path": str(det), "Rec.model_path": str(rec), "Cls.model_path": str(cls)})
        if device.startswith("cuda"):
            params["EngineConfig.onnxruntime.use_cuda"] = True
        else:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = onnx_threads()
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
        return self.read_batch([item])[0]

    def text_boxes(self, item: ImageItem) -> list[np.ndarray]:
        """Polygons (4 x 2, original frame) of the text the detector finds and the box gate accepts
        (the rejected ones, with their detection scores, go to :attr:`rejected`)."""
        self.rejected: list[tuple[np.ndarray, float]] = []
        d = self.engine(item.bgr, use_det=True, use_cls=False, use_rec=False)
        if getattr(d, "boxes", None) is None or d.scores is None:
            return []
        kept = []
        for poly, score in zip(d.boxes, d.scores):
            poly = np.asarray(poly, dtype=np.float32).reshape(-1, 2)
            height, width = float(np.ptp(poly[:, 1])), float(np.ptp(poly[:, 0]))
            if (float(score) < self.options["det_score"] or height < self.options["min_height"]
                    or width < self.options["min_aspect"] * height):
                self.rejected.append((poly, float(score)))
                continue
            kept.append(poly)
        return kept

    def read_batch(self, batch: Sequence[ImageItem]) -> list[list[tuple[np.ndarray, str, float]]]:
        """(polygon, text, score) for every line read in each image; RapidOCR recognises the crops of
        the whole batch together."""
        if self.backend != "rapidocr":
            return [_paddle_lines(self.engine, item.bgr) for item in batch]
        from rapidocr.utils.process_img import get_rotate_crop_image

        crops, owners = [], []
        self.unread: list[list[tuple[np.ndarray, float]]] = []
        for i, item in enumerate(batch):
            boxes = self.text_boxes(item)
            self.unread.append(list(self.rejected))
            for poly in boxes:
                crop = get_rotate_crop_image(item.bgr, poly.copy())
                if crop.size and min(crop.shape[:2]) >= 2:
                    crops.append(crop)
                    owners.append((i, poly))
        lines: list[list[tuple[np.ndarray, str, float]]] = [[] for _ in batch]
        if not crops:
            return lines
        if self.options["angle"]:
            crops, _ = self.engine.cls_and_rotate(crops)
        rec = self.engine.recognize_txt(crops)
        for (i, poly), text, score in zip(owners, rec.txts or (), rec.scores or ()):
            lines[i].append((poly, str(text), float(score)))
        return lines

    def legible(self, text: str) -> bool:
        return plausible_text(text, tuple(self.options["languages"]), self.options["min_zipf"],
                              self.options["plausible_share"])

    reads_ahead = True

    def read_ahead(self, batch: Sequence[ImageItem]) -> tuple[list[list[tuple[np.ndarray, str, float]]], Any]:
        """The lines read in each image and the unread boxes (no graph needed: the pipeline runs it
        while the detector and segmenter work). The legibility gate is consulted here for every line
        that reads well enough, so its word lists load in this thread (the answers are cached)."""
        read = self.read_batch(batch)
        unread = list(getattr(self, "unread", [])) if self.backend == "rapidocr" else None
        for lines in read:
            for _, text, score in lines:
                text = " ".join(str(text).split())
                if text and np.isfinite(score) and score >= self.options["min_score"]:
                    self.legible(text)
        return read, unread

    def process(self, batch: Sequence[ImageItem], graphs: Sequence[SceneGraph],
                ahead: tuple[list[list[tuple[np.ndarray, str, float]]], Any] | None = None) -> list[SceneGraph]:
        out = []
        read, unread = ahead if ahead is not None else self.read_ahead(batch)
        for i, (item, graph, lines) in enumerate(zip(batch, graphs, read)):
            regions = regions_from_lines(lines, item.width, item.height, graph.objects,
                                         self.options["min_score"], self.options["contain"], self.legible)
            if unread is not None:
                kept = {t.text for t in regions}
                faint = [s for _, s in unread[i]]
                faint += [s for _, t, s in lines if " ".join(str(t).split()) not in kept]
                threshold = self.options["min_score"]
                search = search_record(self.name, ["text"], threshold,
                                       [("text", Box(0, 0, 0, 0), min(s, threshold - 1e-4)) for s in faint], [],
                                       min(FLOOR, threshold))
                evidence = tuple(e for e in graph.evidence if e.annotator != self.name) + (search,)
                out.append(self.stamp(graph, text=tuple(regions), evidence=evidence))
                continue
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
