"""Conversation: 3-5 turns from other programs, each re-derivable from the graph by its own program."""

from __future__ import annotations

import re
import string

import numpy as np

from programs.base import REGISTRY, GraphView, ProgramConfig, get_program, load_all
from tests.test_programs_relations import CONFIG, graphs

GRAPHS = graphs(60, seed=9, masks=True, depth=True, text=True, width=96, height=80) + graphs(20, seed=10, relations=False)
PID = "single.conversation"
OPENER = "Let's look at this image together. "


def _follows_a_template(program_id: str, question: str) -> bool:
    for t in REGISTRY[program_id].templates:
        pattern = "".join(re.escape(lit) + (".+" if field is not None else "")
                          for lit, field, _, _ in string.Formatter().parse(t.text))
        if re.fullmatch(pattern, question, flags=re.DOTALL):
            return True
    return False


def test_turns_come_from_other_programs_and_re_derive():
    load_all()
    program = get_program(PID)
    n = 0
    for g in GRAPHS:
        view = GraphView(g, CONFIG)
        for qa in program.generate([view], CONFIG):
            turns = qa.plan["turns"]
            assert 3 <= len(turns) == len(qa.turns) == len(qa.value) <= 5
            assert qa.turns[0] == (qa.question, qa.answer) and qa.options == ()
            ids = [t["program"] for t in turns]
            assert len(set(ids)) == len(ids) and PID not in ids and "single.dense_caption" not in ids
            fresh = GraphView(g, CONFIG)
            for i, (turn, (question, answer)) in enumerate(zip(turns, qa.turns)):
                sub = get_program(turn["program"])
                assert sub.applicable(g) and not sub.multi_image
                assert turn["plan"] in sub.candidates(fresh), turn
                assert sub.solve(fresh, turn["plan"]) == qa.value[i]
                if i == 0 and qa.template == "opener":
                    assert question.startswith(OPENER)
                    question = question[len(OPENER):]
                assert _follows_a_template(turn["program"], question), (turn["program"], question)
                again = sub.realize(fresh, turn["plan"], qa.value[i], np.random.default_rng(0))
                assert again.answer == answer
                assert f"Turn {i + 1}: " in qa.rationale
            n += 1
    assert n > 40


def test_plans_are_a_function_of_graph_and_seed():
    program = get_program(PID)
    for g in GRAPHS[:15]:
        assert program.candidates(GraphView(g, CONFIG)) == program.candidates(GraphView(g, CONFIG))
    a = [program.candidates(GraphView(g, CONFIG)) for g in GRAPHS[:15]]
    b = [program.candidates(GraphView(g, ProgramConfig(seed=CONFIG.seed + 1))) for g in GRAPHS[:15]]
    assert a != b


def test_other_programs_abstentions_are_not_counted_twice():
    program = get_program(PID)
    for g in GRAPHS[:30]:
        view = GraphView(g, CONFIG)
        program.generate([view], CONFIG)
        assert all(PID in key for key in view.stats), dict(view.stats)
