"""``mmgen export`` and ``mmgen validate`` on QA generated from the bundled scene graphs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.export import iter_qa
from mmgen.export.render import safe_id
from tests.test_export import IMAGES, sample_qa_dir

FORMATS = ["llava", "sharegpt", "messages", "provision", "hf"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="session")
def qa_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_qa_dir(tmp_path_factory)


@pytest.fixture(scope="session")
def qa_records(qa_dir: Path) -> list:
    return [qa for qa, _ in iter_qa(qa_dir)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_then_validate(fmt: str, runner: CliRunner, qa_dir: Path, qa_records: list, tmp_path: Path) -> None:
    out = tmp_path / fmt
    args = ["export", str(qa_dir), "--format", fmt, "-o", str(out), "--image-root", str(IMAGES),
            "--val-fraction", "0.3", "--image-placement", "random"]
    if fmt in ("sharegpt", "messages", "hf"):
        args += ["--system-prompt", "Answer briefly."]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["format"] == fmt and manifest["records"] == len(qa_records)
    assert sum(manifest["per_split"].values()) == len(qa_records) and set(manifest["per_split"]) == {"train", "val"}
    result = runner.invoke(main, ["validate", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{len(qa_records)} {fmt} records" in result.output
    if fmt != "hf":
        result = runner.invoke(main, ["validate", str(out / "train.json"), "--format", fmt, "--image-root",
                                      str(IMAGES), "--no-decode"])
        assert result.exit_code == 0, result.output


def test_llava_cli_output_is_the_documented_shape(runner: CliRunner, qa_dir: Path, qa_records: list,
                                                  tmp_path: Path) -> None:
    result = runner.invoke(main, ["export", str(qa_dir), "-o", str(tmp_path), "--image-root", str(IMAGES),
                                  "--option-style", "paren", "--answer-style", "letter_text", "--rationale"])
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "train.json").read_text())
    assert [r["id"] for r in records] == [safe_id(qa.id) for qa in qa_records]
    for r, qa in zip(records, qa_records):
        assert set(r) == {"id", "image", "conversations"} and r["image"] == qa.image_paths[0]
        first = r["conversations"][0]["value"]
        assert first.startswith("<image>\n") and first.count("<image>") == 1
        if qa.question_type == "multiple_choice":
            label = chr(65 + qa.answer_index)
            assert f"\n({label}) {qa.answer}\n" in first
            assert r["conversations"][1]["value"] == f"{qa.rationale}\nAnswer: ({label}) {qa.answer}"


def test_validate_lists_problems_and_exits_1(runner: CliRunner, qa_dir: Path, tmp_path: Path) -> None:
    assert runner.invoke(main, ["export", str(qa_dir), "-o", str(tmp_path), "--jsonl"]).exit_code == 0
    path = tmp_path / "train.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for r in lines[:25]:
        r["conversations"][0]["value"] = r["conversations"][0]["value"].replace("<image>\n", "")
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    result = runner.invoke(main, ["validate", str(path), "--image-root", str(IMAGES)])
    assert result.exit_code == 1
    listed = [line for line in result.stdout.splitlines() if line]
    assert listed == [f"{r['id']}: 0 <image> token(s) for 1 image(s)" for r in lines[:20]]
    assert "25 problem(s) in 25 of" in result.output and "(5 not listed)" in result.output
    result = runner.invoke(main, ["validate", str(path), "--image-root", str(IMAGES), "--show", "3"])
    assert result.exit_code == 1 and len([line for line in result.stdout.splitlines() if line]) == 3


@pytest.mark.parametrize("args, message", [
    (["--system-prompt", "hi"], "no system turn"),
    (["--format", "hf"], "needs --image-root"),
    (["--format", "alpaca"], "Invalid value"),
    (["--val-fraction", "1"], "Invalid value"),
])
def test_export_usage_errors(args: list[str], message: str, runner: CliRunner, qa_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(main, ["export", str(qa_dir), "-o", str(tmp_path / "o"), *args])
    assert result.exit_code in (1, 2) and message in result.output


def test_validate_without_format_or_manifest_says_so(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("[]")
    result = runner.invoke(main, ["validate", str(tmp_path / "x.json")])
    assert result.exit_code == 1 and "give the format" in result.output


def test_validate_finds_images_behind_a_path_prefix(runner: CliRunner, qa_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(main, ["export", str(qa_dir), "-o", str(tmp_path), "--image-root", str(IMAGES),
                                  "--path-prefix", "images"])
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "train.json").read_text())
    assert all(r["image"].startswith("images/") for r in records)
    assert runner.invoke(main, ["validate", str(tmp_path)]).exit_code == 0  # root and prefix from export.json
    result = runner.invoke(main, ["validate", str(tmp_path / "train.json"), "--image-root", str(IMAGES.parent)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["validate", str(tmp_path / "train.json"), "--image-root", str(IMAGES)])
    assert result.exit_code == 1 and "image not found" in result.output
