"""Image paths never leave the image root: export refuses them and validate reports them (after ``..``
and symbolic links); an absolute ``--path-prefix`` recorded by export validates."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.export import ExportError, ExportOptions, export, render
from mmgen.check.validate import validate
from tests.test_export import make_images, make_qa, write_qa


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``root/`` with ``in.png``, ``sub/ok.png`` and a link ``root/link.png`` to ``secret/out.png`` beside it."""
    make_images(tmp_path / "root", ["in.png", "sub/ok.png"])
    make_images(tmp_path / "secret", ["out.png"])
    os.symlink(tmp_path / "secret" / "out.png", tmp_path / "root" / "link.png")
    os.symlink(tmp_path / "root" / "sub" / "ok.png", tmp_path / "root" / "inner-link.png")
    return tmp_path


@pytest.mark.parametrize("path", ["../secret/out.png", "sub/../../secret/out.png", "link.png", "./../secret/out.png"])
def test_export_refuses_paths_that_resolve_outside_the_root(tree: Path, path: str) -> None:
    assert (tree / "root" / path).is_file()  # the file is there: only its place is wrong
    with pytest.raises(ExportError, match="not inside the image root"):
        render(make_qa(paths=(path,)), ExportOptions(image_root=tree / "root"), "t")


def test_export_refuses_an_absolute_path_outside_the_root(tree: Path) -> None:
    with pytest.raises(ExportError, match="not inside the image root"):
        render(make_qa(paths=(str(tree / "secret" / "out.png"),)), ExportOptions(image_root=tree / "root"), "t")


def test_export_without_a_root_still_refuses_dot_dot(tree: Path) -> None:
    with pytest.raises(ExportError, match="not inside"):
        render(make_qa(paths=("../secret/out.png",)), ExportOptions(), "t")


@pytest.mark.parametrize("path, written", [("in.png", "in.png"), ("sub/./ok.png", "sub/ok.png"),
                                           ("sub/../in.png", "in.png"), ("inner-link.png", "inner-link.png")])
def test_paths_inside_the_root_are_written_normalised(tree: Path, path: str, written: str) -> None:
    assert render(make_qa(paths=(path,)), ExportOptions(image_root=tree / "root"), "t").images == (written,)


def write_llava(path: Path, images: list[str]) -> Path:
    records = [{"id": f"r{i}", "image": p, "conversations": [{"from": "human", "value": "<image>\nWhat is it?"},
                                                              {"from": "gpt", "value": "A square."}]}
               for i, p in enumerate(images)]
    path.write_text(json.dumps(records))
    return path


def test_validate_reports_paths_that_resolve_outside_the_root(tree: Path) -> None:
    data = write_llava(tree / "train.json", ["in.png", "../secret/out.png", "link.png", "sub/../../secret/out.png"])
    report = validate(data, "llava", tree / "root")
    assert [p.record for p in report.problems] == ["r1", "r2", "r3"], report.problems
    assert all("outside the image root" in p.message for p in report.problems)
    report = validate(data, "llava")  # no root: the '..' paths are still refused
    assert [p.record for p in report.problems] == ["r1", "r3"], report.problems


def test_validate_accepts_an_absolute_path_prefix_that_export_recorded(tree: Path) -> None:
    qa_dir = tree / "qa"
    write_qa(qa_dir, [make_qa(0, paths=("in.png",)), make_qa(1, images=("00000000000000bb",), paths=("sub/ok.png",))])
    prefix = str(tree / "mounted" / "images")
    export(qa_dir, tree / "out", "llava", ExportOptions(image_root=tree / "root", path_prefix=prefix))
    records = json.loads((tree / "out" / "train.json").read_text())
    assert sorted(r["image"] for r in records) == [f"{prefix}/in.png", f"{prefix}/sub/ok.png"]
    report = validate(tree / "out")
    assert report.ok and report.images_checked == 2, report.problems
    result = CliRunner().invoke(main, ["validate", str(tree / "out" / "train.json"), "--image-root",
                                       str(tree / "root")])
    assert result.exit_code == 0, result.output
    # an absolute path that is not below the recorded prefix is still refused
    write_llava(tree / "out" / "train.json", [str(tree / "root" / "in.png")])
    assert "absolute" in validate(tree / "out").problems[0].message
