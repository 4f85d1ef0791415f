"""Text in the image: what a sign says, which object carries a text, how many texts, does a word appear.

Only text regions scoring at least ``confident_score`` are read out or counted; an uncertain region
that could change the answer makes the program skip (or abstain, for counts). A region belongs to an
object when its ``object`` names it, or, when it names none, when the object's box contains the
region's box (the smallest such box if several contain it). "The text on X" must be the only region
belonging to X, and no other region may lie mostly inside X's box (a sign's text over a building
would make "the text on the building" ambiguous).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from scene_graphs.model import Box, TextRegion

from ..base import GraphView, Plan, Program, Realized, Template, make_rng, register
from ..grammar import be, capitalize, count_phrase, fmt_box
from .counting import count_options
from .relations import cached, hashed_order, is_confident, norm_box, referent

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


def _casefold(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip()).casefold()


def words_of(text: str) -> list[str]:
    """Words (letters only, at least 3) of a text, case-folded."""
    return [w.casefold() for w in re.findall(r"[^\W\d_]{3,}", text)]


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


def _filler(answer: str, taken: set[str], rng: np.random.Generator, k: int) -> list[str]:
    """``k`` sign words, in the answer's letter case, that are not in ``taken`` (case-folded)."""
    pool = [w for w in SIGN_WORDS if w.casefold() not in taken]
    picks = rng.choice(len(pool), size=min(k, len(pool)), replace=False)
    return [same_case(pool[int(i)], answer) for i in sorted(picks)]


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
        return region if region.score >= view.config.confident_score else None

    def solve(self, view: GraphView, plan: Plan) -> Any:
        region = self._region(view, plan["object_id"])
        return None if region is None else region.text.strip()

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        obj = view.by_id[plan["object_id"]]
        region = self._region(view, obj.id)
        ref = referent(view, obj)
        assert region is not None and ref is not None
        t = self.pick_template(rng)
        rationale = (f"{capitalize(ref.text)} is at {norm_box(view, obj)}. The only text on it, at "
                     f"{fmt_box(region.box.normalized(view.width, view.height))}, reads \"{value}\". "
                     f"So the answer is: {value}.")
        taken = {_casefold(value)}
        others = []
        for other in sorted(view.text, key=lambda r: r.id):
            if _casefold(other.text) not in taken:
                taken.add(_casefold(other.text))
                others.append(same_case(other.text.strip(), value))
        distractors = others + _filler(value, taken, rng, 3)
        return Realized(t.id, t.text.format(obj=ref.text), value, rationale, distractors, objects=[])


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
        texts = sorted({t.text.strip() for t in view.text if t.score >= view.config.confident_score})
        return [{"text": t} for t in texts if self._owner(view, t) is not None]

    def _owner(self, view: GraphView, text: str) -> str | None:
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


@register
class CountText(Program):
    """How many separate pieces of text can be read in the image (0 when the text field found none)."""

    id = "single.count_text"
    family = "text"
    requires = frozenset({"text"})
    answer_type = "count"
    templates = (
        Template("how_many_texts", "How many separate pieces of text can be read in the image?"),
        Template("count_texts", "Count the distinct text snippets visible in this picture."),
        Template("number_of_texts", "What is the number of text regions in the image?"),
    )

    def candidates(self, view: GraphView) -> list[Plan]:
        if any(t.score < view.config.confident_score for t in view.text):
            view.abstain(self.id, "uncertain text region")
            return []
        return [{"what": "text regions"}]

    def solve(self, view: GraphView, plan: Plan) -> Any:
        if any(t.score < view.config.confident_score for t in view.text):
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
        return Realized(t.id, t.text, str(value), rationale, count_options(value, self.num_options, rng))


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
        present = self._confident_words(view)
        positives = hashed_order(sorted(present), key=lambda w: view.image_id + w)[:MAX_WORDS]
        rng = make_rng(view.config.seed, (view.image_id,), self.id + ":negatives")
        pool = [w for w in SIGN_WORDS if self._absent(view, w)]
        k = min(len(pool), max(1, len(positives)))  # as many "no" as "yes" (one when nothing is written)
        negatives = [pool[int(i)] for i in sorted(rng.choice(len(pool), size=k, replace=False))] if pool else []
        return [{"word": w.upper()} for w in sorted(set(positives) | {n.casefold() for n in negatives})]

    def _confident_words(self, view: GraphView) -> set[str]:
        c = view.config.confident_score
        return {w for t in view.text if t.score >= c for w in words_of(t.text)}

    def _absent(self, view: GraphView, word: str) -> bool:
        """Nowhere in any text region, at any score, even inside a longer word."""
        key = _casefold(word)
        return not any(key in _casefold(t.text) for t in view.graph.text)

    def solve(self, view: GraphView, plan: Plan) -> Any:
        word = plan["word"]
        key = _casefold(word)
        if " " not in key and key in self._confident_words(view):
            return "yes"
        if self._absent(view, word):
            return "no"
        return None

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        word = plan["word"]
        t = self.pick_template(rng)
        if value == "yes":
            key = _casefold(word)
            region = next(r for r in sorted(view.text, key=lambda r: r.id)
                          if r.score >= view.config.confident_score and key in words_of(r.text))
            reason = (f"The text \"{region.text.strip()}\" at {fmt_box(region.box.normalized(view.width, view.height))} "
                      f"contains the word \"{word}\".")
        else:
            c = view.config.confident_score
            texts = sorted({r.text.strip() for r in view.text if r.score >= c})
            read = ", ".join(f'"{x}"' for x in texts)
            reason = (f"The text read in the image is {read}; no text in it contains the word \"{word}\"."
                      if texts else f"No text in the image contains the word \"{word}\".")
        rationale = f"{reason} So the answer is: {value}."
        return Realized(t.id, t.text.format(word=word), value, rationale, ["no" if value == "yes" else "yes"])
