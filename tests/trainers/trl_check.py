"""Train TRL's SFTTrainer for two steps on an mmgen parquet (`-f hf`) export and check every record survived.

Run inside the TRL venv:
    python tests/trainers/trl_check.py MODEL_DIR EXPORT_DIR REPORT_JSON

The export folder is loaded as a user would (`datasets.load_dataset(EXPORT_DIR, split="train")`, which reads
its README's parquet configs), handed to `SFTTrainer` with the tiny model and its processor, and every row is
put through the trainer's own collator: one image grid per image part of the messages, as many
<|image_pad|> tokens as the image processor makes for those images, every question and answer in the input,
and some supervised tokens. Then two optimiser steps run. Writes a JSON report and exits 1 on any failure.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("trl_check")


def image_parts(messages: list[dict[str, Any]]) -> int:
    """Image placeholders in a conversation's structured content."""
    return sum(
        1
        for m in messages
        if isinstance(m["content"], list)
        for part in m["content"]
        if part.get("type") == "image"
    )


def texts(messages: list[dict[str, Any]], role: str) -> list[str]:
    """Every text of the turns of `role`: a string content, or each text part (an image's label part,
    "Image 1: ", sits between image parts, so the parts are found one by one)."""
    out = []
    for m in messages:
        if m["role"] != role:
            continue
        content = m["content"]
        if isinstance(content, str):
            out.append(content)
        else:
            out.extend(p.get("text") or "" for p in content if p.get("type") == "text")
    return out


def check(model_dir: str, export_dir: str, report_path: str) -> bool:
    """Load the export, check each row through the trainer's collator, train two steps; write the report."""
    import datasets
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    export = json.loads((Path(export_dir) / "export.json").read_text())
    dataset = datasets.load_dataset(export_dir, split="train")
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    out_dir = Path(report_path).parent / "trl_out"
    config = SFTConfig(
        output_dir=str(out_dir),
        max_steps=2,
        per_device_train_batch_size=2,
        max_length=None,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
    )
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=processor)
    train = trainer.train_dataset

    tokenizer = processor.tokenizer
    pad_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    merge = processor.image_processor.merge_size
    errors: list[str] = []
    n_images = n_image_tokens = 0
    records_in = int(export["records"])
    if len(dataset) != records_in or len(train) != records_in:
        errors.append(f"{records_in} records exported, {len(dataset)} loaded, {len(train)} in the trainer")
    for row in train:
        rid = row.get("id", "?")
        want_images = image_parts(row["messages"])
        if len(row["images"]) != want_images:
            errors.append(f"{rid}: {want_images} image part(s), {len(row['images'])} image(s) in the row")
        expected = processor.image_processor(images=[im.convert("RGB") for im in row["images"]], return_tensors="np")
        want_tokens = int(expected["image_grid_thw"].prod(axis=-1).sum()) // merge**2
        batch = trainer.data_collator([dict(row)])
        ids = batch["input_ids"][0].tolist()
        got_tokens = ids.count(pad_id)
        grids = batch["image_grid_thw"].shape[0] if "image_grid_thw" in batch else 0
        if grids != want_images:
            errors.append(f"{rid}: {want_images} image(s), {grids} image grid(s) from the collator")
        if got_tokens != want_tokens:
            errors.append(f"{rid}: {want_tokens} image tokens expected, {got_tokens} from the collator")
        text = tokenizer.decode(ids, skip_special_tokens=False)
        for t in texts(row["messages"], "user") + texts(row["messages"], "assistant"):
            if t.strip() not in text:
                errors.append(f"{rid}: turn missing from the collated input: {t[:60]!r}")
        if int((batch["labels"][0] != -100).sum()) == 0:
            errors.append(f"{rid}: no supervised tokens")
        n_images += want_images
        n_image_tokens += got_tokens

    result = trainer.train()
    steps = trainer.state.global_step
    if steps != 2 or not math.isfinite(result.training_loss):
        errors.append(f"training: {steps} step(s), loss {result.training_loss}")
    report = {
        "framework": "trl",
        "records_in": records_in,
        "records_out": len(train),
        "images": n_images,
        "image_tokens": n_image_tokens,
        "steps": steps,
        "train_loss": result.training_loss,
        "errors": errors[:50],
        "n_errors": len(errors),
    }
    Path(report_path).write_text(json.dumps(report, indent=2))
    log.info("TRL: %d records in, %d rows out, %d step(s), %d error(s)", records_in, len(train), steps, len(errors))
    for e in errors[:20]:
        log.error("%s", e)
    return not errors


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    sys.exit(0 if check(*sys.argv[1:4]) else 1)
