"""Chat messages with typed content parts, as Hugging Face chat templates and TRL read them::

    {"id": ..., "images": ["a.jpg"],
     "messages": [{"role": "system", "content": [{"type": "text", "text": ...}]},
                  {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": ...}]},
                  {"role": "assistant", "content": [{"type": "text", "text": ...}]}]}

One ``{"type": "image"}`` part per image, in the order of ``images``, in the first user message,
before or after its text part (the placement option). A record of several images puts its label
(``{"type": "text", "text": "Image 1: "}``) just before each image part, as the token formats write
``Image 1: <image>``, so that questions and answers saying "Image 2" name an image the prompt labels::

    [{"type": "text", "text": "Image 1: "}, {"type": "image"},
     {"type": "text", "text": "Image 2: "}, {"type": "image"}, {"type": "text", "text": "Which..."}]
"""

from __future__ import annotations

from typing import Any

from .base import JsonFormat, Malformed, RecordView, Turn, require
from .render import Rendered, image_part_labels, is_image_label

ROLE_NAMES = {"system": "system", "user": "human", "assistant": "gpt"}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def labelled_parts(item: Rendered, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One image part each (``parts``, in image order), each after its label text part when the record
    has several images (:func:`~mmgen.export.render.image_part_labels`)."""
    out: list[dict[str, Any]] = []
    for label, part in zip(image_part_labels(len(parts), item.image_label), parts):
        if label:
            out.append(text_part(label))
        out.append(part)
    return out


def content_turn(role: str, parts: list[tuple[str, str]]) -> Turn:
    """A turn from its content parts, as ``(kind, text)`` with kind ``image`` or ``text``: a text part
    that is only an image label and comes just before an image part is that image's label (not text)."""
    kinds: list[str] = []
    texts: list[str] = []
    labels: list[str] = []
    pending = ""
    for j, (kind, text) in enumerate(parts):
        if kind == "image":
            labels.append(pending)
            pending = ""
            kinds.append("image")
            continue
        if is_image_label(text) and j + 1 < len(parts) and parts[j + 1][0] == "image":
            pending = text
            continue
        texts.append(text)
        kinds.append("text")
    markers = kinds.count("image")
    placement = None
    if markers and "text" in kinds:
        first_text, last_text = kinds.index("text"), len(kinds) - 1 - kinds[::-1].index("text")
        if markers == first_text:
            placement = "start"
        elif markers == len(kinds) - 1 - last_text:
            placement = "end"
    return Turn(role, "\n".join(texts), markers, placement, tuple(labels))


def message_list(item: Rendered) -> list[dict[str, Any]]:
    """The record's messages with (labelled) image parts in the first user message."""
    out: list[dict[str, Any]] = []
    if item.system is not None:
        out.append({"role": "system", "content": [text_part(item.system)]})
    for n, (q, a) in enumerate(item.turns):
        content = [text_part(q)]
        if n == 0:
            images = labelled_parts(item, [{"type": "image"} for _ in item.images])
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
        parts: list[tuple[str, str]] = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "image":
                parts.append(("image", ""))
            elif kind == "text":
                if not isinstance(part.get("text"), str):
                    raise Malformed(f"{key}[{i}].content[{j}] is a text part without text")
                parts.append(("text", part["text"]))
            else:
                raise Malformed(f"{key}[{i}].content[{j}] has unknown type {kind!r}")
        turns.append(content_turn(ROLE_NAMES[role], parts))
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
