"""Perception throughput: images/s per stage and for the whole profile, over a batch-size sweep.

    MMGEN_WEIGHTS_DIR=../shared/weights python benchmarks/bench_perception.py \\
        [--images DIR] [--profile fast|full] [--batch-sizes 1,4,8] [--repeat 2] [--device cpu] \\
        [--random-init] [--stage detect --stage segment ...]

Images: ``assets/images`` of the repository when present, else Ultralytics' ``bus.jpg`` and
``zidane.jpg``; decoded once, outside the timings. Each batch size runs every image through the
stages once to warm up, then ``--repeat`` times timed; the best run is reported. Stage time is the
time inside that stage's calls; "profile" is their sum. The warm-up pass of the first batch size is
reported too (``cold``): it is what a one-shot ``mmgen annotate`` pays (Ultralytics builds its predictor
and imports torchvision on the first call, onnxruntime plans its first shapes), so compare end-to-end
speed-ups with that row, not with the warm ones. ``--random-init`` runs the depth and CLIP
stages with random weights (real architectures) where their weights are missing, for timing only.
Import and load times (weights, model build) are printed separately. The table notes the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    parts = [f"{platform.system()} {platform.release()}", f"{cpu}", f"{os.cpu_count()} CPUs",
             f"torch {torch.__version__} ({torch.get_num_threads()} threads)"]
    if torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    try:
        load = os.getloadavg()[0]
        parts.append(f"load avg {load:.1f}")
    except OSError:
        pass
    return "; ".join(parts)


def default_images() -> tuple[Path, list[Path]]:
    from scene_graphs.perception.images import find_images

    assets = ROOT / "assets" / "images"
    if assets.is_dir() and find_images(assets):
        return assets, find_images(assets)
    import ultralytics

    root = Path(ultralytics.__file__).parent / "assets"
    return root, [root / "bus.jpg", root / "zidane.jpg"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=Path, help="folder of images (default: assets/images or Ultralytics' assets)")
    ap.add_argument("--profile", default="fast", choices=["fast", "full"])
    ap.add_argument("--stage", action="append", default=[], help="only these stages (repeatable)")
    ap.add_argument("--batch-sizes", default="1,4,8")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="use at most N images")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--random-init", action="store_true",
                    help="depth / CLIP stages with random weights where theirs are missing (timing only)")
    args = ap.parse_args()

    started = time.perf_counter()
    from scene_graphs.perception.images import find_images, load_image
    from scene_graphs.perception.profiles import build_pipeline, make_config

    import_s = time.perf_counter() - started

    if args.images:
        root, paths = args.images, find_images(args.images)
    else:
        root, paths = default_images()
    if args.limit:
        paths = paths[: args.limit]
    t = time.perf_counter()
    items = [load_image(p, root) for p in paths]
    decode_s = time.perf_counter() - t

    overrides = []
    if args.random_init:
        for stage in ("depth", "clip_attributes", "clip_relations"):
            overrides.append(f"{stage}.random_init=true")
    cfg = make_config(args.profile, overrides=overrides, only=args.stage)
    pipeline = build_pipeline(cfg)
    load_times = {}
    for stage in pipeline.stages:
        t = time.perf_counter()
        try:
            stage.load(args.device)
        except Exception as exc:  # noqa: BLE001 - reported; the stage is left out
            load_times[stage.name] = f"skipped ({type(exc).__name__})"
            continue
        load_times[stage.name] = f"{time.perf_counter() - t:.2f} s"
    pipeline.stages = [s for s in pipeline.stages if s.loaded]
    pipeline.loaded = True

    print(f"machine: {machine()}")
    print(f"images: {len(items)} from {root} (decode {len(items) / max(decode_s, 1e-9):.1f} images/s, not counted)")
    print(f"import: {import_s:.2f} s (scene_graphs.perception; the stages import their libraries while loading)")
    print("load: " + ", ".join(f"{k} {v}" for k, v in load_times.items()))
    names = [s.name for s in pipeline.stages]
    header = ["batch"] + names + ["profile"]
    rows = []
    cold: dict[str, float] | None = None
    for bs in [int(b) for b in args.batch_sizes.split(",") if b.strip()]:
        best: dict[str, float] = {}
        for run in range(args.repeat + 1):  # run 0 warms up
            spent = dict.fromkeys(names, 0.0)
            for start in range(0, len(items), bs):
                batch = items[start:start + bs]
                graphs = [pipeline.empty_graph(it) for it in batch]
                for stage in pipeline.stages:
                    t = time.perf_counter()
                    graphs = stage(batch, graphs)
                    spent[stage.name] += time.perf_counter() - t
            if not run and cold is None:
                cold = dict(spent)
                rows.append([f"{bs} cold"] + [f"{len(items) / spent[n]:.2f}" for n in names]
                            + [f"{len(items) / sum(spent.values()):.2f}"])
            if run:
                for k, v in spent.items():
                    best[k] = min(best.get(k, float("inf")), v)
        total = sum(best.values())
        rows.append([str(bs)] + [f"{len(items) / best[n]:.2f}" for n in names] + [f"{len(items) / total:.2f}"])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print("\nimages/s (higher is better)")
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    if args.random_init:
        print("(depth / CLIP stages ran with random weights where theirs were missing: timings only)")


if __name__ == "__main__":
    main()
