"""Hugging Face ``datasets`` layout: parquet files with ``Image()`` features and a dataset card.

::

    OUT/README.md                           card: configs (one per program family, plus "all"),
                                            programs and record counts
    OUT/data/<family>/train.parquet         one file per family and split ("validation" for val)
    OUT/data/<family>/validation.parquet

Load with ``datasets.load_dataset(OUT, name="<family>")`` (or ``name="all"``, the default config), or
``load_dataset("parquet", data_files=...)``. Columns: ``id``, ``images`` (a list of ``Image()``: the
image bytes embedded, or with ``hf_images="path"`` the absolute path below the image root),
``messages`` (the chat-template messages of the ``messages`` format: system prompt, image parts, each
after its ``Image k: `` label text part when a record has several images, options, rationale applied),
``image_paths`` (relative paths), and the QA record's own ``program``, ``family``, ``template``,
``question_type``, ``answer_type``, ``question``, ``answer``, ``options``, ``answer_index``, ``rationale``,
and ``extensions``: the lineage later stages added to the record (``evolved``, ``curation``...) as a JSON
object in a string, null when there is none.

The parquet metadata names the features in the form every ``datasets`` version we support reads
(:func:`feature_dict`: plain lists, no ``List`` feature type), so a file written under datasets 5.x
loads under 2.19 and 3.x.

Embedding copies an image into every record that uses it: with many questions per image, ``path``
mode keeps the files small. Written in bounded memory: rows go out in row groups per file.
``datasets`` and ``pyarrow`` (the ``hf`` extra) are imported only here.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any, Iterable, Iterator

from scene_graphs.io import atomic_write

from .base import Format, Malformed, RecordView, require
from .messages import message_list, read_messages
from .options import ExportError, ExportOptions
from .render import Rendered

CARD = "README.md"
ALL_CONFIG = "all"
SPLIT_NAMES = {"train": "train", "val": "validation"}
ROWS_PER_GROUP = 1000
BYTES_PER_GROUP = 32 << 20
QA_COLUMNS = ("program", "family", "template", "question_type", "answer_type", "question", "answer", "options",
              "answer_index", "rationale")


def require_hf() -> tuple[Any, Any, Any]:
    """(datasets, pyarrow, pyarrow.parquet), or an :class:`ExportError` saying what to install."""
    from ..extras import MissingExtraError, require

    try:
        return tuple(require("hf", m, "the hf export format") for m in ("datasets", "pyarrow", "pyarrow.parquet"))
    except MissingExtraError as exc:
        raise ExportError(str(exc)) from None


def _value(dtype: str = "string") -> dict[str, str]:
    return {"dtype": dtype, "_type": "Value"}


def feature_dict() -> dict[str, Any]:
    """The columns' ``datasets`` features as serialized in the parquet metadata, written in the form every
    ``datasets`` version reads (2.19 to 5.x): a list column is a JSON list ``[feature]``, never the
    ``{"_type": "List"}`` that datasets 4+ writes and datasets 3.x and older cannot read (nor
    ``Sequence`` of a struct, which older versions store as a struct of lists)."""
    string = _value()
    message = {"role": string, "content": [{"type": string, "text": string}]}
    return {
        "id": string, "images": [{"_type": "Image"}], "messages": [message], "image_paths": [string],
        "program": string, "family": string, "template": string, "question_type": string, "answer_type": string,
        "question": string, "answer": string, "options": [string], "answer_index": _value("int32"),
        "rationale": string, "extensions": string,
    }


def arrow_schema(pa: Any) -> Any:
    """The parquet files' Arrow schema (lists of structs, ``Image()`` as ``{bytes, path}``), carrying
    :func:`feature_dict` as its ``huggingface`` metadata so loaders decode ``images`` as images."""
    text = pa.string()
    image = pa.struct([("bytes", pa.binary()), ("path", text)])
    part = pa.struct([("type", text), ("text", text)])
    message = pa.struct([("role", text), ("content", pa.list_(part))])
    types = {"id": text, "images": pa.list_(image), "messages": pa.list_(message), "image_paths": pa.list_(text),
             "options": pa.list_(text), "answer_index": pa.int32()}
    names = list(feature_dict())
    fields = [pa.field(n, types.get(n, text)) for n in names]
    meta = {"info": {"features": feature_dict()}}
    return pa.schema(fields, metadata={b"huggingface": json.dumps(meta).encode()})


def features() -> Any:
    """The dataset's ``datasets.Features`` (as the installed ``datasets`` reads :func:`feature_dict`)."""
    require_hf()
    from datasets import Features

    return Features.from_dict(feature_dict())


def config_name(family: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", family) or "unknown"


class _ImageReader:
    """Image bytes with a small cache (records of one image come together)."""

    def __init__(self, size: int = 8) -> None:
        self.cache: OrderedDict[Path, bytes] = OrderedDict()
        self.size = size

    def __call__(self, path: Path) -> bytes:
        data = self.cache.get(path)
        if data is None:
            data = path.read_bytes()
            self.cache[path] = data
            if len(self.cache) > self.size:
                self.cache.popitem(last=False)
        else:
            self.cache.move_to_end(path)
        return data


class _PartWriter:
    """One parquet file written in row groups."""

    def __init__(self, writer: Any, pa: Any, schema: Any) -> None:
        self.writer, self.pa, self.schema = writer, pa, schema
        self.rows: list[dict[str, Any]] = []
        self.bytes = 0
        self.count = 0

    def add(self, row: dict[str, Any], size: int) -> None:
        self.rows.append(row)
        self.bytes += size
        self.count += 1
        if len(self.rows) >= ROWS_PER_GROUP or self.bytes >= BYTES_PER_GROUP:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(self.pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows, self.bytes = [], 0

    def close(self) -> None:
        self.flush()
        self.writer.close()


def _yaml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar


def dataset_card(files: dict[tuple[str, str], int], programs: dict[str, Counter], options: ExportOptions) -> str:
    """README.md: YAML configs for ``load_dataset`` and tables of programs and counts."""
    families = sorted({f for f, _ in files})
    splits = [s for s in ("train", "validation") if any(sp == s for _, sp in files)]
    lines = ["---", "configs:"]
    if ALL_CONFIG not in families:
        lines += [f"- config_name: {ALL_CONFIG}", "  default: true", "  data_files:"]
        for s in splits:
            lines += [f"  - split: {s}", f"    path: {_yaml(f'data/*/{s}.parquet')}"]
    for fam in families:
        lines += [f"- config_name: {_yaml(fam)}", "  data_files:"]
        for s in splits:
            if (fam, s) in files:
                lines += [f"  - split: {s}", f"    path: {_yaml(f'data/{fam}/{s}.parquet')}"]
    lines += ["task_categories:", "- visual-question-answering", "tags:", "- mmgen", "- synthetic", "---", ""]
    total = sum(files.values())
    lines += ["# mmgen QA export", "",
              (f"{total} question-answer records generated by mmgen QA programs from scene graphs: every answer "
               "follows from the image's scene graph and records which program, template and plan made it."), "",
              ("Load one family with `datasets.load_dataset(PATH, name=FAMILY)`, or everything with "
               f"`name=\"{ALL_CONFIG}\"`."), "",
              "| config | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    for fam in families:
        lines.append(f"| {fam} | " + " | ".join(str(files.get((fam, s), 0)) for s in splits) + " |")
    lines += ["", "## Programs", "", "| program | family | records |", "|---|---|---|"]
    for fam in families:
        for program, n in sorted(programs[fam].items()):
            lines.append(f"| `{program}` | {fam} | {n} |")
    lines += ["", "## Columns", "",
              "- `images`: list of images (" + ("embedded bytes" if options.hf_images == "embed"
                                                  else "absolute paths") + ")",
              ("- `messages`: chat-template messages (`{\"type\": \"image\"}` parts mark the images; with "
               "several images, a `{\"type\": \"text\", \"text\": \"Image 1: \"}` part before each)"),
              "- `image_paths`: image paths relative to the image root",
              "- " + ", ".join(f"`{c}`" for c in QA_COLUMNS) + ": the QA record's own fields", "",
              "## Export options", "", "```json",
              json.dumps({k: v for k, v in options.to_dict().items() if k != "image_root"},
                         indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)


class HFFormat(Format):
    name = "hf"
    summary = "Hugging Face datasets: parquet with Image() features, one config per family, dataset card"

    def write(self, items: Iterable[Rendered], out: Path, options: ExportOptions) -> dict[str, int]:
        if options.image_root is None:
            raise ExportError("the hf format needs --image-root (to embed or locate the images)")
        _, pa, pq = require_hf()
        schema = arrow_schema(pa)
        read_image = _ImageReader()
        programs: dict[str, Counter] = {}
        parts: dict[tuple[str, str], _PartWriter] = {}
        with contextlib.ExitStack() as stack:  # every file renamed into place only if all succeed
            for item in items:
                qa = item.qa
                key = (config_name(qa.family), SPLIT_NAMES[item.split])
                part = parts.get(key)
                if part is None:
                    f = stack.enter_context(atomic_write(out / "data" / key[0] / f"{key[1]}.parquet"))
                    part = parts[key] = _PartWriter(pq.ParquetWriter(f, schema), pa, schema)
                programs.setdefault(key[0], Counter())[qa.program] += 1
                assert item.image_files is not None
                if options.hf_images == "embed":
                    images = [{"bytes": read_image(file), "path": rel}
                              for file, rel in zip(item.image_files, item.images)]
                else:
                    images = [{"bytes": None, "path": str(file.resolve())} for file in item.image_files]
                row = {"id": item.id, "images": images, "messages": message_list(item),
                       "image_paths": list(item.images), **{c: getattr(qa, c) for c in QA_COLUMNS}}
                row["options"] = list(qa.options)
                row["extensions"] = json.dumps(dict(qa.extensions), sort_keys=True) if qa.extensions else None
                part.add(row, sum(len(i["bytes"] or b"") for i in images))
            for part in parts.values():
                part.close()
        counts = {k: p.count for k, p in parts.items()}
        with atomic_write(out / CARD) as f:
            f.write(dataset_card(counts, programs, options).encode())
        written = {f"data/{fam}/{split}.parquet": n for (fam, split), n in sorted(counts.items())}
        written[CARD] = 0
        return written

    def data_files(self, out: Path) -> list[Path]:
        return sorted(out.glob("data/*/*.parquet"))

    def iter_raw(self, path: Path) -> Iterator[Any]:
        _, _, pq = require_hf()
        for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
            yield from batch.to_pylist()

    def view(self, raw: Any) -> RecordView:
        turns = read_messages(require(raw, "messages", list))
        images = require(raw, "images", list)
        data: list[Any] = []
        for i, image in enumerate(images):
            if not isinstance(image, dict) or not (image.get("bytes") or image.get("path")):
                raise Malformed(f"images[{i}] has neither bytes nor a path")
            data.append(image["bytes"] if image.get("bytes") else image["path"])
        paths = require(raw, "image_paths", list)
        return RecordView(raw.get("id"), paths, turns, image_data=data,
                          fields={c: raw.get(c) for c in QA_COLUMNS})

    def check(self, view: RecordView) -> list[str]:
        if view.image_data is not None and len(view.image_data) != len(view.images):
            return [f"{len(view.image_data)} images but {len(view.images)} image_paths"]
        return []
