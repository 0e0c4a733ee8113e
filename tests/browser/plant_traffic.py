"""Plant traffic for a running ``andon dev``, sent as the customer's systems would (the API and a signed
webhook), so the operations and connection pages have rows to show and to act on."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from andon.connectors.sources.verifiers import sign_standard
from tests.browser.conftest import DevServer

CUSTOMER = "acme-castings"
ALARM = "dev.andon.machine.alarm.v1"
API_HOST = "127.0.0.1"


def customer_key(server: DevServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.creds['api_keys']['customers'][CUSTOMER]}"}


def customer_url(server: DevServer, path: str) -> str:
    me = httpx.get(server.url(API_HOST, "/api/v1/me"), headers=customer_key(server))
    assert me.status_code == 200, me.text
    return server.url(API_HOST, f"/api/v1/customers/{me.json()['customer_id']}{path}")


def open_incident(
    server: DevServer, asset: str = "ACME-DCM-01", codes: tuple[str, ...] = ("E1", "E2")
) -> dict[str, Any]:
    """Alarms of one asset, sent in one batch; the open incident they become, once the in-process
    worker has correlated them."""
    events = [
        {
            "specversion": "1.0",
            "id": f"ev-{uuid.uuid4().hex}",
            "source": "urn:plc:die-casting",
            "type": ALARM,
            "assetid": asset,
            "data": {"code": code, "message": f"Alarm {code}", "state": "raised"},
        }
        for code in codes
    ]
    headers = {**customer_key(server), "content-type": "application/cloudevents-batch+json"}
    sent = httpx.post(server.url(API_HOST, "/api/v1/events"), json=events, headers=headers)
    assert sent.status_code == 201, sent.text
    incidents = customer_url(server, "/incidents")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = httpx.get(incidents, headers=customer_key(server), params={"status": "open"}).json()["items"]
        mine = [i for i in found if i["alert_count"] >= len(codes) and asset in i["title"]]
        if mine:
            return dict(mine[0])
        time.sleep(0.2)
    raise AssertionError(f"no open incident for {asset} after 30 s")


def add_connection(server: DevServer, name: str = "MES") -> dict[str, Any]:
    """A webhook connection with one accepted delivery and one refused."""
    made = httpx.post(
        customer_url(server, "/connections/"), headers=customer_key(server), json={"name": name, "event_type": ALARM}
    )
    assert made.status_code == 201, made.text
    connection: dict[str, Any] = made.json()
    body = json.dumps({"code": "E7", "message": "Die temperature high"}).encode()
    hook = server.url(API_HOST, connection["webhook_path"])
    signed = sign_standard(connection["secret"], f"msg_{uuid.uuid4().hex}", datetime.now(UTC), body)
    json_body = {"content-type": "application/json"}
    assert httpx.post(hook, content=body, headers={**signed, **json_body}).status_code == 201
    assert httpx.post(hook, content=body, headers=json_body).status_code == 401
    return connection


def critical_alarm_waiting_for_approval(server: DevServer) -> dict[str, Any]:
    """A critical alarm of the die-casting machine, sent as its PLC would; the approval the demo's
    machine-alarm workflow asks for, once the in-process worker has run the steps before it."""
    subject = f"DCM-{uuid.uuid4().hex[:4]}"
    event = {
        "specversion": "1.0",
        "id": f"ev-{uuid.uuid4().hex}",
        "source": "urn:plc:die-casting",
        "type": "dev.andon.machine.alarm.v1",
        "subject": subject,
        "severity": "critical",
        "assetid": "ACME-DCM-01",
        "data": {"code": "E42", "message": "Die temperature critical", "state": "raised"},
    }
    headers = {**customer_key(server), "content-type": "application/cloudevents+json"}
    sent = httpx.post(server.url(API_HOST, "/api/v1/events"), json=event, headers=headers)
    assert sent.status_code == 201, sent.text
    tasks = customer_url(server, "/tasks/")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = httpx.get(tasks, headers=customer_key(server), params={"status": "open"}).json()["items"]
        mine = [t for t in found if t["kind"] == "approval" and subject in t["title"]]
        if mine:
            return dict(mine[0])
        time.sleep(0.2)
    raise AssertionError(f"no approval for {subject} after 30 s")
