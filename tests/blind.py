"""Text-only ("blind") solvers for multiple-choice records: what a model could learn without the image.

Each solver scores every option of a record from the text alone; the option with the best score is
chosen (ties split evenly, so a solver that cannot tell options apart scores exactly chance). A solver
is *fitted* on one half of the records (it chooses the sign or the table it uses there) and *scored*
on the other half, so what it finds is a real regularity of the generator, not of the test half.

Solvers (the battery of issue 12):

* ``position``: the answer slot seen most often in the fitting half.
* ``answer_text``: options by how often their text was the answer when offered (smoothed).
* ``order``: the option whose removal leaves the others sorted (numerically or as text).
* ``length``: the longest (or the shortest) option.
* ``overlap``: the option sharing the most (or fewest) words with the question.
* ``odd_one_out``: the option least (or most) similar to the other options (character trigrams).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9.]+")


@dataclass(frozen=True)
class Item:
    """One multiple-choice record as a blind solver sees it."""

    question: str
    options: tuple[str, ...]
    answer_index: int


def items_of(records: Sequence) -> list[Item]:
    """The multiple-choice records of ``records`` (QA objects) as :class:`Item`."""
    return [Item(r.question, tuple(r.options), int(r.answer_index)) for r in records if r.options]


def _expected(scores: Sequence[float], answer: int) -> float:
    """Accuracy of picking the best score, ties split evenly."""
    best = max(scores)
    tied = [i for i, s in enumerate(scores) if s == best]
    return 1.0 / len(tied) if answer in tied else 0.0


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _sorted_without(options: Sequence[str], i: int) -> bool:
    rest = [o for j, o in enumerate(options) if j != i]
    nums = [_number(o) for o in rest]
    keys: list = nums if all(n is not None for n in nums) else [o.lower() for o in rest]
    return keys == sorted(keys) or keys == sorted(keys, reverse=True)


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _trigrams(text: str) -> set[str]:
    t = f"  {text.lower()} "
    return {t[i:i + 3] for i in range(len(t) - 2)}


def _similarity(a: str, b: str) -> float:
    x, y = _trigrams(a), _trigrams(b)
    return len(x & y) / max(1, len(x | y))


Feature = Callable[[Item], list[float]]


def _f_order(item: Item) -> list[float]:
    return [float(_sorted_without(item.options, i)) for i in range(len(item.options))]


def _f_length(item: Item) -> list[float]:
    return [float(len(o)) for o in item.options]


def _f_overlap(item: Item) -> list[float]:
    q = _words(item.question)
    return [float(len(_words(o) & q)) for o in item.options]


def _f_odd(item: Item) -> list[float]:
    opts = item.options
    return [-sum(_similarity(o, p) for j, p in enumerate(opts) if j != i) for i, o in enumerate(opts)]


FEATURES: dict[str, Feature] = {"order": _f_order, "length": _f_length, "overlap": _f_overlap,
                                "odd_one_out": _f_odd}


def _accuracy(items: Sequence[Item], score: Callable[[Item], list[float]]) -> float:
    if not items:
        return 0.0
    return sum(_expected(score(it), it.answer_index) for it in items) / len(items)


def chance(items: Sequence[Item]) -> float:
    """Expected accuracy of a uniform guess."""
    return sum(1.0 / len(it.options) for it in items) / max(1, len(items))


def battery(fit: Sequence[Item], test: Sequence[Item]) -> dict[str, float]:
    """Accuracy on ``test`` of each solver fitted on ``fit`` (plus ``chance``)."""
    out = {"chance": chance(test)}
    slots = Counter(it.answer_index for it in fit)
    best_slot = max(sorted(slots), key=lambda s: slots[s]) if slots else 0
    out["position"] = _accuracy(test, lambda it: [float(i == best_slot) for i in range(len(it.options))])
    right: Counter = Counter()
    offered: Counter = Counter()
    for it in fit:
        for i, o in enumerate(it.options):
            offered[o] += 1
            right[o] += i == it.answer_index
    prior = {o: (right[o] + 1) / (offered[o] + 2) for o in offered}
    out["answer_text"] = _accuracy(test, lambda it: [prior.get(o, 0.5) for o in it.options])
    for name, feature in FEATURES.items():
        signs = {s: _accuracy(fit, lambda it, s=s: [s * v for v in feature(it)]) for s in (1.0, -1.0)}
        sign = max(signs, key=lambda s: (signs[s], s))
        out[name] = _accuracy(test, lambda it, sign=sign: [sign * v for v in feature(it)])
    return out


def worst(scores: dict[str, float]) -> tuple[str, float]:
    """The solver with the largest advantage over chance, and that advantage."""
    name = max((k for k in scores if k != "chance"), key=lambda k: scores[k])
    return name, scores[name] - scores["chance"]
