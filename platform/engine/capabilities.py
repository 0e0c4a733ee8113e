"""Capabilities: what an action step can ask a connector to do, by name.

The engine knows capabilities only through this registry; connectors register theirs (notify,
create_ticket, create_work_order, ...). Every call carries the step's idempotency key, which the
remote side deduplicates by, so a call repeated after a crash applies once.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

# Error kinds: "unavailable" (the connector cannot be reached: retried, or the fallback path),
# "failed" (it answered with a failure that may pass: retried), and kinds retrying cannot fix.
UNAVAILABLE, FAILED, INVALID, FORBIDDEN, NOT_FOUND = "unavailable", "failed", "invalid", "forbidden", "not_found"


class CapabilityError(Exception):
    def __init__(self, message: str, kind: str = FAILED) -> None:
        super().__init__(message)
        self.kind = kind


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
        self._client: httpx.AsyncClient | None = None
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
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _http_post(self, call: Call) -> Any:
        """POST ``json`` to ``url`` with the idempotency key; the answer's status and JSON body."""
        url = call.inputs.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise CapabilityError("inputs.url: an http(s) URL", INVALID)
        headers = {str(k): str(v) for k, v in (call.inputs.get("headers") or {}).items()}
        headers["Idempotency-Key"] = call.idempotency_key
        try:
            response = await self.client.post(url, json=call.inputs.get("json"), headers=headers, timeout=call.timeout)
        except httpx.HTTPError as exc:
            raise CapabilityError(f"{url}: {type(exc).__name__} {exc}".strip(), UNAVAILABLE) from None
        return _answer(url, response)


def _answer(url: str, response: httpx.Response) -> dict[str, Any]:
    status = response.status_code
    if status in (408, 425, 429) or status >= 500:
        raise CapabilityError(f"{url} answered {status}", UNAVAILABLE if status >= 502 else FAILED)
    if status in (401, 403):
        raise CapabilityError(f"{url} answered {status}", FORBIDDEN)
    if status == 404:
        raise CapabilityError(f"{url} answered 404", NOT_FOUND)
    if status >= 400:
        raise CapabilityError(f"{url} answered {status}: {response.text[:300]}", INVALID)
    try:
        body: Any = response.json() if response.content else None
    except ValueError:
        body = response.text[:2000]
    return {"status": status, "body": body}
