"""Single-image program throughput: ms per image for all programs, on synthetic and bundled graphs.

    python benchmarks/bench_programs.py [--graphs 300] [--objects 20] [--relations 30]

Reports, per graph set, the time of all programs per image and as a ratio to a baseline measured in the
same run: parsing the same graphs from JSON (what every stage pays anyway). One core, one process.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections import Counter
from pathlib import Path

import numpy as np
import orjson

from programs.base import GraphView, ProgramConfig, run_single, single_programs
from scene_graphs.io import iter_graphs
from scene_graphs.model import SceneGraph
from scene_graphs.synthetic import random_graph


def _time(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench(name: str, graphs: list[SceneGraph], config: ProgramConfig, per_program: bool) -> None:
    programs = single_programs()
    blobs = [orjson.dumps(g.to_dict()) for g in graphs]
    depths = [g.depth for g in graphs]
    parse = _time(lambda: [SceneGraph.from_dict(orjson.loads(b), d) for b, d in zip(blobs, depths)])
    records = Counter()

    def run_all() -> None:
        records.clear()
        for g in graphs:
            for qa in run_single(g, config, programs):
                records[qa.program] += 1

    total = _time(run_all)
    n = len(graphs)
    print(f"{name}: {n} graphs, {sum(records.values())} records, {len(programs)} programs")
    print(f"  all programs: {1000 * total / n:.2f} ms/image ({sum(records.values()) / total:,.0f} records/s); "
          f"baseline JSON parse {1000 * parse / n:.3f} ms/image; ratio {total / parse:.1f}x")
    if per_program:
        rows = []
        for p in programs:
            t = _time(lambda p=p: [p.generate([GraphView(g, config)], config) for g in graphs if p.applicable(g)], 1)
            rows.append((t, p.id))
        for t, pid in sorted(rows, reverse=True)[:10]:
            print(f"    {pid:<36} {1000 * t / n:.3f} ms/image")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graphs", type=int, default=300)
    ap.add_argument("--objects", type=int, default=20)
    ap.add_argument("--relations", type=int, default=30)
    ap.add_argument("--per-program", action="store_true", help="Also time each program (slowest ten).")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, one core")
    config = ProgramConfig(seed=0)
    rng = np.random.default_rng(0)
    big = [random_graph(rng, image_id=f"s{i}", n_objects=args.objects, n_relations=args.relations, width=640,
                        height=480) for i in range(args.graphs)]
    bench(f"synthetic {args.objects} objects / {args.relations} relations", big, config, args.per_program)
    assets = Path(__file__).resolve().parent.parent / "assets" / "scene_graphs"
    if assets.exists():
        bench("bundled assets/scene_graphs", list(iter_graphs(assets)), config, args.per_program)


if __name__ == "__main__":
    main()
