"""Comparisons inside one image: do two objects share a colour or material (CLEVR's "same attribute"
comparisons), and which of a few named objects appears largest or smallest (TaskMeAnything).

Same/different is said only when both objects have one *decided* value in the category
(:func:`programs.common.decided_values`): "yes" when the two values are the same word, "no" when they
lie in different exclusive groups (:data:`programs.common.EXCLUSIVE`) and neither object carries, at
any score, a value near the other's (a grey cup beside a silver spoon is neither). Referring
expressions must not name the compared category ("the red cup"), and objects that are one thing and
its part, holder or contents (:func:`programs.predicates.entangled`) or that one name may cover
(:func:`programs.scenes.may_name_same`) are never paired.

Largest/smallest: the winner's box is at least :data:`programs.single.spatial.SIZE_RATIO` times every
other named object's (masks agreeing when present), and it is entangled with none of them (a table
is not "larger" than the cup it holds in any useful sense).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from scene_graphs.model import Object
from scene_graphs.vocab import normalize

from ..base import YES_NO, GraphView, Plan, Program, Realized, Template, register
from ..common import EXCLUSIVE, box_text, decided_values, hashed_order, located, near
from ..grammar import capitalize, join
from ..predicates import entangled
from ..refer import Referent
from ..scenes import may_name_same
from .attributes import _gives_away
from .objects import MAX_POOL, GroupQuestion, is_confident, referent
from .spatial import SIZE_RATIO, size_order

COMPARED_CATEGORIES = ("color", "material")
"""Categories two objects are compared in (size and state are relative to the object's kind)."""


# =========================================================================== same attribute
def as_many_of_each(solved: list[tuple[Plan, bool]]) -> list[tuple[Plan, bool]]:
    """The first ``n`` yes and the first ``n`` no plans of ``solved`` (in its order), ``n`` the smaller
    side's size: then the odd record of a yes/no selection (:meth:`Program.select_solved`) is a fair
    coin's, where with more "no" plans it would more often be a "no"."""
    n = min(sum(1 for _, v in solved if v), sum(1 for _, v in solved if not v))
    taken = {True: 0, False: 0}
    out = []
    for plan, value in solved:
        if taken[value] < n:
            taken[value] += 1
            out.append((plan, value))
    return out


def _same_or_different(view: GraphView, a: Object, b: Object, category: str) -> bool | None:
    """``True`` when both objects' single decided values in ``category`` are the same word, ``False``
    when they are exclusive and neither object shows a trace of the other's value, else ``None``."""
    dec = decided_values(view)
    va, vb = dec.get((a.id, category)), dec.get((b.id, category))
    if va is None or vb is None or len(va) != 1 or len(vb) != 1:
        return None
    if va == vb:
        return True
    if near(va[0]) & near(vb[0]) or near(vb[0]) & _all_names(a) or near(va[0]) & _all_names(b):
        return None
    if not any(any(va[0] in g for g in family) and any(vb[0] in g for g in family)
               for family in EXCLUSIVE.get(category, ())):
        return None  # not in one exclusive family: "different" is not known to hold
    return False


def _all_names(obj: Object) -> frozenset[str]:
    """Normalised names of every attribute of ``obj``, at any score (traces included)."""
    return frozenset(normalize(a.name) for a in obj.attributes)


def _fit_referent(view: GraphView, obj: Object, category: str) -> Referent | None:
    """A unique, confident referent of ``obj`` that does not name its ``category`` value."""
    if not is_confident(view, obj):
        return None
    ref = referent(view, obj, allow_region=True)
    if ref is None or _gives_away(obj, ref.text, category):
        return None
    return ref


@register
class SameAttribute(Program):
    """Yes/no: do two named objects have the same colour (material)? Balanced in pairs per image."""

    id = "single.same_attribute"
    family = "attributes"
    requires = frozenset({"objects", "attributes"})
    answer_type = YES_NO
    num_options = 2
    templates = (
        Template("same_category", "Are {a} and {b} the same {category}?"),
        Template("share_category", "Do {a} and {b} have the same {category}?"),
        Template("is_same_as", "Is {a} the same {category} as {b}?"),
    )

    def _pair(self, view: GraphView, plan: Plan) -> tuple[Object, Referent, Object, Referent] | None:
        ids, category = plan["object_ids"], plan["category"]
        if category not in COMPARED_CATEGORIES or len(ids) != 2 or ids[0] == ids[1]:
            return None
        a, b = view.by_id.get(ids[0]), view.by_id.get(ids[1])
        if a is None or b is None or may_name_same(a.label, b.label) and a.label != b.label:
            return None
        if entangled(view, a.id, b.id):
            return None
        ra, rb = _fit_referent(view, a, category), _fit_referent(view, b, category)
        if ra is None or rb is None or ra.text == rb.text:
            return None
        return a, ra, b, rb

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        """The pairs of one category per image (the first, in a per-image order, that has both answers),
        as many "yes" as "no": balanced within a category, so the category word does not tell the answer."""
        dec = decided_values(view)
        for category in hashed_order(view, self.id, COMPARED_CATEGORIES):
            ids = [o.id for o in view.confident_objects if len(dec.get((o.id, category), ())) == 1]
            out: list[tuple[Plan, Any]] = []
            for a, b in itertools.combinations(hashed_order(view, f"{self.id}|{category}", ids)[:MAX_POOL], 2):
                plan = {"object_ids": [a, b], "category": category}
                value = self.solve(view, plan)
                if value is not None:
                    out.append((plan, value))
            out = as_many_of_each(out)
            if out:
                return out
        return []

    def solve(self, view: GraphView, plan: Plan) -> Any:
        pair = self._pair(view, plan)
        if pair is None:
            return None
        a, _, b, _ = pair
        return _same_or_different(view, a, b, plan["category"])

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        pair = self._pair(view, plan)
        assert pair is not None
        a, ra, b, rb = pair
        category = plan["category"]
        dec = decided_values(view)
        va, vb = dec[(a.id, category)][0], dec[(b.id, category)][0]
        t = self.pick_template(rng)
        answer = "yes" if value else "no"
        verdict = f"the same {category}" if value else f"different {category}s"
        rationale = (f"{capitalize(located(ra.text, ra.strategy, box_text(view, a)))} is {va} and "
                     f"{located(rb.text, rb.strategy, box_text(view, b))} is {vb}: {verdict}. "
                     f"So the answer is: {answer}.")
        return Realized(t.id, t.text.format(a=ra.text, b=rb.text, category=category), answer, rationale,
                        ["no" if value else "yes"], objects=list(ra.mentions + rb.mentions))


# =========================================================================== largest / smallest
def _size_winner(view: GraphView, objs: Sequence[Object], wanted: str) -> Object | None:
    """The object ``wanted`` (``larger``/``smaller``) than every other by :func:`size_order`, entangled
    with none of them; ``None`` when no object clearly wins."""
    for w in objs:
        rest = [o for o in objs if o.id != w.id]
        if all(size_order(view, w, o) == wanted and not entangled(view, w.id, o.id) for o in rest):
            return w
    return None


class _SizeExtreme(GroupQuestion):
    family = "spatial"
    wanted: str = ""
    word: str = ""
    margin: str = ""

    def winner(self, view: GraphView, objs: Sequence[Object]) -> Object | None:
        return _size_winner(view, objs, self.wanted)

    def explain(self, view: GraphView, group: list[tuple[Object, Referent]]) -> str:
        parts = [f"{r.text} {view.area_share(o):.1%}" for o, r in group]
        return f"Shares of the image the boxes cover: {join(parts)}. {self.margin}"


@register
class Largest(_SizeExtreme):
    """Which of 2-4 named objects appears largest in the image (area ratio >= 1.5 over every other)."""

    id = "single.largest"
    wanted, word = "larger", "largest"
    margin = f"The largest covers at least {SIZE_RATIO} times the area of each of the others."
    templates = (
        Template("appears_largest", "Which of {objects_and} appears largest in the image?"),
        Template("most_space", "Among {objects_and}, which one takes up the most space in the picture?"),
        Template("biggest_in_view", "Looking at {objects_and}, which looks biggest in this image?"),
    )


@register
class Smallest(_SizeExtreme):
    """Which of 2-4 named objects appears smallest in the image (area ratio >= 1.5 under every other)."""

    id = "single.smallest"
    wanted, word = "smaller", "smallest"
    margin = f"Each of the others covers at least {SIZE_RATIO} times the area of the smallest."
    templates = (
        Template("appears_smallest", "Which of {objects_and} appears smallest in the image?"),
        Template("least_space", "Among {objects_and}, which one takes up the least space in the picture?"),
        Template("tiniest_in_view", "Looking at {objects_and}, which looks smallest in this image?"),
    )
