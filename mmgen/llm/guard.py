"""Rule checks that an evolved record still states its original facts (the guard of ``evolve``).

A rewrite is trusted only as far as rules can check it against the scene graph. The *anchor* is the
root record's program answer (``plan`` + ``value``, re-derived from the graph by the program before
any rewrite). A rewrite passes when every rule below holds; the first rule that fails is the reason
it is dropped:

1. **Well formed**: the question has two words or more and changed, the answer has a letter or digit,
   no ``<image>`` token, lengths within bounds.
2. **Answer type** (of the root record):

   * ``count``: the last whole number in the answer (digits or words; "no"/"none" as 0 when no other
     number is given) equals the graph's count.
   * ``yes/no``: the answer says yes or no, and says what the root answer said, unless the rewritten
     question changed the parity of negations (``not``, ``no``, ``never``, ``n't``...): an inverted
     question must flip the answer.
   * list answers (``attributes``, ``ordering``...): every item appears in the answer; for
     ``ordering`` in the same order.
   * ``box`` / ``point``: the root answer's numbers appear in the answer, in order.
   * ``caption``: only rule 3.
   * any other type: the root answer (a label, colour, predicate...) appears in the answer as words
     (singular or plural).

   For every type, a mention of the root answer (the count, yes/no, the label, a list item, the box)
   must not be negated in its clause ("Definitely not 1.", "It isn't yellow"), and an answer that
   declares itself ("the answer is 42") must declare the root answer.
3. **Named things exist**: every colour word and every object label (from a vocabulary of COCO,
   the scene lists and all labels of the run's graphs) named in the rewritten question, steps or
   answer exists in the record's graph(s): as an object label (``person`` also matches ``man``,
   ``woman``...), an attribute, or inside the image's text. Things the root record itself names are
   exempt ("Is there a vase?" - "no" is about a vase that is not there). Text read by OCR is data,
   never evidence of an object or a colour ("There is a purple giraffe" on a poster names no giraffe).
4. **Counts named exist**: "N <label>" in the answer or steps never claims more objects of that label
   than the graph(s) have.

:func:`check_facts` (rules 2-4 and the image token) is what ``mmgen verify`` re-applies to evolved
records; :func:`check_rewrite` adds the rules that compare a rewrite with its parent.

Multi-turn records (conversations) are not evolved.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence

from scene_graphs.model import SceneGraph
from scene_graphs.vocab import COLORS

IMAGE_TOKEN = "<image>"
_INFLECT_LOCK = threading.Lock()
MAX_QUESTION_CHARS = 1500
MAX_ANSWER_CHARS = 3000

NEGATIONS = frozenset({"not", "no", "never", "none", "nothing", "neither", "nor", "without", "nobody", "nowhere"})
PERSON_WORDS = frozenset({"person", "people", "man", "woman", "men", "women", "boy", "girl", "child", "children",
                          "kid", "kids", "player", "rider", "skier", "surfer", "lady", "guy", "pedestrian",
                          "walker", "skateboarder", "tennis player", "baseball player"})
"""A mention of ``person``/``people`` is satisfied by any of these labels in the graph."""
GENERIC_LABELS = frozenset({"object", "objects", "thing", "things", "image", "picture", "photo", "scene", "item",
                            "items", "region", "area", "background", "foreground"})


# --------------------------------------------------------------------------------------- text helpers
def normalize(text: str) -> str:
    """Lower case, whitespace collapsed, curly quotes straightened."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    return " ".join(text.lower().split())


def strip_quoted(text: str) -> str:
    """``text`` without its double-quoted spans (quoted OCR text is data, not the question's words)."""
    return re.sub(r'"[^"]*"', " ", normalize(text))


@lru_cache(maxsize=None)
def _number_words() -> dict[str, int]:
    from programs.grammar import inflect_engine

    engine = inflect_engine()
    return {engine.number_to_words(n): n for n in range(0, 101)}


def number_mentions(text: str) -> list[tuple[int, int, int]]:
    """``(start, end, value)`` of the whole numbers in normalized ``text``, in order (digits not part of
    a decimal, and number words up to one hundred); ``no``/``none`` count as 0 when nothing else is
    found."""
    words = _number_words()
    found: list[tuple[int, int, int]] = []
    for m in re.finditer(r"(?<![\d.])\d+(?!\.\d)(?![\d])", text):
        found.append((m.start(), m.end(), int(m.group())))
    for m in re.finditer(r"[a-z]+(?:-[a-z]+)?", text):
        if m.group() in words:
            found.append((m.start(), m.end(), words[m.group()]))
    if not found:
        for m in re.finditer(r"\b(no|none|zero)\b", text):
            found.append((m.start(), m.end(), 0))
    return sorted(found)


def integers(text: str) -> list[int]:
    """The values of :func:`number_mentions` of ``text``."""
    return [n for _, _, n in number_mentions(normalize(text))]


def decimals(text: str) -> list[str]:
    """Numbers as written (``0.14``, ``3``), in order."""
    return re.findall(r"\d+(?:\.\d+)?", text)


def polarity(answer: str) -> str | None:
    """``yes`` / ``no`` when the answer says one of them (first word, else the only one present)."""
    words = re.findall(r"[a-z]+", normalize(answer))
    if words and words[0] in ("yes", "no"):
        return words[0]
    said = {w for w in words if w in ("yes", "no")}
    return next(iter(said)) if len(said) == 1 else None


_CLAUSE_BREAK = re.compile(r"[.;:!?,()\n]|\b(?:but|however|although|though|whereas|instead|rather)\b")


def _is_negation(word: str) -> bool:
    return word in NEGATIONS or word.endswith("n't")


def negated_at(text: str, start: int) -> bool:
    """Whether a negation (``not``, ``no``, ``never``, ``n't``...) comes before ``start`` in the clause of
    normalized ``text`` that holds it ("Definitely not 1", "it isn't yellow"; not "No, it is 1")."""
    clause_start = max((m.end() for m in _CLAUSE_BREAK.finditer(text, 0, start)), default=0)
    return any(_is_negation(w) for w in re.findall(r"[a-z']+", text[clause_start:start]))


def phrase_spans(text: str, phrase: str) -> list[tuple[int, int]]:
    """Where ``phrase`` (singular or plural) occurs in normalized ``text`` as whole words."""
    spans: list[tuple[int, int]] = []
    for form in phrase_forms(phrase):
        spans.extend(m.span() for m in re.finditer(r"(?<![a-z0-9])" + re.escape(form) + r"(?![a-z0-9])", text))
    return sorted(set(spans))


def negation_count(question: str) -> int:
    words = re.findall(r"[a-z']+", strip_quoted(question))
    return sum(1 for w in words if w in NEGATIONS or w.endswith("n't"))


@lru_cache(maxsize=65536)
def phrase_forms(phrase: str) -> frozenset[str]:
    """A phrase as given and with its last word in the plural (``bus``, ``buses``; ``sunglasses``)."""
    from programs.grammar import plural

    phrase = normalize(phrase)
    if not phrase:
        return frozenset()
    try:
        with _INFLECT_LOCK:  # one inflect engine is shared by the evolve threads
            return frozenset({phrase, plural(phrase)})
    except Exception:  # noqa: BLE001 - inflect refuses some inputs; the phrase itself still counts
        return frozenset({phrase})


def contains_phrase(text: str, phrase: str) -> bool:
    """Whether ``phrase`` (singular or plural) occurs in ``text`` as whole words."""
    text = normalize(text)
    for form in phrase_forms(phrase):
        if re.search(r"(?<![a-z0-9])" + re.escape(form) + r"(?![a-z0-9])", text):
            return True
    return False


# --------------------------------------------------------------------------------------- vocabulary
@dataclass(frozen=True)
class Vocabulary:
    """Object labels that, when named, must exist in the graph (singular forms, lower case)."""

    forms: Mapping[str, str]
    """Every label and its plural -> the label."""
    longest: int

    @classmethod
    def build(cls, extra_labels: Iterable[str] = ()) -> "Vocabulary":
        from programs.scenes import COCO_CATEGORIES, SCENES

        words = set(COCO_CATEGORIES) | {x for xs in SCENES.values() for x in xs} | {normalize(x) for x in extra_labels}
        forms: dict[str, str] = {}
        for w in sorted(words):
            if w and w not in GENERIC_LABELS:
                for form in sorted(phrase_forms(w)):
                    forms.setdefault(form, w)
        return cls(forms, max((len(w.split()) for w in forms), default=1))

    @property
    def labels(self) -> frozenset[str]:
        return frozenset(self.forms.values())

    def mentions(self, text: str) -> tuple[list[str], list[str]]:
        """(labels, colours) named in ``text``, longest phrases first (a matched phrase's words are not
        matched again: ``traffic light`` is not also ``light``). Quoted spans are skipped."""
        tokens = re.findall(r"[a-z]+", strip_quoted(text))
        used = [False] * len(tokens)
        labels: list[str] = []
        colors: list[str] = []
        for n in range(max(self.longest, 2), 0, -1):
            for i in range(len(tokens) - n + 1):
                if any(used[i:i + n]):
                    continue
                gram = " ".join(tokens[i:i + n])
                if gram in COLORS:
                    colors.append(gram)
                elif gram in self.forms:
                    labels.append(self.forms[gram])
                else:
                    continue
                used[i:i + n] = [True] * n
        return labels, colors


@dataclass(frozen=True)
class GraphFacts:
    """What the graph(s) of a record contain, for rule 3."""

    labels: frozenset[str]
    words: frozenset[str]
    text: str
    """The image text (OCR), kept for reference: it is never evidence of an object or a colour."""
    label_counts: Mapping[str, int] = field(default_factory=dict)
    """Objects per label form (``man`` and ``men`` -> the number of men; ``person``/``people`` -> all
    person-like objects), over all the record's graphs."""

    @classmethod
    def of(cls, graphs: Sequence[SceneGraph], min_score: float = 0.2) -> "GraphFacts":
        labels: set[str] = set()
        words: set[str] = set()
        texts: list[str] = []
        counts: Counter[str] = Counter()
        for g in graphs:
            for o in g.objects:
                if o.score < min_score:
                    continue
                forms = phrase_forms(o.label)
                labels.update(forms)
                counts.update(forms)
                if normalize(o.label) in PERSON_WORDS:
                    counts.update(("person", "people"))
                words.update(normalize(o.label).split())
                for a in o.attributes:
                    words.add(normalize(a.name))
                    words.update(normalize(a.name).split())
            texts.extend(normalize(t.text) for t in g.text)
        return cls(frozenset(labels), frozenset(words), " \n ".join(texts), dict(counts))

    def has_label(self, label: str) -> bool:
        """Whether an object with this label is in the graph(s); OCR text never counts."""
        if label in self.labels:
            return True
        if label in ("person", "people"):
            return any(p in self.labels for p in PERSON_WORDS)
        return False

    def has_color(self, color: str) -> bool:
        """Whether an object has this colour (as an attribute or in its label); OCR text never counts."""
        base = color.split()[-1]
        return color in self.words or base in self.words or any(color in lbl.split() for lbl in self.labels)

    def count(self, form: str) -> int:
        """Objects whose label has this form (see ``label_counts``)."""
        return int(self.label_counts.get(form, 0))


# --------------------------------------------------------------------------------------- the guard
def _items_in_order(text: str, items: Sequence[str]) -> bool:
    text = normalize(text)
    pos = 0
    for item in items:
        m = None
        for form in sorted(phrase_forms(str(item)), key=len, reverse=True):
            m = re.compile(r"(?<![a-z0-9])" + re.escape(form) + r"(?![a-z0-9])").search(text, pos)
            if m:
                break
        if m is None:
            return False
        pos = m.end()
    return True


_DECLARED = re.compile(r"\b(?:final |correct |right |real |true )?answer\s*(?:is|:|=|would be|will be|should be)\s*"
                       r"([^.;!?\n]+)")


def check_answer(answer_type: str, value: Any, root: Mapping[str, Any], question: str, answer: str) -> str | None:
    """Rule 2: the rewritten ``answer`` (to ``question``) keeps the root record's fact, never negates
    it, and declares no other answer."""
    problem = _check_stated(answer_type, value, root, question, answer)
    if problem:
        return problem
    for m in _DECLARED.finditer(normalize(answer)):  # "..., so the answer is 42"
        declared = m.group(1).strip()
        problem = _check_stated(answer_type, value, root, question, declared)
        if problem:
            return f"the answer declares {declared!r}: {problem}"
    return None


def _negated(text: str, spans: Sequence[tuple[int, int]], what: str) -> str | None:
    for start, _ in spans:
        if negated_at(text, start):
            return f"the answer negates {what}"
    return None


def _check_stated(answer_type: str, value: Any, root: Mapping[str, Any], question: str, answer: str) -> str | None:
    root_answer = str(root.get("answer", ""))
    text = normalize(answer)
    if answer_type == "count":
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        mentions = number_mentions(text)
        if not mentions:
            return f"count: no number in the answer (the graph gives {value})"
        if mentions[-1][2] != value:
            return f"count: the answer says {mentions[-1][2]}, the graph gives {value}"
        negated = _negated(text, [(s, e) for s, e, n in mentions if n == value
                                  and text[s:e] not in ("no", "none")], str(value))
        return f"count: {negated} (the graph gives {value})" if negated else None
    if answer_type == "yes/no":
        said = polarity(answer)
        if said is None:
            return "yes/no: the answer says neither yes nor no"
        negated = _negated(text, [m.span() for m in re.finditer(rf"\b{said}\b", text)], repr(said))
        if negated:
            return f"yes/no: {negated}"
        expected = polarity(root_answer) or (str(value) if value in ("yes", "no") else None)
        if expected is None:
            return None
        inverted = negation_count(question) % 2 != negation_count(str(root.get("question", ""))) % 2
        if inverted:
            expected = "no" if expected == "yes" else "yes"
        if said != expected:
            return (f"yes/no: the answer says {said}, the graph gives {expected}"
                    + (" (the question was inverted)" if inverted else ""))
        return None
    if answer_type in ("box", "point"):
        wanted = decimals(root_answer)
        got = decimals(answer)
        it = iter(got)
        if wanted and not all(any(w == g for g in it) for w in wanted):
            return f"{answer_type}: the answer does not give {root_answer}"
        first = re.search(re.escape(wanted[0]), text) if wanted else None
        if first and negated_at(text, first.start()):
            return f"{answer_type}: the answer negates {root_answer}"
        return None
    if answer_type in ("caption", "conversation"):
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        if answer_type == "ordering":
            if not _items_in_order(answer, value):
                return f"ordering: the answer does not list {', '.join(value)} in this order"
        else:
            missing = [v for v in value if not contains_phrase(answer, v)]
            if missing:
                return f"{answer_type}: the answer does not mention {', '.join(missing)}"
        for v in value:
            negated = _negated(text, phrase_spans(text, v), repr(v))
            if negated:
                return f"{answer_type}: {negated}"
        return None
    said = [p for p in dict.fromkeys([root_answer, value if isinstance(value, str) else ""]) if p
            and contains_phrase(answer, p)]
    if root_answer and not said:
        return f"{answer_type}: the answer no longer says {root_answer!r}"
    for phrase in said:
        negated = _negated(text, phrase_spans(text, phrase), repr(phrase))
        if negated:
            return f"{answer_type}: {negated}"
    return None


def check_counts(facts: GraphFacts, vocab: Vocabulary, *texts: str) -> str | None:
    """Rule 4: "N <label>" never claims more objects of a label than the graph(s) have."""
    for text in texts:
        text = strip_quoted(text)
        for start, end, n in number_mentions(text):
            if text[start:end] in ("no", "none", "zero"):
                continue
            following = re.findall(r"[a-z]+", text[end:end + 60])
            for k in range(min(vocab.longest, len(following)), 0, -1):
                gram = " ".join(following[:k])
                if gram in vocab.forms or gram in ("person", "people"):
                    have = facts.count(gram)
                    if n > have:
                        return f"claims {n} {gram}, the scene graph has {have}"
                    break
    return None


def check_named(facts: GraphFacts, vocab: Vocabulary, *texts: str, allowed: str = "") -> str | None:
    """Rule 3: labels and colours named in ``texts`` exist in the graph(s), except those also named in
    ``allowed`` (the root record's own text: "Is there a vase?" - "no" names a vase legitimately)."""
    allowed_labels, allowed_colors = vocab.mentions(allowed) if allowed else ([], [])
    for text in texts:
        labels, colors = vocab.mentions(text)
        for label in labels:
            if label not in allowed_labels and not facts.has_label(label):
                return f"names {label!r}, which is not in the scene graph"
        for color in colors:
            if color not in allowed_colors and not facts.has_color(color):
                return f"names the colour {color!r}, which is not in the scene graph"
    return None


def check_facts(root: Mapping[str, Any], question: str, answer: str, steps: Sequence[str], facts: GraphFacts,
                vocab: Vocabulary) -> str | None:
    """Rules 2-4 and the image token for a rewritten record rooted at ``root``: what ``mmgen verify``
    re-checks on evolved records. The first problem or None."""
    for name, text in (("question", question), ("answer", answer), *(("steps", s) for s in steps)):
        if IMAGE_TOKEN in text:
            return f"the {name} contains the image token {IMAGE_TOKEN}"
    problem = check_answer(str(root.get("answer_type", "")), root.get("value"), root, question, answer)
    if problem:
        return problem
    problem = check_named(facts, vocab, question, answer, *steps,
                          allowed=f"{root.get('question', '')}\n{root.get('answer', '')}")
    if problem:
        return problem
    return check_counts(facts, vocab, answer, *steps)


def check_rewrite(root: Mapping[str, Any], parent: Mapping[str, Any], question: str, answer: str,
                  steps: Sequence[str], facts: GraphFacts, vocab: Vocabulary) -> str | None:
    """All rules for one rewrite of ``parent`` (rooted at ``root``); the first problem or None."""
    if not isinstance(question, str) or not question.strip():
        return "empty question"
    if not isinstance(answer, str) or not answer.strip():
        return "empty answer"
    if len(re.findall(r"[^\W\d_]{2,}", question)) < 2:
        return "the question has fewer than two words"
    if not re.search(r"[^\W_]", answer):
        return "the answer has no letter or digit"
    if normalize(question) == normalize(str(parent.get("question", ""))):
        return "the question did not change"
    if len(question) > MAX_QUESTION_CHARS or len(answer) + sum(map(len, steps)) > MAX_ANSWER_CHARS:
        return "too long"
    return check_facts(root, question, answer, steps, facts, vocab)
