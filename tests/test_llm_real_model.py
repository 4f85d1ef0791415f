"""Both LLM verbs end to end against a real OpenAI-compatible server: llama.cpp serving SmolLM2-135M.

A 135M model writes poor rewrites and judgements; these tests assert that the stages cope with it
(guard and elimination drop, malformed replies are retried and counted, every record is accounted
for) and that a rerun is answered from the cache without one request. Few records, short prompts and
small ``max_tokens`` keep them to a few tens of seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.llm.guard import GraphFacts, Vocabulary, check_rewrite
from scene_graphs.io import iter_graphs, read_jsonl, write_jsonl
from tests.llm_server import llama_server  # noqa: F401 - the session fixture

pytestmark = pytest.mark.slow

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "scene_graphs"
IMAGE = "42c7731d942c67a4"  # the coffee cup: five objects, a short prompt
SMALL = ["--prompt-max-objects", "3", "--prompt-max-relations", "2", "--prompt-max-text", "2",
         "--llm-max-tokens", "64", "--llm-concurrency", "1", "--llm-timeout", "120", "--llm-retries", "1",
         "--llm-parse-retries", "1"]


@pytest.fixture(scope="module")
def qa_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two records about one image, a count and a colour (with the generate manifest)."""
    from mmgen.stages.generate import generate
    from programs.base import ProgramConfig

    full = tmp_path_factory.mktemp("qa-full")
    generate(ASSETS, full, ProgramConfig(seed=0), ["single.count_objects", "single.attribute_color"])
    picked: dict[str, dict[str, Any]] = {}
    for rec in read_jsonl(full / "part-00000.jsonl"):
        if rec["images"] == [IMAGE]:
            picked.setdefault(rec["answer_type"], rec)
    assert set(picked) == {"count", "color"}
    small = tmp_path_factory.mktemp("qa")
    write_jsonl(small / "part-00000.jsonl", [picked[k] for k in ("count", "color")])
    (small / "manifest.json").write_text((full / "manifest.json").read_text())
    return small


def invoke(args: list[str]) -> Any:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_evolve_end_to_end_with_a_real_model(llama_server: str, qa_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    out, cache = tmp_path / "evo", tmp_path / "cache.sqlite"
    args = ["evolve", str(qa_dir), "-o", str(out), "--scene-graphs", str(ASSETS), "--llm-base-url", llama_server,
            "--llm-model", "smollm2", "--llm-cache", str(cache), "--seed", "3", *SMALL]
    invoke(args)
    inputs = list(read_jsonl(qa_dir / "part-00000.jsonl"))
    outputs = list(read_jsonl(out / "part-00000.jsonl"))
    dropped = list(read_jsonl(out / "dropped.jsonl"))
    summary = json.loads((out / "summary.json").read_text())
    # every input is accounted for: --emit final gives one record per input
    assert [r.get("evolved", {}).get("root_id", r["id"]) for r in outputs] == [r["id"] for r in inputs]
    assert summary["inputs"] == 2 and summary["outputs"] == 2
    assert len(dropped) == 2 - summary["evolved"]
    assert all(d["kind"] == "candidate" and d["reason"] for d in dropped)
    llm = summary["llm_this_run"]
    assert llm["requests"] >= 2 and llm["tokens"]["prompt"] > 0 and llm["tokens"]["completion"] > 0
    # llama-cpp-python 0.3 refuses response_format json_schema: the client steps down once
    assert llm["format_fallbacks"] in ([], ["json_schema -> json_object_schema"])
    # what survived really passes the guard and the elimination
    graph = next(g for g in iter_graphs(ASSETS) if g.image_id == IMAGE)
    vocab = Vocabulary.build(g.label for g2 in iter_graphs(ASSETS) for g in g2.objects)
    by_id = {r["id"]: r for r in inputs}
    for rec in outputs:
        if "evolved" in rec:
            root = by_id[rec["evolved"]["root_id"]]
            assert check_rewrite(root, root, rec["question"], rec["answer"], rec["evolved"]["steps"],
                                 GraphFacts.of([graph]), vocab) is None
            assert rec["evolved"]["elimination"]["improved"] and rec["evolved"]["elimination"]["needs_image"]
    # the rerun (forced) is answered from the cache: not one request
    first = (out / "part-00000.jsonl").read_bytes()
    invoke(args + ["--overwrite"])
    again = json.loads((out / "summary.json").read_text())["llm_this_run"]
    assert again["requests"] == 0  # (the refused json_schema probe was not cached: it got no reply)
    assert again["cache_hits"] == llm["requests"] - len(llm["format_fallbacks"])
    assert (out / "part-00000.jsonl").read_bytes() == first


def test_curate_judge_end_to_end_with_a_real_model(llama_server: str, qa_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    out, cache = tmp_path / "cur", tmp_path / "cache.sqlite"
    args = ["curate", str(qa_dir), "-o", str(out), "--judge", "--scene-graphs", str(ASSETS), "--judge-threshold", "5",
            "--max-answer-share", "1", "--llm-base-url", llama_server, "--llm-model", "smollm2", "--llm-cache",
            str(cache), *SMALL]
    invoke(args)
    kept = list(read_jsonl(out / "part-00000.jsonl"))
    dropped = list(read_jsonl(out / "dropped.jsonl"))
    assert len(kept) + len(dropped) == 2
    for r in kept:
        assert 5 <= r["curation"]["judge"]["score"] <= 10
    for d in dropped:
        assert d["filter"] == "judge" and d["reason"]
        assert d["judge"]["score"] is None or d["judge"]["score"] < 5
    summary = json.loads((out / "summary.json").read_text())
    assert summary["llm"]["requests"] >= 2 and summary["judge"]["judged"] == 2
    invoke(args)
    assert json.loads((out / "summary.json").read_text())["llm"]["requests"] == 0


def test_unconstrained_short_replies_are_malformed_retried_and_dropped(llama_server: str, qa_dir: Path,  # noqa: F811
                                                                      tmp_path: Path) -> None:
    one = tmp_path / "qa"
    write_jsonl(one / "part-00000.jsonl", list(read_jsonl(qa_dir / "part-00000.jsonl"))[:1])
    (one / "manifest.json").write_text((qa_dir / "manifest.json").read_text())
    out = tmp_path / "evo"
    invoke(["evolve", str(one), "-o", str(out), "--scene-graphs", str(ASSETS), "--llm-base-url", llama_server,
            "--llm-model", "smollm2", "--no-llm-cache", "--llm-response-format", "none", *SMALL,
            "--llm-max-tokens", "6", "--prompt-max-objects", "2", "--prompt-max-relations", "1"])
    summary = json.loads((out / "summary.json").read_text())
    llm = summary["llm"]
    assert llm["malformed_replies"] == 2 and llm["failed_calls"] == 1 and llm["requests"] == 2
    assert llm["truncated_replies"] == 2
    dropped = list(read_jsonl(out / "dropped.jsonl"))
    assert [d["filter"] for d in dropped] == ["malformed"]
    assert "malformed reply after 2 attempt(s)" in dropped[0]["reason"]
    assert list(read_jsonl(out / "part-00000.jsonl")) == list(read_jsonl(one / "part-00000.jsonl"))
