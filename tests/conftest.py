"""Shared test set-up: hypothesis profiles and isolation of the loggers the CLI reconfigures.

Profiles: ``ci`` (deterministic: derandomized, 100 examples, no deadline) is loaded when the ``CI``
environment variable is set, ``dev`` otherwise; ``HYPOTHESIS_PROFILE=name`` picks one explicitly.
"""

from __future__ import annotations

import logging
import os
from typing import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, max_examples=100, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

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
