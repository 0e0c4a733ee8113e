"""Polling a vendor's REST endpoint that pages with a cursor (``rest_poll`` connections).

Each run fetches ``config.url`` with ``<cursor_param>=<stored cursor>`` (nothing on the very first
fetch) and the connection's secret in ``config.auth_header``, takes the records at ``config.items``
and the cursor at ``config.next_cursor``, delivers the records as one delivery, stores the new cursor
once they are committed, and follows it, until a page brings no records or no new cursor (or
``polling.max_batches`` pages, the rest following at once in the next run).

Every fetch goes through the egress guard (``connectors/egress.py``): public addresses only (unless
``polling.allow_private_networks``), pinned to the address checked, no redirects, a size limit.
"""

from __future__ import annotations

from typing import Any

import httpx
import jmespath
import msgspec

import andon
from andon.connectors.egress import Egress, EgressError, EgressLimits, snippet
from andon.connectors.ingress.poll_run import PollError, PollLimits, PollRun
from andon.connectors.sources.intake import Delivery
from andon.connectors.sources.kinds import RESERVED_HEADERS, RestPollConfig
from andon.connectors.sources.repository import ConnectionFound
from andon.platform.crypto.secretbox import SecretBox
from andon.platform.http.errors import AndonError

MAX_CURSOR = 2000


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
        egress = Egress()
        try:
            for _ in range(self.limits.max_batches):
                cursor = run.cursor
                page_url = url.copy_merge_params({config.cursor_param: cursor}) if cursor else url
                records, next_cursor = self._page(await self._fetch(egress, page_url, headers), config)
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
        finally:
            await egress.close()
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

    async def _fetch(self, egress: Egress, url: httpx.URL, headers: dict[str, str]) -> bytes:
        limits = EgressLimits(
            timeout_seconds=self.limits.timeout_seconds,
            max_response_bytes=self.limits.max_response_bytes,
            allow_private=self.limits.allow_private_networks,
        )
        try:
            response = await egress.send("GET", url, limits, headers=headers)
        except EgressError as exc:
            raise PollError(str(exc)) from None
        if response.is_redirect:
            location = response.headers.get("location", "")
            raise PollError(
                f"{url.host} answered HTTP {response.status} (a redirect to {location[:200]}); redirects "
                "are not followed: set config.url to where it points"
            )
        if not 200 <= response.status < 300:
            raise PollError(f"{url.host} answered HTTP {response.status}: {response.snippet()}")
        return response.body

    @staticmethod
    def _page(body: bytes, config: RestPollConfig) -> tuple[list[Any], str | None]:
        """The records of a page and the cursor after them (None: the page names none)."""
        try:
            document = msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise PollError(f"the answer is not JSON: {snippet(body)}") from None
        records = jmespath.search(config.items, document)
        if records is None:
            raise PollError(f"config.items: `{config.items}` finds nothing in the answer: {snippet(body)}")
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
