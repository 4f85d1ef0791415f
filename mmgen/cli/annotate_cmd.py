"""``mmgen annotate``: images (a folder, a list file or a glob) -> scene-graph shards, with vision models.

Output folder layout (see :mod:`mmgen.engine` and :mod:`mmgen.stages.annotate`)::

    SG/part-00000.jsonl            graphs of the first ``--shard-size`` images (sorted by relative path)
    SG/part-00000.depth.npz        their depth maps, when the profile has depth
    SG/part-00000.done.json        completion marker: config fingerprint, input key, sizes, errors, timings
    SG/errors.jsonl                one line per image that gave no graph (path, image_id, stage, kind, error)
    SG/manifest.json               the run: settings, inputs, versions
    SG/summary.json, annotate.json counts, time per step, the models that ran (with sha256)
    SG/inputs.jsonl                the sorted input index (sizes, modification times, duplicates)

A rerun (after any interruption, ``kill -9`` included) redoes only shards that are missing or whose
images changed; other settings in the same folder are refused unless ``--overwrite``. Shards left
over from a larger earlier input are removed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import click

from scene_graphs.perception.profiles import PROFILES, STAGE_ORDER

from ..stages.annotate import DEFAULT_BATCH_SIZE, DEFAULT_DECODE_THREADS, DEFAULT_SHARD_SIZE
from ..engine.options import check_strict, engine_options, options_from

log = logging.getLogger("mmgen.annotate")


def parse_weights(values: Sequence[str]) -> dict[str, str]:
    """``NAME=PATH`` pairs; NAME is a model from ``mmgen models`` or a stage name."""
    from scene_graphs.perception.weights import CATALOG

    out: dict[str, str] = {}
    for v in values:
        name, sep, path = v.partition("=")
        name = name.strip()
        if not sep or not name or not path.strip():
            raise click.BadParameter(f"{v!r}: expected NAME=PATH", param_hint="--weights")
        if name not in CATALOG and name not in STAGE_ORDER:
            raise click.BadParameter(f"{name!r} is neither a model ({', '.join(CATALOG)}) nor a stage "
                                     f"({', '.join(STAGE_ORDER)})", param_hint="--weights")
        out[name] = path.strip()
    return out


@click.command("annotate")
@click.argument("images")
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), required=True,
              help="Folder for the scene-graph shards (created; a rerun resumes in it).")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder that image ids and paths are relative to (default: the folder given, the list "
                   "file's folder, or the glob's folder part).")
@click.option("--profile", type=click.Choice(list(PROFILES)), default=None,
              help="fast: detect, segment, colour, geometric relations, OCR. full: + depth, CLIP attributes, "
                   "CLIP relation check (each skipped with a warning when its weights are missing). quality (GPU): "
                   "CLIP tags, OWLv2, SAM 2.1, Depth Anything V2 large, CLIP checks, every model required. "
                   "Default: the config's profile, else fast.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML file with profile, per-stage options ([stages.NAME]) and [weights].")
@click.option("--device", default=None, help="auto (default), cpu, cuda or cuda:N.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help=f"Images per model call (default {DEFAULT_BATCH_SIZE}).")
@click.option("--shard-size", type=click.IntRange(min=1), default=None,
              help=f"Images per output shard (default {DEFAULT_SHARD_SIZE}).")
@click.option("--decode-threads", type=click.IntRange(min=1), default=DEFAULT_DECODE_THREADS, show_default=True,
              help="Threads decoding images ahead of the models (per worker).")
@click.option("--weights", "weights", multiple=True, metavar="NAME=PATH",
              help="Weights for a model (see `mmgen models`) or a stage; repeatable.")
@click.option("--set", "overrides", multiple=True, metavar="STAGE.KEY=VALUE",
              help="Override one stage option, e.g. detect.conf=0.3; repeatable.")
@click.option("--skip", multiple=True, type=click.Choice(STAGE_ORDER), help="Leave a stage out; repeatable.")
@click.option("--stage", "only", multiple=True, type=click.Choice(STAGE_ORDER),
              help="Run only these stages; repeatable.")
@click.option("--offline", is_flag=True, help="Never download weights (also MMGEN_OFFLINE=1).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help="Refuse images with more pixels than this (decompression bombs; default 100 million).")
@click.option("--gpus-per-worker", "num_gpus", type=click.FloatRange(min=0), default=None,
              help="[--engine ray] GPUs per annotator actor (default: 1 with a CUDA device, else 0).")
@engine_options(limit_help="Annotate only the first N images (in sorted order).")
def command(images: str, out: Path, root: Path | None, profile: str | None, config_file: Path | None,
            device: str | None, batch_size: int | None, shard_size: int | None, decode_threads: int,
            weights: tuple[str, ...], overrides: tuple[str, ...], skip: tuple[str, ...], only: tuple[str, ...],
            offline: bool, max_pixels: int | None, num_gpus: float | None, strict: bool, **engine: object) -> None:
    """Build a scene graph for every image of IMAGES with vision models.

    IMAGES is a folder (searched recursively for image files), a text file listing one image path
    per line, or a quoted glob such as 'photos/**/*.jpg'. Images that cannot be used (corrupt,
    truncated, empty, unreadable, too large...) are skipped and listed with the reason in
    errors.jsonl; exact duplicates are annotated once. Rerunning the same command resumes.

    \b
    Examples:
      mmgen annotate photos/ -o sg/
      mmgen annotate photos/ -o sg/ --profile full --device cuda:0 --batch-size 16
      mmgen annotate photos/ -o sg/ --set detect.conf=0.4 --skip ocr --weights yolo11n=yolo11n.pt
      mmgen annotate list.txt -o sg/ --shard 3/8          # this machine's eighth
      mmgen annotate photos/ -o sg/ --engine ray --address auto --device cuda
    """
    from scene_graphs.perception.base import AnnotatorError, MissingDependencyError
    from scene_graphs.perception.profiles import make_config
    from scene_graphs.perception.weights import WeightsError

    from ..stages.annotate import annotate
    from ..engine.core import EngineError

    cfg = make_config(profile, config_file=config_file, overrides=overrides, skip=skip, only=only)
    cfg.weights.update(parse_weights(weights))
    device = device or cfg.device or "auto"
    options = options_from(**engine, num_gpus=num_gpus)  # type: ignore[arg-type]
    try:
        summary = annotate(images, out, config=cfg, root=root, device=device, offline=True if offline else None,
                           shard_size=shard_size or cfg.shard_size or DEFAULT_SHARD_SIZE,
                           batch_size=batch_size or cfg.batch_size or DEFAULT_BATCH_SIZE,
                           max_pixels=max_pixels or cfg.max_pixels, decode_threads=decode_threads, options=options)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    except (WeightsError, MissingDependencyError, AnnotatorError, EngineError) as exc:
        raise click.ClickException(str(exc)) from exc
    if summary["images"] == 0:
        raise click.ClickException(f"no images found in {images}")
    check_strict(summary, strict)
