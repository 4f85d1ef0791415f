"""Test helpers: a real OpenAI-compatible server (llama.cpp with the SmolLM2 GGUF) and tiny fake servers.

* :func:`llama_server_url` starts ``python -m llama_cpp.server`` once per test session on a free
  127.0.0.1 port with the GGUF found by the weight resolver, waits for ``/v1/models`` and stops it at
  exit; it skips with the reason when the GGUF or ``llama_cpp`` is missing (``tests/conftest.py``
  turns that skip into a failure under ``CI=true``). When the server process dies (a crash in
  llama.cpp's CPU kernels is a signal such as SIGSEGV or SIGILL), :func:`server_death` says how, with
  the tail of its log; ``tests/conftest.py`` puts that first in the report of any test that used the
  server and failed.
* :class:`FakeServer` is an ``http.server`` on 127.0.0.1 whose replies come from a Python function:
  malformed JSON, sleeping past the timeout, 500 then success... It records every request and the
  largest number in flight at once.
* :func:`scripted_model` is a fake "model" for the stage tests: it reads the record out of the
  prompt's data block and answers the rewrite, elimination and judge requests with functions.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest

LLAMA_MODEL_NAME = "smollm2-135m-instruct"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------------- real server
_llama: dict[str, Any] = {}


def gguf_path() -> Path:
    """The SmolLM2 GGUF through the project's weight resolver (skips the test when absent)."""
    from scene_graphs.perception.weights import WeightsError, resolve

    try:
        found = resolve(LLAMA_MODEL_NAME, offline=True)
    except WeightsError as exc:
        pytest.skip(f"SmolLM2 GGUF not available: {str(exc)[:200]}")
    assert found.path is not None
    return found.path


def describe_exit(returncode: int, log_path: str | Path | None, tail_chars: int = 2000) -> str:
    """How a process ended (``killed by SIGSEGV (signal 11)`` or ``exited with status 1``) and its log tail."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "an unknown signal"
        how = f"killed by {name} (signal {-returncode})"
    else:
        how = f"exited with status {returncode}"
    tail = ""
    if log_path is not None and Path(log_path).exists():
        tail = Path(log_path).read_text(errors="replace")[-tail_chars:]
    return f"{how}; last lines of its log ({log_path}):\n{tail}"


def server_death() -> str | None:
    """Why the session's llama.cpp server is gone, or None while it runs (or was never started)."""
    proc = _llama.get("proc")
    if proc is None or proc.poll() is None:
        return _llama.get("death")
    death = f"the llama.cpp server process died: {describe_exit(proc.returncode, _llama.get('log_path'))}"
    _llama["death"] = death
    return death


def _stop_llama() -> None:
    proc = _llama.pop("proc", None)
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    log = _llama.pop("log", None)
    if log is not None:
        log.close()


def llama_server_url(n_ctx: int = 2048, startup_timeout: float = 90.0) -> str:
    """Base URL (``http://127.0.0.1:PORT/v1``) of the session's llama.cpp server, started on first use."""
    if "url" in _llama:
        death = server_death()
        if death is None:
            return str(_llama["url"])
        pytest.fail(f"{death}\n(it died earlier in this session)", pytrace=False)
    missing = [m for m in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")
               if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"llama-cpp-python[server] is not installed (missing {', '.join(missing)})")
    model = gguf_path()
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port",
           str(port), "--n_ctx", str(n_ctx), "--n_threads", "1", "--seed", "0",
           "--verbose", "False"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _llama.update(proc=proc, log=log, log_path=log.name)
    atexit.register(_stop_llama)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            message = f"the llama.cpp server did not start: {describe_exit(proc.returncode, log.name)}"
            _stop_llama()
            pytest.fail(message, pytrace=False)
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as r:
                if r.status == 200:
                    _llama["url"] = url
                    return url
        except OSError:
            time.sleep(0.2)
    _stop_llama()
    pytest.fail(f"llama.cpp server did not answer /v1/models within {startup_timeout:.0f}s (log {log.name})")


@pytest.fixture(scope="session")
def llama_server() -> Any:
    """Session fixture: the base URL of the real local server; stopped when the session ends."""
    yield llama_server_url()
    _stop_llama()


# --------------------------------------------------------------------------------------- fake servers
@dataclass
class Reply:
    """What a fake server sends: a status, a JSON body (or raw bytes), after ``delay`` seconds."""

    body: Any
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def completion(content: str, prompt_tokens: int = 11, completion_tokens: int = 7, finish: str = "stop") -> dict:
    """An OpenAI chat-completion body."""
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


class FakeServer:
    """An OpenAI-compatible fake on 127.0.0.1; ``behaviour(request_json, n)`` gives the n-th reply (0-based)."""

    def __init__(self, behaviour: Callable[[dict, int], Reply]) -> None:
        self.behaviour = behaviour
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # /v1/models
                self._send(Reply({"object": "list", "data": [{"id": "fake", "object": "model"}]}))

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    n = len(server.requests)
                    server.requests.append(body)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = server.behaviour(body, n)
                    if reply.delay:
                        time.sleep(reply.delay)
                    self._send(reply)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, reply: Reply) -> None:
                data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    def __enter__(self) -> "FakeServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def count(self) -> int:
        return len(self.requests)


# --------------------------------------------------------------------------------------- scripted model
_BLOCK = re.compile(r"<(scene_graph|record)>\n(.*?)\n</\1>", re.DOTALL)


def blocks(messages: list[dict]) -> dict[str, Any]:
    """The data blocks of a request's user message, decoded."""
    user = next(m["content"] for m in messages if m["role"] == "user")
    return {tag: json.loads(text) for tag, text in _BLOCK.findall(user)}


def request_kind(body: dict) -> str:
    """``evolved_record``, ``elimination`` or ``judgement`` (from the schema name or the system prompt)."""
    fmt = body.get("response_format") or {}
    name = (fmt.get("json_schema") or {}).get("name")
    if name:
        return str(name)
    system = body["messages"][0]["content"]
    if system.startswith("You check"):
        return "elimination"
    if system.startswith("You grade"):
        return "judgement"
    return "evolved_record"


def scripted_model(rewrite: Callable[[dict, dict], dict] | None = None,
                   eliminate: Callable[[dict, dict], dict] | None = None,
                   judge: Callable[[dict, dict], dict] | None = None) -> Callable[[dict, int], Reply]:
    """A behaviour for :class:`FakeServer` that answers like a cooperative model. Each function gets
    (the decoded data blocks, the request body) and returns the JSON object to reply with."""

    def default_rewrite(data: dict, body: dict) -> dict:
        rec = data["record"]
        return {"question": "Looking closely at the picture, " + rec["question"][0].lower() + rec["question"][1:],
                "answer": rec["answer"], "steps": ["Find the object.", "Read its property."]}

    def behaviour(body: dict, n: int) -> Reply:
        kind = request_kind(body)
        data = blocks(body["messages"])
        if kind == "elimination":
            fn = eliminate or (lambda d, b: {"improved": True, "needs_image": True, "reason": "more detail"})
        elif kind == "judgement":
            fn = judge or (lambda d, b: {"score": 7, "reason": "fine"})
        else:
            fn = rewrite or default_rewrite
        return Reply(completion(json.dumps(fn(data, body))))

    return behaviour
