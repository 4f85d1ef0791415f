"""``mmgen eval-graphs``: how good are predicted scene graphs, against reference annotations."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

log = logging.getLogger("mmgen.eval")


def _fmt(v: float | None) -> str:
    return "   -" if v is None else f"{v:.3f}"


@click.command("eval-graphs")
@click.argument("pred", type=click.Path(exists=True, path_type=Path))
@click.argument("ref", type=click.Path(exists=True, path_type=Path))
@click.option("--iou", type=click.FloatRange(0, 1, min_open=True), default=0.5, show_default=True,
              help="Box IoU for a detection to count as a match.")
@click.option("--thresholds", default="0.25,0.35,0.5,0.65,0.8", show_default=True,
              help="Comma-separated detection score thresholds to report (pick yours from the table).")
@click.option("--label-map", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help='JSON object mapping labels onto shared names, e.g. {"man": "person", "woman": "person"}.')
@click.option("--per-label", is_flag=True, help="Also print precision and recall per label.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write all numbers to this JSON file.")
def command(pred: Path, ref: Path, iou: float, thresholds: str, label_map: Path | None, per_label: bool,
            json_out: Path | None) -> None:
    """Compare predicted scene graphs (PRED, from `mmgen annotate`) with reference graphs of the same
    images (REF, e.g. from `mmgen import --format coco|vg|gqa`).

    Reports detection precision and recall at IoU 0.5 for several score thresholds, mask IoU of
    matched objects, and attribute and relation recall on matched objects: the numbers to choose
    thresholds and models by.

    \b
    Example:
      mmgen eval-graphs out/scene_graphs coco_sg/ --label-map labels.json --per-label
    """
    from ..check.evaluate import evaluate

    try:
        ts = [float(t) for t in thresholds.split(",") if t.strip()]
    except ValueError:
        raise click.BadParameter(f"not a list of numbers: {thresholds!r}", param_hint="--thresholds") from None
    mapping = json.loads(label_map.read_text()) if label_map else None
    if mapping is not None and not (isinstance(mapping, dict) and all(isinstance(v, str) for v in mapping.values())):
        raise click.BadParameter("must be a JSON object of label -> label", param_hint="--label-map")
    results, unpaired = evaluate(pred, ref, ts, iou, mapping)
    if not results or results[0].images == 0:
        raise click.ClickException("no predicted graph has a reference graph with the same image id or sha256")
    if unpaired:
        log.warning("%d predicted graph(s) have no reference graph and were left out", unpaired)
    click.echo(f"{results[0].images} images, IoU {iou}")
    click.echo(f"{'score>=':>8} {'prec':>6} {'recall':>6} {'tp':>6} {'fp':>6} {'fn':>6} {'maskIoU':>8} "
               f"{'attrR':>6} {'relR':>6} {'relP':>6} {'textP':>6} {'falseNo':>7}")
    for r in results:
        d = r.to_dict()
        click.echo(f"{r.min_score:>8.2f} {_fmt(d['precision']):>6} {_fmt(d['recall']):>6} {d['tp']:>6} {d['fp']:>6} "
                   f"{d['fn']:>6} {_fmt(d['mask_iou']):>8} {_fmt(d['attribute_recall']):>6} "
                   f"{_fmt(d['relation_recall']):>6} {_fmt(d['relation_precision']):>6} "
                   f"{_fmt(d['text_precision']):>6} {d['evidence']['false_absences']:>7}")
    mid = results[len(results) // 2]
    ev = mid.to_dict()["evidence"]
    if ev["absences_checked"]:
        click.echo(f"evidence at score >= {mid.min_score}: missed objects searched for {ev['missed_searched']} "
                   f"(seen faintly {ev['missed_faint']}), not searchable {ev['missed_unsearchable']}; "
                   f"labels wrongly confirmed absent {ev['false_absences']} of {ev['absences_checked']}")
    if per_label:
        click.echo(f"\nper label at score >= {mid.min_score}:")
        for label, c in sorted(mid.to_dict()["per_label"].items()):
            click.echo(f"  {label:<24} prec {_fmt(c['precision'])}  recall {_fmt(c['recall'])}  "
                       f"(tp {c['tp']}, fp {c['fp']}, fn {c['fn']})")
    if json_out:
        from scene_graphs.io import atomic_write

        with atomic_write(json_out) as f:
            f.write(json.dumps({"unpaired": unpaired, "results": [r.to_dict() for r in results]}, indent=2).encode())
