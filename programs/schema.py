"""The QA record's contract: the JSON Schema of a serialized record (``schema/qa.v1.schema.json``) and
:func:`check_qa`, the fast check :meth:`programs.base.QA.from_dict` runs on every record it reads.

A record holds the generated fields (:data:`QA_KEYS`) and any number of *extensions*: top-level keys a
later stage adds (``evolved`` from ``mmgen evolve``, ``curation`` from ``mmgen curate``), kept through
every read and write (``QA.extensions``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

from scene_graphs.model import ValidationError

QA_SCHEMA_VERSION = 1
QA_KEYS = ("id", "program", "family", "template", "question_type", "answer_type", "images", "question", "answer",
           "options", "answer_index", "rationale", "plan", "value", "provenance", "seed", "image_paths", "turns")
"""The generated fields of a QA record, in the order they are written."""
REQUIRED = ("id", "program", "template", "question_type", "answer_type", "images", "question", "answer", "plan")
_STRINGS = ("id", "program", "template", "question_type", "answer_type", "question", "answer")
_NON_EMPTY = ("id", "program", "question_type", "answer_type")


def _string_list(d: Mapping[str, Any], key: str, non_empty: bool = False) -> None:
    value = d.get(key)
    if value is None and key not in REQUIRED:
        return
    if not isinstance(value, (list, tuple)):
        raise ValidationError(f"must be a list of strings, got {type(value).__name__}", key)
    if non_empty and not value:
        raise ValidationError("must name at least one image", key)
    for i, item in enumerate(value):
        if not isinstance(item, str) or (non_empty and not item):
            raise ValidationError(f"must be a {'non-empty ' if non_empty else ''}string, got {item!r}", f"{key}[{i}]")


def check_qa(d: Any) -> None:
    """Raise :class:`~scene_graphs.model.ValidationError` (naming the field) unless ``d`` is a valid
    serialized QA record (what the JSON Schema says, checked without jsonschema)."""
    if not isinstance(d, Mapping):
        raise ValidationError(f"a QA record is a JSON object, got {type(d).__name__}")
    for key in REQUIRED:
        if key not in d:
            raise ValidationError("is missing", key)
    for key in _STRINGS + ("family", "rationale"):
        if key in d and not isinstance(d[key], str):
            raise ValidationError(f"must be a string, got {type(d[key]).__name__}", key)
    for key in _NON_EMPTY:
        if not d[key]:
            raise ValidationError("must not be empty", key)
    _string_list(d, "images", non_empty=True)
    _string_list(d, "options")
    _string_list(d, "image_paths")
    index = d.get("answer_index")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise ValidationError(f"must be a non-negative integer or null, got {index!r}", "answer_index")
    for key in ("plan", "provenance"):
        if key in d and not isinstance(d[key], Mapping) and not (key == "provenance" and d[key] is None):
            raise ValidationError(f"must be an object, got {type(d[key]).__name__}", key)
    seed = d.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValidationError(f"must be an integer, got {seed!r}", "seed")
    turns = d.get("turns") or ()
    if not isinstance(turns, (list, tuple)):
        raise ValidationError(f"must be a list of [question, answer] pairs, got {type(turns).__name__}", "turns")
    for i, turn in enumerate(turns):
        if not isinstance(turn, (list, tuple)) or len(turn) != 2 or not all(isinstance(t, str) for t in turn):
            raise ValidationError(f"must be a [question, answer] pair of strings, got {turn!r}", f"turns[{i}]")
    for key in ("evolved", "curation"):
        if key in d and not isinstance(d[key], Mapping):
            raise ValidationError(f"must be an object, got {type(d[key]).__name__}", key)


@lru_cache(maxsize=None)
def qa_schema(version: int = QA_SCHEMA_VERSION) -> dict[str, Any]:
    """The JSON Schema document of a serialized QA record."""
    ref = resources.files("programs") / "schema" / f"qa.v{version}.schema.json"
    return json.loads(ref.read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(qa_schema())


def validate_qa_against_schema(record: Any) -> None:
    """Check a serialized QA record against the JSON Schema; raises :class:`ValidationError` naming the field."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator().iter_errors(record))
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        raise ValidationError(error.message, where)
