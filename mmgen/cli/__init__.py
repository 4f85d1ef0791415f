"""The ``mmgen`` command line: one verb per stage of the flow, each in its own module here.

A verb module is named ``<verb>_cmd.py`` (``-`` in the verb as ``_``) and defines one ``click``
command named ``command``; it is found automatically and imported only when its verb runs (or is
looked up): ``mmgen --help`` reads each verb's summary from the first lines of its ``command``
docstring without importing the module.
Verbs that are not built yet live in :mod:`mmgen.cli.pending` and exit with status 2.
Heavy libraries (torch, ultralytics, ray) are imported inside the command functions, never at the
top of a verb module, so ``mmgen --help`` stays fast and the core install stays light.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..log import setup_logging

log = logging.getLogger("mmgen")


def verb_modules() -> list[str]:
    """Modules under ``mmgen.cli`` that define a built verb as ``command`` (named ``*_cmd``)."""
    import pkgutil

    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.endswith("_cmd"))

EXIT_ERROR = 1
EXIT_USAGE = 2

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)
"""Errors that come from the user's input or files: shown as one line, not a traceback (``-v`` shows it)."""


def verb_name(module: str) -> str:
    """``eval_graphs_cmd`` -> ``eval-graphs``."""
    return module.removesuffix("_cmd").replace("_", "-")


_DOCSTRING = re.compile(r'^def command\(.*?\)(?:\s*->[^:\n]*)?:[ \t]*\n[ \t]+(?:r)?"""(.*?)"""', re.DOTALL | re.MULTILINE)


@lru_cache(maxsize=None)
def verb_summary(module: str, limit: int) -> str:
    """The ``--help`` line of a verb module's command, read from its source (no import)."""
    source = (Path(__file__).parent / f"{module}.py").read_text(encoding="utf-8")
    m = _DOCSTRING.search(source)
    return click.utils.make_default_short_help(inspect.cleandoc(m.group(1)), limit) if m else ""


class LazyVerbs(dict):
    """Verb name -> command, where a built verb's value is its module name until first looked up."""

    def _load(self, name: str, value: Any) -> Any:
        if isinstance(value, str):
            value = importlib.import_module(f"{__name__}.{value}").command
            dict.__setitem__(self, name, value)
        return value

    def __getitem__(self, name: str) -> Any:
        return self._load(name, dict.__getitem__(self, name))

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default

    def values(self) -> Any:  # type: ignore[override]
        return [self[k] for k in self]

    def items(self) -> Any:  # type: ignore[override]
        return [(k, self[k]) for k in self]


class MmgenGroup(click.Group):
    """Lists verbs in the order of the flow and turns input errors into one clear line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, but a verb not imported yet gets its summary from its source."""
        rows = []
        limit = formatter.width - 6 - max((len(n) for n in self.list_commands(ctx)), default=0)
        for name in self.list_commands(ctx):
            value = dict.get(self.commands, name) if isinstance(self.commands, LazyVerbs) else self.commands[name]
            if isinstance(value, str):
                rows.append((name, verb_summary(value, limit)))
            elif value is not None and not value.hidden:
                rows.append((name, value.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            if ctx.obj and ctx.obj.get("verbosity", 0) > 0:
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_ERROR)


@click.group(cls=MmgenGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="mmgen")
@click.option("-v", "--verbose", count=True, help="More log output: debug messages with logger names, and tracebacks.")
@click.option("-q", "--quiet", count=True, help="Less log output (-q warnings only, -qq errors only).")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: int) -> None:
    """mmgen turns images into verified question-answer training data.

    \b
    The flow (each arrow is a verb; `mmgen run` chains them):
      images/ --annotate--> scene graphs --generate--> QA --evolve/curate--> --export--> llava.json
      VG / GQA / COCO / ProVision files --import--> scene graphs

    Run `mmgen VERB --help` for the options of one verb.
    """
    ctx.ensure_object(dict)
    ctx.obj["verbosity"] = verbose - quiet
    setup_logging(verbose - quiet)


def _register() -> None:
    from . import pending

    verbs: dict[str, Any] = {verb_name(m): m for m in verb_modules()}  # imported on first lookup
    for cmd in pending.commands():
        verbs.setdefault(cmd.name, cmd)
    # keep the flow's order in --help
    order = {name: i for i, name in enumerate(pending.FLOW_ORDER)}
    main.commands = LazyVerbs(sorted(verbs.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
