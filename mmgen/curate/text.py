"""Text checks of curation: normalization, length and language.

**Length** (words are runs of letters or digits): a question has ``min_question_words`` to
``max_question_words`` words, an answer 1 to ``max_answer_words``; every turn of a conversation is
checked the same way.

**Language** (a screen for non-English or garbled text, mostly from LLM rewrites; text in double
quotes is left out, since quoted OCR text may be in any language):

* control characters (other than newline and tab) or U+FFFD mean garbled text;
* at least ``min_latin`` of the letters are Latin;
* a question of four words or more contains an English function word (``the``, ``is``, ``what``...).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Mapping

ENGLISH_FUNCTION_WORDS = frozenset({
    "the", "a", "an", "is", "are", "was", "were", "be", "do", "does", "did", "what", "which", "who", "where", "when",
    "how", "why", "of", "in", "on", "at", "to", "from", "with", "and", "or", "this", "that", "these", "those", "there",
    "it", "its", "by", "for", "as", "than", "can", "you", "your", "has", "have", "any", "each", "many", "much", "most",
    "image", "picture", "photo", "shown", "visible", "left", "right", "above", "below", "between", "describe",
    "list", "name", "count", "give", "find", "sort", "match", "fill", "write", "explain", "compare", "look",
})
WORD = re.compile(r"[^\W_]+")
_GARBLED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")
"""Control characters (C0 and C1, but tab, newline and carriage return) and U+FFFD."""


def normalize_text(text: str) -> str:
    """NFKC, lower case, whitespace collapsed, surrounding punctuation and spaces removed."""
    text = unicodedata.normalize("NFKC", str(text)).lower()
    return " ".join(text.split()).strip(" ?.!,;:")


def answer_key(rec: Mapping[str, Any]) -> str:
    """What answer balancing groups by: the program's answer ``value`` as canonical JSON when the record
    has one (evolved records keep their anchor value), else the normalized answer text."""
    import json

    value = rec.get("value")
    if value is not None:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return normalize_text(str(rec.get("answer", "")))


def words(text: str) -> list[str]:
    return WORD.findall(str(text).lower())


def _unquoted(text: str) -> str:
    return re.sub(r'"[^"]*"|\u201c[^\u201d]*\u201d', " ", str(text))


def length_problem(rec: Mapping[str, Any], min_question_words: int = 2, max_question_words: int = 150,
                   max_answer_words: int = 400) -> str | None:
    turns = [tuple(t) for t in rec.get("turns") or ()] or [(rec.get("question", ""), rec.get("answer", ""))]
    for n, (q, a) in enumerate(turns, 1):
        where = f" (turn {n})" if len(turns) > 1 else ""
        nq, na = len(words(q)), len(words(a))
        if nq < min_question_words:
            return f"question has {nq} word(s), fewer than {min_question_words}{where}"
        if nq > max_question_words:
            return f"question has {nq} words, more than {max_question_words}{where}"
        if na < 1:
            return f"empty answer{where}"
        if na > max_answer_words:
            return f"answer has {na} words, more than {max_answer_words}{where}"
    return None


def language_problem(text: str, min_latin: float = 0.9, check_words: bool = True) -> str | None:
    """Why ``text`` is not plain English (None when it passes); see the module docstring."""
    text = str(text)
    if _GARBLED.search(text):
        return "garbled text (control or replacement characters)"
    bare = _unquoted(text)
    letters = [] if bare.isascii() else [c for c in bare if c.isalpha()]  # ASCII letters are Latin
    if letters:
        latin = sum(1 for c in letters if unicodedata.name(c, "").startswith("LATIN")) / len(letters)
        if latin < min_latin:
            return f"mostly non-Latin script ({latin:.0%} Latin letters)"
    ws = words(bare)
    if check_words and len(ws) >= 4 and not any(w in ENGLISH_FUNCTION_WORDS for w in ws):
        return "does not read as English (no common English word)"
    return None


def record_language_problem(rec: Mapping[str, Any], min_latin: float = 0.9) -> str | None:
    turns = [tuple(t) for t in rec.get("turns") or ()] or [(rec.get("question", ""), rec.get("answer", ""))]
    for q, a in turns:
        problem = language_problem(q, min_latin) or language_problem(a, min_latin, check_words=False)
        if problem:
            return problem
    return None
