"""Strict parsing of model replies and the request-cache key (no server needed)."""

from __future__ import annotations

import threading

import pytest

from mmgen.llm.cache import CachedReply, RequestCache, request_key
from mmgen.llm.parsing import MalformedOutput, extract_json_object, parse_reply, schema_error
from mmgen.llm.prompts import ELIMINATE_SCHEMA, EVOLVE_SCHEMA, JUDGE_SCHEMA, REASONING_SCHEMA


@pytest.mark.parametrize("text, expected", [
    ('{"score": 7, "reason": "ok"}', {"score": 7, "reason": "ok"}),
    ('  \n{"a": 1}\n', {"a": 1}),
    ('```json\n{"a": "b"}\n```', {"a": "b"}),
    ('```\n{"a": [1, 2]}\n```\nDone.', {"a": [1, 2]}),
    ('Sure! Here is the JSON: {"question": "Is it {red}?", "answer": "yes"} Hope it helps.',
     {"question": "Is it {red}?", "answer": "yes"}),
    ('{"a": 1} {"a": 2}', {"a": 1}),  # the first complete object
    ('noise { not json } then {"ok": true}', {"ok": True}),
    ('{"outer": {"inner": "}"}}', {"outer": {"inner": "}"}}),
])
def test_extracts_the_first_json_object(text: str, expected: dict) -> None:
    assert extract_json_object(text) == expected


@pytest.mark.parametrize("text", [
    "", "   ", "The building is yellow.", '{"question": "What', "[1, 2, 3]", '"just a string"',
    "{'single': 'quotes'}", '{"a": 1,}', "```json\n{\"a\":\n```",
])
def test_malformed_replies_raise(text: str) -> None:
    with pytest.raises(MalformedOutput):
        extract_json_object(text)


@pytest.mark.parametrize("schema, data, ok", [
    (JUDGE_SCHEMA, {"score": 7, "reason": "fine"}, True),
    (JUDGE_SCHEMA, {"score": 0, "reason": "fine"}, False),
    (JUDGE_SCHEMA, {"score": 11, "reason": "fine"}, False),
    (JUDGE_SCHEMA, {"score": "7", "reason": "fine"}, False),
    (JUDGE_SCHEMA, {"score": 7.5, "reason": "fine"}, False),
    (JUDGE_SCHEMA, {"reason": "no score"}, False),
    (ELIMINATE_SCHEMA, {"improved": True, "needs_image": False, "reason": "x"}, True),
    (ELIMINATE_SCHEMA, {"improved": "yes", "needs_image": False, "reason": "x"}, False),
    (EVOLVE_SCHEMA, {"question": "Q?", "answer": "A"}, True),
    (EVOLVE_SCHEMA, {"question": "", "answer": "A"}, False),
    (REASONING_SCHEMA, {"question": "Q?", "answer": "A"}, False),
    (REASONING_SCHEMA, {"question": "Q?", "answer": "A", "steps": ["one"]}, False),
    (REASONING_SCHEMA, {"question": "Q?", "answer": "A", "steps": ["one", "two"]}, True),
])
def test_schema_validation(schema: dict, data: dict, ok: bool) -> None:
    assert (schema_error(data, schema) is None) == ok


def test_parse_reply_runs_the_extra_check_and_names_the_field() -> None:
    with pytest.raises(MalformedOutput, match="score"):
        parse_reply('{"score": 99, "reason": "x"}', JUDGE_SCHEMA)
    with pytest.raises(MalformedOutput, match="too short"):
        parse_reply('{"score": 5, "reason": "x"}', JUDGE_SCHEMA,
                    lambda d: "too short" if len(d["reason"]) < 3 else None)
    assert parse_reply('{"score": 5, "reason": "xyz"}', JUDGE_SCHEMA, lambda d: None)["score"] == 5


# --------------------------------------------------------------------------------------- cache
def test_request_key_is_canonical_and_sensitive() -> None:
    msgs = [{"role": "user", "content": "hi"}]
    base = request_key("m", msgs, {"temperature": 0, "max_tokens": 5})
    assert base == request_key("m", [{"content": "hi", "role": "user"}], {"max_tokens": 5, "temperature": 0})
    assert base != request_key("m2", msgs, {"temperature": 0, "max_tokens": 5})
    assert base != request_key("m", msgs, {"temperature": 0, "max_tokens": 6})
    assert base != request_key("m", [{"role": "user", "content": "hi!"}], {"temperature": 0, "max_tokens": 5})


def test_cache_persists_across_instances_and_threads(tmp_path) -> None:
    path = tmp_path / "c.sqlite"
    cache = RequestCache(path)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for j in range(20):
                cache.put(f"k{k}-{j}", "m", CachedReply(f"text {k} {j}", k, j, "stop"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(cache) == 80
    cache.close()
    again = RequestCache(path)
    assert again.get("k3-19") == CachedReply("text 3 19", 3, 19, "stop")
    assert again.get("missing") is None
    again.close()
