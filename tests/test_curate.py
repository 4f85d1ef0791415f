"""Curation without a model: duplicates, answer balance, length, language, quality; nothing lost."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from mmgen.cli import main
from mmgen.curate import CurateOptions, curate
from mmgen.curate.balance import cap_for
from mmgen.curate.dedup import Item, find_duplicates
from mmgen.curate.quality import WEIGHTS, indicators, quality_score
from mmgen.curate.text import language_problem, length_problem, normalize_text
from scene_graphs.io import read_jsonl, write_jsonl

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "scene_graphs"


def qa(i: int | str, question: str, answer: str, image: str = "img1", program: str = "single.exists",
       value: Any = None, **kw: Any) -> dict[str, Any]:
    return {"id": f"{image}:{program}:{i}", "program": program, "family": "objects", "template": "t",
            "question_type": "free_form", "answer_type": "label", "images": [image], "question": question,
            "answer": answer, "options": [], "answer_index": None, "rationale": "Because the graph says so.",
            "plan": {}, "value": value, "provenance": {}, "seed": 0, "image_paths": ["a.jpg"], "turns": [], **kw}


def run(tmp_path: Path, shards: list[list[dict[str, Any]]], **options: Any) -> tuple[list, list, dict]:
    src = tmp_path / "qa"
    for i, records in enumerate(shards):
        write_jsonl(src / f"part-{i:05d}.jsonl", records)
    out = tmp_path / "cur"
    summary = curate(src, out, CurateOptions(**options), overwrite=True)
    kept = [r for i in range(len(shards)) for r in read_jsonl(out / f"part-{i:05d}.jsonl")]
    return kept, list(read_jsonl(out / "dropped.jsonl")), summary


# --------------------------------------------------------------------------------------- the whole stage
@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mmgen.stages.generate import generate
    from programs.base import ProgramConfig

    out = tmp_path_factory.mktemp("qa")
    generate(ASSETS, out, ProgramConfig(seed=0))
    return out


def test_generated_records_are_all_accounted_for(generated: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["curate", str(generated), "-o", str(tmp_path / "cur"),
                                       "--max-answer-share", "0.3", "--min-answer-count", "2"])
    assert result.exit_code == 0, result.output
    inputs = list(read_jsonl(generated / "part-00000.jsonl"))
    kept = list(read_jsonl(tmp_path / "cur" / "part-00000.jsonl"))
    dropped = list(read_jsonl(tmp_path / "cur" / "dropped.jsonl"))
    assert Counter(r["id"] for r in inputs) == Counter([r["id"] for r in kept] + [d["id"] for d in dropped])
    assert dropped  # the capping rule bites on these programs
    position = {r["id"]: i for i, r in enumerate(inputs)}
    assert [position[r["id"]] for r in kept] == sorted(position[r["id"]] for r in kept)  # input order
    assert all(0 <= r["curation"]["quality"] <= 1 for r in kept)
    for d in dropped:
        assert d["stage"] == "curate" and d["reason"] and d["shard"] == "part-00000.jsonl"
        assert d["record"]["id"] == d["id"]
    assert sorted(p.name for p in (tmp_path / "cur").glob("part-*.jsonl")) == ["part-00000.jsonl"]
    summary = json.loads((tmp_path / "cur" / "summary.json").read_text())
    assert summary["inputs"] == len(inputs) and summary["kept"] == len(kept) and summary["dropped"] == len(dropped)
    assert sum(summary["dropped_by_filter"].values()) == len(dropped)
    manifest = json.loads((tmp_path / "cur" / "manifest.json").read_text())
    assert manifest["stage"] == "curate" and manifest["source_stage"] == "generate"
    assert manifest["config"] == json.loads((generated / "manifest.json").read_text())["config"]


def test_output_is_deterministic(generated: Path, tmp_path: Path) -> None:
    a = curate(generated, tmp_path / "a", CurateOptions(max_answer_share=0.3, min_answer_count=1))
    b = curate(generated, tmp_path / "b", CurateOptions(max_answer_share=0.3, min_answer_count=1))
    assert a["kept"] == b["kept"]
    for name in ("part-00000.jsonl", "dropped.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    c = curate(generated, tmp_path / "c", CurateOptions(max_answer_share=0.3, min_answer_count=1, seed=7))
    assert c["kept"] == a["kept"]  # the seed only breaks ties


def test_shards_are_mirrored_and_duplicates_found_across_them(tmp_path: Path) -> None:
    a = qa(0, "Is there a dog in the picture?", "yes")
    b = qa(1, "Is there a dog in the picture ?", "yes")  # the same after normalization, in another shard
    c = qa(2, "Is there a dog in the picture?", "yes", image="img2")  # another image: not a duplicate
    kept, dropped, summary = run(tmp_path, [[a], [b, c]], max_answer_share=1.0)
    assert [r["id"] for r in kept] == [a["id"], c["id"]]
    assert [(d["id"], d["filter"], d["shard"]) for d in dropped] == [(b["id"], "exact_duplicate", "part-00001.jsonl")]
    assert a["id"] in dropped[0]["reason"]
    assert (tmp_path / "cur" / "part-00001.jsonl").exists()


Q1 = "Looking closely at the picture, what color is the building on the left?"
Q2 = "Looking closely at the picture, what colour is the building on the left?"  # estimated Jaccard ~0.87


@pytest.mark.parametrize("q2, a2, any_answer, dropped", [
    (Q2, "yellow", False, True),  # near duplicate, same answer
    (Q2, "red", False, False),  # different fact: kept
    (Q2, "red", True, True),  # unless answers are ignored
    ("How many windows does the building on the left have?", "yellow", False, False),  # different question
])
def test_near_duplicates(tmp_path: Path, q2: str, a2: str, any_answer: bool, dropped: bool) -> None:
    first = qa(0, Q1, "yellow")
    second = qa(1, q2, a2)
    kept, drops, _ = run(tmp_path, [[first, second]], max_answer_share=1.0, near_dup_any_answer=any_answer)
    assert [d["filter"] for d in drops] == (["near_duplicate"] if dropped else [])
    assert kept[0]["id"] == first["id"]


@pytest.mark.parametrize("q1, q2", [
    ("Which object in the image is green?", "Which object in the image is pink?"),
    ("Looking at the spoon and the cup, which is closest to the top edge of the image?",
     "Looking at the spoon and the saucer, which is closest to the top edge of the image?"),
    ("Which point is closer to the camera: (0.56, 0.52) or (0.09, 0.19)?",
     "Which point is closer to the camera: (0.56, 0.52) or (0.59, 0.14)?"),
])
def test_template_variants_with_different_answers_are_kept(q1: str, q2: str) -> None:
    items = [Item(0, normalize_text(q1), "a"), Item(1, normalize_text(q2), "b")]
    assert find_duplicates(items, 0.6) == {}
    assert 1 in find_duplicates(items, 0.6, any_answer=True)  # they are similar: only the answer tells them apart


def test_near_duplicates_in_generated_data_are_few_and_share_answers(generated: Path) -> None:
    from mmgen.curate.text import answer_key

    records = list(read_jsonl(generated / "part-00000.jsonl"))
    groups: dict[tuple, list[Item]] = {}
    for i, r in enumerate(records):
        groups.setdefault(tuple(r["images"]), []).append(Item(i, normalize_text(r["question"]), answer_key(r)))
    found = {i: v for items in groups.values() for i, v in find_duplicates(items, 0.85).items()}
    assert len(found) <= 0.05 * len(records)
    for i, (kind, other, sim) in found.items():
        if records[i].get("turns") or records[other].get("turns"):
            continue  # a conversation's first turn may repeat a single question; its answer is the whole dialogue
        assert kind in ("near", "exact") and sim >= 0.85 and answer_key(records[i]) == answer_key(records[other])
    loose = sum(len(find_duplicates(v, 0.6, any_answer=True)) for v in groups.values())
    assert loose > len(found)


def test_find_duplicates_picks_the_earliest_kept() -> None:
    items = [Item(0, "what is on the red table near the window", "cup"),
             Item(1, "what is on the red table near the windows", "cup"),
             Item(2, "what is on the red table near the window", "cup")]
    assert find_duplicates(items, 0.8) == {1: ("near", 0, pytest.approx(find_duplicates(items, 0.8)[1][2])),
                                           2: ("exact", 0, 1.0)}
    assert 0.8 <= find_duplicates(items, 0.8)[1][2] < 1


# --------------------------------------------------------------------------------------- balance
@pytest.mark.parametrize("counts, share, floor, cap", [
    ({"yes": 90, "no": 10}, 0.5, 1, 10),
    ({"yes": 90, "no": 10}, 0.3, 1, 10),  # two answers: the share cannot go below 1/2
    ({"yes": 90, "no": 10}, 0.5, 25, 25),  # never below the floor
    ({"yes": 10, "no": 10}, 0.5, 1, None),
    ({"a": 7}, 0.3, 1, None),  # one answer: nothing to balance
    ({"1": 50, "2": 30, "3": 10, "4": 10}, 0.3, 1, 15),  # 15 <= 0.3 * (15 + 15 + 10 + 10)
    ({"1": 50, "2": 30, "3": 10, "4": 10}, 0.6, 1, None),
    ({"1": 3, "2": 1, "3": 1, "4": 1, "5": 1}, 0.3, 1, 1),
])
def test_cap_rule_table(counts: dict, share: float, floor: int, cap: int | None) -> None:
    assert cap_for(counts, share, floor) == cap


@given(st.lists(st.integers(1, 200), min_size=1, max_size=12), st.floats(0.05, 1.0), st.integers(1, 30))
def test_cap_rule_properties(values: list[int], share: float, floor: int) -> None:
    counts = {str(i): c for i, c in enumerate(values)}
    cap = cap_for(counts, share, floor)
    eff = max(share, 1 / len(values))

    def top_share(t: float) -> float:
        capped = [min(c, t) for c in values]
        return max(capped) / sum(capped)

    if cap is None:  # no cap needed: the largest answer already fits (or the floor protects it)
        assert top_share(max(values)) <= eff + 1e-9 or max(values) <= max(floor, 1)
        return
    assert cap < max(values)
    if cap > floor:
        assert top_share(cap) <= eff + 1e-9  # the guarantee
        assert top_share(cap + 1) > eff - 1e-9  # and the cap is the largest that gives it
    else:
        assert cap == max(floor, 1)


def test_capping_keeps_the_best_and_is_reported(tmp_path: Path) -> None:
    yes = [qa(i, f"Is there a {w} in this image?", "yes", value="yes", program="single.exists")
           for i, w in enumerate(["dog", "cat", "bus", "car", "cup", "tree", "sign", "bench"])]
    yes[5]["rationale"] = ""  # lower quality: the first to go
    no = [qa(10 + i, f"Is there a {w} in this image?", "no", value="no") for i, w in enumerate(["kite", "fork"])]
    kept, dropped, summary = run(tmp_path, [yes + no], max_answer_share=0.5, min_answer_count=1)
    assert Counter(r["answer"] for r in kept) == {"yes": 2, "no": 2}
    assert yes[5]["id"] in {d["id"] for d in dropped}
    assert {d["filter"] for d in dropped} == {"balance"} and len(dropped) == 6
    assert "capped at 2 of 8" in dropped[0]["reason"]
    assert summary["answer_caps"]["single.exists"] == {"cap": 2, "answers_over_cap": {'"yes"': 8}}


# --------------------------------------------------------------------------------------- text checks
@pytest.mark.parametrize("rec, problem", [
    (qa(0, "Is there a dog?", "yes"), None),
    (qa(0, "Dog?", "yes"), "fewer than 2"),
    (qa(0, "Is there a dog?", "   "), "empty answer"),
    (qa(0, "Is " + "very " * 200 + "big?", "yes"), "more than 150"),
    (qa(0, "Is there a dog?", "yes " * 500), "more than 400"),
    (qa(0, "Hi there friend?", "yes", turns=[["Hi there friend?", "yes"], ["And?", "no"]]), "turn 2"),
])
def test_length(rec: dict, problem: str | None) -> None:
    got = length_problem(rec)
    assert (got is None) if problem is None else (problem in (got or ""))


@pytest.mark.parametrize("text, problem", [
    ("What color is the bus on the left?", None),
    ('Does the sign say "salida de emergencia por aquí"?', None),  # quoted text may be in any language
    ("Какого цвета автобус слева на картинке?", "non-Latin"),
    ("Quel est la couleur du bus gauche?", "English"),
    ("Is the bus\x00 red?", "garbled"),
    ("Is the bus \ufffd red?", "garbled"),
    ("yes", None),
])
def test_language(text: str, problem: str | None) -> None:
    got = language_problem(text)
    assert (got is None) if problem is None else (problem in (got or ""))


def test_invalid_length_and_language_drops_in_the_stage(tmp_path: Path) -> None:
    records = [qa(0, "Is there a dog in the image?", "yes"), {"id": "x", "question": 3},
               qa(1, "<image> Is there a cat?", "no"), qa(2, "Dog?", "no"), qa(3, "Какого цвета автобус слева?", "red")]
    kept, dropped, summary = run(tmp_path, [records], max_answer_share=1.0)
    assert [r["id"] for r in kept] == [records[0]["id"]]
    assert [d["filter"] for d in dropped] == ["invalid", "invalid", "length", "language"]
    assert "image token" in dropped[1]["reason"]
    assert summary["inputs"] == 5


# --------------------------------------------------------------------------------------- quality
@pytest.mark.parametrize("rec, low", [
    (qa(0, "is there a dog", "yes", rationale=""), {"well_formed", "rationale"}),
    (qa(0, "What is the bus next to?", "the bench"), set()),
    (qa(0, "What is the bus next to?", "the bench", rationale="x"), {"rationale"}),
    (qa(0, "Name the object next to the bench.", "bench"), {"no_leak"}),
    (qa(0, "Is it the cat or the bench?", "bench"), set()),  # a choice question may name its answer
    (qa(0, "dog dog dog dog dog dog dog?", "many"), {"diversity"}),
    (qa(0, "Why?", "@@@ ### $$$ %%% ^^^ ~~~"), {"question_len", "answer_len", "clean_chars"}),
])
def test_quality_indicators(rec: dict, low: set[str]) -> None:
    ind = indicators(rec)
    assert set(ind) == set(WEIGHTS)
    assert {k for k, v in ind.items() if v < 1} == low
    score, _ = quality_score(rec)
    assert score == pytest.approx(sum(WEIGHTS[k] * v for k, v in ind.items()) / sum(WEIGHTS.values()), abs=1e-4)


def test_low_quality_is_dropped_with_the_weak_indicators(tmp_path: Path) -> None:
    good = qa(0, "What is the dog lying on?", "the rug")
    bad = qa(1, "the dog the dog the dog the dog the dog the dog", "the dog the dog the dog", rationale="")
    kept, dropped, _ = run(tmp_path, [[good, bad]], max_answer_share=1.0, min_quality=0.6)
    assert [r["id"] for r in kept] == [good["id"]]
    assert dropped[0]["filter"] == "quality" and "diversity=" in dropped[0]["reason"]
    assert not math.isnan(kept[0]["curation"]["quality"])


def test_cli_rejects_judge_options_without_judge(generated: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["curate", str(generated), "-o", str(tmp_path / "c"), "--judge-top", "0.5"])
    assert result.exit_code == 2 and "only apply with --judge" in result.output
    result = CliRunner().invoke(main, ["curate", str(generated), "-o", str(tmp_path / "c"), "--judge"])
    assert result.exit_code == 2 and "--scene-graphs" in result.output
