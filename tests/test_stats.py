"""``mmgen stats``: the numbers agree with an independent count over the files; every plot is a real,
non-blank PNG the HTML shows; drop reasons appear only with curation output; the answer cap holds."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("matplotlib", reason="mmgen stats needs matplotlib")

from mmgen.check import stats
from mmgen.cli import main
from mmgen.check.stats import collect, position_balance, write_report
from mmgen.store import open_output
from scene_graphs.io import iter_graphs, read_jsonl
from tests.test_inspect import DROP_REASONS, XSS_TEXT, build_output


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_output(tmp_path_factory.mktemp("stats"), curate=True)


def qa_records(out: Path) -> list[dict]:
    return [r for p in sorted((out / "qa").glob("part-*.jsonl")) for r in read_jsonl(p)]


def test_counts_match_the_files(curated: Path) -> None:
    s = collect(open_output(curated))
    graphs = list(iter_graphs(curated / "scene_graphs"))
    records = qa_records(curated)
    assert s.images == len(graphs) and s.records == len(records)
    assert s.per_program == Counter(r["program"] for r in records)
    assert s.per_answer_type == Counter(r["answer_type"] for r in records)
    assert s.objects_per_image == Counter(len(g.objects) for g in graphs)
    assert s.labels == Counter(o.label for g in graphs for o in g.objects)
    assert s.attributes == Counter(f"{a.name} ({a.category})" for g in graphs for o in g.objects for a in o.attributes)
    assert s.predicates == Counter(r.predicate for g in graphs for r in g.relations)
    assert s.text_regions == sum(len(g.text) for g in graphs)
    for program in s.per_program:
        mine = [r for r in records if r["program"] == program]
        assert s.answers[program] == Counter(r["answer"] for r in mine)
        mc = [r for r in mine if r["options"]]
        assert s.positions.get(program, Counter()) == Counter(r["answer_index"] for r in mc)
        assert sum(s.per_form[program].values()) == len(mine)
    dropped = [e["filter"] for e in read_jsonl(curated / "curated" / "dropped.jsonl")]
    assert s.drop_reasons == Counter(dropped) and set(s.drop_reasons) == set(DROP_REASONS)
    assert s.statuses == Counter({"curated": len(records) - len(dropped), "dropped": len(dropped)})


def test_report_files(curated: Path, tmp_path: Path) -> None:
    page = write_report(open_output(curated), tmp_path / "report")
    html = page.read_text()
    data = json.loads((tmp_path / "report" / "stats.json").read_text())
    assert data["records"] == len(qa_records(curated)) and data["drop_reasons"]
    for name in stats.PLOTS:
        path = tmp_path / "report" / f"{name}.png"
        assert f'src="{name}.png"' in html
        img = np.asarray(Image.open(path).convert("L"), dtype=float)
        assert img.shape[0] > 100 and img.shape[1] > 300 and img.std() > 10  # drawn, not blank
    for program in data["per_program"]:
        assert f"<td>{program}</td>" in html


def test_cli_without_curation_has_no_drop_reasons_and_escapes_html(tmp_path: Path) -> None:
    out = build_output(tmp_path / "out")
    shard = out / "qa" / "part-00000.jsonl"  # answers holding HTML (programs no longer quote such OCR text)
    records = [json.loads(line) for line in shard.read_text().splitlines()]
    program = records[0]["program"]
    for r in records:
        if r["program"] == program:
            r["answer"] = XSS_TEXT
    shard.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = CliRunner().invoke(main, ["stats", str(out)])
    assert result.exit_code == 0, result.output
    report = out / "stats"
    assert (report / "index.html").is_file() and not (report / "drop_reasons.png").exists()
    assert json.loads((report / "stats.json").read_text())["curated"] is False
    page = (report / "index.html").read_text()
    assert "<img src=x" not in page and "&lt;img src=x" in page  # shown (as the most frequent answer), escaped
    assert len(open_output(out).qa_sources) == 1  # the report folder is not mistaken for QA


def test_answer_vocabulary_is_capped(curated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "MAX_ANSWERS", 2)
    s = collect(open_output(curated))
    records = qa_records(curated)
    for program, answers in s.answers.items():
        distinct = len({r["answer"] for r in records if r["program"] == program})
        assert len(answers) <= 3 and sum(answers.values()) == s.per_program[program]
        assert (stats.OTHER in answers) == (distinct > 2)


@pytest.mark.parametrize("positions, options, balanced", [
    (Counter({0: 25, 1: 25, 2: 25, 3: 25}), Counter({4: 100}), True),
    (Counter({0: 97, 1: 1, 2: 1, 3: 1}), Counter({4: 100}), False),
    (Counter({0: 3, 1: 1}), Counter({2: 4}), None),  # too few records for the test
    (Counter({0: 30, 1: 30, 2: 40}), Counter({2: 60, 4: 40}), None),  # mixed option counts
])
def test_position_balance(positions: Counter, options: Counter, balanced: bool | None) -> None:
    b = position_balance(positions, options)
    assert sum(b["shares"]) == pytest.approx(1.0)
    if balanced is None:
        assert b["p_value"] is None
    else:
        assert (b["p_value"] > 0.05) == balanced
