"""The CLI skeleton: verbs in the order of the flow, --version, pending verbs, log levels, error lines."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import re
import shutil
import subprocess
from typing import Iterator

import click
import pytest
from click.testing import CliRunner

from mmgen.cli import main, pending, verb_modules

BUILT = {importlib.import_module(f"mmgen.cli.{m}").command.name for m in verb_modules()}
STILL_PENDING = [name for name in pending.PENDING if name not in BUILT]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_help_lists_every_verb_in_flow_order(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    listed = re.findall(r"^  ([a-z][a-z-]*)\s", result.output.split("Commands:")[1], flags=re.MULTILINE)
    assert listed[:len(pending.FLOW_ORDER)] == list(pending.FLOW_ORDER)
    assert set(listed) == set(main.commands)
    assert "-h" in runner.invoke(main, ["-h"]).output  # short help option works too


def test_every_verb_module_is_registered() -> None:
    for name in verb_modules():
        module = importlib.import_module(f"mmgen.cli.{name}")
        assert main.commands[module.command.name] is module.command, f"{name} is shadowed by a stub"
    assert set(pending.FLOW_ORDER) <= set(main.commands)


def test_version_option(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"mmgen, version {importlib.metadata.version('mmgen')}"


def test_version_in_a_real_process() -> None:
    exe = shutil.which("mmgen")
    if exe is None:
        pytest.skip("the mmgen console script is not installed (pip install -e .)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert importlib.metadata.version("mmgen") in out.stdout


@pytest.mark.skipif(not STILL_PENDING, reason="every verb is built")
@pytest.mark.parametrize("verb", STILL_PENDING)
def test_pending_verb_exits_2_naming_its_issue(runner: CliRunner, verb: str) -> None:
    issue = pending.PENDING[verb][1]
    result = runner.invoke(main, [verb, "some-arg", "--some-option", "x"])
    assert result.exit_code == 2
    assert f"mmgen {verb}: not built yet" in result.stderr
    assert f"issue {issue}" in result.stderr
    assert result.stdout == ""
    assert "[not built yet]" in runner.invoke(main, ["--help"]).output


# ----------------------------------------------------------------------------- log levels and errors
@pytest.fixture
def probe() -> Iterator[dict]:
    """A throwaway verb that logs at every level, records the levels it saw and can raise on demand."""
    seen: dict = {}

    @click.command("zz-probe")
    @click.option("--fail", type=click.Choice(["value", "os", "runtime"]))
    def command(fail: str | None) -> None:
        seen.update({name: logging.getLogger(name).getEffectiveLevel()
                     for name in ("mmgen", "programs", "scene_graphs")})
        log = logging.getLogger("mmgen.probe")
        log.debug("debug-line")
        log.info("info-line")
        log.warning("warning-line")
        log.error("error-line")
        if fail == "value":
            raise ValueError("bad input in record 7")
        if fail == "os":
            raise FileNotFoundError("no such file: x.jsonl")
        if fail == "runtime":
            raise RuntimeError("a bug")

    main.add_command(command)
    try:
        yield seen
    finally:
        main.commands.pop("zz-probe", None)


@pytest.mark.parametrize("flags, level", [
    ([], logging.INFO),
    (["-v"], logging.DEBUG),
    (["-vv"], logging.DEBUG),
    (["-q"], logging.WARNING),
    (["-qq"], logging.ERROR),
    (["-qqq"], logging.ERROR),
    (["-v", "-q"], logging.INFO),
    (["--verbose", "--quiet", "--quiet"], logging.WARNING),
])
def test_verbosity_flags_set_the_log_level(runner: CliRunner, probe: dict, flags: list[str], level: int) -> None:
    result = runner.invoke(main, [*flags, "zz-probe"])
    assert result.exit_code == 0, result.output
    assert probe == {"mmgen": level, "programs": level, "scene_graphs": level}
    for name, lvl in [("debug", logging.DEBUG), ("info", logging.INFO), ("warning", logging.WARNING),
                      ("error", logging.ERROR)]:
        assert (f"{name}-line" in result.stderr) == (lvl >= level), (name, result.stderr)
    assert result.stdout == "", "log output goes to stderr, never stdout"


@pytest.mark.parametrize("fail", ["value", "os"])
def test_user_errors_are_one_line(runner: CliRunner, probe: dict, fail: str) -> None:
    result = runner.invoke(main, ["zz-probe", "--fail", fail])
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and ("record 7" in lines[0] or "x.jsonl" in lines[0])
    assert "Traceback" not in result.stderr


def test_verbose_shows_the_exception(runner: CliRunner, probe: dict) -> None:
    result = runner.invoke(main, ["-v", "zz-probe", "--fail", "value"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ValueError)


def test_bugs_are_not_hidden_as_user_errors(runner: CliRunner, probe: dict) -> None:
    result = runner.invoke(main, ["zz-probe", "--fail", "runtime"])
    assert isinstance(result.exception, RuntimeError)


def test_project_loggers_are_restored_for_later_tests(runner: CliRunner, caplog: pytest.LogCaptureFixture) -> None:
    """conftest puts the loggers back after each test, so caplog sees project records after CLI runs."""
    with caplog.at_level(logging.INFO):
        logging.getLogger("scene_graphs.test").info("visible to caplog")
    assert "visible to caplog" in caplog.text
