"""Start-up cost of the CLI: wall seconds of short commands, as a ratio to a bare interpreter.

    python benchmarks/bench_startup.py [--repeat 5] [--graphs 10]

Times, in fresh processes (best of ``--repeat``, so other jobs on the cores inflate it less):
``python -c pass`` (the baseline, measured in the same run), ``mmgen --help``, ``mmgen programs``,
``mmgen generate`` on ``--graphs`` synthetic scene graphs and ``mmgen verify`` of its output. Targets
from the start-up issue: ``--help`` under 0.5 s and ``generate`` of 10 graphs under 1.5 s on a quiet
machine. Prints the machine (CPU model, cores, Python) with the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from scene_graphs.io import write_graphs
from scene_graphs.synthetic import random_graph


def best_wall(cmd: list[str], repeat: int, env: dict[str, str], cwd: Path) -> float:
    """Best wall-clock seconds of ``repeat`` runs of ``cmd`` in ``cwd`` (which must succeed)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
        best = min(best, time.perf_counter() - start)
    return best


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (the best is reported)")
    parser.add_argument("--graphs", type=int, default=10, help="synthetic graphs for generate/verify")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    mmgen = [sys.executable, "-m", "mmgen", "-q"]
    with tempfile.TemporaryDirectory() as tmp:
        sg, qa = Path(tmp) / "sg", Path(tmp) / "qa"
        rng = np.random.default_rng(0)
        write_graphs(sg / "part-00000.jsonl", [random_graph(rng, f"g{i:04d}") for i in range(args.graphs)])
        runs = {
            "python -c pass (baseline)": [sys.executable, "-c", "pass"],
            "mmgen --help": [*mmgen, "--help"],
            "mmgen programs": [*mmgen, "programs"],
            f"mmgen generate ({args.graphs} graphs)": [*mmgen, "generate", str(sg), "-o", str(qa), "--overwrite"],
            f"mmgen verify ({args.graphs} graphs)": [*mmgen, "verify", str(qa), "--scene-graphs", str(sg)],
        }
        times = {name: best_wall(cmd, args.repeat, env, Path(tmp)) for name, cmd in runs.items()}
    base = times["python -c pass (baseline)"]
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"best of {args.repeat} runs")
    for name, seconds in times.items():
        print(f"{name:<34} {seconds:6.3f} s   {seconds / base:5.1f}x baseline")


if __name__ == "__main__":
    main()
