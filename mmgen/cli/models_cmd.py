"""``mmgen models``: every model mmgen knows, the files it accepts and whether they are here."""

from __future__ import annotations

import json
from typing import Any, Sequence

import click


def _present(status: dict[str, Any]) -> str:
    if status["error"]:
        return "ERROR: " + status["error"]
    found = status["found"]
    if found:
        where = found["file"] or found["path"]
        return f"yes ({found['origin']}: {where})"
    scheme = (status["download"] or "").split(":", 1)[0]
    if scheme in {"ultralytics", "hf", "open_clip"}:
        return f"no (downloads via {scheme} unless offline)"
    return "no"


def format_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Plain text table, columns padded to their widest cell."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per model) instead of a table.")
@click.option("--weights", "weights", multiple=True, metavar="NAME=PATH",
              help="Check a path you would pass to annotate for a model; repeatable.")
@click.option("--no-verify", is_flag=True, help="Do not hash found files against their known sha256.")
def command(as_json: bool, weights: tuple[str, ...], no_verify: bool) -> None:
    """List the perception models, the weight files they accept and whether they are present.

    Weights are looked for in: --weights paths, $MMGEN_WEIGHTS_DIR, the user cache
    (~/.cache/mmgen/weights, or $MMGEN_CACHE_DIR/weights), the Hugging Face cache, and packages that
    ship their models. Nothing is downloaded.
    """
    from scene_graphs.perception.weights import CATALOG, cache_dir, model_status, weights_dir

    from .annotate_cmd import parse_weights

    explicit = parse_weights(weights)
    statuses = [model_status(spec, explicit.get(name), verify_hash=not no_verify) for name, spec in CATALOG.items()]
    if as_json:
        click.echo(json.dumps({"weights_dir": str(weights_dir()) if weights_dir() else None,
                               "cache_dir": str(cache_dir()), "models": statuses}, indent=2))
        return
    rows = []
    for st in statuses:
        present = _present(st)
        for i, f in enumerate(st["files"]):
            rows.append([st["model"] if i == 0 else "", st["task"] if i == 0 else "", f["name"],
                         (f["sha256"] or "-")[:16] + ("…" if f["sha256"] else ""),
                         st["license"] if i == 0 else "", present if i == 0 else ""])
    click.echo(format_table(rows, ["MODEL", "TASK", "ACCEPTED FILE", "SHA256", "LICENCE", "PRESENT"]))
    click.echo(f"\nweights dir: {weights_dir() or '(MMGEN_WEIGHTS_DIR not set)'}; cache: {cache_dir()}")
