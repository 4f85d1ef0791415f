"""``mmgen generate``: scene graphs -> QA records."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from ..engine import run_stage
from ..engine.options import check_strict, engine_options, options_from

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
@click.option("--multi", is_flag=True,
              help="Run the multi-image programs over image sets instead (--per-image then counts per set).")
@click.option("--group-strategy", type=click.Choice(["random", "shared-category", "file"]), default=None,
              help="[--multi] How images are grouped into sets: seeded random, sets sharing a confidently detected "
                   "category (default), or the sets listed in --groups.")
@click.option("--groups", "groups_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="[--multi] JSON-lines file, each line a list of 2-6 image ids (in 'Image 1, Image 2...' order); "
                   "implies --group-strategy file.")
@click.option("--set-size", default=None,
              help="[--multi] Images per set: a number or a range such as 2-4 (within 2-6).  [default: 2-4]")
@click.option("--sets", "n_sets", type=click.IntRange(min=1), default=None,
              help="[--multi] How many sets to make (default: one pass, each image in at most one set).")
@click.option("--reuse", is_flag=True,
              help="[--multi] Let the same images form a set again in another order (else each set is used once).")
@click.option("--sets-per-shard", type=click.IntRange(min=1), default=None,
              help="[--multi] Image sets per output shard (the unit of work and of resuming).  [default: 2000]")
@engine_options(limit_help="Only the first N scene graphs (quick trials; not with --multi).")
def command(scene_graphs: Path, out: Path, seed: int, per_image: int, mc_ratio: float, program_ids: str | None,
            min_score: float, confident_score: float, multi: bool, group_strategy: str | None,
            groups_file: Path | None, set_size: str | None, n_sets: int | None, reuse: bool,
            sets_per_shard: int | None, strict: bool, **engine: object) -> None:
    """Run every applicable QA program over every scene graph and write QA records.

    Rerunning the same command after an interruption (even kill -9) finishes only the missing
    shards. --rank/--world-size (or --shard i/n) split the shards across machines by hand.
    With --multi, images are first grouped into sets of 2-6 (written to sets.jsonl in the output
    folder) and the multi-image programs ask about each set ("Image 1", "Image 2", ...).

    \b
    Examples:
      mmgen generate out/scene_graphs -o out/qa --seed 1 --workers 2
      mmgen generate out/scene_graphs -o out/qa-multi --multi --set-size 2-4 --sets 5000
      mmgen generate out/scene_graphs -o out/qa --shard 0/4     # this machine's quarter
      mmgen generate out/scene_graphs -o out/qa --engine ray --address auto
    """
    from programs.base import ProgramConfig

    from ..stages.generate import GenerateStage

    if min_score > confident_score:
        raise click.BadParameter("--min-score must not exceed --confident-score")
    config = ProgramConfig(seed=seed, max_per_image=per_image, mc_ratio=mc_ratio, min_score=min_score,
                           confident_score=confident_score)
    ids = [p.strip() for p in program_ids.split(",") if p.strip()] if program_ids else None
    multi_only = {"--group-strategy": group_strategy, "--groups": groups_file, "--set-size": set_size,
                  "--sets": n_sets, "--reuse": reuse or None, "--sets-per-shard": sets_per_shard}
    if not multi:
        given = [name for name, value in multi_only.items() if value is not None]
        if given:
            raise click.UsageError(f"{', '.join(given)} only apply with --multi")
    elif engine.get("limit") is not None:
        raise click.UsageError("--limit does not apply with --multi (use --sets)")
    options = options_from(**engine)  # type: ignore[arg-type]
    if multi:
        stage = _multi_stage(scene_graphs, config, ids, group_strategy, groups_file, set_size, n_sets, reuse,
                             sets_per_shard)
    else:
        stage = GenerateStage(scene_graphs, config, ids)
    summary = run_stage(stage, out, options)
    for note, count in sorted(summary.notes.items()):
        log.debug("%6d  %s", count, note)
    check_strict(summary, strict)


def _multi_stage(scene_graphs: Path, config: object, ids: list[str] | None, strategy: str | None,
                 groups_file: Path | None, set_size: str | None, n_sets: int | None, reuse: bool,
                 sets_per_shard: int | None) -> object:
    """The ``--multi`` branch: group images into sets, run the multi-image programs."""
    from ..stages.generate_multi import SETS_PER_SHARD, MultiStage
    from ..groups import GroupOptions, parse_set_size

    if groups_file is not None:
        if strategy not in (None, "file"):
            raise click.UsageError(f"--groups lists the sets itself; it does not combine with --group-strategy "
                                   f"{strategy}")
        strategy = "file"
    strategy = strategy or "shared-category"
    if strategy == "file" and groups_file is None:
        raise click.UsageError("--group-strategy file needs --groups FILE")
    if strategy == "file" and set_size is not None:
        raise click.UsageError("--set-size does not apply to sets listed in --groups")
    try:
        lo, hi = parse_set_size(set_size or "2-4")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--set-size") from None
    grouping = GroupOptions(strategy=strategy, min_size=lo, max_size=hi, sets=n_sets, reuse=reuse,
                            groups_file=str(groups_file) if groups_file is not None else None)
    return MultiStage(scene_graphs, config, grouping, ids, sets_per_shard or SETS_PER_SHARD)
