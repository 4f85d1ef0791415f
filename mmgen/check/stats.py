"""``mmgen stats``: numbers and plots about an output folder, as a small HTML report.

:func:`collect` streams the graphs and QA records once (counters only, so memory stays bounded; an
answer vocabulary per program is capped at :data:`MAX_ANSWERS` distinct values) and returns plain
numbers; :func:`write_report` saves them as ``stats.json``, one PNG per plot (matplotlib, Agg canvas)
and ``index.html`` that shows them all.

Plots: QA records per program (free-form / multiple choice), answer distribution per program,
multiple-choice option-position balance (share of correct answers at each position, with a
chi-square test against uniform), objects per image, label / attribute / relation frequency, and
drop reasons when curation output exists.
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scene_graphs.io import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from ..store import Output

log = logging.getLogger("mmgen.stats")

MAX_ANSWERS = 1000
"""Distinct answers counted per program; later new answers are counted as "other"."""
OTHER = "(other answers)"
TOP = 30
"""Bars in the frequency plots."""


@dataclass
class Stats:
    """Everything the report shows, as plain counters."""

    images: int = 0
    records: int = 0
    orphan_records: int = 0
    per_program: Counter = field(default_factory=Counter)
    per_form: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    """program -> question_type -> records"""
    per_answer_type: Counter = field(default_factory=Counter)
    answers: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    positions: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    """program -> correct option index -> multiple-choice records"""
    options: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    """program -> number of options -> multiple-choice records"""
    objects_per_image: Counter = field(default_factory=Counter)
    relations_per_image: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    attributes: Counter = field(default_factory=Counter)
    """"name (category)" -> objects"""
    predicates: Counter = field(default_factory=Counter)
    text_regions: int = 0
    statuses: Counter = field(default_factory=Counter)
    drop_reasons: Counter = field(default_factory=Counter)
    curated: bool = False

    def to_dict(self) -> dict[str, Any]:
        def plain(c: Any) -> Any:
            if isinstance(c, Counter):
                return {str(k): v for k, v in sorted(c.items(), key=lambda kv: (-kv[1], str(kv[0])))}
            if isinstance(c, dict):
                return {k: plain(v) for k, v in sorted(c.items())}
            return c

        out = {k: plain(v) for k, v in self.__dict__.items()}
        out["position_balance"] = {p: position_balance(self.positions[p], self.options[p])
                                   for p in sorted(self.positions)}
        return out


def position_balance(positions: Counter, options: Counter) -> dict[str, Any]:
    """Share of correct answers per option position and the chi-square p-value against uniform
    (None when the records have different numbers of options or too few for a test)."""
    from scipy.stats import chisquare

    n = sum(positions.values())
    k = max(options) if options else 0
    shares = [positions.get(i, 0) / n if n else 0.0 for i in range(k)]
    p_value = None
    if len(options) == 1 and k > 1 and n >= 5 * k:  # the usual rule for the chi-square approximation
        p_value = float(chisquare([positions.get(i, 0) for i in range(k)]).pvalue)
    return {"records": n, "options": k, "shares": shares, "p_value": p_value}


def collect(output: Output) -> Stats:
    """Count everything in one pass over the graphs and one over the QA records."""
    s = Stats(curated=output.curated)
    for rec in output.graph_records():
        s.images += 1
        objects = [o for o in rec.get("objects") or [] if isinstance(o, dict)]
        relations = rec.get("relations") or []
        s.objects_per_image[len(objects)] += 1
        s.relations_per_image[len(relations)] += 1
        s.text_regions += len(rec.get("text") or [])
        for o in objects:
            s.labels[str(o.get("label"))] += 1
            for a in o.get("attributes") or []:
                name, category = (a, "other") if isinstance(a, str) else (a.get("name"), a.get("category", "other"))
                s.attributes[f"{name} ({category})"] += 1
        for r in relations:
            if isinstance(r, dict):
                s.predicates[str(r.get("predicate"))] += 1
    s.orphan_records = output.orphans
    for rec in output.records():
        program = rec["program"]
        s.records += 1
        s.per_program[program] += 1
        s.per_form[program][str(rec.get("question_type"))] += 1
        s.per_answer_type[str(rec.get("answer_type"))] += 1
        answers = s.answers[program]
        answer = str(rec.get("answer"))
        if answer in answers or len(answers) < MAX_ANSWERS:
            answers[answer] += 1
        else:
            answers[OTHER] += 1
        if rec.get("options") and isinstance(rec.get("answer_index"), int):
            s.positions[program][rec["answer_index"]] += 1
            s.options[program][len(rec["options"])] += 1
        if rec.get("_status"):
            s.statuses[rec["_status"]] += 1
            if rec["_status"] == "dropped":
                s.drop_reasons[rec.get("_reason") or "unspecified"] += 1
    return s


# ------------------------------------------------------------------------------------ plots
def _figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout=layout)


def _barh(counts: list[tuple[str, float]], title: str, xlabel: str, colors: list[Any] | None = None) -> Figure:
    fig = _figure(8, max(2.0, 0.28 * len(counts) + 1.2))
    ax = fig.add_subplot()
    names = [n for n, _ in counts][::-1]
    values = [v for _, v in counts][::-1]
    ax.barh(names, values, color=(colors[::-1] if colors else "#4c72b0"))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.tick_params(axis="y", labelsize=8)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:g}", va="center", fontsize=7)
    return fig


def plot_qa_per_program(s: Stats) -> Figure:
    programs = sorted(s.per_program, key=lambda p: (-s.per_program[p], p))
    forms = sorted({f for p in programs for f in s.per_form[p]})
    fig = _figure(8, max(2.0, 0.28 * len(programs) + 1.4))
    ax = fig.add_subplot()
    left = [0] * len(programs)
    ys = list(range(len(programs)))[::-1]
    for form, color in zip(forms, ("#4c72b0", "#dd8452", "#55a868", "#c44e52")):
        widths = [s.per_form[p][form] for p in programs]
        ax.barh(ys, widths, left=left, label=form.replace("_", " "), color=color)
        left = [a + b for a, b in zip(left, widths)]
    ax.set_yticks(ys, programs, fontsize=8)
    ax.set_xlabel("QA records")
    ax.set_title(f"QA records per program ({s.records} in all)")
    if forms:
        ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_answers(s: Stats, top: int = 8, max_panels: int = 60) -> Figure:
    programs = sorted(s.answers, key=lambda p: (-s.per_program[p], p))[:max_panels]
    cols = 3
    rows = max(1, math.ceil(len(programs) / cols))
    height = 2.2 * rows + 0.9
    fig = _figure(12, height, layout=None)  # fixed margins: a layout engine takes seconds on many panels
    fig.subplots_adjust(left=0.12, right=0.98, top=1 - 0.8 / height, bottom=0.3 / height, wspace=0.75, hspace=0.45)
    fig.suptitle("Answer distribution per program (share of its records; top answers)", y=1 - 0.2 / height)
    for i, program in enumerate(programs):
        ax = fig.add_subplot(rows, cols, i + 1)
        counts = s.answers[program]
        total = sum(counts.values())
        best = counts.most_common(top)
        rest = total - sum(v for _, v in best)
        items = best + ([("(rest)", rest)] if rest else [])
        names = [(n if len(n) <= 24 else n[:23] + "…") for n, _ in items][::-1]
        ax.barh(range(len(items)), [v / total for _, v in items][::-1], color="#4c72b0")
        ax.set_yticks(range(len(items)), names, fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_title(f"{program} ({total}, {len(counts)} distinct)", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    return fig


def plot_positions(s: Stats) -> Figure:
    import numpy as np
    from matplotlib import colormaps

    programs = sorted(s.positions)
    k = max((max(s.options[p]) for p in programs), default=0)
    fig = _figure(8, max(2.0, 0.3 * len(programs) + 1.6))
    ax = fig.add_subplot()
    if not programs:
        ax.text(0.5, 0.5, "no multiple-choice records", ha="center", va="center")
        ax.set_axis_off()
        return fig
    shares = np.full((len(programs), k), np.nan)  # positions a program does not have stay blank
    for i, p in enumerate(programs):
        n = sum(s.positions[p].values())
        for j in range(max(s.options[p])):
            shares[i, j] = s.positions[p].get(j, 0) / n
    cmap = colormaps["viridis"].with_extremes(bad="#eeeeee")
    image = ax.imshow(np.ma.masked_invalid(shares), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i, p in enumerate(programs):
        for j in range(k):
            if not np.isnan(shares[i, j]):
                ax.text(j, i, str(s.positions[p].get(j, 0)), ha="center", va="center", fontsize=7,
                        color="white" if shares[i, j] < 0.6 else "black")
    ax.set_xticks(range(k), [chr(65 + j) for j in range(k)])
    ax.set_yticks(range(len(programs)), programs, fontsize=8)
    ax.set_xlabel("position of the correct option (cells: records)")
    ax.set_title("Multiple-choice option-position balance (share per program; grey: no such option)")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def plot_histogram(counts: Counter, title: str, xlabel: str) -> Figure:
    fig = _figure(7, 3.2)
    ax = fig.add_subplot()
    xs = sorted(counts)
    ax.bar(xs, [counts[x] for x in xs], width=0.85, color="#55a868")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    return fig


def _top(counter: Counter, n: int = TOP) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


PLOTS = ("qa_per_program", "answers_per_program", "option_positions", "objects_per_image", "labels", "attributes",
         "relations", "drop_reasons")


def make_plots(s: Stats) -> dict[str, tuple[Figure, str]]:
    """Plot name -> (figure, caption). ``drop_reasons`` only when curation output exists."""
    from matplotlib import colormaps

    categories = sorted({k.rsplit(" (", 1)[-1] for k in s.attributes})
    palette = colormaps["tab10"]
    attr_top = _top(s.attributes)
    attr_colors = [palette(categories.index(k.rsplit(" (", 1)[-1]) % 10) for k, _ in attr_top]
    plots = {
        "qa_per_program": (plot_qa_per_program(s), "QA records per program, split by form."),
        "answers_per_program": (plot_answers(s), "Most frequent answers of each program, as a share of its records."),
        "option_positions": (plot_positions(s), ("Where the correct option sits in multiple-choice records; "
                                                 "balanced programs spread evenly.")),
        "objects_per_image": (plot_histogram(s.objects_per_image, f"Objects per image ({s.images} images)",
                                             "objects"), "How many objects each scene graph has."),
        "labels": (_barh(_top(s.labels), f"Object labels (top {TOP} of {len(s.labels)})", "objects"),
                   "Object label frequency."),
        "attributes": (_barh(attr_top, f"Attributes (top {TOP} of {len(s.attributes)})", "objects", attr_colors),
                       "Attribute frequency (colour = category)."),
        "relations": (_barh(_top(s.predicates), f"Relation predicates (top {TOP} of {len(s.predicates)})",
                            "relations"), "Relation predicate frequency."),
    }
    if s.curated:
        reasons = _top(s.drop_reasons) or [("(nothing dropped)", 0)]
        plots["drop_reasons"] = (_barh(reasons, f"Drop reasons ({sum(s.drop_reasons.values())} dropped)", "records",
                                       ["#c44e52"] * len(reasons)), "Why curation dropped records.")
    return plots


# ------------------------------------------------------------------------------------ report
def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html(output: Output, s: Stats, captions: dict[str, str]) -> str:
    overview = [["images", s.images], ["QA records", s.records], ["programs", len(s.per_program)],
                ["text regions", s.text_regions], ["records about images without a graph", s.orphan_records]]
    if s.curated:
        overview += [[f"records {k}", v] for k, v in sorted(s.statuses.items())]
    program_rows = []
    for p in sorted(s.per_program, key=lambda p: (-s.per_program[p], p)):
        answers = s.answers[p]
        top_answer, top_n = answers.most_common(1)[0]
        balance = position_balance(s.positions[p], s.options[p]) if s.positions.get(p) else None
        pv = balance["p_value"] if balance else None
        program_rows.append([p, s.per_program[p], s.per_form[p].get("multiple_choice", 0),
                             f"{len(answers)}{'+' if OTHER in answers else ''}",
                             f"{top_answer[:40]} ({100 * top_n / s.per_program[p]:.0f}%)",
                             "—" if pv is None else f"{pv:.3f}"])
    figures = "".join(
        f'<figure id="{name}"><img src="{name}.png" alt="{html.escape(captions[name])}">'
        f"<figcaption>{html.escape(captions[name])}</figcaption></figure>" for name in captions)
    style = ("body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem;color:#1d1d1f}table{border-collapse:collapse;"
             "margin:.5rem 0 1.5rem}td,th{border-bottom:1px solid #ddd;padding:.2rem .6rem;text-align:left}"
             "figure{margin:1.5rem 0}img{max-width:100%;border:1px solid #eee}figcaption{color:#666}")
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>mmgen stats: "
            f"{html.escape(str(output.root))}</title><style>{style}</style></head><body>"
            f"<h1>mmgen stats</h1><p>{html.escape(str(output.root))}</p>"
            f"{_table(['', 'count'], overview)}<h2>Programs</h2>"
            + _table(["program", "records", "multiple choice", "distinct answers", "most frequent answer",
                      "position balance p (χ², uniform)"], program_rows)
            + f"<h2>Plots</h2>{figures}<p><a href=\"stats.json\">stats.json</a> has every number.</p>"
            "</body></html>\n")


def write_report(output: Output, dest: str | Path) -> Path:
    """Write ``stats.json``, the plots and ``index.html`` into ``dest``; returns the HTML path."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    s = collect(output)
    captions: dict[str, str] = {}
    for name, (fig, caption) in make_plots(s).items():
        with atomic_write(dest / f"{name}.png") as f:
            fig.savefig(f, format="png")
        captions[name] = caption
    with atomic_write(dest / "stats.json") as f:
        f.write((json.dumps(s.to_dict(), indent=2, ensure_ascii=False) + "\n").encode())
    page = dest / "index.html"
    with atomic_write(page) as f:
        f.write(_html(output, s, captions).encode())
    return page
