"""Input listing and the on-disk index (mmgen.inputs): sources, roots and ids, sorting, duplicates,
hashing only what can be a duplicate, reusing hashes, problems found while listing."""

from __future__ import annotations

import os
import shutil
import string
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmgen.inputs import InputSource, build_index, external_sort, file_digest
from scene_graphs.ids import image_id
from tests.test_engine_fakes import make_images


def _index(folder: Path) -> list[dict]:
    return [orjson.loads(line) for line in (folder / "inputs.jsonl").read_bytes().splitlines()]


def _problems(folder: Path) -> list[dict]:
    return [orjson.loads(line) for line in (folder / "inputs.errors.jsonl").read_bytes().splitlines()]


@pytest.fixture
def images(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    make_images(root, 6)
    (root / "notes.txt").write_text("not listed: no image extension")
    (root / ".cache").mkdir()
    shutil.copy(root / "d0" / "img0000.png", root / ".cache" / "hidden.png")
    shutil.copy(root / "d1" / "img0001.png", root / "UPPER.PNG")
    return root


def test_folder_is_listed_sorted_with_extensions_any_case_and_no_hidden_files(images: Path, tmp_path: Path) -> None:
    index = build_index(InputSource.parse(images), tmp_path / "out")
    paths = [e["path"] for e in _index(tmp_path / "out")]
    assert paths == ["UPPER.PNG", "d0/img0000.png", "d0/img0003.png", "d1/img0001.png", "d1/img0004.png",
                     "d2/img0002.png", "d2/img0005.png"]
    assert paths == sorted(paths) and index.count == 7
    assert [e.path for e in index] == paths
    entry = _index(tmp_path / "out")[1]
    assert entry["size"] == (images / "d0/img0000.png").stat().st_size
    assert entry["mtime_ns"] == (images / "d0/img0000.png").stat().st_mtime_ns
    assert InputSource.parse(images).root == images


def test_list_file_and_glob_and_single_file(images: Path, tmp_path: Path) -> None:
    listing = images / "list.txt"
    listing.write_text(f"# a comment\nd1/img0004.png\n\n{images / 'd0' / 'img0000.png'}\nnotes.txt\nd1/img0004.png\n"
                       f"missing.png\n{tmp_path / 'elsewhere.png'}\n")
    src = InputSource.parse(listing)
    assert (src.kind, src.root) == ("list", images)
    build_index(src, tmp_path / "a")
    assert [e["path"] for e in _index(tmp_path / "a")] == ["d0/img0000.png", "d1/img0004.png", "notes.txt"]
    problems = _problems(tmp_path / "a")  # sorted by path
    assert [(p["path"], p["kind"]) for p in problems] == [
        (str(tmp_path / "elsewhere.png"), "outside-root"), ("missing.png", "missing")]
    assert "--root" in problems[0]["error"]

    pattern = str(images / "**" / "img000[0-3].png")
    src = InputSource.parse(pattern)
    assert (src.kind, src.root) == ("glob", images)
    build_index(src, tmp_path / "b")
    assert [e["path"] for e in _index(tmp_path / "b")] == ["d0/img0000.png", "d0/img0003.png", "d1/img0001.png",
                                                         "d2/img0002.png"]
    src = InputSource.parse(images / "d2" / "img0002.png", root=images)
    build_index(src, tmp_path / "c")
    assert [e["path"] for e in _index(tmp_path / "c")] == ["d2/img0002.png"]
    with pytest.raises(FileNotFoundError, match="no image folder"):
        InputSource.parse(tmp_path / "nothing-here")


def test_ids_are_relative_to_the_root_not_the_basename(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        make_images(tmp_path / "imgs" / sub, 1, seed=ord(sub))
    build_index(InputSource.parse(tmp_path / "imgs"), tmp_path / "out")
    paths = [e["path"] for e in _index(tmp_path / "out")]
    assert paths == ["a/d0/img0000.png", "b/d0/img0000.png"]
    assert len({image_id(p) for p in paths}) == 2


def test_duplicates_keep_the_first_in_sorted_order_and_only_same_size_files_are_hashed(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    make_images(root, 3, size=(20, 20))
    shutil.copy(root / "d1" / "img0001.png", root / "a_copy.png")        # sorts first: it is the one kept
    shutil.copy(root / "d1" / "img0001.png", root / "d2" / "zz.png")
    (root / "big.png").write_bytes(b"x" * 5000)                           # a size nobody shares
    hashed: list[str] = []

    def digest(path: str | os.PathLike[str]) -> bytes:
        hashed.append(Path(path).name)
        return file_digest(path)

    index = build_index(InputSource.parse(root), tmp_path / "out", digest=digest)
    entries = {e["path"]: e for e in _index(tmp_path / "out")}
    assert "big.png" not in hashed and "sha256" not in entries["big.png"]
    assert entries["d1/img0001.png"]["duplicate_of"] == "a_copy.png"
    assert entries["d2/zz.png"]["duplicate_of"] == "a_copy.png"
    assert "duplicate_of" not in entries["a_copy.png"] and "duplicate_of" not in entries["d0/img0000.png"]
    assert entries["a_copy.png"]["sha256"] == file_digest(root / "a_copy.png").hex()
    sizes = {p.name: p.stat().st_size for p in root.rglob("*.png")}
    shared = sorted(n for n, size in sizes.items() if list(sizes.values()).count(size) > 1)
    assert sorted(hashed) == shared and {"a_copy.png", "img0001.png", "zz.png"} <= set(shared)
    assert index.meta["duplicates"] == 2 and index.meta["hashed"] == len(hashed)

    # a rerun reuses the hashes of unchanged files; a touched file is hashed again
    hashed.clear()
    os.utime(root / "d2" / "zz.png", ns=(1, 1))
    again = build_index(InputSource.parse(root), tmp_path / "out", digest=digest)
    assert hashed == ["zz.png"] and again.meta["hashes_reused"] == len(shared) - 1
    assert _index(tmp_path / "out")[-1]["duplicate_of"] == "a_copy.png"


def test_shard_keys_do_not_change_when_a_new_file_makes_an_old_one_hashed(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    (root).mkdir()
    (root / "a.png").write_bytes(b"a" * 100)
    (root / "b.png").write_bytes(b"b" * 200)
    keys = [k for _, _, k in build_index(InputSource.parse(root), tmp_path / "out").shards(1)]
    (root / "c.png").write_bytes(b"c" * 200)  # same size as b.png: b.png is hashed now
    later = build_index(InputSource.parse(root), tmp_path / "out")
    assert "sha256" in _index(tmp_path / "out")[1]
    assert [k for _, _, k in later.shards(1)][:2] == keys
    (root / "d.png").write_bytes(b"a" * 100)  # a duplicate of a.png: a.png's shard stays, d.png is marked
    third = build_index(InputSource.parse(root), tmp_path / "out")
    assert [k for _, _, k in third.shards(1)][:2] == keys and third.meta["duplicates"] == 1


def test_symlink_loops_and_non_utf8_names_are_reported_not_fatal(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    make_images(root, 2)
    os.symlink("self.png", root / "self.png")                  # a link to itself
    os.symlink("..", root / "d0" / "up")                       # a folder link back up the tree
    os.symlink(root / "d1", root / "linked")                   # a folder link elsewhere: followed
    os.symlink("gone.png", root / "dangling.png")
    bad = os.fsencode(root) + b"/caf\xe9.png"                  # Latin-1 bytes: not UTF-8
    with open(bad, "wb") as f:
        f.write(b"whatever")
    build_index(InputSource.parse(root), tmp_path / "out")
    assert [e["path"] for e in _index(tmp_path / "out")] == ["d0/img0000.png", "d1/img0001.png",
                                                           "linked/img0001.png"]
    problems = {p["path"]: p["kind"] for p in _problems(tmp_path / "out")}
    assert problems == {"self.png": "symlink-loop", "d0/up": "symlink-loop", "dangling.png": "missing",
                        "caf\\xe9.png": "non-utf8-name"}
    assert all(p["stage"] == "list" for p in _problems(tmp_path / "out"))


def test_limit_takes_the_first_images_in_sorted_order(images: Path, tmp_path: Path) -> None:
    index = build_index(InputSource.parse(images), tmp_path / "out", limit=3)
    assert [e.path for e in index] == ["UPPER.PNG", "d0/img0000.png", "d0/img0003.png"]


def test_index_reads_back_shard_by_shard(images: Path, tmp_path: Path) -> None:
    index = build_index(InputSource.parse(images), tmp_path / "out")
    shards = list(index.shards(3))
    assert [count for _, count, _ in shards] == [3, 3, 1]
    assert [e.path for o, c, _ in shards for e in index.read(o, c)] == [e.path for e in index]


names = st.text(alphabet=string.ascii_letters + "/-_ .é中", min_size=1, max_size=12)


@given(st.lists(st.tuples(names, st.integers(0, 10**9), st.integers(0, 10**18)), max_size=60),
       st.integers(1, 7))
def test_external_sort_matches_sorting_in_memory(tmp_path_factory: pytest.TempPathFactory, rows: list, chunk: int) -> None:
    tmp = tmp_path_factory.mktemp("sort")
    got = list(external_sort(iter(rows), tmp, chunk_size=chunk))
    firsts: dict[str, tuple] = {}
    for r in sorted(rows, key=lambda r: r[0]):
        firsts.setdefault(r[0], r)
    assert [r[0] for r in got] == sorted(firsts)
    assert len(got) == len({r[0] for r in rows})
    assert not list(tmp.iterdir())  # the runs on disk are removed
