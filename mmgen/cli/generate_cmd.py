"""``mmgen generate``: scene graphs -> QA records."""

from __future__ import annotations

import logging
from pathlib import Path

import click

log = logging.getLogger("mmgen.generate")


@click.command("generate")
@click.argument("scene_graphs", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), required=True,
              help="Folder for the QA shards (part-NNNNN.jsonl), the manifest and the summary.")
@click.option("--seed", type=int, default=0, show_default=True, help="Global seed; same seed, same output.")
@click.option("--per-image", type=click.IntRange(min=1), default=2, show_default=True,
              help="Questions per program per image (at most).")
@click.option("--mc-ratio", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Share of questions realized as multiple choice.")
@click.option("--programs", "program_ids", default=None,
              help="Comma-separated program ids or families to run (default: all; see `mmgen programs`).")
@click.option("--min-score", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              help="Objects scoring below this are ignored.")
@click.option("--confident-score", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Categories with an object scoring below this are not counted or asked about for existence.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes (one shard each at a time). Output is identical for any number.")
@click.option("--multi", is_flag=True, help="Run the multi-image programs over image sets instead.")
@click.option("--overwrite", is_flag=True, help="Replace an output folder made with another config.")
def command(scene_graphs: Path, out: Path, seed: int, per_image: int, mc_ratio: float, program_ids: str | None,
            min_score: float, confident_score: float, workers: int, multi: bool, overwrite: bool) -> None:
    """Run every applicable QA program over every scene graph and write QA records.

    Rerunning the same command after an interruption finishes only the missing shards.

    \b
    Example:
      mmgen generate out/scene_graphs -o out/qa --seed 1 --workers 2
    """
    from programs.base import ProgramConfig

    from ..generate import generate

    if multi:
        click.echo("mmgen generate --multi: multi-image programs are not built yet (tracked in issue 4).", err=True)
        raise SystemExit(2)
    if min_score > confident_score:
        raise click.BadParameter("--min-score must not exceed --confident-score")
    config = ProgramConfig(seed=seed, max_per_image=per_image, mc_ratio=mc_ratio, min_score=min_score,
                           confident_score=confident_score)
    ids = [p.strip() for p in program_ids.split(",") if p.strip()] if program_ids else None
    summary = generate(scene_graphs, out, config, ids, workers=workers, overwrite=overwrite)
    log.info("%d QA records from %d scene graphs (%d shard(s) written, %d resumed) -> %s",
             summary.records, summary.graphs, summary.shards_done, summary.shards_skipped, out)
    for note, count in sorted(summary.notes.items()):
        log.debug("%6d  %s", count, note)
