"""CLIP agreement on object labels: CLIP, shown an object's crop, must rank its label among the labels
the detector could have given.

This is the third independent view behind an object's confidence (after the detector's views and the
segmenter, see :mod:`.detect` and :mod:`.segment`); it runs inside
:class:`~scene_graphs.perception.attributes.ClipAttributes` (the ``full`` profile), reusing that stage's
crop embeddings, so it costs one text embedding per label per process and one matrix product per batch.

**Candidates.** The labels of the vocabulary that the annotator named by ``label_check`` (default
``detect``) recorded in the graph's ``evidence`` (its :class:`~scene_graphs.model.Search`), plus the
object's own label when it is not in it. A graph without that search is left alone: there is nothing the
label competed with. (The ``quality`` profile has no ``detect`` stage: its labels come from CLIP's own
tags, and CLIP agreeing with itself would not be independent evidence.)

**Text side (prompt ensemble).** Each label's text embedding is the mean of the L2-normalised
embeddings of the prompts in ``label_prompts`` (default :data:`PROMPTS`, ``"a photo of a {label}."``
and variants), normalised again. The logit of a label is CLIP's logit scale times the cosine between
the crop's embedding and the label's; probabilities are the softmax over the candidates.

**Decision rule** (:func:`judge_label`). The object's label is *confirmed* when both hold:

* its rank among the candidates is at most ``label_top_k`` (default :data:`TOP_K`, 5 of COCO's 80;
  rank 1 is CLIP's best, ties count in the label's favour), and
* its logit is at most ``label_margin`` (default :data:`MARGIN`, 3.0) below the best candidate's, i.e. its
  probability is at least ``exp(-margin)`` (5%) of the best label's.

Both defaults are set by reasoning, not measured: no CLIP weights exist on the machine that wrote this;
calibrate them on a labelled set (``mmgen eval-graphs``) where the weights are.

**Demotion** (:func:`demoted_score`). An object CLIP does not confirm is treated like an object one more
view did not see, as the segmenter does: its score becomes ``score * n / (n + 1)``, ``n`` being the views
its score already averages (:func:`views_so_far`: the detector's ``views`` plus one when the segmenter's
agreement ran). A confirmed object keeps its score.

**Evidence.** What CLIP said of each object is recorded in the graph, under
``provenance["stages"]["clip_attributes"]["label_check"]``: the settings (``against``, ``top_k``,
``margin``, ``views``) and, per object id, ``rank``, ``probability``, ``best``, ``best_probability``,
``gap`` (best logit minus the label's), ``confirmed``, ``score_before`` and ``score``
(:func:`label_check_record`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from ..model import Object, SceneGraph

PROMPTS = ("a photo of a {label}.", "a photo of the {label}.", "a cropped photo of a {label}.",
           "a close-up photo of a {label}.", "a photo of a small {label}.", "a photo of a large {label}.")
"""Prompt ensemble for a label's text embedding."""

TOP_K = 5
"""Default: the label must be among CLIP's best ``TOP_K`` candidates."""

MARGIN = 3.0
"""Default: the label's logit may lie at most this far below the best candidate's."""

SEGMENTER_AGREEMENT_MODELS = ("yolo11n-seg",)
"""Segmenter models whose agreement counts as a view (the SAM models name nothing)."""


@dataclass(frozen=True)
class LabelVerdict:
    """What CLIP said of one object's label (see the module docstring)."""

    label: str
    rank: int
    probability: float
    best: str
    best_probability: float
    gap: float
    confirmed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "probability": round(self.probability, 4), "best": self.best,
                "best_probability": round(self.best_probability, 4), "gap": round(self.gap, 4),
                "confirmed": self.confirmed}


def judge_label(logits: Sequence[float] | np.ndarray, labels: Sequence[str], label: str, *, top_k: int = TOP_K,
                margin: float = MARGIN) -> LabelVerdict:
    """The decision rule on one crop's ``logits`` over ``labels`` (same order) for its ``label``."""
    values = np.asarray(logits, dtype=np.float64).reshape(-1)
    if len(values) != len(labels):
        raise ValueError(f"{len(values)} logits for {len(labels)} labels")
    if label not in labels:
        raise ValueError(f"label {label!r} is not among the candidates")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    own = list(labels).index(label)
    rank = 1 + int(np.sum(values > values[own]))
    best = int(np.argmax(values))
    if values[best] == values[own]:
        best = own
    exp = np.exp(values - values[best])
    probs = exp / exp.sum()
    gap = float(values[best] - values[own])
    return LabelVerdict(label, rank, float(probs[own]), str(labels[best]), float(probs[best]), gap,
                        rank <= top_k and gap <= margin)


def views_so_far(graph: SceneGraph) -> int:
    """How many views an object's score already averages: the detector's ``views`` (1 when not
    recorded) plus one when the segmenter's agreement ran."""
    stages = graph.provenance.get("stages", {}) if isinstance(graph.provenance, Mapping) else {}
    detect = stages.get("detect", {}) if isinstance(stages, Mapping) else {}
    views = len(detect.get("views", ()) or ()) or 1
    segment = stages.get("segment") if isinstance(stages, Mapping) else None
    if isinstance(segment, Mapping):
        options = segment.get("options", {})
        if options.get("agreement") and options.get("model") in SEGMENTER_AGREEMENT_MODELS:
            views += 1
    return views


def demoted_score(score: float, views: int) -> float:
    """``score`` of an object one more view (CLIP) did not confirm: ``score * views / (views + 1)``."""
    return round(score * views / (views + 1), 6)


def searched_vocabulary(graph: SceneGraph, annotator: str) -> tuple[str, ...] | None:
    """The vocabulary ``annotator`` recorded in ``graph.evidence`` (None when it recorded none)."""
    for search in graph.evidence:
        if search.annotator == annotator:
            return search.vocabulary
    return None


class LabelChecker:
    """Label text embeddings (prompt ensemble, cached per label) and verdicts for batches of crops,
    through a :class:`~scene_graphs.perception.attributes.ClipScorer`."""

    def __init__(self, scorer: Any, prompts: Sequence[str] = PROMPTS, top_k: int = TOP_K,
                 margin: float = MARGIN) -> None:
        if not prompts or any("{label}" not in p for p in prompts):
            raise ValueError(f"every label prompt needs '{{label}}', got {list(prompts)}")
        if int(top_k) < 1:
            raise ValueError(f"label_top_k must be at least 1, got {top_k}")
        self.scorer, self.prompts, self.top_k, self.margin = scorer, tuple(prompts), int(top_k), float(margin)
        self._labels: dict[str, Any] = {}

    def label_embeddings(self, labels: Sequence[str]) -> Any:
        """L x D tensor: one normalised ensemble embedding per label."""
        import torch

        new = [lab for lab in dict.fromkeys(labels) if lab not in self._labels]
        if new:
            prompts = [p.format(label=lab) for lab in new for p in self.prompts]
            feats = self.scorer.embed_texts(prompts).reshape(len(new), len(self.prompts), -1).mean(dim=1)
            feats = feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            for lab, f in zip(new, feats):
                self._labels[lab] = f
        return torch.stack([self._labels[lab] for lab in labels])

    def logits(self, image_feats: Any, labels: Sequence[str]) -> np.ndarray:
        """N x L logits (CLIP's logit scale times cosine) of N crop embeddings against ``labels``."""
        import torch

        model = self.scorer.model
        with torch.inference_mode():
            scale = model.logit_scale.exp().float() if hasattr(model, "logit_scale") else torch.tensor(100.0)
            return (scale * image_feats @ self.label_embeddings(labels).T).cpu().numpy().astype(np.float64)

    def verdicts(self, image_feats: Any, object_labels: Sequence[str], vocabulary: Sequence[str]) -> list[LabelVerdict]:
        """One verdict per crop (rows of ``image_feats``) for its label, against ``vocabulary``."""
        if not len(object_labels):
            return []
        candidates = sorted(set(vocabulary) | set(object_labels))
        logits = self.logits(image_feats, candidates)
        return [judge_label(row, candidates, label, top_k=self.top_k, margin=self.margin)
                for row, label in zip(logits, object_labels)]


def apply_verdicts(objects: Sequence[Object], verdicts: Sequence[LabelVerdict], views: int
                   ) -> tuple[tuple[Object, ...], dict[str, dict[str, Any]]]:
    """Objects with unconfirmed ones demoted, and the per-object evidence (object id -> record)."""
    out, record = [], {}
    for obj, verdict in zip(objects, verdicts):
        score = obj.score if verdict.confirmed else demoted_score(obj.score, views)
        record[obj.id] = {**verdict.to_dict(), "score_before": obj.score, "score": score}
        out.append(obj if score == obj.score else replace(obj, score=score))
    return tuple(out), record


def label_check_record(against: str, top_k: int, margin: float, views: int,
                       objects: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The evidence written under the stage's provenance (see the module docstring)."""
    return {"against": against, "top_k": top_k, "margin": margin, "views": views, "objects": dict(objects)}
