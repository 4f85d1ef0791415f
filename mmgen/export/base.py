"""What every export format provides: a writer, a reader of its own files into a format-neutral
:class:`RecordView` (used by the round-trip tests and by ``mmgen validate``), and where its files are."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator

from scene_graphs.io import atomic_write

from .jsonio import JsonRecordWriter, iter_json_records
from .options import ExportOptions
from .render import Rendered

ROLES = ("system", "human", "gpt")


class Malformed(ValueError):
    """A record in an exported file does not have the shape of its format."""


@dataclass
class Turn:
    role: str
    """``system``, ``human`` or ``gpt`` (whatever the format calls them)."""
    text: str
    """The text without image markers."""
    markers: int = 0
    """Image markers (``<image>`` tokens or image content parts) in this turn."""
    placement: str | None = None
    """``start`` / ``end`` when all markers sit before / after the text, else None."""
    labels: tuple[str, ...] = ()
    """The label written before each ``<image>`` token (``"Image 1: "``, or ``""``), for token formats."""


@dataclass
class RecordView:
    """One exported record, read back in the same terms for every format."""

    id: Any
    images: list[Any]
    """Image paths as written (relative to the image root)."""
    turns: list[Turn]
    marks_images: bool = True
    """Whether the format marks each image in the text (tokens or parts); ProVision does not."""
    image_data: list[Any] | None = None
    """What to open to check an image when not ``image_root / path``: bytes or an absolute path (hf)."""
    fields: dict[str, Any] = field(default_factory=dict)
    """Other columns (ProVision options and metadata, hf metadata columns...)."""

    @property
    def system(self) -> str | None:
        return self.turns[0].text if self.turns and self.turns[0].role == "system" else None

    def pairs(self) -> list[tuple[str, str]]:
        """(human, gpt) texts in order (assumes alternating turns; the validator checks that)."""
        talk = [t for t in self.turns if t.role != "system"]
        return [(talk[i].text, talk[i + 1].text) for i in range(0, len(talk) - 1, 2)]


def require(raw: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    """``raw[key]`` checked to be of ``kind``, or :class:`Malformed`."""
    if not isinstance(raw, dict):
        raise Malformed(f"record is a {type(raw).__name__}, not an object")
    if key not in raw:
        raise Malformed(f"missing {key!r}")
    value = raw[key]
    if not isinstance(value, kind):
        names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise Malformed(f"{key!r} is a {type(value).__name__}, not a {names}")
    return value


class Format:
    """An export format. Subclasses set ``name`` and implement ``write``, ``iter_raw``, ``view``."""

    name: ClassVar[str] = ""
    system_turn: ClassVar[bool] = True
    """Whether the format can carry a system prompt."""
    summary: ClassVar[str] = ""
    ids_required: ClassVar[bool] = True
    """Whether every record carries an id (ProVision files need not)."""

    def write(self, items: Iterable[Rendered], out: Path, options: ExportOptions) -> dict[str, int]:
        """Write every record under ``out``; returns {file relative to out: records}."""
        raise NotImplementedError

    def data_files(self, out: Path) -> list[Path]:
        """The record files of an export folder (what ``mmgen validate FOLDER`` checks)."""
        raise NotImplementedError

    def iter_raw(self, path: Path) -> Iterator[Any]:
        """The raw records of one exported file, streamed."""
        raise NotImplementedError

    def view(self, raw: Any) -> RecordView:
        """A raw record in neutral terms; :class:`Malformed` when it lacks the format's shape."""
        raise NotImplementedError

    def check(self, view: RecordView) -> list[str]:
        """Problems only this format can have (beyond the checks every format shares)."""
        return []

    def read(self, path: str | Path) -> Iterator[RecordView]:
        """Every record of an exported file (or folder), read back."""
        path = Path(path)
        for file in self.data_files(path) if path.is_dir() else [path]:
            for raw in self.iter_raw(file):
                yield self.view(raw)


class JsonFormat(Format):
    """A format written as JSON files, one per split: ``train.json`` / ``val.json`` (or ``.jsonl``)."""

    def record(self, item: Rendered) -> dict[str, Any]:
        raise NotImplementedError

    def recorder(self, options: ExportOptions) -> Callable[[Rendered], dict[str, Any]]:
        """The function that makes one record (``record`` unless the options change it)."""
        return self.record

    def after_write(self, out: Path, files: dict[str, str], options: ExportOptions) -> list[str]:
        """Extra files beside the data (e.g. ``dataset_info.json``); returns their names."""
        return []

    @staticmethod
    def file_name(split: str, options: ExportOptions) -> str:
        return f"{split}.jsonl" if options.jsonl else f"{split}.json"

    def write(self, items: Iterable[Rendered], out: Path, options: ExportOptions) -> dict[str, int]:
        names = {split: self.file_name(split, options) for split in options.splits}
        with contextlib.ExitStack() as stack:  # every file renamed into place only if all succeed
            writers = {split: JsonRecordWriter(stack.enter_context(atomic_write(out / name)), options.jsonl)
                       for split, name in names.items()}
            make = self.recorder(options)
            for item in items:
                writers[item.split].write(make(item))
            for w in writers.values():
                w.close()
        counts = {names[s]: w.count for s, w in writers.items()}
        for extra in self.after_write(out, names, options):
            counts[extra] = 0
        return counts

    def data_files(self, out: Path) -> list[Path]:
        return [p for split in ("train", "val") for ext in (".json", ".jsonl")
                if (p := out / f"{split}{ext}").is_file()]

    def iter_raw(self, path: Path) -> Iterator[Any]:
        return iter_json_records(path)
