"""``mmgen annotate``: a folder of images -> scene-graph shards, with vision models.

Output folder layout::

    SG/part-00000.jsonl            graphs of the first ``--shard-size`` images (sorted by relative path)
    SG/part-00000.depth.npz        their depth maps, when the profile has depth
    SG/part-00000.done.json        completion marker: the shard's images, config fingerprint, errors
    SG/errors.jsonl                one line per image that gave no graph (path, stage, reason)
    SG/annotate.json               what ran: profile, settings, models with sha256, counts

A rerun skips every shard whose marker lists the same images and the same settings, so an
interrupted run resumes where it stopped; ``--overwrite`` redoes everything. Shards left over from
a larger earlier input are removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import click

from scene_graphs.perception.profiles import PROFILES, STAGE_ORDER

log = logging.getLogger("mmgen.annotate")

DEFAULT_SHARD_SIZE = 1000
DEFAULT_BATCH_SIZE = 8
SHARD_PREFIX = "part-"


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


def shard_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index:05d}"


def fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_marker(out: Path, index: int) -> dict[str, Any] | None:
    try:
        data = json.loads((out / f"{shard_name(index)}.done.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def annotate_shard(pipeline: Any, paths: Sequence[Path], root: Path, out: Path, index: int, batch_size: int,
                   max_pixels: int, config_id: str) -> dict[str, Any]:
    """Annotate one shard's images, write its graphs and then its completion marker (both atomically)."""
    from scene_graphs.io import atomic_write, write_graphs
    from scene_graphs.perception.pipeline import ImageFailure, annotate_paths

    graphs, errors = [], []
    for res in annotate_paths(pipeline, paths, root, batch_size=batch_size, max_pixels=max_pixels):
        if isinstance(res, ImageFailure):
            errors.append(res.to_dict())
            log.warning("skipped %s: %s", res.path, res.reason)
        else:
            graphs.append(res)
    write_graphs(out / f"{shard_name(index)}.jsonl", graphs)
    from scene_graphs.ids import relative_key

    marker = {"shard": index, "config": config_id, "images": [relative_key(p, root) for p in paths],
              "graphs": len(graphs), "errors": errors}
    with atomic_write(out / f"{shard_name(index)}.done.json") as f:
        f.write(json.dumps(marker, indent=1).encode() + b"\n")
    return marker


def _remove_stale_shards(out: Path, n_shards: int) -> None:
    for p in sorted(out.glob(f"{SHARD_PREFIX}*")):
        stem = p.name[len(SHARD_PREFIX):].split(".", 1)[0]
        if stem.isdigit() and int(stem) >= n_shards:
            p.unlink()
            log.info("removed %s (left over from a larger earlier input)", p.name)


@click.command("annotate")
@click.argument("images", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), required=True,
              help="Folder for the scene-graph shards (created; a rerun resumes in it).")
@click.option("--profile", type=click.Choice(list(PROFILES)), default=None,
              help="fast: detect, segment, colour, geometric relations, OCR. full: + depth, CLIP attributes, "
                   "CLIP relation check (each skipped with a warning when its weights are missing). "
                   "Default: the config's profile, else fast.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML file with profile, per-stage options ([stages.NAME]) and [weights].")
@click.option("--device", default=None, help="auto (default), cpu, cuda or cuda:N.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help=f"Images per model call (default {DEFAULT_BATCH_SIZE}).")
@click.option("--shard-size", type=click.IntRange(min=1), default=None,
              help=f"Images per output shard (default {DEFAULT_SHARD_SIZE}).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Annotate only the first N images.")
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
@click.option("--overwrite", is_flag=True, help="Redo every shard, even complete ones.")
def command(images: Path, out: Path, profile: str | None, config_file: Path | None, device: str | None,
            batch_size: int | None, shard_size: int | None, limit: int | None, weights: tuple[str, ...],
            overrides: tuple[str, ...], skip: tuple[str, ...], only: tuple[str, ...], offline: bool,
            max_pixels: int | None, overwrite: bool) -> None:
    """Build a scene graph for every image below IMAGES with vision models.

    \b
    Examples:
      mmgen annotate photos/ -o sg/
      mmgen annotate photos/ -o sg/ --profile full --device cuda:0 --batch-size 16
      mmgen annotate photos/ -o sg/ --set detect.conf=0.4 --skip ocr --weights yolo11n=yolo11n.pt
    """
    from mmgen import __version__
    from scene_graphs.io import atomic_write, write_jsonl
    from scene_graphs.perception.base import AnnotatorError, MissingDependencyError, library_versions
    from scene_graphs.perception.images import DEFAULT_MAX_PIXELS, find_images
    from scene_graphs.perception.profiles import build_pipeline, make_config
    from scene_graphs.perception.weights import WeightsError

    cfg = make_config(profile, config_file=config_file, overrides=overrides, skip=skip, only=only)
    weight_paths = parse_weights(weights)
    device = device or cfg.device or "auto"
    batch_size = batch_size or cfg.batch_size or DEFAULT_BATCH_SIZE
    shard_size = shard_size or cfg.shard_size or DEFAULT_SHARD_SIZE
    max_pixels = max_pixels or cfg.max_pixels or DEFAULT_MAX_PIXELS
    cfg.max_pixels = max_pixels
    cfg.weights.update(weight_paths)

    root = images if images.is_dir() else images.parent
    paths = find_images(images)
    if limit:
        paths = paths[:limit]
    if not paths:
        raise click.ClickException(f"no images found below {images}")
    out.mkdir(parents=True, exist_ok=True)
    settings = cfg.to_dict()
    config_id = fingerprint(settings)
    chunks = [paths[i:i + shard_size] for i in range(0, len(paths), shard_size)]
    _remove_stale_shards(out, len(chunks))

    from scene_graphs.ids import relative_key

    pipeline = None
    markers: list[dict[str, Any]] = []
    started = time.perf_counter()
    done_images = 0
    try:
        for index, chunk in enumerate(chunks):
            keys = [relative_key(p, root) for p in chunk]
            marker = None if overwrite else read_marker(out, index)
            if (marker and marker.get("config") == config_id and marker.get("images") == keys
                    and (out / f"{shard_name(index)}.jsonl").exists()):
                log.info("shard %d/%d is complete, skipping", index + 1, len(chunks))
                markers.append(marker)
                continue
            if pipeline is None:
                pipeline = build_pipeline(cfg, offline=True if offline else None,
                                          provenance={"mmgen": __version__, "config": config_id}).load(device)
                log.info("stages: %s%s", ", ".join(s.name for s in pipeline.stages),
                         f" (skipped: {', '.join(pipeline.skipped)})" if pipeline.skipped else "")
            t0 = time.perf_counter()
            marker = annotate_shard(pipeline, chunk, root, out, index, batch_size, max_pixels, config_id)
            markers.append(marker)
            done_images += len(chunk)
            rate = len(chunk) / max(time.perf_counter() - t0, 1e-9)
            log.info("shard %d/%d: %d graphs, %d errors (%.2f images/s)", index + 1, len(chunks),
                     marker["graphs"], len(marker["errors"]), rate)
    except (WeightsError, MissingDependencyError, AnnotatorError) as exc:
        raise click.ClickException(str(exc)) from exc

    errors = [e for m in markers for e in m.get("errors", [])]
    write_jsonl(out / "errors.jsonl", errors)
    summary: dict[str, Any] = {
        "mmgen": __version__,
        "images_root": str(root.resolve()),
        "profile": cfg.profile,
        "config": config_id,
        "settings": settings,
        "device": device,
        "images": len(paths),
        "graphs": sum(int(m.get("graphs", 0)) for m in markers),
        "errors": len(errors),
        "shards": len(chunks),
        "annotated_this_run": done_images,
        "seconds_this_run": round(time.perf_counter() - started, 3),
    }
    if pipeline is not None:
        summary["stages"] = {s.name: s.provenance() for s in pipeline.stages}
        summary["skipped_stages"] = pipeline.skipped
        summary["libraries"] = library_versions(["numpy", "pillow", "pycocotools", "scikit-image"])
    else:
        previous = out / "annotate.json"
        if previous.exists():
            try:
                old = json.loads(previous.read_text())
                for key in ("stages", "skipped_stages", "libraries"):
                    if key in old:
                        summary[key] = old[key]
            except ValueError:
                pass
    with atomic_write(out / "annotate.json") as f:
        f.write(json.dumps(summary, indent=2).encode() + b"\n")
    log.info("%d scene graphs in %s (%d shard(s)); %d image(s) skipped, see %s", summary["graphs"], out,
             len(chunks), len(errors), out / "errors.jsonl")
