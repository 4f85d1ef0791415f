"""Image ids: stable hashes of the path relative to the input root; content hashes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scene_graphs.ids import ID_LENGTH, file_sha256, image_id, relative_key

PATHS = ["img.jpg", "a/img.jpg", "b/img.jpg", "a/b/c/d.png", "ünï cödé/写真.jpg", "x y/z.JPG"]


def test_ids_are_short_lowercase_hex_and_deterministic(tmp_path: Path) -> None:
    ids = [image_id(tmp_path / p, tmp_path) for p in PATHS]
    assert all(len(i) == ID_LENGTH and set(i) <= set("0123456789abcdef") for i in ids)
    assert ids == [image_id(tmp_path / p, tmp_path) for p in PATHS]
    assert len(set(ids)) == len(ids), "different relative paths must get different ids"


def test_same_basename_in_different_folders_differs(tmp_path: Path) -> None:
    assert image_id(tmp_path / "a" / "img.jpg", tmp_path) != image_id(tmp_path / "b" / "img.jpg", tmp_path)
    assert relative_key(tmp_path / "a" / "img.jpg", tmp_path) == "a/img.jpg"


def test_ids_are_stable_across_processes_and_hash_seeds() -> None:
    """No dependence on Python's randomised str hash (PYTHONHASHSEED) or on the process."""
    code = ("import json, sys; from scene_graphs.ids import image_id; "
            "print(json.dumps([image_id(p, '/data') for p in json.loads(sys.argv[1])]))")
    paths = [f"/data/{p}" for p in PATHS]
    expected = [image_id(p, "/data") for p in paths]
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code, json.dumps(paths)], env=env, capture_output=True,
                             text=True, check=True, timeout=60)
        assert json.loads(out.stdout) == expected


def test_moving_the_root_keeps_ids(tmp_path: Path) -> None:
    old, new = tmp_path / "old_root", tmp_path / "elsewhere" / "new_root"
    for p in PATHS:
        assert image_id(old / p, old) == image_id(new / p, new)


@pytest.mark.parametrize("path, root", [
    ("data/a/img.jpg", "data"),
    ("./data/a/img.jpg", "data/"),
    ("data/x/../a/img.jpg", "./data"),
    ("data//a/./img.jpg", "data"),
])
def test_equivalent_spellings_give_the_same_id(path: str, root: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert relative_key(path, root) == "a/img.jpg"
    assert image_id(path, root) == image_id(tmp_path / "data" / "a" / "img.jpg", tmp_path / "data")


@pytest.mark.parametrize("path, root", [
    ("/data/img.jpg", "/data/images"),
    ("/data/images2/img.jpg", "/data/images"),  # shares a string prefix with the root, but is outside
    ("/data/images/../img.jpg", "/data/images"),
    ("/data/images", "/data/images/sub"),
])
def test_paths_outside_the_root_are_refused(path: str, root: str) -> None:
    with pytest.raises(ValueError, match="not inside the input root"):
        image_id(path, root)


def test_non_utf8_file_names(tmp_path: Path) -> None:
    """File names that are not UTF-8 (Latin-1 from old archives) get ids from their raw bytes."""
    names = [b"caf\xe9.jpg", b"caf\xc3\xa9.jpg", b"\xff\xfe.png"]  # Latin-1 e-acute, UTF-8 e-acute, junk
    for name in names:
        fd = os.open(os.path.join(os.fsencode(tmp_path), name), os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(fd)
    listed = sorted(os.listdir(tmp_path))  # str names; undecodable bytes come back as surrogate escapes
    ids = {name: image_id(tmp_path / name, tmp_path) for name in listed}
    assert len(set(ids.values())) == len(names)
    for name in listed:
        assert os.fsencode(relative_key(tmp_path / name, tmp_path)) == os.fsencode(name)
        # the bytes spelling of the same path gives the same id
        assert image_id(os.fsencode(tmp_path / name), os.fsencode(tmp_path)) == ids[name]
    assert image_id(tmp_path / "café.jpg", tmp_path) == ids["café.jpg"]


def test_without_root_the_normalised_path_is_the_key() -> None:
    assert relative_key("a/./b/../img.jpg") == "a/img.jpg"
    assert image_id("a/./b/../img.jpg") == image_id("a/img.jpg")
    assert image_id("a/img.jpg") != image_id("a/img.jpg", "a")


@pytest.mark.parametrize("size", [0, 1, 1000, 3 * 64 + 5])
def test_file_sha256_matches_hashlib(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert file_sha256(path, chunk_size=64) == hashlib.sha256(data).hexdigest()
    assert file_sha256(str(path)) == hashlib.sha256(data).hexdigest()
