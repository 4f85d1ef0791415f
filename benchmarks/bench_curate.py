"""Curation throughput and memory (no model): dedup, balance, text checks and quality on N records.

    python benchmarks/bench_curate.py [--records 200000] [--per-image 40]

Synthetic QA shards (10k records each) are made by cycling the records generated from the bundled
scene graphs with new ids and image ids (``--per-image`` records per image id, so MinHash groups
have that size), with one exact duplicate and one near duplicate every 50 records. The run happens
in a fresh process (``spawn``) and reports wall time, records/s and peak RSS (``VmHWM``) above the
RSS after imports. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
SHARD_SIZE = 10_000


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def make_input(folder: Path, n: int, per_image: int) -> None:
    from mmgen.stages.generate import generate
    from programs.base import ProgramConfig

    seed_dir = folder / "seed"
    generate(ROOT / "assets" / "scene_graphs", seed_dir, ProgramConfig(seed=0))
    base = [orjson.loads(line) for line in (seed_dir / "part-00000.jsonl").read_bytes().splitlines() if line]
    qa = folder / "qa"
    qa.mkdir()
    shutil.copy(seed_dir / "manifest.json", qa / "manifest.json")
    shard: list[bytes] = []
    index = 0
    prev_q, prev_a, prev_v = "", "", None
    for i in range(n):
        rec = dict(base[i % len(base)])
        image = f"img{i // per_image:08d}"
        rec.update(id=f"{image}:{rec['program']}:{i}", images=[image])
        if i % 50 == 1:  # an exact duplicate of the previous question
            rec["question"] = prev_q
        elif i % 50 == 2:  # a near duplicate: one word added
            rec["question"] = prev_q.rstrip("?.") + " exactly?"
            rec["answer"], rec["value"] = prev_a, prev_v
        prev_q, prev_a, prev_v = rec["question"], rec["answer"], rec["value"]
        shard.append(orjson.dumps(rec) + b"\n")
        if len(shard) == SHARD_SIZE:
            (qa / f"part-{index:05d}.jsonl").write_bytes(b"".join(shard))
            shard, index = [], index + 1
    if shard:
        (qa / f"part-{index:05d}.jsonl").write_bytes(b"".join(shard))


def _measure(folder: str, queue: Any) -> None:
    from mmgen.curate import CurateOptions, curate

    base = _status_kb("VmRSS")
    start = time.perf_counter()
    summary = curate(Path(folder) / "qa", Path(folder) / "out", CurateOptions())
    queue.put({"seconds": time.perf_counter() - start, "peak_kb": _status_kb("VmHWM"), "base_kb": base,
               "kept": summary["kept"], "dropped": summary["dropped_by_filter"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--per-image", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        make_input(Path(tmp), args.records, args.per_image)
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=_measure, args=(tmp, queue))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"the measured run failed (exit code {proc.exitcode})")
        result = queue.get(timeout=10)
    rate = args.records / result["seconds"]
    print(f"curate {args.records} records ({args.per_image} per image): {result['seconds']:.1f}s, "
          f"{rate:,.0f} records/s, peak RSS {result['peak_kb'] / 1024:.0f} MiB "
          f"({(result['peak_kb'] - result['base_kb']) / 1024:.0f} MiB above imports)")
    print(f"kept {result['kept']}, dropped {result['dropped']}")


if __name__ == "__main__":
    main()
