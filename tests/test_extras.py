"""Optional dependencies: a missing one names its extra (one line at the command line, no traceback)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.extras import EXTRAS, MissingExtraError, require
from scene_graphs.io import write_graphs
from scene_graphs.synthetic import random_graph


def test_require_imports_or_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require("hf", "json") is sys.modules["json"]
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(MissingExtraError, match=r'the LLM stages .*openai.*pip install "mmgen\[llm\]"'):
        require("llm", "openai")
    with pytest.raises(KeyError, match="unknown extra"):
        require("nonsense", "json")
    assert set(EXTRAS) >= {"vision", "ray", "llm", "hf", "viz"}


def test_extras_match_pyproject() -> None:
    import tomllib
    from pathlib import Path

    declared = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    extras = set(declared["project"]["optional-dependencies"])
    assert set(EXTRAS) <= extras


@pytest.mark.parametrize("module, args", [
    ("ray", ["generate", "{sg}", "-o", "{out}", "--engine", "ray"]),
    ("matplotlib", ["stats", "{sg}"]),
])
def test_a_missing_extra_is_one_line_at_the_command_line(module: str, args: list[str], tmp_path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    sg = tmp_path / "sg"
    write_graphs(sg / "part-00000.jsonl", [random_graph(np.random.default_rng(0), "g0", masks=False, depth=False)])
    monkeypatch.setitem(sys.modules, module, None)
    res = CliRunner().invoke(main, [a.format(sg=sg, out=tmp_path / "qa") for a in args])
    assert res.exit_code != 0
    assert "Traceback" not in res.output and "pip install \"mmgen[" in res.output, res.output
