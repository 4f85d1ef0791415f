"""``mmgen stats``: a small HTML report with plots about an output folder."""

from __future__ import annotations

import logging
from pathlib import Path

import click

log = logging.getLogger("mmgen.stats")


@click.command("stats")
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "dest", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the report (default: OUT_DIR/stats).")
def command(out_dir: Path, dest: Path | None) -> None:
    """Write a report about OUT_DIR: index.html, stats.json and PNG plots.

    QA records per program, answer distributions, multiple-choice option-position balance, objects
    per image, label / attribute / relation frequency, and drop reasons when curation output exists.

    \b
    Example:
      mmgen stats out/ && xdg-open out/stats/index.html
    """
    from ..extras import require

    require("viz", "matplotlib", "mmgen stats")
    from ..check.stats import write_report
    from ..store import open_output

    with open_output(out_dir) as output:
        page = write_report(output, dest or out_dir / "stats")
    log.info("report for %d images and %d QA records -> %s", len(output), output.count(), page)
