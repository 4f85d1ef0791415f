"""Judge-based selection: keep records by a score threshold or keep the top fraction.

* ``threshold``: keep records whose judge score is at least the threshold.
* ``top``: keep the ``ceil(top * n)`` best of the ``n`` scored records; ties in score go to the
  higher quality score, then to a seeded hash of the record id.

Records the judge could not score (malformed replies, failed requests) are dropped with that reason:
an unscored record is never kept silently.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence


def select(scores: Mapping[int, int | None], threshold: float | None = None, top: float | None = None,
           tiebreak: Mapping[int, tuple[float, int]] | None = None) -> dict[int, str]:
    """``{index: reason}`` of the records to drop (the others are kept)."""
    if (threshold is None) == (top is None):
        raise ValueError("give exactly one of a judge threshold and a top fraction")
    drops: dict[int, str] = {}
    scored = [(i, s) for i, s in scores.items() if s is not None]
    for i, s in scores.items():
        if s is None:
            drops[i] = "the judge gave no valid score"
    if threshold is not None:
        for i, s in scored:
            if s < threshold:
                drops[i] = f"judge score {s} below the threshold {threshold:g}"
        return drops
    assert top is not None
    if not 0 < top <= 1:
        raise ValueError("the top fraction must be in (0, 1]")
    tb = tiebreak or {}
    ranked: Sequence[tuple[int, int]] = sorted(scored, key=lambda x: (-x[1], -tb.get(x[0], (0.0, 0))[0],
                                                                     tb.get(x[0], (0.0, x[0]))[1], x[0]))
    keep = math.ceil(top * len(ranked))
    for rank, (i, s) in enumerate(ranked):
        if rank >= keep:
            drops[i] = f"judge score {s} not in the top {top:.0%} (rank {rank + 1} of {len(ranked)})"
    return drops
