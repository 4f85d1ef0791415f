"""The ``mmgen`` command line: one verb per stage of the flow, each in its own module here.

A verb module is named ``<something>_cmd.py`` and defines one ``click`` command named ``command``;
it is found automatically.
Verbs that are not built yet live in :mod:`mmgen.cli.pending` and exit with status 2.
Heavy libraries (torch, ultralytics, ray) are imported inside the command functions, never at the
top of a verb module, so ``mmgen --help`` stays fast and the core install stays light.
"""

from __future__ import annotations

import importlib
import logging
import sys
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


class MmgenGroup(click.Group):
    """Lists verbs in the order of the flow and turns input errors into one clear line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

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

    for name in verb_modules():
        module = importlib.import_module(f"{__name__}.{name}")
        main.add_command(module.command)
    for cmd in pending.commands():
        if cmd.name not in main.commands:
            main.add_command(cmd)
    # keep the flow's order in --help
    order = {name: i for i, name in enumerate(pending.FLOW_ORDER)}
    main.commands = dict(sorted(main.commands.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
