"""ProVision-10M record schema, for exchanging QA data with ProVision tooling::

    {"data_path": ["a.jpg"], "generator": "<program id>", "question": ..., "answer": ...,
     "options": [...], "metadata": "<JSON string>"}

``question`` / ``answer`` / ``options`` are the record's own texts (the option and answer styles,
rationale and system prompt do not apply: ProVision keeps options in their own field). ``metadata`` is a
JSON *string* (as in ProVision-10M) holding everything else mmgen knows: the export id, family,
template, question type, answer type and index, image ids, rationale, plan, value, provenance, seed,
all turns of a multi-turn record, the split and the record's ``extensions`` (lineage such as
``evolved`` and ``curation``). :func:`to_qa` rebuilds the QA record from it.
"""

from __future__ import annotations

import json
from typing import Any

from programs.base import QA

from .base import JsonFormat, Malformed, RecordView, Turn, require
from .render import Rendered

FIELDS = ("data_path", "generator", "question", "answer", "options", "metadata")


def metadata_of(item: Rendered) -> dict[str, Any]:
    qa = item.qa
    return {"id": item.id, "qa_id": qa.id, "family": qa.family, "template": qa.template,
            "question_type": qa.question_type, "answer_type": qa.answer_type, "answer_index": qa.answer_index,
            "images": list(qa.images), "rationale": qa.rationale, "plan": qa.plan, "value": qa.value,
            "provenance": dict(qa.provenance), "seed": qa.seed, "turns": [list(t) for t in qa.turns],
            "split": item.split, **({"extensions": dict(qa.extensions)} if qa.extensions else {})}


def parse_metadata(raw: dict[str, Any]) -> dict[str, Any]:
    text = require(raw, "metadata", (str, dict))
    if isinstance(text, dict):
        return text
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Malformed(f"'metadata' is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise Malformed("'metadata' is not a JSON object")
    return meta


def to_qa(raw: dict[str, Any]) -> QA:
    """The QA record a ProVision record was exported from (``image_paths`` as written)."""
    meta = dict(parse_metadata(raw))
    lineage = meta.pop("extensions", None) or {}
    qa_id = meta.pop("qa_id")
    meta.pop("split", None)  # the export's, not the record's
    return QA.from_dict({**lineage, **meta, "id": qa_id, "program": raw["generator"], "question": raw["question"],
                         "answer": raw["answer"], "options": raw["options"], "image_paths": raw["data_path"]})


class ProVisionFormat(JsonFormat):
    name = "provision"
    system_turn = False
    ids_required = False
    summary = "ProVision-10M: {data_path[], generator, question, answer, options[], metadata}"

    def record(self, item: Rendered) -> dict[str, Any]:
        qa = item.qa
        return {"data_path": list(item.images), "generator": qa.program, "question": qa.question,
                "answer": qa.answer, "options": list(qa.options),
                "metadata": json.dumps(metadata_of(item), ensure_ascii=False, sort_keys=True)}

    def view(self, raw: Any) -> RecordView:
        images = require(raw, "data_path", list)
        generator = require(raw, "generator", str)
        question, answer = require(raw, "question", str), require(raw, "answer", str)
        options = require(raw, "options", list)
        meta = parse_metadata(raw)
        pairs = meta.get("turns") or [[question, answer]]
        if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise Malformed("metadata 'turns' is not a list of [question, answer] pairs")
        turns = [Turn(role, text) for q, a in pairs for role, text in (("human", q), ("gpt", a))]
        return RecordView(meta.get("id"), images, turns, marks_images=False,
                          fields={"generator": generator, "question": question, "answer": answer,
                                  "options": options, "metadata": meta})

    def check(self, view: RecordView) -> list[str]:
        options, answer = view.fields["options"], view.fields["answer"]
        problems = []
        if not all(isinstance(o, str) and o.strip() for o in options):
            problems.append("an option is empty or not a string")
        elif options and answer not in options:
            problems.append(f"answer {answer!r} is not among the options")
        i = view.fields["metadata"].get("answer_index")
        if options and isinstance(i, int) and not (0 <= i < len(options) and options[i] == answer):
            problems.append(f"metadata answer_index {i} does not point at the answer")
        if view.turns and view.turns[0].text != view.fields["question"]:
            problems.append("metadata turns do not start with the question")
        return problems
