"""Multi-image throughput: image sets per second for all multi-image programs, the whole stage, and grouping.

    python benchmarks/bench_multi.py [--graphs 300] [--objects 20] [--relations 30] [--sets 400]
                                     [--index 1000000] [--per-program]

1. programs: every multi-image program on random sets (2-4 images) of synthetic graphs, views built
   per set as the stage does (one process, one core);
2. stage: ``generate_multi`` end to end (index, shared-category grouping, loading graphs by offset,
   programs, writing shards) on the same graphs written as shards, one worker;
3. grouping: random and shared-category sets over a synthetic index of ``--index`` images (no graphs),
   images per second, to size runs of millions of images.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from mmgen.stages.generate_multi import generate_multi
from mmgen.groups import GroupOptions, ImageIndex, random_sets, shared_category_sets
from programs.base import GraphView, ProgramConfig
from programs.multi.common import multi_programs, run_multi
from scene_graphs.io import write_graphs
from scene_graphs.synthetic import random_graph


def bench_programs(graphs: list, n_sets: int, config: ProgramConfig, per_program: bool) -> None:
    rng = np.random.default_rng(1)
    sets = [tuple(int(i) for i in rng.choice(len(graphs), size=int(rng.integers(2, 5)), replace=False))
            for _ in range(n_sets)]
    programs = multi_programs()
    records: Counter = Counter()
    t = time.perf_counter()
    for s in sets:
        for qa in run_multi([GraphView(graphs[i], config) for i in s], config, programs):
            records[qa.program] += 1
    dt = time.perf_counter() - t
    images = sum(len(s) for s in sets)
    print(f"programs: {n_sets} sets ({images / n_sets:.1f} images each), {sum(records.values())} records, "
          f"{len(programs)} programs: {n_sets / dt:,.0f} sets/s ({1000 * dt / n_sets:.2f} ms/set, "
          f"{sum(records.values()) / dt:,.0f} records/s)")
    if per_program:
        rows = []
        for p in programs:
            t = time.perf_counter()
            for s in sets[:100]:
                views = [GraphView(graphs[i], config) for i in s]
                if all(p.applicable(v.graph) for v in views):
                    p.generate(views, config)
            rows.append((time.perf_counter() - t, p.id))
        for dt, pid in sorted(rows, reverse=True)[:8]:
            print(f"    {pid:<36} {1000 * dt / min(100, len(sets)):.3f} ms/set")


def bench_stage(graphs: list, config: ProgramConfig) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        half = len(graphs) // 2
        write_graphs(root / "sg" / "part-00000.jsonl", graphs[:half])
        write_graphs(root / "sg" / "part-00001.jsonl", graphs[half:])
        n_sets = 2 * len(graphs)
        t = time.perf_counter()
        summary = generate_multi(root / "sg", root / "qa", config, GroupOptions(sets=n_sets), workers=1)
        dt = time.perf_counter() - t
    print(f"stage (shared-category, 1 worker): {summary.sets} sets of {summary.images} images, {summary.records} "
          f"records in {dt:.2f} s: {summary.sets / dt:,.0f} sets/s")


def bench_grouping(n: int) -> None:
    rng = np.random.default_rng(0)
    n_labels = 1000
    weights = 1 / np.arange(1, n_labels + 1)  # a few common categories, a long tail
    owners = np.repeat(np.arange(n, dtype=np.int64), rng.integers(0, 9, size=n))
    drawn = rng.choice(n_labels, size=len(owners), p=weights / weights.sum())
    pairs = np.unique(owners * n_labels + drawn)  # distinct labels per image, grouped by image
    flat = (pairs % n_labels).astype(np.int32)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(pairs // n_labels, minlength=n), out=ptr[1:])
    index = ImageIndex(ids=[f"{i:09d}" for i in range(n)], shard=np.zeros(n, np.int32), offset=np.zeros(n, np.int64),
                       label_ptr=ptr, label_ids=flat, labels=[f"l{i}" for i in range(n_labels)])
    for name, fn in (("random", lambda: random_sets(n, GroupOptions(strategy="random"), 0)),
                     ("shared-category", lambda: shared_category_sets(index, GroupOptions(), 0))):
        t = time.perf_counter()
        sets = fn()
        dt = time.perf_counter() - t
        print(f"grouping {name}: {n:,} images -> {len(sets):,} sets in {dt:.2f} s ({n / dt:,.0f} images/s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graphs", type=int, default=300)
    ap.add_argument("--objects", type=int, default=20)
    ap.add_argument("--relations", type=int, default=30)
    ap.add_argument("--sets", type=int, default=400)
    ap.add_argument("--index", type=int, default=1_000_000, help="Images in the synthetic grouping index.")
    ap.add_argument("--per-program", action="store_true", help="Also time each program (slowest eight).")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, one core")
    config = ProgramConfig(seed=0)
    rng = np.random.default_rng(0)
    labels = ("person", "car", "dog", "cup", "chair", "bottle", "table", "bench", "bicycle", "horse")
    graphs = [random_graph(rng, image_id=f"s{i:05d}", n_objects=args.objects, n_relations=args.relations,
                           width=640, height=480, labels=labels, masks=False) for i in range(args.graphs)]
    print(f"graphs: {len(graphs)} synthetic, {args.objects} objects / {args.relations} relations, "
          f"labels from {len(labels)} categories")
    bench_programs(graphs, args.sets, config, args.per_program)
    bench_stage(graphs, config)
    bench_grouping(args.index)


if __name__ == "__main__":
    main()
