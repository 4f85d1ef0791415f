"""Export targets: one profile per trainer / model family (``mmgen export --target NAME``).

A target fixes what a family's training code expects, on top of a format (:mod:`mmgen.export`):

================  =========  ==============================  ===================================  ==============
target            format     image paths                     boxes in questions and answers       several images
================  =========  ==============================  ===================================  ==============
llava-1.5         llava      relative: ``--image_folder``    ``[0.12, 0.30, 0.25, 0.45]`` in [0,1]  skipped, counted
llava-onevision   llava      relative: ``--image_folder``    ``[0.12, 0.30, 0.25, 0.45]`` in [0,1]  ``Image 1: <image>``
qwen2-vl          sharegpt   relative: LLaMA-Factory         ``<|box_start|>(120,300),(250,450)``   ``Image 1: <image>``
                             ``media_dir``                   ``<|box_end|>`` in [0,1000]
qwen2.5-vl        sharegpt   relative: ``media_dir``         ``[x1, y1, x2, y2]`` pixels of the     ``Image 1: <image>``
                                                             resized image (see below)
internvl          llava      relative: meta file ``root``    ``<box>[[120, 300, 250, 450]]</box>``  ``Image-1: <image>``
                  (JSONL)                                    in [0,1000]
llamafactory      sharegpt   relative: ``media_dir``         [0,1]                                ``Image 1: <image>``
trl               hf         embedded bytes (or absolute     [0,1]                                ``Image 1: `` text
                             paths with ``--hf-images path``)                                      part, image part
================  =========  ==============================  ===================================  ==============

* **Image field**: ``llava-1.5`` writes ``image`` as one path (its loader joins it with the image
  folder, so it cannot take a list: records of several images are skipped and counted in the export
  summary); ``llava-onevision`` always writes a list (one path or several), so every record has the same
  type and ``datasets.load_dataset("json")`` reads the file; InternVL writes a path for one image and a
  list for several, as its loader expects. ShareGPT and chat formats always write lists.
* **Image tokens** go at the start of the first human turn for the LLaVA and InternVL targets (their
  loaders move them there anyway). LLaMA-Factory turns each ``<image>`` into the model's vision tokens
  (``<|vision_start|><|image_pad|><|vision_end|>`` for Qwen), so the files hold ``<image>``.
* **Boxes**: a grounding record (``answer_type == "box"``) gets its answer from its structured ``value``
  (normalised ``[x1, y1, x2, y2]``, 3 decimals); the options and every other box written in the texts
  (regions in questions, objects located "at [..]") are the two-decimal boxes the programs write with
  :func:`programs.grammar.fmt_box`, converted where they stand. Coordinates in [0,1000] are
  ``floor(v * 1000 + 0.5)``. The question's answer-format words are changed with them ("normalized
  [x1, y1, x2, y2]" becomes e.g. "(x1,y1),(x2,y2) on a 0-1000 grid").
* **Qwen2.5-VL** boxes are absolute pixels of the image *as its processor resizes it*: the image size
  (read from the file, after EXIF orientation, the frame our boxes are in) goes through Qwen2.5-VL's
  ``smart_resize`` with the processor's defaults (sides rounded to multiples of 28, at least
  ``MIN_PIXELS`` = 3136 and at most ``MAX_PIXELS`` = 12845056 pixels, the ``preprocessor_config.json``
  of the released checkpoints; ``transformers``' own class default is 1003520), or at most
  ``--max-pixels`` when training runs with another ``max_pixels``. A trainer that shrinks images first
  sees another frame: LLaMA-Factory's ``image_max_pixels`` defaults to 768 x 768, so the
  ``llamafactory_args.yaml`` written beside the data sets it to the same limit. The target needs
  ``--image-root`` (to read the sizes). A record of several images whose question or answer holds a
  box is skipped (counted): which image's pixels it means is not known; a box only in its rationale
  makes its answer plain (counted too).

``mmgen validate`` reads the target from ``export.json`` and checks what it fixes (:func:`check`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

from programs.base import MULTIPLE_CHOICE, QA

from .options import ExportError, ExportOptions

MIN_PIXELS = 56 * 56
MAX_PIXELS = 16384 * 28 * 28
PATCH = 28
"""Qwen2.5-VL's processor defaults (``min_pixels``, ``max_pixels``, patch 14 x merge 2)."""

NORM_BOX = re.compile(r"\[(0\.\d\d|1\.00), (0\.\d\d|1\.00), (0\.\d\d|1\.00), (0\.\d\d|1\.00)\]")
"""A normalised box as the programs write it (:func:`programs.grammar.fmt_box`)."""
QWEN2_BOX = re.compile(r"<\|box_start\|>\((\d{1,4}),(\d{1,4})\),\((\d{1,4}),(\d{1,4})\)<\|box_end\|>")
INTERNVL_BOX = re.compile(r"<box>\[\[(\d{1,4}), (\d{1,4}), (\d{1,4}), (\d{1,4})\]\]</box>")
PIXEL_BOX = re.compile(r"\[(\d{1,5}), (\d{1,5}), (\d{1,5}), (\d{1,5})\]")
BOX_OPENERS = {"qwen2": "<|box_start|>", "internvl": "<box>"}

QUESTION_WORDS = {
    "qwen2": (("normalized [x1, y1, x2, y2]", "(x1,y1),(x2,y2) on a 0-1000 grid"),
              ("normalized coordinates", "coordinates on a 0-1000 grid")),
    "internvl": (("normalized [x1, y1, x2, y2]", "[[x1, y1, x2, y2]] on a 0-1000 grid"),
                 ("normalized coordinates", "coordinates on a 0-1000 grid")),
    "qwen25": (("normalized [x1, y1, x2, y2]", "[x1, y1, x2, y2] in pixels"),
               ("normalized coordinates", "pixel coordinates")),
}
"""The answer-format words of the grounding templates, per box style."""


class Skip(Exception):
    """A record the target cannot take (the message is the counted reason)."""


@dataclass(frozen=True)
class Target:
    name: str
    format: str
    summary: str
    box_style: str = "norm"
    """``norm`` (our [0,1] boxes), ``qwen2``, ``qwen25`` or ``internvl``."""
    image_label: str = "Image {k}: "
    """Written before each ``<image>`` token of a record of several images (``{k}`` from 1)."""
    multi_image: bool = True
    """False: records of several images are skipped (counted)."""
    image_field: str = "auto"
    """llava format: ``str`` (one path), ``list`` (always a list) or ``auto`` (a list for several)."""
    placement: str | None = None
    """Forced image-token placement, or None for the option's."""
    jsonl: bool | None = None
    """Forced JSON lines (True) or None for the option's."""
    template: str | None = None
    """The trainer's chat template name (LLaMA-Factory ``template``), for the hints."""

    def image_markers(self, count: int) -> list[str]:
        return ["<image>"] if count == 1 else [self.image_label.format(k=k) + "<image>" for k in range(1, count + 1)]


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("llava-1.5", "llava", "LLaVA-1.5: one image path per record, <image> first, [0,1] boxes",
           multi_image=False, image_field="str", placement="start"),
    Target("llava-onevision", "llava", "LLaVA-OneVision / LLaVA-NeXT: image always a list, labelled tokens",
           image_field="list", placement="start"),
    Target("qwen2-vl", "sharegpt", "Qwen2-VL via LLaMA-Factory: <|box_start|>(x1,y1),(x2,y2)<|box_end|> in [0,1000]",
           box_style="qwen2", template="qwen2_vl"),
    Target("qwen2.5-vl", "sharegpt", "Qwen2.5-VL via LLaMA-Factory: boxes in pixels of the resized image",
           box_style="qwen25", template="qwen2_vl"),
    Target("internvl", "llava", "InternVL fine-tuning JSONL + meta file: <box>[[x1, y1, x2, y2]]</box> in [0,1000]",
           box_style="internvl", image_label="Image-{k}: ", placement="start", jsonl=True),
    Target("llamafactory", "sharegpt", "LLaMA-Factory ShareGPT + dataset_info.json + args with media_dir"),
    Target("trl", "hf", "TRL SFTTrainer: parquet with Image() features and chat messages"),
)}

DEFAULT_TARGET = Target("", "", "")
"""What a plain format (no target) does."""


def get_target(name: str | None) -> Target:
    if not name:
        return DEFAULT_TARGET
    if name not in TARGETS:
        raise ExportError(f"unknown export target {name!r}; choose one of {', '.join(TARGETS)}")
    return TARGETS[name]


def resolve(target: Target, fmt: str | None, options: ExportOptions) -> tuple[str, ExportOptions]:
    """(format, options) for an export to ``target`` (a format given beside it must be the target's)."""
    if not target.name:
        return fmt or "llava", options
    from . import ALIASES

    if fmt is not None and ALIASES.get(fmt, fmt) != target.format:
        raise ExportError(f"the {target.name} target writes the {target.format} format, not {fmt}")
    changes: dict[str, Any] = {"target": target.name}
    if target.placement is not None:
        changes["placement"] = target.placement
    if target.jsonl is not None:
        changes["jsonl"] = target.jsonl
    if target.box_style == "qwen25" and options.image_root is None:
        raise ExportError(f"the {target.name} target needs --image-root (its boxes are in pixels of each image)")
    return target.format, replace(options, **changes)


# --------------------------------------------------------------------------------------- boxes
def smart_resize(height: int, width: int, factor: int = PATCH, min_pixels: int = MIN_PIXELS,
                 max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(height, width) of an image as Qwen2.5-VL's processor resizes it: each side rounded to a multiple
    of ``factor``, then scaled (keeping the aspect) into [min_pixels, max_pixels]."""
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


@lru_cache(maxsize=4096)
def oriented_size(path: str) -> tuple[int, int]:
    """(width, height) of an image after its EXIF orientation (read from the header only)."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        orientation = im.getexif().get(274, 1)
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def resized_size(path: str | Path, max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) of the image as Qwen2.5-VL sees it (:func:`smart_resize` of its oriented size)."""
    w, h = oriented_size(str(path))
    rh, rw = smart_resize(h, w, max_pixels=max_pixels or MAX_PIXELS)
    return rw, rh


def _half_up(v: float) -> int:
    return int(math.floor(v + 0.5))


def box_text(box: Sequence[float], style: str, size: tuple[int, int] | None = None) -> str:
    """A normalised box written in a target's syntax (``size``: the resized (width, height) for qwen25)."""
    if style == "norm":
        return "[" + ", ".join(f"{v:.2f}" for v in box) + "]"
    if style == "qwen25":
        if size is None:
            raise ExportError("pixel boxes need the image size")
        w, h = size
        x1, y1, x2, y2 = (min(max(_half_up(v * s), 0), s) for v, s in zip(box, (w, h, w, h)))
        return f"[{x1}, {y1}, {x2}, {y2}]"
    x1, y1, x2, y2 = (min(max(_half_up(v * 1000), 0), 1000) for v in box)
    if style == "qwen2":
        return f"<|box_start|>({x1},{y1}),({x2},{y2})<|box_end|>"
    if style == "internvl":
        return f"<box>[[{x1}, {y1}, {x2}, {y2}]]</box>"
    raise ExportError(f"unknown box style {style!r}")


def is_unit_box(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in value))


def convert_boxes(qa: QA, style: str, size: tuple[int, int] | None) -> QA:
    """The record with every box in ``style`` (see the module docstring); unchanged for ``norm``, and for
    ``qwen25`` without a size (several images: boxes left as they are, the caller decides)."""
    if style == "norm" or (style == "qwen25" and size is None):
        return qa

    def sub(text: str) -> str:
        return NORM_BOX.sub(lambda m: box_text([float(g) for g in m.groups()], style, size), text)

    structured = qa.answer_type == "box" and is_unit_box(qa.value)
    question, answer = sub(qa.question), sub(qa.answer)
    options = [sub(o) for o in qa.options]
    if structured:
        answer = box_text(qa.value, style, size)
        i = qa.answer_index
        if qa.question_type == MULTIPLE_CHOICE and isinstance(i, int) and 0 <= i < len(qa.options) \
                and qa.options[i] == qa.answer:
            options[i] = answer
        for old, new in QUESTION_WORDS.get(style, ()):
            question = question.replace(old, new)
    turns = [(sub(q), sub(a)) for q, a in qa.turns]
    if turns and tuple(qa.turns[0]) == (qa.question, qa.answer):
        turns[0] = (question, answer)
    return replace(qa, question=question, answer=answer, options=tuple(options), turns=tuple(turns),
                   rationale=sub(qa.rationale))


def apply(target: Target, qa: QA, image_files: Sequence[Path] | None, max_pixels: int | None = None) -> QA:
    """The record as ``target`` writes it, or :class:`Skip` with the reason."""
    if not target.multi_image and len(qa.images) > 1:
        raise Skip(f"records of several images ({target.name} takes one image path per record)")
    if target.box_style == "qwen25":
        if len(qa.images) == 1:
            if image_files is None:
                raise ExportError(f"the {target.name} target needs --image-root (boxes in pixels)")
            return convert_boxes(qa, "qwen25", resized_size(image_files[0], max_pixels))
        return qa  # several images: skipped by the caller if a box is written (which image's pixels?)
    return convert_boxes(qa, target.box_style, None)


def unconverted(target: Target, texts: Sequence[str]) -> bool:
    """Whether a normalised box is left in texts the target writes in another syntax."""
    return target.box_style != "norm" and any(NORM_BOX.search(t) for t in texts)


# --------------------------------------------------------------------------------------- trainer files
def trainer_settings(target: Target, out: Path, files: dict[str, int], options: ExportOptions) -> dict[str, Any]:
    """What to tell the trainer (stored in ``export.json`` as ``trainer`` and logged)."""
    root = str(options.image_root.resolve()) if options.image_root is not None else None
    data = [name for name in files if name.endswith((".json", ".jsonl")) and name.split(".")[0] in ("train", "val")]
    if target.format == "llava":
        if target.name == "internvl":
            return {"meta_path": str((out / INTERNVL_META).resolve()), "root": root}
        return {"data_path": str((out / data[0]).resolve()) if data else None, "image_folder": root}
    if target.format == "sharegpt":
        s: dict[str, Any] = {"dataset_dir": str(out.resolve()), "dataset": "mmgen_train", "media_dir": root}
        if target.template:
            s["template"] = target.template
        return s
    return {"load": f"datasets.load_dataset({str(out.resolve())!r}, name='all')"}


INTERNVL_META = "internvl_meta.json"
LLAMAFACTORY_ARGS = "llamafactory_args.yaml"


def write_trainer_files(target: Target, out: Path, files: dict[str, int], options: ExportOptions,
                        write: Callable[[Path, str], None]) -> list[str]:
    """Files beside the data that the target's trainer reads; returns their names."""
    settings = trainer_settings(target, out, files, options)
    if target.name == "internvl":
        meta = {f"mmgen_{name.split('.')[0]}": {"root": settings["root"] or "",
                                                 "annotation": str((out / name).resolve()),
                                                 "data_augment": False, "repeat_time": 1, "length": n}
                for name, n in files.items() if name.split(".")[0] in ("train", "val")}
        write(out / INTERNVL_META, json.dumps(meta, indent=2) + "\n")
        return [INTERNVL_META]
    if target.format == "sharegpt":
        lines = ["# LLaMA-Factory arguments for this export (merge into your training YAML).",
                 "# media_dir: the folder the image paths are relative to (the export's --image-root).",
                 f"dataset_dir: {json.dumps(settings['dataset_dir'])}", f"dataset: {settings['dataset']}"]
        if "mmgen_val" in _dataset_names(files):
            lines.append("eval_dataset: mmgen_val")
        lines.append(f"media_dir: {json.dumps(settings['media_dir'])}" if settings["media_dir"]
                     else "# media_dir: set it to the folder the image paths are relative to")
        if "template" in settings:
            lines.append(f"template: {settings['template']}")
        if target.box_style == "qwen25":
            lines.append(f"image_max_pixels: {options.max_pixels or MAX_PIXELS}  # the frame of the pixel boxes")
        write(out / LLAMAFACTORY_ARGS, "\n".join(lines) + "\n")
        return [LLAMAFACTORY_ARGS]
    return []


def _dataset_names(files: dict[str, int]) -> set[str]:
    return {f"mmgen_{name.split('.')[0]}" for name in files if name.split(".")[0] in ("train", "val")}


# --------------------------------------------------------------------------------------- validation
def _box_problems(style: str, text: str, size: tuple[int, int] | None) -> list[str]:
    problems = []
    left = NORM_BOX.search(text) if style != "norm" else None
    if left is not None:
        problems.append(f"a normalised [0,1] box {left.group(0)} where {style} boxes belong")
    for other, opener in BOX_OPENERS.items():
        if other != style and opener in text:
            problems.append(f"a {other} box ({opener}) where {style} boxes belong")
    pattern = {"qwen2": QWEN2_BOX, "internvl": INTERNVL_BOX, "qwen25": PIXEL_BOX}.get(style)
    if pattern is None:
        return problems
    found = list(pattern.finditer(text))
    opener = BOX_OPENERS.get(style)
    if opener is not None and text.count(opener) != len(found):
        problems.append(f"{text.count(opener) - len(found)} malformed {opener} box(es)")
    limit = (size[0], size[1], size[0], size[1]) if style == "qwen25" and size else (1000,) * 4
    for m in found:
        x1, y1, x2, y2 = (int(g) for g in m.groups())
        if x1 > x2 or y1 > y2:
            problems.append(f"box {m.group(0)} has x1 > x2 or y1 > y2")
        elif style != "qwen25" or size is not None:
            if any(v > lim for v, lim in zip((x1, y1, x2, y2), limit)):
                problems.append(f"box {m.group(0)} lies outside {limit[0]} x {limit[1]}")
    return problems


def check(target: Target, raw: Any, view: Any, style: str = "plain",
          size: Callable[[int], tuple[int, int] | None] | None = None, marker: str = "image token") -> list[str]:
    """What ``target`` (and the think ``style``) fix, checked on one exported record: with or without a
    target, the labels of a record of several images (before each ``<image>`` token, or as a text part
    before each image part), with ``""`` for one image. ``size(i)``: the
    resized (width, height) of image ``i`` when the image root is known (qwen2.5-vl); ``marker``: what
    the format marks an image with, for messages."""
    problems: list[str] = []
    first = next((t for t in view.turns if t.role == "human"), None)
    if first is not None and view.marks_images and first.markers == len(view.images):
        want = [m.removesuffix("<image>") for m in target.image_markers(len(view.images))]
        if list(first.labels) != want:
            problems.append(f"{marker}s labelled {list(first.labels)}, not {want}")
    if target.name:
        if not target.multi_image and len(view.images) != 1:
            problems.append(f"{len(view.images)} images ({target.name} takes exactly one)")
        if target.format == "llava" and isinstance(raw, dict):
            field = raw.get("image")
            if target.image_field == "str" and not isinstance(field, str):
                problems.append(f"'image' is a {type(field).__name__}, not one path ({target.name})")
            if target.image_field == "list" and not isinstance(field, list):
                problems.append(f"'image' is a {type(field).__name__}, not a list ({target.name})")
        first = next((t for t in view.turns if t.role == "human"), None)
        if first is not None and view.marks_images and target.placement is not None and first.markers \
                and first.placement != target.placement:
            problems.append(f"image tokens not at the {target.placement} of the first human turn")
        img_size = size(0) if size is not None and target.box_style == "qwen25" and len(view.images) == 1 else None
        for n, t in enumerate(view.turns, 1):
            for p in _box_problems(target.box_style, t.text, img_size):
                problems.append(f"turn {n}: {p}")
    if style == "think":
        for n, t in enumerate(view.turns, 1):
            if t.role != "gpt" or "<think>" not in t.text and "</think>" not in t.text:
                continue
            body = t.text
            if not body.startswith("<think>\n") or body.count("<think>") != 1 or body.count("</think>") != 1:
                problems.append(f"turn {n}: not one <think>...</think> block at the start")
            elif not body.split("</think>", 1)[1].strip():
                problems.append(f"turn {n}: no answer after </think>")
            elif not body.split("</think>", 1)[0].removeprefix("<think>").strip():
                problems.append(f"turn {n}: empty <think> block")
    return problems
