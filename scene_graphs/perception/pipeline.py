"""Running annotators in order over batches of images.

:class:`Pipeline` loads every stage once; an *optional* stage whose weights or packages are missing
is dropped with one warning (its fields are then not listed in the graphs), any other stage's
problem is raised. :meth:`Pipeline.annotate` turns a batch of decoded images into finished graphs;
a stage whose model work needs only the pixels (``reads_ahead``: OCR) starts that work in a background
thread when the batch arrives, so it overlaps the stages before it; the graphs are the same;
:func:`annotate_paths` decodes files, batches them and reports the images it could not use.

``load(background=True)`` (what ``mmgen annotate`` uses) loads the read-ahead stages at once and the
others in a background thread, so the first batch's text is read while torch and Ultralytics are
imported (OCR inference leaves the interpreter free; imports need it): a one-shot annotate of a few
images spends most of its time starting up. The first :meth:`Pipeline.annotate` (and
:attr:`Pipeline.fields`, :meth:`Pipeline.wait_loaded`) waits for the loading to end and raises what it
raised; an optional stage that cannot load is dropped then, with the same warning. Nothing else changes:
same stages, same order, same graphs.

Once the stages are loaded, the objects alive then (imported libraries, models: torch alone makes
about 250,000) are moved to the collector's permanent generation (``gc.freeze``, once per process):
they live as long as the process anyway, and the cyclic collector then never scans them again, neither
during the run nor in the collections Python runs while shutting down, which took 0.5-1 s of a one-shot
``mmgen annotate`` on 2 cores. Objects made later are collected as usual.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..model import SceneGraph
from .base import Annotator, MissingDependencyError, ServiceError
from .images import DEFAULT_MAX_PIXELS, ImageError, ImageItem, load_image
from .weights import MissingWeightsError

log = logging.getLogger("scene_graphs.perception")


@dataclass(frozen=True)
class ImageFailure:
    """An image that produced no graph, and why: ``reason`` is the one-line message, ``kind`` its
    category (:data:`.images.REASONS` for decoding, ``annotate-failed`` for a model error)."""

    path: str
    reason: str
    stage: str = "decode"
    kind: str = "corrupt"
    image_id: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"path": self.path, "image_id": self.image_id, "stage": self.stage, "kind": self.kind,
                "error": self.reason}


def _check_order(stages: Sequence[Annotator], after_skips: bool = False) -> None:
    """Every stage's needed fields are filled by an earlier stage."""
    filled: set[str] = set()
    for stage in stages:
        missing = set(stage.needs) - filled
        if missing:
            why = " (an optional stage it relies on was skipped)" if after_skips else ""
            raise ValueError(f"stage {stage.name!r} needs {', '.join(sorted(missing))}, which no earlier stage "
                             f"fills{why}; stages: {', '.join(s.name for s in stages)}")
        filled |= stage.fills


class Pipeline:
    """Annotators run in order; see the module docstring."""

    def __init__(self, stages: Sequence[Annotator], provenance: Mapping[str, Any] | None = None) -> None:
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"a stage appears twice in {names}")
        self.stages: list[Annotator] = list(stages)
        self.skipped: dict[str, str] = {}
        self.extra_provenance = dict(provenance or {})
        self.loaded = False
        self.on_loaded: Callable[[Pipeline], None] | None = None
        """Called once the stages are loaded (after a background load: by the call that waited for it)."""
        self._loading: Future[dict[str, str]] | None = None
        self._ahead_pool: ThreadPoolExecutor | None = None
        self.seconds: Counter[str] = Counter()
        """Seconds spent in each stage (and ``decode`` in :func:`annotate_paths`) since the pipeline was made."""

    def load(self, device: str = "auto", background: bool = False) -> Pipeline:
        """Load every stage; drop optional ones that cannot run (with a warning). With ``background``,
        the read-ahead stages load now and the others in a thread (see the module docstring)."""
        if self.loaded or self._loading is not None:
            return self
        _check_order(self.stages)
        first = [s for s in self.stages[1:] if s.reads_ahead] if background else []
        if not first:
            self.skipped.update(_load_stages(self.stages, device))
            self._finish_loading()
            return self
        self.skipped.update(_load_stages(first, device))
        self.stages = [s for s in self.stages if s.name not in self.skipped]
        rest = [s for s in self.stages if s not in first]
        loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load")
        self._loading = loader.submit(_load_stages, rest, device)
        loader.shutdown(wait=False)
        return self

    def wait_loaded(self) -> Pipeline:
        """Wait for a background load to end; raises what the loading raised."""
        if self._loading is not None:
            loading = self._loading
            try:
                skipped = loading.result()
            finally:
                self._loading = None
            self.skipped.update(skipped)
            self._finish_loading()
        return self

    def _finish_loading(self) -> None:
        kept = [s for s in self.stages if s.name not in self.skipped]
        _check_order(kept, after_skips=True)
        self.stages = kept
        self.loaded = True
        _freeze_loaded_objects()
        if self.on_loaded is not None:
            self.on_loaded(self)

    @property
    def fields(self) -> frozenset[str]:
        """Fields the graphs of this pipeline will list."""
        self.wait_loaded()
        return frozenset().union(*(s.fills for s in self.stages)) if self.stages else frozenset()

    def empty_graph(self, item: ImageItem) -> SceneGraph:
        self.wait_loaded()
        prov = {**self.extra_provenance, "annotator": "scene_graphs.perception", "stages": {}}
        if self.skipped:
            prov["skipped"] = dict(sorted(self.skipped.items()))
        return SceneGraph(image_id=item.image_id, width=item.width, height=item.height, path=item.path,
                          sha256=item.sha256, provenance=prov, meta=item.meta())

    def annotate(self, items: Sequence[ImageItem]) -> list[SceneGraph]:
        """Finished graphs for a batch of decoded images (same order)."""
        return self._run(items, self._begin(items))

    def _begin(self, items: Sequence[ImageItem]) -> dict[str, Future[Any]]:
        """Start the batch's read-ahead, then wait for the stages to be loaded (loading errors are raised)."""
        if not self.loaded and self._loading is None:
            self.load()
        ahead = self._read_ahead(items)
        try:
            self.wait_loaded()
        except BaseException:
            for future in ahead.values():
                future.cancel()
            raise
        return ahead

    def _run(self, items: Sequence[ImageItem], ahead: dict[str, Future[Any]]) -> list[SceneGraph]:
        graphs = [self.empty_graph(item) for item in items]
        try:
            for stage in self.stages:
                started = time.perf_counter()
                future = ahead.pop(stage.name, None)
                graphs = stage(items, graphs, future.result() if future is not None else None)
                self.seconds[stage.name] += time.perf_counter() - started
        finally:
            for future in ahead.values():
                future.cancel()
        return graphs

    def _read_ahead(self, items: Sequence[ImageItem]) -> dict[str, Future[Any]]:
        """Start the pixel-only model work (:meth:`.base.Annotator.read_ahead`) of every stage after the
        first that has it, in one background thread, so it overlaps the stages before it (onnxruntime
        and LiteRT release the GIL). Results are the same as running it in turn."""
        wanted = [s for s in self.stages[1:] if s.reads_ahead]
        if not wanted:
            return {}
        if self._ahead_pool is None:
            self._ahead_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
        return {s.name: self._ahead_pool.submit(self._timed_read_ahead, s, items) for s in wanted}

    def _timed_read_ahead(self, stage: Annotator, items: Sequence[ImageItem]) -> Any:
        started = time.perf_counter()
        try:
            return stage.read_ahead(items)
        finally:
            self.seconds[f"{stage.name}.ahead"] += time.perf_counter() - started

    def annotate_safely(self, items: Sequence[ImageItem]) -> list[SceneGraph | ImageFailure]:
        """Like :meth:`annotate`, but when the batch fails each image is retried alone and the ones
        that still fail become :class:`ImageFailure` records instead of stopping the run (a stage that
        failed to load is raised, never blamed on the images)."""
        ahead = self._begin(items)
        try:
            return list(self._run(items, ahead))
        except (MissingWeightsError, MissingDependencyError, ServiceError):
            raise  # a stage that cannot load, or a server that failed, is never blamed on the images
        except Exception as batch_exc:  # noqa: BLE001 - isolate the image that breaks the batch
            if len(items) == 1:
                return [ImageFailure(items[0].path, f"{type(batch_exc).__name__}: {batch_exc}", "annotate",
                                     "annotate-failed", items[0].image_id)]
            log.warning("a batch of %d images failed (%s); retrying them one by one", len(items), batch_exc)
            out: list[SceneGraph | ImageFailure] = []
            for item in items:
                out.extend(self.annotate_safely([item]))
            return out


_FROZEN = False


def _freeze_loaded_objects() -> None:
    """``gc.freeze()`` the first time a pipeline finishes loading in this process (module docstring)."""
    global _FROZEN
    if not _FROZEN:
        _FROZEN = True
        gc.freeze()


def _load_stages(stages: Sequence[Annotator], device: str) -> dict[str, str]:
    """Load ``stages`` in order; returns the optional ones that cannot run (name -> why), warned about."""
    skipped: dict[str, str] = {}
    for stage in stages:
        try:
            stage.load(device)
        except (MissingWeightsError, MissingDependencyError) as exc:
            if not stage.optional:
                raise
            skipped[stage.name] = str(exc)
            log.warning("skipping optional stage %r: %s", stage.name, exc)
    return skipped


def _decode(path: str | os.PathLike[str], root: str | os.PathLike[str], max_pixels: int
            ) -> tuple[ImageItem | ImageFailure, float]:
    started = time.perf_counter()
    try:
        result: ImageItem | ImageFailure = load_image(path, root, max_pixels)
    except ImageError as exc:
        from ..ids import image_id, relative_key

        key = relative_key(path, root)
        result = ImageFailure(key, str(exc), "decode", exc.reason, image_id(path, root))
    return result, time.perf_counter() - started


def annotate_paths(pipeline: Pipeline, paths: Sequence[str | os.PathLike[str]], root: str | os.PathLike[str],
                   batch_size: int = 8, max_pixels: int = DEFAULT_MAX_PIXELS,
                   threads: int = 1) -> Iterator[SceneGraph | ImageFailure]:
    """Decode and annotate ``paths`` (below ``root``) in batches; yields a graph or a failure per image,
    in input order. ``threads`` > 1 decodes that many images at once, ahead of the models (Pillow
    releases the GIL while decoding); at most ``2 * batch_size`` decoded images wait at a time."""
    batch_size = max(1, int(batch_size))
    pending: list[tuple[int, ImageItem]] = []
    results: dict[int, SceneGraph | ImageFailure] = {}
    next_out = 0

    def flush() -> None:
        if pending:
            for (i, _), res in zip(pending, pipeline.annotate_safely([it for _, it in pending])):
                results[i] = res
            pending.clear()

    executor = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None
    try:
        if executor is None:
            decoded: Iterator[tuple[ImageItem | ImageFailure, float]] = (_decode(p, root, max_pixels) for p in paths)
        else:
            decoded = _ahead(executor, paths, root, max_pixels, 2 * batch_size)
        for i, (item, seconds) in enumerate(decoded):
            pipeline.seconds["decode"] += seconds
            if isinstance(item, ImageFailure):
                results[i] = item
            else:
                pending.append((i, item))
            if len(pending) >= batch_size:
                flush()
            while next_out in results:
                yield results.pop(next_out)
                next_out += 1
        flush()
        while next_out in results:
            yield results.pop(next_out)
            next_out += 1
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _ahead(executor: ThreadPoolExecutor, paths: Sequence[str | os.PathLike[str]], root: str | os.PathLike[str],
           max_pixels: int, window: int) -> Iterator[tuple[ImageItem | ImageFailure, float]]:
    """Decoded images in input order, with at most ``window`` decodes running or waiting."""
    queue: deque[Future[tuple[ImageItem | ImageFailure, float]]] = deque()
    for path in paths:
        queue.append(executor.submit(_decode, path, root, max_pixels))
        if len(queue) >= window:
            yield queue.popleft().result()
    while queue:
        yield queue.popleft().result()
