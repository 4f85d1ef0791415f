"""``mmgen run``: the whole flow on a folder of images, with defaults (annotate -> generate -> export)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

log = logging.getLogger("mmgen.run")


@click.command("run")
@click.argument("images", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), required=True,
              help="Output folder: scene_graphs/, qa/ and export/ are made inside it.")
@click.option("--profile", default=None, help="Perception profile (see `mmgen annotate --help`); default fast.")
@click.option("--seed", type=int, default=0, show_default=True, help="Global seed for the QA programs.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes for the CPU stages.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N images (quick trials).")
@click.option("--offline", is_flag=True, help="Never download weights; skip optional stages whose weights are missing.")
@click.pass_context
def command(ctx: click.Context, images: Path, out: Path, profile: str | None, seed: int, workers: int,
            limit: int | None, offline: bool) -> None:
    """Run annotate, generate, verify and export on IMAGES with default settings.

    Each stage writes its own folder under OUTPUT, so rerunning the same command after an
    interruption resumes where it stopped. For control over one stage, run its verb instead.

    \b
    Example:
      mmgen run assets/images -o out/
    """
    from . import annotate_cmd, generate_cmd, verify_cmd

    sg, qa = out / "scene_graphs", out / "qa"
    log.info("[1/3] annotate %s -> %s", images, sg)
    ctx.invoke(annotate_cmd.command, images=images, out=sg, profile=profile, limit=limit, offline=offline)
    log.info("[2/3] generate %s -> %s", sg, qa)
    ctx.invoke(generate_cmd.command, scene_graphs=sg, out=qa, seed=seed, workers=workers)
    log.info("[3/3] verify %s", qa)
    ctx.invoke(verify_cmd.command, qa=qa, sg=sg)
