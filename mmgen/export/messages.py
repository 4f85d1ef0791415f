"""Chat messages with typed content parts, as Hugging Face chat templates and TRL read them::

    {"id": ..., "images": ["a.jpg"],
     "messages": [{"role": "system", "content": [{"type": "text", "text": ...}]},
                  {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": ...}]},
                  {"role": "assistant", "content": [{"type": "text", "text": ...}]}]}

One ``{"type": "image"}`` part per image, in the order of ``images``, in the first user message,
before or after its text part (the placement option).
"""

from __future__ import annotations

from typing import Any

from .base import JsonFormat, Malformed, RecordView, Turn, require
from .render import Rendered

ROLE_NAMES = {"system": "system", "user": "human", "assistant": "gpt"}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def message_list(item: Rendered) -> list[dict[str, Any]]:
    """The record's messages with image parts in the first user message."""
    out: list[dict[str, Any]] = []
    if item.system is not None:
        out.append({"role": "system", "content": [text_part(item.system)]})
    for n, (q, a) in enumerate(item.turns):
        content = [text_part(q)]
        if n == 0:
            images = [{"type": "image"} for _ in item.images]
            content = images + content if item.placement == "start" else content + images
        out.append({"role": "user", "content": content})
        out.append({"role": "assistant", "content": [text_part(a)]})
    return out


def read_messages(messages: Any, key: str = "messages") -> list[Turn]:
    """Turns from a list of messages (content as typed parts or a plain string)."""
    if not isinstance(messages, list):
        raise Malformed(f"{key!r} is a {type(messages).__name__}, not a list")
    turns: list[Turn] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise Malformed(f"{key}[{i}] is not an object")
        role = m.get("role")
        if role not in ROLE_NAMES:
            raise Malformed(f"{key}[{i}] has unknown role {role!r}")
        content = m.get("content")
        if isinstance(content, str):
            turns.append(Turn(ROLE_NAMES[role], content))
            continue
        if not isinstance(content, list):
            raise Malformed(f"{key}[{i}].content is a {type(content).__name__}, not a list of parts")
        texts: list[str] = []
        kinds: list[str] = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "image":
                kinds.append("image")
            elif kind == "text":
                if not isinstance(part.get("text"), str):
                    raise Malformed(f"{key}[{i}].content[{j}] is a text part without text")
                texts.append(part["text"])
                kinds.append("text")
            else:
                raise Malformed(f"{key}[{i}].content[{j}] has unknown type {kind!r}")
        markers = kinds.count("image")
        placement = None
        if markers and "text" in kinds:
            first_text, last_text = kinds.index("text"), len(kinds) - 1 - kinds[::-1].index("text")
            if all(k == "image" for k in kinds[:first_text]) and markers == first_text:
                placement = "start"
            elif all(k == "image" for k in kinds[last_text + 1:]) and markers == len(kinds) - 1 - last_text:
                placement = "end"
        turns.append(Turn(ROLE_NAMES[role], "\n".join(texts), markers, placement))
    return turns


class MessagesFormat(JsonFormat):
    name = "messages"
    summary = "HF/TRL chat messages: {messages[{role, content[{type: image|text}]}], images}"

    def record(self, item: Rendered) -> dict[str, Any]:
        return {"id": item.id, "messages": message_list(item), "images": list(item.images)}

    def view(self, raw: Any) -> RecordView:
        turns = read_messages(require(raw, "messages", list))
        images = require(raw, "images", list) if "images" in raw else []
        return RecordView(raw.get("id"), images, turns)
