"""``mmgen import``: existing annotations (Visual Genome, GQA, COCO, ProVision) -> scene-graph shards."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from itertools import islice
from pathlib import Path

import click

log = logging.getLogger("mmgen.import")

DEFAULT_SHARD_SIZE = 1000


@click.command("import")
@click.option("--format", "fmt", type=click.Choice(["vg", "gqa", "coco", "provision"]), required=True,
              help="Format of SRC: vg (Visual Genome JSON), gqa (GQA scene graphs), coco (instances JSON), "
                   "provision (ProVision per-stage annotation JSON).")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), required=True,
              help="Folder for the scene-graph shards (created; must be empty unless --overwrite).")
@click.option("--images", "image_root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder holding the images (image ids are paths relative to it). "
                   "Default: SRC when it is a folder, else the folder containing SRC.")
@click.option("--allow-pickle", is_flag=True,
              help="ProVision only: read pickled segmentation masks, with a restricted unpickler that admits "
                   "only numpy and scipy.sparse classes. Never use on files you do not trust.")
@click.option("--shard-size", type=click.IntRange(min=1), default=DEFAULT_SHARD_SIZE, show_default=True,
              help="Graphs per output shard.")
@click.option("--overwrite", is_flag=True, help="Replace an existing, non-empty output folder.")
def command(fmt: str, src: Path, out: Path, image_root: Path | None, allow_pickle: bool, shard_size: int,
            overwrite: bool) -> None:
    """Import annotations in another format as mmgen scene graphs.

    All or nothing: shards are written to a staging folder and moved into OUT only when every record
    was read and validated; on any error the command exits non-zero and OUT is left untouched.

    \b
    Example:
      mmgen import --format coco instances_val2017.json --images val2017/ -o sg/
    """
    from scene_graphs.formats import ImportReport, get_format
    from scene_graphs.io import write_graphs

    from ..engine.core import EngineError, check_output_apart

    try:
        check_output_apart(out, [src], may_nest=[image_root or (src if src.is_dir() else src.parent)])
    except EngineError as exc:
        raise click.UsageError(str(exc)) from None
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise click.UsageError(f"output folder {out} is not empty (use --overwrite to replace it)")
    reader = get_format(fmt)
    report = ImportReport(source=str(src))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; OUT should get the usual permissions
    try:
        graphs = reader.read(src, image_root=image_root, report=report, allow_pickle=allow_pickle)
        shard = 0
        while batch := list(islice(graphs, shard_size)):
            write_graphs(staging / f"part-{shard:05d}.jsonl", batch)
            report.graphs += len(batch)
            shard += 1
        (staging / "import_report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("imported %d scene graphs from %s into %s (%d shard(s))", report.graphs, src, out, shard)
    if report.clipped_boxes:
        log.info("clipped %d box(es) that spilled over the image edge", report.clipped_boxes)
    if report.missing_images:
        log.warning("%d image(s) could not be found under the image root, e.g. %s",
                    len(report.missing_images), ", ".join(report.missing_images[:3]))
    for reason, count in sorted(report.dropped.items()):
        log.warning("dropped %d: %s", count, reason)
