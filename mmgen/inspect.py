"""Seeing what a run made: overlays, readable trees of scene graphs, QA records, per-image verification.

* :func:`draw` — a scene graph over its image (boxes, masks, labels, relations, depth inset, OCR).
* :func:`format_graph` / :func:`format_records` — the text ``mmgen inspect`` prints.
* :func:`verify_image` — ``mmgen verify``'s checks on the records of one image only (the viewer runs it
  lazily, one image at a time).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scene_graphs.draw import LAYERS, ImageLike, draw_graph
from scene_graphs.model import SceneGraph

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from .store import Output

log = logging.getLogger("mmgen.inspect")

__all__ = ["LAYERS", "RecordCheck", "draw", "format_graph", "format_records", "verify_image"]


def draw(graph: SceneGraph, image: ImageLike = None, show: Iterable[str] = LAYERS, **options: Any) -> Image.Image:
    """``graph`` drawn over ``image`` (PIL image, array, path or None): a new PIL image.

    ``show`` picks layers among ``boxes``, ``masks``, ``labels`` (label and score tags), ``relations``
    (arrows with predicates), ``depth`` (an inset of the depth map, bright = near) and ``text`` (OCR
    boxes with what they read). Options: ``max_side``, ``min_side``, ``max_relations``, ``min_score``
    (see :func:`scene_graphs.draw.draw_graph`).
    """
    return draw_graph(graph, image, show, **options)


# ------------------------------------------------------------------------------------ text
def _num(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


def _box(values: Sequence[float]) -> str:
    return "[" + ", ".join(_num(v) for v in values) + "]"


def format_graph(graph: SceneGraph) -> str:
    """A readable tree of one scene graph (objects with attributes, relations, text, depth)."""
    share = float(graph.width * graph.height)
    lines = [f"image {graph.image_id}  {graph.path or '(no path)'}  {graph.width}x{graph.height}",
             f"fields: {', '.join(sorted(graph.fields)) or 'none'}"]
    labels = {o.id: o.label for o in graph.objects}
    sections: list[tuple[str, list[str]]] = []
    objs = []
    for o in graph.objects:
        parts = [f"{o.id}: {o.label} {o.score:.2f} {_box(o.box.to_list())}"]
        if o.mask is not None:
            parts.append(f"mask {100 * o.mask.area / share:.1f}%")
        if o.depth is not None:
            parts.append(f"depth {o.depth:.3g}")
        if o.synset:
            parts.append(o.synset)
        if o.attributes:
            parts.append("attributes: " + ", ".join(f"{a.name} ({a.category} {a.score:.2f})" for a in o.attributes))
        objs.append("  ".join(parts))
    sections.append((f"objects ({len(graph.objects)})", objs))
    sections.append((f"relations ({len(graph.relations)})", [
        f"{r.subject} {labels[r.subject]} --{r.predicate}--> {r.object} {labels[r.object]}  "
        f"({r.score:.2f}, {r.source})" for r in graph.relations]))
    sections.append((f"text ({len(graph.text)})", [
        f"{t.id}: {t.text!r} {t.score:.2f} {_box(t.box.to_list())}"
        + (f" on {t.object} {labels[t.object]}" if t.object else "") for t in graph.text]))
    if graph.depth is not None:
        d = graph.depth
        convention = "larger is nearer" if d.larger_is_nearer else "larger is farther"
        line = f"{d.shape[1]}x{d.shape[0]} map, values {float(d.values.min()):.3g}..{float(d.values.max()):.3g}, "
        sections.append(("depth", [line + convention]))
    else:
        sections.append(("depth", ["none"]))
    for i, (title, items) in enumerate(sections):
        last = i == len(sections) - 1
        lines.append(("└── " if last else "├── ") + title)
        pad = "    " if last else "│   "
        for j, item in enumerate(items):
            lines.append(pad + ("└── " if j == len(items) - 1 else "├── ") + item)
    return "\n".join(lines)


@dataclass(frozen=True)
class RecordCheck:
    """Verification result of one QA record: ``ok`` is None when it was not checked."""

    ok: bool | None
    message: str = ""


def format_records(records: Iterable[Mapping[str, Any]], checks: Mapping[str, RecordCheck] | None = None) -> str:
    """QA records (raw dicts, as :meth:`mmgen.store.Output.records` gives them) as readable text."""
    out: list[str] = []
    for rec in records:
        head = f"[{rec.get('program')}] {rec.get('question_type')} · {rec.get('answer_type')} · {rec.get('id')}"
        if rec.get("_status"):
            why = ": ".join(x for x in (rec.get("_reason"), rec.get("_detail")) if x)
            head += f" · {rec['_status']}" + (f" ({why})" if why else "")
        if checks is not None and rec.get("id") in checks:
            c = checks[rec["id"]]
            head += " · verified" if c.ok else (" · NOT VERIFIED: " + c.message if c.ok is False
                                                 else f" · not checked ({c.message})")
        out.append(head)
        turns = rec.get("turns") or [[rec.get("question"), rec.get("answer")]]
        for q, a in turns:
            out.append(f"  Q: {q}")
            if rec.get("options") and (q == rec.get("question")):
                for k, opt in enumerate(rec["options"]):
                    mark = "*" if k == rec.get("answer_index") else " "
                    out.append(f"   {mark}{chr(65 + k) if k < 26 else k}. {opt}")
            out.append(f"  A: {a}")
        if rec.get("rationale"):
            out.append(f"  why: {rec['rationale']}")
        out.append("")
    return "\n".join(out).rstrip() + ("\n" if out else "")


# ------------------------------------------------------------------------------------ verification
VERIFIABLE_STAGES = ("generate", "generate-multi")


def verify_image(output: Output, image_id: str) -> dict[str, RecordCheck]:
    """``mmgen verify`` on the records of one image (every QA folder of ``output``): record id -> check.

    Each QA folder's records about the image (for an image set: every record of the set) are written
    with the graphs they need to a temporary folder with the folder's manifest, and
    :func:`mmgen.check.verify.verify` runs on it, so the checks are exactly those of ``mmgen verify``. Records
    of folders that are not generate output (an evolve stage rewrites text) are not checked.
    """
    from scene_graphs.io import write_graphs

    from .check.verify import verify

    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in output.records(image_id):
        by_source[rec["_source"]].append(rec)
    results: dict[str, RecordCheck] = {}
    for name, records in by_source.items():
        source = output.source(name)
        if source.stage not in VERIFIABLE_STAGES or source.config is None:
            why = f"{name}/ is {source.stage or 'not'} a generate output with a manifest"
            results.update({r["id"]: RecordCheck(None, why) for r in records})
            continue
        needed = list(dict.fromkeys(i for r in records for i in r["images"]))
        missing = [i for i in needed if i not in output]
        graphs = [output.graph(i) for i in needed if i in output]
        with tempfile.TemporaryDirectory(prefix="mmgen-verify-") as tmp:
            sg, qa = Path(tmp) / "sg", Path(tmp) / "qa"
            qa.mkdir()
            write_graphs(sg / "part-00000.jsonl", graphs)
            with (qa / "part-00000.jsonl").open("wb") as f:
                import orjson

                for r in records:
                    f.write(orjson.dumps({k: v for k, v in r.items() if not k.startswith("_")}) + b"\n")
            manifest = {"stage": source.stage, "config": source.config,
                        "inputs": [str((sg / "part-00000.jsonl").resolve())], "outputs": ["part-00000.jsonl"]}
            (qa / "manifest.json").write_text(json.dumps(manifest))
            report = verify(qa, sg)
        results.update(_assign(records, report.problems, missing))
    return results


def _assign(records: list[dict[str, Any]], problems: list[str], missing: list[str]) -> dict[str, RecordCheck]:
    """Attach ``verify``'s problem lines to records: a line names a record id, or an image (set) and
    program; any other line concerns every record."""
    def prefixes(r: dict[str, Any]) -> tuple[str, str]:
        group = (f"image {r['images'][0]}, program {r['program']}:" if len(r["images"]) == 1 else
                 f"images {'+'.join(r['images'])}, program {r['program']}:")
        return f"{r['id']}:", group

    owned: dict[str, list[str]] = defaultdict(list)
    general: list[str] = []
    for problem in problems:
        owners = [r["id"] for r in records if problem.startswith(prefixes(r))]
        for rid in owners:
            owned[rid].append(problem)
        if not owners:
            general.append(problem)
    out: dict[str, RecordCheck] = {}
    for r in records:
        lost = [i for i in r["images"] if i in missing]
        if lost:
            out[r["id"]] = RecordCheck(False, f"no scene graph for image {lost[0]}")
        elif owned[r["id"]] or general:
            out[r["id"]] = RecordCheck(False, "; ".join(owned[r["id"]] + general))
        else:
            out[r["id"]] = RecordCheck(True, "")
    return out
