"""Exact and near-duplicate removal, per image (or image set).

Within the records of one image set (same ``images`` list), in input order, a record is dropped when

* **exact**: its normalized question (:func:`~mmgen.curate.text.normalize_text`) equals an earlier
  kept record's;
* **near**: the MinHash (``datasketch``, ``num_perm`` permutations) of its question's character
  5-grams has an estimated Jaccard similarity of at least ``threshold`` with an earlier kept record's
  *and* both have the same answer. Questions built from one template about different objects are
  similar (0.8 is common: "Which object in the image is green?" / "...pink?"); with different answers
  they are different facts and both stay. Candidates come from a ``MinHashLSH`` index at the same
  threshold and are confirmed with the estimate, so the outcome is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

SHINGLE = 5
NUM_PERM = 128


def shingles(text: str, n: int = SHINGLE) -> set[bytes]:
    if len(text) <= n:
        return {text.encode("utf-8")}
    return {text[i:i + n].encode("utf-8") for i in range(len(text) - n + 1)}


@lru_cache(maxsize=16)
def _lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """MinHashLSH's (bands, rows) for a threshold, computed once (datasketch integrates numerically)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return int(lsh.b), int(lsh.r)


@lru_cache(maxsize=16)
def _permutations(num_perm: int) -> tuple[Any, str]:
    """The (seeded, fixed) permutations and hashing scheme of a MinHash, made once and shared."""
    from datasketch import MinHash

    template = MinHash(num_perm=num_perm)
    return template.permutations, template.scheme


@dataclass(frozen=True)
class Item:
    """One record as dedup sees it: its position, normalized question and answer key."""

    index: int
    question: str
    answer: str


def find_duplicates(items: Sequence[Item], threshold: float = 0.85, any_answer: bool = False,
                    num_perm: int = NUM_PERM) -> dict[int, tuple[str, int, float]]:
    """``{index: (kind, index of the kept record it duplicates, similarity)}`` for the items (one image
    set, in input order) that are duplicates; ``kind`` is ``exact`` or ``near``."""
    from datasketch import MinHash, MinHashLSH

    out: dict[int, tuple[str, int, float]] = {}
    first: dict[str, int] = {}
    kept: list[Item] = []
    for item in items:
        if item.question in first:
            out[item.index] = ("exact", first[item.question], 1.0)
        else:
            first[item.question] = item.index
            kept.append(item)
    if threshold >= 1.0 or len(kept) < 2:
        return out
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=_lsh_params(threshold, num_perm))
    permutations, scheme = _permutations(num_perm)
    hashes: dict[int, MinHash] = {}
    answers: dict[int, str] = {}
    for item in kept:
        m = MinHash(num_perm=num_perm, permutations=permutations, scheme=scheme)
        m.update_batch(list(shingles(item.question)))
        best: tuple[int, float] | None = None
        for key in lsh.query(m):
            other = int(key)
            if not any_answer and answers[other] != item.answer:
                continue
            sim = float(m.jaccard(hashes[other]))
            if sim >= threshold and (best is None or other < best[0]):
                best = (other, sim)
        if best is not None:
            out[item.index] = ("near", best[0], round(best[1], 3))
            continue
        lsh.insert(str(item.index), m)
        hashes[item.index] = m
        answers[item.index] = item.answer
    return out
