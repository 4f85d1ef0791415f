"""The weights resolver: search order, sha256 checks, the missing-weights message, `mmgen models`."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from scene_graphs.perception import weights as W
from scene_graphs.perception.weights import (
    CATALOG,
    MissingWeightsError,
    WeightFile,
    WeightsMismatchError,
    WeightSpec,
    resolve,
)

SHARED = os.environ.get("MMGEN_WEIGHTS_DIR", "")
TFLITE = "yolo11n_int8.tflite"
TFLITE_SHA = "cd49cd708633a6a2378c433d9c55f9212485b5042dbddcead02eb2563ea387b7"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real cache, no downloads, no shared weights unless a test sets them."""
    monkeypatch.setenv("MMGEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MMGEN_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("MMGEN_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    W._sha_memory.clear()


SPEC = WeightSpec("toy", "detect", (WeightFile("toy.pt"), WeightFile("toy.onnx"),
                                     WeightFile("toy_int8.tflite", hashlib.sha256(b"good").hexdigest())),
                  "MIT", "https://example.org/toy", "a toy model", download="ultralytics:toy.pt")
NO_DOWNLOAD = WeightSpec("plain", "llm", (WeightFile("plain.gguf", "ab" * 32),), "MIT", "https://example.org", "x")


def _touch(folder: Path, name: str, content: bytes = b"good") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    return folder / name


def test_explicit_then_env_then_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env, cache = tmp_path / "env", tmp_path / "cache" / "weights"
    _touch(cache, "toy.onnx")
    assert resolve(SPEC, offline=True).origin == "cache"
    _touch(env, "toy_int8.tflite")
    monkeypatch.setenv("MMGEN_WEIGHTS_DIR", str(env))
    got = resolve(SPEC, offline=True)
    assert (got.origin, got.path, got.sha256) == ("env", env / "toy_int8.tflite", hashlib.sha256(b"good").hexdigest())
    mine = _touch(tmp_path / "mine", "anything.bin", b"mine")
    got = resolve(SPEC, mine, offline=True)
    assert (got.origin, got.path, got.file) == ("explicit", mine, None)
    assert got.sha256 == hashlib.sha256(b"mine").hexdigest()
    # an explicit folder is searched like the others
    _touch(tmp_path / "dir", "toy.pt")
    assert resolve(SPEC, tmp_path / "dir", offline=True).path == tmp_path / "dir" / "toy.pt"


def test_files_are_tried_in_order_of_preference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / "env"
    for name in ("toy_int8.tflite", "toy.onnx"):
        _touch(env, name)
    monkeypatch.setenv("MMGEN_WEIGHTS_DIR", str(env))
    assert resolve(SPEC, offline=True).path.name == "toy.onnx"
    _touch(env, "toy.pt")
    assert resolve(SPEC, offline=True).path.name == "toy.pt"


def test_sha256_mismatch_is_an_error_naming_both_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _touch(tmp_path / "env", "toy_int8.tflite", b"corrupt")
    monkeypatch.setenv("MMGEN_WEIGHTS_DIR", str(tmp_path / "env"))
    with pytest.raises(WeightsMismatchError) as info:
        resolve(SPEC, offline=True)
    assert hashlib.sha256(b"good").hexdigest() in str(info.value)
    assert hashlib.sha256(b"corrupt").hexdigest() in str(info.value)
    assert "toy_int8.tflite" in str(info.value)


def test_explicit_path_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="does not exist"):
        resolve(SPEC, tmp_path / "nope.pt", offline=True)


def test_missing_weights_message_names_files_sha_and_remedies() -> None:
    spec = CATALOG["yolo11n"]
    with pytest.raises(MissingWeightsError) as info:
        resolve(spec, offline=True)
    msg = str(info.value)
    assert "\n" not in msg
    for needle in ("yolo11n.pt", "yolo11n.onnx", TFLITE, TFLITE_SHA, "MMGEN_WEIGHTS_DIR",
                   str(W.cache_dir()), "--weights yolo11n=PATH", "offline", "AGPL-3.0"):
        assert needle in msg, needle


def test_download_only_when_allowed() -> None:
    got = resolve(SPEC, offline=False)
    assert (got.origin, got.ref, got.path) == ("download", "toy.pt", W.cache_dir() / "toy.pt")
    with pytest.raises(MissingWeightsError, match="offline mode"):
        resolve(SPEC, offline=True)
    with pytest.raises(MissingWeightsError, match="plain.gguf"):
        resolve(NO_DOWNLOAD, offline=False)  # no download route at all


@pytest.mark.parametrize("var, value, offline", [
    ("MMGEN_OFFLINE", "1", True), ("MMGEN_OFFLINE", "yes", True), ("MMGEN_OFFLINE", "0", False),
    ("HF_HUB_OFFLINE", "1", True),
])
def test_offline_from_environment(monkeypatch: pytest.MonkeyPatch, var: str, value: str, offline: bool) -> None:
    monkeypatch.setenv(var, value)
    assert W.offline_requested() is offline


def test_download_failure_becomes_missing_weights() -> None:
    got = resolve(SPEC, offline=False)
    err = W.download_failed(got, ConnectionError("no route to host"))
    assert isinstance(err, MissingWeightsError)
    assert "no route to host" in str(err) and "toy.pt" in str(err)


def test_sha_is_cached_by_path_size_and_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = _touch(tmp_path, "w.bin", b"one")
    assert W.file_sha256(f) == hashlib.sha256(b"one").hexdigest()
    cache = json.loads((W.cache_root() / W.SHA_CACHE_NAME).read_text())
    assert list(cache.values()) == [hashlib.sha256(b"one").hexdigest()]
    W._sha_memory.clear()
    calls = []
    real_open = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: calls.append(self) or real_open(self, *a, **k))
    assert W.file_sha256(f) == hashlib.sha256(b"one").hexdigest()
    assert f not in calls  # answered from the on-disk cache
    f.write_bytes(b"two!")  # new size and mtime: hashed again
    assert W.file_sha256(f) == hashlib.sha256(b"two!").hexdigest()


def test_bundled_rapidocr_models_are_found() -> None:
    pytest.importorskip("rapidocr")
    got = resolve("rapidocr-ppocr", offline=True)
    assert got.origin == "bundled"
    files = got.describe()["files"]
    assert set(files) == {f.name for f in CATALOG["rapidocr-ppocr"].files}
    assert all(len(v) == 64 for v in files.values())


def test_every_catalog_entry_is_complete() -> None:
    for name, spec in CATALOG.items():
        assert spec.name == name and spec.files and spec.license and spec.source.startswith("https://")
        for f in spec.files:
            assert f.sha256 is None or (len(f.sha256) == 64 and int(f.sha256, 16) >= 0)


@pytest.mark.skipif(not SHARED or not (Path(SHARED) / TFLITE).is_file(),
                    reason="MMGEN_WEIGHTS_DIR with the verified weights is not set")
def test_shared_weights_resolve_and_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMGEN_WEIGHTS_DIR", SHARED)
    got = resolve("yolo11n", offline=True)
    assert (got.origin, got.path.name) == ("env", TFLITE)
    assert got.sha256 == TFLITE_SHA == hashlib.sha256((Path(SHARED) / TFLITE).read_bytes()).hexdigest()
    seg = resolve("yolo11n-seg", offline=True)
    assert seg.sha256 == CATALOG["yolo11n-seg"].file(seg.path.name).sha256


# ------------------------------------------------------------------------------------ mmgen models
def test_models_command_table_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmgen.cli import main

    env = tmp_path / "env"
    _touch(env, "yolo11n.onnx")
    monkeypatch.setenv("MMGEN_WEIGHTS_DIR", str(env))
    runner = CliRunner()
    res = runner.invoke(main, ["models"])
    assert res.exit_code == 0, res.output
    for name, spec in CATALOG.items():
        assert name in res.output
        for f in spec.files:
            assert f.name in res.output
    assert TFLITE_SHA[:16] in res.output
    assert "yes (env: yolo11n.onnx)" in res.output

    res = runner.invoke(main, ["models", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    by_name = {m["model"]: m for m in data["models"]}
    assert set(by_name) == set(CATALOG)
    assert by_name["yolo11n"]["present"] and by_name["yolo11n"]["found"]["origin"] == "env"
    assert not by_name["depth-anything-v2-small"]["present"]
    assert by_name["yolo11n"]["files"][2] == {"name": TFLITE, "sha256": TFLITE_SHA, "bytes": 3026246,
                                              "format": "INT8 TFLite (LiteRT)"}


def test_models_command_reports_a_corrupt_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmgen.cli import main

    _touch(tmp_path / "env", TFLITE, b"not the model")
    monkeypatch.setenv("MMGEN_WEIGHTS_DIR", str(tmp_path / "env"))
    res = CliRunner().invoke(main, ["models", "--json"])
    entry = next(m for m in json.loads(res.output)["models"] if m["model"] == "yolo11n")
    assert not entry["present"] and TFLITE_SHA in entry["error"]
