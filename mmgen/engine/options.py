"""The command-line options every engine stage shares (``--workers``, ``--rank``, ``--engine`` ...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .core import EngineOptions, RunSummary, parse_shard


def engine_options(limit_help: str = "Only the first N inputs (quick trials).") -> Callable[[Any], Any]:
    """Decorator adding the shared options; the command receives them as keyword arguments and turns
    them into :class:`EngineOptions` with :func:`options_from`."""
    def decorate(f: Any) -> Any:
        for option in reversed([
            click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
                         help="Processes (one shard each at a time); on Ray, concurrent tasks or actors. "
                              "Output is identical for any number."),
            click.option("--rank", type=click.IntRange(min=0), default=None,
                         help="This machine's rank when splitting by hand: it does shards i with "
                              "i % WORLD_SIZE == RANK. The ranks' outputs together equal one run's."),
            click.option("--world-size", type=click.IntRange(min=1), default=None, help="Number of ranks."),
            click.option("--shard", "shard_spec", default=None, metavar="RANK/WORLD_SIZE",
                         help="Same as --rank RANK --world-size WORLD_SIZE, e.g. --shard 0/4."),
            click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                         help="local: this process (and --workers processes); ray: Ray Data, same shard files."),
            click.option("--address", default=None,
                         help="[--engine ray] Ray cluster address (auto, ray://host:10001); default: a local Ray."),
            click.option("--limit", type=click.IntRange(min=1), default=None, help=limit_help),
            click.option("--strict", is_flag=True,
                         help="Exit with status 1 when any input was skipped (corrupt, unreadable...); "
                              "exact duplicates do not count."),
            click.option("--overwrite", is_flag=True,
                         help="Replace an output folder made with another config, and redo complete shards."),
        ]):
            f = option(f)
        return f
    return decorate


def options_from(workers: int = 1, rank: int | None = None, world_size: int | None = None,
                 shard_spec: str | None = None, engine: str = "local", address: str | None = None,
                 limit: int | None = None, overwrite: bool = False, **extra: Any) -> EngineOptions:
    """:class:`EngineOptions` from the shared options (usage errors for contradictions)."""
    if shard_spec is not None:
        if rank is not None or world_size is not None:
            raise click.UsageError("--shard replaces --rank/--world-size; give one or the other")
        try:
            rank, world_size = parse_shard(shard_spec)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--shard") from None
    if (rank is None) != (world_size is None):
        raise click.UsageError("--rank and --world-size go together")
    rank, world_size = rank or 0, world_size or 1
    if rank >= world_size:
        raise click.BadParameter(f"rank {rank} is not below the world size {world_size}", param_hint="--rank")
    if address is not None and engine != "ray":
        raise click.UsageError("--address only applies with --engine ray")
    return EngineOptions(workers=workers, rank=rank, world_size=world_size, overwrite=overwrite, limit=limit,
                         engine=engine, address=address, **extra)


def check_strict(summary: RunSummary, strict: bool) -> None:
    """Under ``--strict``, a run that skipped bad inputs (or left shards failed) exits with status 1."""
    if summary.get("shards_failed"):
        raise click.ClickException(f"{len(summary['shards_failed'])} shard(s) failed; rerun the same command to "
                                   "retry them")
    if strict and summary.bad_inputs:
        raise click.ClickException(f"{summary.bad_inputs} input(s) skipped (--strict); see errors.jsonl")
