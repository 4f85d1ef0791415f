"""Loading Ultralytics models (YOLO, YOLO-World, YOLOE, SAM) from resolved weights; shared by
:mod:`.detect` and :mod:`.segment`.

Ultralytics pip-installs missing packages at run time unless ``YOLO_AUTOINSTALL`` is false; mmgen
sets that default (before Ultralytics is imported) so annotation never changes the environment.
Set ``YOLO_AUTOINSTALL=true`` yourself to allow it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .base import require
from .weights import ResolvedWeights, download_failed, file_sha256

log = logging.getLogger("scene_graphs.perception")

os.environ.setdefault("YOLO_AUTOINSTALL", "false")

ULTRALYTICS = {"ultralytics": "ultralytics-opencv-headless"}
RUNTIMES = {".tflite": {"ai_edge_litert": "ai-edge-litert"}, ".onnx": {"onnxruntime": "onnxruntime"},
            ".pt": {"torch": "torch"}}


def weights_path(stage: str, resolved: ResolvedWeights) -> tuple[str, ResolvedWeights]:
    """A local file for ``resolved``: downloads it through Ultralytics into the mmgen cache when the
    resolver said ``download``. Returns the path and the (updated) resolution record."""
    require(stage, {**ULTRALYTICS, **RUNTIMES.get(resolved.suffix, {})})
    if resolved.origin != "download":
        return str(resolved.path), resolved
    from ultralytics.utils.downloads import attempt_download_asset

    assert resolved.path is not None
    resolved.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path = attempt_download_asset(str(resolved.path))
    except Exception as exc:  # any download failure means: no weights
        raise download_failed(resolved, exc) from exc
    from pathlib import Path

    if not Path(path).is_file():
        raise download_failed(resolved, FileNotFoundError(f"Ultralytics did not produce {resolved.path}"))
    log.info("downloaded %s through Ultralytics into %s", resolved.ref, path)
    return path, ResolvedWeights(resolved.spec, "download", Path(path), resolved.file, file_sha256(path), resolved.ref)


def ultralytics_device(device: str) -> str:
    """Ultralytics' spelling of a torch device (``cpu``, ``0``)."""
    return device.split(":", 1)[1] if device.startswith("cuda:") else device


def load_yolo(path: str, task: str) -> Any:
    """``ultralytics.YOLO`` (or its YOLO-World / YOLOE variant, chosen by file name) for ``task``."""
    from ultralytics import YOLO

    return YOLO(path, task=task)
