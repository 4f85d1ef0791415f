"""``mmgen evolve``: rewrite QA records with a language model (MMEvol-style rounds)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from ..engine.options import check_strict, engine_options, options_from
from ..llm.options import limits_from, llm_options, pop_llm_options, settings_from, vlm_options

log = logging.getLogger("mmgen.evolve")


@click.command("evolve")
@click.argument("qa", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), required=True,
              help="Folder for the evolved shards (part-NNNNN.jsonl), dropped.jsonl, manifest and summary.")
@click.option("--scene-graphs", "sg", type=click.Path(exists=True, path_type=Path), required=True,
              help="The scene graphs the QA records were generated from (shown to the model as data).")
@click.option("--rounds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Evolution rounds; a record that fails a round stops evolving.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the per-record direction draw (and of the model's sampling).")
@click.option("--directions", default="perception,reasoning,interaction", show_default=True,
              help="Comma-separated directions to draw from.")
@click.option("--emit", type=click.Choice(["final", "evolved", "all"]), default="final", show_default=True,
              help="final: each record's latest surviving version (itself if none); evolved: only evolved "
                   "records; all: the inputs plus every surviving round.")
@engine_options(limit_help="Only the first N QA records (quick trials).")
@vlm_options
@llm_options
def command(qa: Path, out: Path, sg: Path, rounds: int, seed: int, directions: str, emit: str, strict: bool,
            vlm: bool, image_root: Path | None, vlm_max_side: int, **kwargs: Any) -> None:
    """Rewrite QA records with a language model in rounds; keep rewrites that pass the rule guard and
    the model's elimination check.

    Each round draws per record (seeded) one direction: fine-grained perception, multi-step
    reasoning, or interaction (matching, fill-in, ordering, short essay). Rewrites whose answer no
    longer agrees with the scene graph (counts, yes/no, labels, colours...) are dropped by rules,
    then the model judges whether the rewrite improved and still needs the image. Every drop is in
    dropped.jsonl with its reason. Evolved records keep their program, plan and value and gain an
    "evolved" field; `mmgen verify` cannot re-derive them and reports them.

    Each input shard is one unit of work with a completion marker: rerunning the same command after an
    interruption (even kill -9) does only the unfinished shards; --workers, --rank/--world-size and
    --engine ray split the shards, with the same output.

    \b
    Example (a local llama.cpp server):
      python -m llama_cpp.server --model SmolLM2-135M-Instruct.Q4_1.gguf --port 8000 &
      mmgen evolve out/qa -o out/qa-evolved --scene-graphs out/scene_graphs --rounds 2 \\
          --llm-base-url http://127.0.0.1:8000/v1 --llm-model smollm2
    """
    from ..llm.evolve import EvolveOptions, evolve

    values = pop_llm_options(kwargs)
    engine = options_from(**kwargs)
    if vlm and image_root is None:
        raise click.UsageError("--vlm needs --image-root")
    settings = settings_from(values, seed)
    images = None
    if vlm:
        from ..llm.vision import ImageSource

        images = ImageSource(image_root, vlm_max_side)  # type: ignore[arg-type]
    options = EvolveOptions(rounds=rounds, seed=seed, emit=emit, limits=limits_from(values), images=images,
                            directions=tuple(d.strip() for d in directions.split(",") if d.strip()))
    summary = evolve(qa, sg, out, settings, options, engine=engine)
    check_strict(summary, strict)
    llm = summary["llm_this_run"]
    log.info("%d records in, %d out (%d evolved), %d dropped -> %s", summary["inputs"], summary["outputs"],
             summary["evolved"], summary["dropped"], out)
    log.info("LLM: %d requests, %d cache hits, %d retries, %d malformed replies, %d failed; %d+%d tokens, $%.4f",
             llm["requests"], llm["cache_hits"], llm["retries"], llm["malformed_replies"], llm["failed_calls"],
             llm["tokens"]["prompt"], llm["tokens"]["completion"], llm["cost_usd"])
