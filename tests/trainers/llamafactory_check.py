"""Run LLaMA-Factory's own SFT data pipeline on an mmgen ShareGPT export and check every record survived.

Run inside the LLaMA-Factory venv:
    python tests/trainers/llamafactory_check.py MODEL_DIR EXPORT_DIR MEDIA_DIR REPORT_JSON

EXPORT_DIR is what `mmgen export -f sharegpt` wrote (train.json + dataset_info.json); MEDIA_DIR the image
root its relative paths point into. The dataset is tokenised by `llamafactory.data.get_dataset` with the
`qwen2_vl` template and the tiny model's processor, exactly as `llamafactory-cli train` would, then compared
row by row with train.json: same number of rows, one vision block per image, as many <|image_pad|> tokens as
the image processor makes for those images, every question in the input, and the supervised tokens are
exactly the answers. Writes a JSON report and exits 1 when any check fails.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("llamafactory_check")

IGNORE_INDEX = -100
CUTOFF_LEN = 8192


def pipeline_args(model_dir: str, export_dir: str, media_dir: str, output_dir: str) -> dict[str, Any]:
    """The arguments a user would put in LLaMA-Factory's YAML for SFT on this export."""
    return {
        "model_name_or_path": model_dir,
        "trust_remote_code": False,
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "full",
        "dataset": "mmgen_train",
        "dataset_dir": export_dir,
        "media_dir": media_dir,
        "template": "qwen2_vl",
        "cutoff_len": CUTOFF_LEN,
        "overwrite_cache": True,
        "preprocessing_num_workers": None,
        "output_dir": output_dir,
        "report_to": "none",
        "per_device_train_batch_size": 2,
        "max_steps": 2,
        "use_cpu": True,
    }


def expected_image_tokens(processor: Any, path: Path) -> int:
    """Visual tokens the model's own image processor makes for one image (grid / merge_size**2)."""
    from PIL import Image

    image_processor = processor.image_processor
    with Image.open(path) as im:
        grid = image_processor(images=[im.convert("RGB")], return_tensors="np")["image_grid_thw"]
    return int(grid.prod(axis=-1).sum()) // (image_processor.merge_size**2)


def check(model_dir: str, export_dir: str, media_dir: str, report_path: str) -> bool:
    """Tokenise the export with LLaMA-Factory and compare each row with its record; write the report."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    records = json.loads((Path(export_dir) / "train.json").read_text())
    args = pipeline_args(model_dir, export_dir, media_dir, str(Path(report_path).parent / "lf_unused"))
    model_args, data_args, training_args, _, _ = get_train_args(args)
    tokenizer_module = load_tokenizer(model_args)
    tokenizer, processor = tokenizer_module["tokenizer"], tokenizer_module["processor"]
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    dataset = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)
    train = dataset["train_dataset"]

    pad_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    start_id = tokenizer.convert_tokens_to_ids("<|vision_start|>")
    cache: dict[str, int] = {}
    errors: list[str] = []
    n_images = n_image_tokens = n_answers = 0
    if len(train) != len(records):
        errors.append(f"{len(records)} records in, {len(train)} rows out")
    for i, (row, rec) in enumerate(zip(train, records)):
        rid = rec["id"]
        ids, labels = row["input_ids"], row["labels"]
        paths = rec.get("images") or []
        for p in paths:
            if p not in cache:
                cache[p] = expected_image_tokens(processor, Path(media_dir) / p)
        want_tokens = sum(cache[p] for p in paths)
        got_starts, got_pads = ids.count(start_id), ids.count(pad_id)
        if got_starts != len(paths):
            errors.append(f"{rid}: {len(paths)} image(s), {got_starts} vision block(s)")
        if got_pads != want_tokens:
            errors.append(f"{rid}: {want_tokens} image tokens expected, {got_pads} in input_ids")
        if len(row.get("images") or []) != len(paths):
            errors.append(f"{rid}: {len(paths)} image(s), {len(row.get('images') or [])} kept by the dataset")
        text = tokenizer.decode(ids, skip_special_tokens=False)
        for turn in rec["conversations"]:
            if turn["from"] != "human":
                continue
            for piece in turn["value"].split("<image>"):  # the text around each image block, in order
                if piece.strip() and piece.strip() not in text:
                    errors.append(f"{rid}: question text missing from the input: {piece.strip()[:60]!r}")
        supervised = tokenizer.decode([t for t in labels if t != IGNORE_INDEX], skip_special_tokens=False)
        got_answers = [a.strip("\n") for a in supervised.split("<|im_end|>")][:-1]
        want_answers = [t["value"] for t in rec["conversations"] if t["from"] == "gpt"]
        if got_answers != want_answers:
            errors.append(f"{rid}: supervised answers {got_answers!r} != {want_answers!r}")
        n_images += len(paths)
        n_image_tokens += got_pads
        n_answers += len(got_answers)
    report = {
        "framework": "llamafactory",
        "records_in": len(records),
        "records_out": len(train),
        "images": n_images,
        "image_tokens": n_image_tokens,
        "answers": n_answers,
        "errors": errors[:50],
        "n_errors": len(errors),
    }
    Path(report_path).write_text(json.dumps(report, indent=2))
    log.info("LLaMA-Factory: %d records in, %d rows out, %d error(s)", len(records), len(train), len(errors))
    for e in errors[:20]:
        log.error("%s", e)
    return not errors


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    sys.exit(0 if check(*sys.argv[1:5]) else 1)
