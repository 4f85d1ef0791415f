"""Curation with the LLM judge, against a scripted fake server; and the selection rules."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.curate.select import select
from scene_graphs.io import read_jsonl
from tests.llm_server import FakeServer, Reply, blocks, completion, scripted_model

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "scene_graphs"


def score_of(question: str) -> int:
    return 1 + sum(map(ord, question)) % 10


def judge(data: dict, body: dict) -> dict:
    return {"score": score_of(data["record"]["question"]), "reason": "scored by length"}


@pytest.fixture(scope="module")
def qa_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mmgen.stages.generate import generate
    from programs.base import ProgramConfig

    out = tmp_path_factory.mktemp("qa")
    generate(ASSETS, out, ProgramConfig(seed=0), ["single.exists", "single.attribute_color", "single.count_objects",
                                                  "single.contains_word"])
    return out


def run(server: FakeServer, qa: Path, out: Path, cache: Path, *extra: str) -> Any:
    return CliRunner().invoke(main, ["curate", str(qa), "-o", str(out), "--judge", "--scene-graphs", str(ASSETS),
                                     "--llm-base-url", server.url, "--llm-model", "fake", "--llm-cache", str(cache),
                                     "--max-answer-share", "1", *extra], catch_exceptions=False)


def test_threshold_keeps_high_scores_and_rerun_is_free(qa_dir: Path, tmp_path: Path) -> None:
    inputs = list(read_jsonl(qa_dir / "part-00000.jsonl"))
    with FakeServer(scripted_model(judge=judge)) as srv:
        result = run(srv, qa_dir, tmp_path / "cur", tmp_path / "c.sqlite", "--judge-threshold", "6")
        assert result.exit_code == 0, result.output
        sent = srv.count
        assert sent == len(inputs)  # one judgement per record
        first = (tmp_path / "cur" / "part-00000.jsonl").read_bytes()
        assert run(srv, qa_dir, tmp_path / "cur", tmp_path / "c.sqlite", "--judge-threshold", "6").exit_code == 0
        assert srv.count == sent  # the rerun asks nothing
    assert (tmp_path / "cur" / "part-00000.jsonl").read_bytes() == first
    kept = list(read_jsonl(tmp_path / "cur" / "part-00000.jsonl"))
    dropped = list(read_jsonl(tmp_path / "cur" / "dropped.jsonl"))
    assert {r["id"] for r in kept} == {r["id"] for r in inputs if score_of(r["question"]) >= 6}
    assert kept and dropped
    for r in kept:
        j = r["curation"]["judge"]
        assert j["score"] == score_of(r["question"]) and j["model"] == "fake" and j["prompt_version"] == "judge-v1"
    for d in dropped:
        assert d["filter"] == "judge" and "below the threshold 6" in d["reason"] and d["judge"]["score"] < 6
    summary = json.loads((tmp_path / "cur" / "summary.json").read_text())
    assert summary["judge"]["judged"] == len(inputs) and summary["llm"]["requests"] == 0
    assert summary["llm"]["cache_hits"] == len(inputs)


def test_top_fraction(qa_dir: Path, tmp_path: Path) -> None:
    inputs = list(read_jsonl(qa_dir / "part-00000.jsonl"))
    with FakeServer(scripted_model(judge=judge)) as srv:
        assert run(srv, qa_dir, tmp_path / "cur", tmp_path / "c.sqlite", "--judge-top", "0.25").exit_code == 0
    kept = list(read_jsonl(tmp_path / "cur" / "part-00000.jsonl"))
    assert len(kept) == math.ceil(0.25 * len(inputs))
    worst_kept = min(r["curation"]["judge"]["score"] for r in kept)
    dropped = list(read_jsonl(tmp_path / "cur" / "dropped.jsonl"))
    assert all(d["judge"]["score"] <= worst_kept for d in dropped)
    assert all("not in the top 25%" in d["reason"] for d in dropped)


def test_only_records_passing_the_cheap_filters_are_judged(qa_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "qa"
    src.mkdir()
    records = list(read_jsonl(qa_dir / "part-00000.jsonl"))[:6]
    dup = dict(records[0], id=records[0]["id"] + "-copy")
    (src / "part-00000.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*records, dup]))
    with FakeServer(scripted_model(judge=judge)) as srv:
        assert run(srv, src, tmp_path / "cur", tmp_path / "c.sqlite").exit_code == 0
        assert srv.count == 6
    dropped = list(read_jsonl(tmp_path / "cur" / "dropped.jsonl"))
    assert dup["id"] in {d["id"] for d in dropped if d["filter"] == "exact_duplicate"}


def test_malformed_and_failed_judgements_drop_with_the_reason(qa_dir: Path, tmp_path: Path) -> None:
    def behaviour(body: dict, n: int) -> Reply:
        q = blocks(body["messages"])["record"]["question"]
        if "color" in q.lower():
            return Reply(completion('{"score": "high"}'))  # schema violation every time
        if "how many" in q.lower():
            return Reply({"error": {"message": "bad request"}}, 400)
        return Reply(completion(json.dumps({"score": 9, "reason": "good"})))

    inputs = list(read_jsonl(qa_dir / "part-00000.jsonl"))
    with FakeServer(behaviour) as srv:
        result = run(srv, qa_dir, tmp_path / "cur", tmp_path / "c.sqlite", "--llm-parse-retries", "1")
        assert result.exit_code == 0, result.output
    kept = list(read_jsonl(tmp_path / "cur" / "part-00000.jsonl"))
    dropped = {d["id"]: d for d in read_jsonl(tmp_path / "cur" / "dropped.jsonl")}
    assert len(kept) + len(dropped) == len(inputs)
    for r in inputs:
        q = r["question"].lower()
        if "color" in q:
            assert "no valid score" in dropped[r["id"]]["reason"] and "malformed" in dropped[r["id"]]["reason"]
        elif "how many" in q:
            assert "400" in dropped[r["id"]]["reason"]
        else:
            assert r["id"] not in dropped
    summary = json.loads((tmp_path / "cur" / "summary.json").read_text())
    n_color = sum(1 for r in inputs if "color" in r["question"].lower())
    assert summary["llm"]["malformed_replies"] == 2 * n_color


# --------------------------------------------------------------------------------------- selection rules
def test_select_threshold_and_unscored() -> None:
    drops = select({0: 9, 1: 5, 2: None, 3: 6}, threshold=6)
    assert set(drops) == {1, 2} and "no valid score" in drops[2] and "below" in drops[1]


def test_select_top_breaks_ties_by_quality_then_hash() -> None:
    scores = {0: 7, 1: 7, 2: 7, 3: 9}
    tiebreak = {0: (0.5, 3), 1: (0.9, 2), 2: (0.5, 1), 3: (0.1, 0)}
    assert set(select(scores, top=0.5, tiebreak=tiebreak)) == {0, 2}  # 3 (best score) and 1 (best quality) stay
    assert set(select(scores, top=0.75, tiebreak=tiebreak)) == {0}  # equal quality: the smaller hash wins


@pytest.mark.parametrize("kw", [{}, {"threshold": 5, "top": 0.5}, {"top": 0.0}, {"top": 1.5}])
def test_select_arguments(kw: dict) -> None:
    with pytest.raises(ValueError):
        select({0: 1}, **kw)
