"""LLaVA format: ``{"id", "image", "conversations": [{"from": "human"|"gpt", "value"}]}``.

``image`` is a path relative to the image root (LLaVA's ``--image_folder``), or a list of paths for a
multi-image record (LLaVA-OneVision / LLaVA-NeXT-Interleave style). A file holding both is not read by
``datasets.load_dataset("json")`` (4.x): ``--target llava-onevision`` always writes a list, ``--target
llava-1.5`` always one path (records of several images skipped). The first human turn holds one
``<image>`` token per image, in order. LLaVA's format has no system turn.
"""

from __future__ import annotations

from typing import Any

from .base import JsonFormat, Malformed, RecordView, Turn, require
from .render import IMAGE_TOKEN, Rendered, add_image_tokens, image_labels, strip_image_tokens

SHAREGPT_ROLES = {"human": "human", "gpt": "gpt", "system": "system"}


def sharegpt_turns(item: Rendered) -> list[dict[str, str]]:
    """``[{"from", "value"}]`` turns with the image tokens in the first human turn."""
    out: list[dict[str, str]] = []
    for n, (q, a) in enumerate(item.turns):
        if n == 0:
            q = add_image_tokens(q, len(item.images), item.placement, item.image_label)
        out.append({"from": "human", "value": q})
        out.append({"from": "gpt", "value": a})
    return out


def token_turn(role: str, value: str) -> Turn:
    """A turn read from text that may hold ``<image>`` tokens."""
    text, markers = strip_image_tokens(value)
    placement = None
    if markers:
        placement = ("start" if text and value.endswith(text) else "end" if text and value.startswith(text)
                     else "start" if value.startswith(IMAGE_TOKEN) else "end" if value.endswith(IMAGE_TOKEN) else None)
    return Turn(role, text, markers, placement, tuple(image_labels(value)) if markers else ())


def read_sharegpt_turns(raw: dict[str, Any], key: str = "conversations") -> list[Turn]:
    turns: list[Turn] = []
    for i, t in enumerate(require(raw, key, list)):
        if not isinstance(t, dict):
            raise Malformed(f"{key}[{i}] is not an object")
        role, value = t.get("from"), t.get("value")
        if role not in SHAREGPT_ROLES:
            raise Malformed(f"{key}[{i}] has unknown role {role!r}")
        if not isinstance(value, str):
            raise Malformed(f"{key}[{i}].value is a {type(value).__name__}, not a string")
        turns.append(token_turn(SHAREGPT_ROLES[role], value))
    return turns


def image_list(raw: dict[str, Any], key: str) -> list[Any]:
    """The image paths under ``key`` (a string or a list); none when the key is absent (text-only)."""
    if key not in raw:
        return []
    value = raw[key]
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return value
    raise Malformed(f"{key!r} is a {type(value).__name__}, not a path or a list of paths")


class LlavaFormat(JsonFormat):
    name = "llava"
    system_turn = False
    summary = "LLaVA: {id, image, conversations[{from, value}]} with <image> tokens"

    def record(self, item: Rendered) -> dict[str, Any]:
        if item.image_field == "list" or (item.image_field == "auto" and len(item.images) > 1):
            image: str | list[str] = list(item.images)
        else:
            image = item.images[0]
        return {"id": item.id, "image": image, "conversations": sharegpt_turns(item)}

    def view(self, raw: Any) -> RecordView:
        turns = read_sharegpt_turns(raw)
        return RecordView(raw.get("id"), image_list(raw, "image"), turns)
