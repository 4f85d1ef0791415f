"""Export throughput and memory: streaming export of 1M QA records vs building the list and json.dump.

    python benchmarks/bench_export.py [--records 1000000] [--baseline-records 200000] [--format llava]

Synthetic QA shards (10k records each) are made by cycling the records generated from the bundled
scene graphs with new ids and image ids (image paths stay real, so image checks run). Each measured
run happens in a fresh process (``spawn``) and reports wall time, records/s and peak RSS (``VmHWM``),
both in total and above the process's RSS after its imports ("working"). Linux only (reads /proc). Runs, all in this one invocation:

* streaming export of ``--baseline-records`` and of ``--records`` (memory must not grow with N);
* the baseline on ``--baseline-records``: the same records rendered into a list, then ``json.dump``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
SHARD_SIZE = 10_000


def _status_kb(field: str) -> int:
    """A memory figure of this process from /proc (``VmRSS`` now, ``VmHWM`` its peak). ``VmHWM`` belongs
    to the process image, unlike ``ru_maxrss``, which keeps the forking parent's size across exec."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def make_shards(folder: Path, n: int) -> None:
    """``n`` QA records in shards of 10k: real records cycled with fresh ids (3 records per image)."""
    from mmgen.export import iter_qa
    from mmgen.stages.generate import generate
    from programs.base import ProgramConfig

    real = folder / "real"
    generate(ROOT / "assets" / "scene_graphs", real, ProgramConfig())
    seeds = [qa.to_dict() for qa, _ in iter_qa(real)]
    shutil.rmtree(real)
    written = 0
    shard = 0
    while written < n:
        with open(folder / f"part-{shard:05d}.jsonl", "wb") as f:
            for _ in range(min(SHARD_SIZE, n - written)):
                d = dict(seeds[written % len(seeds)])
                image = f"{written // 3:016x}"
                d["images"] = [image]
                d["id"] = f"{image}:{d['program']}:{written % 3}"
                f.write(orjson.dumps(d) + b"\n")
                written += 1
        shard += 1


def subset(folder: Path, n: int, dest: Path) -> Path:
    """A folder with links to the first shards holding ``n`` records."""
    dest.mkdir()
    for i in range((n + SHARD_SIZE - 1) // SHARD_SIZE):
        os.symlink(folder / f"part-{i:05d}.jsonl", dest / f"part-{i:05d}.jsonl")
    return dest


def _child(kind: str, src: str, out: str, fmt: str, queue: Any) -> None:
    import json
    from collections import Counter

    from mmgen.export import ExportOptions, export, get_format, iter_qa
    from mmgen.export.render import render

    options = ExportOptions(image_root=ROOT / "assets" / "images", val_fraction=0.05)
    rss0 = _status_kb("VmRSS")
    t = time.perf_counter()
    if kind == "stream":
        n = export(src, out, fmt, options).records
    else:
        format_ = get_format(fmt)
        notes: Counter = Counter()
        records = [format_.record(render(qa, options, where, notes)) for qa, where in iter_qa(src)]
        Path(out).mkdir(parents=True, exist_ok=True)
        with open(Path(out) / "train.json", "w") as f:
            json.dump(records, f)
        n = len(records)
    seconds = time.perf_counter() - t
    peak = _status_kb("VmHWM")
    queue.put({"kind": kind, "records": n, "seconds": seconds, "peak_mb": peak / 1024,
               "working_mb": (peak - rss0) / 1024})


def measure(kind: str, src: Path, out: Path, fmt: str) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_child, args=(kind, str(src), str(out), fmt, queue))
    p.start()
    result = queue.get()
    p.join()
    shutil.rmtree(out, ignore_errors=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--baseline-records", type=int, default=200_000)
    ap.add_argument("--format", default="llava", choices=["llava", "sharegpt", "messages", "provision"])
    ap.add_argument("--workdir", type=Path, default=None, help="Where the synthetic shards go (default: a temp dir).")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_export_", dir=args.workdir))
    try:
        t = time.perf_counter()
        (work / "qa").mkdir()
        make_shards(work / "qa", max(args.records, args.baseline_records))
        print(f"{platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
              f"synthetic shards made in {time.perf_counter() - t:.1f}s; format {args.format}")
        small = subset(work / "qa", args.baseline_records, work / "small")
        large = subset(work / "qa", args.records, work / "large")
        rows = [measure("stream", small, work / "out", args.format),
                measure("list+json.dump", small, work / "out", args.format),
                measure("stream", large, work / "out", args.format)]
        print(f"{'run':<16} {'records':>9} {'seconds':>8} {'records/s':>10} {'peak RSS MB':>12} {'working MB':>11}")
        for r in rows:
            print(f"{r['kind']:<16} {r['records']:>9,} {r['seconds']:>8.1f} {r['records'] / r['seconds']:>10,.0f} "
                  f"{r['peak_mb']:>12.0f} {r['working_mb']:>11.0f}")
        s_small, base, s_large = rows
        print(f"peak RSS: streaming {s_large['peak_mb']:.0f} MB at {s_large['records']:,} records and "
              f"{s_small['peak_mb']:.0f} MB at {s_small['records']:,}; list+json.dump {base['peak_mb']:.0f} MB at "
              f"{base['records']:,} (+{base['working_mb']:.0f} MB over its imports, streaming "
              f"+{s_large['working_mb']:.0f} MB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
