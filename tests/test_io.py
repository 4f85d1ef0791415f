"""Reading and writing shards: atomic writes, JSONL errors with file:line, graph shards with depth
``.npz`` sidecars (bit-exact, never unpickled)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scene_graphs.io import (
    RecordError,
    atomic_write,
    depth_path,
    graph_files,
    iter_graphs,
    read_graphs,
    read_jsonl,
    write_graphs,
    write_jsonl,
)
from scene_graphs.model import Box, DepthMap, Object, SceneGraph, ValidationError
from tests import strategies as sgst


def _graph(image_id: str = "img0", depth: DepthMap | None = None, **kwargs: object) -> SceneGraph:
    fields = {"objects"} | ({"depth"} if depth is not None else set())
    return SceneGraph(image_id, 8, 6, objects=[Object("1", "dog", Box(1, 1, 4, 4))], depth=depth,
                      fields=fields, **kwargs)


def _depth(seed: int = 0, shape: tuple[int, int] = (3, 4), larger_is_nearer: bool = True) -> DepthMap:
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return DepthMap(values, larger_is_nearer)


# ----------------------------------------------------------------------------- atomic_write
class _Boom(RuntimeError):
    pass


def test_atomic_write_replaces_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.bin"  # parent folders are created
    with atomic_write(target) as f:
        f.write(b"first")
    with atomic_write(target) as f:
        f.write(b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


@pytest.mark.parametrize("exists", [True, False])
def test_atomic_write_failure_keeps_old_file_and_leaves_no_temp(tmp_path: Path, exists: bool) -> None:
    target = tmp_path / "out.jsonl"
    if exists:
        target.write_bytes(b"old content\n")
    with pytest.raises(_Boom):
        with atomic_write(target) as f:
            f.write(b"half of the new con")
            f.flush()
            raise _Boom("writer died mid-way")
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out.jsonl"] if exists else [])
    if exists:
        assert target.read_bytes() == b"old content\n"


def test_atomic_write_gives_normal_permissions(tmp_path: Path) -> None:
    """A shard is as readable as a file made with open() (mkstemp alone would make it owner-only)."""
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    with atomic_write(tmp_path / "atomic") as f:
        f.write(b"x")
    assert stat.S_IMODE((tmp_path / "atomic").stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_write_jsonl_failing_generator_leaves_old_file(tmp_path: Path) -> None:
    target = tmp_path / "records.jsonl"
    write_jsonl(target, [{"a": 1}])

    def records():
        yield {"a": 2}
        raise _Boom("upstream failed")

    with pytest.raises(_Boom):
        write_jsonl(target, records())
    assert list(read_jsonl(target)) == [{"a": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["records.jsonl"]


# ----------------------------------------------------------------------------- JSONL
def test_jsonl_round_trip_skips_blank_lines(tmp_path: Path) -> None:
    records = [{"a": 1, "b": [1.5, None, "é"]}, [1, 2], "text", 3]
    path = tmp_path / "r.jsonl"
    assert write_jsonl(path, records) == 4
    path.write_bytes(path.read_bytes() + b"\n  \n")
    assert list(read_jsonl(path)) == records
    assert write_jsonl(tmp_path / "numpy.jsonl", [{"v": np.arange(3), "f": np.float32(0.5)}]) == 1
    assert list(read_jsonl(tmp_path / "numpy.jsonl")) == [{"v": [0, 1, 2], "f": 0.5}]


@pytest.mark.parametrize("bad_line", [b'{"a": 1', b"not json", b'{"a": NaN}', b'"\xff\xfe"'])
def test_malformed_line_names_file_and_line(tmp_path: Path, bad_line: bytes) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a": 1}\n\n' + bad_line + b'\n{"a": 2}\n')  # the bad line is line 3
    reader = read_jsonl(path)
    assert next(reader) == {"a": 1}
    with pytest.raises(RecordError) as info:
        next(reader)
    assert info.value.source == f"{path}:3"
    assert str(info.value).startswith(f"{path}:3: malformed JSON")


def test_malformed_graph_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    write_graphs(path, [_graph("a"), _graph("b")])
    path.write_bytes(path.read_bytes() + b'{"version": 1, "image_id": \n')
    with pytest.raises(RecordError) as info:
        list(read_graphs(path))
    assert info.value.source == f"{path}:3"


def test_invalid_graph_names_file_line_image_and_field(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    good, bad = _graph("a").to_dict(), _graph("b").to_dict()
    bad["objects"][0]["box"] = [5.0, 1.0, 1.0, 4.0]
    write_jsonl(path, [good, bad])
    with pytest.raises(RecordError) as info:
        list(read_graphs(path))
    err = info.value
    assert isinstance(err, ValidationError)
    assert (err.source, err.where) == (f"{path}:2 (image b)", "objects[0].box")


# ----------------------------------------------------------------------------- graph shards
@given(st.lists(sgst.scene_graphs(max_objects=4), max_size=4, unique_by=lambda g: g.image_id))
def test_graph_shard_round_trip(graphs: list[SceneGraph]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "part-00000.jsonl"
        assert write_graphs(path, graphs) == len(graphs)
        assert depth_path(path).exists() == any(g.depth is not None for g in graphs)
        back = list(read_graphs(path))
    assert [g.to_dict() for g in back] == [g.to_dict() for g in graphs]
    for before, after in zip(graphs, back, strict=True):
        assert (before.depth is None) == (after.depth is None)
        if before.depth is not None:
            assert after.depth.larger_is_nearer is before.depth.larger_is_nearer
            assert after.depth.values.dtype == np.float32
            assert after.depth.values.tobytes() == before.depth.values.tobytes()  # bit-exact
            assert not after.depth.values.flags.writeable


@pytest.mark.parametrize("image_id", ["file", "allow_pickle", "arr_0", "a/b/c", "/abs", "x.npy", "ünï cödé", "-1",
                                      "\x00", "a\x00b"])
def test_depth_keys_that_look_special(tmp_path: Path, image_id: str) -> None:
    """Image ids are arbitrary strings; none may clash with the .npz writer's own arguments or naming
    (zip member names end at NUL, so two ids differing after a NUL must not collide)."""
    depth = _depth(7)
    graphs = [_graph(image_id, depth), _graph(image_id + "\x00z", _depth(9)), _graph("other", _depth(8))]
    path = tmp_path / "g.jsonl"
    write_graphs(path, graphs)
    back = list(read_graphs(path))
    assert [g.image_id for g in back] == [g.image_id for g in graphs]
    for before, after in zip(graphs, back, strict=True):
        assert np.array_equal(before.depth.values, after.depth.values)
    keys = [record["depth"]["key"] for record in read_jsonl(path)]
    assert len(set(keys)) == 3
    with np.load(depth_path(path), allow_pickle=False) as npz:  # a plain .npz for numpy
        assert sorted(npz.files) == sorted(keys)
    if "\x00" not in image_id:
        assert keys[0] == image_id  # readable ids are used as they are


def test_missing_depth_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    write_graphs(path, [_graph("a", _depth())])
    depth_path(path).unlink()
    with pytest.raises(RecordError) as info:
        list(read_graphs(path))
    assert info.value.where == "depth"
    assert str(depth_path(path)) in str(info.value) and f"{path}:1" in str(info.value)


def test_depth_key_missing_from_npz(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    write_graphs(path, [_graph("a", _depth())])
    record = next(read_jsonl(path))
    record["depth"]["key"] = "someone-else"
    write_jsonl(path, [record])
    with pytest.raises(RecordError) as info:
        list(read_graphs(path))
    assert info.value.where == "depth.key" and "someone-else" in str(info.value)


_SENTINEL = Path(tempfile.gettempdir()) / f"mmgen-test-unpickled-{os.getpid()}"


def _mark_unpickled(path: str) -> str:
    Path(path).write_text("unpickled!")
    return "payload"


class _Payload:
    """Unpickling this runs _mark_unpickled: proof that a reader unpickled data it should not have."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (_mark_unpickled, (str(_SENTINEL),))


def test_depth_npz_with_object_array_is_refused_not_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    write_graphs(path, [_graph("a", _depth())])
    evil = np.empty((2, 2), dtype=object)
    evil[0, 0] = _Payload()
    _SENTINEL.unlink(missing_ok=True)
    np.savez(depth_path(path), a=evil, allow_pickle=True)
    with pytest.raises(RecordError) as info:
        list(read_graphs(path))
    assert not _SENTINEL.exists(), "the reader unpickled the depth file"
    assert str(depth_path(path)) in str(info.value)


def test_corrupt_depth_file_is_a_record_error(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    write_graphs(path, [_graph("a", _depth())])
    depth_path(path).write_bytes(b"this is not a zip file")
    with pytest.raises(RecordError) as info:
        list(read_graphs(path))
    assert str(depth_path(path)) in str(info.value)


def test_false_depth_flag_survives(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    write_graphs(path, [_graph("a", _depth(larger_is_nearer=False))])
    back = next(read_graphs(path))
    assert back.depth.larger_is_nearer is False  # a False flag survives (not coerced to the default)


def test_rewrite_without_depth_removes_stale_npz(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    write_graphs(path, [_graph("a", _depth())])
    assert depth_path(path).exists()
    write_graphs(path, [_graph("a")])
    assert not depth_path(path).exists()
    assert next(read_graphs(path)).depth is None


def test_duplicate_image_id_with_depth_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="two graphs with image id 'a'"):
        write_graphs(tmp_path / "g.jsonl", [_graph("a", _depth(1)), _graph("a", _depth(2))])
    assert list(tmp_path.iterdir()) == []


def test_failing_graph_source_writes_nothing(tmp_path: Path) -> None:
    def graphs():
        yield _graph("a", _depth())
        raise _Boom("annotator crashed")

    with pytest.raises(_Boom):
        write_graphs(tmp_path / "g.jsonl", graphs())
    assert list(tmp_path.iterdir()) == []


def test_iter_graphs_over_a_folder(tmp_path: Path) -> None:
    write_graphs(tmp_path / "b" / "part-00001.jsonl", [_graph("b1"), _graph("b2", _depth())])
    write_graphs(tmp_path / "a" / "part-00000.jsonl", [_graph("a1")])
    write_graphs(tmp_path / "b" / "part-00000.jsonl", [_graph("b0")])
    (tmp_path / "b" / ".part-00002.jsonl.abc.tmp").write_bytes(b"garbage")  # a writer's leftover
    (tmp_path / ".hidden.jsonl").write_bytes(b"garbage")
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "b" / "errors.jsonl").write_text('{"path": "x.jpg", "error": "corrupt"}\n')  # not a shard
    assert [p.relative_to(tmp_path).as_posix() for p in graph_files(tmp_path)] == [
        "a/part-00000.jsonl", "b/part-00000.jsonl", "b/part-00001.jsonl"]
    assert [g.image_id for g in iter_graphs(tmp_path)] == ["a1", "b0", "b1", "b2"]
    assert [g.image_id for g in iter_graphs(tmp_path / "b" / "part-00001.jsonl")] == ["b1", "b2"]
    with pytest.raises(FileNotFoundError):
        graph_files(tmp_path / "nope")


def test_shard_lines_are_plain_json_objects(tmp_path: Path) -> None:
    """Other tools (jq, pandas) can read a shard: one JSON object per line, depth only as a header."""
    path = tmp_path / "g.jsonl"
    write_graphs(path, [_graph("a", _depth()), _graph("b")])
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2
    first = orjson.loads(lines[0])
    assert first["depth"] == {"key": "a", "larger_is_nearer": True, "height": 3, "width": 4}
    assert orjson.loads(lines[1])["depth"] is None
