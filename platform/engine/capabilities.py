"""Capabilities: what an action step can ask a connector to do, by name.

The engine knows capabilities only through this registry; connectors register theirs (notify,
create_ticket, create_work_order, ...). Every call carries the step's idempotency key, which the
remote side deduplicates by, so a call repeated after a crash applies once.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

# Error kinds: "unavailable" (the connector cannot be reached: retried, or the fallback path),
# "failed" (it answered with a failure that may pass: retried), and kinds retrying cannot fix.
UNAVAILABLE, FAILED, INVALID, FORBIDDEN, NOT_FOUND = "unavailable", "failed", "invalid", "forbidden", "not_found"


class CapabilityError(Exception):
    def __init__(self, message: str, kind: str = FAILED, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        # How long the system asked to be left alone (a 429's Retry-After): a retry waits at least that.
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Call:
    capability: str
    inputs: dict[str, Any]
    idempotency_key: str
    timeout: float
    tenant_id: uuid.UUID
    run_id: uuid.UUID
    partner_id: uuid.UUID | None = None
    step_key: str | None = None


Capability = Callable[[Call], Awaitable[Any]]


class Capabilities:
    """The registry, and the HTTP client capabilities share (one per worker event loop)."""

    def __init__(self) -> None:
        self._registry: dict[str, Capability] = {}
        self._client: Http1 | None = None
        # Where a name that is not built in goes: "<connection key>.<capability>" of the tenant's own
        # outbound connections (the connectors domain answers; the kernel does not know it).
        self._connections: Capability | None = None
        self.register("http.post", self._http_post)

    def register(self, name: str, capability: Capability) -> None:
        self._registry[name] = capability

    def route_connections(self, capability: Capability) -> None:
        self._connections = capability

    def names(self) -> list[str]:
        return sorted(self._registry)

    def __contains__(self, name: str) -> bool:
        return name in self._registry

    async def call(self, call: Call) -> Any:
        capability = self._registry.get(call.capability)
        if capability is None and self._connections is not None and "." in call.capability:
            capability = self._connections
        if capability is None:
            raise CapabilityError(f"no capability named {call.capability}", INVALID)
        return await capability(call)

    @property
    def client(self) -> Http1:
        if self._client is None:
            self._client = Http1()
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _http_post(self, call: Call) -> Any:
        """POST ``json`` to ``url`` with the idempotency key; the answer's status and JSON body."""
        url = call.inputs.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise CapabilityError("inputs.url: an http(s) URL", INVALID)
        headers = {str(k): str(v) for k, v in (call.inputs.get("headers") or {}).items()}
        headers["Idempotency-Key"] = call.idempotency_key
        try:
            body = json.dumps(call.inputs.get("json"), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except ValueError as exc:
            raise CapabilityError(f"inputs.json: {exc}", INVALID) from None
        try:
            status, answer = await self.client.post(url, body.encode(), headers, call.timeout)
        except BadRequest as exc:
            raise CapabilityError(f"{url}: {exc}", INVALID) from None
        except HttpError as exc:
            raise CapabilityError(f"{url}: {exc}", UNAVAILABLE) from None
        return _answer(url, status, answer)


def _answer(url: str, status: int, content: bytes) -> dict[str, Any]:
    if status in (408, 425, 429) or status >= 500:
        raise CapabilityError(f"{url} answered {status}", UNAVAILABLE if status >= 502 else FAILED)
    if status in (401, 403):
        raise CapabilityError(f"{url} answered {status}", FORBIDDEN)
    if status == 404:
        raise CapabilityError(f"{url} answered 404", NOT_FOUND)
    text = content.decode("utf-8", errors="replace")
    if status >= 400:
        raise CapabilityError(f"{url} answered {status}: {text[:300]}", INVALID)
    try:
        body: Any = json.loads(content) if content else None
    except ValueError:
        body = text[:2000]
    return {"status": status, "body": body}


class HttpError(Exception):
    """The exchange did not happen or broke off: no connection, a timeout, a malformed answer."""


class BadRequest(HttpError):
    """The request cannot be sent as given (its URL or a header)."""


@lru_cache(maxsize=1024)
def _target(url: str) -> tuple[tuple[str, str, int], str, str]:
    """(scheme, host, port), the request target and the Host header of a URL."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host or parts.username is not None or parts.password is not None:
        raise BadRequest("not a URL with a host (and no credentials in it)")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    shown = f"[{host}]" if ":" in host else host
    default = port == (443 if parts.scheme == "https" else 80)
    return (parts.scheme, host, port), target, shown if default else f"{shown}:{port}"


def _header(name: str, value: str) -> str:
    if any(c in name for c in "\r\n:") or not name.strip() or any(c in value for c in "\r\n"):
        raise BadRequest(f"the header {name[:50]!r} has a line break or colon in it")
    return f"{name}: {value}\r\n"


class Http1:
    """A small HTTP/1.1 client for the engine's own ``http.post``: keep-alive connections per origin,
    no redirects, no proxies, no compression. The general client (httpx) cost more Python per call
    than the whole rest of an action step; this does what a step needs and no more."""

    MAX_BODY = 10_000_000
    MAX_IDLE = 32

    def __init__(self) -> None:
        self._idle: defaultdict[tuple[str, str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = (
            defaultdict(list)
        )
        self._tls: ssl.SSLContext | None = None

    async def post(self, url: str, body: bytes, headers: dict[str, str], seconds: float) -> tuple[int, bytes]:
        """The answer's status and body (read whole), within ``seconds``. The caller's headers
        replace the defaults of the same name (any case); the length is always the body's."""
        origin, target, host = _target(url)
        fields = {"host": ("Host", host), "user-agent": ("User-Agent", "andon"), "accept": ("Accept", "*/*")}
        fields["content-type"] = ("Content-Type", "application/json")
        fields.update({name.lower(): (name, value) for name, value in headers.items()})
        fields["content-length"] = ("Content-Length", str(len(body)))
        try:
            head = (f"POST {target} HTTP/1.1\r\n" + "".join(_header(k, v) for k, v in fields.values()) + "\r\n").encode(
                "latin-1", errors="strict"
            )
        except UnicodeEncodeError:
            raise BadRequest("a header that is not Latin-1 text") from None
        try:
            async with asyncio.timeout(seconds):
                while True:
                    reused, (reader, writer) = await self._connection(origin)
                    try:
                        writer.write(head + body)
                        status, answer, keep = await self._response(reader)
                    except (ConnectionError, asyncio.IncompleteReadError, HttpError) as exc:
                        writer.close()
                        if reused and isinstance(exc, ConnectionError):
                            continue  # the server closed an idle connection: a fresh one, once per idle one
                        raise
                    except BaseException:
                        writer.close()  # a timeout or a cancel leaves the exchange half done
                        raise
                    if keep and len(self._idle[origin]) < self.MAX_IDLE:
                        self._idle[origin].append((reader, writer))
                    else:
                        writer.close()
                    return status, answer
        except TimeoutError:
            raise HttpError(f"no answer within {seconds:g} s") from None
        except (OSError, asyncio.IncompleteReadError, UnicodeError, ValueError) as exc:
            raise HttpError(f"{type(exc).__name__} {exc}".strip()) from None

    async def _connection(
        self, origin: tuple[str, str, int]
    ) -> tuple[bool, tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        idle = self._idle[origin]
        while idle:
            reader, writer = idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return True, (reader, writer)
            writer.close()
        scheme, host, port = origin
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        return False, await asyncio.open_connection(host, port, ssl=tls, limit=1 << 16)

    async def _response(self, reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionResetError("the connection closed before an answer")
            version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
            if not version.startswith("HTTP/1."):
                raise HttpError(f"not an HTTP/1.x answer: {line[:80]!r}")
            status = int(rest[:3])
            fields: dict[str, str] = {}
            while True:
                field = await reader.readline()
                if field in (b"\r\n", b"\n"):
                    break
                if not field:
                    raise HttpError("the answer's headers broke off")
                name, _, value = field.decode("latin-1").partition(":")
                key = name.strip().lower()
                fields[key] = f"{fields[key]}, {value.strip()}" if key in fields else value.strip()
            if 100 <= status < 200:
                continue  # an interim answer; the real one follows
            break
        connection = fields.get("connection", "").lower()
        keep = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
        if status in (204, 304):
            return status, b"", keep
        if "chunked" in fields.get("transfer-encoding", "").lower():
            return status, await self._chunked(reader), keep
        if "content-length" in fields:
            length = int(fields["content-length"])
            if length > self.MAX_BODY:
                raise HttpError(f"an answer of {length} bytes")
            return status, await reader.readexactly(length), keep
        content = await reader.read(self.MAX_BODY + 1)  # delimited by the end of the connection
        while len(content) <= self.MAX_BODY and not reader.at_eof():
            more = await reader.read(self.MAX_BODY + 1 - len(content))
            if not more:
                break
            content += more
        if len(content) > self.MAX_BODY:
            raise HttpError("an answer of more than 10 MB")
        return status, content, False

    async def _chunked(self, reader: asyncio.StreamReader) -> bytes:
        chunks = bytearray()
        while True:
            size = int((await reader.readline()).split(b";", 1)[0].strip() or b"x", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(chunks)
            if len(chunks) + size > self.MAX_BODY:
                raise HttpError("an answer of more than 10 MB")
            chunks += await reader.readexactly(size)
            await reader.readexactly(2)

    async def close(self) -> None:
        idle, self._idle = self._idle, defaultdict(list)
        for connections in idle.values():
            for _, writer in connections:
                writer.close()
