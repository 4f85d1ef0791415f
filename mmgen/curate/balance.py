"""Answer-balance capping per program (the run-level rule; per-image balancing is done by programs).

**The rule.** For one program, let ``c_a`` be the number of records with answer ``a`` (the answer key
of :func:`~mmgen.curate.text.answer_key`), ``k`` the number of distinct answers and
``s = max(max_share, 1/k)``. The cap ``T`` is the largest whole number such that an answer holding
``T`` records makes up at most ``s`` of the program's records once every answer is capped at ``T``::

    T <= s * sum_b min(c_b, T)

but never below ``min_count``. Answers with more than ``T`` records keep ``T`` of them: the highest
quality score first, ties broken by a seeded hash of the record id (so the choice is deterministic and
does not favour early shards). A yes/no program with 90 "yes" and 10 "no" keeps 10 of each at
``max_share`` 0.5 (or ``min_count`` of each if that is larger); a program whose every record has the
same answer (``k = 1``) is left alone.
"""

from __future__ import annotations

from typing import Mapping


def cap_for(counts: Mapping[str, int], max_share: float, min_count: int = 1) -> int | None:
    """The cap ``T`` of the module docstring, or None when no answer exceeds it."""
    if not counts:
        return None
    k = len(counts)
    share = max(max_share, 1.0 / k)
    values = sorted(counts.values())
    top = values[-1]

    def fits(t: int) -> bool:
        return t <= share * sum(min(c, t) for c in values) + 1e-9

    lo, hi = 0, top  # fits(0) holds; fits is true on [0, T*] (a concave minus a linear function)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    cap = max(lo, min_count, 1)
    return cap if cap < top else None
