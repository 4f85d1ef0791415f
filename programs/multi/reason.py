"""Reason: questions that need every image of a set at once: the odd one out, images ordered by a
count, the two images of the same kind of scene, the image where an object is nearer (or farther)
relative to its scene, and the image that contains a text.

Each answer is unique by construction: the rule deciding it is checked for every image, and any
image where the deciding fact is uncertain makes the plan unsolvable (see :mod:`programs.multi.common`).
"""

from __future__ import annotations

import re
from itertools import combinations, permutations
from typing import Any, ClassVar

import numpy as np

from ..base import GraphView, Plan, Program, Realized, Template, register
from ..grammar import capitalize, count_phrase, fmt_box, join, plural, with_article
from ..legibility import quotable, quotable_regions
from ..scenes import scenes_of
from .common import (
    ABSENT,
    MAX_LABELS,
    MAX_PLANS,
    PRESENT,
    UNKNOWN,
    Views,
    abstain_uncertain,
    cached,
    count_of,
    counts,
    hashed,
    image_list,
    image_name,
    only_object,
    other_images,
    presence,
    qualified,
    set_labels,
    where,
)


# =========================================================================== odd one out
@register
class OddOneOut(Program):
    """Which image lacks the one category that every other image shows (3-6 images; no other image
    could be the odd one out by any category, uncertain ones included)."""

    id = "multi.odd_one_out"
    multi_image = True
    family = "reason"
    answer_type = "image"
    num_options = 3
    templates = (
        Template("odd_one", "All of these images but one show a common kind of object. Which image is the odd "
                            "one out?"),
        Template("which_lacks_it", "Every image except one contains the same kind of object. Which image lacks "
                                   "it?"),
        Template("only_missing", "Which image is the odd one out, the only one missing a kind of object that all "
                                 "the others show?"),
    )

    def _witnesses(self, views: Views) -> tuple[int, list[str]] | None:
        """(odd image number, labels that single it out) or ``None``."""
        if len(views) < 3:
            return None
        labels = sorted({o.label for v in views for o in v.graph.objects})
        definite: dict[int, list[str]] = {}
        possible: set[int] = set()
        for lbl in labels:
            states = [presence(v, lbl) for v in views]
            for j, s in enumerate(states):
                others = states[:j] + states[j + 1:]
                if s != PRESENT and ABSENT not in others:
                    possible.add(j)
                    if s == ABSENT and UNKNOWN not in others:
                        definite.setdefault(j, []).append(lbl)
        if len(definite) != 1 or len(possible) != 1:
            return None
        j, witnesses = next(iter(definite.items()))
        return j + 1, witnesses

    def solved_candidates(self, views: Views) -> list[tuple[Plan, Any]]:
        abstain_uncertain(views, self.id)
        value = self.solve(views, {})
        return [] if value is None else [({}, value)]

    def solve(self, views: Views, plan: Plan) -> Any:
        if plan:
            return None
        found = self._witnesses(views)
        return None if found is None else found[0]

    def realize(self, views: Views, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        t = self.pick_template(rng)
        _, witnesses = self._witnesses(views)  # type: ignore[misc]
        rest = [k for k in range(1, len(views) + 1) if k != value]
        kinds = join([plural(w) for w in witnesses])
        rationale = (f"{image_list(rest)} each show {kinds}; {image_name(value)} shows none. No other image is "
                     f"the only one missing a category that the rest show. So the answer is: {image_name(value)}.")
        return Realized(t.id, t.text, image_name(value), rationale, other_images(views, value))


# =========================================================================== order by count
@register
class OrderByCount(Program):
    """The images of a 3-6 image set ordered by their number of objects of a category (all counts
    certain and distinct)."""

    id = "multi.order_by_count"
    multi_image = True
    family = "reason"
    answer_type = "image order"
    num_options = 3
    templates = (
        Template("sort", "Sort the images by their number of {labels}, {direction}."),
        Template("list_order", "List the images in order of how many {labels} they show, {direction}."),
        Template("rank", "Rank these images by the number of {labels} in them, {direction}."),
    )
    DIRECTIONS: ClassVar[dict[str, str]] = {"most_first": "from most to fewest", "fewest_first": "from fewest to most"}

    def solved_candidates(self, views: Views) -> list[tuple[Plan, Any]]:
        if len(views) < 3:
            return []
        abstain_uncertain(views, self.id)
        out = []
        for lbl in hashed(views, self.id, set_labels(views))[:MAX_LABELS]:
            for order in self.DIRECTIONS:
                plan = {"label": lbl, "order": order}
                if (value := self.solve(views, plan)) is not None:
                    out.append((plan, value))
        return out

    def solve(self, views: Views, plan: Plan) -> Any:
        if len(views) < 3 or plan.get("order") not in self.DIRECTIONS:
            return None
        found = counts(views, plan["label"])
        if found is None or len(set(found)) != len(found):
            return None
        ranked = sorted(range(1, len(views) + 1), key=lambda k: found[k - 1], reverse=plan["order"] == "most_first")
        return ranked

    def realize(self, views: Views, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        label = plan["label"]
        t = self.pick_template(rng)
        steps = [f"{image_name(k)} shows {count_phrase(count_of(views[k - 1], label) or 0, label)}" for k in value]
        answer = ", ".join(image_name(k) for k in value)
        rationale = (f"Counting {plural(label)}, {self.DIRECTIONS[plan['order']]}: {'; '.join(steps)}. "
                     f"So the answer is: {answer}.")
        orders = [list(reversed(value))] + [value[:i] + [value[i + 1], value[i]] + value[i + 2:]
                                            for i in range(len(value) - 1)]
        if len(value) <= 4:
            orders += [list(p) for p in permutations(value)]
        options = [", ".join(image_name(k) for k in o) for o in orders if o != value]
        question = t.text.format(labels=plural(label), direction=self.DIRECTIONS[plan["order"]])
        objs = [q for v in views for q in qualified(v, v.by_label.get(label, ()))]
        return Realized(t.id, question, answer, rationale, options, objects=objs)


# =========================================================================== same kind of scene
MIN_SCENE_SUPPORT = 2
"""Confident categories an image needs that fit a scene before it is said to show that kind of scene."""


def scene_kinds(view: GraphView) -> tuple[frozenset[str], dict[str, int]]:
    """The scenes (``programs.scenes``) that the most confident categories of the image fit (at least
    :data:`MIN_SCENE_SUPPORT`; empty when none reaches it), and every scene's support."""
    def build() -> tuple[frozenset[str], dict[str, int]]:
        support = scenes_of(view.countable_labels)
        best = max(support.values(), default=0)
        top = frozenset(s for s, n in support.items() if n == best) if best >= MIN_SCENE_SUPPORT else frozenset()
        return top, support
    return cached(view, "scene_kinds", build)


@register
class SameScene(Program):
    """Which two images of a 3-6 image set show the same kind of scene (their best-fitting scene kinds
    overlap; no other pair's do)."""

    id = "multi.same_scene"
    multi_image = True
    family = "reason"
    answer_type = "image pair"
    num_options = 3
    templates = (
        Template("which_two", "Which two images show the same kind of scene?"),
        Template("same_place", "Two of these images were taken in the same kind of place. Which two?"),
        Template("which_pair", "Which pair of images shows a similar type of scene?"),
    )

    def solved_candidates(self, views: Views) -> list[tuple[Plan, Any]]:
        value = self.solve(views, {})
        return [] if value is None else [({}, value)]

    def solve(self, views: Views, plan: Plan) -> Any:
        if plan or len(views) < 3:
            return None
        tops = [scene_kinds(v)[0] for v in views]
        if not all(tops):
            return None
        shared = [[a + 1, b + 1] for a, b in combinations(range(len(views)), 2) if tops[a] & tops[b]]
        return shared[0] if len(shared) == 1 else None

    def realize(self, views: Views, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        t = self.pick_template(rng)
        steps = []
        for k, v in enumerate(views, 1):
            top, support = scene_kinds(v)
            scenes = with_article(f"{join(sorted(top), 'or')} scene")
            steps.append(f"the objects of {image_name(k)} ({join(list(v.countable_labels))}) fit {scenes} best "
                         f"({support[min(top)]} of them)")
        a, b = value
        shared = join(sorted(scene_kinds(views[a - 1])[0] & scene_kinds(views[b - 1])[0]), "or")
        answer = image_list(value)
        rationale = (f"{capitalize('; '.join(steps))}. Only {answer} share a kind of scene ({shared}). "
                     f"So the answer is: {answer}.")
        others = [image_list([x + 1, y + 1]) for x, y in combinations(range(len(views)), 2) if [x + 1, y + 1] != value]
        return Realized(t.id, t.text, answer, rationale, others)


# =========================================================================== depth
class _NearerIn(Program):
    """Shared by the nearer / farther programs: the image where the one object of a category lies
    nearest (farthest) to the camera, measured as relative distance within its own image."""

    multi_image = True
    family = "reason"
    requires = frozenset({"objects", "depth"})
    answer_type = "image"
    num_options = 2
    nearer: bool = True

    def solved_candidates(self, views: Views) -> list[tuple[Plan, Any]]:
        abstain_uncertain(views, self.id)
        plans = [{"label": lbl} for lbl in hashed(views, self.id, set_labels(views))][:MAX_LABELS]
        return [(p, v) for p in plans if (v := self.solve(views, p)) is not None]

    def distances(self, views: Views, label: str) -> list[float] | None:
        """Relative distance (0 nearest, 1 farthest in its image) of the one ``label`` of each image."""
        from ..single.depth import depth_info, object_nearness, relative_distance

        out = []
        for v in views:
            o = only_object(v, label)
            if o is None or not depth_info(v).ok:
                return None
            n = object_nearness(v, o)
            if n is None:
                return None
            out.append(relative_distance(v, n))
        return out

    def solve(self, views: Views, plan: Plan) -> Any:
        found = self.distances(views, plan["label"])
        if found is None:
            return None
        best = min(found) if self.nearer else max(found)
        k = found.index(best)
        gap = views[0].config.min_depth_gap
        if any(abs(d - best) < gap for j, d in enumerate(found) if j != k):
            return None  # another image is too close to call
        return k + 1

    def realize(self, views: Views, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        label = plan["label"]
        t = self.pick_template(rng)
        found = self.distances(views, label) or []
        steps = [f"in {image_name(k)} the {label} (at {where(v, [only_object(v, label)])}) is at "  # type: ignore[list-item]
                 f"{d:.2f}" for k, (v, d) in enumerate(zip(views, found), 1)]
        word = "nearest to" if self.nearer else "farthest from"
        rationale = (f"On a scale from 0 (nearest point of its own image) to 1 (farthest): {'; '.join(steps)}. "
                     f"The {label} is {word} the camera in {image_name(value)}, by a clear margin. "
                     f"So the answer is: {image_name(value)}.")
        v = views[value - 1]
        return Realized(t.id, t.text.format(label=label), image_name(value), rationale, other_images(views, value),
                        objects=qualified(v, [only_object(v, label)]))  # type: ignore[list-item]


@register
class NearerInImage(_NearerIn):
    """In which image the one object of a category is nearer to the camera, relative to its own scene."""

    id = "multi.nearer_in_image"
    nearer = True
    templates = (
        Template("relative_nearer", "In which image is the {label} nearer to the camera, relative to the rest of "
                                    "that image?"),
        Template("own_scene_closest", "Relative to the depth of its own scene, in which image is the {label} "
                                      "closest to the camera?"),
        Template("within_picture", "Judging depth within each picture, where does the {label} appear nearest to "
                                   "the viewer?"),
    )


@register
class FartherInImage(_NearerIn):
    """In which image the one object of a category is farther from the camera, relative to its own scene."""

    id = "multi.farther_in_image"
    nearer = False
    templates = (
        Template("relative_farther", "In which image is the {label} farther from the camera, relative to the rest "
                                     "of that image?"),
        Template("own_scene_farthest", "Relative to the depth of its own scene, in which image is the {label} "
                                       "farthest from the camera?"),
        Template("within_picture", "Judging depth within each picture, where does the {label} appear farthest "
                                   "from the viewer?"),
    )


# =========================================================================== text
MAX_TEXT = 40
"""Longest text (characters) asked about."""


def norm_text(text: str) -> str:
    """Single spaces, stripped, case-folded (how texts are compared)."""
    return " ".join(text.split()).casefold()


def _contains_phrase(haystack: str, key: str) -> bool:
    """``key`` occurs in ``haystack`` as whole words (both already normalised)."""
    return re.search(rf"(?<!\w){re.escape(key)}(?!\w)", haystack) is not None


def text_state(view: GraphView, key: str) -> bool | None:
    """True when a quotable region (:func:`programs.legibility.quotable`) contains ``key`` as whole words;
    False when no region, at any score, contains it even inside a word; else ``None``."""
    if any(quotable(view, r) and _contains_phrase(norm_text(r.text), key) for r in view.text):
        return True
    if any(key in norm_text(r.text) for r in view.graph.text):
        return None
    return False


@register
class WhichImageHasText(Program):
    """Which image contains a given text (read with confidence); no other image shows it, at any score."""

    id = "multi.which_image_has_text"
    multi_image = True
    family = "reason"
    requires = frozenset({"text"})
    answer_type = "image"
    num_options = 2
    templates = (
        Template("which_contains", "Which image contains the text \"{text}\"?"),
        Template("where_read", "In which image can you read \"{text}\"?"),
        Template("which_shows_words", "Which of the images shows the words \"{text}\"?"),
    )

    def solved_candidates(self, views: Views) -> list[tuple[Plan, Any]]:
        texts: dict[str, str] = {}
        for v in views:
            for r in quotable_regions(v, self.id):
                shown = " ".join(r.text.split())
                if len(shown) <= MAX_TEXT:
                    texts.setdefault(norm_text(shown), shown)
        out = []
        for key in hashed(views, self.id, sorted(texts)):
            plan = {"text": texts[key]}
            if (value := self.solve(views, plan)) is not None:
                out.append((plan, value))
                if len(out) >= MAX_PLANS:
                    break
        return out

    def solve(self, views: Views, plan: Plan) -> Any:
        key = norm_text(plan["text"])
        if not key:
            return None
        states = [text_state(v, key) for v in views]
        if any(s is None for s in states) or states.count(True) != 1:
            return None
        return states.index(True) + 1

    def realize(self, views: Views, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        text = plan["text"]
        key = norm_text(text)
        t = self.pick_template(rng)
        v = views[value - 1]
        region = next(r for r in sorted(v.text, key=lambda r: r.id)
                      if quotable(v, r) and _contains_phrase(norm_text(r.text), key))
        box = fmt_box(region.box.normalized(v.width, v.height))
        others = [image_name(k) for k in range(1, len(views) + 1) if k != value]
        rationale = (f"{image_name(value)} has the text \"{' '.join(region.text.split())}\" at {box}; no text in "
                     f"{join(others)} reads \"{text}\". So the answer is: {image_name(value)}.")
        objs = qualified(v, [v.by_id[region.object]]) if region.object in v.by_id else []
        return Realized(t.id, t.text.format(text=text), image_name(value), rationale, other_images(views, value),
                        objects=objs)

