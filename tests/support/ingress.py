"""Sending events the ways senders do (CloudEvents POSTs, signed webhooks) and reading what ingress
counted at ``/metrics``."""

from __future__ import annotations

import math
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks.webhooks import Webhook

from tests.tenants.factories import Tenant, auth

ALARM = "dev.andon.machine.alarm.v1"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


def cloudevent(event_id: str, **attributes: Any) -> dict[str, Any]:
    """A valid structured machine alarm."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:plc:press-line",
        "type": ALARM,
        "data": {"code": "E42", "message": "Over temperature", "value": 96.5},
        **attributes,
    }


async def post_events(
    api: httpx.AsyncClient, key: str, events: dict[str, Any] | list[dict[str, Any]]
) -> httpx.Response:
    """One structured event, or a batch when given a list."""
    content_type = BATCH if isinstance(events, list) else STRUCTURED
    return await api.post(
        "/api/v1/events", headers={**auth(key), "content-type": content_type}, content=msgspec.json.encode(events)
    )


async def stored_events(api: httpx.AsyncClient, tenant: Tenant) -> list[str]:
    """The ids of every event stored for a customer."""
    r = await api.get("/api/v1/events", headers=auth(tenant.key), params={"limit": 500})
    assert r.status_code == 200, r.text
    return [e["event_id"] for e in r.json()["items"]]


async def hook_connection(api: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    """A webhook connection of machine alarms; the answer carries its secret and ``webhook_path``."""
    r = await api.post(
        f"/api/v1/customers/{tenant.customer_id}/connections/",
        headers=auth(tenant.key),
        json={"name": f"hook {uuid.uuid4().hex[:8]}", "event_type": ALARM, **fields},
    )
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()
    return made


async def event_page(api: httpx.AsyncClient, tenant: Tenant, **params: Any) -> dict[str, Any]:
    """A customer's stored events (newest first, up to 100), filtered by ``params``, with the total."""
    r = await api.get("/api/v1/events", headers=auth(tenant.key), params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def connection_deliveries(
    api: httpx.AsyncClient, tenant: Tenant, connection: dict[str, Any]
) -> list[dict[str, Any]]:
    """A connection's delivery log, newest first."""
    r = await api.get(
        f"/api/v1/customers/{tenant.customer_id}/connections/{connection['id']}/deliveries",
        headers=auth(tenant.key),
        params={"limit": 100},
    )
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def signed(secret: str, body: bytes, *, msg_id: str | None = None) -> dict[str, str]:
    """The headers the Standard Webhooks reference library puts on a delivery."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
        "content-type": "application/json",
    }


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(api: httpx.AsyncClient, headers: dict[str, str] | None = None) -> Samples:
    r = await api.get("/metrics", headers=headers or {})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }


def grown(before: Samples, after: Samples, name: str, label: str = "") -> Counter[tuple[str, str]]:
    """How much each series of ``name`` grew, keyed by (channel, ``label``'s value or "")."""
    growth: Counter[tuple[str, str]] = Counter()
    for (sample, labels), value in after.items():
        if sample == name:
            by = dict(labels)
            diff = value - before.get((sample, labels), 0.0)
            if diff:
                growth[(by["channel"], by.get(label, ""))] += int(diff)
    return growth
