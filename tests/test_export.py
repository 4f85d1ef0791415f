"""Export: every format round-trips through its reader back to the QA source; option and answer
styles, rationales, image-token placement, image-disjoint splits, streaming JSON, atomic writes."""

from __future__ import annotations

import json
import os
import tracemalloc
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from mmgen.export import (
    ALIASES,
    FORMATS,
    ExportError,
    ExportOptions,
    export,
    find_manifest,
    get_format,
    iter_qa,
    read_export,
)
from mmgen.export.jsonio import JsonRecordWriter, iter_json_records
from mmgen.export.provision import to_qa
from mmgen.export.render import (
    IMAGE_TOKEN,
    add_image_tokens,
    render,
    safe_id,
    split_turn_rationales,
    strip_image_tokens,
)
from programs.base import QA
from scene_graphs.io import RecordError, write_jsonl

ASSETS = Path(__file__).resolve().parents[1] / "assets"
IMAGES = ASSETS / "images"
JSON_FORMATS = ("llava", "sharegpt", "messages", "provision")
SYSTEM_FORMATS = ("sharegpt", "messages", "hf")


# --------------------------------------------------------------------------------------- fixtures
_SAMPLE: dict[str, Path] = {}


def sample_qa_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """QA records generated from the bundled scene graphs (real programs, real image paths), once per
    session for every test module that asks."""
    if "qa" not in _SAMPLE:
        from mmgen.stages.generate import generate
        from programs.base import ProgramConfig

        out = tmp_path_factory.mktemp("qa")
        summary = generate(ASSETS / "scene_graphs", out, ProgramConfig(seed=0, mc_ratio=0.5))
        assert summary.records > 50
        _SAMPLE["qa"] = out
    return _SAMPLE["qa"]


@pytest.fixture(scope="session")
def qa_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_qa_dir(tmp_path_factory)


@pytest.fixture(scope="session")
def qa_records(qa_dir: Path) -> list[QA]:
    return [qa for qa, _ in iter_qa(qa_dir)]


def make_images(root: Path, names: list[str]) -> None:
    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 6), (40 * i % 256, 90, 200)).save(root / name)


def make_qa(n: int = 0, images: tuple[str, ...] = ("00000000000000aa",), paths: tuple[str, ...] = ("a.png",),
            question: str = "What is this?", answer: str = "a cat", options: tuple[str, ...] = (),
            answer_index: int | None = None, turns: tuple[tuple[str, str], ...] = (), rationale: str = "Because.",
            program: str = "single.test", family: str = "objects") -> QA:
    """A synthetic QA record (free-form unless options are given)."""
    qtype = "multiple_choice" if options else "free_form"
    return QA(id=f"{'+'.join(images)}:{program}:{n}", program=program, family=family, template="t",
              question_type=qtype, answer_type="object", images=images, question=question, answer=answer,
              options=options, answer_index=answer_index, rationale=rationale, plan={"n": n}, value=answer,
              provenance={"objects": []}, seed=0, image_paths=paths, turns=turns)


def write_qa(folder: Path, records: list[QA], shard: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / f"part-{shard:05d}.jsonl", (qa.to_dict() for qa in records))
    return folder


# --------------------------------------------------------------------------------------- round trips
def expected_pairs(qa: QA) -> list[tuple[str, str]]:
    """What the default options must produce, written out independently of the renderer."""
    turns = [tuple(t) for t in qa.turns] or [(qa.question, qa.answer)]
    if qa.question_type == "multiple_choice":
        lines = [f"{chr(65 + i)}. {o}" for i, o in enumerate(qa.options)]
        q = "\n".join([turns[0][0], *lines, "Answer with the option's letter from the given choices directly."])
        turns[0] = (q, chr(65 + qa.answer_index))
    return turns


@pytest.mark.parametrize("fmt", ["llava", "sharegpt", "messages", "hf"])
def test_round_trip_through_reader(fmt: str, qa_dir: Path, qa_records: list[QA], tmp_path: Path) -> None:
    system = "You answer briefly." if fmt in SYSTEM_FORMATS else None
    options = ExportOptions(image_root=IMAGES, system_prompt=system, val_fraction=0.3)
    summary = export(qa_dir, tmp_path, fmt, options)
    assert summary.records == len(qa_records)
    back = {v.id: v for v in read_export(tmp_path)}
    assert len(back) == len(qa_records)
    by_type = Counter()
    for qa in qa_records:
        view = back[safe_id(qa.id)]
        assert view.images == list(qa.image_paths)
        assert view.pairs() == expected_pairs(qa)
        assert view.system == system
        first_human = next(t for t in view.turns if t.role == "human")
        assert first_human.markers == len(qa.images) and first_human.placement == "start"
        assert sum(t.markers for t in view.turns) == len(qa.images)
        by_type[qa.question_type, bool(qa.turns)] += 1
    assert {k for k, _ in by_type} == {"free_form", "multiple_choice"} and (("free_form", True) in by_type)


def test_provision_round_trip_rebuilds_the_qa_records(qa_dir: Path, qa_records: list[QA], tmp_path: Path) -> None:
    export(qa_dir, tmp_path, "provision", ExportOptions(image_root=IMAGES, rationale=True))
    raws = list(iter_json_records(tmp_path / "train.json"))
    assert [set(r) for r in raws] == [{"data_path", "generator", "question", "answer", "options", "metadata"}] * len(raws)
    assert all(isinstance(r["metadata"], str) for r in raws)  # a JSON string, as in ProVision-10M
    assert [to_qa(r).to_dict() for r in raws] == [qa.to_dict() for qa in qa_records]
    mc = next(r for r in raws if r["options"])
    assert mc["answer"] in mc["options"] and mc["question"] in [q.question for q in qa_records]


def test_hf_loads_with_datasets_one_config_per_family(qa_dir: Path, qa_records: list[QA], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    export(qa_dir, tmp_path / "hf", "hf", ExportOptions(image_root=IMAGES))
    families = Counter(qa.family for qa in qa_records)
    card = (tmp_path / "hf" / "README.md").read_text()
    for (program, family), n in Counter((qa.program, qa.family) for qa in qa_records).items():
        assert f"| `{program}` | {family} | {n} |" in card
    cache = str(tmp_path / "cache")
    family = "attributes"
    ds = datasets.load_dataset(str(tmp_path / "hf"), name=family, cache_dir=cache)["train"]
    assert len(ds) == families[family]
    assert isinstance(ds.features["images"].feature, datasets.Image)
    source = {safe_id(qa.id): qa for qa in qa_records}
    for row in ds:
        qa = source[row["id"]]
        assert row["question"] == qa.question and row["answer"] == qa.answer and row["options"] == list(qa.options)
        with Image.open(IMAGES / qa.image_paths[0]) as original:
            assert row["images"][0].size == original.size
    flat = datasets.load_dataset("parquet", data_files=str(tmp_path / "hf" / "data" / "*" / "train.parquet"),
                                 cache_dir=cache)["train"]
    assert sorted(flat["id"]) == sorted(source)


def test_hf_path_mode_stores_absolute_paths_that_load(qa_dir: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    export(qa_dir, tmp_path / "hf", "hf", ExportOptions(image_root=IMAGES, hf_images="path"))
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "hf/data/objects/train.parquet"),
                               cache_dir=str(tmp_path / "cache"))["train"]
    raw = ds.cast_column("images", datasets.Sequence(datasets.Image(decode=False)))[0]["images"][0]
    assert raw["bytes"] is None and Path(raw["path"]).is_absolute() and Path(raw["path"]).is_file()
    assert ds[0]["images"][0].size[0] > 0


def test_hf_without_the_extra_names_the_install_command(qa_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(ExportError, match=r'pip install "mmgen\[hf\]"'):
        export(qa_dir, tmp_path, "hf", ExportOptions(image_root=IMAGES))


def test_multi_image_and_multi_turn_records(tmp_path: Path) -> None:
    make_images(tmp_path / "img", ["a.png", "sub/b.png"])
    ids = ("00000000000000aa", "00000000000000bb")
    records = [make_qa(0, images=ids, paths=("a.png", "sub/b.png"), question="Which image has more cats?",
                       answer="the first", program="multi.test"),
               make_qa(1, turns=(("What is this?", "a cat"), ("What color is it?", "black"), ("Is it big?", "no")),
                       rationale="Turn 1: It is a cat. Turn 2: Its fur is black. Turn 3: It is small.")]
    src = write_qa(tmp_path / "qa", records)
    for fmt in ("llava", "sharegpt", "messages"):
        export(src, tmp_path / fmt, fmt, ExportOptions(image_root=tmp_path / "img", placement="end"))
        multi, conv = list(read_export(tmp_path / fmt))
        assert multi.id == "00000000000000aa_00000000000000bb-multi.test-0"
        assert multi.images == ["a.png", "sub/b.png"] and multi.turns[0].markers == 2
        assert multi.turns[0].placement == "end"
        assert conv.pairs() == list(records[1].turns)
        assert [t.markers for t in conv.turns] == [1, 0, 0, 0, 0, 0]
    llava = orjson.loads((tmp_path / "llava" / "train.json").read_bytes())
    assert llava[0]["image"] == ["a.png", "sub/b.png"] and llava[1]["image"] == "a.png"
    assert llava[0]["conversations"][0]["value"] == "Which image has more cats?\nImage 1: <image>\nImage 2: <image>"
    export(src, tmp_path / "r", "llava", ExportOptions(rationale=True))
    conv = list(read_export(tmp_path / "r"))[1]
    assert [a for _, a in conv.pairs()] == ["It is a cat.\nAnswer: a cat", "Its fur is black.\nAnswer: black",
                                            "It is small.\nAnswer: no"]


# --------------------------------------------------------------------------------------- rendering
@pytest.mark.parametrize("option_style, answer_style, line, answer", [
    ("letter", "letter", "C. blue", "C"),
    ("letter", "letter_text", "C. blue", "C. blue"),
    ("letter", "text", "C. blue", "blue"),
    ("number", "letter", "3. blue", "3"),
    ("number", "letter_text", "3. blue", "3. blue"),
    ("paren", "letter", "(C) blue", "C"),
    ("paren", "letter_text", "(C) blue", "(C) blue"),
    ("paren", "text", "(C) blue", "blue"),
])
def test_option_and_answer_styles(option_style: str, answer_style: str, line: str, answer: str) -> None:
    qa = make_qa(options=("red", "green", "blue", "white"), answer_index=2, answer="blue", question="Which color?")
    item = render(qa, ExportOptions(option_style=option_style, answer_style=answer_style), "t")
    question, got = item.turns[0]
    lines = question.split("\n")
    assert lines[0] == "Which color?" and lines[3] == line and len(lines) == 6  # question, 4 options, instruction
    assert got == answer
    bare = render(qa, ExportOptions(option_style=option_style, answer_style=answer_style, mc_instruction=False), "t")
    assert bare.turns[0][0] == "\n".join(lines[:5])


def test_rationale_comes_before_the_answer() -> None:
    qa = make_qa(options=("red", "blue"), answer_index=1, answer="blue", rationale="The car is blue.")
    assert render(qa, ExportOptions(rationale=True), "t").turns[0][1] == "The car is blue.\nAnswer: B"
    assert render(qa, ExportOptions(), "t").turns[0][1] == "B"


@pytest.mark.parametrize("rationale, steps", [
    ("Turn 1: a. Turn 2: b c.", ["a.", "b c."]),
    ("Turn 1: a. Turn 3: b.", None),      # numbering broken
    ("Turn 1: a.", None),                 # too few steps
    ("Intro. Turn 1: a. Turn 2: b.", None),
    ("", None),
])
def test_multi_turn_rationale_split(rationale: str, steps: list[str] | None) -> None:
    assert split_turn_rationales(rationale, 2) == steps


def test_unsplittable_multi_turn_rationale_keeps_plain_answers() -> None:
    qa = make_qa(turns=(("q1?", "a1"), ("q2?", "a2")), question="q1?", answer="a1", rationale="no steps here")
    notes: Counter = Counter()
    assert render(qa, ExportOptions(rationale=True), "t", notes).turns == (("q1?", "a1"), ("q2?", "a2"))
    assert sum(notes.values()) == 1


@pytest.mark.parametrize("record, message", [
    ({"options": ("red", "blue"), "answer_index": 0, "answer": "blue"}, "not the answer"),
    ({"options": ("red", "blue"), "answer_index": 5, "answer": "blue"}, "answer_index"),
    ({"options": ("red",), "answer_index": 0, "answer": "red"}, "2\\+ non-empty options"),
    ({"options": ("red", ""), "answer_index": 0, "answer": "red"}, "2\\+ non-empty options"),
    ({"answer": " "}, "empty answer"),
    ({"question": ""}, "empty question"),
    ({"question": "Look at <image> here"}, "image token"),
    ({"paths": ()}, "no image_paths"),
    ({"paths": ("a.png", "b.png")}, "2 paths"),
    ({"paths": ("missing.png",)}, "not found"),
    ({"paths": ("/elsewhere/a.png",)}, "not inside the image root"),
])
def test_bad_records_are_refused_with_their_id(record: dict[str, Any], message: str, tmp_path: Path) -> None:
    make_images(tmp_path, ["a.png"])
    qa = make_qa(**record)
    with pytest.raises(ExportError, match=message) as info:
        render(qa, ExportOptions(image_root=tmp_path), "shard.jsonl:7")
    assert "shard.jsonl:7" in str(info.value) and qa.id in str(info.value)


def test_absolute_paths_inside_the_root_become_relative(tmp_path: Path) -> None:
    make_images(tmp_path, ["d/a.png"])
    qa = make_qa(paths=(str(tmp_path / "d" / "a.png"),))
    assert render(qa, ExportOptions(image_root=tmp_path), "t").images == ("d/a.png",)
    assert render(qa, ExportOptions(image_root=tmp_path, path_prefix="imgs"), "t").images == ("imgs/d/a.png",)
    with pytest.raises(ExportError, match="absolute"):
        render(qa, ExportOptions(), "t")


def test_safe_ids_are_distinct_and_safe(qa_records: list[QA]) -> None:
    ids = [safe_id(qa.id) for qa in qa_records]
    assert len(set(ids)) == len(ids)
    assert all(set(i) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") for i in ids)
    assert safe_id("0123abcd+4567ef00:multi.compare:3") == "0123abcd_4567ef00-multi.compare-3"


@given(st.text(min_size=1).filter(lambda s: IMAGE_TOKEN not in s), st.integers(0, 4),
       st.sampled_from(["start", "end"]))
def test_image_tokens_strip_back_to_the_text(text: str, count: int, placement: str) -> None:
    assert strip_image_tokens(add_image_tokens(text, count, placement)) == (text, count)


# --------------------------------------------------------------------------------------- placement, splits
def test_random_placement_is_deterministic_per_record(tmp_path: Path) -> None:
    make_images(tmp_path / "img", ["a.png"])
    records = [make_qa(i) for i in range(200)]
    forward = write_qa(tmp_path / "f", records)
    backward = write_qa(tmp_path / "b", records[::-1])
    options = ExportOptions(placement="random", placement_seed=3)
    places = []
    for src in (forward, backward, forward):
        export(src, tmp_path / "out", "llava", options)
        places.append({v.id: v.turns[0].placement for v in read_export(tmp_path / "out")})
    assert places[0] == places[1] == places[2]
    counts = Counter(places[0].values())
    assert set(counts) == {"start", "end"} and 60 < counts["start"] < 140
    export(forward, tmp_path / "other", "llava", ExportOptions(placement="random", placement_seed=4))
    assert {v.id: v.turns[0].placement for v in read_export(tmp_path / "other")} != places[0]
    for fixed in ("start", "end"):
        export(forward, tmp_path / fixed, "messages", ExportOptions(placement=fixed))
        assert {v.turns[0].placement for v in read_export(tmp_path / fixed)} == {fixed}


def first_image(export_id: str) -> str:
    return export_id.split("-")[0].split("_")[0]


def test_split_never_divides_an_image(tmp_path: Path) -> None:
    images = [f"{i:016x}" for i in range(300)]
    records = [make_qa(k, images=(img,), paths=(f"{img}.png",)) for img in images for k in range(3)]
    records += [make_qa(0, images=(images[i], images[i + 1]), paths=("x.png", "y.png"), program="multi.test")
                for i in range(0, 40, 2)]
    src = write_qa(tmp_path / "qa", records)
    export(src, tmp_path / "out", "llava", ExportOptions(val_fraction=0.2))
    split_of_image: dict[str, set[str]] = defaultdict(set)
    for split in ("train", "val"):
        for v in read_export(tmp_path / "out" / f"{split}.json", "llava"):
            split_of_image[first_image(v.id)].add(split)
    assert all(len(s) == 1 for s in split_of_image.values())
    val = sum("val" in s for s in split_of_image.values())
    assert 0.1 * len(images) < val < 0.3 * len(images)
    first = {img: s for img, (s,) in split_of_image.items()}
    export(src, tmp_path / "again", "llava", ExportOptions(val_fraction=0.2))
    assert (tmp_path / "again" / "val.json").read_bytes() == (tmp_path / "out" / "val.json").read_bytes()
    export(src, tmp_path / "seeded", "llava", ExportOptions(val_fraction=0.2, split_seed=1))
    reseeded = {first_image(v.id) for v in read_export(tmp_path / "seeded" / "val.json", "llava")}
    assert reseeded != {img for img, s in first.items() if s == "val"}


def test_split_of_the_bundled_sample_keeps_images_whole(qa_dir: Path, tmp_path: Path) -> None:
    export(qa_dir, tmp_path, "sharegpt", ExportOptions(val_fraction=0.4))
    seen: dict[str, set[str]] = defaultdict(set)
    for split in ("train", "val"):
        for v in read_export(tmp_path / f"{split}.json", "sharegpt"):
            seen[v.images[0]].add(split)
    assert all(len(s) == 1 for s in seen.values()) and len(seen) >= 4
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert {e["file_name"] for e in info.values()} == {"train.json", "val.json"}
    assert all(e["formatting"] == "sharegpt" and e["columns"]["images"] == "images" for e in info.values())


# --------------------------------------------------------------------------------------- files
def test_export_is_byte_for_byte_deterministic(qa_dir: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        export(qa_dir, tmp_path / name, "messages", ExportOptions(placement="random", val_fraction=0.2,
                                                                  rationale=True, system_prompt="Be brief."))
    for f in ("train.json", "val.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_json_list_and_jsonl_hold_the_same_records(fmt: str, qa_dir: Path, tmp_path: Path) -> None:
    export(qa_dir, tmp_path / "list", fmt, ExportOptions())
    export(qa_dir, tmp_path / "lines", fmt, ExportOptions(jsonl=True))
    as_list = json.loads((tmp_path / "list" / "train.json").read_text())
    lines = [json.loads(line) for line in (tmp_path / "lines" / "train.jsonl").read_text().splitlines()]
    assert as_list == lines and len(lines) > 50


def test_stale_files_of_an_earlier_export_are_removed(qa_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    export(qa_dir, tmp_path, "llava", ExportOptions(val_fraction=0.3))
    assert (tmp_path / "val.json").exists()
    export(qa_dir, tmp_path, "llava", ExportOptions(jsonl=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json", "notes.txt", "train.jsonl"]
    assert find_manifest(tmp_path / "train.jsonl")["files"] == {"train.jsonl": find_manifest(tmp_path)["records"]}


def test_a_failed_export_leaves_the_previous_files(tmp_path: Path) -> None:
    good = [make_qa(i) for i in range(5)]
    src = write_qa(tmp_path / "qa", good)
    export(src, tmp_path / "out", "llava", ExportOptions())
    before = (tmp_path / "out" / "train.json").read_bytes()
    write_qa(tmp_path / "qa", [make_qa(9, options=("x", "y"), answer_index=0, answer="y")], shard=1)
    with pytest.raises(ExportError, match=r"part-00001\.jsonl:1"):
        export(src, tmp_path / "out", "llava", ExportOptions())
    assert (tmp_path / "out" / "train.json").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["export.json", "train.json"]


def test_formats_without_a_system_turn_refuse_a_system_prompt(qa_dir: Path, tmp_path: Path) -> None:
    for fmt in ("llava", "provision"):
        with pytest.raises(ExportError, match="no system turn"):
            export(qa_dir, tmp_path, fmt, ExportOptions(system_prompt="hi"))
    assert get_format("openai") is FORMATS["openai"] and get_format("llamafactory") is FORMATS["sharegpt"]
    with pytest.raises(ExportError, match="unknown export format"):
        get_format("alpaca")


def test_cli_format_choices_match_the_registry() -> None:
    from mmgen.cli.export_cmd import FORMAT_CHOICES

    assert set(FORMAT_CHOICES) == set(FORMATS) | set(ALIASES)


# --------------------------------------------------------------------------------------- streaming
@given(st.lists(st.dictionaries(st.text(max_size=5), st.one_of(st.integers(-2**63, 2**63 - 1), st.text(), st.none()), max_size=3),
                max_size=8), st.booleans())
def test_json_writer_output_parses_and_streams_back(records: list[dict], jsonl: bool) -> None:
    import io
    import tempfile

    buf = io.BytesIO()
    w = JsonRecordWriter(buf, jsonl)
    for r in records:
        w.write(r)
    w.close()
    data = buf.getvalue()
    if not jsonl:
        assert json.loads(data) == records
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("x.jsonl" if jsonl else "x.json")
        path.write_bytes(data)
        assert list(iter_json_records(path)) == records


@pytest.mark.parametrize("text, records", [
    ('[\n  {"a": 1},\n  {"a": 2}\n]\n', [{"a": 1}, {"a": 2}]),   # indented: parsed whole
    ('[{"a": 1}, {"a": 2}]', [{"a": 1}, {"a": 2}]),              # one line
    ("[\n]\n", []),
])
def test_json_reader_accepts_other_layouts(text: str, records: list, tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(text)
    assert list(iter_json_records(tmp_path / "x.json")) == records


@pytest.mark.parametrize("text", ['[\n{"a": 1},\n{"a": 2},\n]\n', '[\n{"a": 1}\n{"a": 2}\n]\n', '{"a": 1}',
                                  '[\n{"a": 1}\n]\nextra'])
def test_json_reader_rejects_malformed_files(text: str, tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(text)
    with pytest.raises(RecordError):
        list(iter_json_records(tmp_path / "x.json"))


def _peak_export_memory(tmp_path: Path, n: int) -> int:
    template = make_qa(0, question="What is the object in the middle of the picture? " * 3, answer="a cat " * 5)
    src = tmp_path / f"qa{n}"
    src.mkdir()
    with (src / "part-00000.jsonl").open("wb") as f:
        for i in range(n):
            d = template.to_dict()
            d["id"] = f"{i:016x}:single.test:0"
            d["images"] = [f"{i // 3:016x}"]
            f.write(orjson.dumps(d) + b"\n")
    tracemalloc.start()
    try:
        export(src, tmp_path / f"out{n}", "llava", ExportOptions(val_fraction=0.1))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_export_memory_does_not_grow_with_the_record_count(tmp_path: Path) -> None:
    small, large = _peak_export_memory(tmp_path, 1000), _peak_export_memory(tmp_path, 10000)
    assert large < small * 1.5 + 256 * 1024, (small, large)
    assert os.path.getsize(tmp_path / "out10000" / "train.json") > 10 * os.path.getsize(
        tmp_path / "out1000" / "train.json") * 0.8


@pytest.mark.parametrize("count, placement, text", [
    (1, "start", "<image>\nQ"),
    (2, "start", "Image 1: <image>\nImage 2: <image>\nQ"),
    (3, "end", "Q\nImage 1: <image>\nImage 2: <image>\nImage 3: <image>"),
])
def test_several_images_are_labelled_as_answers_name_them(count: int, placement: str, text: str) -> None:
    assert add_image_tokens("Q", count, placement) == text
    assert strip_image_tokens(text) == ("Q", count)
