"""Conversation: 3-5 questions about one image from other single-image programs, as one multi-turn record.

The plan lists the turns as ``{"program": id, "plan": plan}``; the programs and their plans are drawn
with an rng derived from (seed, image, this program), through each program's own ``candidates`` and
answer-balanced ``select``, so ``candidates`` is a pure function of the graph and config and ``mmgen
verify`` can check a stored conversation. ``solve`` recomputes every turn's answer with its program's
``solve``; the value is the list of those answers. Abstentions of the programs consulted here are not
counted again (they run on a copy of the view with its own tally).
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import numpy as np

from ..base import REGISTRY, GraphView, Plan, Program, Realized, Template, load_all, make_rng, register
from .relations import share_cache

MIN_TURNS = 3
MAX_TURNS = 5
EXCLUDED = frozenset({"single.dense_caption"})
"""Programs never used as a turn (besides conversations themselves): long free-form answers."""


_LOADED = False


def _registry() -> dict[str, type[Program]]:
    """The registry, every program module imported (once per process: importing is not free)."""
    global _LOADED
    if not _LOADED:
        load_all()
        _LOADED = True
    return dict(sorted(REGISTRY.items()))


def _quiet(view: GraphView) -> GraphView:
    """The same view (sharing its cached groupings) with a private abstention tally."""
    quiet = copy.copy(view)
    quiet.stats = Counter()
    share_cache(view, quiet)
    return quiet


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
        programs = [cls() for pid, cls in _registry().items()
                    if not cls.multi_image and cls.family != self.family and pid not in EXCLUDED]
        return [p for p in programs if p.applicable(view.graph)]

    def candidates(self, view: GraphView) -> list[Plan]:
        quiet = _quiet(view)
        rng = make_rng(view.config.seed, (view.image_id,), self.id + ":turns")
        programs = self._programs(view)
        target = int(rng.integers(MIN_TURNS, MAX_TURNS + 1))
        turns: list[Plan] = []
        for i in rng.permutation(len(programs)).tolist():
            program = programs[i]
            chosen = program.select(quiet, program.candidates(quiet), rng, 1)
            if chosen:
                turns.append({"program": program.id, "plan": chosen[0][0]})
            if len(turns) == target:
                break
        return [{"turns": turns}] if len(turns) >= MIN_TURNS else []

    def solve(self, view: GraphView, plan: Plan) -> Any:
        registry = _registry()
        quiet = _quiet(view)
        values = []
        for turn in plan["turns"]:
            cls = registry.get(turn["program"])
            if cls is None:
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
