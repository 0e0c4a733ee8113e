"""What every contract fake shares: an HTTP server on 127.0.0.1, routes, the vendor's authentication,
replay of an answer for a repeated ``Idempotency-Key`` (where the vendor's API does that) and a script
of failures for the next requests (a delay past the client's timeout, 429 with ``Retry-After``, 5xx,
a malformed body). OAuth2 client-credentials tokens are issued as ``tok-N``; ``expire_tokens`` makes
the ones issued so far be refused with 401, as when a token expires before the client expected.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs, urlsplit

from tests.support.vendor_fake import Scripted, Seen, send_scripted, serving

Auth = Literal["api_key", "basic", "bearer", "oauth2"]
Route = Callable[[Seen, dict[str, str]], Scripted]
Fake = TypeVar("Fake", bound="ContractFake")


def query_of(seen: Seen) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(urlsplit(seen.path).query).items()}


class ContractFake:
    token_path = "/oauth/token"
    api_key_header = "x-api-key"
    # Whether the vendor replays a POST's first answer for a repeated Idempotency-Key.
    idempotent = True

    def __init__(self, auth: Auth = "oauth2") -> None:
        self.auth = auth
        self.url = ""
        self.lock = threading.Lock()
        self.requests: list[Seen] = []
        self.failures: list[Scripted] = []
        self.routes: list[tuple[str, re.Pattern[str], Route]] = []
        self.replays: dict[str, Scripted] = {}
        self.api_key = "vendor-api-key-7Hq2"
        self.username, self.password = "andon.integration", "vendor-password-3Kd9"
        self.bearer = "vendor-bearer-Zp81"
        self.client_id, self.client_secret = "andon-client", "vendor-client-secret-Lm42"
        self.tokens: set[str] = set()
        self.issued = 0

    # -- scripting ---------------------------------------------------------------------------------
    def fail_next(self, *answers: Scripted) -> None:
        """The next API requests (after authentication) get these answers instead of the vendor's own."""
        with self.lock:
            self.failures.extend(answers)

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def api_requests(self) -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if not r.path.startswith(self.token_path)]

    def route(self, method: str, pattern: str, handler: Route) -> None:
        self.routes.append((method, re.compile(pattern + r"$"), handler))

    # -- the vendor's ways -------------------------------------------------------------------------
    def error(self, status: int, message: str) -> Scripted:
        """An error in the vendor's documented shape."""
        return Scripted(status, {"error": {"message": message}})

    def credentials(self) -> dict[str, str]:
        """A connection's secrets and auth settings that this fake accepts."""
        if self.auth == "api_key":
            return {"api_key": self.api_key}
        if self.auth == "basic":
            return {"password": self.password}
        if self.auth == "bearer":
            return {"token": self.bearer}
        return {"client_secret": self.client_secret}

    def config(self, **more: Any) -> dict[str, Any]:
        auth = {"oauth2": "oauth2_client_credentials"}.get(self.auth, self.auth)
        config: dict[str, Any] = {"base_url": self.url, "auth": auth, **more}
        if self.auth == "api_key":
            config["api_key_header"] = self.api_key_header
        if self.auth == "basic":
            config["username"] = self.username
        if self.auth == "oauth2":
            config.update(token_url=self.url + self.token_path, client_id=self.client_id)
        return config

    def _authorised(self, seen: Seen) -> bool:
        given = seen.headers.get("authorization", "")
        if self.auth == "api_key":
            return seen.headers.get(self.api_key_header) == self.api_key
        if self.auth == "basic":
            pair = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return given == f"Basic {pair}"
        if self.auth == "bearer":
            return given == f"Bearer {self.bearer}"
        return given.removeprefix("Bearer ") in self.tokens

    def _token(self, seen: Seen) -> Scripted:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        form = parse_qs(seen.body.decode())
        if seen.headers.get("authorization") != f"Basic {expected}" or form.get("grant_type") != ["client_credentials"]:
            return Scripted(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
        self.issued += 1
        token = f"tok-{self.issued}"
        self.tokens.add(token)
        return Scripted(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def answer(self, seen: Seen) -> Scripted:
        with self.lock:
            self.requests.append(seen)
            if seen.method == "POST" and urlsplit(seen.path).path == self.token_path:
                return self._token(seen)
            if not self._authorised(seen):
                return self.error(401, "authentication failed")
            if self.failures:
                return self.failures.pop(0)
            key = seen.headers.get("idempotency-key")
            replay_key = f"{seen.method} {seen.path} {key}"
            if self.idempotent and key and seen.method == "POST" and replay_key in self.replays:
                return self.replays[replay_key]
            path = urlsplit(seen.path).path
            for method, pattern, handler in self.routes:
                found = pattern.match(path)
                if found and method == seen.method:
                    answer = handler(seen, found.groupdict())
                    break
            else:
                answer = self.error(404, f"no such resource: {seen.method} {path}")
            if self.idempotent and key and seen.method == "POST" and answer.status < 300:
                self.replays[replay_key] = answer
            return answer


@contextmanager
def serve(fake: Fake) -> Iterator[Fake]:
    """``fake`` listening on 127.0.0.1 (a free port) until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            scripted = fake.answer(seen)
            if scripted.delay:
                time.sleep(scripted.delay)
            if scripted.raw is not None:
                data = scripted.raw
            else:
                data = b"" if scripted.body is None else json.dumps(scripted.body).encode()
            send_scripted(self, scripted, data, "application/json;charset=UTF-8")

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        fake.url = url
        yield fake
