"""Small, fast stand-ins for the vision models, shared by the engine tests (no test here).

:class:`ColourBlob` "detects" one object per image, labelled by the image's dominant channel, so
graphs depend on the pixels and the programs have something to ask about. :func:`fake_pipeline`
and :class:`SlowFactory` are picklable pipeline factories for :func:`mmgen.stages.annotate.annotate`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from scene_graphs.model import Box, Object
from scene_graphs.perception.base import Annotator
from scene_graphs.perception.pipeline import Pipeline

LABELS = ("apple", "leaf", "car")


class ColourBlob(Annotator):
    """One object covering the middle of the image, labelled by the dominant colour channel."""

    name = "detect"
    fills = frozenset({"objects"})
    defaults: ClassVar[dict[str, Any]] = {"delay": 0.0, "fail_on": ""}

    def process(self, batch, graphs):
        out = []
        for item, graph in zip(batch, graphs):
            if self.options["fail_on"] and item.path.endswith(self.options["fail_on"]):
                raise RuntimeError(f"the model chokes on {item.path}")
            if self.options["delay"]:
                time.sleep(self.options["delay"])
            mean = item.pixels.reshape(-1, 3).mean(axis=0)
            label = LABELS[int(np.argmax(mean))]
            w, h = item.width, item.height
            box = Box(w * 0.25, h * 0.25, w * 0.75, h * 0.75)
            score = round(0.5 + float(mean.max()) / 512, 3)
            out.append(self.stamp(graph, objects=(Object("o0", label, box, score),)))
        return out


def fake_pipeline() -> Pipeline:
    return Pipeline([ColourBlob()], {"profile": "test"}).load("cpu")


class SlowFactory:
    """A pipeline whose detector sleeps ``delay`` seconds per image (or fails on a file name)."""

    def __init__(self, delay: float = 0.0, fail_on: str = "") -> None:
        self.delay, self.fail_on = delay, fail_on

    def __call__(self) -> Pipeline:
        return Pipeline([ColourBlob(delay=self.delay, fail_on=self.fail_on)], {"profile": "test"}).load("cpu")


def make_images(folder: Path, n: int, seed: int = 0, size: tuple[int, int] = (24, 16)) -> list[Path]:
    """``n`` small PNGs of random dominant colours in ``folder`` (two levels of sub-folders)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        sub = folder / f"d{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        colour = rng.integers(0, 256, size=3)
        pixels = np.broadcast_to(colour.astype(np.uint8), (size[1], size[0], 3)).copy()
        pixels[0, 0] = (i % 256, (i // 256) % 256, 7)  # every image differs: no accidental duplicates
        p = sub / f"img{i:04d}.png"
        Image.fromarray(pixels).save(p)
        paths.append(p)
    return paths


def shard_bytes(folder: Path) -> dict[str, bytes]:
    """The record files of an output folder (``part-*.jsonl`` and sidecars), by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("part-*")) if not p.name.endswith(".done.json")}


def summary_of(folder: Path) -> dict[str, Any]:
    import json

    return json.loads((folder / "summary.json").read_text())
