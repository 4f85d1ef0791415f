"""Perception throughput: images/s per stage of a profile, beside the default profile measured in the same run.

    MMGEN_WEIGHTS_DIR=../shared/weights python benchmarks/bench_perception.py --profile quality
    python benchmarks/bench_perception.py --profile quality --device cuda          # on a GPU machine

Options: ``--profile`` and ``--baseline`` (any registered profile; the baseline defaults to the default
profile, ``fast``), ``--device cpu|cuda|cuda:N``, ``--batch-sizes 1,4,8``, ``--repeat N``, ``--limit N``,
``--stage NAME`` (repeatable), ``--fp32``, ``--offline``, ``--no-random-init``, ``--quick``, ``--json PATH``.

Images: ``assets/images`` (or ``--images DIR``), decoded once, outside the timings. For each profile and batch
size the first image runs once untimed (warm-up: Ultralytics builds its predictor, torch picks its kernels,
onnxruntime plans its shapes, the CLIP stages embed their prompts; printed as ``cold``), then every image goes
through the stages ``--repeat`` times and the best run of each stage is kept. A stage's time is the time
inside its calls (on CUDA up to a synchronize); the profile's is their sum. Ratios are the profile's images/s
over the baseline's, per stage where both run it and for the whole profile.

Weights: every stage loads as ``mmgen annotate`` loads it (explicit path, ``$MMGEN_WEIGHTS_DIR``, the user
cache, the library's download). A stage whose weights are missing and that can build its real architecture
with random weights (``random_init``: the quality models, depth, CLIP) runs that way and is marked
``random-init`` in every table: the cost of the real architecture, with meaningless outputs (boxes, and so the
work of the stages after detection, differ from a real model's). ``--no-random-init`` leaves such stages out.
``--quick`` (the test that keeps this script working): batch size 1, one timed run, no warm-up, and the
random-init models built from small configurations
(:func:`scene_graphs.perception.quality.small_random_configs`); its figures measure nothing.

Mixed precision: on CUDA the stages with a ``mixed_precision`` option use it as the profile sets it (quality:
bfloat16 autocast in ``ov_detect``, ``sam2`` and ``depth``); ``--fp32`` turns it off. On the CPU it has no
effect.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("bench_perception")

RANDOM_INIT_OPTIONS = {"tag": {"min_score": 0.0}, "ov_detect": {"conf": 0.0, "max_objects": 10}}
"""Options of random-init stages: random weights score nothing above the profile's thresholds, so the tagger
keeps its ``top_k`` tags and OWLv2 its 10 best boxes, and the stages after them get objects to work on."""

QUICK_OPTIONS = {"tag": {"vocabulary": "bus,person,car,dog,cup", "top_k": 2}, "ov_detect": {"max_objects": 2},
                 "depth": {"input_size": 56, "map_max_side": 32}, "clip_attributes": {"categories": ["size"]}}
"""What ``--quick`` adds for random-init stages, besides the small configurations (as the quality tests do)."""


@dataclass
class StageTiming:
    """One stage of one profile at one batch size."""

    name: str
    weights: str
    """Where its model came from: ``random-init``, a resolver origin (``env``, ``cache``, ``download``...) or ``-``."""
    seconds: float = float("inf")
    """The best timed pass over every image."""
    cold: float | None = None
    """The untimed warm-up (the first image alone)."""

    def rate(self, images: int) -> float:
        return images / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class ProfileRun:
    """A profile's loaded stages and their timings per batch size."""

    profile: str
    stages: list[Any]
    weights: dict[str, str]
    load_seconds: dict[str, float]
    skipped: dict[str, str]
    precision: dict[str, str]
    objects: dict[int, float] = field(default_factory=dict)
    """Objects per image in the finished graphs, per batch size."""
    random_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Options set on random-init stages (:data:`RANDOM_INIT_OPTIONS`, :data:`QUICK_OPTIONS`)."""
    timings: dict[int, dict[str, StageTiming]] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- set-up
def machine(device: str) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    parts = [f"{platform.system()} {platform.release()}", cpu, f"{os.cpu_count()} CPUs",
             f"torch {torch.__version__} ({torch.get_num_threads()} threads)"]
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        parts.append(f"GPU {torch.cuda.get_device_name(index)} (CUDA {torch.version.cuda})")
    elif torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name(0)} present, not used")
    try:
        parts.append(f"load avg {os.getloadavg()[0]:.1f}")
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


def device_arg(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``; CUDA only where torch sees a GPU."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}: use cpu, cuda or cuda:N")
    if text.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"--device {text}: torch sees no CUDA device here")
    return text


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Whether ``host`` answers on port 443 (without it every download is retried for about 20 s first)."""
    import socket

    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def weights_of(stage: Any) -> str:
    """Where a loaded stage's models came from (``random-init`` wins: any noise model makes the stage noise)."""
    origins = [m.get("origin") for m in stage.provenance().get("models") or () if m.get("origin")]
    if "random-init" in origins:
        return "random-init"
    return ",".join(dict.fromkeys(origins)) or "-"


def profile_config(profile: str, args: argparse.Namespace) -> Any:
    """The profile's config with the bench's choices: ``--stage`` filter, ``--fp32``."""
    from scene_graphs.perception.profiles import make_config, stage_class

    cfg = make_config(profile)
    for name in cfg.enabled_stages():
        if args.stage and name not in args.stage:
            cfg.enable(name, False)
        elif args.fp32 and "mixed_precision" in stage_class(name).defaults:
            cfg.set(name, "mixed_precision", False)
    return cfg


def build_stage(cfg: Any, name: str, offline: bool | None) -> Any:
    """One stage of ``cfg``, built as :func:`~scene_graphs.perception.profiles.build_pipeline` builds it."""
    from scene_graphs.perception.profiles import STAGE_KEYS, stage_class

    settings = {k: v for k, v in cfg.stages[name].items() if k not in STAGE_KEYS}
    return stage_class(name)(weights=cfg.weights, offline=offline, **settings)


def load_profile(profile: str, args: argparse.Namespace, small: dict[str, str] | None) -> ProfileRun:
    """Load every stage of ``profile`` on ``args.device``; a stage without weights runs random-init where it can
    (``small``: the ``--quick`` configurations), else it is left out with the reason."""
    from scene_graphs.perception.base import MissingDependencyError
    from scene_graphs.perception.weights import MissingWeightsError

    cfg = profile_config(profile, args)
    offline = True if args.offline else None
    run = ProfileRun(profile, [], {}, {}, {}, {})
    filled: set[str] = set()
    for name in cfg.enabled_stages():
        stage = build_stage(cfg, name, offline)
        missing = sorted(set(stage.needs) - filled)
        if missing:
            run.skipped[name] = f"needs {', '.join(missing)}, which a left-out stage fills"
            continue
        started = time.perf_counter()
        try:
            try:
                stage.load(args.device)
            except MissingWeightsError as exc:
                if args.no_random_init or "random_init" not in stage.defaults:
                    raise
                log.info("%s/%s: %s; building it with random weights", profile, name, str(exc).splitlines()[0])
                cfg.set(name, "random_init", True)
                extra = dict(RANDOM_INIT_OPTIONS.get(name, {}))
                if small is not None:
                    extra.update(QUICK_OPTIONS.get(name, {}))
                    if name in small:
                        extra["random_init_config"] = small[name]
                for key, value in extra.items():
                    cfg.set(name, key, value)
                run.random_options[name] = {k: v for k, v in extra.items() if k != "random_init_config"}
                stage = build_stage(cfg, name, offline).load(args.device)
        except (MissingWeightsError, MissingDependencyError) as exc:
            run.skipped[name] = str(exc).splitlines()[0]
            continue
        run.load_seconds[name] = time.perf_counter() - started
        run.weights[name] = weights_of(stage)
        if "mixed_precision" in stage.options:
            on = stage.options["mixed_precision"] and stage.device.startswith("cuda")
            run.precision[name] = "bf16 autocast" if on else "fp32"
        run.stages.append(stage)
        filled |= stage.fills
    return run


# --------------------------------------------------------------------------------------------- timing
def synchronizer(device: str) -> Callable[[], None]:
    """Waits for the device's queued work (CUDA); a no-op on the CPU."""
    if not device.startswith("cuda"):
        return lambda: None
    import torch

    return torch.cuda.synchronize


def one_pass(run: ProfileRun, batches: Sequence[Sequence[Any]], sync: Callable[[], None]
             ) -> tuple[dict[str, float], int]:
    """Seconds inside each stage over ``batches`` (each batch through every stage in order), and the objects
    the finished graphs hold (the later stages' work grows with them)."""
    from scene_graphs.perception.pipeline import Pipeline

    pipeline = Pipeline(run.stages, {"profile": run.profile})
    pipeline.loaded = True
    spent = {s.name: 0.0 for s in run.stages}
    objects = 0
    for batch in batches:
        graphs = [pipeline.empty_graph(item) for item in batch]
        for stage in run.stages:
            started = time.perf_counter()
            graphs = stage(batch, graphs)
            sync()
            spent[stage.name] += time.perf_counter() - started
        objects += sum(len(g.objects) for g in graphs)
    return spent, objects


def time_profile(run: ProfileRun, items: Sequence[Any], batch_size: int, repeat: int, warm_up: bool,
                 sync: Callable[[], None]) -> dict[str, StageTiming]:
    batches = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    timings = {s.name: StageTiming(s.name, run.weights[s.name]) for s in run.stages}
    if warm_up:
        for name, seconds in one_pass(run, [items[:1]], sync)[0].items():
            timings[name].cold = seconds
    for _ in range(max(1, repeat)):
        spent, objects = one_pass(run, batches, sync)
        for name, seconds in spent.items():
            timings[name].seconds = min(timings[name].seconds, seconds)
    run.objects[batch_size] = objects / len(items)
    return timings


# --------------------------------------------------------------------------------------------- report
def rate_text(t: StageTiming | None, images: int) -> str:
    if t is None:
        return "-"
    return f"{t.rate(images):.2f} ({t.seconds / images:.3f} s)"


def total_timing(timings: dict[str, StageTiming]) -> StageTiming:
    random = any(t.weights == "random-init" for t in timings.values())
    return StageTiming("profile", "includes random-init" if random else "-", sum(t.seconds for t in timings.values()))


def table(profile: ProfileRun, baseline: ProfileRun | None, batch_size: int, images: int) -> list[str]:
    from scene_graphs.perception.profiles import STAGE_ORDER

    mine = profile.timings[batch_size]
    base = baseline.timings[batch_size] if baseline is not None else {}
    names = [n for n in STAGE_ORDER if n in mine or n in base]
    header = ["stage", f"{profile.profile} img/s (s/img)", "weights"]
    if baseline is not None:
        header += [f"{baseline.profile} img/s (s/img)", "weights", "ratio"]
    rows = []
    for name, a, b in [*((n, mine.get(n), base.get(n)) for n in names),
                       ("profile", total_timing(mine), total_timing(base) if base else None)]:
        row = [name, rate_text(a, images), a.weights if a else "-"]
        if baseline is not None:
            ratio = f"{a.rate(images) / b.rate(images):.3f}x" if a and b else "-"
            row += [rate_text(b, images), b.weights if b else "-", ratio]
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) if i in (0, 2, 4) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
            for r in [header, ["-" * w for w in widths], *rows]]


def describe(run: ProfileRun) -> list[str]:
    lines = [f"{run.profile}: load " + ", ".join(f"{k} {v:.1f} s" for k, v in run.load_seconds.items())]
    if run.skipped:
        lines.append(f"{run.profile}: left out: " + "; ".join(f"{k} ({v})" for k, v in run.skipped.items()))
    changed = {k: v for k, v in run.random_options.items() if v}
    if changed:
        lines.append(f"{run.profile}: random-init stages set " + "; ".join(
            f"{k} " + ", ".join(f"{o}={v!r}" for o, v in opts.items()) for k, opts in changed.items()))
    if run.precision:
        lines.append(f"{run.profile}: precision: " + ", ".join(f"{k} {v}" for k, v in run.precision.items()))
    for bs, timings in run.timings.items():
        cold = [f"{k} {t.cold:.2f} s" for k, t in timings.items() if t.cold is not None]
        if cold:
            lines.append(f"{run.profile}: cold first image (batch size {bs} run): " + ", ".join(cold))
    return lines


def as_json(runs: list[ProfileRun], images: int, args: argparse.Namespace, machine_text: str) -> dict[str, Any]:
    def stages(run: ProfileRun, bs: int) -> dict[str, Any]:
        out = {}
        for name, t in {**run.timings[bs], "profile": total_timing(run.timings[bs])}.items():
            out[name] = {"images_per_s": t.rate(images), "seconds_per_image": t.seconds / images, "weights": t.weights,
                         "cold_s": t.cold}
        return out

    ratios: dict[str, dict[str, float]] = {}
    if len(runs) > 1:
        mine, base = runs
        for bs in mine.timings:
            a = {**mine.timings[bs], "profile": total_timing(mine.timings[bs])}
            b = {**base.timings[bs], "profile": total_timing(base.timings[bs])}
            ratios[str(bs)] = {n: a[n].rate(images) / b[n].rate(images) for n in a if n in b}
    return {"machine": machine_text, "device": args.device, "images": images, "quick": args.quick,
            "profile": runs[0].profile, "baseline": runs[1].profile if len(runs) > 1 else None, "ratios": ratios,
            "repeat": args.repeat, "random_init_note": "random-init stages: real architectures, random weights; "
                                                       "their outputs are noise",
            "profiles": {r.profile: {"batch_sizes": {str(bs): stages(r, bs) for bs in r.timings},
                                     "objects_per_image": {str(bs): n for bs, n in r.objects.items()},
                                     "skipped": r.skipped, "precision": r.precision,
                                     "random_init_options": r.random_options,
                                     "load_s": r.load_seconds} for r in runs}}


# --------------------------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from mmgen.stages.annotate import DEFAULT_BATCH_SIZE
    from scene_graphs.perception.profiles import DEFAULT_PROFILE, PROFILES, STAGE_ORDER

    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--images", type=Path, help="folder of images (default: assets/images)")
    ap.add_argument("--profile", default=DEFAULT_PROFILE, choices=list(PROFILES))
    ap.add_argument("--baseline", default=DEFAULT_PROFILE, choices=list(PROFILES),
                    help="profile measured in the same run; figures are ratios to it (default: %(default)s)")
    ap.add_argument("--stage", action="append", default=[], choices=STAGE_ORDER, help="only these stages (repeatable)")
    ap.add_argument("--batch-sizes", default=str(DEFAULT_BATCH_SIZE),
                    help="comma-separated, e.g. 1,4,8 (default: %(default)s, mmgen annotate's)")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per batch size; the best is kept")
    ap.add_argument("--limit", type=int, default=0, help="use at most N images")
    ap.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    ap.add_argument("--fp32", action="store_true", help="no mixed precision on CUDA")
    ap.add_argument("--offline", action="store_true", help="never download weights (also MMGEN_OFFLINE=1)")
    ap.add_argument("--no-random-init", action="store_true",
                    help="leave out stages without weights instead of building them with random weights")
    ap.add_argument("--quick", action="store_true",
                    help="batch size 1, one run, no warm-up, small random-init models: checks the script, measures "
                         "nothing")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.repeat = "1", 1
    args.batch_size_list = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    if not args.batch_size_list or min(args.batch_size_list) < 1:
        ap.error("--batch-sizes needs positive integers")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    args = parse_args(argv)
    from scene_graphs.perception.images import find_images, load_image
    from scene_graphs.perception.quality import small_random_configs

    root, paths = (args.images, find_images(args.images)) if args.images else default_images()
    paths = paths[:args.limit] if args.limit else paths
    if not paths:
        raise SystemExit(f"no images in {root}")
    started = time.perf_counter()
    items = [load_image(p, root) for p in paths]
    decode_s = time.perf_counter() - started
    from scene_graphs.perception.weights import offline_requested

    if not args.offline and not offline_requested() and not hub_reachable():
        log.warning("huggingface.co is not reachable: no downloads (as with --offline)")
        args.offline = True
    sync = synchronizer(args.device)
    import torch

    threads = torch.get_num_threads()
    machine_text = machine(args.device)
    with tempfile.TemporaryDirectory(prefix="bench-perception-") as tmp:
        small = small_random_configs(tmp) if args.quick else None
        runs = []
        for profile in dict.fromkeys([args.profile, args.baseline]):
            torch.set_num_threads(threads)  # as in a fresh process (Ultralytics' predictor lowers it to cores - 1)
            run = load_profile(profile, args, small)
            if not run.stages and profile == args.profile:
                raise SystemExit(f"profile {profile}: no stage could load: {run.skipped}")
            if not run.stages:
                log.warning("baseline %s left out: no stage could load (%s)", profile, run.skipped)
                continue
            for bs in args.batch_size_list:
                log.info("%s: timing batch size %d on %d image(s)", profile, bs, len(items))
                run.timings[bs] = time_profile(run, items, bs, args.repeat, not args.quick, sync)
            runs.append(run)
    profile_run = runs[0]
    baseline_run = runs[1] if len(runs) > 1 else None
    lines = [f"machine: {machine_text}", f"device: {args.device}",
             f"images: {len(items)} from {root} (decoded at {len(items) / max(decode_s, 1e-9):.1f} images/s, "
             "not counted)"]
    for run in runs:
        lines += describe(run)
    for bs in args.batch_size_list:
        lines += ["", f"batch size {bs}: images/s (seconds per image), best of {args.repeat}; "
                      f"ratio = {args.profile} / {args.baseline}"]
        lines += table(profile_run, baseline_run, bs, len(items))
        lines.append("objects per image: " + ", ".join(f"{r.profile} {r.objects[bs]:.1f}" for r in runs))
    if any(w == "random-init" for r in runs for w in r.weights.values()):
        lines += ["", "random-init: the real architecture with random weights (no weights here): it costs what the "
                      "real model costs per forward pass, but its outputs are noise, so the stages after it may do "
                      "more or less work than with real weights. Not a real figure for that stage."]
    if args.quick:
        lines += ["quick mode: small random configurations, one image batch, no warm-up: these figures measure "
                  "nothing but that the script runs."]
    print("\n".join(lines))
    result = as_json(runs, len(items), args, machine_text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
