"""English inflection for templates, through the ``inflect`` library (never hand-rolled suffixes).

``inflect`` is imported on first use, without ``typeguard``'s instrumentation: inflect decorates its
API with ``@typechecked``, which recompiles every method at import (seconds of start-up) and checks
argument types on every call. Our inputs are plain strings, so the checks buy nothing.
"""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

_ENGINE_LOCK = threading.Lock()


def _import_inflect_unchecked() -> types.ModuleType:
    """``inflect`` with ``typeguard.typechecked`` as a no-op while it is imported (a stand-in module for
    the import only; the real ``typeguard`` stays importable, untouched, by anyone else)."""
    if "inflect" in sys.modules:
        return sys.modules["inflect"]
    stand_in = types.ModuleType("typeguard")

    def typechecked(target: Any = None, **_: Any) -> Any:
        return target if target is not None else (lambda fn: fn)

    stand_in.typechecked = typechecked  # type: ignore[attr-defined]
    real = sys.modules.get("typeguard")
    sys.modules["typeguard"] = stand_in
    try:
        import inflect
    finally:
        if real is not None:
            sys.modules["typeguard"] = real
        else:
            sys.modules.pop("typeguard", None)
    return inflect


@lru_cache(maxsize=1)
def inflect_engine() -> Any:
    """The process's one ``inflect.engine()`` (imported on first use)."""
    with _ENGINE_LOCK:
        return _import_inflect_unchecked().engine()

_SMALL = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


@lru_cache(maxsize=4096)
def plural(noun: str) -> str:
    """``cup`` -> ``cups``, ``person`` -> ``people``, ``traffic light`` -> ``traffic lights``; a label that
    is already plural stays as it is (``sunglasses``, ``skis``, ``men``), where inflect alone would
    give ``sunglassess``."""
    if _already_plural(noun.rsplit(" ", 1)[-1]):
        return noun
    return inflect_engine().plural_noun(noun) or noun


def _already_plural(word: str) -> bool:
    if word.endswith("s"):
        # inflect adds a bare "s" only to words already ending in a plural "s" (a singular such as
        # "bus" or "glass" gets "es")
        return inflect_engine().plural_noun(word) == word + "s"
    singular = inflect_engine().singular_noun(word)  # irregular plurals: men, children, mice
    return bool(singular) and singular != word and inflect_engine().plural_noun(singular) == word


@lru_cache(maxsize=4096)
def with_article(noun_phrase: str) -> str:
    """``apple`` -> ``an apple``, ``cup`` -> ``a cup``."""
    return inflect_engine().a(noun_phrase)


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
