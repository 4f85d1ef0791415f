"""The ``export`` stage: QA records in, training files out.

::

    summary = export("out/qa", "out/llava", "llava", ExportOptions(image_root="images", val_fraction=0.05))

Formats (one module each): ``llava`` (default), ``sharegpt`` (LLaMA-Factory, alias ``llamafactory``),
``messages`` (OpenAI/HF chat messages, alias ``openai``), ``hf`` (parquet + ``Image()`` features, the
``hf`` extra) and ``provision`` (ProVision-10M records). The JSON formats write ``OUT/train.json`` and,
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

from .base import Format, Malformed, RecordView, Turn
from .hf import HFFormat
from .llava import LlavaFormat
from .messages import MessagesFormat
from .options import ExportError, ExportOptions
from .provision import ProVisionFormat
from .render import Rendered, clear_image_cache, render
from .sharegpt import ShareGPTFormat

log = logging.getLogger("mmgen.export")

__all__ = ["FORMATS", "ALIASES", "MANIFEST", "ExportError", "ExportOptions", "ExportSummary", "Format", "Malformed",
           "RecordView", "Rendered", "Turn", "export", "get_format", "iter_qa", "read_export", "find_manifest"]

FORMATS: dict[str, Format] = {f.name: f for f in (LlavaFormat(), ShareGPTFormat(), MessagesFormat(), HFFormat(),
                                                  ProVisionFormat())}
ALIASES = {"openai": "messages", "llamafactory": "sharegpt"}
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
    from programs.base import QA

    for path in qa_files(src):
        for lineno, data in enumerate(read_jsonl(path), 1):
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

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "records": self.records, "files": self.files,
                "per_split": dict(sorted(self.per_split.items())),
                "per_family": dict(sorted(self.per_family.items())),
                "per_program": dict(sorted(self.per_program.items())),
                "per_question_type": dict(sorted(self.per_question_type.items())),
                "notes": dict(sorted(self.notes.items()))}


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


def _rendered(src: str | os.PathLike[str], options: ExportOptions, summary: ExportSummary) -> Iterator[Rendered]:
    for qa, where in iter_qa(src):
        item = render(qa, options, where, summary.notes)
        summary.records += 1
        summary.per_split[item.split] += 1
        summary.per_family[qa.family] += 1
        summary.per_program[qa.program] += 1
        summary.per_question_type[qa.question_type] += 1
        yield item


def export(src: str | os.PathLike[str], out: str | os.PathLike[str], fmt: str = "llava",
           options: ExportOptions | None = None) -> ExportSummary:
    """Write every QA record under ``src`` to ``out`` in format ``fmt``; returns the counts."""
    options = options or ExportOptions()
    format_ = get_format(fmt)
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
    summary = ExportSummary(format_.name)
    clear_image_cache()
    summary.files = format_.write(_rendered(src, options, summary), out, options)
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
    with atomic_write(out / MANIFEST) as f:
        f.write((json.dumps(manifest, indent=2) + "\n").encode())
    return summary


def read_export(path: str | os.PathLike[str], fmt: str | None = None) -> Iterator[RecordView]:
    """Every record of an exported file or folder, read back (``fmt`` defaults to the manifest's)."""
    if fmt is None:
        manifest = find_manifest(path)
        if manifest is None:
            raise ExportError(f"no {MANIFEST} beside {path}: give the format")
        fmt = manifest["format"]
    return get_format(fmt).read(path)
