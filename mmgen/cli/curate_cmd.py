"""``mmgen curate``: deduplicate, balance and score QA records; drop the weak ones."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from ..engine.options import check_strict, engine_options, options_from
from ..llm.options import limits_from, llm_options, pop_llm_options, settings_from, vlm_options

log = logging.getLogger("mmgen.curate")


@click.command("curate")
@click.argument("qa", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), required=True,
              help="Folder for the kept shards (part-NNNNN.jsonl), dropped.jsonl, manifest and summary.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the tie-breaks when capping.")
@click.option("--min-question-words", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("--max-question-words", type=click.IntRange(min=1), default=150, show_default=True)
@click.option("--max-answer-words", type=click.IntRange(min=1), default=400, show_default=True)
@click.option("--min-latin", type=click.FloatRange(0, 1), default=0.9, show_default=True,
              help="Share of letters (outside quotes) that must be Latin.")
@click.option("--near-dup-threshold", type=click.FloatRange(0, 1, min_open=True), default=0.85, show_default=True,
              help="MinHash Jaccard of question 5-grams (same image, same answer) that makes a near duplicate; "
                   "1 keeps near duplicates.")
@click.option("--near-dup-any-answer", is_flag=True, help="Near duplicates need not share the answer.")
@click.option("--max-answer-share", type=click.FloatRange(0, 1, min_open=True), default=0.3, show_default=True,
              help="Share of a program's records one answer may hold after capping (1: no capping).")
@click.option("--min-answer-count", type=click.IntRange(min=1), default=5, show_default=True,
              help="Capping never keeps fewer records than this per answer.")
@click.option("--min-quality", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Drop records whose indicator-based quality score is below this.")
@click.option("--judge", is_flag=True, help="Score each remaining record 1-10 with the LLM judge (needs a model).")
@click.option("--judge-threshold", type=click.FloatRange(1, 10), default=None,
              help="[--judge] Keep records scoring at least this.  [default: 6]")
@click.option("--judge-top", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="[--judge] Keep this fraction of the best-scored records instead of a threshold.")
@click.option("--scene-graphs", "sg", type=click.Path(exists=True, path_type=Path), default=None,
              help="[--judge] The scene graphs (the judge checks answers against them).")
@click.option("--vlm-verify", is_flag=True,
              help="Agreement filter: a vision-language model answers each question from the image, blind to our "
                   "answer; records it clearly contradicts are dropped (needs a model, --scene-graphs, --image-root).")
@vlm_options
@engine_options(limit_help="Only the first N QA records (quick trials).")
@llm_options
def command(qa: Path, out: Path, seed: int, min_question_words: int, max_question_words: int, max_answer_words: int,
            min_latin: float, near_dup_threshold: float, near_dup_any_answer: bool, max_answer_share: float,
            min_answer_count: int, min_quality: float, judge: bool, judge_threshold: float | None,
            judge_top: float | None, sg: Path | None, vlm: bool, vlm_verify: bool, image_root: Path | None,
            vlm_max_side: int, strict: bool, **kwargs: Any) -> None:
    """Remove duplicate, unbalanced, malformed and weak QA records; every drop is kept with its reason.

    Without a model: exact and near duplicates per image (MinHash), answer-balance capping per
    program, length and language checks, and an indicator-based quality score. With --judge, a
    language model also scores each remaining record 1-10 against a written rubric.
    Kept records go to part-NNNNN.jsonl (same shards as the input), the others to dropped.jsonl.
    The run-wide decisions are planned first (decisions.jsonl, plan.json), then applied shard by shard
    on the engine (--workers, --rank/--world-size, --engine ray): a rerun rewrites only the shards whose
    input or decisions changed.

    \b
    Examples:
      mmgen curate out/qa -o out/qa-curated
      mmgen curate out/qa -o out/qa-curated --judge --judge-top 0.8 --scene-graphs out/scene_graphs \\
          --llm-base-url http://127.0.0.1:8000/v1 --llm-model smollm2
      mmgen curate out/qa -o out/qa-checked --vlm-verify --scene-graphs out/scene_graphs \
          --image-root images/ --llm-base-url http://127.0.0.1:8000/v1 --llm-model Qwen/Qwen2.5-VL-7B-Instruct
    """
    from ..curate import CurateOptions, curate

    values = pop_llm_options(kwargs)
    engine = options_from(**kwargs)
    if (judge_threshold is not None or judge_top is not None or vlm) and not judge:
        raise click.UsageError("--judge-threshold, --judge-top and --vlm only apply with --judge")
    if sg is not None and not (judge or vlm_verify):
        raise click.UsageError("--scene-graphs only applies with --judge or --vlm-verify")
    if (vlm or vlm_verify) and image_root is None:
        raise click.UsageError("--vlm and --vlm-verify need --image-root")
    settings = None
    if judge or vlm_verify:
        if sg is None:
            raise click.UsageError("--judge and --vlm-verify need --scene-graphs")
        settings = settings_from(values, seed)
    options = CurateOptions(seed=seed, min_question_words=min_question_words, max_question_words=max_question_words,
                            max_answer_words=max_answer_words, min_latin=min_latin,
                            near_dup_threshold=near_dup_threshold, near_dup_any_answer=near_dup_any_answer,
                            max_answer_share=max_answer_share, min_answer_count=min_answer_count,
                            min_quality=min_quality, judge=judge, judge_threshold=judge_threshold,
                            judge_top=judge_top, limits=limits_from(values), vlm=vlm, vlm_verify=vlm_verify,
                            image_root=str(image_root) if image_root else None, vlm_max_side=vlm_max_side)
    summary = curate(qa, out, options, sg_src=sg, settings=settings, engine=engine)
    check_strict(summary, strict)
    log.info("%d records in, %d kept, %d dropped -> %s", summary["inputs"], summary["kept"], summary["dropped"], out)
    if "vlm_verify" in summary:
        log.info("VLM verify: %d checked, %s", summary["vlm_verify"]["checked"],
                 ", ".join(f"{k} {v}" for k, v in summary["vlm_verify"]["outcomes"].items()) or "nothing")
    for name, count in summary["dropped_by_filter"].items():
        log.info("%6d dropped by %s", count, name)
    if "llm" in summary:
        llm = summary["llm"]
        log.info("LLM: %d requests, %d cache hits, %d retries, %d malformed replies, %d failed; %d+%d tokens, "
                 "$%.4f", llm["requests"], llm["cache_hits"], llm["retries"], llm["malformed_replies"],
                 llm["failed_calls"], llm["tokens"]["prompt"], llm["tokens"]["completion"], llm["cost_usd"])
