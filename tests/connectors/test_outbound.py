"""Outbound connections: the admin API, the generic adapters against vendor fakes over real sockets
(failure modes included), the circuit breaker and rate limit, and secrets that never leak."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from andon.connectors.outbound.errors import ConnectorError
from andon.connectors.outbound.runtime import BREAKER_FAILURES, OutboundCalls
from andon.platform.engine.capabilities import FAILED, FORBIDDEN, INVALID, NOT_FOUND, UNAVAILABLE
from andon.platform.engine.executor import ENGINE
from andon.platform.tenancy.context import TenantContext, TenantId
from tests.support.vendor_fake import Scripted, VendorFake, vendor_fake
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio

SECRET = "sk_live_Zq8VtY4nW2pL6sR1xK9m"


@pytest.fixture
def vendor() -> Iterator[VendorFake]:
    with vendor_fake() as fake:
        yield fake


@pytest.fixture
async def calls(app: Litestar, sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[OutboundCalls]:
    made = OutboundCalls(sessionmaker, app.state.secretbox, allow_private=True)
    yield made
    await made.egress.close()


def _base(world: World) -> str:
    return f"/api/v1/customers/{world.a.customer.customer_id}/outbound-connections"


def _tenant(world: World) -> TenantContext:
    return TenantContext(
        tenant_id=TenantId(world.a.customer.customer_id), partner_id=world.a.partner_id, principal=ENGINE
    )


async def _create(api: httpx.AsyncClient, world: World, **body: Any) -> dict[str, Any]:
    r = await api.post(_base(world) + "/", headers=auth(world.a.customer.key), json=body)
    assert r.status_code == 201, r.text
    answer: dict[str, Any] = r.json()
    return answer


def _rest(vendor: VendorFake, **config: Any) -> dict[str, Any]:
    return {"base_url": vendor.url + "/api", "auth": "api_key", **config}


async def test_connections_are_typed_their_secrets_write_only_and_other_tenants_see_nothing(
    api: httpx.AsyncClient, world: World, vendor: VendorFake
) -> None:
    key = auth(world.a.customer.key)
    types = await api.get("/api/v1/connector-types", headers=key)
    assert types.status_code == 200
    by_key = {t["key"]: t for t in types.json()}
    assert {"rest", "webhook", "slack", "teams"} <= set(by_key)
    assert by_key["rest"]["config_schema"]["$ref"].endswith("RestConfig")
    assert [c["name"] for c in by_key["slack"]["capabilities"]] == ["notify"]

    made = await _create(
        api, world, key="cmms", name="CMMS", type="rest", config=_rest(vendor), secrets={"api_key": SECRET}
    )
    assert made["secrets_set"] == ["api_key"] and made["secrets_missing"] == []
    assert made["capabilities"] == ["cmms.request"]
    assert SECRET not in json.dumps(made)

    for body, field in [
        ({"key": "x1", "name": "X", "type": "fax"}, "type"),
        ({"key": "x2", "name": "X", "type": "rest", "config": {"base_url": "ftp://nope"}}, "config.base_url"),
        (
            {"key": "x3", "name": "X", "type": "rest", "config": _rest(vendor), "secrets": {"pin": "1234"}},
            "secrets.pin",
        ),
        ({"key": "http", "name": "X", "type": "rest", "config": _rest(vendor)}, "key"),
        ({"key": "x4", "name": "X", "type": "rest", "config": {"base_url": vendor.url, "auth": "basic"}}, "config"),
    ]:
        r = await api.post(_base(world) + "/", headers=key, json=body)
        assert r.status_code == 422, r.text
        assert [e["field"] for e in r.json()["errors"]] == [field], r.json()
    again = await api.post(
        _base(world) + "/", headers=key, json={"key": "cmms", "name": "Again", "type": "rest", "config": _rest(vendor)}
    )
    assert again.status_code == 409

    # A secret changes by naming it; the others stay.
    r = await api.patch(f"{_base(world)}/{made['id']}", headers=key, json={"secrets": {"api_key": SECRET + "2"}})
    assert r.status_code == 200 and r.json()["secrets_set"] == ["api_key"] and SECRET not in r.text

    other = f"/api/v1/customers/{world.b.customer.customer_id}/outbound-connections"
    listed = await api.get(other + "/", headers=auth(world.b.customer.key))
    assert listed.status_code == 200 and listed.json()["total"] == 0
    assert (await api.get(f"{other}/{made['id']}", headers=auth(world.b.customer.key))).status_code == 404
    # Even naming the first tenant's path, the second tenant's key reaches nothing.
    assert (await api.get(f"{_base(world)}/{made['id']}", headers=auth(world.b.customer.key))).status_code in (403, 404)


async def test_rest_calls_carry_the_key_and_idempotency_key_and_map_failures(
    api: httpx.AsyncClient, world: World, vendor: VendorFake, calls: OutboundCalls
) -> None:
    await _create(api, world, key="erp", name="ERP", type="rest", config=_rest(vendor), secrets={"api_key": SECRET})
    tenant = _tenant(world)
    answer = await calls.call(
        tenant,
        "erp",
        "request",
        {"path": "/orders", "json": {"qty": 3}, "query": {"site": "a b"}},
        idempotency_key="k-1",
    )
    assert answer == {"status": 200, "body": {"ok": True, "echo": {"qty": 3}}}
    seen = vendor.api_requests()[-1]
    assert (seen.method, seen.path) == ("POST", "/api/orders?site=a+b")
    assert seen.headers["x-api-key"] == SECRET and seen.headers["idempotency-key"] == "k-1"

    cases: list[tuple[Scripted, str, str]] = [
        (Scripted(429, {"e": 1}, {"Retry-After": "2"}), FAILED, "429"),
        (Scripted(503, {"e": "down"}), UNAVAILABLE, "503"),
        (Scripted(500, {"e": "boom"}), FAILED, "500"),
        (Scripted(404, {"e": "none"}), NOT_FOUND, "404"),
        (Scripted(403, {"e": "no"}), FORBIDDEN, "credentials"),
        (Scripted(422, {"e": "bad qty"}), INVALID, "bad qty"),
        (Scripted(200, delay=1.5), UNAVAILABLE, "did not answer within 1 s"),
    ]
    for scripted, kind, words in cases:
        vendor.queue(scripted)
        with pytest.raises(ConnectorError) as failed:
            await calls.call(tenant, "erp", "request", {"path": "/x"}, idempotency_key="k-2", within=1)
        assert failed.value.kind == kind and words in str(failed.value), (scripted, failed.value)
        if scripted.status == 429:
            assert failed.value.retry_after == 2.0

    # A malformed (non-JSON) success is handed on as text; a bad input never reaches the vendor.
    vendor.queue(Scripted(200, raw=b"<html>ok</html>"))
    assert (await calls.call(tenant, "erp", "request", {"method": "GET"}, idempotency_key="k-3")) == {
        "status": 200,
        "body": "<html>ok</html>",
    }
    before = len(vendor.api_requests())
    with pytest.raises(ConnectorError) as bad:
        await calls.call(tenant, "erp", "request", {"method": "TRACE"}, idempotency_key="k-4")
    assert bad.value.kind == INVALID and "inputs" in str(bad.value)
    with pytest.raises(ConnectorError) as elsewhere:
        await calls.call(tenant, "erp", "request", {"path": "http://169.254.169.254/"}, idempotency_key="k-5")
    assert elsewhere.value.kind == INVALID
    with pytest.raises(ConnectorError) as unknown:
        await calls.call(tenant, "erp", "notify", {"text": "hi"}, idempotency_key="k-6")
    assert unknown.value.kind == INVALID and "offer request" in str(unknown.value)
    assert len(vendor.api_requests()) == before

    # Every call is on record, newest first, with its outcome and latency.
    made = (await api.get(_base(world) + "/", headers=auth(world.a.customer.key))).json()["items"][0]
    recorded = (await api.get(f"{_base(world)}/{made['id']}/calls", headers=auth(world.a.customer.key))).json()
    outcomes = [c["outcome"] for c in recorded]
    assert outcomes[:2] == ["invalid", "ok"] and "unavailable" in outcomes and "forbidden" in outcomes
    assert all(c["latency_ms"] >= 0 for c in recorded)


async def test_oauth2_tokens_are_cached_and_refreshed_once_after_a_401(
    api: httpx.AsyncClient, world: World, vendor: VendorFake, calls: OutboundCalls
) -> None:
    vendor.oauth = True
    config = {
        "base_url": vendor.url,
        "auth": "oauth2_client_credentials",
        "token_url": vendor.url + "/oauth/token",
        "client_id": vendor.client_id,
        "scope": "work_orders",
    }
    await _create(
        api, world, key="cmms", name="CMMS", type="rest", config=config, secrets={"client_secret": vendor.client_secret}
    )
    tenant = _tenant(world)
    for n in range(3):
        assert (await calls.call(tenant, "cmms", "request", {"path": f"/wo/{n}"}, idempotency_key=f"o{n}"))[
            "status"
        ] == 200
    assert vendor.issued == 1  # one token for all three calls

    vendor.revoke_tokens()  # the token expired early on the vendor's side
    assert (await calls.call(tenant, "cmms", "request", {"path": "/wo/9"}, idempotency_key="o9"))["status"] == 200
    assert vendor.issued == 2
    assert [r.path for r in vendor.api_requests()][-2:] == ["/wo/9", "/wo/9"]  # refused once, then retried

    # Wrong client credentials: a clear "forbidden", not a loop of token requests.
    r = await api.post(
        _base(world) + "/",
        headers=auth(world.a.customer.key),
        json={
            "key": "cmms_bad",
            "name": "Bad",
            "type": "rest",
            "config": config,
            "secrets": {"client_secret": "wrong-one"},
        },
    )
    assert r.status_code == 201
    with pytest.raises(ConnectorError) as refused:
        await calls.call(tenant, "cmms_bad", "request", {}, idempotency_key="o10")
    assert refused.value.kind == FORBIDDEN and "refused the client credentials" in str(refused.value)


async def test_the_circuit_opens_after_failures_in_a_row_and_the_rate_limit_holds(
    api: httpx.AsyncClient,
    world: World,
    vendor: VendorFake,
    sessionmaker: async_sessionmaker[AsyncSession],
    app: Litestar,
) -> None:
    now = [1000.0]
    calls = OutboundCalls(sessionmaker, app.state.secretbox, allow_private=True, clock=lambda: now[0])
    await _create(
        api,
        world,
        key="qms",
        name="QMS",
        type="rest",
        config=_rest(vendor),
        secrets={"api_key": SECRET},
        rate_per_second=100,
    )
    tenant = _tenant(world)
    vendor.queue(*[Scripted(503, {"e": "down"}) for _ in range(BREAKER_FAILURES)])
    for _ in range(BREAKER_FAILURES):
        with pytest.raises(ConnectorError):
            await calls.call(tenant, "qms", "request", {}, idempotency_key="b")
    sent = len(vendor.api_requests())
    with pytest.raises(ConnectorError) as open_:
        await calls.call(tenant, "qms", "request", {}, idempotency_key="b")
    assert open_.value.kind == UNAVAILABLE and "calls resume in 30 s" in str(open_.value)
    assert len(vendor.api_requests()) == sent  # failed fast, the vendor left alone
    now[0] += 31
    assert (await calls.call(tenant, "qms", "request", {}, idempotency_key="b"))["status"] == 200  # the trial call
    assert not calls.breakers.is_open(next(iter(calls._limits)))

    await _create(
        api,
        world,
        key="slow",
        name="Slow",
        type="rest",
        config=_rest(vendor),
        secrets={"api_key": SECRET},
        rate_per_second=2,
    )
    await calls.call(tenant, "slow", "request", {}, idempotency_key="r1")
    await calls.call(tenant, "slow", "request", {}, idempotency_key="r2")
    with pytest.raises(ConnectorError) as limited:
        await calls.call(tenant, "slow", "request", {}, idempotency_key="r3")
    assert (
        limited.value.kind == FAILED
        and limited.value.retry_after is not None
        and "2 calls a second" in str(limited.value)
    )
    now[0] += 1
    await calls.call(tenant, "slow", "request", {}, idempotency_key="r3")
    await calls.egress.close()


async def test_no_secret_reaches_errors_call_records_audit_or_logs(
    api: httpx.AsyncClient, world: World, vendor: VendorFake, calls: OutboundCalls, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    made = await _create(
        api, world, key="crm", name="CRM", type="rest", config=_rest(vendor), secrets={"api_key": SECRET}
    )
    # A careless vendor echoes the key back in its error; a careless workflow puts it in the inputs.
    vendor.queue(Scripted(400, {"error": f"key {SECRET} is not allowed for /cases"}))
    with pytest.raises(ConnectorError) as failed:
        await calls.call(
            _tenant(world), "crm", "request", {"path": "/cases", "json": {"note": SECRET}}, idempotency_key="s1"
        )
    assert SECRET not in str(failed.value) and "[redacted]" in str(failed.value)

    key = auth(world.a.customer.key)
    texts = [
        (await api.get(f"{_base(world)}/{made['id']}", headers=key)).text,
        (await api.get(_base(world) + "/", headers=key)).text,
        (await api.get(f"{_base(world)}/{made['id']}/calls", headers=key)).text,
        (await api.post(f"{_base(world)}/{made['id']}/check", headers=key)).text,
        (await api.get(f"/api/v1/customers/{world.a.customer.customer_id}/audit", headers=key)).text,
        caplog.text,
    ]
    assert "crm" in texts[0]
    for text in texts:
        assert SECRET not in text
    assert "[redacted]" in texts[2]


async def test_check_connection_reports_what_worked(api: httpx.AsyncClient, world: World, vendor: VendorFake) -> None:
    key = auth(world.a.customer.key)
    good = await _create(
        api, world, key="wms", name="WMS", type="rest", config=_rest(vendor), secrets={"api_key": SECRET}
    )
    r = await api.post(f"{_base(world)}/{good['id']}/check", headers=key)
    assert r.status_code == 200 and r.json()["ok"] is True, r.text
    assert r.json()["steps"][0]["what"] == "reach the base URL"

    missing = await _create(api, world, key="plm", name="PLM", type="rest", config=_rest(vendor))
    assert missing["secrets_missing"] == ["api_key"]
    r = await api.post(f"{_base(world)}/{missing['id']}/check", headers=key)
    assert r.json() == {"ok": False, "steps": [{"what": "secrets", "ok": False, "detail": "not set: api_key"}]}

    vendor.queue(Scripted(401, {"e": "no"}))
    r = await api.post(f"{_base(world)}/{good['id']}/check", headers=key)
    assert r.json()["ok"] is False and "credentials were refused" in r.json()["steps"][0]["detail"]
    read = (await api.get(f"{_base(world)}/{good['id']}", headers=key)).json()
    assert read["last_check_ok"] is False and read["last_check_at"] is not None


async def test_chat_and_signed_webhooks_speak_their_formats(
    api: httpx.AsyncClient, world: World, vendor: VendorFake, calls: OutboundCalls
) -> None:
    tenant = _tenant(world)
    await _create(
        api, world, key="slack", name="Slack", type="slack", secrets={"webhook_url": vendor.url + "/services/T1/B2/xyz"}
    )
    await _create(
        api, world, key="teams", name="Teams", type="teams", secrets={"webhook_url": vendor.url + "/workflows/abc"}
    )
    notify = {
        "text": "Press 4 stopped: hydraulic pressure low",
        "title": "Line 3",
        "severity": "critical",
        "link": "https://andon.example/i/1",
    }
    await calls.call(tenant, "slack", "notify", notify, idempotency_key="n1")
    await calls.call(tenant, "teams", "notify", notify, idempotency_key="n2")
    slack, teams = (r.json() for r in vendor.api_requests()[-2:])
    assert (
        slack["text"].startswith("[CRITICAL] *Line 3*") and slack["blocks"][1]["elements"][0]["url"] == notify["link"]
    )
    card = teams["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["body"][1]["text"] == notify["text"] and card["content"]["body"][0]["color"] == "attention"

    signing = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    await _create(
        api,
        world,
        key="hook",
        name="Hook",
        type="webhook",
        config={"url": vendor.url + "/in"},
        secrets={"signing_secret": signing},
    )
    answer = await calls.call(
        tenant, "hook", "send", {"type": "andon.incident.opened", "data": {"id": 7}}, idempotency_key="andon:run:s1"
    )
    seen = vendor.api_requests()[-1]
    verified = Webhook(signing).verify(seen.body, seen.headers)
    assert verified["type"] == "andon.incident.opened" and verified["data"] == {"id": 7}
    assert seen.headers["webhook-id"] == "andon:run:s1" == answer["webhook_id"]


async def test_a_relay_target_is_never_called_from_the_servers(
    api: httpx.AsyncClient, world: World, vendor: VendorFake, calls: OutboundCalls
) -> None:
    await _create(
        api,
        world,
        key="mes",
        name="MES",
        type="rest",
        config=_rest(vendor),
        secrets={"api_key": SECRET},
        relay_target=True,
    )
    with pytest.raises(ConnectorError) as relayed:
        await calls.call(_tenant(world), "mes", "request", {}, idempotency_key="m1")
    assert relayed.value.kind == UNAVAILABLE and "on-premise relay" in str(relayed.value)
    assert vendor.api_requests() == []
