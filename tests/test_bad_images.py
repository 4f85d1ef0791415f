"""Bad and unusual input through the whole annotate stage: every bad file is skipped with its reason in
errors.jsonl and the run goes on (exit 0 with a count; 1 under --strict); unusual but valid images
(CMYK, 16-bit, palette, alpha, EXIF rotation, animated GIF) give graphs in the frame people see.

One annotate run over a folder holding every case (a fast stand-in detector, see
``tests/test_engine_fakes.py``) is checked case by case.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mmgen.stages.annotate import annotate
from scene_graphs.ids import image_id
from scene_graphs.io import read_graphs, read_jsonl
from tests.test_engine_fakes import fake_pipeline


def _encode(im: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _rgb(w: int = 32, h: int = 24, colour: tuple[int, int, int] = (200, 30, 30)) -> Image.Image:
    rng = np.random.default_rng(sum(colour) + w)
    a = np.clip(np.array(colour) + rng.integers(-20, 20, size=(h, w, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(a)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


def _cmyk() -> bytes:
    return _encode(_rgb(colour=(30, 40, 210)).convert("CMYK"), "JPEG", quality=95)


def _grey16() -> bytes:
    return _encode(Image.fromarray(np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 80), "PNG")


def _palette() -> bytes:
    im = Image.new("P", (30, 20))
    im.putpalette([0, 0, 0, 20, 200, 20] + [0] * (256 * 3 - 6))
    for x in range(10, 30):
        for y in range(20):
            im.putpixel((x, y), 1)
    return _encode(im, "PNG", transparency=0)


def _alpha() -> bytes:
    return _encode(Image.new("RGBA", (16, 16), (10, 220, 10, 200)), "PNG")


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40 wide x 20 high, shown turned: 20 wide x 40 high
    return _encode(_rgb(40, 20), "JPEG", quality=90, exif=exif.tobytes())


def _animated() -> bytes:
    frames = [Image.new("RGB", (12, 12), c) for c in ((250, 10, 10), (10, 10, 250))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def _truncated(fmt: str) -> bytes:
    data = _encode(_rgb(64, 48), fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return data[: len(data) // 2]


def _corrupt_png() -> bytes:
    data = bytearray(_encode(_rgb(64, 48), "PNG"))
    start = data.index(b"IDAT") + 8
    data[start:start + 40] = bytes(40)  # zeros in the middle of the compressed pixels
    return bytes(data)


OK = "ok"
# file name -> (bytes, expected kind or OK, stage)
CASES: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "plain.png": (lambda: _encode(_rgb(), "PNG"), OK, ""),
    "cmyk.jpg": (_cmyk, OK, ""),
    "grey16.png": (_grey16, OK, ""),
    "palette.png": (_palette, OK, ""),
    "alpha.png": (_alpha, OK, ""),
    "exif_rotated.jpg": (_exif_rotated, OK, ""),
    "animated.gif": (_animated, OK, ""),
    "corrupt.png": (_corrupt_png, "corrupt", "decode"),
    "truncated.jpg": (lambda: _truncated("JPEG"), "corrupt", "decode"),
    "truncated.png": (lambda: _truncated("PNG"), "corrupt", "decode"),
    "zero.png": (lambda: b"", "empty", "decode"),
    "text.jpg": (lambda: b"Dear diary, today I pretended to be a JPEG.\n" * 20, "not-an-image", "decode"),
    "bomb.png": (lambda: _png_header_only(30000, 30000), "too-large", "decode"),
    "locked.png": (lambda: _encode(_rgb(), "PNG"), "unreadable", "decode"),
}
LOCKED = "locked.png"
SPECIAL = {"loop.png": ("symlink-loop", "list"), "caf\\xe9.png": ("non-utf8-name", "list"),
           "zz_copy.png": ("duplicate", "dedup")}


def _build(folder: Path) -> None:
    folder.mkdir()
    for name, (make, _, _) in CASES.items():
        (folder / name).write_bytes(make())
    os.symlink("loop.png", folder / "loop.png")
    with open(os.fsencode(folder) + b"/caf\xe9.png", "wb") as f:  # a Latin-1 name: not UTF-8
        f.write(_encode(_rgb(), "PNG"))
    shutil.copy(folder / "plain.png", folder / "zz_copy.png")


def _deny(name: str) -> Any:
    """``open`` that refuses ``name`` as a file without read permission would (tests run as root)."""
    real = builtins.open

    def guarded(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, os.PathLike)) and os.fspath(file).endswith(os.sep + name):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real(file, *args, **kwargs)

    return guarded


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("bad")
    images, out = root / "imgs", root / "sg"
    _build(images)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(builtins, "open", _deny(LOCKED))
        summary = annotate(images, out, factory=fake_pipeline, shard_size=4)
    graphs = {g.path: g for p in sorted(out.glob("part-*.jsonl")) for g in read_graphs(p)}
    errors = {e["path"]: e for e in read_jsonl(out / "errors.jsonl")}
    return {"images": images, "out": out, "summary": summary, "graphs": graphs, "errors": errors}


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c[1] != OK])
def test_bad_file_is_skipped_with_its_reason(run: dict[str, Any], name: str) -> None:
    _, kind, stage = CASES[name]
    err = run["errors"][name]
    assert (err["kind"], err["stage"], err["image_id"]) == (kind, stage, image_id(name))
    assert name in err["error"] and "\n" not in err["error"]
    assert name not in run["graphs"]


@pytest.mark.parametrize("name", sorted(SPECIAL))
def test_listing_problems_and_duplicates_are_reported(run: dict[str, Any], name: str) -> None:
    kind, stage = SPECIAL[name]
    err = run["errors"][name]
    assert (err["kind"], err["stage"]) == (kind, stage)
    if kind == "duplicate":
        assert (err["duplicate_of"], err["duplicate_of_id"]) == ("plain.png", image_id("plain.png"))


@pytest.mark.parametrize("name, source_mode, size", [
    ("plain.png", "RGB", (32, 24)),
    ("cmyk.jpg", "CMYK", (32, 24)),
    ("grey16.png", "I;16", (32, 24)),
    ("palette.png", "P", (30, 20)),
    ("alpha.png", "RGBA", (16, 16)),
    ("exif_rotated.jpg", "RGB", (20, 40)),   # turned by its EXIF orientation
    ("animated.gif", "P", (12, 12)),
])
def test_unusual_images_give_graphs(run: dict[str, Any], name: str, source_mode: str, size: tuple[int, int]) -> None:
    g = run["graphs"][name]
    assert (g.width, g.height) == size and g.image_id == image_id(name)
    assert g.meta["source_mode"] in {source_mode, "I"} if source_mode == "I;16" else g.meta["source_mode"] == source_mode
    assert g.sha256 == hashlib.sha256((run["images"] / name).read_bytes()).hexdigest()


@pytest.mark.parametrize("name, label", [
    ("animated.gif", "apple"),   # the first frame is red (the second, blue, would say "car")
    ("cmyk.jpg", "car"),         # blue survives the CMYK round trip
    ("palette.png", "leaf"),     # transparent black became white, the opaque half is green
    ("alpha.png", "leaf"),
])
def test_pixels_are_decoded_as_seen(run: dict[str, Any], name: str, label: str) -> None:
    assert run["graphs"][name].objects[0].label == label


def test_exif_orientation_is_recorded(run: dict[str, Any]) -> None:
    assert run["graphs"]["exif_rotated.jpg"].meta["exif_orientation"] == 6


def test_the_run_goes_on_and_counts_every_reason(run: dict[str, Any]) -> None:
    s = run["summary"]
    expected = {}
    for _, kind, _ in CASES.values():
        if kind != OK:
            expected[kind] = expected.get(kind, 0) + 1
    for kind, _ in SPECIAL.values():
        expected[kind] = expected.get(kind, 0) + 1
    assert s["skipped"] == dict(sorted(expected.items()))
    assert s["graphs"] == sum(c[1] == OK for c in CASES.values()) == len(run["graphs"])
    assert s["errors"] == len(run["errors"]) == sum(expected.values())
    assert s.bad_inputs == s["errors"] - 1  # the duplicate is reported, not held against the input
    assert s["complete"] and not s["shards_failed"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_by_permissions(tmp_path: Path) -> None:  # pragma: no cover - root in CI
    images = tmp_path / "imgs"
    images.mkdir()
    (images / "a.png").write_bytes(_encode(_rgb(), "PNG"))
    (images / "b.png").write_bytes(_encode(_rgb(colour=(1, 2, 200)), "PNG"))
    (images / "b.png").chmod(0)
    s = annotate(images, tmp_path / "sg", factory=fake_pipeline)
    assert s["skipped"] == {"unreadable": 1} and s["graphs"] == 1


@pytest.mark.parametrize("strict, code", [(False, 0), (True, 1)])
def test_cli_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strict: bool, code: int) -> None:
    from mmgen.cli import main
    from mmgen.stages.annotate import PipelineFactory

    monkeypatch.setattr(PipelineFactory, "__call__", lambda self: fake_pipeline())
    images = tmp_path / "imgs"
    images.mkdir()
    for name in ("plain.png", "zero.png", "text.jpg"):
        (images / name).write_bytes(CASES[name][0]())
    shutil.copy(images / "plain.png", images / "zz_copy.png")
    args = ["annotate", str(images), "-o", str(tmp_path / "sg")] + (["--strict"] if strict else [])
    res = CliRunner().invoke(main, args)
    assert res.exit_code == code, res.output
    summary = json.loads((tmp_path / "sg" / "summary.json").read_text())
    assert summary["skipped"] == {"duplicate": 1, "empty": 1, "not-an-image": 1} and summary["graphs"] == 1
    assert "3 skipped" in res.output
    if strict:
        assert "2 input(s) skipped (--strict)" in res.output
    # only duplicates: --strict passes
    shutil.rmtree(tmp_path / "sg")
    for name in ("zero.png", "text.jpg"):
        (images / name).unlink()
    assert CliRunner().invoke(main, args).exit_code == 0
