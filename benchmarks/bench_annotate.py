"""End-to-end ``mmgen annotate``: wall time of the whole command, this tree against a baseline commit.

    MMGEN_WEIGHTS_DIR=../shared/weights python benchmarks/bench_annotate.py \\
        [--baseline 83eaaf1] [--repeats 3] [--images assets/images] [--profile fast] [-- EXTRA ANNOTATE ARGS]

Each run is a fresh ``python -m mmgen annotate IMAGES -o TMP --profile P --device cpu`` subprocess (imports,
model loading and the first inference included: what a one-shot annotate pays), timed from start to
exit. The baseline runs from a temporary ``git worktree`` of ``--baseline`` with ``PYTHONPATH`` pointing at
it (checked: its ``mmgen`` and ``scene_graphs`` are the ones imported); the worktree is removed at the end.
Runs alternate (baseline, current, current, baseline, ...) so that load from other processes falls on both;
the load average is noted before every run. Printed: the machine (cores, CPU model), each run, and the
speed-up (baseline seconds / current seconds) as the median and range of the per-pair ratios, plus the
ratio of the medians. The per-stage seconds of the current tree's runs (``annotate.json``) are printed
too, to see where the time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """The CPU model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{platform.system()} {platform.release()}; {cpu_model()}; {os.cpu_count()} CPUs "
            f"({cores} usable); Python {platform.python_version()}")


def load_avg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def run_env(pythonpath: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def check_imports(pythonpath: Path | None, expected: Path) -> None:
    """Stop unless ``mmgen`` and ``scene_graphs`` import from ``expected`` under this ``PYTHONPATH``."""
    code = "import mmgen, scene_graphs; print(mmgen.__file__); print(scene_graphs.__file__)"
    out = subprocess.run([sys.executable, "-c", code], env=run_env(pythonpath), capture_output=True, text=True,
                         check=True, cwd=tempfile.gettempdir()).stdout.split()
    for f in out:
        if not Path(f).resolve().is_relative_to(expected.resolve()):
            raise SystemExit(f"with PYTHONPATH={pythonpath} the code comes from {f}, not from {expected}")


def annotate_once(pythonpath: Path | None, images: Path, profile: str, extra: list[str], tmp: Path,
                  cwd: Path) -> tuple[float, dict[str, float]]:
    """Wall seconds of one ``mmgen annotate`` and the per-stage seconds it reports."""
    out = Path(tempfile.mkdtemp(prefix="annotate-", dir=tmp))
    cmd = [sys.executable, "-m", "mmgen", "annotate", str(images), "-o", str(out), "--profile", profile,
           "--device", "cpu", *extra]
    started = time.perf_counter()
    res = subprocess.run(cmd, env=run_env(pythonpath), cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    seconds: dict[str, float] = {}
    try:
        summary = json.loads((out / "annotate.json").read_text())
        seconds = {k: float(v) for k, v in (summary.get("seconds") or {}).items() if isinstance(v, (int, float))}
    except (OSError, ValueError):
        pass
    shutil.rmtree(out, ignore_errors=True)
    return wall, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default="83eaaf1", help="commit to compare with (default: 83eaaf1)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each side (default 3)")
    ap.add_argument("--images", type=Path, default=ROOT / "assets" / "images")
    ap.add_argument("--profile", default="fast")
    ap.add_argument("extra", nargs="*", help="more arguments for mmgen annotate (after --)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-annotate-"))
    worktree = tmp / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.baseline],
                   check=True, capture_output=True)
    try:
        check_imports(worktree, worktree)
        check_imports(ROOT, ROOT)
        sides = {"baseline": (worktree, worktree), "current": (ROOT, ROOT)}
        print(f"machine: {machine()}")
        print(f"images: {args.images} ({args.profile} profile, cpu); baseline {args.baseline}; "
              f"{args.repeats} alternating runs each")
        times: dict[str, list[float]] = {"baseline": [], "current": []}
        stage_seconds: list[dict[str, float]] = []
        for i in range(args.repeats):
            order = ("baseline", "current") if i % 2 == 0 else ("current", "baseline")
            for side in order:
                path, cwd = sides[side]
                load = load_avg()
                wall, seconds = annotate_once(path, args.images.resolve(), args.profile, args.extra, tmp, cwd)
                times[side].append(wall)
                if side == "current":
                    stage_seconds.append(seconds)
                print(f"  run {i + 1} {side:8s} {wall:6.2f} s   (load before: {load})", flush=True)
        ratios = [b / c for b, c in zip(times["baseline"], times["current"])]
        print(f"baseline: median {statistics.median(times['baseline']):.2f} s, "
              f"current: median {statistics.median(times['current']):.2f} s")
        print(f"speed-up (baseline / current) per pair: median {statistics.median(ratios):.2f}x, "
              f"range {min(ratios):.2f}-{max(ratios):.2f}x; ratio of medians "
              f"{statistics.median(times['baseline']) / statistics.median(times['current']):.2f}x")
        if stage_seconds and any(stage_seconds):
            keys = sorted({k for s in stage_seconds for k in s})
            print("current per-stage seconds (median): " + ", ".join(
                f"{k} {statistics.median(s.get(k, 0.0) for s in stage_seconds):.2f}" for k in keys))
        print(f"load average at the end: {load_avg()}")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False,
                       capture_output=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=False, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
