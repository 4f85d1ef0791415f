"""English inflection for templates, through the ``inflect`` library (never hand-rolled suffixes)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import inflect

_engine = inflect.engine()

_SMALL = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


@lru_cache(maxsize=4096)
def plural(noun: str) -> str:
    """``cup`` -> ``cups``, ``person`` -> ``people``, ``traffic light`` -> ``traffic lights``; a label that
    is already plural stays as it is (``sunglasses``, ``skis``, ``men``), where inflect alone would
    give ``sunglassess``."""
    if _already_plural(noun.rsplit(" ", 1)[-1]):
        return noun
    return _engine.plural_noun(noun) or noun


def _already_plural(word: str) -> bool:
    if word.endswith("s"):
        # inflect adds a bare "s" only to words already ending in a plural "s" (a singular such as
        # "bus" or "glass" gets "es")
        return _engine.plural_noun(word) == word + "s"
    singular = _engine.singular_noun(word)  # irregular plurals: men, children, mice
    return bool(singular) and singular != word and _engine.plural_noun(singular) == word


@lru_cache(maxsize=4096)
def with_article(noun_phrase: str) -> str:
    """``apple`` -> ``an apple``, ``cup`` -> ``a cup``."""
    return _engine.a(noun_phrase)


def number_word(n: int) -> str:
    """``3`` -> ``three`` up to ten, digits beyond (as people write counts)."""
    return _SMALL[n] if 0 <= n < len(_SMALL) else str(n)


def count_phrase(n: int, noun: str) -> str:
    """``0, cup`` -> ``no cups``; ``1`` -> ``one cup``; ``3`` -> ``three cups``."""
    if n == 0:
        return f"no {plural(noun)}"
    return f"{number_word(n)} {noun if n == 1 else plural(noun)}"


def be(n: int) -> str:
    """``is`` for one, ``are`` otherwise."""
    return "is" if n == 1 else "are"


def join(items: Sequence[str], conj: str = "and") -> str:
    """``[a, b, c]`` -> ``a, b and c`` (no serial comma, like the rest of mmgen's text)."""
    items = list(items)
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {conj} {items[-1]}"


def capitalize(text: str) -> str:
    """First letter upper-case, the rest untouched (``the cup`` -> ``The cup``)."""
    return text[:1].upper() + text[1:]


def fmt_box(box: Sequence[float]) -> str:
    """A normalised box as written in questions and answers: ``[0.12, 0.30, 0.25, 0.45]``."""
    return "[" + ", ".join(f"{v:.2f}" for v in box) + "]"
