"""Single-image program throughput: ms per image for all programs, on synthetic and bundled graphs.

    python benchmarks/bench_programs.py [--graphs 300] [--objects 20] [--relations 30] [--repeat 3] [--per-program]

Reports, per graph set, the time of all programs per image (wall clock and CPU time of this process,
best of ``--repeat`` runs: other processes sharing the cores inflate the wall clock) and its ratio to
a baseline measured in the same run, parsing the same graphs from JSON (what every stage pays
anyway). One core, one process. ``--per-program`` adds where the time goes: the phases (solved
candidates, seeding, answer balancing, realizing records) and the slowest programs, timed in the
order ``run_single`` runs them on one shared view per image (so a program is charged for the
per-view caches it is the first to need, as in a real run).
"""

from __future__ import annotations

import argparse
import platform
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

from programs.base import GraphView, ProgramConfig, make_rng, run_single, single_programs
from scene_graphs.io import iter_graphs
from scene_graphs.model import SceneGraph
from scene_graphs.synthetic import random_graph


def _time(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best (wall, CPU) seconds of ``repeat`` runs."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
    return wall, cpu


def _breakdown(graphs: list[SceneGraph], config: ProgramConfig, repeat: int,
               ids: list[str] | None = None) -> tuple[dict[str, float], Counter]:
    """CPU seconds per phase and per program (best of ``repeat``), programs run as ``run_single`` does."""
    programs = single_programs(ids)
    phases: dict[str, float] = {}
    per_program: Counter = Counter()
    for _ in range(repeat):
        t = {"view": 0.0, "candidates": 0.0, "seeding": 0.0, "balancing": 0.0, "records": 0.0}
        by_program: Counter = Counter()
        for g in graphs:
            c = time.process_time()
            view = GraphView(g, config)
            t["view"] += time.process_time() - c
            for p in programs:
                if not p.applicable(g):
                    continue
                c0 = time.process_time()
                solved = p.plans(view)
                c1 = time.process_time()
                t["candidates"] += c1 - c0
                if solved:
                    rng = make_rng(config.seed, (g.image_id,), p.id)
                    c2 = time.process_time()
                    chosen = p.select_solved(solved, rng, config.max_per_image)
                    c3 = time.process_time()
                    for i, (plan, value) in enumerate(chosen):
                        p._make_qa([view], plan, value, rng, config, i)
                    c4 = time.process_time()
                    t["seeding"] += c2 - c1
                    t["balancing"] += c3 - c2
                    t["records"] += c4 - c3
                by_program[p.id] += time.process_time() - c0
        for k, v in t.items():
            phases[k] = min(phases.get(k, float("inf")), v)
        if not per_program or sum(by_program.values()) < sum(per_program.values()):
            per_program = by_program
    return phases, per_program


def bench(name: str, graphs: list[SceneGraph], config: ProgramConfig, per_program: bool, repeat: int,
          ids: list[str] | None = None) -> None:
    programs = single_programs(ids)
    blobs = [orjson.dumps(g.to_dict()) for g in graphs]
    depths = [g.depth for g in graphs]
    parse, _ = _time(lambda: [SceneGraph.from_dict(orjson.loads(b), d) for b, d in zip(blobs, depths)], repeat)
    records: Counter = Counter()

    def run_all() -> None:
        records.clear()
        for g in graphs:
            for qa in run_single(g, config, programs):
                records[qa.program] += 1

    wall, cpu = _time(run_all, repeat)
    n = len(graphs)
    print(f"{name}: {n} graphs, {sum(records.values())} records, {len(programs)} programs")
    print(f"  all programs: {1000 * wall / n:.2f} ms/image wall, {1000 * cpu / n:.2f} ms/image CPU "
          f"({sum(records.values()) / wall:,.0f} records/s); baseline JSON parse {1000 * parse / n:.3f} ms/image; "
          f"ratio {wall / parse:.1f}x")
    if per_program:
        phases, by_program = _breakdown(graphs, config, repeat, ids)
        print("  CPU by phase: " + ", ".join(f"{k} {1000 * v / n:.2f}" for k, v in phases.items()) + " ms/image")
        for pid, t in by_program.most_common(12):
            print(f"    {pid:<36} {1000 * t / n:.3f} ms/image")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graphs", type=int, default=300)
    ap.add_argument("--objects", type=int, default=20)
    ap.add_argument("--relations", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3, help="Runs per measurement; the best is reported.")
    ap.add_argument("--per-program", action="store_true", help="Also show phases and the slowest programs.")
    ap.add_argument("--only", default=None,
                    help="Comma-separated program ids to time (e.g. the programs an older commit had, to compare "
                         "the same work before and after a change); default: every single-image program.")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, one core")
    config = ProgramConfig(seed=0)
    rng = np.random.default_rng(0)
    big = [random_graph(rng, image_id=f"s{i}", n_objects=args.objects, n_relations=args.relations, width=640,
                        height=480) for i in range(args.graphs)]
    ids = [i for i in args.only.split(",") if i] if args.only else None
    bench(f"synthetic {args.objects} objects / {args.relations} relations", big, config, args.per_program,
          args.repeat, ids)
    assets = Path(__file__).resolve().parent.parent / "assets" / "scene_graphs"
    if assets.exists():
        bench("bundled assets/scene_graphs", list(iter_graphs(assets)), config, args.per_program, args.repeat, ids)


if __name__ == "__main__":
    main()
