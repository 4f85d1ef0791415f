"""Conversation: 3-5 questions about one image from other single-image programs, as one multi-turn record.

The plan lists the turns as ``{"program": id, "plan": plan}``; the programs and their plans are drawn
with an rng derived from (seed, image, this program), through each program's own candidates and
answer-balanced selection, so ``candidates`` is a pure function of the graph and config and ``mmgen
verify`` can check a stored conversation. A turn repeating an earlier turn's answer about the same
object ("What colour is the ball?" twice, in other words) is skipped. ``solve`` recomputes every
turn's answer with its program's ``solve``; the value is the list of those answers.

The other programs' solved candidates come from the view's cache (:meth:`Program.plans`), so a
conversation costs little more than realizing its turns; they are consulted through a view with its
own abstention tally (:meth:`GraphView.with_stats`), so their abstentions are not counted twice.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ..base import REGISTRY, GraphView, Plan, Program, Realized, Template, draw, load_all, make_rng, register

MIN_TURNS = 3
MAX_TURNS = 5
EXCLUDED = frozenset({"single.dense_caption"})
"""Programs never used as a turn (besides conversations themselves): long free-form answers."""


_LOADED = False
_INSTANCES: list[Program] = []


def _registry() -> dict[str, type[Program]]:
    """The registry, every program module imported (once per process: importing is not free)."""
    global _LOADED
    if not _LOADED:
        load_all()
        _LOADED = True
    return dict(sorted(REGISTRY.items()))


def _instances() -> list[Program]:
    """One instance of every single-image program a turn may come from, sorted by id (programs are
    stateless, so they are made once per process)."""
    if not _INSTANCES:
        _INSTANCES.extend(cls() for pid, cls in _registry().items()
                          if not cls.multi_image and pid not in EXCLUDED and pid != Conversation.id)
    return _INSTANCES


def _quiet(view: GraphView) -> GraphView:
    """The same view (sharing all its caches, the other programs' solved candidates included) with a
    private abstention tally."""
    return view.with_stats(Counter())


def _plain(value: Any) -> Any:
    """A private copy of a JSON plan (a conversation's turns never share dicts with other records)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@register
class Conversation(Program):
    """A multi-turn conversation bundling 3-5 questions about one image from other programs (free-form)."""

    id = "single.conversation"
    family = "conversation"
    requires = frozenset({"objects"})
    answer_type = "conversation"
    num_options = 0
    templates = (
        Template("turns", "{question}"),
        Template("opener", "Let's look at this image together. {question}"),
    )

    def _programs(self, view: GraphView) -> list[Program]:
        return [p for p in _instances() if p.family != self.family and p.applicable(view.graph)]

    def solved_candidates(self, view: GraphView) -> list[tuple[Plan, Any]]:
        quiet = _quiet(view)
        rng = make_rng(view.config.seed, (view.image_id,), self.id + ":turns")
        programs = self._programs(view)
        target = MIN_TURNS + draw(rng, MAX_TURNS - MIN_TURNS + 1)
        turns: list[Plan] = []
        values: list[Any] = []
        asked: list[tuple[set[str], str]] = []
        for i in rng.permutation(len(programs)).tolist():
            program = programs[i]
            chosen = program.select_solved(program.plans(quiet), rng, 1)
            if not chosen:
                continue
            plan, value = chosen[0]
            objects, answer = set(program.referenced_objects(plan)), program.answer_key(value)
            if any(answer == a and objects & o for o, a in asked):
                continue  # the same answer about the same object: asked already, in other words
            asked.append((objects, answer))
            turns.append({"program": program.id, "plan": _plain(plan)})
            values.append(_plain(value))
            if len(turns) == target:
                break
        return [({"turns": turns}, values)] if len(turns) >= MIN_TURNS else []

    def solve(self, view: GraphView, plan: Plan) -> Any:
        registry = _registry()
        quiet = _quiet(view)
        values = []
        for turn in plan["turns"]:
            cls = registry.get(turn["program"])
            if cls is None or cls.multi_image or cls.family == self.family or turn["program"] in EXCLUDED:
                return None
            value = cls().solve(quiet, turn["plan"])
            if value is None:
                return None
            values.append(value)
        return values

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        registry = _registry()
        quiet = _quiet(view)
        turns: list[tuple[str, str]] = []
        steps: list[str] = []
        objects: list[str] = []
        for n, (turn, v) in enumerate(zip(plan["turns"], value), start=1):
            program = registry[turn["program"]]()
            r = program.realize(quiet, turn["plan"], v, rng)
            turns.append((r.question, r.answer))
            steps.append(f"Turn {n}: {r.rationale}")
            objects.extend(program.referenced_objects(turn["plan"]) + r.objects)
        t = self.pick_template(rng)
        first_q = t.text.format(question=turns[0][0])
        turns[0] = (first_q, turns[0][1])
        return Realized(t.id, first_q, turns[0][1], " ".join(steps), [], objects=list(dict.fromkeys(objects)),
                        turns=turns)
