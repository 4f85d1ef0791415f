"""``benchmarks/bench_perception.py --profile quality --quick`` on one photo: the script keeps working.

The quick mode builds every quality model from a small configuration with random weights (nothing to
download, nothing found: the weights folders point at empty temporary folders, so the baseline's YOLO
comes from ``$MMGEN_WEIGHTS_DIR`` only when the test machine has it); its figures measure nothing, but
every stage must run and report a rate, and random-init stages must say so.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("open_clip")

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_quick_quality_bench_reports_every_stage(tmp_path: Path) -> None:
    from scene_graphs.perception.profiles import DEFAULT_PROFILE, make_config

    out = tmp_path / "bench.json"
    env = {**os.environ, "MMGEN_OFFLINE": "1", "MMGEN_CACHE_DIR": str(tmp_path / "cache"),
           "HF_HUB_CACHE": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_perception.py"), "--profile", "quality",
                          "--quick", "--limit", "1", "--device", "cpu", "--json", str(out)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["images"] == 1 and data["quick"] and data["device"] == "cpu"
    assert data["profile"] == "quality" and data["baseline"] == DEFAULT_PROFILE

    quality = data["profiles"]["quality"]
    assert quality["skipped"] == {}
    stages = quality["batch_sizes"]["1"]
    assert list(stages) == [*make_config("quality").enabled_stages(), "profile"]
    for name, figures in stages.items():
        assert 0 < figures["images_per_s"] < math.inf, name
        assert figures["seconds_per_image"] > 0, name
    for name in ("tag", "ov_detect", "sam2", "depth", "clip_attributes", "clip_relations"):
        assert stages[name]["weights"] == "random-init", name
    assert stages["profile"]["weights"] == "includes random-init"
    total = sum(f["seconds_per_image"] for n, f in stages.items() if n != "profile")
    assert stages["profile"]["seconds_per_image"] == pytest.approx(total)

    assert 0 < quality["objects_per_image"]["1"] <= 2  # --quick holds random OWLv2 to 2 boxes: SAM 2 and CLIP have work
    baseline = data["profiles"][DEFAULT_PROFILE]["batch_sizes"]["1"]
    assert baseline and all(0 < f["images_per_s"] < math.inf for f in baseline.values())
    ratios = data["ratios"]["1"]
    assert set(ratios) == set(stages) & set(baseline) and "profile" in ratios
    assert ratios["profile"] == pytest.approx(stages["profile"]["images_per_s"] / baseline["profile"]["images_per_s"])

    assert "random-init" in res.stdout and "machine:" in res.stdout and "ratio = quality / fast" in res.stdout


def test_profiles_are_the_registrys() -> None:
    from scene_graphs.perception.profiles import PROFILES

    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_perception.py"), "--profile", "nope"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert all(f"'{name}'" in res.stderr for name in PROFILES), res.stderr
