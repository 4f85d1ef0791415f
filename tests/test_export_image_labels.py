"""Multi-image prompts label each image in every format, so that answers saying "Image 2" name an image the
prompt labels: ``Image 1: <image>`` in the token formats, an ``Image 1: `` text part just before each image part
in the formats of typed content parts (``messages``, ``hf`` / the ``trl`` target, ``openai``); ``validate``
refuses a multi-image record whose images are unlabelled or labelled out of order, with or without a target."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mmgen.export import ExportOptions, export, read_export
from mmgen.export.jsonio import iter_json_records
from mmgen.export.messages import content_turn
from mmgen.export.render import image_part_labels, is_image_label
from mmgen.check.validate import validate
from programs.base import QA
from tests.test_export import make_qa, write_qa

PAIR = ("00000000000000aa", "00000000000000bb")
TRIPLE = (*PAIR, "00000000000000cc")


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "images"
    r.mkdir()
    for name, colour in (("a.png", (200, 30, 30)), ("b.png", (30, 200, 30)), ("c.png", (30, 30, 200))):
        Image.new("RGB", (64, 48), colour).save(r / name)
    return r


def records() -> list[QA]:
    """One single-image record, one of two images and one of three (answers naming an image)."""
    return [make_qa(0),
            make_qa(1, images=PAIR, paths=("a.png", "b.png"), question="Which image shows a cup?",
                    answer="Image 2", program="multi.test"),
            make_qa(2, images=TRIPLE, paths=("a.png", "b.png", "c.png"), question="Which image is bluest?",
                    answer="Image 3", program="multi.test")]


def exported(tmp_path: Path, root: Path, fmt: str | None, **opts: Any) -> Path:
    src = write_qa(tmp_path / "qa", records())
    out = tmp_path / "out"
    export(src, out, fmt, ExportOptions(image_root=root, val_fraction=0.0, **opts))
    return out


def user_content(raw: dict[str, Any]) -> list[dict[str, Any]]:
    return next(m for m in raw["messages"] if m["role"] == "user")["content"]


def shape(content: list[dict[str, Any]]) -> list[str]:
    """The parts in order: ``image``, ``label:Image 1: `` or ``text``."""
    out = []
    for part in content:
        if part["type"] in ("image", "image_url"):
            out.append("image")
        elif is_image_label(part["text"]):
            out.append(f"label:{part['text']}")
        else:
            out.append("text")
    return out


def raw_records(out: Path, fmt: str) -> list[dict[str, Any]]:
    if fmt == "hf":
        import pyarrow.parquet as pq

        return [row for f in sorted(out.glob("data/*/*.parquet")) for row in pq.read_table(f).to_pylist()]
    return list(iter_json_records(next(p for p in (out / "train.json", out / "train.jsonl") if p.is_file())))


def by_images(raws: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {sum(p["type"] in ("image", "image_url") for p in user_content(r)): r for r in raws}


PART_FORMATS = [("messages", {}), ("openai", {}), ("hf", {}), (None, {"target": "trl"})]


@pytest.mark.parametrize("placement", ["start", "end"])
@pytest.mark.parametrize("fmt, opts", PART_FORMATS, ids=["messages", "openai", "hf", "trl"])
def test_part_formats_label_each_image_with_a_text_part(fmt: str | None, opts: dict[str, Any], placement: str,
                                                        tmp_path: Path, root: Path) -> None:
    out = exported(tmp_path, root, fmt, placement=placement, **opts)
    raws = by_images(raw_records(out, "hf" if fmt in ("hf", None) else fmt))
    assert sorted(raws) == [1, 2, 3]
    assert shape(user_content(raws[1])) == (["image", "text"] if placement == "start" else ["text", "image"])
    labelled = ["label:Image 1: ", "image", "label:Image 2: ", "image", "label:Image 3: ", "image"]
    for count in (2, 3):
        parts = labelled[:2 * count]
        want = parts + ["text"] if placement == "start" else ["text"] + parts
        assert shape(user_content(raws[count])) == want
    # read back: labels are labels, not text; the question comes back as it was asked
    views = {len(v.images): v for v in read_export(out)}
    first = next(t for t in views[3].turns if t.role == "human")
    assert first.labels == ("Image 1: ", "Image 2: ", "Image 3: ") and first.markers == 3
    assert first.text.startswith("Which image is bluest?") and "Image 1" not in first.text
    assert first.placement == placement
    assert next(t for t in views[1].turns if t.role == "human").labels == ("",)
    report = validate(out)
    assert report.ok and report.records == 3, report.problems


def rewrite(out: Path, fmt: str, change: Any) -> None:
    """Apply ``change`` to the user content of the three-image record of a JSON export, in place."""
    path = next(p for p in (out / "train.json", out / "train.jsonl") if p.is_file())
    raws = list(iter_json_records(path))
    change(user_content(by_images(raws)[3]))
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in raws))
    else:
        path.write_text(json.dumps(raws))


def drop_labels(content: list[dict[str, Any]]) -> None:
    content[:] = [p for p in content if not (p["type"] == "text" and is_image_label(p["text"]))]


def swap_labels(content: list[dict[str, Any]]) -> None:
    labels = [p for p in content if p["type"] == "text" and is_image_label(p["text"])]
    labels[0]["text"], labels[1]["text"] = labels[1]["text"], labels[0]["text"]


@pytest.mark.parametrize("fmt", ["messages", "openai"])
@pytest.mark.parametrize("change, labels", [
    (drop_labels, "['', '', '']"),
    (swap_labels, "['Image 2: ', 'Image 1: ', 'Image 3: ']"),
], ids=["unlabelled", "out of order"])
def test_validate_refuses_unlabelled_part_images(fmt: str, change: Any, labels: str, tmp_path: Path,
                                                 root: Path) -> None:
    out = exported(tmp_path, root, fmt)
    assert validate(out).ok
    rewrite(out, fmt, change)
    report = validate(out)
    assert [p.message for p in report.problems] == [
        f"image_url parts labelled {labels}, not ['Image 1: ', 'Image 2: ', 'Image 3: ']" if fmt == "openai"
        else f"image parts labelled {labels}, not ['Image 1: ', 'Image 2: ', 'Image 3: ']"]


def test_validate_refuses_unlabelled_images_in_parquet(tmp_path: Path, root: Path) -> None:
    import pyarrow.parquet as pq

    out = exported(tmp_path, root, None, target="trl")
    assert validate(out).ok
    (file,) = sorted(out.glob("data/*/train.parquet"))
    table = pq.read_table(file)
    rows = table.to_pylist()
    for row in rows:
        drop_labels(user_content(row))
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), file)
    report = validate(out)
    assert sorted(p.message for p in report.problems) == [
        "image parts labelled ['', '', ''], not ['Image 1: ', 'Image 2: ', 'Image 3: ']",
        "image parts labelled ['', ''], not ['Image 1: ', 'Image 2: ']"]


def test_validate_refuses_unlabelled_tokens_without_a_target(tmp_path: Path, root: Path) -> None:
    out = exported(tmp_path, root, "llava")
    assert validate(out).ok
    raws = list(iter_json_records(out / "train.json"))
    multi = next(r for r in raws if isinstance(r["image"], list) and len(r["image"]) == 3)
    value = multi["conversations"][0]["value"]
    assert value.startswith("Image 1: <image>\nImage 2: <image>\nImage 3: <image>\n")
    multi["conversations"][0]["value"] = value.replace("Image 1: ", "").replace("Image 2: ", "").replace(
        "Image 3: ", "")
    (out / "train.json").write_text(json.dumps(raws))
    assert [p.message for p in validate(out).problems] == [
        "<image> tokens labelled ['', '', ''], not ['Image 1: ', 'Image 2: ', 'Image 3: ']"]


def test_a_label_is_only_a_label_before_an_image_part() -> None:
    assert image_part_labels(1) == [""]
    assert image_part_labels(2, "Image-{k}: ") == ["Image-1: ", "Image-2: "]
    # a text part that looks like a label but stands before text (or last) is text
    turn = content_turn("human", [("text", "Image 1: "), ("text", "Q"), ("image", ""), ("text", "Image 2: ")])
    assert turn.labels == ("",) and turn.text == "Image 1: \nQ\nImage 2: " and turn.markers == 1
    assert not is_image_label("Image 1: and more") and is_image_label("Image 12: ")
