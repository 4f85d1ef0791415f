"""An InstructMining-style quality score from simple indicators (no model).

InstructMining rates instruction data with a weighted combination of indicators. Here each
indicator is in [0, 1] and the score is their weighted mean (:data:`WEIGHTS`):

=================  ======  =====================================================================
indicator          weight  1 when ...
=================  ======  =====================================================================
``well_formed``    0.20    the question ends with ``?``, or starts with an imperative (Describe,
                           List, Count, ...), or has a ``___`` blank; 0.5 when only capitalized
``question_len``   0.20    4 to 40 words; falls linearly to 0 at 1 word and at 120 words
``answer_len``     0.10    1 to 120 words; falls linearly to 0 at 400 words
``diversity``      0.15    no repeated word 3-gram in question + answer (share of distinct 3-grams)
``no_leak``        0.15    the answer (3+ characters, not yes/no) does not appear in the question,
                           unless the question offers choices (options, or "or" in it)
``rationale``      0.10    a rationale of 3+ words is given
``clean_chars``    0.10    letters, digits, spaces and common punctuation are 95%+ of the text
                           (linear to 0 at 60%)
=================  ======  =====================================================================
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from .text import normalize_text, words

WEIGHTS: dict[str, float] = {"well_formed": 0.20, "question_len": 0.20, "answer_len": 0.10, "diversity": 0.15,
                             "no_leak": 0.15, "rationale": 0.10, "clean_chars": 0.10}
IMPERATIVES = frozenset({"describe", "list", "count", "name", "give", "find", "sort", "order", "match", "fill",
                         "write", "explain", "compare", "identify", "locate", "tell", "provide", "point", "select",
                         "choose", "rank", "arrange", "summarize", "read", "look", "determine"})
_CLEAN = re.compile(r"[\w\s.,;:!?'\"()\[\]{}\-/%&+=*#@$<>]", re.UNICODE)


def _ramp(x: float, zero_at: float, one_at: float) -> float:
    if zero_at == one_at:
        return 1.0 if x >= one_at else 0.0
    return max(0.0, min(1.0, (x - zero_at) / (one_at - zero_at)))


def indicators(rec: Mapping[str, Any]) -> dict[str, float]:
    q = str(rec.get("question", ""))
    a = str(rec.get("answer", ""))
    qw, aw = words(q), words(a)
    stripped = q.strip()
    if stripped.endswith("?") or "___" in stripped or (qw and qw[0] in IMPERATIVES):
        well = 1.0
    elif stripped[:1].isupper():
        well = 0.5
    else:
        well = 0.0
    nq = len(qw)
    q_len = _ramp(nq, 1, 4) if nq < 4 else (1.0 if nq <= 40 else _ramp(nq, 120, 40))
    na = len(aw)
    a_len = 0.0 if na == 0 else (1.0 if na <= 120 else _ramp(na, 400, 120))
    tokens = qw + aw
    grams = [tuple(tokens[i:i + 3]) for i in range(len(tokens) - 2)]
    diversity = len(set(grams)) / len(grams) if grams else 1.0
    an = normalize_text(a)
    choices = bool(rec.get("options")) or " or " in f" {normalize_text(q)} "
    leak = len(an) >= 3 and an not in ("yes", "no") and not choices and re.search(
        r"(?<!\w)" + re.escape(an) + r"(?!\w)", normalize_text(q)) is not None
    rationale = 1.0 if len(words(str(rec.get("rationale") or ""))) >= 3 else 0.0
    text = q + " " + a
    clean = len(_CLEAN.findall(text)) / max(len(text), 1)
    return {"well_formed": well, "question_len": round(q_len, 4), "answer_len": round(a_len, 4),
            "diversity": round(diversity, 4), "no_leak": 0.0 if leak else 1.0, "rationale": rationale,
            "clean_chars": round(_ramp(clean, 0.6, 0.95), 4)}


def quality_score(rec: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
    """The weighted mean of :func:`indicators` (rounded to 4 places) and the indicators."""
    ind = indicators(rec)
    total = sum(WEIGHTS.values())
    return round(sum(WEIGHTS[k] * v for k, v in ind.items()) / total, 4), ind
