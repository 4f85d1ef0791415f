"""From a QA record to format-neutral conversation turns: ids, image paths, splits, image-token
placement, multiple-choice options and answers, rationales.

Every format module builds its records from a :class:`Rendered` (and reads them back into a
:class:`~mmgen.export.base.RecordView`), so all formats say the same thing in different shapes.

Rules written down here:

* **Ids**: the QA id (``<image id>[+<image id>...]:<program>:<index>``) made safe for file names and
  training code: ``:`` becomes ``-`` and ``+`` becomes ``_`` (any other character outside
  ``[A-Za-z0-9._-]`` becomes ``_``). Image ids are hex digits and program ids ``[a-z0-9_.]``, so the
  mapping is one-to-one on ids made by :mod:`programs.base`; ``mmgen validate`` checks uniqueness anyway.
* **Splits**: by image, never by record: a record goes to ``val`` when a hash of (split seed, its
  image id) falls below ``val_fraction``, so all records of one image land in the same split. A
  multi-image record goes by its *first* image (its other images may also appear in the other split).
* **Image tokens**: one ``<image>`` per image, in image order, all in the first human turn, at its
  start (``<image>\\n`` before the text) or end (``\\n<image>`` after it); ``random`` chooses start or
  end from a hash of (placement seed, record id). A record of several images labels each token
  (``Image 1: <image>``, one per line; InternVL's ``Image-1: <image>``), as its questions and answers
  name them ("Image 2"). Formats of typed content parts (``messages``, ``hf``, ``openai``) write the
  label as a text part just before each image part (``[text "Image 1: ", image, text "Image 2: ",
  image, text question]``), which chat templates that keep the parts in order (Qwen2-VL's, Idefics',
  Gemma 3's, OpenAI) show as ``Image 1: <image>Image 2: <image>question``.
* **Targets** (:mod:`mmgen.export.targets`) rewrite a record before it is rendered (boxes in the model
  family's syntax) or skip it (counted by reason in the export summary).
* **Multiple choice**: the question, then one line per option (``A. red`` / ``1. red`` / ``(A) red``),
  then an optional instruction line; the answer is the label, the label and text, or the text.
  Multi-turn records put options on the turn they belong to (the first).
* **Rationale**: the answer becomes ``<rationale>\\nAnswer: <answer>`` (with the think style
  ``<think>\\n<rationale>\\n</think>\\n\\n<answer>``). A multi-turn rationale
  (``Turn 1: ... Turn 2: ...``) is split per turn; when it cannot be split the answers stay plain
  (counted in the export summary).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections import Counter
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from programs.base import FORMS, MULTIPLE_CHOICE, QA, stable_int

from .options import ExportError, ExportOptions

IMAGE_TOKEN = "<image>"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_LABEL = r"(?:Image[ -]\d+: )"
_TOKEN_WITH_NEWLINE = re.compile(rf"{_LABEL}?<image>\n?|\n?{_LABEL}?<image>")
_LABELLED_TOKEN = re.compile(rf"({_LABEL}?)<image>")
_LABEL_PART = re.compile(_LABEL)
DEFAULT_LABEL = "Image {k}: "
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_TURN_STEP = re.compile(r"(?:^|\s)Turn (\d+): ")


@dataclass(frozen=True)
class Rendered:
    """One QA record ready to be written by any format."""

    id: str
    """Safe, stable, unique record id."""
    qa: QA
    images: tuple[str, ...]
    """Image paths as written (relative to the image root, prefix applied), in the record's order."""
    image_files: tuple[Path, ...] | None
    """The image files on disk (only when an image root is known)."""
    system: str | None
    turns: tuple[tuple[str, str], ...]
    """(human, gpt) text pairs, without image tokens."""
    placement: str
    """``start`` or ``end``: where the image tokens/parts go in the first human turn."""
    split: str
    image_label: str = DEFAULT_LABEL
    """Written before each token of a record of several images (``{k}`` from 1; the target's)."""
    image_field: str = "auto"
    """llava format: ``str``, ``list`` or ``auto`` (a list for several images; the target's)."""


# --------------------------------------------------------------------------------------- ids, splits
def safe_id(qa_id: str) -> str:
    """The export id of a QA record (see module docstring)."""
    return _UNSAFE.sub("_", qa_id.replace(":", "-").replace("+", "_"))


def split_fraction(image_id: str, seed: int = 0) -> float:
    """Where an image falls in [0, 1) for splitting (uniform, stable across processes)."""
    return stable_int(f"split:{seed}:{image_id}") / 2.0 ** 64


def split_of(qa: QA, val_fraction: float, seed: int = 0) -> str:
    """``train`` or ``val`` for a record, decided by its first image only."""
    if val_fraction <= 0:
        return "train"
    return "val" if split_fraction(qa.images[0], seed) < val_fraction else "train"


def placement_for(record_id: str, placement: str, seed: int = 0) -> str:
    """``start`` or ``end`` for one record (``random`` hashes the record id with the seed)."""
    if placement != "random":
        return placement
    return "start" if stable_int(f"placement:{seed}:{record_id}") & 1 == 0 else "end"


# --------------------------------------------------------------------------------------- image tokens
def image_markers(count: int, label: str = DEFAULT_LABEL) -> list[str]:
    """The image tokens of a record: ``<image>`` for one image; ``Image 1: <image>``, ``Image 2: <image>``...
    for several, so that questions and answers saying "Image 2" name an image the prompt labels
    (``label`` is the target's: InternVL's is ``Image-1: ``)."""
    if count == 1:
        return [IMAGE_TOKEN]
    return [label.format(k=k) + IMAGE_TOKEN for k in range(1, count + 1)]


def image_part_labels(count: int, label: str = DEFAULT_LABEL) -> list[str]:
    """The label text part written before each image part of a record (formats of typed content parts:
    ``messages``, ``hf``, ``openai``): ``""`` (no part) for one image, else ``Image 1: ``, ``Image 2: ``...,
    the labels of :func:`image_markers`."""
    return [m.removesuffix(IMAGE_TOKEN) for m in image_markers(count, label)]


def is_image_label(text: str) -> bool:
    """Whether a text part is an image label (``Image 3: ``, InternVL's ``Image-3: ``) and nothing else."""
    return _LABEL_PART.fullmatch(text) is not None


def image_labels(text: str) -> list[str]:
    """The label before each image token of ``text`` (``""`` for a bare token), in order."""
    return _LABELLED_TOKEN.findall(text)


def add_image_tokens(text: str, count: int, placement: str, label: str = DEFAULT_LABEL) -> str:
    """``text`` with ``count`` image tokens (:func:`image_markers`) at its start or end, one per line."""
    markers = image_markers(count, label)
    if placement == "start":
        return "".join(f"{m}\n" for m in markers) + text
    return text + "".join(f"\n{m}" for m in markers)


def strip_image_tokens(text: str) -> tuple[str, int]:
    """(text without image tokens, their ``Image k:`` labels and the newline beside each, number of tokens)."""
    return _TOKEN_WITH_NEWLINE.sub("", text), text.count(IMAGE_TOKEN)


# --------------------------------------------------------------------------------------- multiple choice
def option_label(index: int, style: str) -> str:
    return str(index + 1) if style == "number" else chr(ord("A") + index)


def option_line(index: int, text: str, style: str) -> str:
    label = option_label(index, style)
    return f"({label}) {text}" if style == "paren" else f"{label}. {text}"


def mc_instruction(options: ExportOptions) -> str:
    kind = "number" if options.option_style == "number" else "letter"
    return {
        "letter": f"Answer with the option's {kind} from the given choices directly.",
        "letter_text": f"Answer with the option's {kind} and its text.",
        "text": "Answer with the text of the correct option.",
    }[options.answer_style]


def mc_question(question: str, choices: Sequence[str], options: ExportOptions) -> str:
    lines = [question, *(option_line(i, c, options.option_style) for i, c in enumerate(choices))]
    if options.mc_instruction:
        lines.append(mc_instruction(options))
    return "\n".join(lines)


def mc_answer(choices: Sequence[str], answer_index: int, options: ExportOptions) -> str:
    if options.answer_style == "letter":
        return option_label(answer_index, options.option_style)
    if options.answer_style == "letter_text":
        return option_line(answer_index, choices[answer_index], options.option_style)
    return choices[answer_index]


# --------------------------------------------------------------------------------------- rationale
def split_turn_rationales(rationale: str, turns: int) -> list[str] | None:
    """Per-turn rationales from ``Turn 1: ... Turn 2: ...``, or None when it does not split cleanly."""
    parts = _TURN_STEP.split(rationale)
    if len(parts) != 2 * turns + 1 or parts[0].strip():
        return None
    numbers, steps = parts[1::2], [s.strip() for s in parts[2::2]]
    if numbers != [str(i) for i in range(1, turns + 1)] or not all(steps):
        return None
    return steps


def with_rationale(rationale: str, answer: str) -> str:
    return f"{rationale}\nAnswer: {answer}"


def with_thinking(rationale: str, answer: str) -> str:
    """The think style: ``<think>\\n<rationale>\\n</think>\\n\\n<answer>`` (as R1-style models write)."""
    return f"{THINK_OPEN}\n{rationale}\n{THINK_CLOSE}\n\n{answer}"


# --------------------------------------------------------------------------------------- images
@lru_cache(maxsize=65536)
def _is_file(path: str) -> bool:
    return os.path.isfile(path)


def escapes_root(rel: str) -> bool:
    """Whether a relative POSIX path leaves its folder by its ``..`` parts (``a/../../b``)."""
    norm = posixpath.normpath(rel)
    return norm == ".." or norm.startswith("../")


@lru_cache(maxsize=64)
def _real_root(root: Path) -> Path:
    return root.resolve()


def outside_root(root: Path, rel: str) -> bool:
    """Whether ``root / rel`` resolves (after ``..`` and symbolic links) outside ``root``."""
    return escapes_root(rel) or not (root / rel).resolve().is_relative_to(_real_root(root))


@lru_cache(maxsize=4096)
def _resolve_paths(paths: tuple[str, ...], root: Path | None, prefix: str,
                   check: bool) -> tuple[tuple[str, ...], tuple[Path, ...] | None] | str:
    """(written paths, files) for one tuple of image paths, or the problem as a string. Cached: the
    records of one image come together, so each image is resolved and checked about once. A path
    that leads outside the image root (by ``..`` or a symbolic link) is refused."""
    written: list[str] = []
    files: list[Path] = []
    for p in paths:
        if not p:
            return "has an empty image path"
        rel = p.replace(os.sep, "/")
        if posixpath.isabs(rel) or os.path.isabs(p):
            if root is None:
                return f"image path {p!r} is absolute; give --image-root so it can be written relative to it"
            rel = os.path.relpath(p, root).replace(os.sep, "/")
        if escapes_root(rel) or (root is not None and outside_root(root, rel)):
            where = f"the image root {root}" if root is not None else "the folder it is relative to"
            return f"image {p!r} is not inside {where} (after '..' and symbolic links)"
        rel = posixpath.normpath(rel)
        if root is not None:
            file = root / rel
            if check and not _is_file(str(file)):
                return f"image {rel!r} not found under {root}"
            files.append(file)
        written.append(posixpath.join(prefix, rel) if prefix else rel)
    return tuple(written), (tuple(files) if root is not None else None)


def clear_image_cache() -> None:
    """Forget which images exist (called at the start of every export)."""
    _resolve_paths.cache_clear()
    _is_file.cache_clear()
    _real_root.cache_clear()


def image_paths(qa: QA, options: ExportOptions, where: str) -> tuple[tuple[str, ...], tuple[Path, ...] | None]:
    """(written paths, files on disk or None) for a record; errors name the record and path."""
    if not qa.images:
        raise ExportError(f"{where}: record {qa.id} has no images")
    if not qa.image_paths:
        raise ExportError(f"{where}: record {qa.id} has no image_paths (made by an older mmgen: run generate again)")
    if len(qa.image_paths) != len(qa.images):
        raise ExportError(f"{where}: record {qa.id} has {len(qa.images)} image ids but {len(qa.image_paths)} paths")
    result = _resolve_paths(tuple(qa.image_paths), options.image_root, options.path_prefix, options.check_images)
    if isinstance(result, str):
        raise ExportError(f"{where}: record {qa.id}: {result}")
    return result


# --------------------------------------------------------------------------------------- turns
def render_turns(qa: QA, options: ExportOptions, where: str, notes: Counter) -> tuple[tuple[str, str], ...]:
    """The record's (human, gpt) turns with options, answer style and rationale applied."""
    turns = [tuple(t) for t in qa.turns] or [(qa.question, qa.answer)]
    if qa.question_type not in FORMS:
        raise ExportError(f"{where}: record {qa.id}: unknown question_type {qa.question_type!r}")
    if qa.question_type == MULTIPLE_CHOICE:
        i = qa.answer_index
        if len(qa.options) < 2 or not isinstance(i, int) or not 0 <= i < len(qa.options) or not all(
                isinstance(o, str) and o.strip() for o in qa.options):
            raise ExportError(f"{where}: record {qa.id}: multiple choice needs 2+ non-empty options and an "
                              f"answer_index among them (options {list(qa.options)}, answer_index {i})")
        if qa.options[i] != turns[0][1]:
            raise ExportError(f"{where}: record {qa.id}: option {i} is {qa.options[i]!r}, not the answer "
                              f"{turns[0][1]!r}")
        turns[0] = (mc_question(turns[0][0], qa.options, options), mc_answer(qa.options, i, options))
    if options.rationale or options.style == "think":
        steps = [qa.rationale.strip()] if len(turns) == 1 else split_turn_rationales(qa.rationale, len(turns))
        if steps is None or not all(steps):
            notes["answers without rationale (rationale missing or not split per turn)"] += 1
        else:
            join = with_thinking if options.style == "think" else with_rationale
            turns = [(q, join(s, a)) for (q, a), s in zip(turns, steps)]
    for n, (q, a) in enumerate(turns, 1):
        for role, text in (("question", q), ("answer", a)):
            if not isinstance(text, str) or not text.strip():
                raise ExportError(f"{where}: record {qa.id}: turn {n} has an empty {role}")
            if IMAGE_TOKEN in text:
                raise ExportError(f"{where}: record {qa.id}: turn {n} {role} contains the image token {IMAGE_TOKEN}")
    return tuple(turns)  # type: ignore[return-value]


def render(qa: QA, options: ExportOptions, where: str, notes: Counter | None = None) -> Rendered:
    """Everything a format needs to write one record (in the target's terms, :mod:`mmgen.export.targets`);
    raises :class:`~mmgen.export.targets.Skip` for a record the target cannot take."""
    from .targets import Skip, apply, get_target, unconverted

    notes = notes if notes is not None else Counter()
    target = get_target(options.target)
    rid = safe_id(qa.id)
    images, files = image_paths(qa, options, where)
    written = apply(target, qa, files, options.max_pixels) if target.name else qa
    counted: Counter = Counter()
    turns = render_turns(written, options, where, counted)
    if unconverted(target, [t for pair in turns for t in pair]) and (options.rationale or options.style == "think"):
        counted = Counter({"answers without rationale (its boxes are in no one image's pixels)": 1})
        turns = render_turns(written, replace(options, rationale=False, style="plain"), where, counted)
    if unconverted(target, [t for pair in turns for t in pair]):
        raise Skip(f"records of several images with boxes ({target.name} boxes are pixels of one image)")
    notes.update(counted)
    return Rendered(id=rid, qa=qa, images=images, image_files=files, system=options.system_prompt, turns=turns,
                    placement=placement_for(rid, options.placement, options.placement_seed),
                    split=split_of(qa, options.val_fraction, options.split_seed),
                    image_label=target.image_label, image_field=target.image_field)
