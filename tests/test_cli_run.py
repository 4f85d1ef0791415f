"""``mmgen run`` on a real folder with the real detector: --shard-size, --stage/--skip, --overwrite."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmgen.cli import main

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "assets" / "images"
SHARED = Path(os.environ.get("MMGEN_WEIGHTS_DIR", "/nonexistent"))
HAVE = all((SHARED / f).is_file() for f in ("yolo11n_int8.tflite", "yolo11n-seg_full_integer_quant.tflite"))


def _run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["run", *args])
    return res.exit_code, res.output


def test_stage_and_skip_must_leave_a_stage(tmp_path: Path) -> None:
    code, output = _run(str(PHOTOS), "-o", str(tmp_path), "--stage", "verify", "--skip", "verify")
    assert code == 2 and "no stage to run" in output
    code, output = _run(str(PHOTOS), "-o", str(tmp_path), "--skip", "nonsense")
    assert code == 2 and "nonsense" in output


@pytest.mark.skipif(not HAVE, reason="MMGEN_WEIGHTS_DIR does not hold the YOLO11n TFLite files")
def test_run_shard_size_stages_and_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = _run(str(PHOTOS), "-o", str(out), "--offline", "--shard-size", "4", "--skip", "verify")
    assert code == 0, output
    run = json.loads((out / "run.json").read_text())
    assert run["stages"] == ["annotate", "generate", "export", "validate"] and "verify" not in run["seconds"]
    annotated = json.loads((out / "scene_graphs" / "summary.json").read_text())
    n_images = len([p for p in PHOTOS.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")])
    assert annotated["shards"] == -(-n_images // 4) and annotated["graphs"] == n_images
    assert (out / "llava" / "train.json").is_file()
    graphs = {p.name: p.stat().st_mtime_ns for p in (out / "scene_graphs").glob("part-*")}

    # only the later stages: the scene graphs stay as they are
    code, output = _run(str(PHOTOS), "-o", str(out), "--offline", "--shard-size", "4", "--stage", "export",
                        "--stage", "validate", "--format", "sharegpt")
    assert code == 0, output
    assert json.loads((out / "run.json").read_text())["stages"] == ["export", "validate"]
    assert (out / "sharegpt" / "train.json").is_file()
    assert {p.name: p.stat().st_mtime_ns for p in (out / "scene_graphs").glob("part-*")} == graphs

    # another shard size needs --overwrite, which redoes every shard
    code, output = _run(str(PHOTOS), "-o", str(out), "--offline", "--shard-size", "5", "--stage", "annotate")
    assert code != 0 and "--overwrite" in output
    code, output = _run(str(PHOTOS), "-o", str(out), "--offline", "--shard-size", "5", "--stage", "annotate",
                        "--overwrite")
    assert code == 0, output
    again = json.loads((out / "scene_graphs" / "summary.json").read_text())
    assert again["shards"] == -(-n_images // 5) == again["shards_done"] and again["graphs"] == n_images
