"""``mmgen run``: the whole flow on a folder of images, with defaults (annotate -> generate -> verify ->
export -> validate)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import click

log = logging.getLogger("mmgen.run")


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
@click.pass_context
def command(ctx: click.Context, images: str, out: Path, profile: str | None, seed: int, workers: int,
            limit: int | None, fmt: str, offline: bool, device: str | None, engine: str, address: str | None,
            strict: bool) -> None:
    """Run annotate, generate, verify, export and validate on IMAGES with default settings.

    IMAGES is a folder, a file listing image paths or a quoted glob (see `mmgen annotate --help`).
    Each stage writes its own folder under OUTPUT, so rerunning the same command after an
    interruption resumes where it stopped. OUTPUT/run.json records the seconds each stage took.
    For control over one stage, run its verb instead.

    \b
    Example:
      mmgen run assets/images -o out/
    """
    from scene_graphs.io import atomic_write

    from ..inputs import InputSource
    from . import annotate_cmd, export_cmd, generate_cmd, validate_cmd, verify_cmd

    image_root = InputSource.parse(images).root
    sg, qa, exported = out / "scene_graphs", out / "qa", out / fmt
    shared = {"engine": engine, "address": address, "strict": strict}
    steps = [
        ("annotate", f"{images} -> {sg}", annotate_cmd.command,
         {"images": str(images), "out": sg, "profile": profile, "limit": limit, "offline": offline, "device": device,
          **shared}),
        ("generate", f"{sg} -> {qa}", generate_cmd.command,
         {"scene_graphs": sg, "out": qa, "seed": seed, "workers": workers, **shared}),
        ("verify", f"{qa}", verify_cmd.command, {"qa": qa, "sg": sg}),
        ("export", f"{qa} -> {exported}", export_cmd.command,
         {"qa": qa, "fmt": fmt, "out": exported, "image_root": image_root}),
        ("validate", f"{exported}", validate_cmd.command, {"path": exported, "image_root": image_root}),
    ]
    seconds: dict[str, float] = {}
    for i, (name, what, cmd, kwargs) in enumerate(steps, 1):
        log.info("[%d/%d] %s %s", i, len(steps), name, what)
        started = time.perf_counter()
        ctx.invoke(cmd, **kwargs)
        seconds[name] = round(time.perf_counter() - started, 3)
    report = {"images": str(images), "output": str(out), "seconds": seconds, "total_seconds": round(sum(seconds.values()), 3)}
    for name, folder in (("annotate", sg), ("generate", qa)):
        summary = folder / "summary.json"
        if summary.exists():
            report[name] = {k: v for k, v in json.loads(summary.read_text()).items()
                            if k in ("images", "graphs", "records", "skipped", "errors", "per_program", "duplicates")}
    with atomic_write(out / "run.json") as f:
        f.write((json.dumps(report, indent=2) + "\n").encode())
    log.info("done in %.1f s (%s); see %s", report["total_seconds"],
             ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()), out / "run.json")
