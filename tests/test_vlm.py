"""The VLM paths (images sent as ``image_url`` parts) against a fake OpenAI-compatible server that
checks every image part it receives: ``curate --vlm-verify`` (agreement filter) and ``curate --judge --vlm``."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from mmgen.cli import main
from mmgen.llm.vlm_verify import compare, verify_messages
from scene_graphs.io import read_jsonl
from tests.llm_server import FakeServer, Reply, completion

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets" / "scene_graphs"
IMAGES = ROOT / "assets" / "images"
MAX_SIDE = 200


@pytest.fixture(scope="module")
def qa_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mmgen.stages.generate import generate
    from programs.base import ProgramConfig

    out = tmp_path_factory.mktemp("qa")
    generate(ASSETS, out, ProgramConfig(seed=0), ["single.count_objects", "single.attribute_color",
                                                  "single.ground_box", "single.contains_word"])
    return out


def user_parts(body: dict) -> tuple[str, list[Image.Image], list[str]]:
    """The user message's text, its decoded images and the labels before them; fails on a malformed part."""
    user = next(m for m in body["messages"] if m["role"] == "user")
    assert isinstance(user["content"], list), "a VLM request must send content parts"
    texts, images, labels = [], [], []
    for i, part in enumerate(user["content"]):
        if part["type"] == "text":
            texts.append(part["text"])
        else:
            assert part["type"] == "image_url"
            url = part["image_url"]["url"]
            assert url.startswith("data:image/jpeg;base64,")
            im = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
            im.load()
            assert im.format == "JPEG" and max(im.size) <= MAX_SIDE
            images.append(im)
            labels.append(user["content"][i - 1]["text"])
    return "\n".join(texts), images, labels


def records(path: Path) -> list[dict[str, Any]]:
    return list(read_jsonl(path)) if path.exists() else []


def wrong_answer(rec: dict[str, Any]) -> str:
    if rec.get("options") and rec.get("answer_index") is not None:
        return rec["options"][(rec["answer_index"] + 1) % len(rec["options"])]
    if rec["answer"] in ("yes", "no"):
        return {"yes": "no", "no": "yes"}[rec["answer"]]
    if rec["answer_type"] == "count":
        return str(int(rec["answer"]) + 1)
    return "zebra"


def test_vlm_verify_drops_exactly_the_contradicted_records(qa_dir: Path, tmp_path: Path) -> None:
    inputs = records(qa_dir / "part-00000.jsonl")
    by_question = {r["question"]: r for r in inputs}
    liar = {r["id"] for k, r in enumerate(sorted(inputs, key=lambda r: r["id"])) if k % 3 == 0}
    seen: list[tuple[str, int]] = []

    def vlm(body: dict, n: int) -> Reply:
        text, images, labels = user_parts(body)
        question = text.split("Question: ", 1)[1].split("\n", 1)[0]
        rec = by_question[question]
        assert len(images) == len(rec["images"])
        blind = {k: v for k, v in rec.items() if k in ("question", "options", "answer_index")}
        sent = text.split("\n", 1)[1]  # after the "Image:" label
        assert sent == verify_messages(blind)[1]["content"]  # blind: built without our answer
        seen.append((rec["id"], len(images)))
        answer = wrong_answer(rec) if rec["id"] in liar else rec["answer"]
        return Reply(completion(json.dumps({"answer": answer})))

    out = tmp_path / "checked"
    with FakeServer(vlm) as srv:
        result = CliRunner().invoke(main, [
            "curate", str(qa_dir), "-o", str(out), "--vlm-verify", "--scene-graphs", str(ASSETS),
            "--image-root", str(IMAGES), "--vlm-max-side", str(MAX_SIDE), "--max-answer-share", "1",
            "--min-quality", "0", "--llm-base-url", srv.url, "--llm-model", "fake-vlm",
            "--llm-cache", str(tmp_path / "c.sqlite")], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    kept, dropped = records(out / "part-00000.jsonl"), records(out / "dropped.jsonl")
    checkable = {r["id"] for r in inputs if r["answer_type"] != "box"}
    asked = {i for i, _ in seen}
    assert asked == checkable  # boxes are not sent: a VLM's free-form box cannot be compared
    vlm_drops = {d["id"] for d in dropped if d["filter"] == "vlm_verify"}
    assert vlm_drops == liar & checkable and vlm_drops
    assert {r["id"] for r in kept} | {d["id"] for d in dropped} == {r["id"] for r in inputs}
    assert all(r["curation"]["vlm_verify"]["agree"] for r in kept if r["id"] in checkable)


def test_judge_with_vlm_sees_the_images(qa_dir: Path, tmp_path: Path) -> None:
    labels_seen: list[list[str]] = []

    def judge(body: dict, n: int) -> Reply:
        _, images, labels = user_parts(body)
        assert images
        labels_seen.append(labels)
        return Reply(completion(json.dumps({"score": 8, "reason": "looks right"})))

    with FakeServer(judge) as srv:
        result = CliRunner().invoke(main, [
            "curate", str(qa_dir), "-o", str(tmp_path / "cur"), "--judge", "--vlm", "--scene-graphs", str(ASSETS),
            "--image-root", str(IMAGES), "--vlm-max-side", str(MAX_SIDE), "--max-answer-share", "1",
            "--llm-base-url", srv.url, "--llm-model", "fake-vlm", "--no-llm-cache"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert labels_seen and all(labels == ["Image:"] for labels in labels_seen)


def test_vlm_options_need_an_image_root(qa_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["curate", str(qa_dir), "-o", str(tmp_path / "x"), "--vlm-verify",
                                       "--scene-graphs", str(ASSETS), "--llm-base-url", "http://127.0.0.1:9/v1",
                                       "--llm-model", "m"])
    assert result.exit_code == 2 and "--image-root" in result.output


@pytest.mark.parametrize("rec,reply,agree", [
    ({"answer": "3", "answer_type": "count"}, "There are three.", True),
    ({"answer": "3", "answer_type": "count"}, "2", False),
    ({"answer": "yes", "answer_type": "label"}, "No, it is not.", False),
    ({"answer": "yes", "answer_type": "label"}, "Yes.", True),
    ({"answer": "red", "answer_type": "color", "options": ["blue", "red", "green"], "answer_index": 1}, "B", True),
    ({"answer": "red", "answer_type": "color", "options": ["blue", "red", "green"], "answer_index": 1}, "green",
     False),
    ({"answer": "red", "answer_type": "color", "options": ["blue", "red", "green"], "answer_index": 1}, "purple",
     None),
    ({"answer": "dog", "answer_type": "label"}, "a dog", True),
    ({"answer": "dog", "answer_type": "label"}, "cat", False),
    ({"answer": "dog", "answer_type": "label"}, "", None),
    ({"answer": "[0.1, 0.2, 0.3, 0.4]", "answer_type": "box"}, "[0.5, 0.5, 0.6, 0.6]", None),
])
def test_compare_rules(rec: dict, reply: str, agree: bool | None) -> None:
    assert compare(rec, reply).agree is agree


def test_evolve_with_vlm_sends_the_images_with_every_request(tmp_path: Path) -> None:
    from mmgen.stages.generate import generate
    from programs.base import ProgramConfig
    from tests.llm_server import scripted_model

    qa = tmp_path / "qa"
    generate(ASSETS, qa, ProgramConfig(seed=0, max_per_image=1), ["single.attribute_color"])
    cooperative = scripted_model()
    images_per_request: list[int] = []

    def vlm(body: dict, n: int) -> Reply:
        text, images, _ = user_parts(body)
        images_per_request.append(len(images))
        flat = {**body, "messages": [m if m["role"] != "user" else {"role": "user", "content": text}
                                     for m in body["messages"]]}
        return cooperative(flat, n)

    with FakeServer(vlm) as srv:
        result = CliRunner().invoke(main, [
            "evolve", str(qa), "-o", str(tmp_path / "evo"), "--scene-graphs", str(ASSETS), "--vlm", "--image-root",
            str(IMAGES), "--vlm-max-side", str(MAX_SIDE), "--llm-base-url", srv.url, "--llm-model", "fake-vlm",
            "--no-llm-cache"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert images_per_request and set(images_per_request) == {1}  # rewrite and elimination both see the image
    assert any("evolved" in r for r in records(tmp_path / "evo" / "part-00000.jsonl"))
