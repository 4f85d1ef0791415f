"""``mmgen programs``: list the registered QA programs."""

from __future__ import annotations

import json

import click


@click.command("programs")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(as_json: bool) -> None:
    """List every registered QA program: id, family, required graph fields, answer type, templates."""
    from programs.base import load_all

    rows = [{"id": pid, "family": cls.family, "requires": sorted(cls.requires), "answer_type": cls.answer_type,
             "templates": len(cls.templates), "options": cls.num_options,
             "summary": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""}
            for pid, cls in load_all().items()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max((len(r["id"]) for r in rows), default=10)
    click.echo(f"{'id':<{width}}  {'family':<12} {'answer':<10} {'tmpl':>4}  requires")
    for r in rows:
        click.echo(f"{r['id']:<{width}}  {r['family']:<12} {r['answer_type']:<10} {r['templates']:>4}  "
                   f"{','.join(r['requires'])}")
    click.echo(f"{len(rows)} programs")
