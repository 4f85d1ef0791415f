"""Importers and exporters between mmgen scene graphs and the annotation formats the field uses.

Each format module (``vg``, ``gqa``, ``coco``, ``provision``) defines

* ``read(src, *, image_root=None, report, allow_pickle=False) -> Iterator[SceneGraph]``
* ``write(graphs, dst, *, image_root=None) -> None``

and is listed in :data:`FORMATS`. Readers stream, validate every graph through the data model, clip
boxes that spill over the image edge (counted in the :class:`ImportReport`) and raise
:class:`~scene_graphs.model.ValidationError` naming the file, record and field for anything else.
"""

from __future__ import annotations

import importlib
from collections import Counter
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ..model import Box

FORMAT_NAMES = ("vg", "gqa", "coco", "provision")


@dataclass
class ImportReport:
    """What an import did besides producing graphs: clipped boxes, missing images, dropped parts."""

    source: str = ""
    graphs: int = 0
    clipped_boxes: int = 0
    missing_images: list[str] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    """Reason -> count for parts that were left out (e.g. ``"relation to unknown object"``)."""

    def clip(self, box: Box, width: float, height: float) -> Box:
        """``box`` clipped to the image, counting it when it changed."""
        clipped, changed = box.clip(width, height)
        if changed:
            self.clipped_boxes += 1
        return clipped

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "graphs": self.graphs, "clipped_boxes": self.clipped_boxes,
                "missing_images": len(self.missing_images), "missing_image_examples": self.missing_images[:20],
                "dropped": dict(sorted(self.dropped.items()))}


def get_format(name: str) -> ModuleType:
    """The module implementing format ``name`` (one of :data:`FORMAT_NAMES`)."""
    if name not in FORMAT_NAMES:
        raise ValueError(f"unknown format {name!r}; choose one of {', '.join(FORMAT_NAMES)}")
    return importlib.import_module(f"{__name__}.{name}")
