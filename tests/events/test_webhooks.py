"""Signed webhooks into ``/hooks/{connection_id}``, as the Standard Webhooks reference library signs
them, and the two vendor schemes.

A verified delivery becomes one event, stored once however often it is repeated; a delivery that does
not verify (wrong secret, tampered body, stale timestamp) is refused with one message and stores no
event; every delivery is logged for the connection's administrator, and no other tenant sees it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from andon.connectors.sources.repository import SourceConnectionRepository
from andon.connectors.sources.verifiers import sign_standard
from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.db.scope import apply_principal_scope
from andon.platform.tenancy.principal import system_principal
from andon.tenants.orgs.service import CustomerService
from tests.support.ingress import connection_deliveries as _deliveries
from tests.support.ingress import event_page as _events
from tests.support.workers import drain, relay_all, running_worker
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio
ALARM = "dev.andon.machine.alarm.v1"
DOWNTIME = "dev.andon.downtime.started.v1"
PAYLOAD = {"code": "E42", "message": "Over temperature", "value": 96.5, "vendor_field": "kept"}


async def _connection(api: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    r = await api.post(
        f"/api/v1/customers/{tenant.customer_id}/connections/",
        headers=auth(tenant.key),
        json={"name": f"hook {uuid.uuid4().hex[:8]}", "event_type": ALARM, **fields},
    )
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()
    return made


def _signed(secret: str, body: bytes, *, msg_id: str | None = None, at: datetime | None = None) -> dict[str, str]:
    """The headers the Standard Webhooks reference library puts on a delivery."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


async def _deliver(api: httpx.AsyncClient, connection: dict[str, Any], body: bytes, headers: dict[str, str]) -> Any:
    return await api.post(connection["webhook_path"], content=body, headers=headers)


async def test_a_delivery_signed_by_the_reference_library_is_accepted_once(
    api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    hook = await _connection(api, c)
    body = json.dumps(PAYLOAD).encode()
    headers = _signed(hook["secret"], body, msg_id="msg_first")
    first = await _deliver(api, hook, body, headers)
    assert first.status_code == 201, first.text
    assert first.json()["event_id"] == "msg_first" and first.json()["source"] == hook["source"]
    assert first.json()["duplicate"] is False

    # The same delivery again (a sender's retry, or a replay inside the window): the original answer.
    again = await _deliver(api, hook, body, headers)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"] and again.json()["duplicate"] is True

    events = await _events(api, c)
    assert events["total"] == 1
    event = events["items"][0]
    assert (event["type"], event["source"], event["event_id"]) == (ALARM, hook["source"], "msg_first")
    assert event["data"] == PAYLOAD and event["channel"] == "webhook"

    log = await _deliveries(api, c, hook)
    assert [(d["outcome"], d["status_code"], d["webhook_id"]) for d in log] == [
        ("duplicate", 200, "msg_first"),
        ("accepted", 201, "msg_first"),
    ]
    assert log[0]["event_ids"] == log[1]["event_ids"] == [first.json()["id"]]
    read = (await api.get(f"/api/v1/customers/{c.customer_id}/connections/{hook['id']}", headers=auth(c.key))).json()
    assert (read["deliveries_accepted"], read["deliveries_duplicate"], read["deliveries_refused"]) == (1, 1, 0)
    assert read["last_delivery_outcome"] == "duplicate" and read["last_delivery_at"]


async def test_what_does_not_verify_is_refused_alike_and_stores_nothing(api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    hook = await _connection(api, c)
    body = json.dumps(PAYLOAD).encode()
    now = datetime.now(UTC)
    other_secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    tampered_headers = _signed(hook["secret"], body)
    cases: list[tuple[str, bytes, dict[str, str]]] = [
        ("stale", body, _signed(hook["secret"], body, at=now - timedelta(minutes=10))),
        ("future", body, _signed(hook["secret"], body, at=now + timedelta(minutes=10))),
        ("wrong secret", body, _signed(other_secret, body)),
        ("tampered", body.replace(b"96.5", b"16.5"), tampered_headers),
        ("unsigned", body, {"content-type": "application/json"}),
        ("garbled", body, {**_signed(hook["secret"], body), "webhook-signature": "v1"}),
        ("not a time", body, {**_signed(hook["secret"], body), "webhook-timestamp": "soon"}),
    ]
    details = set()
    for name, content, headers in cases:
        r = await _deliver(api, hook, content, headers)
        assert r.status_code == 401, (name, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert "www-authenticate" not in r.headers
        details.add(r.json()["detail"])
    assert len(details) == 1  # a prober learns nothing about which check failed

    # A connection's own window may be narrower than the library's five minutes.
    narrow = await _connection(api, c, tolerance_seconds=60)
    late = await _deliver(api, narrow, body, _signed(narrow["secret"], body, at=now - timedelta(seconds=120)))
    assert late.status_code == 401
    assert (await _deliver(api, narrow, body, _signed(narrow["secret"], body))).status_code == 201

    assert (await _events(api, c))["total"] == 1  # only the narrow connection's good delivery
    log = await _deliveries(api, c, hook)
    assert len(log) == len(cases) and {d["outcome"] for d in log} == {"refused"}
    assert all(d["status_code"] == 401 and d["event_ids"] == [] for d in log)
    # The administrator's log says what the sender is not told.
    reasons = [d["reason"] for d in reversed(log)]
    assert "more than 300 s from now" in reasons[0] and "no webhook-signature matches" in reasons[2]


async def test_unknown_and_disabled_connections_do_not_exist(api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    hook = await _connection(api, c)
    body = json.dumps(PAYLOAD).encode()
    unknown = await api.post(f"/hooks/{uuid.uuid4()}", content=body, headers=_signed(hook["secret"], body))
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    assert (await api.post("/hooks/not-a-uuid", content=body)).status_code == 404
    off = await api.patch(
        f"/api/v1/customers/{c.customer_id}/connections/{hook['id']}", headers=auth(c.key), json={"enabled": False}
    )
    assert off.status_code == 200
    disabled = await _deliver(api, hook, body, _signed(hook["secret"], body))
    assert disabled.status_code == 404 and disabled.json()["detail"] == unknown.json()["detail"]
    assert (await _events(api, c))["total"] == 0
    log = await _deliveries(api, c, hook)
    assert [(d["outcome"], d["status_code"], d["reason"]) for d in log] == [
        ("refused", 404, "the connection is disabled")
    ]

    # A suspended customer takes no deliveries at all, whatever its connections say.
    on = await api.patch(
        f"/api/v1/customers/{c.customer_id}/connections/{hook['id']}", headers=auth(c.key), json={"enabled": True}
    )
    assert on.status_code == 200
    suspended = await api.patch(
        f"/api/v1/customers/{c.customer_id}", json={"status": "suspended"}, headers=auth(world.a.key)
    )
    assert suspended.status_code == 200, suspended.text
    refused = await _deliver(api, hook, body, _signed(hook["secret"], body))
    assert refused.status_code == 404 and refused.json()["detail"] == unknown.json()["detail"]
    by_partner = await api.get("/api/v1/events", headers=auth(world.a.key), params={"customer_id": str(c.customer_id)})
    assert by_partner.status_code == 200 and by_partner.json()["total"] == 0


async def _expire_previous_secret(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant, connection_id: str
) -> None:
    """The rollover window has passed (moved, rather than waited for)."""
    system = system_principal(ALL_PERMISSIONS, "test")
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system)
        ctx = await CustomerService(session, system).open_tenant(tenant.customer_id)
        connection = await SourceConnectionRepository(session, ctx).get(uuid.UUID(connection_id))
        assert connection is not None and connection.previous_secret_expires_at is not None
        connection.previous_secret_expires_at = datetime.now(UTC) - timedelta(seconds=1)


async def test_after_rotation_both_secrets_verify_until_the_rollover_ends(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    c = world.a.customer
    hook = await _connection(api, c)
    old = hook["secret"]
    rotated = await api.post(
        f"/api/v1/customers/{c.customer_id}/connections/{hook['id']}/rotate-secret", headers=auth(c.key)
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    expires = datetime.fromisoformat(rotated.json()["previous_secret_expires_at"])
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)

    def body(n: int) -> bytes:
        return json.dumps({**PAYLOAD, "code": f"E{n}"}).encode()

    assert (await _deliver(api, hook, body(1), _signed(old, body(1)))).status_code == 201
    assert (await _deliver(api, hook, body(2), _signed(new, body(2)))).status_code == 201
    await _expire_previous_secret(sessionmaker, c, hook["id"])
    assert (await _deliver(api, hook, body(3), _signed(old, body(3)))).status_code == 401
    assert (await _deliver(api, hook, body(4), _signed(new, body(4)))).status_code == 201

    # No rollover: the replaced secret stops at once.
    cut = await api.post(
        f"/api/v1/customers/{c.customer_id}/connections/{hook['id']}/rotate-secret",
        headers=auth(c.key),
        json={"rollover_seconds": 0},
    )
    newest = cut.json()["secret"]
    assert cut.json()["previous_secret_expires_at"] is None
    assert (await _deliver(api, hook, body(5), _signed(new, body(5)))).status_code == 401
    assert (await _deliver(api, hook, body(6), _signed(newest, body(6)))).status_code == 201
    assert (await _events(api, c))["total"] == 4


async def test_vendor_verifiers_accept_the_right_proof_and_refuse_a_wrong_one(
    api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    body = json.dumps(PAYLOAD).encode()
    shared = await _connection(api, c, verifier="shared_secret_header", signature_header="X-Api-Secret")
    assert (await _deliver(api, shared, body, {"X-Api-Secret": shared["secret"]})).status_code == 201
    assert (await _deliver(api, shared, body, {"X-Api-Secret": shared["secret"][:-1]})).status_code == 401
    assert (await _deliver(api, shared, body, {})).status_code == 401
    # Without a webhook-id, the event id is a hash of the body: the same body again is the same event.
    again = await _deliver(api, shared, body, {"x-api-secret": shared["secret"]})
    assert again.status_code == 200 and again.json()["event_id"] == hashlib.sha256(body).hexdigest()

    signed = await _connection(
        api, c, verifier="hmac_sha256_body", signature_header="X-Hub-Signature-256", signature_prefix="sha256="
    )
    key = signed["secret"].encode()
    digest = hmac.new(key, body, hashlib.sha256).hexdigest()
    assert (await _deliver(api, signed, body, {"X-Hub-Signature-256": f"sha256={digest}"})).status_code == 201
    wrong = hmac.new(b"another secret", body, hashlib.sha256).hexdigest()
    assert (await _deliver(api, signed, body, {"X-Hub-Signature-256": f"sha256={wrong}"})).status_code == 401
    assert (await _deliver(api, signed, body, {"X-Hub-Signature-256": digest})).status_code == 401  # no prefix
    tampered = body.replace(b"E42", b"E43")
    assert (await _deliver(api, signed, tampered, {"X-Hub-Signature-256": f"sha256={digest}"})).status_code == 401

    b64 = await _connection(
        api, c, verifier="hmac_sha256_body", signature_header="X-Signature", digest_encoding="base64"
    )
    other = json.dumps({**PAYLOAD, "code": "B64"}).encode()
    sig = base64.b64encode(hmac.new(b64["secret"].encode(), other, hashlib.sha256).digest()).decode()
    assert (await _deliver(api, b64, other, {"X-Signature": sig})).status_code == 201
    assert (await _deliver(api, b64, other, {"X-Signature": sig.lower()})).status_code == 401

    assert (await _events(api, c))["total"] == 3
    refused = [d for d in await _deliveries(api, c, signed) if d["outcome"] == "refused"]
    assert len(refused) == 3


async def test_a_cloudevent_is_kept_as_a_cloudevent(api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    hook = await _connection(api, c)
    event = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": hook["source"] + "/press-7",
        "type": DOWNTIME,
        "time": "2026-11-25T08:00:00Z",
        "assetid": f"{c.slug}-P",
        "severity": "high",
        "data": {"reason": "Hydraulic leak"},
    }
    body = json.dumps(event).encode()
    r = await _deliver(api, hook, body, _signed(hook["secret"], body, msg_id="delivery-1"))
    assert r.status_code == 201, r.text
    # The CloudEvent's own id and source, not the delivery's.
    assert (r.json()["event_id"], r.json()["source"]) == ("ce-1", hook["source"] + "/press-7")
    # The same event in another delivery (a re-send with a new webhook-id) is still the same event.
    resent = await _deliver(api, hook, body, _signed(hook["secret"], body, msg_id="delivery-2"))
    assert resent.status_code == 200 and resent.json()["id"] == r.json()["id"]
    stored = (await _events(api, c, type=DOWNTIME))["items"][0]
    assert stored["asset_id"] == str(c.asset_id) and stored["severity"] == "high"
    assert stored["data"] == {"reason": "Hydraulic leak"} and stored["time"].startswith("2026-11-25T08:00:00")

    # No source: the connection's is stamped on it.
    unsourced = json.dumps({k: v for k, v in event.items() if k != "source"} | {"id": "ce-2"}).encode()
    r2 = await _deliver(api, hook, unsourced, _signed(hook["secret"], unsourced))
    assert r2.status_code == 201 and r2.json()["source"] == hook["source"]
    # Another sender's source is not this connection's to use.
    foreign = json.dumps(event | {"id": "ce-3", "source": "urn:plc:press-line"}).encode()
    r3 = await _deliver(api, hook, foreign, _signed(hook["secret"], foreign))
    assert r3.status_code == 422 and r3.json()["errors"][0]["field"] == "source"
    lookalike = json.dumps(event | {"id": "ce-4", "source": hook["source"] + "-x"}).encode()
    assert (await _deliver(api, hook, lookalike, _signed(hook["secret"], lookalike))).status_code == 422
    invalid = json.dumps(event | {"id": "ce-5", "data": {}}).encode()
    r5 = await _deliver(api, hook, invalid, _signed(hook["secret"], invalid))
    assert r5.status_code == 422 and r5.json()["errors"][0]["field"] == "data.reason"
    assert (await _events(api, c))["total"] == 2


async def test_plain_json_becomes_data_of_the_connection_type_and_is_checked(
    api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    hook = await _connection(api, c)
    missing = json.dumps({"code": "E1"}).encode()
    r = await _deliver(api, hook, missing, _signed(hook["secret"], missing))
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == ["data.message"]
    wrong_kind = json.dumps({"code": "E1", "message": "m", "state": "melting"}).encode()
    r2 = await _deliver(api, hook, wrong_kind, _signed(hook["secret"], wrong_kind))
    assert r2.status_code == 422 and r2.json()["errors"][0]["field"] == "data.state"
    not_json = b"code=E1"
    r3 = await _deliver(api, hook, not_json, _signed(hook["secret"], not_json))
    assert r3.status_code == 422 and r3.json()["errors"][0]["field"] == "$"

    only_cloudevents = await _connection(api, c, event_type=None)
    plain = json.dumps(PAYLOAD).encode()
    r4 = await _deliver(api, only_cloudevents, plain, _signed(only_cloudevents["secret"], plain))
    assert r4.status_code == 422 and r4.json()["errors"][0]["field"] == "specversion"

    assert (await _events(api, c))["total"] == 0
    log = await _deliveries(api, c, hook)
    assert [d["status_code"] for d in log] == [422, 422, 422]
    assert "data.message" in log[-1]["reason"]


async def test_a_webhook_event_reaches_the_worker(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    hook = await _connection(api, c)
    for n in range(3):
        body = json.dumps({**PAYLOAD, "code": f"W{n}"}).encode()
        assert (await _deliver(api, hook, body, _signed(hook["secret"], body))).status_code == 201
    assert await relay_all(app) == 3
    with running_worker(app):
        drain(app)
    items = (await _events(api, c))["items"]
    assert len(items) == 3 and {e["status"] for e in items} == {"processed"}


async def test_another_tenant_sees_none_of_it(api: httpx.AsyncClient, world: World) -> None:
    a, b = world.a.customer, world.b.customer
    hook = await _connection(api, a)
    body = json.dumps(PAYLOAD).encode()
    assert (await _deliver(api, hook, body, _signed(hook["secret"], body))).status_code == 201
    bad = await _deliver(api, hook, body, _signed(hook["secret"], body, at=datetime.now(UTC) - timedelta(hours=1)))
    assert bad.status_code == 401
    base_b = f"/api/v1/customers/{b.customer_id}/connections"
    assert (await api.get(f"{base_b}/{hook['id']}", headers=auth(b.key))).status_code == 404
    assert (await api.get(f"{base_b}/{hook['id']}/deliveries", headers=auth(b.key))).status_code == 404
    into_a = f"/api/v1/customers/{a.customer_id}/connections/{hook['id']}/deliveries"
    assert (await api.get(into_a, headers=auth(b.key))).status_code == 404
    assert (await _events(api, b))["total"] == 0 and (await _events(api, a))["total"] == 1
    # A CloudEvent naming another tenant is refused, not delivered there.
    event = {"specversion": "1.0", "id": "x-1", "type": ALARM, "tenantid": str(b.customer_id), "data": PAYLOAD}
    foreign = json.dumps(event).encode()
    assert (await _deliver(api, hook, foreign, _signed(hook["secret"], foreign))).status_code == 404
    assert (await _events(api, b))["total"] == 0


async def test_what_andon_signs_verifies_with_the_reference_library(api: httpx.AsyncClient, world: World) -> None:
    secret = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    body = json.dumps({"hello": "wörld"}, ensure_ascii=False).encode()
    at = datetime.now(UTC)
    headers = sign_standard(secret, "msg_out_1", at, body)
    Webhook(secret).verify(body, headers)  # raises on any mismatch
    assert headers["webhook-signature"] == Webhook(secret).sign("msg_out_1", at, body.decode())
    # And Andon accepts what it signs itself.
    hook = await _connection(api, world.a.customer)
    payload = json.dumps(PAYLOAD).encode()
    r = await _deliver(api, hook, payload, sign_standard(hook["secret"], "msg_self", at, payload))
    assert r.status_code == 201, r.text


@pytest.mark.postgres
async def test_row_level_security_opens_connections_only_to_the_lookup(
    api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """The hook finds a connection before any tenant is known, in the authentication lookup mode; its
    deliveries are never visible that way, only inside the tenant."""
    from sqlalchemy import text

    hook = await _connection(api, world.a.customer)
    body = json.dumps(PAYLOAD).encode()
    assert (await _deliver(api, hook, body, _signed(hook["secret"], body))).status_code == 201

    async def count(table: str, **settings: str) -> int:
        async with sessionmaker() as session, session.begin():
            for name, value in settings.items():
                await session.execute(text("SELECT set_config(:n, :v, true)"), {"n": f"andon.{name}", "v": value})
            return int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())  # noqa: S608

    a, b = str(world.a.customer.customer_id), str(world.b.customer.customer_id)
    assert await count("source_connections") == 0 and await count("webhook_deliveries") == 0
    assert await count("source_connections", auth_lookup="on") == 1
    assert await count("webhook_deliveries", auth_lookup="on") == 0
    assert await count("webhook_deliveries", tenant_id=a) == 1 and await count("webhook_deliveries", tenant_id=b) == 0
    assert await count("source_connections", tenant_id=b) == 0
