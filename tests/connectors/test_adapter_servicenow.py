"""The ServiceNow adapter against a Table API contract fake: a workflow opens an incident and comments
on it through its steps (a real worker, each call with the step's idempotency key as correlation_id);
updates go as PATCH with only the fields given; ServiceNow's own errors keep their message and kind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.outbound.errors import ConnectorError
from andon.connectors.outbound.runtime import OutboundCalls
from andon.platform.engine.capabilities import INVALID, NOT_FOUND
from andon.platform.engine.executor import ENGINE
from andon.platform.tenancy.context import TenantContext, TenantId
from tests.support.contracts.calling import connect, tenant_of
from tests.support.contracts.server import query_of, serve
from tests.support.contracts.servicenow import ServiceNowFake
from tests.support.workers import drain, running_worker
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio


@pytest.fixture
def servicenow() -> Iterator[ServiceNowFake]:
    with serve(ServiceNowFake("basic")) as fake:
        yield fake


@pytest.fixture
async def calls(app: Litestar, sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[OutboundCalls]:
    made = OutboundCalls(sessionmaker, app.state.secretbox, allow_private=True)
    yield made
    await made.egress.close()


async def test_a_workflow_opens_an_incident_and_comments_on_it(
    app: Litestar, api: httpx.AsyncClient, world: World, servicenow: ServiceNowFake
) -> None:
    c = world.a.customer
    base = f"/api/v1/customers/{c.customer_id}"
    await connect(api, world, "itsm", "servicenow", servicenow)
    steps: list[dict[str, Any]] = [
        {
            "key": "ticket",
            "kind": "action",
            "capability": "itsm.create_ticket",
            "inputs": {
                "short_description": "{{ event.subject }} stopped",
                "urgency": "1",
                "cmdb_ci": "{{ event.subject }}",
            },
            "next": "note",
        },
        {
            "key": "note",
            "kind": "action",
            "capability": "itsm.add_comment",
            "inputs": {
                "ticket_id": "{{ steps.ticket.ticket_id }}",
                "text": "Andon paged the line lead for {{ steps.ticket.number }}",
            },
        },
    ]
    r = await api.post(
        f"{base}/workflows/",
        headers=auth(c.key),
        json={"key": "itsm", "name": "Ticket", "definition": {"steps": steps}},
    )
    assert r.status_code == 201, r.text
    started = await api.post(
        f"{base}/workflows/{r.json()['id']}/runs", headers=auth(c.key), json={"event": {"subject": "Press 4"}}
    )
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    with running_worker(app):
        drain(app)

    detail = (await api.get(f"{base}/runs/{run_id}", headers=auth(c.key))).json()
    by_key = {s["step_key"]: s for s in detail["steps"]}
    assert by_key["ticket"]["status"] == "succeeded" and by_key["note"]["status"] == "succeeded", by_key
    (record,) = servicenow.records.values()
    assert by_key["ticket"]["output"] == {
        "ticket_id": record["sys_id"],
        "number": "INC0010001",
        "state": "1",
        "url": f"{servicenow.url}/nav_to.do?uri=incident.do%3Fsys_id%3D{record['sys_id']}",
    }
    assert (record["short_description"], record["urgency"], record["cmdb_ci"]) == ("Press 4 stopped", "1", "Press 4")
    assert record["correlation_id"] == f"andon:{run_id}:ticket" and record["correlation_display"] == "Andon"
    assert "description" not in record  # not given, not sent
    assert servicenow.journal == [(record["sys_id"], "work_notes", "Andon paged the line lead for INC0010001")]
    create, note = servicenow.api_requests()
    assert create.path.startswith("/api/now/table/incident?") and query_of(create) == {
        "sysparm_exclude_reference_link": "true",
        "sysparm_fields": "sys_id,number,state,sys_created_on",
    }
    assert note.method == "PATCH" and note.path.startswith(f"/api/now/table/incident/{record['sys_id']}?")
    assert create.headers["authorization"].startswith("Basic ")


async def test_updates_patch_only_the_fields_given_and_servicenow_errors_keep_their_words(
    api: httpx.AsyncClient, world: World, calls: OutboundCalls, servicenow: ServiceNowFake
) -> None:
    await connect(api, world, "itsm", "servicenow", servicenow)
    tenant = tenant_of(world)
    ticket = await calls.call(tenant, "itsm", "create_ticket", {"short_description": "Leak"}, idempotency_key="s1")
    sys_id = ticket["ticket_id"]

    with pytest.raises(ConnectorError) as policy:
        await calls.call(tenant, "itsm", "update_ticket", {"ticket_id": sys_id, "state": "6"}, idempotency_key="s2")
    assert policy.value.kind == INVALID and "Resolution code is mandatory" in str(policy.value)

    resolved = await calls.call(
        tenant,
        "itsm",
        "update_ticket",
        {"ticket_id": sys_id, "state": "6", "close_code": "Solved (Permanently)", "close_notes": "Seal replaced"},
        idempotency_key="s3",
    )
    assert resolved["state"] == "6" and resolved["number"] == ticket["number"]
    assert servicenow.api_requests()[-1].json() == {
        "state": "6",
        "close_code": "Solved (Permanently)",
        "close_notes": "Seal replaced",
    }
    await calls.call(
        tenant,
        "itsm",
        "add_comment",
        {"ticket_id": sys_id, "text": "Fixed", "visibility": "customer"},
        idempotency_key="s4",
    )
    assert servicenow.journal[-1] == (sys_id, "comments", "Fixed")

    with pytest.raises(ConnectorError) as gone:
        await calls.call(tenant, "itsm", "add_comment", {"ticket_id": "0" * 32, "text": "?"}, idempotency_key="s5")
    assert gone.value.kind == NOT_FOUND and "No Record found" in str(gone.value)
    # A sys_id is 32 hex digits: anything else (another path, a query) is refused before it is sent.
    sent = len(servicenow.api_requests())
    with pytest.raises(ConnectorError) as refused:
        await calls.call(tenant, "itsm", "add_comment", {"ticket_id": "../sys_user", "text": "?"}, idempotency_key="s6")
    assert refused.value.kind == INVALID and len(servicenow.api_requests()) == sent


async def test_check_connection_reads_the_configured_table_and_other_tenants_cannot_call_it(
    api: httpx.AsyncClient, world: World, calls: OutboundCalls
) -> None:
    with serve(ServiceNowFake("oauth2", table="sn_customerservice_case")) as servicenow:
        made = await connect(api, world, "itsm", "servicenow", servicenow, table="sn_customerservice_case")
        base = f"/api/v1/customers/{world.a.customer.customer_id}/outbound-connections"
        r = await api.post(f"{base}/{made['id']}/check", headers=auth(world.a.customer.key))
        assert r.status_code == 200, r.text
        assert [(s["what"], s["ok"]) for s in r.json()["steps"]] == [
            ("get an OAuth2 token", True),
            ("reach /api/now/table/sn_customerservice_case", True),
        ], r.json()
        assert query_of(servicenow.api_requests()[-1]) == {"sysparm_limit": "1", "sysparm_fields": "sys_id"}

        sent = len(servicenow.requests)
        other = TenantContext(TenantId(world.b.customer.customer_id), world.b.partner_id, ENGINE)
        with pytest.raises(ConnectorError) as unseen:
            await calls.call(other, "itsm", "create_ticket", {"short_description": "x"}, idempotency_key="b1")
        assert unseen.value.kind == NOT_FOUND and str(unseen.value) == "no outbound connection with key itsm"
        assert len(servicenow.requests) == sent
