"""``mmgen run``: the whole flow on a folder of images, with defaults (annotate -> generate -> verify ->
export -> validate)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import click

log = logging.getLogger("mmgen.run")

STAGES = ("annotate", "generate", "verify", "export", "validate")


@click.command("run")
@click.argument("images")
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), required=True,
              help="Output folder: scene_graphs/, qa/ and llava/ are made inside it.")
@click.option("--profile", default=None, help="Perception profile (see `mmgen annotate --help`); default fast.")
@click.option("--seed", type=int, default=0, show_default=True, help="Global seed for the QA programs.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes for the generate stage (on Ray: tasks for generate, actors for annotate).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N images (quick trials).")
@click.option("--format", "fmt", default="llava", show_default=True,
              help="Export format (see `mmgen export --help`); written to OUTPUT/<format>/.")
@click.option("--offline", is_flag=True, help="Never download weights; skip optional stages whose weights are missing.")
@click.option("--device", default=None, help="auto (default), cpu, cuda or cuda:N.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Run annotate and generate in this process (and --workers processes) or on Ray Data.")
@click.option("--address", default=None, help="[--engine ray] Ray cluster address; default: a local Ray.")
@click.option("--strict", is_flag=True, help="Stop with status 1 when any image was skipped (corrupt, unreadable...).")
@click.option("--shard-size", type=click.IntRange(min=1), default=None,
              help="Images per annotate shard (default 1000): the unit of resuming, ranks and workers.")
@click.option("--stage", "stages", multiple=True, type=click.Choice(STAGES),
              help="Run only this stage (repeat for several); the others' folders must be there.")
@click.option("--skip", "skipped", multiple=True, type=click.Choice(STAGES),
              help="Leave this stage out (repeat for several), e.g. --skip verify.")
@click.option("--overwrite", is_flag=True,
              help="Redo annotate and generate even where their output folders hold complete shards, or were "
                   "made with other settings.")
@click.pass_context
def command(ctx: click.Context, images: str, out: Path, profile: str | None, seed: int, workers: int,
            limit: int | None, fmt: str, offline: bool, device: str | None, engine: str, address: str | None,
            strict: bool, shard_size: int | None, stages: tuple[str, ...], skipped: tuple[str, ...],
            overwrite: bool) -> None:
    """Run annotate, generate, verify, export and validate on IMAGES with default settings.

    IMAGES is a folder, a file listing image paths or a quoted glob (see `mmgen annotate --help`).
    Each stage writes its own folder under OUTPUT, so rerunning the same command after an
    interruption (Ctrl-C, kill, even kill -9) resumes where it stopped: finished images are kept,
    also inside unfinished shards (after a kill -9 of a single-process run, all but the last
    minute's). OUTPUT/run.json records the seconds each stage took.
    For control over one stage, run its verb instead.

    \b
    Examples:
      mmgen run assets/images -o out/
      mmgen run photos/ -o out/ --shard-size 200 --workers 2 --skip verify
      mmgen run photos/ -o out/ --stage export --stage validate --format sharegpt
    """
    from scene_graphs.io import atomic_write

    from ..inputs import InputSource
    from . import annotate_cmd, export_cmd, generate_cmd, validate_cmd, verify_cmd

    image_root = InputSource.parse(images).root
    sg, qa, exported = out / "scene_graphs", out / "qa", out / fmt
    shared = {"engine": engine, "address": address, "strict": strict, "overwrite": overwrite}
    steps = [
        ("annotate", f"{images} -> {sg}", annotate_cmd.command,
         {"images": str(images), "out": sg, "profile": profile, "limit": limit, "offline": offline, "device": device,
          "shard_size": shard_size, **shared}),
        ("generate", f"{sg} -> {qa}", generate_cmd.command,
         {"scene_graphs": sg, "out": qa, "seed": seed, "workers": workers, **shared}),
        ("verify", f"{qa}", verify_cmd.command, {"qa": qa, "sg": sg}),
        ("export", f"{qa} -> {exported}", export_cmd.command,
         {"qa": qa, "fmt": fmt, "out": exported, "image_root": image_root}),
        ("validate", f"{exported}", validate_cmd.command, {"path": exported, "image_root": image_root}),
    ]
    steps = [step for step in steps if (not stages or step[0] in stages) and step[0] not in skipped]
    if not steps:
        raise click.UsageError("--stage and --skip leave no stage to run")
    seconds: dict[str, float] = {}
    for i, (name, what, cmd, kwargs) in enumerate(steps, 1):
        log.info("[%d/%d] %s %s", i, len(steps), name, what)
        started = time.perf_counter()
        try:
            ctx.invoke(cmd, **kwargs)
        except KeyboardInterrupt:
            log.warning("run: interrupted during %s; what finished is kept: rerun the same command to continue", name)
            raise
        seconds[name] = round(time.perf_counter() - started, 3)
    report = {"images": str(images), "output": str(out), "stages": [s[0] for s in steps], "seconds": seconds,
              "total_seconds": round(sum(seconds.values()), 3)}
    for name, folder in (("annotate", sg), ("generate", qa)):
        summary = folder / "summary.json"
        if summary.exists():
            report[name] = {k: v for k, v in json.loads(summary.read_text()).items()
                            if k in ("images", "graphs", "records", "skipped", "errors", "per_program", "duplicates")}
    with atomic_write(out / "run.json") as f:
        f.write((json.dumps(report, indent=2) + "\n").encode())
    log.info("done in %.1f s (%s); see %s", report["total_seconds"],
             ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()), out / "run.json")
