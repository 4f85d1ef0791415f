"""Resolving untrusted relative paths inside a root folder, for the viewer and the store.

Everything the viewer serves from disk goes through :func:`safe_join`: the request path is refused when
it is absolute, holds a ``..``, ``.`` or empty part, a NUL or a backslash, and the joined path is resolved (symlinks
followed) and must still lie inside the resolved root and be a regular file. URL decoding happens once,
before this, in the server; a path that still holds ``%`` escapes after that is taken literally.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


def safe_join(root: str | os.PathLike[str], relative: str) -> Path | None:
    """``root / relative`` when that is a regular file inside ``root`` (after resolving symlinks), else None."""
    if not relative or "\x00" in relative or "\\" in relative:
        return None
    if any(part in ("", ".", "..") for part in relative.split("/")):  # also refuses absolute paths
        return None
    rel = PurePosixPath(relative)
    try:
        base = Path(root).resolve(strict=True)
        target = (base / rel).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    if not target.is_relative_to(base) or not target.is_file():
        return None
    return target
