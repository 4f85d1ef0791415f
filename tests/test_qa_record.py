"""The QA record: validated on read, its JSON Schema, extensions (lineage) kept through curate and export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmgen.curate import CurateOptions, curate
from mmgen.export import ExportOptions, export, iter_qa
from mmgen.export.jsonio import iter_json_records
from mmgen.export.provision import to_qa
from programs.base import QA
from programs.schema import QA_KEYS, check_qa, qa_schema, validate_qa_against_schema
from scene_graphs.io import read_jsonl, write_jsonl
from scene_graphs.model import ValidationError
from tests.test_export import IMAGES, sample_qa_dir

pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Real records from the bundled scene graphs."""
    folder = sample_qa_dir(tmp_path_factory)
    return [r for p in sorted(folder.glob("part-*.jsonl")) for r in read_jsonl(p)]


def test_schema_lists_every_generated_field_and_real_records_pass(records: list[dict[str, Any]]) -> None:
    assert set(QA_KEYS) <= set(qa_schema()["properties"])
    assert len(records) > 50
    for rec in records:
        check_qa(rec)
        validate_qa_against_schema(rec)
        assert list(rec) == list(QA_KEYS)  # generate writes the generated fields, in this order
        assert QA.from_dict(rec).to_dict() == rec


BAD_VALUES: dict[str, list[Any]] = {
    "id": [None, 3, ""], "program": [None, ""], "template": [None, 1], "question_type": ["", 2],
    "answer_type": [None, ""], "images": [[], "abc", [1], None], "question": [None, 7], "answer": [None, 2],
    "options": ["a", [1]], "answer_index": [-1, "0", 1.5, True], "plan": [[], "p", None], "provenance": [[1], "x"],
    "seed": ["1", 1.5], "image_paths": ["a.png", [None]], "turns": ["qa", [["q"]], [["q", 1]]],
    "family": [1], "rationale": [None, 3], "evolved": ["x", []], "curation": [1.0, None],
}


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_fast_check_and_schema_agree_on_broken_records(records: list[dict[str, Any]], data: st.DataObject) -> None:
    rec = dict(data.draw(st.sampled_from(records)))
    key = data.draw(st.sampled_from(sorted(BAD_VALUES)))
    rec[key] = data.draw(st.sampled_from(BAD_VALUES[key]))
    with pytest.raises(ValidationError) as fast:
        check_qa(rec)
    with pytest.raises(ValidationError) as schema:
        validate_qa_against_schema(rec)
    assert fast.value.where.split("[")[0] == key and schema.value.where.split("[")[0] in (key, "")
    with pytest.raises(ValidationError):
        QA.from_dict(rec)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), missing=st.sampled_from(["id", "program", "template", "question_type", "answer_type",
                                                 "images", "question", "answer", "plan"]))
def test_a_missing_required_field_is_named(records: list[dict[str, Any]], data: st.DataObject, missing: str) -> None:
    rec = dict(data.draw(st.sampled_from(records)))
    del rec[missing]
    with pytest.raises(ValidationError, match=missing):
        QA.from_dict(rec)
    with pytest.raises(ValidationError):
        validate_qa_against_schema(rec)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                      max_size=3), max_leaves=8)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), extra=st.dictionaries(
    st.text(min_size=1, max_size=8).filter(lambda k: k not in QA_KEYS and k not in ("evolved", "curation")),
    json_values, max_size=3))
def test_unknown_keys_are_extensions_and_round_trip(records: list[dict[str, Any]], data: st.DataObject,
                                                    extra: dict[str, Any]) -> None:
    rec = {**data.draw(st.sampled_from(records)), **extra, "evolved": {"root_id": "r", "round": 1}}
    qa = QA.from_dict(rec)
    assert dict(qa.extensions) == {**extra, "evolved": {"root_id": "r", "round": 1}}
    assert qa.to_dict() == rec and list(qa.to_dict()) == list(rec)
    assert set(qa.generated().to_dict()) == set(QA_KEYS)
    validate_qa_against_schema(rec)


def test_curation_and_evolve_lineage_survive_export(records: list[dict[str, Any]], tmp_path: Path) -> None:
    src = tmp_path / "qa"
    evolved = [{**r, "evolved": {"root_id": r["id"], "parent_id": r["id"], "round": 1, "steps": []}}
               if i % 3 == 0 else r for i, r in enumerate(records)]
    write_jsonl(src / "part-00000.jsonl", evolved)
    cur = tmp_path / "curated"
    curate(src, cur, CurateOptions(), overwrite=True)
    kept = [r for p in sorted(cur.glob("part-*.jsonl")) for r in read_jsonl(p)]
    assert kept and all("curation" in r for r in kept) and any("evolved" in r for r in kept)
    read_back = [qa for qa, _ in iter_qa(cur)]
    assert [qa.to_dict() for qa in read_back] == kept  # nothing a stage added is lost on reading

    export(cur, tmp_path / "pv", "provision", ExportOptions(image_root=IMAGES))
    raws = list(iter_json_records(tmp_path / "pv" / "train.json"))
    assert [to_qa(r).extensions for r in raws] == [qa.extensions for qa in read_back]
    meta = json.loads(raws[0]["metadata"])
    assert "curation" in meta["extensions"] and "quality" in meta["extensions"]["curation"]


def test_hf_export_keeps_lineage_in_a_column(records: list[dict[str, Any]], tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    src = tmp_path / "qa"
    write_jsonl(src / "part-00000.jsonl", [{**r, "curation": {"quality": 0.5}} if i == 0 else r
                                           for i, r in enumerate(records)])
    export(src, tmp_path / "hf", "hf", ExportOptions(image_root=IMAGES, hf_images="path"))
    rows = [row for p in sorted((tmp_path / "hf" / "data").glob("*/train.parquet"))
            for row in pq.read_table(p, columns=["id", "extensions"]).to_pylist()]
    with_lineage = [r for r in rows if r["extensions"] is not None]
    assert len(with_lineage) == 1 and json.loads(with_lineage[0]["extensions"]) == {"curation": {"quality": 0.5}}
