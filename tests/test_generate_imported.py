"""End to end on imported annotations: files in Visual Genome / GQA / COCO form -> mmgen import ->
mmgen generate -> mmgen verify, with records from several program families."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mmgen.cli import main
from scene_graphs.formats import get_format
from scene_graphs.io import iter_graphs
from scene_graphs.synthetic import random_graph


@pytest.mark.parametrize("fmt, masks", [("vg", False), ("gqa", False), ("coco", True)])
def test_import_generate_verify(fmt, masks, tmp_path):
    rng = np.random.default_rng(5)
    graphs = [random_graph(rng, image_id=f"{i}", masks=masks, depth=False, text=False, uncertain=0.0)
              for i in range(30)]
    src = tmp_path / "src"
    get_format(fmt).write(graphs, src if fmt != "coco" else src / "instances.json")
    runner = CliRunner()
    sg, qa = tmp_path / "sg", tmp_path / "qa"
    res = runner.invoke(main, ["import", "--format", fmt, str(src if fmt != "coco" else src / "instances.json"),
                               "-o", str(sg)])
    assert res.exit_code == 0, res.output
    assert len(list(iter_graphs(sg))) == 30
    res = runner.invoke(main, ["generate", str(sg), "-o", str(qa)])
    assert res.exit_code == 0, res.output
    summary = json.loads((qa / "summary.json").read_text())
    families = {p.split(".")[1] for p in summary["per_program"]}
    assert summary["records"] > 100
    assert len(summary["per_program"]) >= 15, summary["per_program"]
    assert {"count_objects", "relative_position"} <= families
    # an import says nothing about what its annotator searched for, so no yes/no "Is there …?" (whose "no"
    # needs evidence of absence, and whose "yes" is balanced against it)
    assert "exists" not in families
    if fmt != "coco":
        assert {"relation_between", "verify_relation"} & families  # relations survive VG/GQA import
    else:
        assert {"same_object_point", "different_object_point"} & families  # masks survive COCO import
    res = runner.invoke(main, ["verify", str(qa), "--scene-graphs", str(sg)])
    assert res.exit_code == 0, res.output


def test_verify_catches_a_tampered_answer(tmp_path):
    rng = np.random.default_rng(9)
    get_format("gqa").write([random_graph(rng, image_id=str(i), masks=False, depth=False, text=False)
                             for i in range(10)], tmp_path / "src")
    runner = CliRunner()
    assert runner.invoke(main, ["import", "--format", "gqa", str(tmp_path / "src"), "-o", str(tmp_path / "sg")]).exit_code == 0
    assert runner.invoke(main, ["generate", str(tmp_path / "sg"), "-o", str(tmp_path / "qa")]).exit_code == 0
    shard = tmp_path / "qa" / "part-00000.jsonl"
    records = [json.loads(line) for line in shard.read_text().splitlines()]
    counted = next(r for r in records if r["program"] == "single.count_objects")
    counted["value"] += 1
    shard.write_text("".join(json.dumps(r) + "\n" for r in records))
    res = runner.invoke(main, ["verify", str(tmp_path / "qa"), "--scene-graphs", str(tmp_path / "sg")])
    assert res.exit_code == 1
    assert counted["id"] in res.output


def test_verify_accepts_curated_output_as_an_ordered_subset(tmp_path):
    """Curation drops records; what it keeps must still verify, and a changed kept record must not."""
    from mmgen.check.verify import verify

    runner = CliRunner()
    assets = "assets/scene_graphs"
    assert runner.invoke(main, ["generate", assets, "-o", str(tmp_path / "qa"), "--per-image", "3"]).exit_code == 0
    res = runner.invoke(main, ["curate", str(tmp_path / "qa"), "-o", str(tmp_path / "cur")])
    assert res.exit_code == 0, res.output
    kept = [json.loads(line) for p in sorted((tmp_path / "cur").glob("part-*.jsonl"))
            for line in p.read_text().splitlines()]
    dropped = (tmp_path / "cur" / "dropped.jsonl").read_text().splitlines()
    assert kept and dropped, "the sample should keep some records and drop some"
    report = verify(tmp_path / "cur", assets)
    assert report.ok, report.problems[:5]
    assert report.checked == len(kept)
    shard = sorted((tmp_path / "cur").glob("part-*.jsonl"))[0]
    records = [json.loads(line) for line in shard.read_text().splitlines()]
    records[0]["question"] += " Really?"
    shard.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert not verify(tmp_path / "cur", assets).ok
