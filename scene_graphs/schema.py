"""The versioned JSON Schema of a serialized scene graph (``schema/scene_graph.v1.schema.json``)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from .model import SCHEMA_VERSION, ValidationError


@lru_cache(maxsize=None)
def schema(version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The JSON Schema document for one format version."""
    ref = resources.files("scene_graphs") / "schema" / f"scene_graph.v{version}.schema.json"
    return json.loads(ref.read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(schema())


def validate_against_schema(record: Any) -> None:
    """Check a serialized graph against the JSON Schema; raises :class:`ValidationError` naming the field."""
    import jsonschema

    validator = _validator()
    error = jsonschema.exceptions.best_match(validator.iter_errors(record))
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        raise ValidationError(error.message, where)
