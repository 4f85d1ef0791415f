"""Optional dependencies: :func:`require` imports one and, when it is missing, raises
:class:`MissingExtraError` naming the pip extra that installs it (``pip install "mmgen[ray]"``)
instead of a bare traceback. Every optional import of ``mmgen`` goes through it."""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS = {"vision": "the vision models", "ray": "the Ray engine", "llm": "the LLM stages (evolve, judge)",
          "hf": "Hugging Face export", "viz": "charts (mmgen stats)", "test": "the test suite"}
"""The extras of ``pyproject.toml`` and what they are for."""


class MissingExtraError(ImportError, ValueError):
    """An optional package is not installed; the message names the extra to install. A ``ValueError``
    too, so the command line reports it in one line like any other user error."""


def require(extra: str, module: str, needed_for: str | None = None) -> ModuleType:
    """``import module``, or a :class:`MissingExtraError` saying which extra installs it."""
    if extra not in EXTRAS:
        raise KeyError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = needed_for or EXTRAS[extra]
        raise MissingExtraError(f"{what} needs the {module.split('.')[0]} package, which is not installed "
                                f"({exc}); install it with: pip install \"mmgen[{extra}]\"",
                                name=module) from None
