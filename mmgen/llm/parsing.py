"""Strict parsing of model replies: one JSON object, checked against a JSON Schema.

A reply is accepted when it *is* a JSON object, or when it holds one: a Markdown code fence, or text
around it (small models add "Sure! Here is the JSON:"). The first complete JSON object in the reply
is taken (``json.JSONDecoder.raw_decode`` from each ``{`` in turn), never a repaired guess: a
truncated or broken object is a :class:`MalformedOutput`, which the client counts and retries.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Mapping

import jsonschema


class MalformedOutput(ValueError):
    """The model's reply is not the JSON object asked for (the message says why, in one line)."""


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_decoder = json.JSONDecoder()


def extract_json_object(text: str) -> dict[str, Any]:
    """The JSON object in ``text`` (see the module docstring) or :class:`MalformedOutput`."""
    if not isinstance(text, str) or not text.strip():
        raise MalformedOutput("empty reply")
    stripped = text.strip()
    candidates = [stripped, *(m.group(1).strip() for m in _FENCE.finditer(text))]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            value, _ = _decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    snippet = stripped[:80].replace("\n", " ")
    raise MalformedOutput(f"no complete JSON object in the reply ({snippet!r}{'...' if len(stripped) > 80 else ''})")


def schema_error(data: Any, schema: Mapping[str, Any]) -> str | None:
    """The first JSON-Schema violation of ``data`` in one line (None when it conforms)."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: (list(e.absolute_path), e.message))
    if not errors:
        return None
    e = errors[0]
    where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
    return f"{where}: {e.message}"


def parse_reply(text: str, schema: Mapping[str, Any],
                check: Callable[[dict[str, Any]], str | None] | None = None) -> dict[str, Any]:
    """Extract the object, validate it against ``schema``, then run ``check`` (a further rule that
    returns a one-line problem or None). Raises :class:`MalformedOutput`."""
    data = extract_json_object(text)
    problem = schema_error(data, schema)
    if problem is None and check is not None:
        problem = check(data)
    if problem is not None:
        raise MalformedOutput(problem)
    return data
