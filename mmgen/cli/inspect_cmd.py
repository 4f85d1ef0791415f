"""``mmgen inspect``: print an image's scene graph and QA records, draw its overlay."""

from __future__ import annotations

import logging
from pathlib import Path

import click

log = logging.getLogger("mmgen.inspect")

LAYER_NAMES = ("boxes", "masks", "labels", "relations", "depth", "text")


def _layers(value: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [n for n in names if n not in LAYER_NAMES]
    if unknown:
        raise click.BadParameter(f"unknown layer(s) {', '.join(unknown)}; choose from {', '.join(LAYER_NAMES)}",
                                 param_hint="--show")
    return names


@click.command("inspect")
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--image", "image", default=None,
              help="Image id (or image path as stored in the graphs). Without it, the images are listed.")
@click.option("--program", "programs", multiple=True,
              help="Only QA records of this program (repeatable; a family name such as 'attributes' works too).")
@click.option("-o", "--out", "png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the overlay PNG here.")
@click.option("--show", default=",".join(LAYER_NAMES), show_default=True, help="Overlay layers, comma-separated.")
@click.option("--max-side", type=click.IntRange(min=16), default=1600, show_default=True,
              help="Longest side of the overlay PNG (larger images are scaled down).")
@click.option("--image-root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder the graph paths are relative to (default: read from the output folder).")
@click.option("--verify", "check", is_flag=True, help="Re-run each record's program on the graph (mmgen verify).")
def command(out_dir: Path, image: str | None, programs: tuple[str, ...], png: Path | None, show: str,
            max_side: int, image_root: Path | None, check: bool) -> None:
    """Print the scene graph of one image as a tree, then its QA records; write its overlay.

    \b
    Examples:
      mmgen inspect out/                                   # list the images
      mmgen inspect out/ --image street_bus.jpg -o bus.png
      mmgen inspect out/ --image 42c7731d942c67a4 --program single.exists --verify
    """
    from scene_graphs.io import atomic_write

    from ..inspect import draw, format_graph, format_records, verify_image
    from ..store import open_output

    layers = _layers(show)
    with open_output(out_dir, image_root) as output:
        selected = _programs(output, programs)
        if image is None:
            if png is not None:
                raise click.UsageError("--out needs --image")
            rows = output.images(program=selected)
            click.echo(f"{'image id':<20} {'objects':>7} {'relations':>9} {'text':>5} {'qa':>5}  path")
            for info in rows:
                click.echo(f"{info.image_id:<20} {info.objects:>7} {info.relations:>9} {info.text:>5} "
                           f"{info.qa:>5}  {info.path}")
            log.info("%d image(s) in %s; pick one with --image", len(rows), output.graphs_dir)
            return
        try:
            image_id = output.resolve_image_id(image)
        except KeyError as exc:
            raise click.BadParameter(exc.args[0], param_hint="--image") from None
        graph = output.graph(image_id)
        click.echo(format_graph(graph))
        records = list(output.records(image_id, program=selected))
        checks = verify_image(output, image_id) if check else None
        what = f" of {', '.join(selected)}" if selected else ""
        click.echo(f"\nQA records ({len(records)}{what}):\n")
        click.echo(format_records(records, checks), nl=False)
        if png is not None:
            path = output.image_path(image_id)
            if path is None:
                log.warning("image %s not found under the image root %s: drawing on a plain canvas", graph.path,
                            output.image_root)
            overlay = draw(graph, path, show=layers, max_side=max_side)
            with atomic_write(png) as f:
                overlay.save(f, format="PNG")
            log.info("overlay (%dx%d, layers %s) -> %s", *overlay.size, ",".join(layers), png)
        if checks is not None and any(c.ok is False for c in checks.values()):
            raise SystemExit(1)


def _programs(output: object, names: tuple[str, ...]) -> list[str] | None:
    """Program ids for the --program values (ids, or families as registered)."""
    if not names:
        return None
    known = output.programs  # type: ignore[attr-defined]
    out: list[str] = []
    for name in names:
        if name in known:
            out.append(name)
            continue
        from programs.base import load_all

        family = [pid for pid, cls in load_all().items() if cls.family == name and pid in known]
        if not family and name not in load_all():
            raise click.BadParameter(f"no program or family {name!r} in this output "
                                     f"(programs here: {', '.join(known) or 'none'})", param_hint="--program")
        out.extend(family or [name])
    return out
