"""The engine: one way to run every stage over shards, locally (in-process or a process pool) or on Ray.

See :mod:`mmgen.engine.core` for the guarantees (atomic shards, completion markers, resuming after
``kill -9``, ranks, bounded memory) and :mod:`mmgen.stages.annotate` for the annotate stage.
A new stage (an LLM pass, a curation filter...) subclasses :class:`Stage` and :class:`ShardWorker`
and calls :func:`run_stage`.
"""

from .core import (
    DUPLICATE,
    ERRORS,
    MANIFEST,
    SUMMARY,
    EngineError,
    EngineOptions,
    Plan,
    RunSummary,
    ShardFiles,
    ShardJob,
    ShardOutcome,
    ShardSpec,
    ShardWorker,
    Stage,
    execute_shard,
    fingerprint,
    marker_path,
    parse_shard,
    run_local,
    run_stage,
    shard_name,
)
from ..store.folder import MARKER_SUFFIX

from . import ray_data  # noqa: E402,F401 - registers the ray engine (Ray itself is imported only when used)

__all__ = [
    "DUPLICATE", "ERRORS", "MANIFEST", "MARKER_SUFFIX", "SUMMARY", "EngineError", "EngineOptions", "Plan",
    "RunSummary", "ShardFiles", "ShardJob", "ShardOutcome", "ShardSpec", "ShardWorker", "Stage", "execute_shard",
    "fingerprint", "marker_path", "parse_shard", "run_local", "run_stage", "shard_name",
]
