"""Streaming JSON record files: a JSON list written one record per line, or JSON lines.

A JSON list is written as ``[`` / one record per line, comma-separated / ``]``, so a million records
never sit in memory and the file still loads with ``json.load``. Reading streams the same layout back
line by line and falls back to parsing the whole file for any other layout (e.g. ``indent=2``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any, Iterator

import orjson

from scene_graphs.io import RecordError, read_jsonl


class JsonRecordWriter:
    """Writes records to an open binary file as a JSON list (default) or JSON lines."""

    def __init__(self, f: IO[bytes], jsonl: bool = False) -> None:
        self.f = f
        self.jsonl = jsonl
        self.count = 0
        if not jsonl:
            f.write(b"[")

    def write(self, record: Any) -> None:
        data = orjson.dumps(record)
        if self.jsonl:
            self.f.write(data + b"\n")
        else:
            self.f.write((b"\n" if self.count == 0 else b",\n") + data)
        self.count += 1

    def close(self) -> None:
        if not self.jsonl:
            self.f.write(b"\n]\n")


def iter_json_records(path: str | os.PathLike[str]) -> Iterator[Any]:
    """The records of a JSON-lines file (``.jsonl``) or of a JSON list, streamed when possible."""
    path = Path(path)
    if path.suffix == ".jsonl":
        yield from read_jsonl(path)
        return
    yielded = 0
    with path.open("rb") as f:
        first = f.readline()
        if first.strip() == b"[":
            comma = True  # a record may follow
            for line in f:
                line = line.strip()
                if line == b"]":
                    if (comma and yielded) or f.read().strip():
                        break  # a trailing comma or text after the list: the full parse reports it
                    return
                if not comma:
                    break
                comma = line.endswith(b",")
                try:
                    record = orjson.loads(line.removesuffix(b","))
                except orjson.JSONDecodeError:
                    break
                yield record
                yielded += 1
    # another layout: parse the whole file; the records already yielded were its first ones
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"malformed JSON ({exc})", source=str(path)) from None
    if not isinstance(data, list):
        raise RecordError(f"expected a JSON list of records, got {type(data).__name__}", source=str(path))
    yield from data[yielded:]
