"""Stable image ids and content hashes.

An image id is a hash of the image's path *relative to the input root* (POSIX separators), so two
``img.jpg`` in different folders never collide, and the id does not change when the root moves.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ID_LENGTH = 16
"""Hex digits kept from the sha256 of the relative path (64 bits: collision odds ~3e-6 at 10M images)."""


def relative_key(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str:
    """``path`` relative to ``root`` with ``/`` separators (``path`` itself, normalised, without a root).

    ``bytes`` paths are decoded like ``os.fsdecode`` (undecodable bytes become surrogate escapes).
    """
    p = os.fsdecode(path)
    rel = os.path.relpath(p, os.fsdecode(root)) if root is not None else os.path.normpath(p)
    if rel.startswith(".." + os.sep) or rel == "..":
        raise ValueError(f"{p!r} is not inside the input root {os.fsdecode(root)!r}")
    return rel.replace(os.sep, "/")


def image_id(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str:
    """Stable id for the image at ``path`` below ``root`` (hash of the relative path).

    Non-UTF-8 file names hash through their raw bytes (``surrogateescape``), so they get ids too.
    """
    key = relative_key(path, root)
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:ID_LENGTH]


def file_sha256(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()
