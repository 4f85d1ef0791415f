"""Graph quality: compare predicted scene graphs with reference graphs of the same images.

Matching follows COCO's rule: per image and label, predictions in descending score order each take
the unmatched reference box of the same label with the highest IoU, if that IoU reaches the threshold.
On matched pairs we measure mask IoU, attribute recall (reference attribute names the prediction also
has) and relation recall (reference relations between two matched objects that the prediction states
between their matches). Images are paired by image id, else by content sha256.

Relation precision: of the relations the prediction states between two matched objects, the share the
reference also states between their matches (the reference must list every true relation of its
objects, as ``assets/labels`` does). Text precision: the share of predicted text strings whose words
all occur in the reference's text (case-folded), when the reference has the ``text`` field.

Evidence (``SceneGraph.evidence``): every missed reference object is counted as *searched* (its label
is in some annotator's vocabulary), *faint* (an annotator saw its label below threshold) or
*unsearchable*; and ``false_absences`` counts reference labels the prediction claims absent
(``confirms_absent``): the errors that would turn into a wrong "no".
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from scene_graphs.io import iter_graphs
from scene_graphs.model import Object, SceneGraph

DEFAULT_THRESHOLDS = (0.25, 0.35, 0.5, 0.65, 0.8)


@dataclass
class LabelCounts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan


@dataclass
class GraphEvaluation:
    """Totals over all paired images for one score threshold."""

    min_score: float
    iou: float
    images: int = 0
    labels: dict[str, LabelCounts] = field(default_factory=lambda: defaultdict(LabelCounts))
    mask_ious: list[float] = field(default_factory=list)
    attributes_found: int = 0
    attributes_total: int = 0
    relations_found: int = 0
    relations_total: int = 0
    relations_stated: int = 0
    relations_true: int = 0
    text_stated: int = 0
    text_true: int = 0
    missed_searched: int = 0
    missed_faint: int = 0
    missed_unsearchable: int = 0
    false_absences: int = 0
    absences_checked: int = 0

    @property
    def overall(self) -> LabelCounts:
        total = LabelCounts()
        for c in self.labels.values():
            total.tp, total.fp, total.fn = total.tp + c.tp, total.fp + c.fp, total.fn + c.fn
        return total

    def to_dict(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return None if math.isnan(v) else round(v, 4)

        o = self.overall
        return {
            "min_score": self.min_score, "iou": self.iou, "images": self.images,
            "precision": num(o.precision), "recall": num(o.recall), "tp": o.tp, "fp": o.fp, "fn": o.fn,
            "mask_iou": num(sum(self.mask_ious) / len(self.mask_ious)) if self.mask_ious else None,
            "matched_with_masks": len(self.mask_ious),
            "attribute_recall": num(self.attributes_found / self.attributes_total) if self.attributes_total else None,
            "relation_recall": num(self.relations_found / self.relations_total) if self.relations_total else None,
            "relation_precision": num(self.relations_true / self.relations_stated) if self.relations_stated else None,
            "relations_stated": self.relations_stated,
            "text_precision": num(self.text_true / self.text_stated) if self.text_stated else None,
            "text_stated": self.text_stated,
            "evidence": {"missed_searched": self.missed_searched, "missed_faint": self.missed_faint,
                         "missed_unsearchable": self.missed_unsearchable, "false_absences": self.false_absences,
                         "absences_checked": self.absences_checked},
            "per_label": {k: {"precision": num(c.precision), "recall": num(c.recall), "tp": c.tp, "fp": c.fp,
                              "fn": c.fn} for k, c in sorted(self.labels.items())},
        }


def match_objects(pred: Iterable[Object], ref: Iterable[Object], iou: float,
                  label_map: Mapping[str, str] | None = None) -> list[tuple[Object, Object]]:
    """COCO-style greedy matching of predicted to reference objects of the same label."""
    label_map = label_map or {}
    by_label: dict[str, list[Object]] = defaultdict(list)
    for r in ref:
        by_label[label_map.get(r.label, r.label)].append(r)
    taken: set[str] = set()
    pairs: list[tuple[Object, Object]] = []
    for p in sorted(pred, key=lambda o: (-o.score, o.id)):
        best, best_iou = None, iou
        for r in by_label.get(label_map.get(p.label, p.label), ()):
            if r.id in taken:
                continue
            v = p.box.iou(r.box)
            if v >= best_iou:
                best, best_iou = r, v
        if best is not None:
            taken.add(best.id)
            pairs.append((p, best))
    return pairs


def _mask_iou(a: Object, b: Object) -> float | None:
    if a.mask is None or b.mask is None or (a.mask.height, a.mask.width) != (b.mask.height, b.mask.width):
        return None
    from pycocotools import mask as mask_utils

    return float(mask_utils.iou([a.mask.rle], [b.mask.rle], [0])[0][0])


def evaluate_pair(pred: SceneGraph, ref: SceneGraph, result: GraphEvaluation,
                  label_map: Mapping[str, str] | None = None) -> None:
    """Add one image's counts to ``result``."""
    label_map = label_map or {}
    canon = lambda label: label_map.get(label, label)  # noqa: E731
    kept = [o for o in pred.objects if o.score >= result.min_score]
    pairs = match_objects(kept, ref.objects, result.iou, label_map)
    result.images += 1
    matched_pred = {p.id for p, _ in pairs}
    matched_ref = {r.id for _, r in pairs}
    for p, _ in pairs:
        result.labels[canon(p.label)].tp += 1
    for p in kept:
        if p.id not in matched_pred:
            result.labels[canon(p.label)].fp += 1
    for r in ref.objects:
        if r.id not in matched_ref:
            result.labels[canon(r.label)].fn += 1
    ref_to_pred = {r.id: p for p, r in pairs}
    for p, r in pairs:
        m = _mask_iou(p, r)
        if m is not None:
            result.mask_ious.append(m)
        if ref.has("attributes") and pred.has("attributes"):
            names = {a.name.lower() for a in p.attributes}
            for a in r.attributes:
                result.attributes_total += 1
                result.attributes_found += a.name.lower() in names
    if pred.evidence:
        for r in ref.objects:
            if r.id in matched_ref:
                continue
            label = canon(r.label)
            names = [lab for lab in _labels_for(label, label_map) if pred.searched_for(lab)]
            if not names:
                result.missed_unsearchable += 1
            else:
                result.missed_searched += 1
                result.missed_faint += any(pred.faint_count(lab) for lab in names)
        for label in sorted({canon(r.label) for r in ref.objects}):
            names = [lab for lab in _labels_for(label, label_map) if pred.searched_for(lab)]
            if names:
                result.absences_checked += 1
                result.false_absences += all(pred.confirms_absent(lab) for lab in names)
    if ref.has("text") and pred.has("text"):
        words = {w for t in ref.text for w in _words(t.text)}
        for t in pred.text:
            result.text_stated += 1
            result.text_true += bool(_words(t.text)) and _words(t.text) <= words
    if ref.has("relations") and pred.has("relations"):
        pred_to_ref = {p.id: r.id for p, r in pairs}
        truth = {(rel.subject, rel.predicate.lower(), rel.object) for rel in ref.relations}
        for rel in pred.relations:
            s, o = pred_to_ref.get(rel.subject), pred_to_ref.get(rel.object)
            if s is None or o is None:
                continue
            result.relations_stated += 1
            result.relations_true += (s, rel.predicate.lower(), o) in truth
        stated = {(rel.subject, rel.predicate.lower(), rel.object) for rel in pred.relations}
        for rel in ref.relations:
            s, o = ref_to_pred.get(rel.subject), ref_to_pred.get(rel.object)
            if s is None or o is None:
                continue
            result.relations_total += 1
            result.relations_found += (s.id, rel.predicate.lower(), o.id) in stated


def _labels_for(label: str, label_map: Mapping[str, str]) -> list[str]:
    """The predicted-side labels that map onto ``label`` (itself included)."""
    return sorted({label} | {k for k, v in label_map.items() if v == label})


def _words(text: str) -> set[str]:
    import re

    return {w for w in re.split(r"[^\w]+", text.casefold()) if w}


def evaluate(pred_src: str | Path, ref_src: str | Path, thresholds: Iterable[float] = DEFAULT_THRESHOLDS,
             iou: float = 0.5, label_map: Mapping[str, str] | None = None) -> tuple[list[GraphEvaluation], int]:
    """Evaluate at each score threshold; returns the results and the number of unpaired predicted images.

    Reference graphs are held in memory (one evaluation set); predictions stream.
    """
    refs = list(iter_graphs(ref_src))
    by_id = {g.image_id: g for g in refs}
    by_sha = {g.sha256: g for g in refs if g.sha256}
    results = [GraphEvaluation(float(t), iou) for t in sorted(thresholds)]
    unpaired = 0
    for pred in iter_graphs(pred_src):
        ref = by_id.get(pred.image_id) or (by_sha.get(pred.sha256) if pred.sha256 else None)
        if ref is None:
            unpaired += 1
            continue
        if (ref.width, ref.height) != (pred.width, pred.height):
            raise ValueError(f"image {pred.image_id}: predicted graph is {pred.width}x{pred.height}, "
                             f"reference is {ref.width}x{ref.height}")
        for r in results:
            evaluate_pair(pred, ref, r, label_map)
    return results, unpaired


def calibrate_thresholds(pred_src: str | Path, ref_src: str | Path, target_precision: float = 0.9,
                         min_support: int = 5, floor: float = 0.25, iou: float = 0.5,
                         label_map: Mapping[str, str] | None = None) -> dict[str, float]:
    """Per label, the lowest score at which predictions of that label reach ``target_precision`` on the
    labelled set (COCO matching at ``iou``), for labels with at least ``min_support`` predictions scoring
    ``floor`` or more. A label that never reaches the target gets just above its best false positive.
    The result is what ``scene_graphs/perception/data/thresholds.json`` keeps under ``per_label``."""
    label_map = label_map or {}
    refs = list(iter_graphs(ref_src))
    by_id = {g.image_id: g for g in refs}
    by_sha = {g.sha256: g for g in refs if g.sha256}
    scored: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for pred in iter_graphs(pred_src):
        ref = by_id.get(pred.image_id) or (by_sha.get(pred.sha256) if pred.sha256 else None)
        if ref is None:
            continue
        kept = [o for o in pred.objects if o.score >= floor]
        matched = {p.id for p, _ in match_objects(kept, ref.objects, iou, label_map)}
        for o in kept:
            scored[label_map.get(o.label, o.label)].append((o.score, o.id in matched))
    out: dict[str, float] = {}
    for label, rows in sorted(scored.items()):
        if len(rows) < min_support:
            continue
        rows.sort(key=lambda r: -r[0])
        best = None
        tp = 0
        for n, (score, ok) in enumerate(rows, 1):
            tp += ok
            if tp / n >= target_precision and (n == len(rows) or rows[n][0] < score):
                best = score
        if best is None:
            best = min(0.99, max(s for s, ok in rows if not ok) + 0.01)
        out[label] = math.floor(max(floor, best) * 1e4) / 1e4  # rounded down: the threshold score itself passes
    return out
