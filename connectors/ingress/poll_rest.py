"""Polling a vendor's REST endpoint that pages with a cursor (``rest_poll`` connections).

Each run fetches ``config.url`` with ``<cursor_param>=<stored cursor>`` (nothing on the very first
fetch) and the connection's secret in ``config.auth_header``, takes the records at ``config.items``
and the cursor at ``config.next_cursor``, delivers the records as one delivery, stores the new cursor
once they are committed, and follows it, until a page brings no records or no new cursor (or
``polling.max_batches`` pages, the rest following at once in the next run).

Andon is multi-tenant, so a customer's URL must not reach Andon's own network: the host is resolved
first and refused if any of its addresses is loopback, private, link-local or otherwise not public
(unless ``polling.allow_private_networks``), and the request goes to the address that was checked
(the Host header and TLS name stay the vendor's), so a second DNS answer cannot swap it. Redirects
are not followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import httpx
import jmespath
import msgspec

import andon
from andon.connectors.ingress.poll_run import PollError, PollLimits, PollRun
from andon.connectors.sources.intake import Delivery
from andon.connectors.sources.kinds import RESERVED_HEADERS, RestPollConfig
from andon.connectors.sources.repository import ConnectionFound
from andon.platform.crypto.secretbox import SecretBox
from andon.platform.http.errors import AndonError

MAX_CURSOR = 2000
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def public_address(address: str) -> bool:
    """Whether an address is on the public internet (an IPv4 address inside IPv6 judged as itself)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.is_global and not ip.is_multicast


async def addresses_for(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses to connect to for ``host``, all of them public unless private ones are allowed."""
    try:
        ipaddress.ip_address(host)
        found = [host]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise PollError(f"config.url: cannot resolve {host} ({exc.strerror or exc})") from None
        found = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not found:
        raise PollError(f"config.url: cannot resolve {host}")
    if not allow_private and not all(public_address(a) for a in found):
        raise PollError(
            f"config.url: {host} is, or resolves to, an address that is not public (loopback, private, "
            "link-local or reserved); Andon does not poll those"
        )
    return found


def _snippet(body: bytes, length: int = 200) -> str:
    text = " ".join(body[: length * 4].decode("utf-8", errors="replace").split())
    return text[:length] + ("…" if len(text) > length else "")


class RestPoller:
    def __init__(self, box: SecretBox, limits: PollLimits) -> None:
        self.box = box
        self.limits = limits

    async def run(self, run: PollRun, config: RestPollConfig) -> bool:
        """Fetches and delivers pages from the stored cursor on; True when pages are left for the next run."""
        headers = self._headers(run.found, config)
        try:
            url = httpx.URL(config.url)
        except httpx.InvalidURL as exc:
            raise PollError(f"config.url: not a URL Andon can fetch ({exc})") from None
        timeout = httpx.Timeout(self.limits.timeout_seconds)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            for _ in range(self.limits.max_batches):
                cursor = run.cursor
                page_url = url.copy_merge_params({config.cursor_param: cursor}) if cursor else url
                records, next_cursor = self._page(await self._fetch(client, page_url, headers), config)
                if records:
                    reference = f"cursor {cursor}" if cursor else "first page"
                    try:
                        await run.deliver(Delivery(body=b"", payloads=records, reference=reference))
                    except AndonError as refusal:
                        # The cursor stays: nothing is skipped. The refusal is in the delivery log.
                        raise PollError(
                            f"the records at {reference} were refused ({refusal.status_code}): {refusal.detail}"
                        ) from None
                moved = next_cursor is not None and next_cursor != cursor
                if moved:
                    await run.advance(next_cursor)
                if not records or not moved:
                    return False
        return True

    def _headers(self, found: ConnectionFound, config: RestPollConfig) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": f"Andon/{andon.__version__} (poller)"}
        if config.auth_header is None:
            return headers
        if config.auth_header.lower() in RESERVED_HEADERS:
            raise PollError(f"config.auth_header: {config.auth_header} cannot carry a credential")
        if not found.secret_sealed:
            raise PollError(
                "config.auth_header is set but the connection has no secret: give the vendor's API key (rotate-secret)"
            )
        headers[config.auth_header] = config.auth_prefix + self.box.open(found.secret_sealed)
        return headers

    async def _fetch(self, client: httpx.AsyncClient, url: httpx.URL, headers: dict[str, str]) -> bytes:
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = await addresses_for(host, port, allow_private=self.limits.allow_private_networks)
        try:
            async with asyncio.timeout(self.limits.timeout_seconds):
                for number, address in enumerate(addresses, 1):
                    try:
                        return await self._get(client, url, address, headers)
                    except httpx.ConnectError as exc:
                        if number == len(addresses):
                            raise PollError(f"cannot connect to {host}: {str(exc) or type(exc).__name__}") from None
        except (TimeoutError, httpx.TimeoutException):
            raise PollError(f"{host} did not answer within {self.limits.timeout_seconds:g} s") from None
        except httpx.HTTPError as exc:
            raise PollError(f"fetching from {host} failed: {type(exc).__name__}: {exc}") from None
        raise PollError(f"cannot connect to {host}")  # pragma: no cover - addresses is never empty

    async def _get(self, client: httpx.AsyncClient, url: httpx.URL, address: str, headers: dict[str, str]) -> bytes:
        """GET from the checked address; the Host header and the TLS server name stay the vendor's."""
        extensions: dict[str, Any] = {}
        try:
            ipaddress.ip_address(url.host)
        except ValueError:
            extensions["sni_hostname"] = url.host
        request = client.build_request(
            "GET",
            url.copy_with(host=address.split("%", 1)[0]),
            headers={**headers, "Host": url.netloc.decode("ascii")},
            extensions=extensions,
        )
        response = await client.send(request, stream=True)
        try:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.limits.max_response_bytes:
                    raise PollError(f"{url.host} answered with more than {self.limits.max_response_bytes} bytes")
        finally:
            await response.aclose()
        if response.is_redirect:
            location = response.headers.get("location", "")
            raise PollError(
                f"{url.host} answered HTTP {response.status_code} (a redirect to {location[:200]}); redirects "
                "are not followed: set config.url to where it points"
            )
        if not response.is_success:
            raise PollError(f"{url.host} answered HTTP {response.status_code}: {_snippet(bytes(body))}")
        return bytes(body)

    @staticmethod
    def _page(body: bytes, config: RestPollConfig) -> tuple[list[Any], str | None]:
        """The records of a page and the cursor after them (None: the page names none)."""
        try:
            document = msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise PollError(f"the answer is not JSON: {_snippet(body)}") from None
        records = jmespath.search(config.items, document)
        if records is None:
            raise PollError(f"config.items: `{config.items}` finds nothing in the answer: {_snippet(body)}")
        if not isinstance(records, list):
            raise PollError(f"config.items: `{config.items}` gives {type(records).__name__}, not a list of records")
        cursor = jmespath.search(config.next_cursor, document)
        if cursor is None or cursor == "":
            return records, None
        if isinstance(cursor, bool) or not isinstance(cursor, str | int | float):
            raise PollError(
                f"config.next_cursor: `{config.next_cursor}` gives {type(cursor).__name__}; a cursor is a "
                "string or a number"
            )
        cursor = str(cursor)
        if len(cursor) > MAX_CURSOR:
            raise PollError(f"config.next_cursor: the cursor is longer than {MAX_CURSOR} characters")
        return records, cursor
