"""HTML for a QA record in Jupyter (``QA._repr_html_``): question(s), options with the correct one
marked, answer, rationale, program and template. Every value is escaped."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .base import QA


def qa_html(qa: QA) -> str:
    """One record as a small self-contained HTML block."""
    e = html.escape
    turns = qa.turns or ((qa.question, qa.answer),)
    images = ", ".join(qa.image_paths or qa.images)
    parts = [('<div class="mmgen-qa" style="font-family:sans-serif;border:1px solid #ddd;border-radius:6px;'
              'padding:.5em .8em;max-width:52em">'),
             (f'<div style="color:#555;font-size:90%"><b>{e(qa.program)}</b> · {e(qa.template)} · '
              f"{e(qa.question_type)} · {e(qa.answer_type)} · images {e(images)}</div>")]
    for i, (question, answer) in enumerate(turns):
        parts.append(f"<div><b>Q:</b> {e(question)}</div>")
        if i == 0 and qa.options:
            items = "".join(
                f'<li style="{"font-weight:bold;color:#1b7f3b" if k == qa.answer_index else ""}">{e(o)}</li>'
                for k, o in enumerate(qa.options))
            parts.append(f'<ol type="A" style="margin:.2em 0">{items}</ol>')
        parts.append(f"<div><b>A:</b> {e(answer)}</div>")
    if qa.rationale:
        parts.append(f'<div style="color:#666;margin-top:.3em"><i>Why:</i> {e(qa.rationale)}</div>')
    parts.append(f'<div style="color:#999;font-size:80%">{e(qa.id)}</div></div>')
    return "".join(parts)
