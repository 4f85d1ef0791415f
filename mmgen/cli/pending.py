"""Verbs of the design that are not built yet: each says so and exits with status 2.

When a verb is built, give it its own module (``mmgen/cli/<verb>_cmd.py``); the built
command then takes the place of the pending one automatically.
"""

from __future__ import annotations

import click

FLOW_ORDER = (
    "run", "annotate", "import", "generate", "evolve", "curate", "export",
    "verify", "validate", "programs", "models", "inspect", "view", "stats", "eval-graphs",
)

PENDING = {
    "run": ("Run the whole flow on a folder of images: annotate, generate, export.", 6),
    "annotate": ("Build a scene graph for every image with vision models.", 5),
    "generate": ("Run the QA programs over scene graphs and write QA records.", 3),
    "evolve": ("Rewrite QA records with a language model (MMEvol-style rounds).", 8),
    "curate": ("Deduplicate, balance and score QA records; drop the weak ones.", 8),
    "export": ("Write QA records as LLaVA, ShareGPT, OpenAI messages, HF datasets or ProVision files.", 7),
    "verify": ("Re-run each QA record's program on its scene graph and report mismatches.", 3),
    "validate": ("Check an exported training file: image tokens, paths, turns, ids.", 7),
    "programs": ("List every registered QA program.", 3),
    "models": ("List the perception models, the weight files they accept and whether they are present.", 5),
    "inspect": ("Print an image's scene graph and QA records and draw the overlay.", 9),
    "view": ("Serve a local web viewer over an output folder.", 9),
    "stats": ("Write a report with plots about an output folder.", 9),
    "eval-graphs": ("Compare predicted scene graphs with reference graphs.", 5),
}


def _pending_command(name: str, summary: str, issue: int) -> click.Command:
    def callback(args: tuple[str, ...]) -> None:
        click.echo(f"mmgen {name}: not built yet in this version (tracked in issue {issue}).", err=True)
        raise SystemExit(2)

    return click.Command(
        name,
        callback=callback,
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        help=f"{summary}\n\n(Not built yet: exits with status 2.)",
        short_help=f"[not built yet] {summary}",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


def commands() -> list[click.Command]:
    return [_pending_command(name, summary, issue) for name, (summary, issue) in PENDING.items()]
