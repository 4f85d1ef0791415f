"""Images for vision-language models behind any OpenAI-compatible server (vLLM, llama.cpp, Ollama, APIs).

An image travels as an ``image_url`` content part holding a data URL: the local file, EXIF-oriented,
converted to RGB, shrunk so its longer side is at most ``max_side`` pixels (never enlarged) and encoded
as JPEG. :func:`attach_images` turns a chat request's user message into content parts:
``"Image 1:"``, the first image, ``"Image 2:"``, ..., then the original text, so "Image k" in a
question names the k-th picture the model sees.

Image paths come from the scene graphs (``SceneGraph.path``, relative to the folder the images were
annotated from); :class:`ImageSource` resolves them under ``image_root`` and refuses any path that
leaves it (``..``, absolute paths, symlinks pointing outside).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

DEFAULT_MAX_SIDE = 768
JPEG_QUALITY = 90


class ImageSourceError(ValueError):
    """An image a VLM request needs cannot be found or read."""


@dataclass(frozen=True)
class ImageSource:
    """Where the images of the scene graphs are, and how large they are sent."""

    image_root: Path
    max_side: int = DEFAULT_MAX_SIDE

    def __post_init__(self) -> None:
        if self.max_side < 32:
            raise ValueError(f"the image side sent to the VLM must be at least 32 pixels, got {self.max_side}")
        root = Path(self.image_root)
        if not root.is_dir():
            raise ImageSourceError(f"--image-root {root} is not a folder")
        object.__setattr__(self, "image_root", root.resolve())

    def path_of(self, graph: Any) -> Path:
        """The image file of ``graph``, inside ``image_root``."""
        rel = str(getattr(graph, "path", "") or "")
        if not rel:
            raise ImageSourceError(f"scene graph {graph.image_id} has no image path")
        path = (self.image_root / rel).resolve()
        if path != self.image_root and self.image_root not in path.parents:
            raise ImageSourceError(f"image path {rel!r} of graph {graph.image_id} leaves --image-root {self.image_root}")
        if not path.is_file():
            raise ImageSourceError(f"image {path} of graph {graph.image_id} is missing (is --image-root right?)")
        return path

    def parts(self, graphs: Sequence[Any]) -> list[dict[str, Any]]:
        """One ``image_url`` part per graph, in order."""
        return [image_part(self.path_of(g), self.max_side) for g in graphs]

    def identity(self) -> dict[str, Any]:
        """What shapes the requests (for manifests): the side, not the folder."""
        return {"max_side": self.max_side, "format": "jpeg", "quality": JPEG_QUALITY}


def image_part(path: str | Path, max_side: int = DEFAULT_MAX_SIDE) -> dict[str, Any]:
    """An OpenAI ``image_url`` content part with the image as a JPEG data URL."""
    p = Path(path)
    stat = p.stat()
    return {"type": "image_url", "image_url": {"url": _data_url(str(p), stat.st_mtime_ns, stat.st_size, max_side)}}


@lru_cache(maxsize=64)
def _data_url(path: str, _mtime: int, _size: int, max_side: int) -> str:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=JPEG_QUALITY)
    except (OSError, UnidentifiedImageError) as exc:
        raise ImageSourceError(f"cannot read image {path}: {exc}") from None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def attach_images(messages: Sequence[Mapping[str, Any]], parts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with the last user message turned into labelled image parts followed by its text."""
    out = [dict(m) for m in messages]
    if not parts:
        return out
    index = max(i for i, m in enumerate(out) if m.get("role") == "user")
    content: list[dict[str, Any]] = []
    for k, part in enumerate(parts, 1):
        content.append({"type": "text", "text": f"Image {k}:" if len(parts) > 1 else "Image:"})
        content.append(dict(part))
    content.append({"type": "text", "text": str(out[index]["content"])})
    out[index]["content"] = content
    return out
