"""Per-source mappings: JMESPath per envelope attribute turns a vendor's payload into events; the
test-this-mapping endpoint shows what a sample becomes and stores nothing; a bad mapping is refused
field by field when it is saved."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from andon.connectors.sources.mapping import Stamp, map_payload, mapping_problems
from andon.platform.http.errors import ValidationFailedError
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio
ALARM = "dev.andon.machine.alarm.v1"
# A vendor's alarm export: several alarms per delivery, its own field names and severities.
VENDOR = {
    "plant": "north",
    "alarms": [
        {"uid": 9001, "machine": "P-1", "code": "E42", "text": "Over temperature", "prio": 1, "ts": 1764115200},
        {"uid": 9002, "machine": "P-2", "code": "E7", "text": "Door open", "prio": 3, "ts": 1764115260000},
    ],
}
MAPPING = {
    "items": "alarms",
    "id": "uid",
    "type": f"'{ALARM}'",
    "subject": "machine",
    "assetid": "machine",
    "time": "ts",
    "severity": "prio",
    "severity_values": {"1": "critical", "2": "high", "3": "medium"},
    "dedupkey": "join(':', [machine, code])",
    "data": "{code: code, message: text}",
}


def test_a_mapping_turns_a_vendor_export_into_events() -> None:
    events = map_payload(VENDOR, MAPPING, Stamp(source="urn:vendor:scada", event_type=None))
    assert [(e.id, e.assetid, e.severity, e.dedupkey) for e in events] == [
        ("9001", "P-1", "critical", "P-1:E42"),
        ("9002", "P-2", "medium", "P-2:E7"),
    ]
    assert {e.source for e in events} == {"urn:vendor:scada"}
    assert events[0].data == {"code": "E42", "message": "Over temperature"}
    # Seconds and milliseconds since the epoch are both understood.
    assert events[0].time == datetime(2025, 11, 26, tzinfo=UTC)
    assert events[1].time == datetime(2025, 11, 26, 0, 1, tzinfo=UTC)


def test_a_channel_default_fills_what_the_payload_leaves_out_and_ids_are_stable() -> None:
    stamp = Stamp(source="urn:x", event_type=ALARM, defaults={"siteid": "north-S"})
    payload = {"code": "E1", "message": "jam"}
    first, again = map_payload(payload, None, stamp), map_payload(dict(payload), None, stamp)
    assert first[0].siteid == "north-S" and first[0].id == again[0].id
    mapped = map_payload(payload, {"siteid": "'south-S'"}, stamp)
    assert mapped[0].siteid == "south-S" and mapped[0].type == ALARM


def test_refusals_name_the_item_and_field() -> None:
    good = {"uid": 1, "machine": "P-1", "code": "E1", "text": "jam", "prio": 1, "ts": 1764115200}
    for broken, field in (({"prio": 9}, "[1].severity"), ({"ts": "yesterday"}, "[1].time"), ({"text": 5}, "[1].data")):
        bad = {"alarms": [good, {**good, "uid": 2, **broken}]}
        with pytest.raises(ValidationFailedError) as caught:
            map_payload(bad, MAPPING, Stamp(source="urn:x", event_type=None))
        assert [e["field"] for e in caught.value.extra["errors"]] == [
            field + (".message" if field.endswith("data") else "")
        ]


def test_a_mapping_that_does_not_compile_is_named_field_by_field() -> None:
    problems = dict(mapping_problems({"id": "uid[", "colour": "x", "severity_values": {"1": "urgent"}, "type": ""}))
    assert set(problems) == {"mapping.id", "mapping.colour", "mapping.severity_values", "mapping.type"}
    assert "JMESPath" in problems["mapping.id"]


def _base(tenant: Tenant) -> str:
    return f"/api/v1/customers/{tenant.customer_id}/connections"


async def test_the_test_endpoint_shows_the_events_and_stores_nothing(api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    key = auth(c.key)
    draft = await api.post(_base(c) + "/test-mapping", headers=key, json={"payload": VENDOR, "mapping": MAPPING})
    assert draft.status_code == 200, draft.text
    result = draft.json()
    assert result["ok"] and [e["id"] for e in result["events"]] == ["9001", "9002"]
    assert result["events"][0]["severity"] == "critical" and result["events"][0]["type"] == ALARM

    wrong = await api.post(
        _base(c) + "/test-mapping", headers=key, json={"payload": VENDOR, "mapping": {**MAPPING, "data": "text"}}
    )
    assert wrong.status_code == 200 and not wrong.json()["ok"]
    assert {e["field"] for e in wrong.json()["errors"]} == {"[0].data", "[1].data"}

    made = await api.post(
        _base(c) + "/", headers=key, json={"name": "SCADA export", "source": "urn:vendor:scada", "mapping": MAPPING}
    )
    assert made.status_code == 201, made.text
    saved = await api.post(f"{_base(c)}/{made.json()['id']}/test-mapping", headers=key, json={"payload": VENDOR})
    assert saved.json()["ok"] and {e["source"] for e in saved.json()["events"]} == {"urn:vendor:scada"}
    events = await api.get("/api/v1/events", headers=key)
    assert events.json()["total"] == 0


async def test_a_bad_mapping_or_config_is_refused_when_saved(api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    key = auth(c.key)
    r = await api.post(_base(c) + "/", headers=key, json={"name": "x", "mapping": {"id": "uid[", "time": "ts"}})
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["mapping.id"]
    r2 = await api.post(_base(c) + "/", headers=key, json={"name": "x", "kind": "mqtt", "config": {"qos": 1}})
    assert r2.status_code == 422 and r2.json()["errors"][0]["field"] == "config.topic"
    r3 = await api.post(_base(c) + "/", headers=key, json={"name": "x", "kind": "ftp"})
    assert r3.status_code == 400 or r3.status_code == 422
    made = await api.post(_base(c) + "/", headers=key, json={"name": "ok", "mapping": MAPPING})
    patch = await api.patch(f"{_base(c)}/{made.json()['id']}", headers=key, json={"mapping": {"items": "@["}})
    assert patch.status_code == 422 and patch.json()["errors"][0]["field"] == "mapping.items"
    cleared = await api.patch(f"{_base(c)}/{made.json()['id']}", headers=key, json={"mapping": None})
    assert cleared.status_code == 200 and cleared.json()["mapping"] is None


async def test_a_mapped_webhook_delivery_stores_each_item_once_with_its_own_raw(
    api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    key = auth(c.key)
    made = await api.post(_base(c) + "/", headers=key, json={"name": "SCADA", "mapping": MAPPING})
    hook = made.json()
    body = json.dumps(VENDOR).encode()
    at = datetime.now(UTC)
    for attempt in range(2):
        msg_id = f"msg_{uuid.uuid4().hex}"
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(math.floor(at.timestamp())),
            "webhook-signature": Webhook(hook["secret"]).sign(msg_id, at, body.decode()),
            "content-type": "application/json",
        }
        r = await api.post(hook["webhook_path"], content=body, headers=headers)
        assert r.status_code == (201 if attempt == 0 else 200), r.text
        assert (r.json()["new"], r.json()["duplicates"]) == ((2, 0) if attempt == 0 else (0, 2))
    listed: dict[str, Any] = (await api.get("/api/v1/events", headers=key)).json()
    assert listed["total"] == 2
    assert {e["asset_ref"] for e in listed["items"]} == {"P-1", "P-2"}


async def test_another_tenant_cannot_test_against_a_connection(api: httpx.AsyncClient, world: World) -> None:
    a, b = world.a.customer, world.b.customer
    made = await api.post(_base(a) + "/", headers=auth(a.key), json={"name": "mine", "mapping": MAPPING})
    other = await api.post(
        f"{_base(b)}/{made.json()['id']}/test-mapping", headers=auth(b.key), json={"payload": VENDOR}
    )
    assert other.status_code == 404
    cross = await api.post(
        f"{_base(a)}/{made.json()['id']}/test-mapping", headers=auth(b.key), json={"payload": VENDOR}
    )
    assert cross.status_code in (403, 404)
