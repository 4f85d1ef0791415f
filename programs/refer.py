"""Referring expressions that pick out exactly one object ("the red cup", "the cup on the table").

A question may name an object only through :func:`refer`, which returns ``None`` when it cannot make
the reference unique. Uniqueness is judged against every object the programs can see, uncertain
ones included (an uncertain second cup still makes "the cup" ambiguous), and against every object
whose label may name the same thing (:func:`namesakes`: "the person" is refused beside a batter).
No strategy but ``region`` is used for a label with faint unreported candidates
(``SceneGraph.faint_count``: a stadium of low-score spectators). Strategies, in order:

1. ``label``: the only object this label may name -> "the cup".
2. ``attribute``: a confident attribute (score >= ``confident_score``) that no other object with the
   label has, at any score, under any spelling or near-synonym ("red" is refused when another cup is
   "maroon") -> "the red cup".
3. ``relation``: a confident relation to a confident object whose label is unique, such that no other
   object with the label may stand in it: predicates are compared by meaning (synonyms, inverses and
   symmetric predicates, at any score, see :mod:`programs.predicates`), so "the cup on the table" is
   refused when another cup "sits on" the table or the table is "under" it -> "the cup on the table",
   "the man that has the hat" (predicates are written normalized, "Is On" as "on").
4. ``position``: among 2-3 objects with the label, the one whose centre is clearly (>= 10% of the image)
   the left-, right-, top- or bottom-most -> "the left-most cup".
5. ``region`` (only when ``allow_region``): the label and its normalised box, when no other object
   with the label has the same box as written -> "the cup at [0.12, ...]".

Referents are cached per view, so each object is described once per image.
"""

from __future__ import annotations

from dataclasses import dataclass

from scene_graphs.model import Object

from .base import GraphView
from .common import box_text, confident_attributes, near
from .predicates import possibly_true, postmodifier, relation_index
from .scenes import may_name_same

POSITION_MARGIN = 0.10


@dataclass(frozen=True)
class Referent:
    """A unique description of one object, the strategy used, and other objects it mentions."""

    text: str
    strategy: str
    mentions: tuple[str, ...] = ()


def _confident_attrs(view: GraphView, obj: Object) -> list[str]:
    """Normalised names of the object's confident attributes, best first."""
    return list(confident_attributes(view, obj))


def _by_position(view: GraphView, obj: Object, same: tuple[Object, ...]) -> str | None:
    if not 2 <= len(same) <= 3:
        return None
    cx, cy = obj.box.center
    others = [o.box.center for o in same if o.id != obj.id]
    mx, my = POSITION_MARGIN * view.width, POSITION_MARGIN * view.height
    if all(cx + mx <= ox for ox, _ in others):
        return "left-most"
    if all(cx - mx >= ox for ox, _ in others):
        return "right-most"
    if all(cy + my <= oy for _, oy in others):
        return "top-most"
    if all(cy - my >= oy for _, oy in others):
        return "bottom-most"
    return None


def namesakes(view: GraphView, label: str) -> tuple[Object, ...]:
    """Every visible object that ``label`` may name: its own objects and those whose label may name the
    same thing (``scenes.may_name_same``: "the person" may be the batter, the player or the man)."""
    def build() -> tuple[Object, ...]:
        kin = [lbl for lbl in view.by_label if lbl == label or may_name_same(label, lbl)]
        return tuple(o for lbl in kin for o in view.by_label[lbl])
    return view.memo(("namesakes", label), build)


def _refer(view: GraphView, obj: Object) -> Referent | None:
    """Strategies 1-4 (no region)."""
    label = obj.label
    if view.graph.faint_count(label):
        return None  # unreported candidates of the label (a crowd): "the X" may be any of them
    same = namesakes(view, label)
    if len(same) == 1:
        return Referent(f"the {label}", "label")
    others = [o for o in same if o.id != obj.id]
    names = confident_attributes(view, obj)
    if names:
        taken: set[str] = set()
        for o in others:
            for a in o.attributes:
                taken |= near(a.name)
        for name in names:
            if name not in taken:
                return Referent(f"the {name} {label}", "attribute")
    c = view.config.confident_score
    if obj.score >= c:
        for predicate, target_id in relation_index(view).by_subject.get(obj.id, ()):
            target = view.by_id[target_id]
            if (target.label == label or len(namesakes(view, target.label)) != 1 or target.score < c
                    or view.graph.faint_count(target.label)):
                continue
            if not any(possibly_true(view, o.id, predicate, target_id) for o in others):
                return Referent(f"the {label} {postmodifier(predicate)} the {target.label}", "relation",
                                (target_id,))
    where = _by_position(view, obj, same)
    if where is not None:
        return Referent(f"the {where} {label}", "position")
    return None


def _region(view: GraphView, obj: Object) -> Referent | None:
    box = box_text(view, obj)
    if any(box_text(view, o) == box for o in view.by_label.get(obj.label, ()) if o.id != obj.id):
        return None
    return Referent(f"the {obj.label} at {box}", "region")


def refer(view: GraphView, obj: Object, allow_region: bool = True) -> Referent | None:
    """The shortest unique description of ``obj`` (see module docstring), or ``None``."""
    memo = view._memo
    key = ("refer", obj.id)
    if key in memo:
        ref = memo[key]
    else:
        ref = memo[key] = _refer(view, obj)
    if ref is not None or not allow_region:
        return ref
    return view.memo(("refer_region", obj.id), lambda: _region(view, obj))
