"""OpenAI chat fine-tuning format (vision): JSON lines of ``{"messages": [...]}``::

    {"messages": [{"role": "system", "content": "..."},
                  {"role": "user", "content": [{"type": "text", "text": "..."},
                                               {"type": "image_url", "image_url": {"url": "..."}}]},
                  {"role": "assistant", "content": "..."}]}

One ``image_url`` part per image, in image order, in the first user message, before or after its text
part (the placement option); a record of several images puts a label text part (``Image 1: ``) just
before each image part, so that "Image 2" in its question and answer names an image the prompt
labels. Other messages hold plain strings. The URL is the written image path
(``--image-urls path``: give ``--path-prefix https://host/images/`` so it is a URL OpenAI can fetch) or the
image itself as a base64 ``data:`` URL (``--image-urls data``, needs ``--image-root``). Records carry
nothing but ``messages`` (OpenAI's files have no id): ``mmgen validate`` checks them without ids.
The file is for OpenAI: ``content`` is a string in some messages and a list of parts in others, which
``datasets.load_dataset("json")`` before 4.0 cannot hold in one column (use ``messages`` or ``hf`` there).
"""

from __future__ import annotations

import base64
import logging
import mimetypes
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable

from .base import JsonFormat, Malformed, RecordView, Turn, require
from .messages import content_turn, labelled_parts
from .options import ExportError, ExportOptions
from .render import Rendered

log = logging.getLogger("mmgen.export")

ROLE_NAMES = {"system": "system", "user": "human", "assistant": "gpt"}
DATA_PREFIX = "data:"


def data_url(path: Path) -> str:
    """The image file as a ``data:<mime>;base64,...`` URL."""
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


class OpenAIFormat(JsonFormat):
    name = "openai"
    ids_required = False
    summary = "OpenAI fine-tuning JSONL: {messages[{role, content: str | [text, image_url parts]}]}"

    @staticmethod
    def file_name(split: str, options: ExportOptions) -> str:
        return f"{split}.jsonl"  # OpenAI reads JSON lines only

    def write(self, items: Iterable[Rendered], out: Path, options: ExportOptions) -> dict[str, int]:
        if options.image_urls == "data" and options.image_root is None:
            raise ExportError("--image-urls data needs --image-root (to read the images)")
        if options.image_urls == "path" and not options.path_prefix.startswith(("http://", "https://")):
            log.warning("openai: image URLs are the written paths; OpenAI fetches only http(s) or data URLs "
                        "(give --path-prefix https://HOST/IMAGES/ or --image-urls data)")
        return super().write(items, out, replace(options, jsonl=True))

    def recorder(self, options: ExportOptions) -> Callable[[Rendered], dict[str, Any]]:
        return lambda item: self.record(item, options.image_urls)

    def record(self, item: Rendered, urls: str = "path") -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        if item.system is not None:
            messages.append({"role": "system", "content": item.system})
        for n, (q, a) in enumerate(item.turns):
            if n == 0:
                if urls == "data":
                    assert item.image_files is not None
                    links = [data_url(f) for f in item.image_files]
                else:
                    links = list(item.images)
                images = labelled_parts(item, [image_part(u) for u in links])
                text = [{"type": "text", "text": q}]
                messages.append({"role": "user", "content": images + text if item.placement == "start"
                                 else text + images})
            else:
                messages.append({"role": "user", "content": q})
            messages.append({"role": "assistant", "content": a})
        return {"messages": messages}

    def view(self, raw: Any) -> RecordView:
        messages = require(raw, "messages", list)
        turns: list[Turn] = []
        urls: list[str] = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ROLE_NAMES:
                raise Malformed(f"messages[{i}] is not a message with a system/user/assistant role")
            content = m.get("content")
            role = ROLE_NAMES[m["role"]]
            if isinstance(content, str):
                turns.append(Turn(role, content))
                continue
            if not isinstance(content, list):
                raise Malformed(f"messages[{i}].content is a {type(content).__name__}, not a string or parts")
            parts: list[tuple[str, str]] = []
            for j, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text" and isinstance(part.get("text"), str):
                    parts.append(("text", part["text"]))
                elif kind == "image_url" and isinstance(part.get("image_url"), dict) \
                        and isinstance(part["image_url"].get("url"), str):
                    urls.append(part["image_url"]["url"])
                    parts.append(("image", ""))
                else:
                    raise Malformed(f"messages[{i}].content[{j}] is not a text or image_url part")
            turns.append(content_turn(role, parts))
        images: list[Any] = []
        data: list[Any] = []
        for k, url in enumerate(urls, 1):
            if url.startswith(DATA_PREFIX):
                head, _, payload = url.partition(",")
                if not head.endswith(";base64"):
                    raise Malformed(f"image {k} is a data URL without base64 data")
                try:
                    data.append(base64.b64decode(payload, validate=True))
                except ValueError:
                    raise Malformed(f"image {k} is a data URL with bad base64 data") from None
                images.append(f"data-url-{k}")
            else:
                images.append(url)
        embedded = bool(data) and len(data) == len(urls)
        if data and not embedded:
            raise Malformed("some images are data URLs and some are not")
        return RecordView(None, images, turns, image_data=data if embedded else None)
