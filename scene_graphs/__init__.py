"""What an image contains: the scene-graph data model, its file formats and the perception models.

Nothing here imports from ``programs`` or ``mmgen``.
"""

from .ids import file_sha256, image_id, relative_key
from .io import RecordError, atomic_write, iter_graphs, read_graphs, read_jsonl, write_graphs, write_jsonl
from .model import (
    ATTRIBUTE_CATEGORIES,
    FIELDS,
    SCHEMA_VERSION,
    Attribute,
    Box,
    DepthMap,
    Mask,
    Object,
    Relation,
    Search,
    SceneGraph,
    TextRegion,
    ValidationError,
    infer_fields,
)
from .schema import schema, validate_against_schema

__all__ = [
    "ATTRIBUTE_CATEGORIES", "FIELDS", "SCHEMA_VERSION", "Attribute", "Box", "DepthMap", "Mask", "Object",
    "RecordError", "Relation", "SceneGraph", "Search", "TextRegion", "ValidationError", "atomic_write", "file_sha256",
    "image_id", "infer_fields", "iter_graphs", "read_graphs", "read_jsonl", "relative_key", "schema",
    "validate_against_schema", "write_graphs", "write_jsonl",
]
