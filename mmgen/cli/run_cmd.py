"""``mmgen run``: the whole flow on a folder of images, with defaults (annotate -> generate -> verify ->
export -> validate)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

log = logging.getLogger("mmgen.run")


@click.command("run")
@click.argument("images", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), required=True,
              help="Output folder: scene_graphs/, qa/ and llava/ are made inside it.")
@click.option("--profile", default=None, help="Perception profile (see `mmgen annotate --help`); default fast.")
@click.option("--seed", type=int, default=0, show_default=True, help="Global seed for the QA programs.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes for the CPU stages.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N images (quick trials).")
@click.option("--format", "fmt", default="llava", show_default=True,
              help="Export format (see `mmgen export --help`); written to OUTPUT/<format>/.")
@click.option("--offline", is_flag=True, help="Never download weights; skip optional stages whose weights are missing.")
@click.pass_context
def command(ctx: click.Context, images: Path, out: Path, profile: str | None, seed: int, workers: int,
            limit: int | None, fmt: str, offline: bool) -> None:
    """Run annotate, generate, verify, export and validate on IMAGES with default settings.

    Each stage writes its own folder under OUTPUT, so rerunning the same command after an
    interruption resumes where it stopped. For control over one stage, run its verb instead.

    \b
    Example:
      mmgen run assets/images -o out/
    """
    from . import annotate_cmd, export_cmd, generate_cmd, validate_cmd, verify_cmd

    sg, qa, exported = out / "scene_graphs", out / "qa", out / fmt
    log.info("[1/5] annotate %s -> %s", images, sg)
    ctx.invoke(annotate_cmd.command, images=images, out=sg, profile=profile, limit=limit, offline=offline)
    log.info("[2/5] generate %s -> %s", sg, qa)
    ctx.invoke(generate_cmd.command, scene_graphs=sg, out=qa, seed=seed, workers=workers)
    log.info("[3/5] verify %s", qa)
    ctx.invoke(verify_cmd.command, qa=qa, sg=sg)
    log.info("[4/5] export %s -> %s", qa, exported)
    ctx.invoke(export_cmd.command, qa=qa, fmt=fmt, out=exported, image_root=images)
    log.info("[5/5] validate %s", exported)
    ctx.invoke(validate_cmd.command, path=exported, image_root=images)
