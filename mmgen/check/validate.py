"""``validate``: check an exported training file (or export folder) before training on it.

Every record is read back through its format's reader (:mod:`mmgen.export`) and checked for:

* an id that is a non-empty string and unique across all files checked (ProVision files may have none);
* image paths that are non-empty, relative (below an absolute ``--path-prefix`` that export recorded),
  stay inside the image root (after ``..`` and symbolic links), exist there and decode (PIL ``verify``
  and a full load, once per distinct image; skipped with ``decode=False``); embedded images (hf) decode;
* one image marker (``<image>`` token or image part) per image, all in the first human turn; a record
  of several images labels each one (``Image 1: <image>``, or a ``Image 1: `` text part just before each
  image part), with or without a target, so that "Image 2" in its question and answer names an image;
* turns that alternate human / assistant, start with the human (after an optional system turn) and
  end with an answer; no empty text anywhere;
* what only one format can get wrong (ProVision: the answer is among the options; hf: one image per path);
* what the export's target fixes (:func:`mmgen.export.targets.check`): the image field's type (one path
  for ``llava-1.5``, always a list for ``llava-onevision``), the target's image labels (InternVL's
  ``Image-1: ``) and their place, the box syntax (no [0,1] box left where Qwen2-VL's
  ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>``, InternVL's ``<box>[[...]]</box>`` or Qwen2.5-VL's pixels
  belong; coordinates within 0-1000 or within the resized image), and with the think style one
  ``<think>...</think>`` block before a non-empty answer.

Streams: memory grows only with the set of ids (and a bounded cache of image checks).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import posixpath
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scene_graphs.model import ValidationError

log = logging.getLogger("mmgen.validate")

MARKER_NAMES = {"llava": "<image> token", "sharegpt": "<image> token", "openai": "image_url part"}
"""How a format marks an image, for messages (the others use image content parts)."""


@dataclass(frozen=True)
class Problem:
    record: str
    """The record's id, or ``FILE #N`` when it has none."""
    message: str

    def __str__(self) -> str:
        return f"{self.record}: {self.message}"


@dataclass
class ValidationReport:
    format: str
    files: list[str] = field(default_factory=list)
    records: int = 0
    images_checked: int = 0
    problem_count: int = 0
    problems: list[Problem] = field(default_factory=list)
    """The first ``max_problems`` problems (``problem_count`` counts them all)."""
    bad_records: int = 0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0


class _ImageChecks:
    """Existence and decodability of image files, each checked once (bounded cache)."""

    def __init__(self, decode: bool, size: int = 65536) -> None:
        self.decode = decode
        self.size = size
        self.cache: OrderedDict[str, str | None] = OrderedDict()
        self.checked = 0

    def file(self, path: Path) -> str | None:
        key = str(path)
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        if not path.is_file():
            result: str | None = f"image not found: {path}"
        else:
            result = self._decode(path) if self.decode else None
        self.checked += 1
        self.cache[key] = result
        if len(self.cache) > self.size:
            self.cache.popitem(last=False)
        return result

    def data(self, data: bytes) -> str | None:
        key = "sha256:" + hashlib.sha256(data).hexdigest()  # one image embedded in many records: decode once
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        result = self._decode(io.BytesIO(data)) if self.decode else None
        self.checked += 1
        self.cache[key] = result
        if len(self.cache) > self.size:
            self.cache.popitem(last=False)
        return result

    @staticmethod
    def _decode(source: Any) -> str | None:
        from PIL import Image

        try:
            with Image.open(source) as im:
                im.verify()
            if isinstance(source, io.BytesIO):
                source.seek(0)
            with Image.open(source) as im:  # verify() misses truncated data: decode it fully
                im.load()
        except Exception as exc:  # noqa: BLE001  (PIL raises many types for bad data)
            return f"image cannot be decoded ({type(exc).__name__}: {exc})"
        return None


def _label(view_id: Any, file: Path, index: int) -> str:
    return view_id if isinstance(view_id, str) and view_id.strip() else f"{file.name} #{index}"


def _below_prefix(path: str, prefix: str) -> str:
    """``path`` without the export's ``--path-prefix`` (what it is relative to the image root)."""
    head = prefix.rstrip("/") + "/"
    return path[len(head):] if prefix and path.startswith(head) else path


def check_turns(view: Any, marker: str) -> list[str]:
    """Turn order, empty texts and image markers of one record (format-neutral)."""
    problems: list[str] = []
    turns = view.turns
    expected = "human"
    talk = 0
    first_human = None
    for n, t in enumerate(turns, 1):
        if t.role == "system":
            if n != 1:
                problems.append(f"turn {n} is a system turn (only the first turn may be)")
            elif not t.text.strip():
                problems.append("the system prompt is empty")
            if t.markers:
                problems.append(f"the system turn holds {t.markers} {marker}(s)")
            continue
        talk += 1
        if t.role != expected:
            problems.append(f"turn {n} is from {t.role!r} where {expected!r} was expected (turns must alternate, "
                            "starting with the human)")
            break
        expected = "gpt" if t.role == "human" else "human"
        if not t.text.strip():
            problems.append(f"turn {n} ({t.role}) is empty")
        if t.role == "human" and first_human is None:
            first_human = t
        elif t.markers:
            problems.append(f"turn {n} ({t.role}) holds {t.markers} {marker}(s); they belong in the first human turn")
    if talk == 0:
        problems.append("no conversation turns")
    elif not problems and expected != "human":
        problems.append("the conversation ends with a human turn (no answer)")
    if view.marks_images and first_human is not None and first_human.markers != len(view.images):
        problems.append(f"{first_human.markers} {marker}(s) for {len(view.images)} image(s)")
    return problems


def validate(path: str | os.PathLike[str], fmt: str | None = None, image_root: str | os.PathLike[str] | None = None,
             decode: bool = True, max_problems: int = 20, check_images: bool = True,
             target: str | None = None, style: str | None = None) -> ValidationReport:
    """Check an exported file, or every data file of an export folder. ``fmt``, ``image_root``,
    ``target`` and ``style`` default to the folder's ``export.json``; without an image root, image files
    are not checked (unless the format embeds them)."""
    from ..export import ExportError, Malformed, find_manifest, get_format
    from ..export import targets as targets_
    from ..export.render import escapes_root, outside_root

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"nothing to validate at {path}")
    manifest = find_manifest(path)
    if fmt is None:
        if manifest is None:
            raise ExportError(f"no export.json beside {path}: give the format")
        fmt = manifest["format"]
    prefix = ""
    recorded_prefix = str((manifest or {}).get("options", {}).get("path_prefix") or "")
    if image_root is None and manifest is not None and manifest.get("options", {}).get("image_root"):
        image_root = manifest["options"]["image_root"]
        prefix = recorded_prefix  # written paths are prefix/path-below-root
        log.info("image root %s (from export.json)", image_root)
    elif posixpath.isabs(recorded_prefix):
        prefix = recorded_prefix  # an absolute prefix never joins a root: paths below it are what the root holds
    recorded = (manifest or {}).get("options", {})
    target_ = targets_.get_target(target if target is not None else recorded.get("target"))
    style = style if style is not None else str(recorded.get("style") or "plain")
    if fmt is None and target_.name:
        fmt = target_.format
    format_ = get_format(fmt)
    if target_.name and format_.name != get_format(target_.format).name:
        raise ExportError(f"the {target_.name} target writes {target_.format} files, not {format_.name}")
    root = Path(image_root) if image_root is not None else None
    files = format_.data_files(path) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no {format_.name} data files in {path}")
    report = ValidationReport(format_.name, [str(f) for f in files])
    images = _ImageChecks(decode)
    marker = MARKER_NAMES.get(format_.name, "image part")
    seen: dict[str, str] = {}

    def problem(record: str, message: str) -> None:
        report.problem_count += 1
        if len(report.problems) < max_problems:
            report.problems.append(Problem(record, message))

    for file in files:
        index = 0
        try:
            for raw in format_.iter_raw(file):
                index += 1
                report.records += 1
                before = report.problem_count
                label = _label(raw.get("id") if isinstance(raw, dict) else None, file, index)
                try:
                    view = format_.view(raw)
                except Malformed as exc:
                    problem(label, f"malformed record: {exc}")
                    report.bad_records += 1
                    continue
                label = _label(view.id, file, index)
                if view.id is not None or format_.ids_required:
                    if view.id is not None and not isinstance(view.id, str):
                        problem(label, f"id is a {type(view.id).__name__}, not a string")
                    elif not isinstance(view.id, str) or not view.id.strip():
                        problem(label, "missing or empty id")
                    elif view.id in seen:
                        problem(label, f"duplicate id (first seen at {seen[view.id]})")
                    else:
                        seen[view.id] = f"{file.name} #{index}"
                def size(i: int, view: Any = view) -> tuple[int, int] | None:
                    if root is None or i >= len(view.images) or not isinstance(view.images[i], str):
                        return None
                    file = root / _below_prefix(view.images[i], prefix)
                    return targets_.resized_size(file, recorded.get("max_pixels")) if file.is_file() else None

                for message in (check_turns(view, marker) + format_.check(view)
                                + targets_.check(target_, raw, view, style, size, marker)):
                    problem(label, message)
                if not view.images and not view.marks_images:
                    problem(label, "no images")
                for i, p in enumerate(view.images):
                    if not isinstance(p, str) or not p.strip():
                        problem(label, f"image {i + 1} has an empty or non-string path")
                        continue
                    below = _below_prefix(p, prefix)
                    if posixpath.isabs(below) or os.path.isabs(below):
                        problem(label, f"image path {p!r} is absolute (paths are relative to the image root"
                                + (f" below the prefix {prefix!r})" if prefix else ")"))
                        continue
                    if escapes_root(below) or (root is not None and outside_root(root, below)):
                        problem(label, f"image path {p!r} leads outside the image root"
                                + (f" {root}" if root is not None else "") + " (after '..' and symbolic links)")
                        continue
                    if not check_images:
                        continue
                    if view.image_data is not None and i < len(view.image_data):
                        data = view.image_data[i]
                        error = images.data(data) if isinstance(data, bytes) else images.file(Path(data))
                    elif root is not None:
                        error = images.file(root / below)
                    else:
                        continue
                    if error:
                        problem(label, f"image {i + 1} ({p}): {error}")
                if report.problem_count > before:
                    report.bad_records += 1
        except ExportError:
            raise
        except (ValidationError, OSError, ValueError) as exc:  # malformed JSON, unreadable parquet...
            problem(f"{file.name} #{index + 1}", f"cannot read the file: {exc}")
    report.images_checked = images.checked
    if check_images and root is None and format_.name != "hf":
        log.warning("no image root: image paths were not checked (give --image-root)")
    return report
