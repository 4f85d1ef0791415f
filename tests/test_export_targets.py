"""Export targets (one profile per trainer / model family), the OpenAI format, the think style,
one conversation per image, and parquet files every declared ``datasets`` version reads."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from mmgen.export import FORMATS, ExportError, ExportOptions, export, read_export
from mmgen.export.jsonio import iter_json_records
from mmgen.export.render import safe_id
from mmgen.export.targets import TARGETS, convert_boxes, oriented_size, smart_resize
from mmgen.check.validate import validate
from programs.base import QA
from tests.test_export import IMAGES, make_qa, sample_qa_dir, write_qa

DS219 = Path(os.environ.get("MMGEN_DS219_VENV", "/tmp/venv-ds219"))
"""A venv with the lowest datasets we declare: ``python -m venv /tmp/venv-ds219 &&
/tmp/venv-ds219/bin/pip install "datasets==2.19.*" "pyarrow<17" "numpy<2" pillow``."""
DS3 = Path(os.environ.get("MMGEN_DS3_VENV", "/tmp/venv-ds3"))
"""Optional, datasets 3.x (which cannot read the ``List`` feature type of datasets 4+): ``python -m venv
/tmp/venv-ds3 && /tmp/venv-ds3/bin/pip install "datasets==3.6.*" pillow``."""

VALUE = [0.279, 0.436, 0.421, 0.645]
"""A grounding record's structured value (3 decimals); its answer text says ``[0.28, 0.44, 0.42, 0.65]``."""


def ground_qa(n: int = 0, mc: bool = True, image: str = "00000000000000aa", path: str = "a.png") -> QA:
    """A single.ground_box-like record: answer from ``VALUE``, box options, a box in the rationale."""
    options = ("[0.00, 0.51, 0.10, 0.80]", "[0.28, 0.44, 0.42, 0.65]", "[0.53, 0.61, 0.57, 0.70]") if mc else ()
    return QA(id=f"{image}:single.ground_box:{n}", program="single.ground_box", family="grounding",
              template="bounding_box", question_type="multiple_choice" if mc else "free_form", answer_type="box",
              images=(image,), question="What is the bounding box of the cup? Answer as normalized [x1, y1, x2, y2].",
              answer="[0.28, 0.44, 0.42, 0.65]", options=options, answer_index=1 if mc else None,
              rationale="The cup spans [0.28, 0.44, 0.42, 0.65]. So the answer is: [0.28, 0.44, 0.42, 0.65].",
              plan={"object_id": "o1"}, value=list(VALUE), provenance={"objects": ["o1"]}, seed=0,
              image_paths=(path,))


def region_qa(image: str = "00000000000000aa", path: str = "a.png") -> QA:
    """A single.which_region-like record: boxes in the question, the answer a region (its value)."""
    return QA(id=f"{image}:single.which_region:0", program="single.which_region", family="grounding",
              template="which_contains", question_type="free_form", answer_type="box", images=(image,),
              question="Which of these regions contains the cup: [0.10, 0.20, 0.30, 0.40] or [0.50, 0.50, 1.00, 1.00]?",
              answer="[0.50, 0.50, 1.00, 1.00]", options=(), answer_index=None, rationale="Because.",
              plan={"object_id": "o1", "regions": [[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 1.0, 1.0]]},
              value=[0.5, 0.5, 1.0, 1.0], provenance={"objects": ["o1"]}, seed=0, image_paths=(path,))


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "images"
    r.mkdir()
    for name, size in (("a.png", (640, 480)), ("b.png", (200, 100)), ("c.png", (64, 64))):
        Image.new("RGB", size, (120, 90, 200)).save(r / name)
    return r


def mixed_records() -> list[QA]:
    """Single-image records of two images (a grounding one among them) and one record of two images."""
    return [make_qa(0), ground_qa(1), make_qa(2, question="Is it red?", answer="no"),
            make_qa(3, images=("00000000000000bb",), paths=("b.png",)),
            make_qa(4, images=("00000000000000bb",), paths=("b.png",), question="Count them.", answer="2"),
            make_qa(5, images=("00000000000000aa", "00000000000000bb"), paths=("a.png", "b.png"),
                    question="Which image shows a cup?", answer="Image 1", program="multi.test")]


def export_records(tmp_path: Path, records: list[QA], root: Path, name: str = "out", fmt: str | None = None,
                   **opts: Any) -> tuple[Path, Any]:
    src = write_qa(tmp_path / f"qa-{name}", records)
    out = tmp_path / name
    summary = export(src, out, fmt, ExportOptions(image_root=root, **opts))
    return out, summary


def human_gpt(record: dict[str, Any]) -> tuple[str, str]:
    """The first (human, gpt) texts of a LLaVA / ShareGPT record."""
    conv = record["conversations"]
    return conv[0]["value"], conv[1]["value"]


# --------------------------------------------------------------------------------------- boxes
@pytest.mark.parametrize("target, answer, option_0, question_words", [
    ("qwen2-vl", "<|box_start|>(279,436),(421,645)<|box_end|>", "<|box_start|>(0,510),(100,800)<|box_end|>",
     "(x1,y1),(x2,y2) on a 0-1000 grid"),
    ("internvl", "<box>[[279, 436, 421, 645]]</box>", "<box>[[0, 510, 100, 800]]</box>",
     "[[x1, y1, x2, y2]] on a 0-1000 grid"),
    # a.png is 640 x 480: Qwen2.5-VL's smart_resize makes it 644 x 476 (multiples of 28)
    ("qwen2.5-vl", "[180, 208, 271, 307]", "[0, 243, 64, 381]", "[x1, y1, x2, y2] in pixels"),
    ("llava-1.5", "[0.28, 0.44, 0.42, 0.65]", "[0.00, 0.51, 0.10, 0.80]", "normalized [x1, y1, x2, y2]"),
    ("llamafactory", "[0.28, 0.44, 0.42, 0.65]", "[0.00, 0.51, 0.10, 0.80]", "normalized [x1, y1, x2, y2]"),
])
def test_grounding_answers_in_each_targets_box_format(target: str, answer: str, option_0: str,
                                                      question_words: str, tmp_path: Path, root: Path) -> None:
    out, _ = export_records(tmp_path, [ground_qa(0, mc=False), ground_qa(1, mc=True)], root, target=target,
                            answer_style="text")
    records = list(read_export(out))
    free, mc = sorted(records, key=lambda v: v.id)
    assert free.turns[-1].text == answer  # from the value (3 decimals), not the 2-decimal text
    q = mc.turns[0].text
    assert question_words in q and (target in ("llava-1.5", "llamafactory") or "normalized" not in q)
    assert f"A. {option_0}" in q and f"B. {answer}" in q and mc.turns[-1].text == answer
    assert validate(out).ok, validate(out).problems


def test_boxes_in_questions_are_converted_and_the_answer_is_the_value() -> None:
    qa = convert_boxes(region_qa(), "qwen2", None)
    assert qa.question == ("Which of these regions contains the cup: <|box_start|>(100,200),(300,400)<|box_end|> or "
                           "<|box_start|>(500,500),(1000,1000)<|box_end|>?")
    assert qa.answer == "<|box_start|>(500,500),(1000,1000)<|box_end|>"
    # a record whose box exists only as text (no structured value) is converted where it stands
    text_only = replace(make_qa(0), question="What is the object at [0.25, 0.50, 0.75, 1.00]?")
    assert convert_boxes(text_only, "internvl", None).question == \
        "What is the object at <box>[[250, 500, 750, 1000]]</box>?"


@pytest.mark.parametrize("height, width, resized", [
    (480, 640, (476, 644)), (1080, 1920, (1092, 1932)), (10, 10, (56, 56)), (5000, 5000, (3556, 3556)),
    (28, 2800, (28, 2800)),
])
def test_smart_resize_matches_qwen25_processor_defaults(height: int, width: int, resized: tuple[int, int]) -> None:
    h, w = smart_resize(height, width)
    assert (h, w) == resized and h % 28 == 0 and w % 28 == 0 and 56 * 56 <= h * w <= 16384 * 28 * 28


def test_smart_resize_agrees_with_transformers() -> None:
    qwen = pytest.importorskip("transformers.models.qwen2_vl.image_processing_qwen2_vl")
    sizes = [(h, w) for h in range(30, 3000, 113) for w in range(30, 5000, 157) if max(h, w) / min(h, w) < 200]
    for max_pixels in (16384 * 28 * 28, 1280 * 28 * 28):
        assert all(smart_resize(h, w, max_pixels=max_pixels) == tuple(qwen.smart_resize(h, w, 28, 3136, max_pixels))
                   for h, w in sizes)


def test_max_pixels_gives_the_frame_of_the_trainer(tmp_path: Path) -> None:
    root = tmp_path / "images"
    root.mkdir()
    Image.new("RGB", (2000, 1000)).save(root / "a.png")
    out, _ = export_records(tmp_path, [ground_qa(0, mc=False)], root, target="qwen2.5-vl", max_pixels=200 * 28 * 28)
    # 2000 x 1000 with at most 156800 pixels: smart_resize gives 560 x 280 (w x h)
    assert human_gpt(next(iter_json_records(out / "train.json")))[1] == "[156, 122, 236, 181]"
    assert "image_max_pixels: 156800" in (out / "llamafactory_args.yaml").read_text()
    assert validate(out).ok


def test_pixel_boxes_use_the_exif_oriented_size(tmp_path: Path) -> None:
    path = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[274] = 6  # rotated 90 degrees: shown as 480 wide, 640 high
    Image.new("RGB", (640, 480)).save(path, exif=exif)
    assert oriented_size(str(path)) == (480, 640)


def test_qwen25_needs_the_image_root(tmp_path: Path) -> None:
    src = write_qa(tmp_path / "qa", [ground_qa()])
    with pytest.raises(ExportError, match="needs --image-root"):
        export(src, tmp_path / "out", None, ExportOptions(target="qwen2.5-vl"))


def test_qwen25_skips_records_of_several_images_that_show_boxes(tmp_path: Path, root: Path) -> None:
    multi = make_qa(9, images=("00000000000000aa", "00000000000000bb"), paths=("a.png", "b.png"),
                    question="Which image has the cup at [0.10, 0.20, 0.30, 0.40]?", answer="Image 1")
    boxed_rationale = replace(mixed_records()[-1], rationale="Image 1 has a cup at [0.10, 0.20, 0.30, 0.40].")
    out, summary = export_records(tmp_path, [ground_qa(0), multi, boxed_rationale], root, target="qwen2.5-vl",
                                  style="think")
    assert summary.records == 2 and summary.skipped == {
        "records of several images with boxes (qwen2.5-vl boxes are pixels of one image)": 1}
    # a box only in the rationale: the record stays, its answer plain (counted)
    assert summary.notes["answers without rationale (its boxes are in no one image's pixels)"] == 1
    kept = {v.id: v for v in read_export(out)}[safe_id(boxed_rationale.id)]
    assert kept.turns[-1].text == "Image 1"
    assert validate(out).ok


# --------------------------------------------------------------------------------------- image fields and labels
def test_llava15_one_path_per_record_and_counted_skips(tmp_path: Path, root: Path) -> None:
    out, summary = export_records(tmp_path, mixed_records(), root, target="llava-1.5", placement="end")
    raws = list(iter_json_records(out / "train.json"))
    assert len(raws) == 5 and all(isinstance(r["image"], str) for r in raws)
    assert summary.skipped == {"records of several images (llava-1.5 takes one image path per record)": 1}
    assert json.loads((out / "export.json").read_text())["skipped"] == dict(summary.skipped)
    assert all(human_gpt(r)[0].startswith("<image>\n") for r in raws)  # the target's placement wins
    assert validate(out).ok
    # the same file holding a list is refused by validate for llava-1.5
    raws[0]["image"] = [raws[0]["image"]]
    (out / "train.json").write_text(json.dumps(raws))
    report = validate(out)
    assert not report.ok and "not one path" in report.problems[0].message


def test_llava_onevision_always_lists_and_loads_with_datasets_json(tmp_path: Path, root: Path) -> None:
    out, _ = export_records(tmp_path, mixed_records(), root, target="llava-onevision", jsonl=True)
    raws = list(iter_json_records(out / "train.jsonl"))
    assert len(raws) == 6 and all(isinstance(r["image"], list) for r in raws)
    multi = next(r for r in raws if len(r["image"]) == 2)
    assert human_gpt(multi)[0].startswith("Image 1: <image>\nImage 2: <image>\n")
    assert validate(out).ok
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("json", data_files=str(out / "train.jsonl"), split="train",
                               cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 6 and [len(i) for i in ds["image"]].count(2) == 1


def test_plain_llava_says_when_it_mixes_paths_and_lists(tmp_path: Path, root: Path) -> None:
    from mmgen.export import MIXED_IMAGE_FIELD

    _, summary = export_records(tmp_path, mixed_records(), root, fmt="llava")
    assert summary.notes[MIXED_IMAGE_FIELD] == 5
    _, summary = export_records(tmp_path, mixed_records()[:2], root, name="single", fmt="llava")
    assert MIXED_IMAGE_FIELD not in summary.notes


def test_internvl_labels_jsonl_and_meta_file(tmp_path: Path, root: Path) -> None:
    from mmgen.export import MIXED_IMAGE_FIELD

    out, summary = export_records(tmp_path, mixed_records(), root, target="internvl", val_fraction=0.0)
    assert MIXED_IMAGE_FIELD not in summary.notes  # InternVL's loader takes a path for one image, a list for several
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "internvl_meta.json", "train.jsonl"]
    raws = list(iter_json_records(out / "train.jsonl"))
    multi = next(r for r in raws if isinstance(r["image"], list))
    assert human_gpt(multi)[0].startswith("Image-1: <image>\nImage-2: <image>\n")
    assert sum(isinstance(r["image"], str) for r in raws) == 5
    meta = json.loads((out / "internvl_meta.json").read_text())
    assert meta == {"mmgen_train": {"root": str(root.resolve()), "annotation": str((out / "train.jsonl").resolve()),
                                    "data_augment": False, "repeat_time": 1, "length": 6}}
    assert validate(out).ok
    multi["conversations"][0]["value"] = multi["conversations"][0]["value"].replace("Image-", "Image ")
    (out / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in raws))
    report = validate(out)
    assert [p.message for p in report.problems] == ["<image> tokens labelled ['Image 1: ', 'Image 2: '], "
                                                    "not ['Image-1: ', 'Image-2: ']"]


@pytest.mark.parametrize("target, template", [("llamafactory", None), ("qwen2-vl", "qwen2_vl"),
                                              ("qwen2.5-vl", "qwen2_vl")])
def test_llamafactory_targets_write_media_dir(target: str, template: str | None, tmp_path: Path, root: Path) -> None:
    out, _ = export_records(tmp_path, mixed_records(), root, target=target, val_fraction=0.5)
    args = (out / "llamafactory_args.yaml").read_text()
    assert f"media_dir: {json.dumps(str(root.resolve()))}" in args
    assert f"dataset_dir: {json.dumps(str(out.resolve()))}" in args and "dataset: mmgen_train" in args
    assert (f"template: {template}" in args) == (template is not None)
    assert ("image_max_pixels: 12845056" in args) == (target == "qwen2.5-vl")
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["mmgen_train"]["file_name"] == "train.json" and info["mmgen_train"]["columns"]["images"] == "images"
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["trainer"]["media_dir"] == str(root.resolve()) and manifest["options"]["target"] == target
    for r in iter_json_records(out / "train.json"):
        assert all(not Path(p).is_absolute() and (root / p).is_file() for p in r["images"])


@pytest.mark.parametrize("target, expected", [(t.name, t.format) for t in TARGETS.values()])
def test_each_target_writes_its_format_and_validates(target: str, expected: str, tmp_path: Path,
                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    qa_dir = sample_qa_dir(tmp_path_factory)
    summary = export(qa_dir, tmp_path / "out", None, ExportOptions(image_root=IMAGES, target=target))
    assert summary.format == expected and summary.records > 50
    report = validate(tmp_path / "out")
    assert report.ok, report.problems
    assert report.records == summary.records


def test_validate_catches_bad_target_boxes(tmp_path: Path, root: Path) -> None:
    out, _ = export_records(tmp_path, [ground_qa(n, mc=False) for n in range(3)], root, target="qwen2-vl")
    raws = list(iter_json_records(out / "train.json"))
    raws[0]["conversations"][1]["value"] = "<|box_start|>(279,436),(421,1645)<|box_end|>"
    raws[1]["conversations"][1]["value"] = "[0.28, 0.44, 0.42, 0.65]"
    raws[2]["conversations"][1]["value"] = "<|box_start|>(279,436),(421)<|box_end|>"
    (out / "train.json").write_text(json.dumps(raws))
    messages = sorted(p.message for p in validate(out).problems)
    assert messages == ["turn 2: 1 malformed <|box_start|> box(es)",
                        "turn 2: a normalised [0,1] box [0.28, 0.44, 0.42, 0.65] where qwen2 boxes belong",
                        "turn 2: box <|box_start|>(279,436),(421,1645)<|box_end|> lies outside 1000 x 1000"]


def test_a_format_other_than_the_targets_is_refused(tmp_path: Path) -> None:
    src = write_qa(tmp_path / "qa", [make_qa()])
    with pytest.raises(ExportError, match="writes the sharegpt format, not llava"):
        export(src, tmp_path / "out", "llava", ExportOptions(target="qwen2-vl"))
    export(src, tmp_path / "out", "llamafactory", ExportOptions(target="qwen2-vl"))  # the alias is the same


# --------------------------------------------------------------------------------------- openai, think, merge
def test_openai_writes_image_url_parts(tmp_path: Path, root: Path) -> None:
    out, _ = export_records(tmp_path, mixed_records(), root, fmt="openai", system_prompt="Be brief.",
                            path_prefix="https://example.org/img", placement="end")
    lines = (out / "train.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 6 and all(set(r) == {"messages"} for r in records)
    multi = records[-1]["messages"]
    assert multi[0] == {"role": "system", "content": "Be brief."}
    assert multi[1]["role"] == "user" and multi[1]["content"] == [
        {"type": "text", "text": "Which image shows a cup?"},
        {"type": "text", "text": "Image 1: "},
        {"type": "image_url", "image_url": {"url": "https://example.org/img/a.png"}},
        {"type": "text", "text": "Image 2: "},
        {"type": "image_url", "image_url": {"url": "https://example.org/img/b.png"}}]
    assert multi[2] == {"role": "assistant", "content": "Image 1"}
    assert validate(out).ok, validate(out).problems


def test_openai_data_urls_hold_the_images(tmp_path: Path, root: Path) -> None:
    out, _ = export_records(tmp_path, [make_qa()], root, fmt="openai", image_urls="data")
    record = json.loads((out / "train.jsonl").read_text())
    url = record["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == (root / "a.png").read_bytes()
    report = validate(out)
    assert report.ok and report.images_checked == 1


def test_think_style_wraps_the_rationale(tmp_path: Path, root: Path) -> None:
    records = [make_qa(0, rationale="The object has whiskers."), make_qa(1, rationale="")]
    out, summary = export_records(tmp_path, records, root, fmt="sharegpt", style="think")
    raws = sorted(iter_json_records(out / "train.json"), key=lambda r: r["id"])
    assert human_gpt(raws[0])[1] == "<think>\nThe object has whiskers.\n</think>\n\na cat"
    assert human_gpt(raws[1])[1] == "a cat"
    assert summary.notes["answers without rationale (rationale missing or not split per turn)"] == 1
    assert validate(out).ok
    raws[0]["conversations"][1]["value"] = "<think>\nThe object has whiskers.\n\na cat"
    (out / "train.json").write_text(json.dumps(raws))
    assert [p.message for p in validate(out).problems] == ["turn 2: not one <think>...</think> block at the start"]
    with pytest.raises(ExportError, match="choose one"):
        ExportOptions(style="think", rationale=True)


def test_merge_per_image_one_conversation_per_image(tmp_path: Path, root: Path) -> None:
    records = mixed_records()
    out, summary = export_records(tmp_path, records, root, target="llava-onevision", merge_per_image=True)
    raws = list(iter_json_records(out / "train.json"))
    # an image's conversation goes out when the next image starts; a record of several images at once
    assert [r["id"] for r in raws] == ["00000000000000aa", safe_id(records[-1].id), "00000000000000bb"]
    by_id = {r["id"]: r for r in raws}
    conv = by_id["00000000000000aa"]["conversations"]
    assert len(conv) == 6 and sum(t["value"].count("<image>") for t in conv) == 1
    assert conv[0]["value"].startswith("<image>\n")
    firsts = sorted(t["value"].removeprefix("<image>\n").split("\n")[0] for t in conv[::2])
    assert firsts == sorted(r.question for r in records[:3])
    assert len(by_id["00000000000000bb"]["conversations"]) == 4
    assert summary.records == 3 and summary.notes["records merged into per-image conversations"] == 5
    assert validate(out).ok
    # turn order does not depend on the input order
    shuffled = records[:3][::-1] + records[3:5][::-1] + records[5:]
    again, _ = export_records(tmp_path, shuffled, root, name="again", target="llava-onevision", merge_per_image=True)
    assert (again / "train.json").read_bytes() == (out / "train.json").read_bytes()
    # the records of an image must come together
    with pytest.raises(ExportError, match="not together"):
        export_records(tmp_path, [records[0], records[3], records[2]], root, name="apart", merge_per_image=True)
    with pytest.raises(ExportError, match="merge_per_image writes conversations"):
        export_records(tmp_path, records, root, name="hf", fmt="hf", merge_per_image=True)


# --------------------------------------------------------------------------------------- parquet
def _feature_types(node: Any) -> set[str]:
    if isinstance(node, dict):
        own = {node["_type"]} if isinstance(node.get("_type"), str) else set()
        return own.union(*(_feature_types(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_feature_types(v) for v in node))
    return set()


def test_parquet_metadata_has_no_list_feature_type(tmp_path: Path, root: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out, _ = export_records(tmp_path, mixed_records(), root, target="trl")
    files = sorted(out.glob("data/*/*.parquet"))
    assert files
    for f in files:
        meta = json.loads(pq.read_schema(f).metadata[b"huggingface"])
        assert _feature_types(meta["info"]["features"]) == {"Value", "Image"}
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset(str(out), name="all", split="train", cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 6 and isinstance(ds[0]["images"][0], Image.Image)
    assert sorted(len(i) for i in ds["image_paths"]) == [1, 1, 1, 1, 1, 2]


@pytest.mark.parametrize("venv, version, required", [(DS219, "2.19", True), (DS3, "3.", False)])
def test_parquet_loads_with_older_datasets(venv: Path, version: str, required: bool, tmp_path: Path,
                                           root: Path) -> None:
    """The lowest declared datasets (required in CI) and 3.x (when its venv exists) read our parquet, and
    the JSON files meant for ``load_dataset("json")`` (each field one type: ``image`` always a list)."""
    if not (venv / "bin" / "python").is_file() and not (required and os.environ.get("CI")):
        pytest.skip(f"no datasets {version} venv at {venv} (see DS219 / DS3)")
    out, _ = export_records(tmp_path, mixed_records(), root, target="trl")
    json_files = [export_records(tmp_path, mixed_records(), root, name=name, fmt=fmt, target=target)[0] / "train.json"
                  for name, fmt, target in (("onevision", None, "llava-onevision"), ("lf", None, "llamafactory"),
                                            ("messages", "messages", None))]
    script = ("import sys, datasets\n"  # a fresh cache: 2.19 would find an earlier load of another folder "out"
              "ds = datasets.load_dataset(sys.argv[1], name='all', split='train', cache_dir=sys.argv[2])\n"
              "im = ds[5]['images'] if len(ds[5]['images']) == 2 else ds[0]['images']\n"
              "rows = [len(datasets.load_dataset('json', data_files=f, split='train', cache_dir=sys.argv[2]))\n"
              "        for f in sys.argv[3:]]\n"
              "print(datasets.__version__, len(ds), sum(len(x) for x in ds['images']), type(im[0]).__name__, rows)\n")
    run = subprocess.run([str(venv / "bin" / "python"), "-c", script, str(out), str(tmp_path / "cache"),
                          *map(str, json_files)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": ""})
    assert run.returncode == 0, run.stderr[-2000:]
    found, rows, images, kind = run.stdout.split("\n")[-2].split(" ", 4)[:4]
    assert found.startswith(version) and (rows, images) == ("6", "7") and kind.endswith("ImageFile")
    assert run.stdout.strip().endswith("[6, 6, 6]")


# --------------------------------------------------------------------------------------- CLI
def test_cli_target_and_validate(tmp_path: Path, root: Path) -> None:
    from mmgen.cli import main

    src = write_qa(tmp_path / "qa", [ground_qa(0, mc=False)])
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(main, ["export", str(src), "--target", "qwen2-vl", "-o", str(out),
                                  "--image-root", str(root), "--style", "think"])
    assert result.exit_code == 0, result.output
    raw = next(iter_json_records(out / "train.json"))
    assert human_gpt(raw)[1].endswith("\n</think>\n\n<|box_start|>(279,436),(421,645)<|box_end|>")
    result = runner.invoke(main, ["validate", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["validate", str(out), "--target", "internvl", "-f", "llava"])
    assert result.exit_code != 0
    assert set(FORMATS) >= {"openai", "messages"}
