"""The LLM client against tiny fake servers: malformed, slow, failing, picky and concurrent."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from mmgen.llm.client import LLMAuthError, LLMClient, LLMSettings, LLMUnavailableError
from mmgen.llm.prompts import JUDGE_SCHEMA
from tests.llm_server import FakeServer, Reply, completion

MESSAGES = [{"role": "system", "content": "Grade it."}, {"role": "user", "content": "<record>\n{}\n</record>"}]
GOOD = json.dumps({"score": 7, "reason": "fine"})


def settings(server: FakeServer, tmp_path: Path | None = None, **kw) -> LLMSettings:
    base = LLMSettings(base_url=server.url, model="fake-model", timeout=5.0, retries=3, parse_retries=2, backoff=0.01,
                       max_backoff=0.05, concurrency=2, cache_path=str(tmp_path / "cache.sqlite") if tmp_path else None)
    return replace(base, **kw)


def ask(client: LLMClient, user: str = "") -> object:
    msgs = MESSAGES if not user else [MESSAGES[0], {"role": "user", "content": user}]
    return client.ask(msgs, JUDGE_SCHEMA, "judgement")


def test_valid_reply_and_token_cost_accounting() -> None:
    with FakeServer(lambda b, n: Reply(completion(GOOD, 100, 20))) as srv:
        with LLMClient(settings(srv, price_in=1.5, price_out=6.0)) as client:
            for _ in range(3):
                answer = ask(client)
                assert answer.ok and answer.data == {"score": 7, "reason": "fine"}
            s = client.summary()
    assert s["requests"] == 3 and s["calls"] == 3 and s["malformed_replies"] == 0
    assert s["tokens"]["prompt"] == 300 and s["tokens"]["completion"] == 60
    assert s["cost_usd"] == pytest.approx((300 * 1.5 + 60 * 6.0) / 1e6)
    body = srv.requests[0]
    assert body["model"] == "fake-model" and body["temperature"] == 0.0 and body["seed"] == 0
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == JUDGE_SCHEMA


def test_malformed_replies_are_counted_retried_with_a_correction_then_given_up() -> None:
    with FakeServer(lambda b, n: Reply(completion('Sure! {"score": 7, "reason": '))) as srv:
        with LLMClient(settings(srv, parse_retries=2)) as client:
            answer = ask(client)
            s = client.summary()
    assert not answer.ok and answer.kind == "malformed" and answer.attempts == 3
    assert "no complete JSON object" in (answer.error or "")
    assert s["malformed_replies"] == 3 and s["requests"] == 3 and s["failed_calls"] == 1
    # each retry carries the bad reply and a correction, and a new seed
    assert [len(r["messages"]) for r in srv.requests] == [2, 4, 6]
    assert srv.requests[1]["messages"][2] == {"role": "assistant", "content": 'Sure! {"score": 7, "reason": '}
    assert "not valid" in srv.requests[1]["messages"][3]["content"]
    assert [r["seed"] for r in srv.requests] == [0, 1, 2]


@pytest.mark.parametrize("bad", [
    '{"score": 12, "reason": "too high"}',  # schema violation
    "The answer is seven.",  # no JSON
    '```json\n{"score": 7, "reason": "x"\n```',  # broken JSON in a fence
])
def test_malformed_then_valid(bad: str) -> None:
    with FakeServer(lambda b, n: Reply(completion(bad if n == 0 else GOOD))) as srv:
        with LLMClient(settings(srv)) as client:
            answer = ask(client)
            s = client.summary()
    assert answer.ok and answer.attempts == 2 and s["malformed_replies"] == 1 and s["requests"] == 2


def test_slow_server_times_out_then_the_retry_succeeds() -> None:
    with FakeServer(lambda b, n: Reply(completion(GOOD), delay=3.0 if n == 0 else 0.0)) as srv:
        with LLMClient(settings(srv, timeout=0.5)) as client:
            start = time.monotonic()
            answer = ask(client)
            elapsed = time.monotonic() - start
            s = client.summary()
    assert answer.ok
    assert elapsed < 2.5  # did not wait for the slow reply
    assert s["retries"] == 1 and s["requests"] == 2 and s["errors"] == {"APITimeoutError": 1}


def test_always_slow_server_fails_the_call_in_bounded_time() -> None:
    with FakeServer(lambda b, n: Reply(completion(GOOD), delay=2.0)) as srv:
        with LLMClient(settings(srv, timeout=0.3, retries=1)) as client:
            start = time.monotonic()
            answer = ask(client)
            elapsed = time.monotonic() - start
    assert not answer.ok and answer.kind == "request_failed" and "APITimeoutError" in (answer.error or "")
    assert elapsed < 1.8


def test_500_then_success_is_retried_with_backoff() -> None:
    sleeps: list[float] = []
    with FakeServer(lambda b, n: Reply({"error": {"message": "overloaded"}}, 500) if n < 2
                    else Reply(completion(GOOD))) as srv:
        with LLMClient(settings(srv, backoff=0.01, max_backoff=1.0), sleep=sleeps.append) as client:
            answer = ask(client)
            s = client.summary()
    assert answer.ok and s["retries"] == 2 and s["requests"] == 3 and s["errors"] == {"HTTP 500": 2}
    assert sleeps == [0.01, 0.02]  # exponential backoff


def test_retry_after_header_is_honoured() -> None:
    sleeps: list[float] = []
    with FakeServer(lambda b, n: Reply({"error": {"message": "slow down"}}, 429, headers={"retry-after": "0.3"})
                    if n == 0 else Reply(completion(GOOD))) as srv:
        with LLMClient(settings(srv, backoff=0.01, max_backoff=1.0), sleep=sleeps.append) as client:
            assert ask(client).ok
    assert sleeps == [0.3]


def test_garbage_body_is_a_retryable_failure() -> None:
    with FakeServer(lambda b, n: Reply(b"<html>proxy error</html>") if n == 0 else Reply(completion(GOOD))) as srv:
        with LLMClient(settings(srv)) as client:
            answer = ask(client)
            s = client.summary()
    assert answer.ok and s["retries"] == 1 and s["requests"] == 2


def test_client_errors_are_not_retried_and_auth_errors_stop() -> None:
    with FakeServer(lambda b, n: Reply({"error": {"message": "context length exceeded"}}, 400)) as srv:
        with LLMClient(settings(srv)) as client:
            answer = ask(client)
            assert client.summary()["requests"] == 1
    assert answer.kind == "request_rejected" and not answer.server_failed and "400" in (answer.error or "") and "context length" in answer.error
    with FakeServer(lambda b, n: Reply({"error": {"message": "bad key"}}, 401)) as srv:
        with LLMClient(settings(srv)) as client:
            with pytest.raises(LLMAuthError, match="401"):
                ask(client)


def test_a_dead_server_stops_the_run_after_consecutive_failures() -> None:
    with FakeServer(lambda b, n: Reply({"error": {"message": "down"}}, 503)) as srv:
        with LLMClient(settings(srv, retries=1, max_consecutive_failures=2)) as client:
            assert ask(client).kind == "request_failed"
            assert ask(client).kind == "request_failed"
            sent = srv.count
            with pytest.raises(LLMUnavailableError, match="2 requests in a row"):
                ask(client)
            assert srv.count == sent  # no request once the server is known to be down
    assert sent == 4


def test_response_format_steps_down_when_the_server_refuses_it() -> None:
    def picky(body: dict, n: int) -> Reply:
        if body.get("response_format", {}).get("type") == "json_schema":
            return Reply({"error": {"message": "response_format.type: Input should be 'text' or 'json_object'"}}, 500)
        return Reply(completion(GOOD))

    with FakeServer(picky) as srv:
        with LLMClient(settings(srv)) as client:
            assert ask(client).ok and ask(client, "again").ok
            s = client.summary()
    assert s["format_fallbacks"] == ["json_schema -> json_object_schema"]
    assert s["response_format"] == "json_object_schema"
    assert s["retries"] == 0 and srv.count == 3  # one refusal, then the working format is kept
    assert srv.requests[1]["response_format"] == {"type": "json_object", "schema": JUDGE_SCHEMA}


def test_no_response_format_when_asked_for_none() -> None:
    with FakeServer(lambda b, n: Reply(completion("Here: " + GOOD))) as srv:
        with LLMClient(settings(srv, response_format="none")) as client:
            assert ask(client).ok
    assert "response_format" not in srv.requests[0]


def test_cache_makes_a_rerun_free_including_malformed_exchanges(tmp_path: Path) -> None:
    replies = iter(["not json", GOOD, GOOD])
    with FakeServer(lambda b, n: Reply(completion(next(replies), 50, 10))) as srv:
        with LLMClient(settings(srv, tmp_path)) as client:
            first = [ask(client), ask(client, "other")]
            s1 = client.summary()
        assert srv.count == 3 and s1["cache_hits"] == 0
        with LLMClient(settings(srv, tmp_path)) as client:
            second = [ask(client), ask(client, "other")]
            s2 = client.summary()
        assert srv.count == 3  # zero new requests
    assert [a.data for a in first] == [a.data for a in second]
    assert s2["requests"] == 0 and s2["cache_hits"] == 3 and s2["malformed_replies"] == 1
    assert s2["tokens"]["prompt"] == 0 and s2["tokens"]["cached_prompt"] == 150


def test_another_model_name_is_another_cache_entry(tmp_path: Path) -> None:
    with FakeServer(lambda b, n: Reply(completion(GOOD))) as srv:
        for model in ("a", "b", "a"):
            with LLMClient(settings(srv, tmp_path, model=model)) as client:
                ask(client)
    assert srv.count == 2


def test_concurrency_limit_and_order() -> None:
    def slow_echo(body: dict, n: int) -> Reply:
        i = int(body["messages"][1]["content"].split()[-1])
        return Reply(completion(json.dumps({"score": i, "reason": "r"})), delay=0.15)

    with FakeServer(slow_echo) as srv:
        with LLMClient(settings(srv, concurrency=3)) as client:
            answers = client.map(lambda i: ask(client, f"item {i}"), range(1, 10))
    assert [a.data["score"] for a in answers] == list(range(1, 10))
    assert srv.max_in_flight == 3


def test_semaphore_holds_even_with_more_caller_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with FakeServer(lambda b, n: Reply(completion(GOOD), delay=0.1)) as srv:
        with LLMClient(settings(srv, concurrency=2)) as client:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda i: ask(client, f"u {i}"), range(8)))
    assert srv.max_in_flight == 2


def test_api_key_comes_from_the_named_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeServer(lambda b, n: Reply(completion(GOOD))) as srv:
        with pytest.raises(ValueError, match="MMGEN_TEST_KEY"):
            LLMClient(settings(srv, api_key_env="MMGEN_TEST_KEY"))
        monkeypatch.setenv("MMGEN_TEST_KEY", "sk-secret-123")
        with LLMClient(settings(srv, api_key_env="MMGEN_TEST_KEY")) as client:
            ask(client)
        with LLMClient(settings(srv)) as client:
            ask(client, "x")
    assert srv.headers[0]["authorization"] == "Bearer sk-secret-123"
    assert srv.headers[1]["authorization"] == "Bearer sk-no-key-needed"


@pytest.mark.parametrize("kw, message", [
    ({"base_url": ""}, "--llm-base-url"), ({"model": ""}, "--llm-model"),
    ({"response_format": "xml"}, "response_format"), ({"concurrency": 0}, "concurrency"),
])
def test_settings_are_checked(kw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LLMSettings(**{"base_url": "http://x/v1", "model": "m", **kw})
