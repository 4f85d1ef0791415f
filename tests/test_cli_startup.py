"""Start-up stays light: ``mmgen --help`` imports no verb module, and inflect comes without typeguard."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

from mmgen.cli import verb_modules, verb_name

_PROBE = """
import json, sys
from click.testing import CliRunner
from mmgen.cli import main
lazy = CliRunner().invoke(main, ["--help"], terminal_width=100).output
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("numpy", "scene_graphs", "programs", "jsonschema",
                                                            "openai", "inflect") or m.endswith("_cmd"))
for name in list(main.commands):
    main.commands[name]  # import every verb
loaded = CliRunner().invoke(main, ["--help"], terminal_width=100).output
print(json.dumps({"lazy": lazy, "loaded": loaded, "heavy": heavy}))
"""


def test_help_imports_no_verb_and_lists_the_same_summaries() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout)
    assert result["heavy"] == [], result["heavy"]
    assert result["lazy"] == result["loaded"]
    assert "Commands:" in result["lazy"] and "generate" in result["lazy"]


def test_every_verb_module_is_named_after_its_verb() -> None:
    for module in verb_modules():
        assert importlib.import_module(f"mmgen.cli.{module}").command.name == verb_name(module), module


def test_inflect_is_loaded_on_first_use_without_typeguard() -> None:
    probe = ("import sys; import programs.grammar as g; before = 'inflect' in sys.modules; "
             "words = [g.plural('bus'), g.plural('sunglasses'), g.plural('person'), g.with_article('apple')]; "
             "import json; print(json.dumps([before, 'typeguard' in sys.modules, words]))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == [False, False, ["buses", "sunglasses", "people", "an apple"]]
