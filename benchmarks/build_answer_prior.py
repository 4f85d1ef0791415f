"""Build ``programs/data/answer_prior.json``: per program, how often each answer value is the answer.

    python benchmarks/build_answer_prior.py [--graphs 4000] [--sets 3000] [--seed 11]
                                            [--extra DIR ...] [--out programs/data/answer_prior.json]

Programs that set ``answer_prior`` draw their multiple-choice distractors from a pool of false values
weighted by this table (:meth:`programs.base.Program.pick_distractors`). The records come from seeded
synthetic graphs (``scene_graphs.synthetic.random_graph`` with evidence of absence, single images and
image sets), the bundled ``assets/scene_graphs`` and any graph folders given with ``--extra`` (your own
annotated or imported graphs: the prior should follow the data it is used on).

A value's weight is its share of the program's answers; a key never seen as an answer gets the floor
(half a count). Distractors drawn independently by these shares, with sets that repeat a value refused,
make every member of an option set equally likely to be the answer (see ``pick_distractors``), so no
calibration is needed. The same arguments always give the same file (seeded graphs, sorted keys, rounded
weights); nothing at generation time depends on a run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from programs import base  # noqa: E402
from programs.base import GraphView, Program, ProgramConfig, load_all, run_single  # noqa: E402
from programs.multi.common import run_multi  # noqa: E402
from scene_graphs.io import iter_graphs  # noqa: E402
from scene_graphs.model import SceneGraph  # noqa: E402
from scene_graphs.synthetic import random_graph  # noqa: E402
from tests.strategies import with_evidence  # noqa: E402

log = logging.getLogger("build_answer_prior")
CONFIG = ProgramConfig(seed=11, max_per_image=3, mc_ratio=1.0)

Tally = dict[str, tuple[Counter, Counter, Counter]]
"""Program id -> (answers per key, answers of multiple-choice records per key, distractor offers per key)."""


def prior_programs() -> list[Program]:
    return [cls() for cls in load_all().values() if cls.answer_prior and cls.num_options]


def _graph_sets(args: argparse.Namespace) -> tuple[list[SceneGraph], list[list[SceneGraph]]]:
    rng = np.random.default_rng(args.seed)
    singles = [with_evidence(random_graph(rng, image_id=f"p{i:05d}"), rng) for i in range(args.graphs)]
    sets = [[with_evidence(random_graph(rng, image_id=f"q{i:05d}-{k}", n_objects=int(rng.integers(1, 6))), rng)
             for k in range(int(rng.integers(2, 4)))] for i in range(args.sets)]
    real: list[SceneGraph] = []
    for folder in [ROOT / "assets" / "scene_graphs", *args.extra]:
        real.extend(sorted(iter_graphs(Path(folder)), key=lambda g: g.image_id))
    singles.extend(real)
    sets.extend(real[i:i + 2] for i in range(0, len(real) - 1, 2))
    return singles, sets


def tally(programs: list[Program], singles: list[SceneGraph], sets: list[list[SceneGraph]]) -> Tally:
    by_id = {p.id: p for p in programs}
    out: Tally = defaultdict(lambda: (Counter(), Counter(), Counter()))
    single = [p for p in programs if not p.multi_image]
    multi = [p for p in programs if p.multi_image]
    records = []
    for g in singles:
        records.extend(run_single(g, CONFIG, single))
    for graphs in sets:
        records.extend(run_multi([GraphView(g, CONFIG) for g in graphs], CONFIG, multi))
    for r in records:
        p = by_id[r.program]
        answers, offered_answers, offers = out[r.program]
        answers.update(p.prior_keys(r.answer))
        if r.options:
            offered_answers.update(p.prior_keys(r.answer))
        for i, o in enumerate(r.options):
            if i != r.answer_index:
                offers.update(p.prior_keys(o))
    return dict(out)


def _round(x: float) -> float:
    return float(f"{x:.4g}")


def initial(counts: Tally) -> dict:
    table = {}
    for pid, (answers, _, _) in sorted(counts.items()):
        total = sum(answers.values())
        if total:
            table[pid] = {"answers": total, "floor": _round(0.5 / total),
                          "weights": {k: _round(n / total) for k, n in sorted(answers.items())}}
    return table


def write(table: dict, path: Path, args: argparse.Namespace) -> None:
    doc = {"about": "Per program, weight of each answer value for drawing distractors (programs.base.AnswerPrior); "
                    "built by benchmarks/build_answer_prior.py",
           "built_with": {"graphs": args.graphs, "sets": args.sets, "seed": args.seed,
                          "extra": [str(e) for e in args.extra]},
           "programs": table}
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    base.answer_priors.cache_clear()


def leak(counts: Tally, k: dict[str, int]) -> dict[str, float]:
    """Per program: the largest share of offers in which a value (offered 20+ times) was the answer."""
    out = {}
    for pid, (_, answers, offers) in sorted(counts.items()):
        shares = [answers[v] / (answers[v] + offers[v]) for v in answers if answers[v] + offers[v] >= 20]
        out[pid] = max(shares, default=0.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--graphs", type=int, default=4000)
    ap.add_argument("--sets", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--extra", type=Path, nargs="*", default=[])
    ap.add_argument("--out", type=Path, default=ROOT / "programs" / "data" / "answer_prior.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    programs = prior_programs()
    k = {p.id: p.num_options for p in programs}
    singles, sets = _graph_sets(args)
    # the first tally must not see an old table: records drawn uniformly only count answers here
    if args.out.exists():
        args.out.unlink()
    base.answer_priors.cache_clear()
    counts = tally(programs, singles, sets)
    table = initial(counts)
    write(table, args.out, args)
    counts = tally(programs, singles, sets)
    log.info("final: largest P(answer | offered) %s (1/num_options: %s)",
             {pid: round(v, 3) for pid, v in leak(counts, k).items()},
             {pid: round(1 / n, 3) for pid, n in sorted(k.items())})


if __name__ == "__main__":
    main()
