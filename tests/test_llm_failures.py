"""A failing server is never a quality verdict: records stay pending, the stage exits non-zero, a rerun
finishes them; and ``--llm-timeout`` bounds a whole request, however slowly the server trickles."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mmgen.cli import main
from mmgen.llm.client import LLMClient, LLMSettings
from scene_graphs.io import read_jsonl
from tests.llm_server import FakeServer, Reply, scripted_model

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "scene_graphs"


@pytest.fixture(scope="module")
def qa_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A handful of records (fewer than the client's 8-failures-in-a-row cut-off)."""
    from mmgen.stages.generate import generate
    from programs.base import ProgramConfig

    out = tmp_path_factory.mktemp("qa")
    generate(ASSETS, out, ProgramConfig(seed=0, max_per_image=1), ["single.count_objects"])
    n = sum(1 for _ in read_jsonl(out / "part-00000.jsonl"))
    assert 0 < n < 8, n
    return out


def dead(body: dict, n: int) -> Reply:
    return Reply({"error": {"message": "overloaded"}}, 503)


def llm_args(server: FakeServer, cache: Path) -> list[str]:
    return ["--llm-base-url", server.url, "--llm-model", "fake", "--llm-cache", str(cache), "--llm-retries", "0",
            "--llm-concurrency", "1"]


def records(path: Path) -> list[dict[str, Any]]:
    return list(read_jsonl(path)) if path.exists() else []


def test_curate_judge_with_a_failing_server_drops_nothing_and_exits_non_zero(qa_dir: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "cur", tmp_path / "c.sqlite"
    args = ["curate", str(qa_dir), "-o", str(out), "--judge", "--scene-graphs", str(ASSETS), "--max-answer-share", "1"]
    with FakeServer(dead) as srv:
        result = CliRunner().invoke(main, args + llm_args(srv, cache))
    assert result.exit_code == 1, result.output
    assert "could not be judged" in result.output and "rerun" in result.output
    assert not records(out / "dropped.jsonl") and not (out / "part-00000.jsonl").exists()
    with FakeServer(scripted_model()) as srv:  # the server is back: the rerun finishes every record
        result = CliRunner().invoke(main, args + llm_args(srv, cache))
        assert result.exit_code == 0, result.output
    n_in = len(records(qa_dir / "part-00000.jsonl"))
    kept, dropped = records(out / "part-00000.jsonl"), records(out / "dropped.jsonl")
    assert len(kept) + len(dropped) == n_in and all(r["curation"]["judge"]["score"] == 7 for r in kept)
    assert not any("no valid score" in d["reason"] for d in dropped)


def test_evolve_with_a_failing_server_keeps_the_shard_pending(qa_dir: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "evo", tmp_path / "c.sqlite"
    args = ["evolve", str(qa_dir), "-o", str(out), "--scene-graphs", str(ASSETS)]
    with FakeServer(dead) as srv:
        result = CliRunner().invoke(main, args + llm_args(srv, cache))
    assert result.exit_code == 1, result.output
    assert "pending" in result.output and "rerun" in result.output
    assert not (out / "part-00000.jsonl").exists() and not records(out / "dropped.jsonl")
    with FakeServer(scripted_model()) as srv:
        result = CliRunner().invoke(main, args + llm_args(srv, cache))
        assert result.exit_code == 0, result.output
    assert records(out / "part-00000.jsonl")


class TricklingServer:
    """Sends a valid HTTP status line and headers, then one byte of the body every ``gap`` seconds."""

    def __init__(self, gap: float = 0.3) -> None:
        self.gap = gap
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n")
                while not self.stop.is_set():
                    conn.sendall(b" ")
                    time.sleep(self.gap)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def test_llm_timeout_bounds_a_whole_request_against_a_trickling_server() -> None:
    server = TricklingServer(gap=0.3)  # each read succeeds well within any per-read timeout
    try:
        settings = LLMSettings(base_url=server.url, model="fake", timeout=1.5, retries=0, parse_retries=0)
        with LLMClient(settings) as client:
            start = time.monotonic()
            answer = client.ask([{"role": "user", "content": "hi"}], {"type": "object"}, "x")
            elapsed = time.monotonic() - start
    finally:
        server.close()
    assert not answer.ok and answer.server_failed, answer
    assert elapsed < 4.0, f"a 1.5 s timeout let the request run {elapsed:.1f} s"
