"""The validator: a valid export of every format passes; each broken case in the table is caught and
reported against the right record."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import pytest
from PIL import Image

from mmgen.export import ExportOptions, export, get_format
from mmgen.check.validate import validate
from tests.test_export import make_qa, write_qa

Records = list[dict[str, Any]]


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images")
    Image.new("RGB", (16, 12), (200, 30, 30)).save(root / "a.png")
    Image.new("RGB", (16, 12), (30, 200, 30)).save(root / "b.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    noise = Image.effect_noise((64, 64), 50).convert("RGB")
    noise.save(root / "full.jpg", quality=95)
    data = (root / "full.jpg").read_bytes()
    (root / "trunc.jpg").write_bytes(data[: len(data) // 2])
    return root


def source_records() -> list:
    """A multiple-choice record, a multi-turn record and a two-image record."""
    return [make_qa(0, options=("red", "blue", "green"), answer_index=1, answer="blue", question="Which color?"),
            make_qa(1, turns=(("What is it?", "a cat"), ("What color?", "black")), question="What is it?",
                    answer="a cat"),
            make_qa(2, images=("00000000000000aa", "00000000000000bb"), paths=("a.png", "b.png"),
                    question="Which is greener?", answer="the second", program="multi.test")]


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory, image_root: Path) -> dict[str, Path]:
    """A valid export folder per format, from the same three records."""
    base = tmp_path_factory.mktemp("exports")
    src = write_qa(base / "qa", source_records())
    out = {}
    for fmt in ("llava", "sharegpt", "messages", "provision", "hf"):
        system = "Be brief." if fmt in ("sharegpt", "messages", "hf") else None
        export(src, base / fmt, fmt, ExportOptions(image_root=image_root, system_prompt=system))
        out[fmt] = base / fmt
    return out


def data_file(folder: Path, fmt: str) -> Path:
    return folder / ("data/objects/train.parquet" if fmt == "hf" else "train.json")


def load(folder: Path, fmt: str) -> Records:
    return list(get_format(fmt).iter_raw(data_file(folder, fmt)))


def save(records: Records, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        import pyarrow as pa
        import pyarrow.parquet as pq

        from mmgen.export.hf import features

        schema = features().arrow_schema
        pq.write_table(pa.Table.from_pylist(records, schema=schema), path)
    else:
        path.write_text(json.dumps(records, indent=1))


@pytest.mark.parametrize("fmt", ["llava", "sharegpt", "messages", "provision", "hf"])
def test_valid_exports_pass(fmt: str, exports: dict[str, Path], image_root: Path) -> None:
    report = validate(exports[fmt], fmt, image_root)
    assert report.ok, report.problems
    assert report.records == 3
    assert report.images_checked == 2


# --------------------------------------------------------------------------------------- broken records
def conv(rs: Records, i: int = 0) -> list[dict[str, Any]]:
    return rs[i]["conversations"]


def setp(i: int, key: str, value: Any) -> Callable[[Records], None]:
    def f(rs: Records) -> None:
        rs[i][key] = value
    return f


def turn(i: int, j: int, key: str, value: Any, field: str = "conversations") -> Callable[[Records], None]:
    def f(rs: Records) -> None:
        rs[i][field][j][key] = value
    return f


def edit_value(i: int, j: int, fn: Callable[[str], str]) -> Callable[[Records], None]:
    def f(rs: Records) -> None:
        rs[i]["conversations"][j]["value"] = fn(rs[i]["conversations"][j]["value"])
    return f


def swap_first_turns(rs: Records) -> None:
    c = conv(rs)
    c[0], c[1] = c[1], c[0]


def duplicate_id(rs: Records) -> None:
    rs[1]["id"] = rs[0]["id"]


def delete(i: int, key: str) -> Callable[[Records], None]:
    def f(rs: Records) -> None:
        del rs[i][key]
    return f


def meta(i: int, **changes: Any) -> Callable[[Records], None]:
    def f(rs: Records) -> None:
        m = json.loads(rs[i]["metadata"])
        m.update(changes)
        rs[i]["metadata"] = json.dumps(m)
    return f


def content(i: int, msg: int, parts: Callable[[list], list]) -> Callable[[Records], None]:
    def f(rs: Records) -> None:
        rs[i]["messages"][msg]["content"] = parts(rs[i]["messages"][msg]["content"])
    return f


def hf_images(i: int, images: Callable[[list], list]) -> Callable[[Records], None]:
    def f(rs: Records) -> None:
        rs[i]["images"] = images(rs[i]["images"])
    return f


ID0 = "00000000000000aa-single.test-0"
ID1 = "00000000000000aa-single.test-1"
ID2 = "00000000000000aa_00000000000000bb-multi.test-2"

BROKEN = [
    # (case, format, break it, record reported, problem)
    ("two tokens, one image", "llava", edit_value(0, 0, lambda v: "<image>\n" + v), ID0, "2 <image> token(s) for 1"),
    ("no token", "llava", edit_value(0, 0, lambda v: v.replace("<image>\n", "")), ID0, "0 <image> token(s) for 1"),
    ("one token, two images", "llava", edit_value(2, 0, lambda v: v.replace("<image>\n", "", 1)), ID2,
     "1 <image> token(s) for 2 image(s)"),
    ("token in the answer", "llava", edit_value(0, 1, lambda v: v + "\n<image>"), ID0,
     "they belong in the first human turn"),
    ("token in a later question", "llava", edit_value(1, 2, lambda v: "<image>\n" + v), ID1,
     "turn 3 (human) holds 1 <image> token(s)"),
    ("missing image", "llava", setp(0, "image", "nope.png"), ID0, "image not found"),
    ("undecodable image", "llava", setp(0, "image", "broken.png"), ID0, "cannot be decoded"),
    ("truncated image", "llava", setp(0, "image", "trunc.jpg"), ID0, "cannot be decoded"),
    ("empty image path", "llava", setp(0, "image", ""), ID0, "empty or non-string path"),
    ("image path not a string", "llava", setp(2, "image", ["a.png", 7]), ID2, "image 2 has an empty or non-string"),
    ("image not a path", "llava", setp(0, "image", {"path": "a.png"}), ID0, "malformed record: 'image' is a dict"),
    ("starts with the answer", "llava", swap_first_turns, ID0, "turn 1 is from 'gpt' where 'human' was expected"),
    ("two questions in a row", "llava", turn(1, 1, "from", "human"), ID1,
     "turn 2 is from 'human' where 'gpt' was expected"),
    ("no answer", "llava", lambda rs: rs[0].__setitem__("conversations", conv(rs)[:1]), ID0, "ends with a human turn"),
    ("no turns", "llava", setp(0, "conversations", []), ID0, "no conversation turns"),
    ("unknown role", "llava", turn(0, 1, "from", "assistant"), ID0, "malformed record: conversations[1] has unknown"),
    ("turns not a list", "llava", setp(0, "conversations", "hi"), ID0, "malformed record: 'conversations' is a str"),
    ("value not a string", "llava", turn(0, 1, "value", 3), ID0, "conversations[1].value is a int"),
    ("empty answer", "llava", turn(0, 1, "value", "  "), ID0, "turn 2 (gpt) is empty"),
    ("question is only the token", "llava", turn(0, 0, "value", "<image>"), ID0, "turn 1 (human) is empty"),
    ("duplicate id", "llava", duplicate_id, ID0, "duplicate id (first seen at train.json #1)"),
    ("empty id", "llava", setp(0, "id", ""), "train.json #1", "missing or empty id"),
    ("no id", "llava", delete(0, "id"), "train.json #1", "missing or empty id"),
    ("id not a string", "llava", setp(0, "id", 17), "train.json #1", "id is a int, not a string"),
    ("record not an object", "llava", lambda rs: rs.__setitem__(0, ["x"]), "train.json #1", "not an object"),
    ("empty system prompt", "sharegpt", setp(0, "system", ""), ID0, "the system prompt is empty"),
    ("no images column", "sharegpt", delete(0, "images"), ID0, "1 <image> token(s) for 0 image(s)"),
    ("extra image part", "messages", content(0, 1, lambda c: c + [{"type": "image"}]), ID0,
     "2 image part(s) for 1 image(s)"),
    ("image part in the answer", "messages", content(0, 2, lambda c: [{"type": "image"}] + c), ID0,
     "turn 3 (gpt) holds 1 image part(s)"),
    ("unknown part type", "messages", content(0, 1, lambda c: c + [{"type": "video"}]), ID0, "unknown type 'video'"),
    ("text part without text", "messages", content(0, 2, lambda c: [{"type": "text"}]), ID0, "text part without text"),
    ("system after the user", "messages", lambda rs: rs[0]["messages"].append(rs[0]["messages"].pop(0)), ID0,
     "turn 3 is a system turn (only the first turn may be)"),
    ("answer not among options", "provision", setp(0, "answer", "purple"), ID0, "not among the options"),
    ("answer index wrong", "provision", meta(0, answer_index=0), ID0, "answer_index 0 does not point at the answer"),
    ("metadata not JSON", "provision", setp(0, "metadata", "{oops"), "train.json #1", "not valid JSON"),
    ("no data_path", "provision", setp(0, "data_path", []), ID0, "no images"),
    ("missing data_path image", "provision", setp(0, "data_path", ["gone.png"]), ID0, "image not found"),
    ("undecodable embedded image", "hf", hf_images(0, lambda im: [{"bytes": b"junk", "path": "a.png"}]), ID0,
     "cannot be decoded"),
    ("image without bytes or path", "hf", hf_images(0, lambda im: [{"bytes": None, "path": None}]), ID0,
     "neither bytes nor a path"),
    ("images and paths disagree", "hf", hf_images(2, lambda im: im[:1]), ID2, "1 images but 2 image_paths"),
]


@pytest.mark.parametrize("case, fmt, breaker, record, message", BROKEN, ids=[b[0] for b in BROKEN])
def test_validator_catches(case: str, fmt: str, breaker: Callable[[Records], None], record: str, message: str,
                           exports: dict[str, Path], image_root: Path, tmp_path: Path) -> None:
    records = copy.deepcopy(load(exports[fmt], fmt))
    breaker(records)
    path = data_file(tmp_path, fmt)
    save(records, path, fmt)
    report = validate(path, fmt, image_root)
    assert not report.ok
    assert any(p.record == record and message in p.message for p in report.problems), report.problems
    assert {p.record for p in report.problems} == {record}  # the other records are still fine
    assert report.bad_records == 1


def test_no_decode_skips_decoding_but_not_existence(exports: dict[str, Path], image_root: Path,
                                                    tmp_path: Path) -> None:
    records = load(exports["llava"], "llava")
    records[0]["image"] = "broken.png"
    save(records, tmp_path / "x.json", "llava")
    assert not validate(tmp_path / "x.json", "llava", image_root).ok
    assert validate(tmp_path / "x.json", "llava", image_root, decode=False).ok
    records[0]["image"] = "gone.png"
    save(records, tmp_path / "x.json", "llava")
    assert not validate(tmp_path / "x.json", "llava", image_root, decode=False).ok


def test_only_the_first_problems_are_kept_but_all_are_counted(exports: dict[str, Path], image_root: Path,
                                                              tmp_path: Path) -> None:
    good = load(exports["llava"], "llava")[0]
    records = []
    for i in range(30):
        r = copy.deepcopy(good)
        r["id"] = f"r{i}"
        r["conversations"][1]["value"] = ""
        records.append(r)
    save(records, tmp_path / "x.json", "llava")
    report = validate(tmp_path / "x.json", "llava", image_root)
    assert report.problem_count == 30 and report.bad_records == 30
    assert [p.record for p in report.problems] == [f"r{i}" for i in range(20)]


def test_malformed_json_is_one_problem(tmp_path: Path, image_root: Path) -> None:
    (tmp_path / "x.json").write_text('[\n{"id": "a"},\n{"id": ')
    report = validate(tmp_path / "x.json", "llava", image_root)
    assert not report.ok and any("malformed JSON" in p.message for p in report.problems)


def test_ids_must_be_unique_across_the_files_of_a_folder(exports: dict[str, Path], image_root: Path,
                                                         tmp_path: Path) -> None:
    records = load(exports["llava"], "llava")
    save(records, tmp_path / "train.json", "llava")
    save(records[:1], tmp_path / "val.json", "llava")
    report = validate(tmp_path, "llava", image_root)
    assert [str(p) for p in report.problems] == [f"{ID0}: duplicate id (first seen at train.json #1)"]


def test_format_and_image_root_default_to_the_manifest(exports: dict[str, Path]) -> None:
    report = validate(exports["sharegpt"] / "train.json")
    assert report.ok and report.format == "sharegpt" and report.images_checked == 2
