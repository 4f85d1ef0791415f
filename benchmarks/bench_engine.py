"""Engine scale benchmark: synthetic scene graphs -> QA records with ``mmgen generate``.

Measures throughput (graphs/s, records/s) and peak memory (resident set size of the driver and of
the largest worker) for growing inputs, for 1 and 2 worker processes, and the Ray engine's
overhead against the local one on the same input. Every measured run is a fresh process
(``python -m mmgen generate``), so peak RSS is that run's alone.

Input: ``--pool`` distinct small random graphs (``scene_graphs.synthetic.random_graph``: 1-4 objects,
no masks, depth or text) repeated under new image ids up to ``--graphs``, in shards of
``--shard-size`` graphs. Program randomness is seeded by the image id, so repeated graphs still give
different questions. ``--programs`` defaults to two cheap programs so the engine (reading, writing,
sharding, markers), not the program library, is what is measured; ``--programs all`` runs every
single-image program.

Usage::

    python benchmarks/bench_engine.py --graphs 100000 1000000 --workers 1 2 --ray 100000
    python benchmarks/bench_engine.py --graphs 20000 --programs all
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scene_graphs.synthetic import random_graph

CHEAP_PROGRAMS = "single.count_objects,single.exists"


def make_provision_like(folder: Path, n: int, shard_size: int, seed: int = 0) -> float:
    """Write ``n`` distinct ProVision-like graphs (4-8 objects with masks, a depth map each, no text) in
    shards (depth maps in the ``.depth.npz`` beside each); returns the seconds it took."""
    from scene_graphs.io import write_graphs

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(0, n, shard_size):
        write_graphs(folder / f"part-{s // shard_size:05d}.jsonl",
                     [random_graph(rng, "g%09d" % i, n_objects=int(rng.integers(4, 9)), masks=True, depth=True,
                                   text=False) for i in range(s, min(n, s + shard_size))])
    return time.perf_counter() - started


def make_input(folder: Path, n: int, shard_size: int, pool: int, seed: int = 0) -> float:
    """Write ``n`` graphs in shards; returns the seconds it took."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    templates = []
    for i in range(pool):
        g = random_graph(rng, "ID", n_objects=int(rng.integers(1, 5)), masks=False, depth=False, text=False)
        head, tail = orjson.dumps(g.to_dict()).split(b'"ID"', 1)
        templates.append((head, tail))
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(0, n, shard_size):
        with open(folder / f"part-{s // shard_size:05d}.jsonl", "wb") as f:
            f.writelines(templates[i % pool][0] + b'"g%09d"' % i + templates[i % pool][1] + b"\n"
                         for i in range(s, min(n, s + shard_size)))
    return time.perf_counter() - started


_RUNNER = """
import json, resource, sys, time
from mmgen.engine import EngineOptions
from mmgen.stages.generate import generate
from programs.base import ProgramConfig
src, out, programs, workers, engine = sys.argv[1:6]
ids = None if programs == "all" else programs.split(",")
if engine == "ray":
    import ray
    t = time.perf_counter()
    ray.init(num_cpus=int(workers), include_dashboard=False, logging_level="ERROR")
    ray_start = time.perf_counter() - t
else:
    ray_start = 0.0
t = time.perf_counter()
s = generate(src, out, ProgramConfig(seed=0), ids, options=EngineOptions(workers=int(workers), engine=engine))
wall = time.perf_counter() - t
self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"wall": wall, "ray_start": ray_start, "graphs": s["graphs"], "records": s["records"],
                  "driver_mb": self_kb / 1024, "worker_mb": child_kb / 1024}))
"""


def measure(src: Path, programs: str, workers: int, engine: str = "local") -> dict:
    with tempfile.TemporaryDirectory(dir=src.parent) as tmp:
        out = Path(tmp) / "qa"
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _RUNNER, str(src), str(out), programs, str(workers), engine],
                              cwd=ROOT, capture_output=True, text=True, check=False, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["process_wall"] = time.perf_counter() - started
        result["output_mb"] = sum(p.stat().st_size for p in out.glob("part-*.jsonl")) / 2**20
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graphs", type=int, nargs="+", default=[100_000], help="input sizes to measure")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to measure")
    ap.add_argument("--ray", type=int, nargs="*", default=[], help="input sizes to also run on Ray (2 CPUs)")
    ap.add_argument("--shard-size", type=int, default=10_000)
    ap.add_argument("--pool", type=int, default=2000, help="distinct graphs repeated under new ids")
    ap.add_argument("--programs", default=CHEAP_PROGRAMS, help="comma-separated ids, or all")
    ap.add_argument("--tmp", type=Path, default=None, help="folder for the data (default: system temp)")
    ap.add_argument("--provision-like", action="store_true",
                    help="distinct graphs of 4-8 objects with masks and depth maps (issue 15 item 7) instead of "
                         "the --pool of small ones")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for n in sorted(set(args.graphs) | set(args.ray)):
            src = Path(tmp) / f"sg-{n}"
            made = make_provision_like(src, n, args.shard_size) if args.provision_like else \
                make_input(src, n, args.shard_size, args.pool)
            mb = sum(p.stat().st_size for p in src.glob("*.jsonl")) / 2**20
            print(f"input: {n:,} graphs, {mb:,.0f} MB in {len(list(src.glob('*.jsonl')))} shards "
                  f"(written in {made:.1f} s)", flush=True)
            runs = [("local", w) for w in args.workers if n in args.graphs] + \
                   ([("ray", max(args.workers))] if n in args.ray else [])
            for engine, workers in runs:
                r = measure(src, args.programs, workers, engine)
                rows.append({"graphs": n, "engine": engine, "workers": workers, **r})
                print(f"  {engine:5s} workers={workers}: {r['wall']:7.1f} s  {n / r['wall']:8,.0f} graphs/s  "
                      f"{r['records'] / r['wall']:9,.0f} records/s  peak RSS driver {r['driver_mb']:6.0f} MB, "
                      f"largest worker {r['worker_mb']:6.0f} MB  ({r['records']:,} records, "
                      f"{r['output_mb']:,.0f} MB out" + (f", ray start {r['ray_start']:.1f} s" if engine == "ray"
                                                       else "") + ")", flush=True)
                print(f"    {1000 * r['wall'] / n:.2f} ms per image in generate(), "
                      f"{1000 * r['process_wall'] / n:.2f} ms end to end (new process, imports)", flush=True)
            shutil.rmtree(src)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
