"""The blind-solver battery (issue 12, item 1): no multiple-choice program may be solvable from its text.

Records of every program on many random graphs (single images) and image pairs (multi-image) are
split by image: solvers from :mod:`tests.blind` are fitted on the records of even images and scored
on those of odd images. Every solver must stay within ``MARGIN`` of chance for every program with
enough records to tell (``MIN_ITEMS`` in the scoring half).

Run as a script to print the table: ``python -m tests.test_blind_solvers``.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

import numpy as np
import pytest

from programs.base import GraphView, ProgramConfig, load_all, run_single
from programs.multi.common import run_multi
from scene_graphs.synthetic import random_graph
from tests.blind import Item, battery, items_of, worst
from tests.strategies import with_evidence

MARGIN = 0.05
MIN_ITEMS = 150
N_GRAPHS = 1600
N_SETS = 1200
CONFIG = ProgramConfig(seed=3, max_per_image=3, mc_ratio=1.0)
PROGRAMS = {pid: cls() for pid, cls in load_all().items()}
SINGLE = [p for p in PROGRAMS.values() if not p.multi_image and p.num_options]
MULTI = [p for p in PROGRAMS.values() if p.multi_image and p.num_options]


@lru_cache(maxsize=1)
def _split_items() -> dict[str, tuple[list[Item], list[Item]]]:
    """Program id -> (fitting items, scoring items)."""
    out: dict[str, tuple[list[Item], list[Item]]] = defaultdict(lambda: ([], []))
    rng = np.random.default_rng(2024)
    for i in range(N_GRAPHS):
        g = with_evidence(random_graph(rng, image_id=f"b{i:05d}"), rng)
        for pid, recs in _by_program(run_single(g, CONFIG, SINGLE)).items():
            out[pid][i % 2].extend(items_of(recs))
    for i in range(N_SETS):
        graphs = [with_evidence(random_graph(rng, image_id=f"m{i:05d}-{k}", n_objects=int(rng.integers(1, 6))), rng)
                  for k in range(int(rng.integers(2, 4)))]
        views = [GraphView(g, CONFIG) for g in graphs]
        for pid, recs in _by_program(run_multi(views, CONFIG, MULTI)).items():
            out[pid][i % 2].extend(items_of(recs))
    return dict(out)


def _by_program(records) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for r in records:
        out[r.program].append(r)
    return out


def table() -> dict[str, dict[str, float]]:
    """Program id -> solver scores (and ``n``, the scoring half's size)."""
    out = {}
    for pid, (fit, test) in sorted(_split_items().items()):
        scores = battery(fit, test)
        scores["n"] = float(len(test))
        out[pid] = scores
    return out


KNOWN_LEAKS = {
    # answer-vocabulary priors: the distractor vocabulary (every colour family, every count of a window,
    # the predicates geometry can deny, ...) differs from the distribution answers come from, so a
    # solver learns which values are usually right. Needs distractors drawn from a per-program answer
    # prior (run-level data), not yet done. Measured on this battery (answer_text accuracy vs chance).
    "multi.count_difference": "answer_text 0.62 vs 0.25",
    "multi.total_count": "answer_text 0.56 vs 0.25",
    "multi.which_image_lacks_relation": "answer_text 0.56 vs 0.50",
    "single.attribute_color": "answer_text 0.38 vs 0.25",
    "single.attribute_material": "answer_text 0.74 vs 0.25",
    "single.attribute_state": "answer_text 0.75 vs 0.50",
    "single.attributes_at_region": "answer_text 0.55 vs 0.25",
    "single.bottommost": "answer_text 0.385 vs 0.333 (entangled pairs left out shift which labels win)",
    "single.count_attribute": "answer_text 0.62 vs 0.25",
    "single.count_objects": "answer_text 0.56 vs 0.25",
    "single.count_text": "answer_text 0.44 vs 0.25",
    "single.relation_between": "answer_text 0.77 vs 0.33",
    "single.relation_between_regions": "answer_text 0.79 vs 0.33",
    "single.subgraph_attribute": "answer_text 0.55 vs 0.25",
    "single.subgraph_relation": "answer_text 0.79 vs 0.33",
    "single.text_on_object": "answer_text 0.74 vs 0.25",
}
"""Programs still solvable blind, each with its measured leak (strict xfail: fixing one fails the test
until it is removed from this table)."""


def _params() -> list:
    out = []
    for pid in sorted(p.id for p in SINGLE + MULTI):
        marks = [pytest.mark.xfail(reason=KNOWN_LEAKS[pid], strict=True)] if pid in KNOWN_LEAKS else []
        out.append(pytest.param(pid, marks=marks, id=pid))
    return out


@pytest.mark.parametrize("program_id", _params())
def test_blind_solvers_stay_at_chance(program_id):
    fit, test = _split_items().get(program_id, ([], []))
    if len(test) < MIN_ITEMS or len(fit) < MIN_ITEMS:
        pytest.skip(f"{program_id}: only {len(test)} multiple-choice records to score")
    scores = battery(fit, test)
    name, gain = worst(scores)
    assert gain <= MARGIN, (f"{program_id}: blind solver {name!r} scores {scores[name]:.3f} vs chance "
                            f"{scores['chance']:.3f} on {len(test)} records; all: "
                            + ", ".join(f"{k}={v:.3f}" for k, v in scores.items()))


def test_battery_catches_a_leaky_generator():
    """The battery itself can fail: options in canonical order with the answer inserted are caught."""
    rng = np.random.default_rng(0)
    items = []
    for _ in range(600):
        opts = sorted(rng.choice(10, size=3, replace=False).tolist())
        answer = str(int(rng.integers(10, 20)))
        k = int(rng.integers(4))
        texts = [str(o) for o in opts]
        texts.insert(k, answer)
        items.append(Item("How many?", tuple(texts), k))
    scores = battery(items[::2], items[1::2])
    assert worst(scores)[1] > 0.2


if __name__ == "__main__":
    for pid, s in table().items():
        n = s.pop("n")
        name, gain = worst(s)
        flag = "FAIL" if gain > MARGIN and n >= MIN_ITEMS else "ok"
        print(f"{flag:4} {pid:40} n={int(n):5} chance={s['chance']:.3f} worst={name}:{s[name]:.3f} "
              + " ".join(f"{k}={v:.2f}" for k, v in s.items() if k != "chance"))
