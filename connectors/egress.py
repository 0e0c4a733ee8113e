"""Every request Andon makes to a customer's system goes through here: the egress guard.

Andon is multi-tenant, so a URL a customer typed must not reach Andon's own network. The host is
resolved once, and refused if any of its addresses is loopback, private, link-local or otherwise
not public (unless the caller allows private networks: development, or a connection marked as an
on-premise relay target). The request then goes to the address that was checked, with the Host
header and the TLS server name kept as the vendor's, so a second DNS answer (rebinding) cannot swap
it. Redirects are never followed; answers are read up to a size limit; the whole exchange has one
deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import msgspec

NAT64 = ipaddress.ip_network("64:ff9b::/96")

# Why an exchange did not happen: the address was refused, the system could not be reached or did
# not answer in time, or its answer was larger than allowed.
EgressFailure = Literal["refused", "unreachable", "timeout", "too_large"]
Resolver = Callable[[str, int], Awaitable[list[str]]]


class EgressError(Exception):
    def __init__(self, message: str, failure: EgressFailure) -> None:
        super().__init__(message)
        self.failure = failure


def public_address(address: str) -> bool:
    """Whether an address is on the public internet (an IPv4 address inside IPv6 judged as itself)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.is_global and not ip.is_multicast


async def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise EgressError(f"cannot resolve {host} ({exc.strerror or exc})", "unreachable") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def addresses_for(host: str, port: int, *, allow_private: bool, resolve: Resolver = system_resolver) -> list[str]:
    """The addresses to connect to for ``host``, all of them public unless private ones are allowed."""
    try:
        ipaddress.ip_address(host)
        found = [host]
    except ValueError:
        found = await resolve(host, port)
    if not found:
        raise EgressError(f"cannot resolve {host}", "unreachable")
    if not allow_private and not all(public_address(a) for a in found):
        raise EgressError(
            f"{host} is, or resolves to, an address that is not public (loopback, private, link-local or "
            "reserved); Andon does not connect there unless the connection is an on-premise relay target",
            "refused",
        )
    return found


def snippet(body: bytes, length: int = 200) -> str:
    """The start of an answer, on one line, for an error message."""
    text = " ".join(body[: length * 4].decode("utf-8", errors="replace").split())
    return text[:length] + ("…" if len(text) > length else "")


@dataclass(frozen=True, slots=True)
class EgressResponse:
    status: int
    headers: httpx.Headers
    body: bytes
    elapsed_ms: float

    @property
    def is_redirect(self) -> bool:
        return 300 <= self.status < 400 and "location" in self.headers

    def json(self) -> Any:
        """The body as JSON, or None when it is empty; msgspec.DecodeError when it is not JSON."""
        return msgspec.json.decode(self.body) if self.body else None

    def snippet(self, length: int = 200) -> str:
        return snippet(self.body, length)


@dataclass(frozen=True, slots=True)
class EgressLimits:
    timeout_seconds: float = 10.0
    max_response_bytes: int = 1_000_000
    allow_private: bool = False


# How much longer than the exchange's own timeout the whole send may take before it is cut off.
BACKSTOP_SECONDS = 1.0


class Egress:
    """Guarded HTTP exchanges over one shared client (make one per event loop)."""

    def __init__(self, resolve: Resolver = system_resolver) -> None:
        self.resolve = resolve
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # Proxies from the environment would bypass the address check: never read them.
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send(
        self,
        method: str,
        url: str | httpx.URL,
        limits: EgressLimits,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> EgressResponse:
        """One exchange, to a checked address, read whole up to the size limit."""
        try:
            target = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise EgressError(f"not a URL Andon can call ({exc})", "refused") from None
        if target.scheme not in ("http", "https") or not target.host:
            raise EgressError(f"{str(target)[:200]} is not an http(s) URL", "refused")
        host = target.host
        port = target.port or (443 if target.scheme == "https" else 80)
        started = time.perf_counter()
        try:
            # httpx's own timeouts end a slow exchange and close its connection; cancelling it from
            # outside may leave a pooled connection whose late answer the next request would read.
            # The outer deadline is a backstop (name resolution included).
            async with asyncio.timeout(limits.timeout_seconds + BACKSTOP_SECONDS):
                addresses = await addresses_for(host, port, allow_private=limits.allow_private, resolve=self.resolve)
                for number, address in enumerate(addresses, 1):
                    try:
                        status, answer_headers, body = await self._exchange(
                            method, target, address, dict(headers or {}), content, limits
                        )
                    except httpx.ConnectError as exc:
                        if number == len(addresses):
                            detail = str(exc) or type(exc).__name__
                            raise EgressError(f"cannot connect to {host}: {detail}", "unreachable") from None
                    else:
                        elapsed = (time.perf_counter() - started) * 1000
                        return EgressResponse(status, answer_headers, body, round(elapsed, 2))
        except (TimeoutError, httpx.TimeoutException):
            raise EgressError(f"{host} did not answer within {limits.timeout_seconds:g} s", "timeout") from None
        except httpx.HTTPError as exc:
            raise EgressError(f"the exchange with {host} failed: {type(exc).__name__}: {exc}", "unreachable") from None
        raise EgressError(f"cannot connect to {host}", "unreachable")  # pragma: no cover - never empty

    async def _exchange(
        self,
        method: str,
        url: httpx.URL,
        address: str,
        headers: dict[str, str],
        content: bytes | None,
        limits: EgressLimits,
    ) -> tuple[int, httpx.Headers, bytes]:
        """To the checked address; the Host header and the TLS server name stay the vendor's."""
        extensions: dict[str, Any] = {}
        try:
            ipaddress.ip_address(url.host)
        except ValueError:
            extensions["sni_hostname"] = url.host
        request = self.client.build_request(
            method,
            url.copy_with(host=address.split("%", 1)[0]),
            headers={**headers, "Host": url.netloc.decode("ascii")},
            content=content,
            extensions=extensions,
            timeout=httpx.Timeout(limits.timeout_seconds),
        )
        response = await self.client.send(request, stream=True)
        try:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limits.max_response_bytes:
                    raise EgressError(
                        f"{url.host} answered with more than {limits.max_response_bytes} bytes", "too_large"
                    )
        finally:
            await response.aclose()
        return response.status_code, response.headers, bytes(body)
