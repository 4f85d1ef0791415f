"""Agreement filter: a vision-language model answers each question from the image, blind to our answer.

The request holds the image(s) (:mod:`mmgen.llm.vision`) and the question; for a multiple-choice record
also its options (so the model picks one), never the answer, the rationale or the scene graph. The
reply is one JSON object ``{"answer": "..."}``. :func:`compare` then decides, by the record's form:

* **multiple choice**: the reply must name one option (its text after normalisation, or its letter
  A, B, C... as the export shows them); it agrees when that option is the correct one;
* **yes/no** answers: the first word of the reply, ``yes`` or ``no``;
* **counts** (``answer_type`` ``count``): the first number in the reply, digits or words up to twenty;
* **short free-form answers** (at most ``MAX_WORDS`` words): equal after normalisation (lower case,
  no punctuation, no articles, singular nouns), or one's words all inside the other's;
* everything else (boxes, points, captions, conversations, long answers) is **not checked** and kept.

A reply that names no option, no yes/no, no number, or is empty, is **unclear**: kept and counted, never
dropped (a model that does not know is not evidence against us). Only a clear disagreement drops the
record (filter ``vlm_verify``, with both answers in the reason). A failed request is neither: the
stage stops with :class:`~mmgen.llm.client.LLMIncompleteError` and a rerun finishes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from .client import LLMClient
from .vision import ImageSource, attach_images

VERIFY_VERSION = "vlm-verify-1"
MAX_WORDS = 4
UNCHECKED_TYPES = frozenset({"box", "point", "caption", "conversation"})
VERIFY_SCHEMA: dict[str, Any] = {
    "type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
    "additionalProperties": False}

_ARTICLES = {"a", "an", "the"}
_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_NUMBER_WORDS["no"] = 0
_NUMBER_WORDS["none"] = 0


@dataclass(frozen=True)
class Check:
    """The outcome for one record: ``agree`` True/False, or None when unclear or not checked."""

    agree: bool | None
    vlm_answer: str = ""
    note: str = ""
    server_failed: bool = False

    def to_dict(self, model: str) -> dict[str, Any]:
        return {"agree": self.agree, "vlm_answer": self.vlm_answer, "note": self.note, "model": model,
                "prompt_version": VERIFY_VERSION}


def _words(text: str) -> list[str]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
            for w in words if w not in _ARTICLES]


def _number(text: str) -> int | None:
    for w in re.findall(r"[a-z]+|\d+", text.lower()):
        if w.isdigit():
            return int(w)
        if w in _NUMBER_WORDS:
            return _NUMBER_WORDS[w]
    return None


def _option_index(reply: str, options: Sequence[str]) -> int | None:
    norm = _words(reply)
    exact = [i for i, o in enumerate(options) if _words(str(o)) == norm]
    if len(exact) == 1:
        return exact[0]
    letter = re.fullmatch(r"\W*\(?([A-Za-z])[).:]?\W*", reply.strip())
    if letter:
        i = ord(letter.group(1).upper()) - ord("A")
        return i if 0 <= i < len(options) else None
    inside = [i for i, o in enumerate(options) if _words(str(o)) and _contains(norm, _words(str(o)))]
    return inside[0] if len(inside) == 1 else None


def _contains(words: list[str], part: list[str]) -> bool:
    n = len(part)
    return any(words[i:i + n] == part for i in range(len(words) - n + 1))


def compare(rec: Mapping[str, Any], reply: str) -> Check:
    """Whether ``reply`` (the VLM's answer) agrees with the record (rules in the module docstring)."""
    reply = str(reply).strip()
    answer = str(rec.get("answer", ""))
    options = list(rec.get("options") or ())
    if rec.get("answer_type") in UNCHECKED_TYPES or rec.get("turns"):
        return Check(None, reply, "not checkable")
    if not reply:
        return Check(None, reply, "empty reply")
    if options and rec.get("answer_index") is not None:
        chosen = _option_index(reply, options)
        if chosen is None:
            return Check(None, reply, "names no option")
        return Check(chosen == rec["answer_index"], reply, f"chose option {chosen + 1}")
    ours = _words(answer)
    if ours in (["yes"], ["no"]):
        first = _words(reply)[:1]
        if first not in (["yes"], ["no"]):
            return Check(None, reply, "no yes/no")
        return Check(first == ours, reply, "yes/no")
    if rec.get("answer_type") == "count":
        theirs, mine = _number(reply), _number(answer)
        if theirs is None or mine is None:
            return Check(None, reply, "no number")
        return Check(theirs == mine, reply, "count")
    if 0 < len(ours) <= MAX_WORDS:
        theirs_w = _words(reply)
        if not theirs_w:
            return Check(None, reply, "empty reply")
        agree = theirs_w == ours or _contains(theirs_w, ours) or (len(theirs_w) <= MAX_WORDS and _contains(ours, theirs_w))
        return Check(agree, reply, "short answer")
    return Check(None, reply, "not checkable")


def verify_messages(rec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The blind request for one record (the images are attached by :class:`Verifier`)."""
    options = list(rec.get("options") or ())
    lines = [f"Question: {rec.get('question', '')}"]
    if options and rec.get("answer_index") is not None:
        lines.append("Options: " + "; ".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(options)))
        lines.append("Choose exactly one option and reply with its text.")
    else:
        lines.append("Reply with a short answer (a word, a number, yes or no, or a short phrase).")
    lines.append('Reply with JSON only: {"answer": "..."}')
    system = ("You answer questions about images by looking at them. Answer from what you see; if you cannot "
              "tell, reply with an empty answer.")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


class Verifier:
    """Asks ``client`` each record's question with its images; graphs come from ``get_graph``."""

    def __init__(self, client: LLMClient, images: ImageSource, get_graph: Callable[[str], Any]) -> None:
        self.client = client
        self.images = images
        self.get_graph = get_graph

    def __call__(self, rec: Mapping[str, Any]) -> Check:
        if rec.get("answer_type") in UNCHECKED_TYPES or rec.get("turns"):
            return Check(None, "", "not checkable")
        graphs = [self.get_graph(i) for i in rec.get("images") or ()]
        if not graphs or any(g is None for g in graphs):
            return Check(None, "", f"no scene graph for image(s) {list(rec.get('images') or ())}")
        messages = attach_images(verify_messages(rec), self.images.parts(graphs))
        answer = self.client.ask(messages, VERIFY_SCHEMA, "vlm_answer")
        if answer.server_failed:
            return Check(None, "", answer.error or "request failed", server_failed=True)
        if not answer.ok:
            return Check(None, "", f"no valid reply: {answer.error}")
        return compare(rec, str((answer.data or {}).get("answer", "")))
