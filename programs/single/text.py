"""Text in the image: what a sign says, which object carries a text, how many texts, does a word appear.

Only text regions scoring at least ``confident_score`` are counted; an uncertain region that could
change the answer makes the program skip (or abstain, for counts). Text is *quoted* (read out as an
answer, named in a question, stated in a caption) only from regions that pass the one legibility gate
of every program, :func:`programs.legibility.quotable` (well read and looking like writing). "Does the image contain the word X" asks only about word-like words of legible regions
(:func:`word_like`), and says a word is absent only when every text region of the graph, at any
score, is legible and well read (garbled OCR could be a misreading of any word).

A region belongs to an object when its ``object`` names it, or, when it names none, when the
object's box contains the region's box (the smallest such box if several contain it). "The text on
X" must be the only region belonging to X, and no other region may lie mostly inside X's box (a
sign's text over a building would make "the text on the building" ambiguous).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np

from scene_graphs.model import Box, TextRegion

from ..base import GraphView, Plan, Program, Realized, Template, make_rng, register, sample_indices
from ..common import box_text, located
from ..legibility import READ_SCORE, legible, quotable, quotable_regions, word_like  # noqa: F401  (legible, word_like: names of the old module)
from ..grammar import be, count_phrase, fmt_box, join
from .counting import count_pool
from .relations import cached, hashed_order, is_confident, norm_box, referent  # noqa: F401  (names of the old module)

SIGN_WORDS = (
    "EXIT", "STOP", "OPEN", "CLOSED", "SALE", "PARKING", "HOTEL", "BANK", "PHARMACY", "CAFE", "BAKERY", "POLICE",
    "TAXI", "PUSH", "PULL", "ENTRANCE", "DANGER", "WARNING", "PRIVATE", "WELCOME", "MARKET", "STATION", "SCHOOL",
    "HOSPITAL", "RESTAURANT", "PIZZA", "COFFEE", "BAR", "BUS", "TRAIN", "AIRPORT", "MUSEUM", "LIBRARY", "THEATRE",
    "TICKETS", "INFORMATION", "TOILETS", "ONE WAY", "NO ENTRY", "YIELD", "SLOW", "SCHOOL ZONE", "FIRE", "EMERGENCY",
    "OFFICE", "SHOP", "STORE", "FRESH", "FREE", "NEWS", "POST", "GARAGE", "SERVICE", "CASH", "DELIVERY", "BOOKS",
    "FLOWERS", "GROCERY", "LAUNDRY", "CINEMA",
)
"""Plausible sign words: negatives for "does the image contain the word" and filler distractors."""

MOSTLY_INSIDE = 0.5
"""A region lies on an object when this share of its box is inside the object's box."""
MAX_WORDS = 8
MAX_QUOTED = 4
"""Texts quoted in a "the text read in the image is ..." rationale."""
FUNCTION_WORDS = frozenset({
    "the", "and", "for", "with", "that", "this", "are", "was", "were", "from", "you", "your", "our", "its", "has",
    "have", "had", "not", "but", "all", "can", "will", "any", "who", "what", "which", "when", "where", "there",
    "these", "those", "than", "then", "into", "onto", "over", "per", "via", "also", "here", "such", "they",
    "them", "their", "his", "her", "she", "him", "one", "out", "off", "les", "des", "del", "der", "die", "das",
    "und", "los", "las", "una", "uno", "par", "pour", "est",
})
"""Words too common to make a "does the image contain the word" question."""


def _casefold(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip()).casefold()


def words_of(text: str) -> list[str]:
    """Words (letters only, at least 3) of a text, case-folded."""
    return [w.casefold() for w in re.findall(r"[^\W\d_]{3,}", text)]


def readable_texts(view: GraphView) -> list[str]:
    """The distinct texts of the readable regions, stripped, in reading order (top to bottom, then left
    to right, by each text's first region)."""
    def build() -> list[str]:
        regions = sorted((t for t in view.text if quotable(view, t)), key=lambda t: (t.box.y1, t.box.x1, t.id))
        return list(dict.fromkeys(t.text.strip() for t in regions))
    return view.memo("readable_texts", build)


def same_case(word: str, model: str) -> str:
    """``word`` written in the letter case of ``model`` (so options do not give the answer away)."""
    if model.isupper():
        return word.upper()
    if model.islower():
        return word.lower()
    if model.istitle():
        return word.title()
    return word


class TextIndex:
    """Regions programs see, their owners, and which regions each object owns or overlaps (ids only)."""

    def __init__(self, view: GraphView) -> None:
        self.owner: dict[str, str | None] = {}
        self.owned: dict[str, list[str]] = {}
        self.overlapping: dict[str, list[str]] = {}
        regions = sorted(view.text, key=lambda t: t.id)
        for t in regions:
            self.owner[t.id] = _owner(view, t)
        for o in view.objects:
            self.owned[o.id] = [t.id for t in regions if self.owner[t.id] == o.id]
            self.overlapping[o.id] = [t.id for t in regions if _inside_share(t.box, o.box) >= MOSTLY_INSIDE]


def _inside_share(inner: Box, outer: Box) -> float:
    area = inner.area
    return inner.intersection(outer) / area if area > 0 else float(outer.contains_box(inner))


def _owner(view: GraphView, t: TextRegion) -> str | None:
    if t.object is not None:
        return t.object if t.object in view.by_id else None
    holders = sorted((o for o in view.objects if o.box.contains_box(t.box)), key=lambda o: (o.box.area, o.id))
    if not holders or (len(holders) > 1 and holders[1].box.area == holders[0].box.area):
        return None
    return holders[0].id


def text_index(view: GraphView) -> TextIndex:
    return cached(view, "text_index", lambda: TextIndex(view))


def regions_by_id(view: GraphView) -> dict[str, TextRegion]:
    return {t.id: t for t in view.text}


@register
class TextOnObject(Program):
    """What the (only, confidently read) text on a named object says."""

    id = "single.text_on_object"
    family = "text"
    requires = frozenset({"objects", "text"})
    answer_type = "text"
    templates = (
        Template("what_says", "What does the text on {obj} say?"),
        Template("read_text", "Read the text written on {obj}."),
        Template("what_written", "What is written on {obj}?"),
    )

    def candidates(self, view: GraphView) -> list[Plan]:
        quotable_regions(view, self.id)  # counts the regions the gate refuses
        plans = []
        for o in sorted(view.objects, key=lambda o: o.id):
            if self._region(view, o.id) is not None and referent(view, o) is not None:
                plans.append({"object_id": o.id})
        return plans

    def _region(self, view: GraphView, obj_id: str) -> TextRegion | None:
        obj = view.by_id.get(obj_id)
        if obj is None or not is_confident(view, obj):
            return None
        idx = text_index(view)
        on = idx.owned.get(obj_id, [])
        if len(on) != 1 or not set(idx.overlapping.get(obj_id, [])) <= set(on):
            return None  # no text, several texts, or another object's text lies over this one
        region = regions_by_id(view)[on[0]]
        return region if quotable(view, region) else None

    def solve(self, view: GraphView, plan: Plan) -> Any:
        region = self._region(view, plan["object_id"])
        return None if region is None else region.text.strip()

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        obj = view.by_id[plan["object_id"]]
        region = self._region(view, obj.id)
        ref = referent(view, obj)
        assert region is not None and ref is not None
        t = self.pick_template(rng)
        rationale = (f"The only text on {located(ref.text, ref.strategy, box_text(view, obj))}, at "
                     f"{fmt_box(region.box.normalized(view.width, view.height))}, reads \"{value}\". "
                     f"So the answer is: {value}.")
        taken = {_casefold(value)}
        others = []
        for other in readable_texts(view):
            if _casefold(other) not in taken:
                taken.add(_casefold(other))
                others.append(same_case(other, value))
        # the options are the image's own texts only: a sign word or any made-up string beside a text
        # really read would be the odd one out (the real reading is rarely a common sign word), so the
        # record is multiple-choice only where the image holds enough other readable texts
        return Realized(t.id, t.text.format(obj=ref.text), value, rationale, others, objects=[])


@register
class ObjectWithText(Program):
    """Which object carries a given text (all regions with that text lie on one confident object)."""

    id = "single.object_with_text"
    family = "text"
    requires = frozenset({"objects", "text"})
    answer_type = "label"
    templates = (
        Template("which_carries", "Which object carries the text \"{text}\"?"),
        Template("where_written", "On which object is \"{text}\" written?"),
        Template("what_says", "What object says \"{text}\"?"),
    )

    def candidates(self, view: GraphView) -> list[Plan]:
        quotable_regions(view, self.id)  # counts the regions the gate refuses
        return [{"text": t} for t in readable_texts(view) if self._owner(view, t) is not None]

    def _owner(self, view: GraphView, text: str) -> str | None:
        if text not in readable_texts(view):
            return None
        key = _casefold(text)
        idx = text_index(view)
        owners = {idx.owner.get(t.id) for t in view.graph.text if _casefold(t.text) == key}
        if len(owners) != 1:
            return None
        owner = owners.pop()
        if owner is None or not is_confident(view, view.by_id[owner]):
            return None
        return owner

    def solve(self, view: GraphView, plan: Plan) -> Any:
        owner = self._owner(view, plan["text"])
        return None if owner is None else view.by_id[owner].label

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        owner_id = self._owner(view, plan["text"])
        assert owner_id is not None
        owner = view.by_id[owner_id]
        key = _casefold(plan["text"])
        boxes = [t.box for t in view.graph.text if _casefold(t.text) == key]
        t = self.pick_template(rng)
        rationale = (f"The text \"{plan['text']}\" is at {', '.join(fmt_box(b.normalized(view.width, view.height)) for b in boxes)}, "
                     f"on the {owner.label} at {norm_box(view, owner)}. So the answer is: {owner.label}.")
        distractors = []
        for label, objs in view.by_label.items():
            if label == owner.label:
                continue
            # a label is false only if none of its objects even touches a region with this text
            if all(o.box.intersection(b) == 0 for o in objs for b in boxes):
                distractors.append(label)
        return Realized(t.id, t.text.format(text=plan["text"]), owner.label, rationale, distractors,
                        objects=[owner.id])


TEXT_LABEL = "text"
"""The label under which a text reader records its search in ``SceneGraph.evidence``: "no text" (a count
of 0) is said only when a search for it is recorded and saw nothing, not even faintly."""


@register
class CountText(Program):
    """How many separate pieces of text can be read in the image (0 when the text field found none).

    Asked only when every region is readable (well read and legible): a garbled or poorly read region
    may or may not be text ("**", "In mins oo ctico e pln"), so the count would be unsure."""

    id = "single.count_text"
    family = "text"
    requires = frozenset({"text"})
    answer_type = "count"
    answer_prior = True
    templates = (
        Template("how_many_texts", "How many separate pieces of text can be read in the image?"),
        Template("count_texts", "Count the distinct text snippets visible in this picture."),
        Template("number_of_texts", "What is the number of text regions in the image?"),
    )

    KEEP: ClassVar[dict[int, float]] = {0: 0.5}
    """Rejection rule: most images show no text at all."""

    def answer_weight(self, value: Any) -> float:
        return self.KEEP.get(value, 1.0)

    def candidates(self, view: GraphView) -> list[Plan]:
        if any(t.score < view.config.confident_score for t in view.text):
            view.abstain(self.id, "uncertain text region")
            return []
        if not all(quotable(view, t) for t in view.text):
            view.abstain(self.id, "text region not read well enough to count as text")
            return []
        if not self._complete(view):
            view.abstain(self.id, "no evidence that the reader saw all the text")
            return []
        return [{"what": "text regions"}]

    @staticmethod
    def _complete(view: GraphView) -> bool:
        """Whether the text regions are all the text there is: a text reader's search is recorded and it saw
        no faint unread candidate (a count of N also says "no more than N"); for 0, ``confirms_absent``."""
        if not view.text:
            return view.confirms_absent(TEXT_LABEL)
        return view.graph.searched_for(TEXT_LABEL) and not view.graph.faint_count(TEXT_LABEL)

    def solve(self, view: GraphView, plan: Plan) -> Any:
        if not all(quotable(view, t) for t in view.text):
            return None
        if not self._complete(view):
            return None
        return len(view.text)

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        t = self.pick_template(rng)
        regions = sorted(view.text, key=lambda r: (r.box.y1, r.box.x1, r.id))
        if regions:
            listed = "; ".join(f"\"{r.text.strip()}\" at {fmt_box(r.box.normalized(view.width, view.height))}"
                               for r in regions)
            rationale = (f"There {be(value)} {count_phrase(value, 'text region')}: {listed}. "
                         f"So the answer is: {value}.")
        else:
            rationale = "No text can be read anywhere in the image. So the answer is: 0."
        return Realized(t.id, t.text, str(value), rationale, count_pool(value))


@register
class ContainsWord(Program):
    """Yes/no: does the text in the image contain a given word (negatives: sign words found nowhere)."""

    id = "single.contains_word"
    family = "text"
    requires = frozenset({"text"})
    answer_type = "yes/no"
    num_options = 2
    templates = (
        Template("contains_word", "Does the image contain the word \"{word}\"?"),
        Template("word_written", "Is the word \"{word}\" written anywhere in the picture?"),
        Template("can_you_read", "Can you read the word \"{word}\" in this image?"),
    )

    def candidates(self, view: GraphView) -> list[Plan]:
        positives = [w for w, _ in self._readable_words(view)[:MAX_WORDS]]
        negatives: list[str] = []
        if self._all_readable(view):
            rng = make_rng(view.config.seed, (view.image_id,), self.id + ":negatives")
            pool = [w for w in SIGN_WORDS if self._absent(view, w)]
            k = min(len(pool), max(1, len(positives)))  # as many "no" as "yes" (one when nothing is written)
            negatives = [pool[i] for i in sample_indices(rng, len(pool), k)] if pool else []
        else:
            view.abstain(self.id, "text not read well enough to rule a word out")
        return [{"word": w.upper()} for w in sorted(set(positives) | {n.casefold() for n in negatives})]

    def _all_readable(self, view: GraphView) -> bool:
        """Whether every text region of the graph, at any score, is readable: a garbled or poorly read
        region could be a misreading of any word, so no word is said to be absent."""
        return all(quotable(view, t) for t in view.graph.text)

    def _readable_words(self, view: GraphView) -> list[tuple[str, TextRegion]]:
        """(case-folded word, the first region holding it) for every word-like word of a readable
        region that is not a function word, best first: from the best-read region, longest first."""
        def build() -> list[tuple[str, TextRegion]]:
            found: dict[str, TextRegion] = {}
            for region in sorted(view.text, key=lambda r: (-r.score, r.id)):
                if quotable(view, region):
                    for w in re.findall(r"[^\W\d_]+", region.text):
                        key = w.casefold()
                        if word_like(w) and key not in FUNCTION_WORDS and key not in found:
                            found[key] = region
            ranked = sorted(found.items(), key=lambda wr: (-wr[1].score, -len(wr[0]), wr[0]))
            return ranked
        return view.memo(("readable_words", self.id), build)

    def _absent(self, view: GraphView, word: str) -> bool:
        """Nowhere in any text region, at any score, even inside a longer word."""
        key = _casefold(word)
        return not any(key in _casefold(t.text) for t in view.graph.text)

    def solve(self, view: GraphView, plan: Plan) -> Any:
        word = plan["word"]
        key = _casefold(word)
        if " " not in key and key in dict(self._readable_words(view)):
            return "yes"
        if self._all_readable(view) and self._absent(view, word):
            return "no"
        return None

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        word = plan["word"]
        t = self.pick_template(rng)
        if value == "yes":
            region = dict(self._readable_words(view))[_casefold(word)]
            reason = (f"The text \"{region.text.strip()}\" at {fmt_box(region.box.normalized(view.width, view.height))} "
                      f"contains the word \"{word}\".")
        else:
            texts = readable_texts(view)
            if not texts:
                reason = f"No text in the image contains the word \"{word}\"."
            else:
                quoted = join([f'"{x}"' for x in texts[:MAX_QUOTED]])
                more = "" if len(texts) <= MAX_QUOTED else f" (and {len(texts) - MAX_QUOTED} more)"
                reason = (f"The text read in the image is {quoted}{more}; no text there contains the word "
                          f"\"{word}\".")
        rationale = f"{reason} So the answer is: {value}."
        return Realized(t.id, t.text.format(word=word), value, rationale, ["no" if value == "yes" else "yes"])
