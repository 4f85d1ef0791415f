"""Shared test set-up: hypothesis profiles, isolation of the loggers the CLI reconfigures, and what
a skip means in CI.

Profiles: ``ci`` (deterministic: derandomized, 100 examples, no deadline) is loaded when the ``CI``
environment variable is set, ``dev`` otherwise; ``HYPOTHESIS_PROFILE=name`` picks one explicitly.

Optional extras: a test whose dependency is missing skips with the reason (``pytest.importorskip``,
or a reason saying what "is not installed" / "not available"); under ``CI=true``, where ``.ci/run``
installs every extra, the same skip is a failure. A test that used the real llama.cpp server
(``llama_server``) and failed while the server process had died reports the death first: the signal
and the server's log tail, before the assertion it happened to trip.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, max_examples=100, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
MISSING_DEPENDENCY = re.compile(r"could not import|No module named|is not installed|not available")
"""Skip reasons that mean an optional extra (or its model file) is missing."""


def _skip_reason(report: Any) -> str | None:
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2])
    return None


def _fail_missing_extra_in_ci(report: Any) -> None:
    reason = _skip_reason(report)
    if IN_CI and reason and MISSING_DEPENDENCY.search(reason):
        report.outcome = "failed"
        report.longrepr = (f"CI=true: {reason.removeprefix('Skipped: ')}\n(.ci/run installs every extra, so a "
                           "missing one is a failure in CI, not a skip)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    _fail_missing_extra_in_ci(report)
    if report.failed and "llama_server" in getattr(item, "fixturenames", ()):
        from tests.llm_server import server_death

        death = server_death()
        if death:
            report.longrepr = f"{death}\n\n(the assertion it caused follows)\n{report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _fail_missing_extra_in_ci(outcome.get_result())  # type: ignore[attr-defined]

_PROJECT_LOGGERS = ("mmgen", "programs", "scene_graphs")


@pytest.fixture(autouse=True)
def _restore_project_loggers() -> Iterator[None]:
    """``mmgen.log.setup_logging`` (run by every CLI invocation) replaces handlers, level and
    propagation of the project loggers; put them back so later tests' ``caplog`` still sees records
    and no handler keeps writing to a closed CliRunner stream."""
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in map(logging.getLogger, _PROJECT_LOGGERS)]
    yield
    for lg, handlers, level, propagate in saved:
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate
