"""A persistent request cache: sqlite, keyed by model + prompt + parameters, so a rerun costs nothing.

The key is the sha256 of the canonical JSON of ``{"model", "messages", "params"}`` where ``params``
holds everything else that shapes the reply (temperature, max tokens, seed, the JSON schema asked
for). The server address and the API key are not part of it: the same model name answering the
same request is assumed to give the same reply (pass another cache file to keep servers apart).

Every reply the server returned is stored, malformed ones included: a retry after a malformed reply
is a different request (it carries the correction), so a rerun replays the whole exchange from the
cache without one new request. Failed requests (timeouts, errors) are never stored.
One connection shared by the client's threads, guarded by a lock; WAL mode lets several processes
read while one writes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

SCHEMA_VERSION = 1


def request_key(model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of the request (key order and whitespace do not matter)."""
    payload = json.dumps({"v": SCHEMA_VERSION, "model": model, "messages": list(messages), "params": dict(params)},
                         sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedReply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None


class RequestCache:
    """``get(key)`` / ``put(key, ...)`` over one sqlite file (created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30.0)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                "text TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, "
                "finish_reason TEXT, created REAL NOT NULL)")
            self._db.commit()

    def get(self, key: str) -> CachedReply | None:
        with self._lock:
            row = self._db.execute("SELECT text, prompt_tokens, completion_tokens, finish_reason FROM replies "
                                   "WHERE key = ?", (key,)).fetchone()
        return None if row is None else CachedReply(row[0], int(row[1]), int(row[2]), row[3])

    def put(self, key: str, model: str, reply: CachedReply) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (key, model, reply.text, reply.prompt_tokens, reply.completion_tokens,
                              reply.finish_reason, time.time()))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
