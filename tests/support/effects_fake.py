"""A remote system that applies effects, as real APIs do with idempotency keys: the first request
with a key applies, a repeat returns the first answer and is counted as absorbed. Served over a real
socket (a thread with ``http.server``), so the engine's HTTP client is exercised for real.

``fail_first`` makes the first N requests of every key answer 503 (a flaky remote), and ``down``
refuses everything with 503.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class EffectsFake:
    def __init__(self) -> None:
        self.applied: dict[str, Any] = {}
        self.absorbed: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.fail_first = 0
        self.down = False
        # Paths that answer 404 (a remote that refuses the request: not worth retrying).
        self.missing: set[str] = set()
        self.lock = threading.Lock()
        self.url = ""

    def handle(self, key: str | None, body: Any, path: str = "/") -> tuple[int, Any]:
        with self.lock:
            if key is None:
                return 400, {"error": "Idempotency-Key required"}
            if path in self.missing:
                return 404, {"error": f"no {path} here"}
            self.attempts[key] += 1
            if self.down or self.attempts[key] <= self.fail_first:
                return 503, {"error": "try later"}
            if key in self.applied:
                self.absorbed[key] += 1
                return 200, self.applied[key]
            answer = {"applied": len(self.applied) + 1, "echo": body}
            self.applied[key] = answer
            return 201, answer

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {"applied": len(self.applied), "absorbed": sum(self.absorbed.values())}


@contextmanager
def effects_fake() -> Iterator[EffectsFake]:
    fake = EffectsFake()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            status, answer = fake.handle(
                self.headers.get("idempotency-key"), json.loads(raw) if raw else None, self.path
            )
            self._reply(status, answer)

        def do_GET(self) -> None:
            self._reply(200, fake.stats())

        def _reply(self, status: int, answer: Any) -> None:
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
