"""``mmgen import``: existing annotations (Visual Genome, GQA, COCO, ProVision) -> scene-graph shards
(the stage is :mod:`mmgen.stages.import_graphs`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from scene_graphs.formats import FORMAT_NAMES

from ..stages.import_graphs import DEFAULT_SHARD_SIZE
from ..engine.options import check_strict, engine_options, options_from


@click.command("import")
@click.option("--format", "fmt", type=click.Choice(FORMAT_NAMES), required=True,
              help="Format of SRC: vg (Visual Genome JSON), gqa (GQA scene graphs), coco (instances JSON), "
                   "provision (ProVision per-stage annotation JSON).")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), required=True,
              help="Folder for the scene-graph shards (created; must be empty, or an earlier import, unless "
                   "--overwrite).")
@click.option("--images", "image_root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder holding the images (image ids are paths relative to it). "
                   "Default: SRC when it is a folder, else the folder containing SRC.")
@click.option("--allow-pickle", is_flag=True,
              help="ProVision only: read pickled segmentation masks, with a restricted unpickler that admits "
                   "only numpy and scipy.sparse classes. Never use on files you do not trust.")
@click.option("--shard-size", type=click.IntRange(min=1), default=DEFAULT_SHARD_SIZE, show_default=True,
              help="Graphs per output shard.")
@engine_options(limit_help="Only the first N graphs (quick trials).")
def command(fmt: str, src: Path, out: Path, image_root: Path | None, allow_pickle: bool, shard_size: int,
            strict: bool, **kwargs: Any) -> None:
    """Import annotations in another format as mmgen scene graphs.

    All or nothing: the source is read and validated whole before any shard is written; on any error
    the command exits non-zero and OUT is left untouched. A rerun continues an interrupted import
    (and does nothing after a complete one); --overwrite replaces whatever OUT holds.

    \b
    Example:
      mmgen import --format coco instances_val2017.json --images val2017/ -o sg/
    """
    from ..engine.core import EngineError
    from ..stages.import_graphs import import_graphs

    options = options_from(**kwargs)
    try:
        summary = import_graphs(fmt, src, out, image_root=image_root, allow_pickle=allow_pickle,
                                shard_size=shard_size, options=options)
    except EngineError as exc:
        raise click.UsageError(str(exc)) from None
    check_strict(summary, strict)
