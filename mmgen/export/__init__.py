"""The ``export`` stage: QA records in, training files out.

::

    summary = export("out/qa", "out/llava", "llava", ExportOptions(image_root="images", val_fraction=0.05))

Formats (one module each): ``llava`` (default), ``sharegpt`` (LLaMA-Factory, alias ``llamafactory``),
``messages`` (HF/TRL chat messages with ``{"type": "image"}`` parts), ``openai`` (OpenAI fine-tuning JSONL
with ``image_url`` parts), ``hf`` (parquet + ``Image()`` features, the ``hf`` extra) and ``provision``
(ProVision-10M records). A *target* (``--target qwen2-vl`` ..., :mod:`mmgen.export.targets`) picks the
format and what one trainer or model family expects: image-token labels, box syntax, path style, and
the trainer's own files (LLaMA-Factory arguments with ``media_dir``, InternVL's meta file).
``merge_per_image`` writes one conversation per image (LLaVA-665k layout).

The JSON formats write ``OUT/train.json`` and,
with a validation fraction, ``OUT/val.json`` (``.jsonl`` with ``jsonl=True``). Every export also writes
``OUT/export.json`` (format, options, files and counts), which ``mmgen validate`` reads for defaults.

Records stream from the QA shards to the output files one at a time (bounded memory for any number
of records); every file is written to a temporary name and renamed into place when all are complete.
Files of an earlier export into the same folder that this export does not rewrite are removed.
See :mod:`mmgen.export.render` for ids, splits, image-token placement and option rendering.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from scene_graphs.io import atomic_write, read_jsonl

from ..engine.core import EngineOptions
from .base import Format, Malformed, RecordView, Turn
from .hf import HFFormat
from .llava import LlavaFormat
from .messages import MessagesFormat
from .openai import OpenAIFormat
from .options import ExportError, ExportOptions
from .provision import ProVisionFormat
from .render import Rendered, clear_image_cache, placement_for, render, safe_id
from .sharegpt import ShareGPTFormat
from .targets import TARGETS, Skip, get_target, resolve, trainer_settings, write_trainer_files

log = logging.getLogger("mmgen.export")

__all__ = ["FORMATS", "ALIASES", "MANIFEST", "TARGETS", "ExportError", "ExportOptions", "ExportSummary", "Format",
           "Malformed",
           "RecordView", "Rendered", "Turn", "export", "get_format", "iter_qa", "read_export", "find_manifest"]

FORMATS: dict[str, Format] = {f.name: f for f in (LlavaFormat(), ShareGPTFormat(), MessagesFormat(), OpenAIFormat(),
                                                  HFFormat(), ProVisionFormat())}
ALIASES = {"llamafactory": "sharegpt"}
MERGE_FORMATS = ("llava", "sharegpt", "messages", "openai")
"""Formats that can hold a per-image conversation (``merge_per_image``)."""
MANIFEST = "export.json"


def get_format(name: str) -> Format:
    key = ALIASES.get(name, name)
    if key not in FORMATS:
        raise ExportError(f"unknown export format {name!r}; choose one of {', '.join([*FORMATS, *ALIASES])}")
    return FORMATS[key]


def qa_files(src: str | os.PathLike[str]) -> list[Path]:
    """The QA shards at ``src``: the file itself, or a folder's ``part-*.jsonl`` (else ``*.jsonl``), sorted."""
    src = Path(src)
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise FileNotFoundError(f"no QA file or folder at {src}")
    files = sorted(src.glob("part-*.jsonl")) or sorted(p for p in src.glob("*.jsonl") if not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"no QA shards (part-*.jsonl) in {src}")
    return files


def iter_qa(src: str | os.PathLike[str]) -> Iterator[tuple[Any, str]]:
    """(QA record, ``file:line``) for every record under ``src``, streamed in shard order."""
    for path in qa_files(src):
        yield from iter_qa_file(path)


def iter_qa_file(path: Path, limit: int | None = None) -> Iterator[tuple[Any, str]]:
    """(QA record, ``file:line``) for the records of one QA shard (the first ``limit`` when given)."""
    from programs.base import QA

    for lineno, data in enumerate(read_jsonl(path), 1):
        if limit is not None and lineno > limit:
            return
        where = f"{path}:{lineno}"
        try:
            yield QA.from_dict(data), where
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ExportError(f"{where}: not a QA record ({type(exc).__name__}: {exc})") from None


@dataclass
class ExportSummary:
    format: str
    records: int = 0
    files: dict[str, int] = field(default_factory=dict)
    per_split: Counter = field(default_factory=Counter)
    per_family: Counter = field(default_factory=Counter)
    per_program: Counter = field(default_factory=Counter)
    per_question_type: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    """Records the target cannot take, by reason (not written)."""

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "records": self.records, "files": self.files,
                "per_split": dict(sorted(self.per_split.items())),
                "per_family": dict(sorted(self.per_family.items())),
                "per_program": dict(sorted(self.per_program.items())),
                "per_question_type": dict(sorted(self.per_question_type.items())),
                "notes": dict(sorted(self.notes.items())), "skipped": dict(sorted(self.skipped.items()))}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportSummary:
        """The summary an ``export.json`` holds."""
        return cls(data["format"], int(data.get("records", 0)), dict(data.get("files") or {}),
                   *(Counter(data.get(k) or {}) for k in ("per_split", "per_family", "per_program",
                                                          "per_question_type", "notes", "skipped")))


def find_manifest(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``export.json`` of an export folder, or of the export holding an exported file."""
    path = Path(path)
    for folder in (path, *list(path.parents)[:3]):  # hf data files sit two folders below the manifest
        m = folder / MANIFEST
        if m.is_file():
            try:
                data = json.loads(m.read_text())
            except json.JSONDecodeError:
                return None
            return data if isinstance(data, dict) and data.get("stage") == "export" else None
    return None


def _rendered(sources: list[tuple[Path, int | None]], options: ExportOptions, summary: ExportSummary
              ) -> Iterator[Rendered]:
    """The rendered records of the QA shards ``sources`` (path, record limit), counted in ``summary``."""
    for qa, where in (pair for path, limit in sources for pair in iter_qa_file(path, limit)):
        try:
            item = render(qa, options, where, summary.notes)
        except Skip as exc:
            summary.skipped[str(exc)] += 1
            continue
        summary.per_family[qa.family] += 1
        summary.per_program[qa.program] += 1
        summary.per_question_type[qa.question_type] += 1
        yield item


def merge_turn_key(item: Rendered) -> int:
    """Where a record's turns go in its image's conversation: a hash of its id (independent of input order)."""
    from programs.base import stable_int

    return stable_int(f"merge:{item.qa.id}")


def merge_group(group: list[Rendered], options: ExportOptions) -> Rendered:
    """One conversation of the records of one image: their turns, in :func:`merge_turn_key` order."""
    group = sorted(group, key=lambda it: (merge_turn_key(it), it.id))
    first = group[0]
    rid = safe_id(first.qa.images[0])
    turns = tuple(t for item in group for t in item.turns)
    return Rendered(id=rid, qa=first.qa, images=first.images, image_files=first.image_files, system=first.system,
                    turns=turns, placement=placement_for(rid, options.placement, options.placement_seed),
                    split=first.split, image_label=first.image_label, image_field=first.image_field)


def merged_per_image(items: Iterator[Rendered], options: ExportOptions, summary: ExportSummary) -> Iterator[Rendered]:
    """The single-image records of each image as one conversation (records of several images pass as
    they are). The records of one image must come together (as generate writes them)."""
    group: list[Rendered] = []
    done: set[str] = set()
    for item in items:
        if len(item.qa.images) != 1:
            yield item
            continue
        key = item.qa.images[0]
        if group and group[0].qa.images[0] != key:
            done.add(group[0].qa.images[0])
            summary.notes["records merged into per-image conversations"] += len(group)
            yield merge_group(group, options)
            group = []
        if key in done:
            raise ExportError(f"record {item.qa.id}: the records of image {key} are not together in the input; "
                              "merge_per_image needs them in a row (as generate writes them)")
        group.append(item)
    if group:
        summary.notes["records merged into per-image conversations"] += len(group)
        yield merge_group(group, options)


def _counted(items: Iterator[Rendered], summary: ExportSummary, sizes: Counter) -> Iterator[Rendered]:
    for item in items:
        summary.records += 1
        summary.per_split[item.split] += 1
        sizes["several" if len(item.images) > 1 else "one"] += 1
        yield item


MIXED_IMAGE_FIELD = ("llava records with 'image' as one path beside records with a list (datasets' JSON loader "
                     "wants one type: --target llava-onevision always writes a list)")


def export(src: str | os.PathLike[str], out: str | os.PathLike[str], fmt: str | None = None,
           options: ExportOptions | None = None, engine: EngineOptions | None = None) -> ExportSummary:
    """Write every QA record under ``src`` to ``out`` in format ``fmt`` (default: the target's, else
    ``llava``); returns the counts. Records render on the engine (``engine``: workers, ranks, a record
    limit; :mod:`mmgen.export.stage`), then the files are written."""
    from .stage import remove_work, render_on_engine

    options = options or ExportOptions()
    target = get_target(options.target)
    fmt, options = resolve(target, fmt, options)
    format_ = get_format(fmt)
    if options.merge_per_image and format_.name not in MERGE_FORMATS:
        raise ExportError(f"merge_per_image writes conversations: use one of {', '.join(MERGE_FORMATS)}, "
                          f"not {format_.name}")
    if options.system_prompt is not None and not format_.system_turn:
        raise ExportError(f"the {format_.name} format has no system turn; drop --system-prompt or use "
                          "sharegpt, messages or hf")
    if options.image_root is not None and not options.image_root.is_dir():
        raise FileNotFoundError(f"image root {options.image_root} is not a folder")
    src, out = Path(src), Path(out)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder (export writes a folder of files)")
    out.mkdir(parents=True, exist_ok=True)
    old = find_manifest(out) if (out / MANIFEST).exists() else None
    clear_image_cache()
    summary, sizes, key, same = render_on_engine(src, out, format_, options, engine, old)
    if same:
        return summary
    run: dict[str, Any] = {"key": key}
    if format_.name == "llava" and not target.name and len(sizes) == 2:
        summary.notes[MIXED_IMAGE_FIELD] = sizes["one"]
    trainer = None
    if target.name:
        def write_text(path: Path, text: str) -> None:
            with atomic_write(path) as f:
                f.write(text.encode())

        for name in write_trainer_files(target, out, summary.files, options, write_text):
            summary.files[name] = 0
        trainer = trainer_settings(target, out, summary.files, options)
        log.info("%s: %s", target.name, ", ".join(f"{k}={v}" for k, v in trainer.items()))
    for reason, n in sorted(summary.skipped.items()):
        log.warning("skipped %d %s", n, reason)
    for split in options.splits:
        if not summary.per_split[split]:
            log.warning("the %s split is empty (%d records in all)", split, summary.records)
    for name in (old or {}).get("files", {}):
        stale = out / name
        if name not in summary.files and stale.is_file() and stale.resolve().is_relative_to(out.resolve()):
            stale.unlink()
            log.info("removed %s (left by an earlier export into %s)", name, out)
            for parent in stale.parents:
                if parent.resolve() == out.resolve() or any(parent.iterdir()):
                    break
                parent.rmdir()
    manifest = {"stage": "export", "source": str(src.resolve()), "options": options.to_dict(), **summary.to_dict()}
    if trainer is not None:
        manifest["trainer"] = trainer
    run["sizes"] = {name: (out / name).stat().st_size for name in summary.files if (out / name).is_file()}
    manifest["run"] = run
    with atomic_write(out / MANIFEST) as f:
        f.write((json.dumps(manifest, indent=2) + "\n").encode())
    remove_work(out)
    return summary


def read_export(path: str | os.PathLike[str], fmt: str | None = None) -> Iterator[RecordView]:
    """Every record of an exported file or folder, read back (``fmt`` defaults to the manifest's)."""
    if fmt is None:
        manifest = find_manifest(path)
        if manifest is None:
            raise ExportError(f"no {MANIFEST} beside {path}: give the format")
        fmt = manifest["format"]
    return get_format(fmt).read(path)
