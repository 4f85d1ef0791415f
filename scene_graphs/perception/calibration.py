"""Per-label score calibration kept as data (``data/thresholds.json``).

A labelled set says, per label, the score from which that label's predictions are right often enough
(:func:`mmgen.check.evaluate.calibrate_thresholds`). :func:`calibrate` maps that per-label threshold ``t``
onto one global confident score ``c`` (0.5): ``s * c / t`` below ``t``, ``c + (s - t) * (1 - c) / (1 - t)``
above, so order within a label is kept and "score >= 0.5" means "confident" for every label.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

THRESHOLDS_FILE = Path(__file__).with_name("data") / "thresholds.json"


@lru_cache(maxsize=8)
def load_thresholds(path: str = str(THRESHOLDS_FILE)) -> Mapping[str, Any]:
    """The calibration table (``confident`` and ``per_label``) from ``path``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    per_label = {str(k): float(v) for k, v in dict(data.get("per_label", {})).items()}
    if any(not 0 < v < 1 for v in per_label.values()):
        raise ValueError(f"{path}: per-label thresholds must lie in (0, 1)")
    return {"confident": float(data.get("confident", 0.5)), "per_label": per_label}


def calibrate(score: float, threshold: float | None, confident: float = 0.5) -> float:
    """``score`` with ``threshold`` moved onto ``confident`` (unchanged when ``threshold`` is None)."""
    if threshold is None:
        return score
    if score < threshold:
        return score * confident / threshold
    return min(1.0, confident + (score - threshold) * (1 - confident) / (1 - threshold))
