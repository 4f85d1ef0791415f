"""Logging set-up shared by the CLI and library entry points."""

from __future__ import annotations

import logging
import sys

LOGGER_NAMES = ("mmgen", "programs", "scene_graphs")


def setup_logging(verbosity: int = 0) -> None:
    """``verbosity``: -2 errors only, -1 warnings, 0 info (default), 1+ debug."""
    level = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.INFO}.get(max(verbosity, -2), logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbosity > 0
                                           else "%(levelname)s: %(message)s"))
    for name in LOGGER_NAMES:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


def progress_enabled() -> bool:
    """Progress bars show when the mmgen logger would print info and stderr is a terminal."""
    return logging.getLogger("mmgen").isEnabledFor(logging.INFO) and sys.stderr.isatty()
