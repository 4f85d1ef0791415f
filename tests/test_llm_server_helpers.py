"""What a dead llama.cpp server and a missing optional extra look like in a test report."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.llm_server import describe_exit

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
CRASH = "import os, signal, sys; print('ggml: ldtilecfg', flush=True); os.kill(os.getpid(), signal.SIGSEGV)"


def test_a_crash_is_described_by_its_signal_and_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with log.open("w") as f:
        proc = subprocess.run([sys.executable, "-c", CRASH], stdout=f, stderr=subprocess.STDOUT, timeout=60)
    assert proc.returncode == -signal.SIGSEGV
    text = describe_exit(proc.returncode, log)
    assert text.startswith("killed by SIGSEGV (signal 11)") and "ggml: ldtilecfg" in text
    assert describe_exit(3, None).startswith("exited with status 3")


SERVER_TEST = f'''
import subprocess, sys, tempfile
import pytest
from tests import llm_server

@pytest.fixture
def llama_server():
    log = tempfile.NamedTemporaryFile(suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-c", {CRASH!r}], stdout=log, stderr=subprocess.STDOUT)
    proc.wait(60)
    llm_server._llama.update(proc=proc, log=log, log_path=log.name)
    yield "http://127.0.0.1:9/v1"

def test_tokens(llama_server):
    tokens = 0  # what a client sees when the server is gone
    assert tokens > 0
'''


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester folder with this project's conftest, able to import ``tests.llm_server``."""
    pytester.makeconftest((REPO / "tests" / "conftest.py").read_text())
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    return pytester


def test_a_failure_while_the_server_is_dead_says_so_first(project: pytest.Pytester) -> None:
    project.makepyfile(test_server=SERVER_TEST)
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "the llama.cpp server process died: killed by SIGSEGV (signal 11)" in out
    assert out.index("killed by SIGSEGV") < out.index("assert tokens > 0")
    assert "ggml: ldtilecfg" in out


MISSING = '''
import pytest

def test_needs_an_extra():
    pytest.importorskip("no_such_extra_module_x")

def test_needs_a_server():
    pytest.skip("llama-cpp-python[server] is not installed (missing llama_cpp)")

def test_skips_for_another_reason():
    pytest.skip("only 3 records")
'''


@pytest.mark.parametrize("ci, outcomes", [("", {"skipped": 3}), ("true", {"failed": 2, "skipped": 1})])
def test_missing_extras_skip_outside_ci_and_fail_in_ci(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                       ci: str, outcomes: dict) -> None:
    monkeypatch.setenv("CI", ci)
    project.makepyfile(test_missing=MISSING)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(**outcomes)
    if ci:
        assert "CI=true: could not import 'no_such_extra_module_x'" in result.stdout.str()


def test_a_module_level_skip_for_a_missing_extra_fails_collection_in_ci(project: pytest.Pytester,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    project.makepyfile(test_module='import pytest\npytest.importorskip("no_such_extra_module_y")\n\n'
                                   'def test_x():\n    pass\n')
    monkeypatch.setenv("CI", "")
    project.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(skipped=1)
    monkeypatch.setenv("CI", "true")
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert "no_such_extra_module_y" in result.stdout.str()
