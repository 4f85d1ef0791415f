"""What an annotator looked for: :class:`~scene_graphs.model.Search` records built from its candidates.

An annotator lets its model return candidates down to a low ``floor`` (0.05), reports those at or above
its ``threshold`` and summarises the rest here: per label the best score and the number of candidates it
saw in ``[floor, threshold)``. A faint candidate that overlaps a *reported* object of the same label
(box IoU >= ``same_object_iou``, 0.5) is the same thing seen again (a duplicate NMS left, or a second
view), not evidence of another one, and is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..model import Box, Object, Search

FLOOR = 0.05
"""Lowest candidate score an annotator records."""

SAME_OBJECT_IOU = 0.5


def faint_candidates(candidates: Iterable[tuple[str, Box, float]], reported: Sequence[Object], threshold: float,
                     floor: float = FLOOR, same_object_iou: float = SAME_OBJECT_IOU) -> list[tuple[str, float]]:
    """(label, score) of the candidates in ``[floor, threshold)`` that are not a reported object seen again."""
    out = []
    for label, box, score in candidates:
        if not (floor <= score < threshold):
            continue
        if any(o.label == label and o.box.iou(box) >= same_object_iou for o in reported):
            continue
        out.append((label, float(score)))
    return out


def search_record(annotator: str, vocabulary: Iterable[str], threshold: float,
                  candidates: Iterable[tuple[str, Box, float]], reported: Sequence[Object],
                  floor: float = FLOOR) -> Search:
    """The :class:`Search` of one annotator on one image (labels outside ``vocabulary`` are ignored)."""
    vocab = set(vocabulary)
    best: dict[str, float] = {}
    count: dict[str, int] = {}
    for label, score in faint_candidates(candidates, reported, threshold, floor):
        if label not in vocab:
            continue
        best[label] = max(best.get(label, 0.0), round(score, 4))
        count[label] = count.get(label, 0) + 1
    best = {k: min(v, threshold - 1e-4) if v >= threshold else max(v, floor) for k, v in best.items()}
    return Search(annotator, tuple(sorted(vocab)), threshold, floor, best, count)
