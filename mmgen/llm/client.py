"""One client for every OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama...).

:class:`LLMClient.ask` sends a chat request that must come back as one JSON object matching a JSON
Schema, and returns an :class:`Answer` (the object, or why there is none). What it takes care of:

* **Cache**: a :class:`~mmgen.llm.cache.RequestCache` hit returns without a request.
* **Concurrency**: at most ``concurrency`` requests in flight (a semaphore, whatever the number of
  calling threads); :meth:`LLMClient.map` runs a function over items on that many threads, results in
  input order.
* **Timeouts and retries**: each request has ``timeout`` seconds *in all*: connecting, sending and
  reading the whole reply (a server trickling a byte every few seconds cannot stall it); timeouts, connection errors, 408,
  409, 429 and 5xx answers are retried ``retries`` times with exponential backoff (``backoff`` doubled
  each time, at most ``max_backoff``; a ``Retry-After`` header is honoured up to that bound). Other
  4xx answers are not retried; 401/403 stop the run (:class:`LLMAuthError`). After
  ``max_consecutive_failures`` requests in a row failed for good, the server is taken to be down and
  every call raises :class:`LLMUnavailableError` (the stage stops; answered requests stay cached).
  A request that failed for good is never a verdict on the record: :attr:`Answer.server_failed` tells
  stages to keep such records pending and end with :class:`LLMIncompleteError` (exit status 1).
* **Structured output**: ``response_format`` ``auto`` asks for ``json_schema`` and steps down to
  llama.cpp's ``json_object`` + ``schema``, then plain ``json_object``, then none, when the server
  rejects the format (an error naming ``response_format``); the step-down is remembered. The prompt
  always describes the JSON too, so servers without structured output work.
* **Malformed replies**: parsed strictly (:mod:`mmgen.llm.parsing`); a bad reply is counted and the
  request is retried ``parse_retries`` times with the reply and a one-line correction appended.
* **Accounting**: requests, cache hits, retries, malformed replies, failures, prompt and completion
  tokens (new and cached) and the cost at ``price_in`` / ``price_out`` USD per million tokens.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

from .cache import CachedReply, RequestCache, request_key
from .parsing import MalformedOutput, parse_reply

log = logging.getLogger("mmgen.llm")

T = TypeVar("T")
R = TypeVar("R")

RESPONSE_FORMATS = ("auto", "json_schema", "json_object_schema", "json_object", "none")
_LADDER = ("json_schema", "json_object_schema", "json_object", "none")
DUMMY_KEY = "sk-no-key-needed"
"""What local servers get when no ``api_key_env`` is named (the ``openai`` client insists on a key)."""


class LLMError(RuntimeError):
    """Base class of the client's fatal errors."""


class LLMUnavailableError(LLMError, ConnectionError):
    """The server failed too many requests in a row: the stage stops (answered requests stay cached)."""


class LLMIncompleteError(LLMError, ConnectionError):
    """Some records were left pending because requests to the server failed; a rerun finishes them."""


class LLMAuthError(LLMError, PermissionError):
    """The server refused the credentials (401/403)."""


class RequestFailed(Exception):
    """One request failed for good (out of retries: the server's fault); the message says why."""


class RequestRejected(RequestFailed):
    """The server refused this particular request (a 4xx other than 401/403/408/409/429, e.g. the prompt is
    too long): about the record, not the server, so stages drop the record with this reason."""


@dataclass(frozen=True)
class LLMSettings:
    """Where the model is and how to talk to it. ``identity()`` (no key, no timing knobs) goes into
    stage manifests and record provenance."""

    base_url: str
    model: str
    api_key_env: str | None = None
    temperature: float = 0.0
    max_tokens: int = 512
    seed: int = 0
    timeout: float = 60.0
    retries: int = 3
    parse_retries: int = 2
    backoff: float = 1.0
    max_backoff: float = 30.0
    concurrency: int = 4
    response_format: str = "auto"
    cache_path: str | None = None
    """sqlite file of the request cache; None disables caching."""
    price_in: float = 0.0
    """USD per million prompt tokens (for the cost in the run summary)."""
    price_out: float = 0.0
    """USD per million completion tokens."""
    max_consecutive_failures: int = 8

    def __post_init__(self) -> None:
        if not self.base_url:
            raise ValueError("--llm-base-url is required (an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1)")
        if not self.model:
            raise ValueError("--llm-model is required (the model name the server serves)")
        if self.response_format not in RESPONSE_FORMATS:
            raise ValueError(f"response_format must be one of {', '.join(RESPONSE_FORMATS)}, "
                             f"got {self.response_format!r}")
        if self.concurrency < 1 or self.max_tokens < 1 or self.timeout <= 0 or self.retries < 0 \
                or self.parse_retries < 0:
            raise ValueError("concurrency and max_tokens must be >= 1, timeout > 0, retries >= 0")

    def api_key(self) -> str:
        if not self.api_key_env:
            return DUMMY_KEY
        value = os.environ.get(self.api_key_env, "")
        if not value:
            raise ValueError(f"--llm-api-key-env names {self.api_key_env}, but that environment variable is not set")
        return value

    def identity(self) -> dict[str, Any]:
        """What shapes the replies (for manifests and the resume check): model, sampling, output format.
        Not the server address: the same model behind another address gives the same replies."""
        return {"model": self.model, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "seed": self.seed, "response_format": self.response_format}


@dataclass
class Usage:
    """Counters of one client (thread-safe through :meth:`add`)."""

    calls: int = 0
    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    malformed: int = 0
    truncated: int = 0
    request_failures: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    usage_missing: int = 0
    errors: Counter = field(default_factory=Counter)
    format_fallbacks: list[str] = field(default_factory=list)

    def cost(self, price_in: float, price_out: float, cached: bool = False) -> float:
        p, c = ((self.cached_prompt_tokens, self.cached_completion_tokens) if cached
                else (self.prompt_tokens, self.completion_tokens))
        return round((p * price_in + c * price_out) / 1e6, 6)

    def to_dict(self, price_in: float = 0.0, price_out: float = 0.0) -> dict[str, Any]:
        return {"calls": self.calls, "requests": self.requests, "cache_hits": self.cache_hits,
                "retries": self.retries, "malformed_replies": self.malformed, "truncated_replies": self.truncated,
                "request_failures": self.request_failures, "failed_calls": self.failed_calls,
                "tokens": {"prompt": self.prompt_tokens, "completion": self.completion_tokens,
                           "cached_prompt": self.cached_prompt_tokens,
                           "cached_completion": self.cached_completion_tokens,
                           "replies_without_usage": self.usage_missing},
                "cost_usd": self.cost(price_in, price_out), "saved_by_cache_usd": self.cost(price_in, price_out, True),
                "errors": dict(sorted(self.errors.items())), "format_fallbacks": list(self.format_fallbacks)}


@dataclass(frozen=True)
class Answer:
    """The outcome of one :meth:`LLMClient.ask`: ``data`` or ``error`` (``kind`` ``malformed``,
    ``request_rejected`` or ``request_failed``), with the number of replies it took."""

    data: dict[str, Any] | None
    error: str | None = None
    kind: str | None = None
    attempts: int = 1
    raw: str = ""

    @property
    def ok(self) -> bool:
        return self.data is not None

    @property
    def server_failed(self) -> bool:
        """The request failed (server down, timeouts, 5xx): says nothing about the record."""
        return self.kind == "request_failed"


def _deadline_http_client(total: float) -> Any:
    """An ``httpx.Client`` whose every request must finish, reply body included, within ``total`` seconds.

    httpx's own timeouts bound each read, so a server sending one byte every second never trips them;
    this transport checks a deadline before each chunk of the body is handed on."""
    import httpx

    class DeadlineStream(httpx.SyncByteStream):
        def __init__(self, inner: Any, deadline: float, request: Any) -> None:
            self.inner, self.deadline, self.request = inner, deadline, request

        def __iter__(self):  # type: ignore[no-untyped-def]
            for chunk in self.inner:
                if time.monotonic() > self.deadline:
                    raise httpx.ReadTimeout(f"the whole request took more than {total:g}s", request=self.request)
                yield chunk

        def close(self) -> None:
            self.inner.close()

    class DeadlineTransport(httpx.HTTPTransport):
        def handle_request(self, request: Any) -> Any:
            deadline = time.monotonic() + total
            response = super().handle_request(request)
            response.stream = DeadlineStream(response.stream, deadline, request)
            return response

    per_step = httpx.Timeout(total)
    return httpx.Client(transport=DeadlineTransport(), timeout=per_step)


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        return float(headers.get("retry-after"))
    except (TypeError, ValueError):
        return None


class LLMClient:
    """See the module docstring. Use as a context manager (closes the cache and HTTP pool)."""

    def __init__(self, settings: LLMSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        from ..extras import require

        openai = require("llm", "openai", "the LLM stages (evolve, curate --judge)")

        self.settings = settings
        self._openai = openai
        self._http = _deadline_http_client(settings.timeout)
        self._client = openai.OpenAI(base_url=settings.base_url, api_key=settings.api_key(),
                                     timeout=settings.timeout, max_retries=0, http_client=self._http)
        self.cache = RequestCache(settings.cache_path) if settings.cache_path else None
        self.usage = Usage()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(settings.concurrency)
        start = "json_schema" if settings.response_format == "auto" else settings.response_format
        self._format = start
        self._consecutive_failures = 0
        self._down: str | None = None
        self._sleep = sleep

    # -- public ----------------------------------------------------------------------------
    def __enter__(self) -> "LLMClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()
        self._http.close()
        if self.cache is not None:
            self.cache.close()

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``fn`` over ``items`` on ``concurrency`` threads; results in input order. A fatal client
        error cancels what has not started and is raised."""
        items = list(items)
        if self.settings.concurrency == 1 or len(items) <= 1:
            return [fn(x) for x in items]
        pool = ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="mmgen-llm")
        try:
            futures = [pool.submit(fn, x) for x in items]
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def ask(self, messages: Sequence[Mapping[str, str]], schema: Mapping[str, Any], name: str,
            check: Callable[[dict[str, Any]], str | None] | None = None) -> Answer:
        """One JSON object matching ``schema`` (and ``check``) for ``messages``; never raises for a
        bad reply or a failed request (see :class:`Answer`), only for :class:`LLMError`."""
        self._add(calls=1)
        conversation = [dict(m) for m in messages]
        last = ""
        problem = ""
        attempts = self.settings.parse_retries + 1
        for attempt in range(attempts):
            params = {"temperature": self.settings.temperature, "max_tokens": self.settings.max_tokens,
                      "seed": self.settings.seed + attempt, "schema_name": name, "schema": schema}
            try:
                reply = self._complete(conversation, params)
            except RequestFailed as exc:
                self._add(failed_calls=1)
                kind = "request_rejected" if isinstance(exc, RequestRejected) else "request_failed"
                return Answer(None, str(exc), kind, attempt + 1, last)
            last = reply.text
            try:
                return Answer(parse_reply(reply.text, schema, check), attempts=attempt + 1, raw=reply.text)
            except MalformedOutput as exc:
                problem = str(exc)
                self._add(malformed=1)
                log.debug("malformed %s reply (attempt %d/%d): %s", name, attempt + 1, attempts, problem)
                conversation = conversation + [
                    {"role": "assistant", "content": reply.text},
                    {"role": "user", "content": f"That reply was not valid ({problem}). Reply again with only "
                                                f"the JSON object, exactly as described."}]
        self._add(failed_calls=1)
        return Answer(None, f"malformed reply after {attempts} attempt(s): {problem}", "malformed", attempts, last)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            out = self.usage.to_dict(self.settings.price_in, self.settings.price_out)
        out["response_format"] = self._format
        return out

    # -- internals ---------------------------------------------------------------------------
    def _add(self, **counts: int) -> None:
        with self._lock:
            for k, v in counts.items():
                setattr(self.usage, k, getattr(self.usage, k) + v)

    def _response_format(self, mode: str, name: str, schema: Mapping[str, Any]) -> dict[str, Any] | None:
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": name, "schema": dict(schema), "strict": False}}
        if mode == "json_object_schema":
            return {"type": "json_object", "schema": dict(schema)}
        if mode == "json_object":
            return {"type": "json_object"}
        return None

    def _complete(self, messages: list[dict[str, str]], params: dict[str, Any]) -> CachedReply:
        key = request_key(self.settings.model, messages, params)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self._add(cache_hits=1, cached_prompt_tokens=hit.prompt_tokens,
                          cached_completion_tokens=hit.completion_tokens)
                return hit
        reply = self._request(messages, params)
        if self.cache is not None:
            self.cache.put(key, self.settings.model, reply)
        return reply

    def _request(self, messages: list[dict[str, str]], params: dict[str, Any]) -> CachedReply:
        openai = self._openai
        s = self.settings
        attempt = 0
        while True:
            if self._down:
                raise LLMUnavailableError(self._down)
            mode = self._format
            kwargs: dict[str, Any] = {"model": s.model, "messages": messages, "temperature": params["temperature"],
                                      "max_tokens": params["max_tokens"], "seed": params["seed"]}
            fmt = self._response_format(mode, params["schema_name"], params["schema"])
            if fmt is not None:
                kwargs["response_format"] = fmt
            error: Exception | None = None
            self._add(requests=1)
            try:
                with self._slots:
                    response = self._client.chat.completions.create(**kwargs)
                reply = self._reply(response)
            except openai.APIStatusError as exc:
                if exc.status_code in (401, 403):
                    raise LLMAuthError(f"the server at {s.base_url} refused the credentials "
                                       f"({exc.status_code}): {exc.message}") from None
                if self._format_rejected(exc, mode):
                    continue
                if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
                    error = exc
                else:
                    self._failure(f"HTTP {exc.status_code}")
                    raise RequestRejected(f"request rejected (HTTP {exc.status_code}): "
                                        f"{str(exc.message).splitlines()[0][:200]}") from None
            except (openai.APIConnectionError, openai.APIResponseValidationError, RequestFailed,
                    json.JSONDecodeError) as exc:  # a body that is not a chat completion: retry
                error = exc
            else:
                with self._lock:
                    self._consecutive_failures = 0
                return reply
            # a retryable error
            label = type(error).__name__ if not isinstance(error, openai.APIStatusError) \
                else f"HTTP {error.status_code}"
            if attempt >= s.retries:
                self._failure(label)
                raise RequestFailed(f"request failed after {attempt + 1} attempt(s): {label}: "
                                    f"{str(error).splitlines()[0][:200] if str(error) else ''}")
            delay = min(s.backoff * (2 ** attempt), s.max_backoff)
            hint = _retry_after(error)
            if hint is not None:
                delay = min(max(delay, hint), s.max_backoff)
            self._add(retries=1)
            with self._lock:
                self.usage.errors[label] += 1
            log.debug("retrying after %s (attempt %d/%d, %.2fs)", label, attempt + 1, s.retries + 1, delay)
            self._sleep(delay)
            attempt += 1

    def _reply(self, response: Any) -> CachedReply:
        """The text and usage of a chat completion (a body that is not one is a retryable failure)."""
        choices = getattr(response, "choices", None)
        if not choices:
            raise RequestFailed("the server's response has no choices (not a chat completion)")
        choice = choices[0]
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None) or ""
        finish = getattr(choice, "finish_reason", None)
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        self._add(prompt_tokens=prompt, completion_tokens=completion, usage_missing=int(usage is None),
                  truncated=int(finish == "length"))
        return CachedReply(text, prompt, completion, finish)

    def _format_rejected(self, exc: Any, mode: str) -> bool:
        """Step down the response-format ladder when the server rejects the one sent (auto mode only)."""
        if self.settings.response_format != "auto" or mode == "none":
            return False
        text = str(getattr(exc, "message", "")) + str(getattr(exc, "body", ""))
        if exc.status_code not in (400, 415, 422, 500, 501) or not any(
                w in text for w in ("response_format", "json_schema", "schema")):
            return False
        with self._lock:
            if self._format == mode:
                self._format = _LADDER[_LADDER.index(mode) + 1]
                self.usage.format_fallbacks.append(f"{mode} -> {self._format}")
                log.info("the server does not take response_format %s; using %s", mode, self._format)
        return True

    def _failure(self, label: str) -> None:
        with self._lock:
            self.usage.request_failures += 1
            self.usage.errors[label] += 1
            self._consecutive_failures += 1
            if self._consecutive_failures >= self.settings.max_consecutive_failures and not self._down:
                self._down = (f"the LLM server at {self.settings.base_url} failed "
                              f"{self._consecutive_failures} requests in a row (last: {label}); "
                              "answered requests are cached, rerun when it is back")


def default_cache_path() -> Path:
    """``<mmgen cache root>/llm/requests.sqlite`` (``$MMGEN_CACHE_DIR``, else ``~/.cache/mmgen``)."""
    from scene_graphs.perception.weights import cache_root

    return cache_root() / "llm" / "requests.sqlite"
