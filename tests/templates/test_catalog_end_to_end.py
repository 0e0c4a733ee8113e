"""Each catalog template end to end, as a customer runs it: its systems are contract fakes speaking
the vendors' protocols on real sockets, the customer's outbound connections to them and the
deployment are made through the API, the trigger event comes through CloudEvents ingress, and the
outbox relay and a real Dramatiq worker move the run. Each test checks the calls every system
received, the tasks and approvals the run asks of people (done and signed through the API by people
holding the roles, so the run goes on), the SLA due times and escalation ladder, and how the run ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from urllib.parse import quote

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.templates_catalog.builtin import builtin_templates
from tests.support.contracts.server import query_of
from tests.support.workers import running_worker
from tests.templates.e2e_support import (
    ASSET,
    Fakes,
    Plant,
    bodies,
    chat_messages,
    contract_fakes,
    seconds_between,
    statuses,
)
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
ACCOUNT = "001Dn00000AbCdEfGH"  # the customer's account in the CRM (a Salesforce id)
# Where the CRM upserts a case by its external id (the step's idempotency key).
CASE_BY_KEY = "/services/data/v59.0/sobjects/Case/Andon_Key__c/"
# A task is due its step's due seconds after the step's clock; the task row's created_at is stamped a
# moment later (longer on a busy machine), so a due time is compared within a few seconds.
DUE_SLACK = 5


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with contract_fakes() as made:
        yield made


@pytest.fixture
async def plant(
    app: Litestar, api: httpx.AsyncClient, world: World, fakes: Fakes, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Plant]:
    made = Plant(app, api, world, fakes, sessionmaker)
    with running_worker(app):
        yield made
    await made.close()


def _at(stamp: str, seconds: float) -> datetime:
    return datetime.fromisoformat(stamp) + timedelta(seconds=seconds)


def test_the_catalog_is_the_eight_templates_tested_here() -> None:
    """A template added to the catalog needs its end-to-end test here."""
    assert sorted(builtin_templates()) == sorted(TESTED)


async def test_unplanned_downtime_escalation(plant: Plant) -> None:
    fakes = plant.fakes
    fakes.cmms.work_orders[90001] = {
        "id": 90001, "sequentialId": 1, "title": "Replace heater band", "assetId": 4711, "priority": "MEDIUM",
        "status": "DONE", "createdAt": "2026-11-02T07:00:00+00:00", "completedAt": "2026-11-02T09:00:00+00:00",
    }  # fmt: skip
    fakes.erp.orders.append(
        {"orderNumber": "SO-1", "customerId": "C7", "customerName": "Brandt", "material": "FG-2000",
         "quantity": 12, "unit": "EA", "requestedDate": "2026-12-02", "status": "OPEN"}
    )  # fmt: skip
    technician = await plant.person("technician")
    # A technician on every shift of the site's calendar, whom the ladder's first level pages.
    roster = {"technician": [technician.email]}
    shifts = [("Early", "06:00", "14:00"), ("Late", "14:00", "22:00"), ("Night", "22:00", "06:00")]
    r = await plant.api.patch(
        f"{plant.base}/shift-calendars/{plant.world.a.customer.shift_calendar_id}",
        headers=auth(plant.key),
        json={"shifts": [{"name": n, "start": s, "end": e, "roster": roster} for n, s, e in shifts]},
    )
    assert r.status_code == 200, r.text
    deployment = await plant.deploy(
        "unplanned-downtime-escalation",
        {"chat": "slack", "cmms": "cmms", "erp": "erp"},
        cmms_asset_ids={ASSET: 4711},
        materials={ASSET: "FG-2000"},
    )
    # A medium alarm is below the deployment's severities: nothing starts.
    await plant.send(
        "dev.andon.machine.alarm.v1", {"code": "W1", "message": "Filter dirty"}, severity="medium", assetid=ASSET
    )
    assert (await plant.get("/runs/", workflow_key=deployment["key"]))["total"] == 0
    await plant.send(
        "dev.andon.machine.alarm.v1", {"code": "E42", "message": "Over temperature"}, severity="high", assetid=ASSET
    )

    run = await plant.run(deployment)
    assert statuses(run) == {
        "notify_maintenance": "succeeded", "history": "succeeded", "work_order": "succeeded", "orders": "succeeded",
        "assess": "waiting",
    }  # fmt: skip
    assert fakes.calls() == {
        "chat": ["POST /hooks/chat"],
        "cmms": ["GET /v1/workorders?assetId=4711&limit=5", "POST /v1/workorders"],
        "erp": ["GET /api/v1/plants/DE01/orders?material=FG-2000&status=OPEN&limit=20"],
    }
    assert chat_messages(fakes) == [
        (
            "/hooks/chat",
            f"[MAJOR] *Downtime: {ASSET}*\nHIGH on {ASSET}: Over temperature. "
            "Acknowledge in the Andon inbox; a work order is being opened.",
        )
    ]
    [work_order] = bodies(fakes.cmms, "POST")
    assert (work_order["assetId"], work_order["priority"], work_order["title"]) == (
        4711, "HIGH", f"Unplanned stop: {ASSET}"
    )  # fmt: skip
    assert "E42" in work_order["description"] and "Over temperature" in work_order["description"]
    steps = {s["step_key"]: s for s in run["steps"]}
    assert [w["title"] for w in steps["history"]["output"]["work_orders"]] == ["Replace heater band"]
    assert steps["work_order"]["output"]["work_order_id"] == 90002
    [task] = await plant.tasks(run)
    assert (task["kind"], task["role"], task["title"]) == ("task", "supervisor", "Assess the orders at risk")
    assert task["instructions"].startswith(f"1 open order(s) depend on {ASSET}.")
    assert seconds_between(task["created_at"], task["due_at"]) == pytest.approx(1800, abs=DUE_SLACK)

    started = run["run"]["started_at"]
    timers = await plant.escalations(run)
    assert [(d["policy"], d["kind"], d["state"]) for d in timers["sla"]] == [
        ("downtime", "acknowledge", "pending"), ("downtime", "coordinate", "pending"),
    ]  # fmt: skip
    assert [seconds_between(started, d["due_at"]) for d in timers["sla"]] == [300, 900]
    [ladder] = timers["escalations"]
    assert [(level["after"], level["targets"]) for level in ladder["levels"]] == [
        (300, [{"role": "technician"}]), (600, [{"role": "supervisor"}]), (900, [{"partner_support": True}]),
    ]  # fmt: skip
    assert ladder["status"] == "active" and seconds_between(started, ladder["next_page_at"]) == 300

    # Nobody acknowledged within five minutes: the acknowledge SLA is breached and the first level pages.
    await plant.fire_timers(_at(started, 301))
    timers = await plant.escalations(run)
    assert [(b["policy"], b["kind"]) for b in timers["breaches"]] == [("downtime", "acknowledge")]
    [ladder] = timers["escalations"]
    [page] = ladder["sent"]
    assert (page["level"], [p["email"] for p in page["paged"]]) == (0, [technician.email])
    assert page["paged"][0]["via"].startswith("role technician, shift ")
    # The supervisor owns it: the ladder stops before its second level.
    supervisor = await plant.person("plant_supervisor")
    owned = await supervisor.post(f"{plant.base}/runs/{run['run']['id']}/acknowledge", {"note": "on it"})
    assert owned.status_code == 200, owned.text

    await plant.complete("plant_supervisor", task, decision="expedite SO-1 on line 2")
    run = await plant.run(deployment)
    assert statuses(run)["back_running"] == "waiting" and run["run"]["status"] == "running"
    # The asset runs again: the run closes by itself.
    await plant.send("dev.andon.downtime.ended.v1", {"reason": "heater replaced", "minutes": 42}, assetid=ASSET)
    run = await plant.run(deployment)
    assert run["run"]["status"] == "succeeded", run["run"]
    assert statuses(run)["back_running"] == "succeeded" and "still_down" not in statuses(run)
    assert run["tasks"][0]["outcome"] == {"decision": "expedite SO-1 on line 2"}
    assert len(fakes.calls()["cmms"]) == 2, "nothing is called again"

    # Past the second level's time and the coordinate due time: nobody else is paged, and the run,
    # done well before, met its coordinate SLA; the only breach stays the first.
    await plant.fire_timers(_at(started, 1000))
    timers = await plant.escalations(run)
    [ladder] = timers["escalations"]
    assert ladder["status"] == "acknowledged" and len(ladder["sent"]) == 1
    assert [d["state"] for d in timers["sla"]] == ["judged", "judged"]
    assert [(b["policy"], b["kind"]) for b in timers["breaches"]] == [("downtime", "acknowledge")]
    await plant.hidden_from_the_other_customer(run)


async def test_quality_deviation_response(plant: Plant) -> None:
    fakes = plant.fakes
    deployment = await plant.deploy("quality-deviation-response", {"chat": "teams", "qms": "qms", "erp": "erp"})
    deviation = {
        "characteristic": "Bore diameter", "measured": 12.09, "lower_limit": 11.95, "upper_limit": 12.05,
        "lot": "L-2611", "material": "FG-2000",
    }  # fmt: skip
    await plant.send("dev.andon.quality.deviation.v1", deviation, severity="low", assetid=ASSET, dedupkey="low")
    assert (await plant.get("/runs/", workflow_key=deployment["key"]))["total"] == 0, "low is not contained"
    await plant.send("dev.andon.quality.deviation.v1", deviation, severity="high", assetid=ASSET)

    run = await plant.run(deployment)
    assert statuses(run) == {
        "contain": "succeeded", "notify_engineering": "succeeded", "nonconformance": "succeeded",
        "contained": "succeeded", "approve_quarantine": "waiting",
    }  # fmt: skip
    assert fakes.calls() == {"chat": ["POST /hooks/chat"], "qms": ["POST /api/v1/nonconformances"]}
    [(_, said)] = chat_messages(fakes)
    assert said.startswith("Quality deviation: Bore diameter\nQuality deviation on Bore diameter (lot L-2611)")
    [nonconformance] = bodies(fakes.qms, "POST")
    assert {k: nonconformance[k] for k in ("title", "severity", "category", "lotNumber")} == {
        "title": "Bore diameter out of tolerance", "severity": "major", "category": "product", "lotNumber": "L-2611",
    }  # fmt: skip
    [approval] = await plant.tasks(run)
    assert (approval["kind"], approval["role"], approval["required_approvals"]) == ("approval", "quality", 1)
    assert approval["meaning"] == "Quarantine approved" and approval["title"] == "Quarantine the lot"
    assert seconds_between(approval["created_at"], approval["due_at"]) == pytest.approx(14400, abs=DUE_SLACK)
    timers = await plant.escalations(run)
    assert [(d["policy"], d["kind"], d["state"]) for d in timers["sla"]] == [("deviation", "acknowledge", "pending")]
    assert seconds_between(run["run"]["started_at"], timers["sla"][0]["due_at"]) == 900
    assert timers["escalations"] == []

    await plant.sign("quality_engineer", approval)
    run = await plant.run(deployment)
    assert statuses(run)["quarantine"] == "succeeded" and statuses(run)["supplier_inquiry"] == "waiting"
    assert bodies(fakes.erp, "POST") == [
        {"material": "FG-2000", "batch": "L-2611", "unit": "EA", "reason": "Nonconformance NC-000001"}
    ]
    [inquiry] = await plant.tasks(run)
    assert (inquiry["kind"], inquiry["role"], inquiry["title"]) == ("task", "quality", "Send the supplier inquiry")
    assert "measured Bore diameter at 12.09" in inquiry["instructions"]

    await plant.complete("quality_engineer", inquiry, answer="supplier confirms lot L-2611 only")
    [capa_decision] = await plant.tasks(await plant.run(deployment))
    assert (capa_decision["kind"], capa_decision["title"]) == ("approval", "Is a CAPA needed?")
    await plant.sign("quality_engineer", capa_decision)

    run = await plant.run(deployment)
    assert run["run"]["status"] == "succeeded", run["run"]
    assert statuses(run)["open_capa"] == "succeeded" and "closed_without_capa" not in statuses(run)
    [capa] = [b for b in bodies(fakes.qms, "POST") if "problemStatement" in b]
    assert capa["title"] == "CAPA: Bore diameter deviation"
    assert "nonconformance NC-000001" in capa["problemStatement"]
    assert fakes.calls() == {
        "chat": ["POST /hooks/chat"],
        "qms": ["POST /api/v1/nonconformances", "POST /api/v1/capas"],
        "erp": ["POST /api/v1/plants/DE01/quality-holds"],
    }
    await plant.hidden_from_the_other_customer(run)


async def test_spare_parts_replenishment(plant: Plant) -> None:
    fakes = plant.fakes
    deployment = await plant.deploy("spare-parts-replenishment", {"erp": "erp", "chat": "slack"})
    await plant.send(
        "dev.andon.inventory.exception.v1", {"material": "SP-6204", "kind": "excess", "quantity": 3}, dedupkey="excess"
    )
    assert (await plant.get("/runs/", workflow_key=deployment["key"]))["total"] == 0, "only a shortage reorders"
    await plant.send(
        "dev.andon.inventory.exception.v1",
        {"material": "SP-6204", "kind": "shortage", "quantity": 30},
        subject="SP-6204",
    )

    run = await plant.run(deployment)
    assert statuses(run) == {"estimate": "succeeded", "over_threshold": "succeeded", "finance_approval": "waiting"}
    assert fakes.calls() == {}, "nothing is ordered before the spend is signed off"
    [approval] = await plant.tasks(run)
    assert (approval["kind"], approval["role"], approval["meaning"]) == ("approval", "customer_admin", "Spend approved")
    assert approval["instructions"].startswith("Reorder 30 \u00d7 SP-6204 for about 7500.0 EUR.")
    assert seconds_between(approval["created_at"], approval["due_at"]) == pytest.approx(172800, abs=DUE_SLACK)
    timers = await plant.escalations(run)
    assert timers["sla"] == [] and timers["escalations"] == []

    await plant.sign("customer_admin", approval)
    run = await plant.run(deployment)
    assert run["run"]["status"] == "succeeded", run["run"]
    assert fakes.calls() == {
        "erp": ["POST /api/v1/plants/DE01/purchase-requisitions"],
        "chat": ["POST /hooks/chat"],
    }
    assert bodies(fakes.erp, "POST") == [
        {"material": "SP-6204", "quantity": 30, "unit": "EA", "justification": "Spare parts shortage (SP-6204)"}
    ]
    [(_, said)] = chat_messages(fakes)
    assert said == "[INFO] *Reorder: SP-6204*\nReorder of 30 \u00d7 SP-6204 requested (PR-000001)."
    await plant.hidden_from_the_other_customer(run)


async def test_supplier_delay_management(plant: Plant) -> None:
    fakes = plant.fakes
    fakes.supplier.asns["ASN-7781"] = {
        "asnNumber": "ASN-7781", "status": "IN_TRANSIT", "supplierId": "SUP-0042",
        "expectedArrival": "2026-11-27T09:00:00Z", "lines": [{"lineNumber": 1, "partNumber": "RM-42", "quantity": 500}],
    }  # fmt: skip
    fakes.erp.orders.append(
        {"orderNumber": "SO-9", "customerId": "C7", "customerName": "Brandt", "material": "RM-42",
         "quantity": 12, "unit": "EA", "requestedDate": "2026-12-02", "status": "OPEN"}
    )  # fmt: skip
    deployment = await plant.deploy(
        "supplier-delay-management", {"supplier": "supplier_portal", "erp": "erp", "chat": "slack", "crm": "crm"}
    )
    delay = {"supplier": "Stahlwerk Nord", "kind": "short_shipment", "reference": "ASN-7781", "material": "RM-42"}
    await plant.send("dev.andon.supplier.delay.v1", delay, severity="high")

    run = await plant.run(deployment)
    assert statuses(run) == {
        "asn": "succeeded", "risk": "succeeded", "orders": "succeeded", "tell_planner": "succeeded",
        "review": "waiting",
    }  # fmt: skip
    assert fakes.calls() == {
        "supplier": ["GET /api/v1/asns/ASN-7781"],
        "erp": ["GET /api/v1/plants/DE01/orders?material=RM-42&status=OPEN&limit=50"],
        "chat": ["POST /hooks/chat"],
    }
    steps = {s["step_key"]: s for s in run["steps"]}
    assert steps["asn"]["output"]["status"] == "IN_TRANSIT" and steps["risk"]["output"] == {"level": "high"}
    [(_, said)] = chat_messages(fakes)
    assert said == (
        "[MAJOR] *Supplier delay: Stahlwerk Nord*\nStahlwerk Nord: short shipment for RM-42 (ASN-7781). Risk: high."
    )
    [review] = await plant.tasks(run)
    assert (review["kind"], review["role"], review["title"]) == ("task", "supervisor", "Review alternate sourcing")
    assert seconds_between(review["created_at"], review["due_at"]) == pytest.approx(14400, abs=DUE_SLACK)

    await plant.complete("plant_supervisor", review, decision="split the order with the second supplier")
    run = await plant.run(deployment)
    assert run["run"]["status"] == "succeeded", run["run"]
    [upsert] = [r for r in fakes.crm.api_requests() if r.method == "PATCH"]
    # The case is upserted by the step's idempotency key: a repeated step finds the case it opened.
    assert upsert.path == CASE_BY_KEY + quote(f"andon:{run['run']['id']}:delivery_risk")
    assert {k: upsert.json()[k] for k in ("Subject", "Description", "Priority", "Type")} == {
        "Subject": "Delivery risk: RM-42 from Stahlwerk Nord",
        "Description": "1 order(s) due within the horizon depend on this delivery.",
        "Priority": "High",
        "Type": "Delivery risk",
    }
    assert {name: len(made) for name, made in fakes.calls().items()} == {"supplier": 1, "erp": 1, "chat": 1, "crm": 1}
    await plant.hidden_from_the_other_customer(run)


async def test_field_issue_feedback_loop(plant: Plant) -> None:
    fakes = plant.fakes
    case = "500Dn00000XyZaBcDE"
    fakes.crm.cases[case] = {"Id": case, "Subject": "Pumps noisy", "Status": "New"}
    fakes.crm.orders.append(
        {"Id": "801A", "AccountId": ACCOUNT, "OrderNumber": "00000100", "Status": "Activated",
         "EffectiveDate": "2026-10-01", "TotalAmount": 1200.0}
    )  # fmt: skip
    deployment = await plant.deploy("field-issue-feedback-loop", {"crm": "crm", "chat": "slack", "qms": "qms"})
    await plant.send(
        "dev.andon.field.case.v1",
        {"case_id": case, "summary": "Pumps noisy after 200 h", "customer": ACCOUNT, "product": "P-200"},
        severity="medium",
    )

    run = await plant.run(deployment)
    assert statuses(run) == {
        "orders": "succeeded", "tell_quality": "succeeded", "capa": "succeeded", "review": "waiting",
    }  # fmt: skip
    [query] = fakes.crm.api_requests()
    assert f"WHERE AccountId = '{ACCOUNT}'" in query_of(query)["q"] and query_of(query)["q"].endswith("LIMIT 10")
    steps = {s["step_key"]: s for s in run["steps"]}
    assert [o["order_number"] for o in steps["orders"]["output"]["orders"]] == ["00000100"]
    [(_, said)] = chat_messages(fakes)
    assert (
        said
        == f"[MINOR] *Field case {case}*\nField case {case} from {ACCOUNT}: Pumps noisy after 200 h (product P-200)."
    )
    [capa] = bodies(fakes.qms, "POST")
    assert capa["title"] == f"Field case {case}: Pumps noisy after 200 h"
    [review] = await plant.tasks(run)
    assert (review["kind"], review["role"]) == ("task", "quality")
    assert seconds_between(review["created_at"], review["due_at"]) == pytest.approx(259200, abs=DUE_SLACK)

    await plant.complete("quality_engineer", review, findings="bearing lot B-17 undersized")
    run = await plant.run(deployment)
    assert run["run"]["status"] == "succeeded", run["run"]
    [update] = [r for r in fakes.crm.api_requests() if r.method == "PATCH"]
    assert update.path == f"/services/data/v59.0/sobjects/Case/{case}"
    assert update.json()["Comments"] == (
        f"The plant is investigating case {case} under CAPA CAPA-00001. Findings so far: bearing lot B-17 undersized."
    )
    assert fakes.crm.cases[case]["Comments"] == update.json()["Comments"]
    assert {k: len(v) for k, v in fakes.calls().items()} == {"crm": 2, "chat": 1, "qms": 1}
    await plant.hidden_from_the_other_customer(run)


async def test_customer_order_risk(plant: Plant) -> None:
    fakes = plant.fakes
    fakes.crm.orders.append(
        {"Id": "801B", "AccountId": ACCOUNT, "OrderNumber": "00000101", "Status": "Activated",
         "EffectiveDate": "2026-11-20", "TotalAmount": 5400.0}
    )  # fmt: skip
    deployment = await plant.deploy(
        "customer-order-risk", {"crm": "crm", "mail": "email"}, customer_contact="orders@brandt.example"
    )
    await plant.send(
        "dev.andon.order.risk.v1",
        {"order_id": "00000101", "risk": "press 4 is down for a day", "customer": ACCOUNT, "due_at": "2026-12-01"},
        severity="high",
    )

    run = await plant.run(deployment)
    assert statuses(run) == {"order": "succeeded", "assess": "waiting"}
    [assess] = await plant.tasks(run)
    assert (assess["kind"], assess["role"]) == ("task", "supervisor")
    assert assess["instructions"].startswith(
        f"Order 00000101 for {ACCOUNT} is at risk: press 4 is down for a day (due 2026-12-01)."
    )
    assert seconds_between(assess["created_at"], assess["due_at"]) == pytest.approx(7200, abs=DUE_SLACK)

    await plant.complete("plant_supervisor", assess, late_days=1)
    run = await plant.run(deployment)
    assert statuses(run)["account_team"] == "succeeded" and statuses(run)["approve_message"] == "waiting"
    [case] = [r for r in fakes.crm.api_requests() if r.method == "PATCH"]
    assert {k: case.json()[k] for k in ("Subject", "Priority", "Type")} == {
        "Subject": "Order 00000101 at risk", "Priority": "High", "Type": "Order risk",
    }  # fmt: skip
    assert fakes.mail.received == [], "the customer hears nothing before the message is approved"
    [approval] = await plant.tasks(run)
    assert (approval["kind"], approval["role"], approval["meaning"]) == (
        "approval", "supervisor", "Approved to send to the customer"
    )  # fmt: skip
    assert seconds_between(approval["created_at"], approval["due_at"]) == pytest.approx(86400, abs=DUE_SLACK)

    await plant.sign("plant_supervisor", approval)
    run = await plant.run(deployment)
    [(recipients, message)] = fakes.mail.received
    assert recipients == ["orders@brandt.example"] and message["Subject"] == "Your order 00000101"
    assert "order 00000101 may be delayed: press 4 is down for a day" in message.get_content()
    [plan] = await plant.tasks(run)
    assert plan["title"] == "Make the revised fulfilment plan"
    assert seconds_between(plan["created_at"], plan["due_at"]) == pytest.approx(28800, abs=DUE_SLACK)

    await plant.complete("plant_supervisor", plan, committed="2026-12-03")
    run = await plant.run(deployment)
    assert run["run"]["status"] == "succeeded", run["run"]
    assert fakes.calls() == {
        "crm": [
            f"GET {fakes.crm.api_requests()[0].path}",
            "PATCH " + CASE_BY_KEY + quote(f"andon:{run['run']['id']}:account_team"),
        ],
        "mail": ["SMTP orders@brandt.example"],
    }
    await plant.hidden_from_the_other_customer(run)


async def test_engineering_change_communication(plant: Plant) -> None:
    fakes = plant.fakes
    record = "9d3c8e1f0a7b4c2d8e6f1a2b3c4d5e6f"
    fakes.servicenow.records[record] = {"sys_id": record, "number": "CHG0030001", "state": "-1"}
    deployment = await plant.deploy("engineering-change-communication", {"chat": "slack", "tickets": "servicenow"})
    await plant.send(
        "dev.andon.engineering.change.v1",
        {
            "change_id": "ECN-114",
            "record_id": record,
            "title": "New bore tolerance",
            "affected_items": ["FG-2000", "FG-2010"],
        },
    )

    run = await plant.run(deployment)
    assert statuses(run) == {
        "scope": "succeeded", "announce": "succeeded", "shifts": "succeeded",
        "ack_first": "waiting", "ack_second": "waiting", "ack_third": "waiting",
    }  # fmt: skip
    [(_, said)] = chat_messages(fakes)
    assert said.startswith("[INFO] *Change ECN-114*\nEngineering change ECN-114: New bore tolerance. ")
    assert "Affects 2 item(s): FG-2000, FG-2010." in said
    tasks = await plant.tasks(run)
    assert [(t["step_key"], t["role"], t["title"]) for t in tasks] == [
        ("ack_first", "supervisor", "Acknowledge the change (Early shift)"),
        ("ack_second", "supervisor", "Acknowledge the change (Late shift)"),
        ("ack_third", "supervisor", "Acknowledge the change (Night shift)"),
    ]
    assert [seconds_between(t["created_at"], t["due_at"]) for t in tasks] == [pytest.approx(86400, abs=DUE_SLACK)] * 3

    for task in tasks[:2]:
        await plant.complete("plant_supervisor", task)
    run = await plant.run(deployment)
    assert "record" not in statuses(run) and fakes.servicenow.journal == [], "the join waits for every shift"
    await plant.complete("plant_supervisor", tasks[2])

    run = await plant.run(deployment)
    assert run["run"]["status"] == "succeeded", run["run"]
    assert fakes.calls()["servicenow"] == [
        f"PATCH /api/now/table/change_request/{record}?sysparm_fields=sys_id%2Cnumber"
    ]
    assert fakes.servicenow.journal == [
        (record, "work_notes", f"Communicated to all three shifts; acknowledged in Andon (run {run['run']['id']}).")
    ]
    assert {s["step_key"]: s for s in run["steps"]}["record"]["output"]["number"] == "CHG0030001"
    await plant.hidden_from_the_other_customer(run)


async def test_shift_handover(plant: Plant) -> None:
    fakes = plant.fakes
    deployment = await plant.deploy("shift-handover", {"chat": "slack"}, acknowledge_seconds=900)
    # The end of a shift: the shift system (or the MES) sends the handover through ingress.
    await plant.send(
        "dev.andon.shift.handover.v1",
        {"shift": "Early", "notes": "Press 4 ran hot twice.", "open_issues": ["Press 4 heater", "Label printer"]},
    )

    run = await plant.run(deployment)
    assert statuses(run) == {"summary": "succeeded", "post": "succeeded", "acknowledge": "waiting"}
    assert chat_messages(fakes) == [
        (
            "/hooks/chat",
            "[INFO] *Handover: Early shift*\nHandover from the Early shift. 2 open issue(s): Press 4 heater; "
            "Label printer. Notes: Press 4 ran hot twice.",
        )
    ]
    [task] = await plant.tasks(run)
    assert (task["kind"], task["role"], task["title"]) == ("task", "supervisor", "Acknowledge the handover")
    assert seconds_between(task["created_at"], task["due_at"]) == pytest.approx(900, abs=DUE_SLACK)
    started = run["run"]["started_at"]
    timers = await plant.escalations(run)
    assert [(d["policy"], d["kind"], d["state"]) for d in timers["sla"]] == [("handover", "coordinate", "pending")]
    assert seconds_between(started, timers["sla"][0]["due_at"]) == 900
    [ladder] = timers["escalations"]
    assert [(level["after"], level["targets"]) for level in ladder["levels"]] == [(900, [{"role": "supervisor"}])]
    assert ladder["status"] == "active" and seconds_between(started, ladder["next_page_at"]) == 900

    # The incoming supervisor acknowledges in time: the run is done, the ladder stops, and when the
    # due time passes there is no breach to record and nobody to page.
    await plant.complete("plant_supervisor", task, read=True)
    run = await plant.run(deployment)
    assert run["run"]["status"] == "succeeded", run["run"]
    [ladder] = (await plant.escalations(run))["escalations"]
    assert (ladder["status"], ladder["next_page_at"]) == ("cancelled", None)
    await plant.fire_timers(_at(started, 901))
    timers = await plant.escalations(run)
    assert [d["state"] for d in timers["sla"]] == ["judged"] and timers["breaches"] == []
    assert timers["escalations"][0]["sent"] == []
    assert fakes.calls() == {"chat": ["POST /hooks/chat"]}
    await plant.hidden_from_the_other_customer(run)


TESTED = [
    "unplanned-downtime-escalation",
    "quality-deviation-response",
    "spare-parts-replenishment",
    "supplier-delay-management",
    "field-issue-feedback-loop",
    "customer-order-risk",
    "engineering-change-communication",
    "shift-handover",
]
