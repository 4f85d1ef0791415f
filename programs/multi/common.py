"""What the multi-image programs share: image names, per-image truth tests, caps, and the set runner.

A multi-image program receives the tuple of :class:`~programs.base.GraphView` of one image set
(``Program.subject``) and names the images "Image 1", "Image 2", ... in that order (1-based), the
order of the record's ``images``. A program whose answer is an image stores the image's *number*
(1-based) as its value; the answer text is :func:`image_name` of it.

Truth rules, per image, used by every family (each returns present / absent / unknown, or
True / False / ``None``):

* **Presence** of a category (:func:`presence`): *present* when the label has objects and all of
  them are confident (``GraphView.countable_labels``); *absent* when no object of the graph, at any
  score, carries the label or one that may name the same thing (``programs.scenes.may_name_same``:
  a "man" may be the "person" asked about) and the graph has evidence of the absence
  (``GraphView.confirms_absent``: searched for, not seen even faintly); *unknown* otherwise. Unknown anywhere in the set makes a
  plan unsolvable: uncertain perception never decides an answer.
* **Counts** (:func:`count_of`): 0 when absent; the number of objects when present, no other
  label of the image may name the same thing and no faint candidate of it went unreported; else unknown.
* **Attribute-objects** ("a red car", :func:`attribute_state`): True when a confident object of the
  label has the value among its decided values (``programs.common.decided_values``); False when
  the label is absent, or every object of it has a decided value in the category and no trace of
  the value or a near-synonym at any score; else unknown.
* **Relations** ("a person riding a horse", :func:`relation_state`): True when a confident relation
  states it between objects of the two labels (``programs.predicates.is_true``); False when a
  label is absent, or every pair is safely denied (``is_false``: not implied by any relation and
  contradicted by the boxes); else unknown.

"With more than two images every other image must fail": a "which image" program answers only when
exactly one image satisfies its condition and every other one definitely does not.

Provenance of multi-image records names objects as ``<image id>/<object id>`` (object ids repeat
across images).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from scene_graphs.model import Object

from ..base import QA, GraphView, Program, ProgramConfig, load_all, stable_int
from ..common import decided_values, near
from ..grammar import count_phrase, fmt_box, join
from ..scenes import may_name_same

PRESENT, ABSENT, UNKNOWN = "present", "absent", "unknown"

MAX_LABELS = 12
"""Categories tried per program and image set (in a per-set hashed order)."""
MAX_PLANS = 16
"""Candidate plans kept per program and image set (enough for balancing, cheap to solve)."""
MIN_SET, MAX_SET = 2, 6
"""Image sets have 2-6 images."""

Views = tuple[GraphView, ...]


# ------------------------------------------------------------------------------- names
def image_name(number: int) -> str:
    """``2`` -> ``"Image 2"`` (numbers are 1-based positions in the set)."""
    return f"Image {number}"


def image_list(numbers: Iterable[int]) -> str:
    """``[1, 3]`` -> ``"Image 1 and Image 3"``."""
    return join([image_name(n) for n in numbers])


def other_images(views: Sequence[GraphView], number: int) -> list[str]:
    """Names of every image of the set but ``number`` (the distractors of a "which image" answer)."""
    return [image_name(k) for k in range(1, len(views) + 1) if k != number]


def qualified(view: GraphView, objects: Iterable[Object]) -> list[str]:
    """Provenance ids ``<image id>/<object id>``."""
    return [f"{view.image_id}/{o.id}" for o in objects]


# ------------------------------------------------------------------------------- caching and order
def cached(view: GraphView, key: Any, build: Callable[[], Any]) -> Any:
    """``build()`` once per view, in the view's memo under ``("multi", key)`` (values must not refer
    to the view, and are never mutated by their users)."""
    return view.memo(("multi", key), build)


def set_key(views: Sequence[GraphView]) -> str:
    return "|".join(v.image_id for v in views)


def hashed(views: Sequence[GraphView], salt: str, items: Iterable[Any], key: Callable[[Any], str] = str) -> list[Any]:
    """``items`` in a deterministic order that differs per image set and ``salt`` (for capping lists
    without always keeping the alphabetically first)."""
    prefix = f"{set_key(views)}|{salt}|"
    keyed = [(key(it), it) for it in items]
    keyed.sort(key=lambda ki: (stable_int(prefix + ki[0]), ki[0]))
    return [it for _, it in keyed]


def by_position(objs: Iterable[Object]) -> list[Object]:
    return sorted(objs, key=lambda o: (o.box.x1, o.box.y1, o.id))


def where(view: GraphView, objs: Iterable[Object]) -> str:
    """Normalised boxes of ``objs``, left to right: ``[0.10, ...], [0.52, ...]``."""
    return ", ".join(fmt_box(o.box.normalized(view.width, view.height)) for o in by_position(objs))


# ------------------------------------------------------------------------------- presence and counts
def presence(view: GraphView, label: str) -> str:
    """:data:`PRESENT`, :data:`ABSENT` or :data:`UNKNOWN` (see module docstring)."""
    return cached(view, ("presence", label), lambda: _presence(view, label))


def _presence(view: GraphView, label: str) -> str:
    if label in view.uncertain_labels:
        return UNKNOWN
    if label in view.by_label:
        return PRESENT
    if any(may_name_same(label, other) for other in view.graph_labels):
        return UNKNOWN
    if not view.confirms_absent(label):
        view.abstain("multi", "no evidence of absence")
        return UNKNOWN
    return ABSENT


def safe_labels(view: GraphView) -> frozenset[str]:
    """Countable labels that no other label of the image may also name (safe to count and to name)."""
    def build() -> frozenset[str]:
        labels = list(view.by_label)
        return frozenset(lbl for lbl in view.countable_labels
                         if not any(o != lbl and may_name_same(lbl, o) for o in labels))
    return cached(view, "safe_labels", build)


def count_of(view: GraphView, label: str) -> int | None:
    """How many objects of ``label`` the image shows, or ``None`` when that is not certain."""
    state = presence(view, label)
    if state == ABSENT:
        return 0
    if state == PRESENT and label in safe_labels(view) and not view.graph.faint_count(label):
        return len(view.by_label[label])
    return None


def counts(views: Sequence[GraphView], label: str) -> list[int] | None:
    out = [count_of(v, label) for v in views]
    return None if any(c is None for c in out) else out  # type: ignore[return-value]


def only_object(view: GraphView, label: str) -> Object | None:
    """The one object of a safe label (so "the dog" names it), or ``None``."""
    if presence(view, label) != PRESENT or label not in safe_labels(view):
        return None
    objs = view.by_label[label]
    return objs[0] if len(objs) == 1 else None


def set_labels(views: Sequence[GraphView]) -> list[str]:
    """Countable labels of any image of the set whose presence is known in every image, sorted."""
    union = sorted({lbl for v in views for lbl in v.countable_labels})
    return [lbl for lbl in union if all(presence(v, lbl) != UNKNOWN for v in views)]


def presence_phrase(view: GraphView, label: str) -> str:
    """``two dogs (at [..], [..])`` or ``no dogs``."""
    objs = view.by_label.get(label, ()) if presence(view, label) == PRESENT else ()
    if not objs:
        return count_phrase(0, label)
    return f"{count_phrase(len(objs), label)} (at {where(view, objs)})"


def abstain_uncertain(views: Sequence[GraphView], program_id: str) -> None:
    """Count, once per image, the categories a program cannot use because they are uncertain."""
    for v in views:
        n = len(v.uncertain_labels)
        if n:
            v.abstain(program_id, "uncertain category", n)


# ------------------------------------------------------------------------------- attributes
def decided(view: GraphView, obj: Object, category: str) -> tuple[str, ...] | None:
    """The confident values of ``obj`` in ``category`` (sorted, normalised), or ``None`` when none is
    confident or a value lies in the uncertain band."""
    return decided_values(view).get((obj.id, category))


ATTRIBUTE_CATEGORIES = ("color", "material", "state", "shape", "pattern")
"""Categories asked about across images (size is relative to each picture, so it is left out)."""


def single_value(view: GraphView, obj: Object, category: str) -> str | None:
    """The one decided value of ``obj`` in ``category``, or ``None``."""
    values = decided(view, obj, category)
    return values[0] if values is not None and len(values) == 1 else None


def _denies(view: GraphView, obj: Object, category: str, value: str) -> bool:
    """``obj`` has a decided value in ``category`` and no trace (any score) of ``value`` or a near-synonym."""
    values = decided(view, obj, category)
    if values is None:
        return False
    close = near(value)
    return not (close & set(values)) and not any(close & near(a.name) for a in obj.attributes)


def attribute_state(view: GraphView, label: str, category: str, value: str) -> bool | None:
    """Whether the image shows a ``value`` ``label`` (see module docstring); ``None`` when unsure."""
    return cached(view, ("attribute_state", label, category, value),
                  lambda: _attribute_state(view, label, category, value))


def _attribute_state(view: GraphView, label: str, category: str, value: str) -> bool | None:
    state = presence(view, label)
    if state == ABSENT:
        return False
    if state != PRESENT or label not in safe_labels(view):
        return None
    objs = view.by_label[label]
    if any(value in (decided(view, o, category) or ()) for o in objs):
        return True
    return False if all(_denies(view, o, category, value) for o in objs) else None


def attribute_holders(view: GraphView, label: str, category: str, value: str) -> list[Object]:
    return by_position(o for o in view.by_label.get(label, ()) if value in (decided(view, o, category) or ()))


def attribute_triples(views: Sequence[GraphView]) -> list[tuple[str, str, str]]:
    """(label, category, value) of every decided value of a confident object of a safe label, sorted."""
    out: set[tuple[str, str, str]] = set()
    for v in views:
        def build(v: GraphView = v) -> frozenset[tuple[str, str, str]]:
            found = set()
            for lbl in safe_labels(v):
                for o in v.by_label[lbl]:
                    for c in ATTRIBUTE_CATEGORIES:
                        found.update((lbl, c, x) for x in decided(v, o, c) or ())
            return frozenset(found)
        out |= cached(v, "attribute_triples", build)
    return sorted(out)


# ------------------------------------------------------------------------------- relations
def relation_state(view: GraphView, subject: str, predicate: str, obj: str) -> bool | None:
    """Whether the image shows a ``subject`` ``predicate`` an ``obj`` (labels); ``None`` when unsure."""
    return cached(view, ("relation_state", subject, predicate, obj),
                  lambda: _relation_state(view, subject, predicate, obj))


def _relation_state(view: GraphView, subject: str, predicate: str, obj: str) -> bool | None:
    from ..predicates import is_false, is_true

    states = (presence(view, subject), presence(view, obj))
    if ABSENT in states:
        return False
    if UNKNOWN in states or subject not in safe_labels(view) or obj not in safe_labels(view):
        return None
    pairs = [(s, o) for s in view.by_label[subject] for o in view.by_label[obj] if s.id != o.id]
    if any(is_true(view, s.id, predicate, o.id) for s, o in pairs):
        return True
    return False if pairs and all(is_false(view, s.id, predicate, o.id) for s, o in pairs) else None


def relation_witness(view: GraphView, subject: str, predicate: str, obj: str) -> tuple[Object, Object] | None:
    """The first (by position) pair of objects for which the relation is confidently stated."""
    from ..predicates import is_true

    for s in by_position(view.by_label.get(subject, ())):
        for o in by_position(view.by_label.get(obj, ())):
            if s.id != o.id and is_true(view, s.id, predicate, o.id):
                return s, o
    return None


def relation_triples(views: Sequence[GraphView]) -> list[tuple[str, str, str]]:
    """(subject label, normalized predicate, object label) of confident relations between objects of
    two different safe labels, over the set, sorted."""
    from ..predicates import relation_index

    out: set[tuple[str, str, str]] = set()
    for v in views:
        def build(v: GraphView = v) -> frozenset[tuple[str, str, str]]:
            safe = safe_labels(v)
            found = set()
            for s, p, o in relation_index(v).confident:
                ls, lo = v.by_id[s].label, v.by_id[o].label
                if ls != lo and ls in safe and lo in safe:
                    found.add((ls, p, lo))
            return frozenset(found)
        out |= cached(v, "relation_triples", build)
    return sorted(out)


_REDUCED = frozenset({"on", "in", "inside", "under", "underneath", "above", "below", "beneath", "behind", "near",
                      "beside", "next", "by", "over", "at", "with", "against", "along", "across", "around",
                      "atop", "outside", "within", "between", "among", "onto", "into", "in front of"})
"""First words of predicates that read well right after a noun ("a cup on a table")."""


def relation_phrase(subject: str, predicate: str, obj: str) -> str:
    """``person, riding, horse`` -> ``a person riding a horse``; ``cup, on, table`` -> ``a cup on a table``;
    ``nose, part of, cat`` -> ``a nose that is part of a cat``; ``man, has, hat`` -> ``a man that has a hat``."""
    from ..predicates import verb_parts

    aux, base, finite = verb_parts(predicate)
    first = base.split(" ", 1)[0]
    verb = base if aux == "is" and (first in _REDUCED or first.endswith("ing")) else f"that {finite}"
    return f"{a_noun(subject)} {verb} {a_noun(obj)}"


def a_noun(noun: str) -> str:
    """``cup`` -> ``a cup``, ``apple`` -> ``an apple``; nouns already plural stay bare (``sunglasses``)."""
    from ..grammar import plural, with_article

    return noun if plural(noun) == noun else with_article(noun)


# ------------------------------------------------------------------------------- runner
def multi_programs(ids: Iterable[str] | None = None) -> list[Program]:
    """Instances of the registered multi-image programs (all, or those whose id or family is in ``ids``)."""
    wanted = set(ids) if ids is not None else None
    return [cls() for pid, cls in load_all().items()
            if cls.multi_image and (wanted is None or pid in wanted or cls.family in wanted)]


def run_multi(views: Sequence[GraphView], config: ProgramConfig, programs: Sequence[Program],
              stats: Counter | None = None) -> list[QA]:
    """Every applicable multi-image program on one image set (views in "Image 1, 2, ..." order)."""
    stats = stats if stats is not None else Counter()
    if not MIN_SET <= len(views) <= MAX_SET:
        raise ValueError(f"an image set has {MIN_SET}-{MAX_SET} images, got {len(views)}")
    if len({v.image_id for v in views}) != len(views):
        raise ValueError(f"an image set repeats an image: {[v.image_id for v in views]}")
    out: list[QA] = []
    for p in programs:
        lacking = sorted({f for v in views for f in p.requires - v.graph.fields})
        if lacking:
            stats[f"skipped {p.id}: a graph of the set lacks " + ",".join(lacking)] += 1
            continue
        out.extend(p.generate(views, config))
    return out
