"""The store: the one layer that knows how stage folders are laid out and read.

* :mod:`~mmgen.store.folder`: :class:`StageFolder`, one stage's output folder (shards, manifest,
  completion markers, errors, summary, dropped records; what it holds from what it holds) and
  :func:`qa_shards`, the one way to list record shards;
* :mod:`~mmgen.store.graphs`: the tolerant graph reader, the one depth loader, the offset scan and
  :class:`GraphStore` (graphs by image id);
* :mod:`~mmgen.store.output`: :class:`Output`, a whole output folder opened for reading with an
  offset index (``mmgen.open``: the viewer, stats and inspect read through it);
* :mod:`~mmgen.store.paths`: :func:`safe_join`, untrusted relative paths inside a root.

The engine (:mod:`mmgen.engine`) writes stage folders through the names defined here; stages read
their inputs through it.
"""

from __future__ import annotations

from .folder import (DROPPED, ERRORS, MANIFEST, SUMMARY, StageFolder, limit_shards, marker_path, qa_shards, read_json,
                     shard_name, write_json)
from .graphs import DepthFiles, GraphStore, graph_at, read_graphs_tolerant, scan_records
from .output import STATUSES, ImageInfo, Output, QASource, StringColumn, open_output
from .paths import safe_join

__all__ = ["DROPPED", "ERRORS", "MANIFEST", "STATUSES", "SUMMARY", "DepthFiles", "GraphStore", "ImageInfo", "Output",
           "QASource", "StageFolder", "StringColumn", "graph_at", "limit_shards", "marker_path", "open_output", "qa_shards",
           "read_graphs_tolerant", "read_json", "safe_join", "scan_records", "shard_name", "write_json"]
