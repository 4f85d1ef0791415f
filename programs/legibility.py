"""The one legibility gate for text that any program quotes (single or multi-image).

A text region may be *quoted* (read out as an answer, named in a question, stated in a rationale or a
caption) only when :func:`quotable`: its score reaches :data:`READ_SCORE` (and ``confident_score``) and
its string is :func:`legible`. The gate is applied by the programs themselves because graphs come from
anywhere: our OCR keeps only lines with recogniser score >= 0.8 that pass a ``wordfreq`` plausibility
check (``scene_graphs.perception.ocr``), but older graphs, hand-written and imported ones carry
arbitrary strings.

The programs' check is by *shape*, never by a dictionary: ``wordfreq`` is only in the ``vision`` extra,
and ``mmgen verify`` regenerates every record, so what is quotable must not depend on which optional
packages are installed. A string is legible when at least half of its characters are letters or digits,
every token (split at spaces, hyphens, slashes, dots, colons, apostrophes) is a short word, a number, a
short code or a word-like word (:func:`word_like`: letters only, a vowel, one letter case, no letter
tripled), **and** the string holds at least one *plausible* token (a number of two or more digits or a
word-like word of three or more letters) that makes up at least :data:`PLAUSIBLE_SHARE` of its letters
and digits. Codes and one- or two-letter tokens are neutral: a string of codes alone ("C000", "X1") is not
judged legible, so programs abstain on it (as the OCR gate does); what the shape check cannot judge is
never quoted.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from scene_graphs.model import TextRegion

from .base import GraphView

READ_SCORE = 0.8
"""Text regions are quoted only from this score on (and when :func:`legible`)."""
PLAUSIBLE_SHARE = 0.6
"""Share of a string's letters and digits that plausible tokens must make up (as the OCR gate)."""
_VOWELS = frozenset("aeiouy")
_SEPARATORS = re.compile(r"[-'’./:]")
_PUNCTUATION = ".,;:!?\"'()[]{}-–—&*#$€£%+"


def _latin(word: str) -> bool:
    return all(unicodedata.normalize("NFKD", ch)[:1].isascii() for ch in word)


def _has_vowel(word: str) -> bool:
    return any(ch in _VOWELS for ch in unicodedata.normalize("NFKD", word.casefold()))


def _one_case(word: str) -> bool:
    """All lower case, all upper case, or capitalised ("MaST" and "eléctricamEMTe" are OCR noise)."""
    return word.islower() or word.isupper() or (word[:1].isupper() and word[1:].islower())


@lru_cache(maxsize=8192)
def word_like(token: str) -> bool:
    """A token that reads as a word: at least 3 letters, letters only, and (in Latin script) a vowel,
    one letter case and no letter three times in a row ("SUTLLLR")."""
    if len(token) < 3 or not token.isalpha():
        return False
    if not _latin(token):
        return True
    folded = token.casefold()
    return _has_vowel(token) and _one_case(token) and re.search(r"(.)\1\1", folded) is None


def _part_weight(part: str) -> int | None:
    """Characters of ``part`` that make a string plausible (0: neutral), or ``None`` when the part is
    not writing at all."""
    if part.isalpha():
        if len(part) < 3:
            return 0
        return len(part) if word_like(part) else None
    if part.isdigit():
        return len(part) if len(part) >= 2 else 0
    # letters mixed with digits: numbers and codes ("C3", "A4", "3rd") only, and neutral
    return 0 if part.isalnum() and sum(ch.isalpha() for ch in part) <= 2 else None


@lru_cache(maxsize=16384)
def legible(text: str) -> bool:
    """Whether a string looks like writing that can be quoted (the rule in the module docstring).
    So "MADRID", "cero emisiones", "42" and "Bus 42" are legible; "**", "MaST", "C000", "X1",
    "M15OL/SUTLLR" and "In mins oo ctico e pln" are not."""
    stripped = text.strip()
    compact = stripped.replace(" ", "")
    if not compact or sum(ch.isalnum() for ch in compact) * 2 < len(compact):
        return False
    plausible = total = 0
    for token in stripped.split():
        core = token.strip(_PUNCTUATION)
        for part in _SEPARATORS.split(core) if core else ():
            if not part:
                continue
            weight = _part_weight(part)
            if weight is None:
                return False
            plausible += weight
            total += sum(ch.isalnum() for ch in part)
    return plausible > 0 and plausible >= PLAUSIBLE_SHARE * total


def quotable(view: GraphView, region: TextRegion) -> bool:
    """Whether a program may quote this region: read at least :data:`READ_SCORE` (and
    ``confident_score``) and :func:`legible`."""
    return region.score >= max(READ_SCORE, view.config.confident_score) and legible(region.text)


def quotable_regions(view: GraphView, program_id: str) -> list[TextRegion]:
    """The view's regions a program may quote, by id; each visible region the gate refuses is counted as
    one abstention of ``program_id`` (``view.abstain``)."""
    kept = [r for r in sorted(view.text, key=lambda r: r.id) if quotable(view, r)]
    refused = len(view.text) - len(kept)
    if refused:
        view.abstain(program_id, "text not legible or not read well enough to quote", refused)
    return kept
