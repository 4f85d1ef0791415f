"""``mmgen export``: QA records -> training files (LLaVA, ShareGPT, chat messages, OpenAI, HF datasets,
ProVision), optionally for one trainer / model family (``--target``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from ..engine.options import engine_options, options_from
from ..export.options import ANSWER_STYLES, HF_IMAGE_MODES, IMAGE_URL_MODES, OPTION_STYLES, PLACEMENTS, STYLES

log = logging.getLogger("mmgen.export")

FORMAT_CHOICES = ("llava", "sharegpt", "messages", "openai", "hf", "provision", "llamafactory")
TARGET_CHOICES = ("llava-1.5", "llava-onevision", "qwen2-vl", "qwen2.5-vl", "internvl", "llamafactory", "trl")


@click.command("export")
@click.argument("qa", type=click.Path(exists=True, path_type=Path))
@click.option("-f", "--format", "fmt", type=click.Choice(FORMAT_CHOICES), default=None,
              help="llava (default) | sharegpt (LLaMA-Factory) | messages (HF/TRL chat) | openai (OpenAI "
                   "fine-tuning JSONL, image_url parts) | hf (parquet dataset, needs the hf extra) | provision "
                   "(ProVision-10M records). A --target picks it.")
@click.option("-t", "--target", type=click.Choice(TARGET_CHOICES), default=None,
              help="Trainer / model family: picks the format, image-token labels, box syntax (qwen2-vl: "
                   "<|box_start|>(x1,y1),(x2,y2)<|box_end|> in 0-1000; qwen2.5-vl: pixels; internvl: "
                   "<box>[[...]]</box> in 0-1000) and writes the trainer's files (media_dir, meta file).")
@click.option("--style", type=click.Choice(STYLES), default="plain", show_default=True,
              help="think: answers are <think>\\n<rationale>\\n</think>\\n\\n<answer>.")
@click.option("--merge-per-image", is_flag=True,
              help="One conversation per image (LLaVA-665k): an image's single-image records become its turns.")
@click.option("--max-pixels", type=click.IntRange(min=3136), default=None,
              help="qwen2.5-vl: the max_pixels training runs with (pixel boxes are in the frame the processor "
                   "resizes to; default 12845056, the released checkpoints').")
@click.option("--image-urls", type=click.Choice(IMAGE_URL_MODES), default="path", show_default=True,
              help="openai: the written path as URL (with --path-prefix https://...), or base64 data URLs.")
@click.option("-o", "--output", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the files: train.json (+ val.json), or the hf dataset; plus export.json.")
@click.option("--image-root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder the QA image paths are relative to (the annotate/import input). Written paths stay "
                   "relative to it; with it every image is checked to exist. Required for hf.")
@click.option("--path-prefix", default="", help="Folder prefix added to every written image path.")
@click.option("--jsonl", is_flag=True, help="Write JSON lines instead of a JSON list.")
@click.option("--image-placement", type=click.Choice(PLACEMENTS), default="start", show_default=True,
              help="Image tokens/parts before or after the first question; random: per record, from a hash "
                   "of the record id and --placement-seed.")
@click.option("--placement-seed", type=int, default=0, show_default=True)
@click.option("--option-style", type=click.Choice(OPTION_STYLES), default="letter", show_default=True,
              help='Multiple-choice labels: "A. red", "1. red" or "(A) red".')
@click.option("--answer-style", type=click.Choice(ANSWER_STYLES), default="letter", show_default=True,
              help='Multiple-choice answers: the label ("A"), label and text ("A. red"), or the text.')
@click.option("--mc-instruction/--no-mc-instruction", default=True, show_default=True,
              help="Add a line saying how to answer multiple-choice questions.")
@click.option("--rationale", is_flag=True, help="Answers give the program's reasoning, then 'Answer: ...'.")
@click.option("--system-prompt", default=None, help="System turn (sharegpt, messages, hf).")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Share of images (with all their records) written to the val split; multi-image records "
                   "go by their first image.")
@click.option("--split-seed", type=int, default=0, show_default=True, help="Another seed, another image split.")
@click.option("--hf-images", type=click.Choice(HF_IMAGE_MODES), default="embed", show_default=True,
              help="hf: embed image bytes, or store absolute paths below --image-root.")
@click.option("--no-image-check", is_flag=True, help="Do not check that image files exist.")
@engine_options(limit_help="Only the first N QA records (quick trials).")
def command(qa: Path, fmt: str | None, target: str | None, style: str, merge_per_image: bool, max_pixels: int | None,
            image_urls: str,
            out: Path, image_root: Path | None, path_prefix: str, jsonl: bool,
            image_placement: str, placement_seed: int, option_style: str, answer_style: str, mc_instruction: bool,
            rationale: bool, system_prompt: str | None, val_fraction: float, split_seed: int, hf_images: str,
            no_image_check: bool, strict: bool, **kwargs: Any) -> None:
    """Write QA records (a generate/evolve/curate output folder or shard) as training files.

    \b
    Examples:
      mmgen export out/qa -o out/llava --image-root images --val-fraction 0.05
      mmgen export out/qa -f sharegpt -o out/lf --image-root images --system-prompt "You are helpful."
      mmgen export out/qa -f hf -o out/hf --image-root images
      mmgen export out/qa --target qwen2-vl -o out/qwen --image-root images
    Check the result with `mmgen validate OUT`. The records are rendered shard by shard on the engine
    (--workers, ranks; a rerun over unchanged inputs writes nothing, an interrupted one goes on), then
    the files are written once every shard is done.
    """
    from ..engine.core import EngineError
    from ..export import ExportOptions, export

    options = ExportOptions(image_root=image_root, path_prefix=path_prefix, jsonl=jsonl, placement=image_placement,
                            placement_seed=placement_seed, option_style=option_style, answer_style=answer_style,
                            mc_instruction=mc_instruction, rationale=rationale, system_prompt=system_prompt,
                            val_fraction=val_fraction, split_seed=split_seed, hf_images=hf_images,
                            check_images=not no_image_check, target=target, style=style,
                            merge_per_image=merge_per_image, image_urls=image_urls,
                            max_pixels=max_pixels)
    try:
        summary = export(qa, out, fmt, options, options_from(**kwargs))
    except EngineError as exc:
        raise click.ClickException(str(exc)) from None
    splits = ", ".join(f"{n} {s}" for s, n in sorted(summary.per_split.items()))
    log.info("%d records (%s) -> %s [%s]", summary.records, splits or "none", out, summary.format)
    for note, count in sorted(summary.notes.items()):
        log.warning("%d %s", count, note)
    if summary.skipped:
        log.warning("%d records skipped (see export.json)", sum(summary.skipped.values()))
        if strict:
            raise click.ClickException(f"{sum(summary.skipped.values())} record(s) skipped (--strict)")
