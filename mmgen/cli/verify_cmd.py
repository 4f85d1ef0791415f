"""``mmgen verify``: check QA records against their scene graphs."""

from __future__ import annotations

import logging
from pathlib import Path

import click

log = logging.getLogger("mmgen.verify")


@click.command("verify")
@click.argument("qa", type=click.Path(exists=True, path_type=Path))
@click.option("--scene-graphs", "sg", type=click.Path(exists=True, path_type=Path), required=True,
              help="The scene graphs the QA records were generated from.")
@click.option("--show", type=click.IntRange(min=1), default=20, show_default=True, help="Problems to print.")
def command(qa: Path, sg: Path, show: int) -> None:
    """Re-run each QA record's program on its scene graph; exit 1 on any mismatch.

    Checks that every plan is still valid for its graph, that the stored answer is what the graph
    gives, and that regenerating with the stored seed reproduces the records exactly.
    """
    from ..check.verify import verify

    report = verify(qa, sg)
    for line in report.problems[:show]:
        click.echo(line)
    if report.not_rederivable:
        log.info("%d evolved record(s): plan and answer checked; their rewritten text cannot be regenerated",
                 report.not_rederivable)
    if report.ok:
        log.info("verified %d QA records: all answers follow from their scene graphs", report.checked)
        return
    log.error("%d problem(s) in %d records checked", len(report.problems), report.checked)
    raise SystemExit(1)
