"""mmgen.store.graphs: the one tolerant graph-shard reader and depth loader behind generate, generate --multi
and the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmgen.store.graphs import DepthFiles, graph_at, read_graphs_tolerant
from scene_graphs.io import RecordError, depth_path, read_graphs, write_graphs
from scene_graphs.synthetic import random_graph


@pytest.fixture()
def shard(tmp_path: Path) -> Path:
    rng = np.random.default_rng(4)
    graphs = [random_graph(rng, f"g{i}", depth=i % 2 == 0, masks=False) for i in range(6)]
    path = tmp_path / "part-00000.jsonl"
    write_graphs(path, graphs)
    return path


def test_reads_what_the_strict_reader_reads(shard: Path) -> None:
    strict = list(read_graphs(shard))
    tolerant = list(read_graphs_tolerant(shard))
    assert [g.to_dict() for g in tolerant] == [g.to_dict() for g in strict]
    assert any(g.depth is not None for g in tolerant)
    assert [g.image_id for g in read_graphs_tolerant(shard, limit=2)] == ["g0", "g1"]
    offsets, pos = [], 0
    for line in shard.read_bytes().splitlines(keepends=True):
        offsets.append(pos)
        pos += len(line)
    with DepthFiles() as depths:
        for g, off in zip(strict, offsets):
            got = graph_at(shard, off, g.image_id, depths)
            assert got.to_dict() == g.to_dict()
            assert (got.depth is None) == (g.depth is None)
        with pytest.raises(RecordError, match="another image"):
            graph_at(shard, offsets[1], "g0", depths)


def test_bad_records_become_errors_and_the_rest_goes_on(shard: Path) -> None:
    lines = shard.read_bytes().splitlines(keepends=True)
    shard.write_bytes(lines[0] + b"{not json\n" + b"[1, 2]\n" + b"".join(lines[1:]))
    out = list(read_graphs_tolerant(shard))
    errors = [r for r in out if isinstance(r, RecordError)]
    assert [e.source for e in errors] == [f"{shard}:2", f"{shard}:3"]
    assert "malformed JSON" in errors[0].message and "JSON object" in errors[1].message
    assert len(out) - len(errors) == 6
    depth_path(shard).write_bytes(b"not a zip")  # every graph with a depth map is now unreadable
    out = list(read_graphs_tolerant(shard))
    broken = [r for r in out if isinstance(r, RecordError) and r.where == "depth"]
    assert len(broken) == 3 and all("cannot read depth maps" in e.message and "(image g" in e.source for e in broken)
    assert sum(not isinstance(r, RecordError) for r in out) == 3
