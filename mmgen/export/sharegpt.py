"""ShareGPT as read by LLaMA-Factory: ``{"id", "conversations": [{"from", "value"}], "images": [...],
"system"?}``, with a ``dataset_info.json`` beside the data naming the columns and role tags.

Image paths are relative to the image root: point LLaMA-Factory's ``media_dir`` at it. The first human
turn holds one ``<image>`` token per image, in order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scene_graphs.io import atomic_write

from .base import JsonFormat, RecordView, Turn, require
from .llava import image_list, read_sharegpt_turns, sharegpt_turns
from .options import ExportOptions
from .render import Rendered, strip_image_tokens

DATASET_INFO = "dataset_info.json"
DATASET_PREFIX = "mmgen"


def dataset_info(files: dict[str, str], options: ExportOptions) -> dict[str, Any]:
    """LLaMA-Factory dataset entries (``mmgen_train``, ``mmgen_val``) for the written files."""
    columns = {"messages": "conversations", "images": "images"}
    if options.system_prompt is not None:
        columns["system"] = "system"
    tags = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}
    return {f"{DATASET_PREFIX}_{split}": {"file_name": name, "formatting": "sharegpt", "columns": columns,
                                          "tags": tags} for split, name in files.items()}


class ShareGPTFormat(JsonFormat):
    name = "sharegpt"
    summary = "ShareGPT / LLaMA-Factory: {conversations, images, system?} + dataset_info.json"

    def record(self, item: Rendered) -> dict[str, Any]:
        rec: dict[str, Any] = {"id": item.id, "conversations": sharegpt_turns(item), "images": list(item.images)}
        if item.system is not None:
            rec["system"] = item.system
        return rec

    def after_write(self, out: Path, files: dict[str, str], options: ExportOptions) -> list[str]:
        with atomic_write(out / DATASET_INFO) as f:
            f.write((json.dumps(dataset_info(files, options), indent=2) + "\n").encode())
        return [DATASET_INFO]

    def view(self, raw: Any) -> RecordView:
        turns = read_sharegpt_turns(raw)
        if "system" in raw:
            system, markers = strip_image_tokens(require(raw, "system", str))
            turns.insert(0, Turn("system", system, markers))
        return RecordView(raw.get("id"), image_list(raw, "images"), turns)
