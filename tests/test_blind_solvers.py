"""The blind-solver battery (issue 12, item 1): no multiple-choice program may be solvable from its text.

Records of every program on many random graphs (single images) and image pairs (multi-image) are
split by image: solvers from :mod:`tests.blind` are fitted on the records of even images and scored
on those of odd images. Every solver must stay within ``MARGIN`` of chance for every program with
enough records to tell (``MIN_ITEMS`` in the scoring half).

Run as a script to print the table: ``python -m tests.test_blind_solvers``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from functools import lru_cache

import numpy as np
import pytest

from programs.base import GraphView, ProgramConfig, answer_priors, load_all, run_single
from programs.multi.common import run_multi
from scene_graphs.synthetic import random_graph
from tests.blind import Item, battery, items_of, worst
from tests.strategies import with_evidence

MARGIN = 0.05
MIN_ITEMS = 150
N_GRAPHS = 1600
N_SETS = 1200
BOOST = 3
"""How many times more graphs the programs with too few multiple-choice records get."""
CONFIG = ProgramConfig(seed=3, max_per_image=3, mc_ratio=1.0)
PROGRAMS = {pid: cls() for pid, cls in load_all().items()}
SINGLE = [p for p in PROGRAMS.values() if not p.multi_image and p.num_options]
MULTI = [p for p in PROGRAMS.values() if p.multi_image and p.num_options]


@lru_cache(maxsize=1)
def _split_items() -> dict[str, tuple[list[Item], list[Item]]]:
    """Program id -> (fitting items, scoring items).

    Programs that seldom ask multiple-choice (an answer prior leaves a record free-form when no fair option
    set exists) get :data:`BOOST` times more graphs of their own, so that none escapes the battery with too
    few records to score."""
    out: dict[str, tuple[list[Item], list[Item]]] = defaultdict(lambda: ([], []))
    _collect(out, np.random.default_rng(2024), SINGLE, MULTI, N_GRAPHS, N_SETS, "")
    sparse = {pid for pid, (fit, test) in out.items() if min(len(fit), len(test)) < MIN_ITEMS}
    sparse |= {p.id for p in SINGLE + MULTI if p.id not in out}
    _collect(out, np.random.default_rng(2025), [p for p in SINGLE if p.id in sparse],
             [p for p in MULTI if p.id in sparse], BOOST * N_GRAPHS, BOOST * N_SETS, "x")
    return dict(out)


def _collect(out, rng: np.random.Generator, single: list, multi: list, n_graphs: int, n_sets: int,
             prefix: str) -> None:
    """Multiple-choice items of ``single``/``multi`` over seeded random graphs and sets, alternating halves."""
    if single:
        for i in range(n_graphs):
            g = with_evidence(random_graph(rng, image_id=f"{prefix}b{i:05d}"), rng)
            for pid, recs in _by_program(run_single(g, CONFIG, single)).items():
                out[pid][i % 2].extend(items_of(recs))
    if multi:
        for i in range(n_sets):
            graphs = [with_evidence(random_graph(rng, image_id=f"{prefix}m{i:05d}-{k}",
                                                 n_objects=int(rng.integers(1, 6))), rng)
                      for k in range(int(rng.integers(2, 4)))]
            views = [GraphView(g, CONFIG) for g in graphs]
            for pid, recs in _by_program(run_multi(views, CONFIG, multi)).items():
                out[pid][i % 2].extend(items_of(recs))


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
    # Measured on this battery (worst solver's accuracy vs chance). Colours, materials, states, counts and
    # attribute comparisons draw distractors by their answer shares (``answer_prior``); these remain:
    "multi.which_image_lacks_relation": "answer_text 0.556 vs 0.50 (Image 3 is rarely the answer: sets of 2 or 3)",
    "single.attribute_color": "length 0.301 vs 0.25 on 162 records (few fair option sets; the pool of "
                              "near colours left out differs by answer)",
    "single.bottommost": "answer_text 0.385 vs 0.333 (a label prior: what lies lowest in a picture)",
    "single.relation_between": "answer_text 0.466 vs 0.333: the predicates geometry can deny (left of, "
                               "above) are not the ones answers come from (riding, wearing)",
    "single.relation_between_regions": "answer_text 0.562 vs 0.333 (as relation_between)",
    "single.subgraph_attribute": "answer_text 0.332 vs 0.25 (answers mix categories, pools do not)",
    "single.subgraph_relation": "answer_text 0.457 vs 0.333 (as relation_between)",
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


def test_every_prior_program_has_an_answer_prior():
    """Programs drawing distractors by their answer prior find it in ``data/answer_prior.json``
    (rebuild it with ``python benchmarks/build_answer_prior.py`` after adding one)."""
    priors = answer_priors()
    wanted = sorted(p.id for p in PROGRAMS.values() if p.answer_prior and p.num_options)
    assert wanted and [pid for pid in wanted if pid not in priors] == []


def test_prior_picker_is_deterministic_and_never_offers_one_look_twice():
    p = PROGRAMS["single.attribute_color"]
    pool = ["black", "blue", "green", "gray", "grey", "white", "yellow", "brown"]
    seen_sets = set()
    for seed in range(200):
        picks = [p.pick_distractors(np.random.default_rng(seed), "red", pool, 3) for _ in range(2)]
        assert picks[0] == picks[1]
        if picks[0] is None:
            continue
        assert len(picks[0]) == 3 and "red" not in picks[0]
        assert not any(p.same_option(a, b) for i, a in enumerate(picks[0]) for b in picks[0][i + 1:]), picks[0]
        seen_sets.add(tuple(sorted(picks[0])))
    assert len(seen_sets) > 3


def test_prior_picker_offers_common_answers_more_often():
    """A count that is often the answer is offered more often than one that never is."""
    p = PROGRAMS["single.count_objects"]
    prior = answer_priors()[p.id]
    common = max(prior.weights, key=lambda k: (prior.weights[k], k))
    offered: Counter = Counter()
    for seed in range(400):
        picks = p.pick_distractors(np.random.default_rng(seed), "99", [str(v) for v in range(13)], 3)
        offered.update(picks or ())
    rare = [str(v) for v in range(13) if str(v) not in prior.weights]
    assert rare and all(offered[common] > 3 * offered[r] for r in rare), offered


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
