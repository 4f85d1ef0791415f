"""Real trainers read our exports: LLaMA-Factory on ShareGPT, TRL's SFTTrainer on the parquet dataset.

Each trainer runs in its own venv (built by ``bash .ci/install_trainers.sh``, cached outside the clone),
so its pins never meet ours; the scripts under ``tests/trainers/`` run inside those venvs. A tiny randomly
initialised Qwen2-VL (config, weights, byte-level tokenizer, processor) is built offline in each venv, with
that venv's transformers. The sample is the bundled scene graphs, single- and multi-image QA in one folder,
exported with the CLI exactly as a user would.

Every test fails if a record is dropped (records in = records out), if an image is lost, or if the image
tokens or supervised answers the trainer builds differ from what the records and the model's own image
processor imply. Outside CI a missing venv skips with the command to build it; under ``CI=true`` the skip
is a failure (tests/conftest.py).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
HELPERS = ROOT / "tests" / "trainers"
IMAGES = ROOT / "assets" / "images"
SCENE_GRAPHS = ROOT / "assets" / "scene_graphs"
CACHE = Path(os.environ.get("MMGEN_CI_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
             / "mmgen-ci")
TIMEOUT = 900

pytestmark = pytest.mark.slow


def venv_python(name: str) -> Path:
    """The interpreter of trainer venv `name`, or skip (a failure under CI) when it is not installed."""
    pointer = CACHE / "venvs" / f"{name}.python"
    python = Path(pointer.read_text().strip()) if pointer.is_file() else None
    if python is None or not python.exists():
        pytest.skip(f"the {name} trainer venv is not installed (run `bash .ci/install_trainers.sh {name}`)")
    return python


def run(cmd: list[str | Path], log: Path, env: dict[str, str], timeout: int = TIMEOUT) -> None:
    """Run `cmd`, its output to `log`; on failure, fail with the log's tail."""
    with log.open("w") as out:
        proc = subprocess.run([str(c) for c in cmd], stdout=out, stderr=subprocess.STDOUT, env=env,
                              timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        pytest.fail(f"{' '.join(map(str, cmd[:3]))} ... exited {proc.returncode}; log {log}:\n{tail}")


@pytest.fixture(scope="module")
def offline_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """No hub, no telemetry, caches in a temporary folder, CPU only."""
    home = tmp_path_factory.mktemp("hf_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "PYTHONPATH"))}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HOME=str(home),
        HF_DATASETS_CACHE=str(home / "datasets"),
        GRADIO_ANALYTICS_ENABLED="False",
        WANDB_DISABLED="true",
        CUDA_VISIBLE_DEVICES="",
        TOKENIZERS_PARALLELISM="false",
        PYTHONHASHSEED="0",
    )
    return env


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Single- and multi-image QA from the bundled scene graphs, in one folder, and its two exports."""
    base = tmp_path_factory.mktemp("trainer_sample")
    mmgen = [sys.executable, "-m", "mmgen"]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    run([*mmgen, "generate", SCENE_GRAPHS, "-o", base / "single", "--seed", "0", "--per-image", "1"],
        base / "generate.log", env)
    run([*mmgen, "generate", SCENE_GRAPHS, "-o", base / "multi", "--multi", "--group-strategy", "random",
         "--sets", "8", "--set-size", "2-3", "--per-image", "1", "--seed", "0"], base / "generate_multi.log", env)
    qa = base / "qa"
    qa.mkdir()
    lines = [ln for part in ("single", "multi") for shard in sorted((base / part).glob("part-*.jsonl"))
             for ln in shard.read_text().splitlines() if ln.strip()]
    (qa / "part-00000.jsonl").write_text("\n".join(lines) + "\n")
    records = [json.loads(ln) for ln in lines]
    run([*mmgen, "export", qa, "-f", "sharegpt", "-o", base / "sharegpt", "--image-root", IMAGES],
        base / "export_sharegpt.log", env)
    run([*mmgen, "export", qa, "-f", "hf", "-o", base / "hf", "--image-root", IMAGES], base / "export_hf.log", env)
    n_images = sum(len(r["images"]) for r in records)
    assert any(len(r["images"]) > 1 for r in records), "the sample must hold multi-image records"
    return {"base": base, "records": records, "n_images": n_images}


def tiny_model(python: Path, out: Path, env: dict[str, str]) -> Path:
    """Build the tiny Qwen2-VL with that venv's transformers."""
    if not (out / "config.json").exists():
        run([python, HELPERS / "tiny_qwen2vl.py", out], out.parent / f"{out.name}.log", env)
    return out


def check_report(report: dict[str, Any], sample: dict[str, Any]) -> None:
    """Records in = records out, every image kept, and the helper found no row that differs from its record."""
    n = len(sample["records"])
    assert report["n_errors"] == 0, report["errors"]
    assert (report["records_in"], report["records_out"]) == (n, n)
    assert report["images"] == sample["n_images"]
    assert report["image_tokens"] >= 4 * report["images"]  # the tiny processor's minimum per image


def test_llamafactory_reads_every_sharegpt_record(sample: dict[str, Any], offline_env: dict[str, str]) -> None:
    python = venv_python("llamafactory")
    base = sample["base"]
    model = tiny_model(python, base / "tiny_llamafactory", offline_env)
    report_path = base / "llamafactory.json"
    run([python, HELPERS / "llamafactory_check.py", model, base / "sharegpt", IMAGES, report_path],
        base / "llamafactory_check.log", offline_env)
    report = json.loads(report_path.read_text())
    check_report(report, sample)
    assert report["answers"] == sum(len(r.get("turns") or []) or 1 for r in sample["records"])  # one per turn


def test_llamafactory_sft_two_steps(sample: dict[str, Any], offline_env: dict[str, str]) -> None:
    python = venv_python("llamafactory")
    base = sample["base"]
    model = tiny_model(python, base / "tiny_llamafactory", offline_env)
    out = base / "llamafactory_sft"
    config = base / "llamafactory_sft.yaml"  # JSON is YAML; LLaMA-Factory reads .yaml files
    run([python, "-c", "import json, sys; sys.path.insert(0, sys.argv[1]); import llamafactory_check as c; "
         "json.dump(c.pipeline_args(*sys.argv[2:6]), open(sys.argv[6], 'w'))",
         HELPERS, model, base / "sharegpt", IMAGES, out, config], base / "llamafactory_config.log", offline_env)
    cli = python.parent / "llamafactory-cli"
    log = base / "llamafactory_sft.log"
    run([cli, "train", config], log, offline_env)
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    losses = [e["loss"] for e in state["log_history"] if "loss" in e] or [state["log_history"][-1]["train_loss"]]
    assert all(math.isfinite(float(x)) for x in losses)
    examples = re.findall(r"Num examples = ([\d,]+)", log.read_text(errors="replace"))
    assert examples and int(examples[0].replace(",", "")) == len(sample["records"])


def test_trl_sft_trains_on_every_parquet_record(sample: dict[str, Any], offline_env: dict[str, str]) -> None:
    python = venv_python("trl")
    base = sample["base"]
    model = tiny_model(python, base / "tiny_trl", offline_env)
    report_path = base / "trl.json"
    run([python, HELPERS / "trl_check.py", model, base / "hf", report_path], base / "trl_check.log", offline_env)
    report = json.loads(report_path.read_text())
    check_report(report, sample)
    assert report["steps"] == 2 and math.isfinite(report["train_loss"])
