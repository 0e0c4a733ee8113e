"""Prometheus metrics of this process, in one registry served at ``/metrics``.

Labels stay low-cardinality (channel, outcome, status class): per-tenant numbers live in the
database, where a tenant's own pages can read them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

# Every request (or message, or polled file) that tried to deliver events, by how it ended:
# accepted, duplicate, or the refusal's HTTP status (401, 404, 413, 422, 429).
INGRESS_DELIVERIES = Counter(
    "andon_ingress_deliveries",
    "Deliveries of events by channel (http, webhook, mqtt, poll) and outcome",
    ["channel", "outcome"],
    registry=REGISTRY,
)
EVENTS_STORED = Counter(
    "andon_events_stored",
    "Events stored, by channel; repeats of stored events are counted as duplicates, not stored",
    ["channel", "outcome"],
    registry=REGISTRY,
)
INGRESS_SECONDS = Histogram(
    "andon_ingress_seconds",
    "Time to accept one delivery, from its first byte to the committed answer",
    ["channel"],
    registry=REGISTRY,
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


def count_delivery(channel: str, outcome: str | int) -> None:
    INGRESS_DELIVERIES.labels(channel=channel, outcome=str(outcome)).inc()


def count_events(channel: str, new: int, duplicate: int) -> None:
    if new:
        EVENTS_STORED.labels(channel=channel, outcome="new").inc(new)
    if duplicate:
        EVENTS_STORED.labels(channel=channel, outcome="duplicate").inc(duplicate)


def outcome_of(status: int) -> str:
    """An ingress answer as an outcome label: 201 stored something new, 200 only repeats, else the
    refusal's status (bounded: the few statuses the API answers)."""
    return {201: "accepted", 200: "duplicate"}.get(status, str(status))


class IngressMetricsMiddleware:
    """Counts every ingress request by channel and outcome, and times it, whoever answered it: the
    handler, a guard (401), the router (404 for a malformed address) or the body limit (413).

    Wrapped around the whole application (as the request-context middleware is), so nothing that
    answers before a route's own middleware escapes the count. ``channels`` maps a path pattern of a
    POST route to its channel label.
    """

    def __init__(self, app: ASGIApp, channels: Mapping[str, str]) -> None:
        self.app = app
        self.channels = [(re.compile(pattern), channel) for pattern, channel in channels.items()]

    def _channel(self, scope: Scope) -> str | None:
        if scope["type"] != ScopeType.HTTP or scope.get("method") != "POST":
            return None
        path = scope.get("path", "")
        return next((channel for pattern, channel in self.channels if pattern.fullmatch(path)), None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        channel = self._channel(scope)
        if channel is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            count_delivery(channel, outcome_of(status))
            INGRESS_SECONDS.labels(channel=channel).observe(time.perf_counter() - started)
