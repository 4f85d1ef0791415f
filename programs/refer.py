"""Referring expressions that pick out exactly one object ("the red cup", "the cup on the table").

A question may name an object only through :func:`refer`, which returns ``None`` when it cannot make
the reference unique. Uniqueness is judged against every object the programs can see, uncertain
ones included (an uncertain second cup still makes "the cup" ambiguous). Strategies, in order:

1. ``label``: the only object with this label -> "the cup".
2. ``attribute``: a confident attribute (score >= ``confident_score``) that no other object with the
   label has at any score -> "the red cup".
3. ``relation``: a relation to an object whose label is unique, that no other object with the label
   shares -> "the cup on the table".
4. ``position``: among 2-3 objects with the label, the one whose centre is clearly (>= 10% of the image)
   the left-, right-, top- or bottom-most -> "the left-most cup".
5. ``region`` (only when ``allow_region``): the label and its normalised box -> "the cup at [0.12, ...]".
"""

from __future__ import annotations

from dataclasses import dataclass

from scene_graphs.model import Object

from .base import GraphView
from .grammar import fmt_box

POSITION_MARGIN = 0.10


@dataclass(frozen=True)
class Referent:
    """A unique description of one object, the strategy used, and other objects it mentions."""

    text: str
    strategy: str
    mentions: tuple[str, ...] = ()


def _confident_attrs(view: GraphView, obj: Object) -> list[str]:
    c = view.config.confident_score
    return [a.name for a in sorted(obj.attributes, key=lambda a: (-a.score, a.name)) if a.score >= c]


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


def refer(view: GraphView, obj: Object, allow_region: bool = True) -> Referent | None:
    """The shortest unique description of ``obj`` (see module docstring), or ``None``."""
    same = view.by_label.get(obj.label, ())
    if len(same) == 1:
        return Referent(f"the {obj.label}", "label")
    others = [o for o in same if o.id != obj.id]
    for name in _confident_attrs(view, obj):
        if not any(name in o.attribute_names() for o in others):
            return Referent(f"the {name} {obj.label}", "attribute")
    for rel in sorted(view.relations, key=lambda r: (r.predicate, r.object)):
        if rel.subject != obj.id or rel.score < view.config.confident_score:
            continue
        target = view.by_id[rel.object]
        if not view.is_unique_label(target.label) or target.label == obj.label:
            continue
        if not any(r.subject == o.id and r.predicate == rel.predicate and r.object == rel.object
                   for r in view.relations for o in others):
            return Referent(f"the {obj.label} {rel.predicate} the {target.label}", "relation", (target.id,))
    where = _by_position(view, obj, same)
    if where is not None:
        return Referent(f"the {where} {obj.label}", "position")
    if allow_region and not any(o.box == obj.box for o in others):
        return Referent(f"the {obj.label} at {fmt_box(obj.box.normalized(view.width, view.height))}", "region")
    return None
