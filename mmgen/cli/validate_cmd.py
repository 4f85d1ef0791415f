"""``mmgen validate``: check an exported training file before training on it."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from .export_cmd import FORMAT_CHOICES, TARGET_CHOICES

log = logging.getLogger("mmgen.validate")


@click.command("validate")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("-f", "--format", "fmt", type=click.Choice(FORMAT_CHOICES), default=None,
              help="Format of the file (default: from the export.json beside it).")
@click.option("-t", "--target", type=click.Choice(TARGET_CHOICES), default=None,
              help="Target it was exported for: checks its image field, token labels and box syntax "
                   "(default: from export.json).")
@click.option("--style", type=click.Choice(("plain", "think")), default=None,
              help="think: check the <think>...</think> blocks (default: from export.json).")
@click.option("--image-root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder the image paths are relative to (default: the one in export.json).")
@click.option("--no-decode", is_flag=True, help="Only check that images exist (faster): do not decode them.")
@click.option("--show", type=click.IntRange(min=1), default=20, show_default=True, help="Problems to list.")
def command(path: Path, fmt: str | None, target: str | None, style: str | None, image_root: Path | None,
            no_decode: bool, show: int) -> None:
    """Check an exported file (or export folder): one <image> token or image part per image, in the
    first human turn; image paths exist and decode; turns alternate and start with the human; ids are
    unique; nothing is empty; and what the export's target fixes (image field, token labels, box
    syntax). Exits 1 listing the first problems (record id: problem).

    \b
    Example:
      mmgen validate out/llava/train.json --image-root images
    """
    from ..check.validate import validate

    report = validate(path, fmt, image_root, decode=not no_decode, max_problems=show, target=target, style=style)
    for problem in report.problems:
        click.echo(str(problem))
    if report.ok:
        log.info("%d %s records in %d file(s) are valid (%d images checked)", report.records, report.format,
                 len(report.files), report.images_checked)
        return
    more = report.problem_count - len(report.problems)
    log.error("%d problem(s) in %d of %d records%s", report.problem_count, report.bad_records, report.records,
              f" ({more} not listed)" if more > 0 else "")
    raise SystemExit(1)
