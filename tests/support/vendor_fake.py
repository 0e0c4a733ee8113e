"""A vendor's HTTP API over a real socket, for connector contract tests.

It records every request, answers from a script when one is queued (status, body, headers, delay)
and echoes otherwise, and runs an OAuth2 client-credentials token endpoint at ``/oauth/token``: it
issues ``tok-N`` tokens and, while ``oauth`` is on, answers 401 to any other path whose bearer token
it did not issue or has revoked (``revoke_tokens``, as when a token expires early).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Scripted:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None


class VendorFake:
    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.script: list[Scripted] = []
        self.lock = threading.Lock()
        self.url = ""
        self.oauth = False
        self.client_id = "andon-client"
        self.client_secret = "client-secret-value-42"
        self.tokens: set[str] = set()
        self.issued = 0
        # Every unscripted answer waits this long; the most requests in flight at once is kept.
        self.delay = 0.0
        self.in_flight = 0
        self.most_in_flight = 0

    def queue(self, *answers: Scripted) -> None:
        with self.lock:
            self.script.extend(answers)

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def api_requests(self) -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if r.path != "/oauth/token"]

    def _token(self, seen: Seen) -> Scripted:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        form = parse_qs(seen.body.decode())
        if seen.headers.get("authorization") != f"Basic {expected}" or form.get("grant_type") != ["client_credentials"]:
            return Scripted(401, {"error": "invalid_client"})
        self.issued += 1
        token = f"tok-{self.issued}"
        self.tokens.add(token)
        return Scripted(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def answer(self, seen: Seen) -> Scripted:
        with self.lock:
            self.requests.append(seen)
            if seen.path == "/oauth/token":
                return self._token(seen)
            if self.oauth and seen.headers.get("authorization", "").removeprefix("Bearer ") not in self.tokens:
                return Scripted(401, {"error": "invalid_token"})
            if self.script:
                return self.script.pop(0)
        echo = seen.json() if seen.body.startswith((b"{", b"[")) else None
        return Scripted(200, {"ok": True, "echo": echo}, delay=self.delay)


@contextmanager
def vendor_fake() -> Iterator[VendorFake]:
    fake = VendorFake()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with fake.lock:
                fake.in_flight += 1
                fake.most_in_flight = max(fake.most_in_flight, fake.in_flight)
            try:
                scripted = fake.answer(seen)
                if scripted.delay:
                    time.sleep(scripted.delay)
            finally:
                with fake.lock:
                    fake.in_flight -= 1
            data = scripted.raw if scripted.raw is not None else json.dumps(scripted.body).encode()
            send_scripted(self, scripted, data, "application/json")

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        fake.url = url
        yield fake


def send_scripted(handler: BaseHTTPRequestHandler, scripted: Scripted, data: bytes, content_type: str) -> None:
    """Writes a scripted answer; a client that already gave up (a timeout test) is not an error."""
    try:
        handler.send_response(scripted.status)
        handler.send_header("content-type", content_type)
        for name, value in scripted.headers.items():
            handler.send_header(name, value)
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server on a free local port for the test's duration; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
