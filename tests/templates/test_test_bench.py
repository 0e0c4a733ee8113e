"""The test bench walks each catalog template against a realistic event: every message renders with
the event its trigger receives, branches go where the engine would send them, and a broken draft
shows the error that would fail the run."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from andon.templates_catalog.builtin import builtin_templates
from andon.templates_catalog.test_bench import simulate
from tests.tenants.factories import World, auth

ALARM = {
    "type": "dev.andon.machine.alarm.v1",
    "severity": "critical",
    "subject": "press-4",
    "asset_ref": "press-4",
    "data": {"code": "E42", "message": "hydraulic pressure low", "state": "raised"},
}
SAMPLES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "unplanned-downtime-escalation": (
        ALARM,
        ["notify_maintenance", "history", "work_order", "orders", "back_running"],
    ),
    "quality-deviation-response": (
        {
            "type": "dev.andon.quality.deviation.v1",
            "severity": "high",
            "data": {
                "characteristic": "bore diameter",
                "measured": 12.09,
                "lower_limit": 11.95,
                "upper_limit": 12.05,
                "lot": "L-778",
            },
        },
        [
            "contain",
            "notify_engineering",
            "nonconformance",
            "contained",
            "approve_quarantine",
            "quarantine",
            "supplier_inquiry",
            "capa_decision",
            "open_capa",
        ],
    ),
    "supplier-delay-management": (
        {
            "type": "dev.andon.supplier.delay.v1",
            "data": {"supplier": "Acme Castings", "kind": "asn_late", "reference": "ASN-1", "material": "M-100"},
        },
        ["asn", "risk", "orders", "tell_planner", "review", "customers_at_risk"],
    ),
    "field-issue-feedback-loop": (
        {
            "type": "dev.andon.field.case.v1",
            "severity": "medium",
            "data": {"case_id": "C-9", "summary": "pump leaks", "customer": "Globex", "product": "P-200"},
        },
        ["orders", "tell_quality", "capa", "review", "update_account_team"],
    ),
    "spare-parts-replenishment": (
        {
            "type": "dev.andon.inventory.exception.v1",
            "data": {"material": "BRG-6204", "kind": "shortage", "quantity": 40},
        },
        ["estimate", "over_threshold", "finance_approval", "reorder", "tell_maintenance"],
    ),
    "engineering-change-communication": (
        {
            "type": "dev.andon.engineering.change.v1",
            "data": {"change_id": "ECN-12", "title": "New seal", "affected_items": ["P-200", "P-210"]},
        },
        ["scope", "announce", "shifts", "ack_first", "ack_second", "ack_third", "all_shifts", "record"],
    ),
    "shift-handover": (
        {
            "type": "dev.andon.shift.handover.v1",
            "data": {"shift": "Early", "notes": "Line 3 slow", "open_issues": ["press-4 alarm"]},
        },
        ["summary", "post", "acknowledge"],
    ),
    "customer-order-risk": (
        {"type": "dev.andon.order.risk.v1", "data": {"order_id": "SO-77", "risk": "press down", "customer": "Globex"}},
        ["order", "assess", "account_team", "approve_message", "send_message", "revised_plan"],
    ),
}


def test_every_catalog_template_walks_its_scenario_with_every_message_rendered() -> None:
    assert set(SAMPLES) == set(builtin_templates())
    for key, (event, path) in SAMPLES.items():
        template, _ = builtin_templates()[key]
        result = simulate(template, event)
        assert result.outcome == "succeeded", (key, result.error)
        assert [s.key for s in result.steps] == path, key
        for step in result.steps:
            assert "{{" not in str(step.inputs), (key, step.key)  # every template rendered


# The least a sender may send of each type (its schema's required fields): every template copes.
MINIMAL: dict[str, dict[str, Any]] = {
    "unplanned-downtime-escalation": {"type": "dev.andon.downtime.started.v1", "data": {"reason": "jam"}},
    "quality-deviation-response": {
        "type": "dev.andon.quality.deviation.v1",
        "severity": "high",
        "data": {"characteristic": "bore"},
    },
    "supplier-delay-management": {
        "type": "dev.andon.supplier.delay.v1",
        "data": {"supplier": "Acme", "kind": "edi_exception"},
    },
    "field-issue-feedback-loop": {"type": "dev.andon.field.case.v1", "data": {"case_id": "C-1", "summary": "noise"}},
    "spare-parts-replenishment": {
        "type": "dev.andon.inventory.exception.v1",
        "data": {"material": "B", "kind": "shortage"},
    },
    "engineering-change-communication": {
        "type": "dev.andon.engineering.change.v1",
        "data": {"change_id": "E-1", "title": "T"},
    },
    "shift-handover": {"type": "dev.andon.shift.handover.v1", "data": {"shift": "Late", "notes": "ok"}},
    "customer-order-risk": {"type": "dev.andon.order.risk.v1", "data": {"order_id": "SO-1", "risk": "late"}},
}


def test_every_template_copes_with_an_event_that_carries_only_what_its_schema_requires() -> None:
    assert set(MINIMAL) == set(builtin_templates())
    for key, event in MINIMAL.items():
        result = simulate(builtin_templates()[key][0], event)
        assert result.outcome == "succeeded", (key, result.error)


def test_branches_follow_the_event_the_answers_and_the_decisions() -> None:
    downtime, _ = builtin_templates()["unplanned-downtime-escalation"]
    # Orders at risk: someone assesses them.
    with_orders = simulate(downtime, ALARM, answers={"erp.lookup_open_orders": {"orders": [{"id": "SO-1"}]}})
    assert "assess" in [s.key for s in with_orders.steps]
    assert next(s for s in with_orders.steps if s.key == "assess").inputs["instructions"].startswith("1 open order(s)")
    # A low alarm does not start it; another type is not its trigger.
    assert simulate(downtime, {**ALARM, "severity": "low"}).outcome == "filtered"
    assert simulate(downtime, {**ALARM, "type": "dev.andon.field.case.v1"}).outcome == "not_triggered"
    assert simulate(downtime, {**ALARM, "severity": "low"}, params={"severities": ["low"]}).outcome == "succeeded"

    spares, _ = builtin_templates()["spare-parts-replenishment"]
    small = simulate(
        spares,
        {"type": "dev.andon.inventory.exception.v1", "data": {"material": "B", "kind": "shortage", "quantity": 2}},
    )
    assert "finance_approval" not in [s.key for s in small.steps]
    quality, _ = builtin_templates()["quality-deviation-response"]
    event = SAMPLES["quality-deviation-response"][0]
    rejected = simulate(quality, event, decisions={"approve_quarantine": "rejected", "capa_decision": "rejected"})
    keys = [s.key for s in rejected.steps]
    assert "quarantine" not in keys and keys[-1] == "closed_without_capa"


@pytest.mark.anyio
async def test_the_api_walks_a_draft_and_shows_what_would_fail(api: httpx.AsyncClient, world: World) -> None:
    key = auth(world.a.key)
    text = (await api.get("/api/v1/templates/shift-handover", headers=key)).json()["yaml"]
    body = {"yaml": text, "event": SAMPLES["shift-handover"][0]}
    report = (await api.post("/api/v1/templates/test-bench", json=body, headers=key)).json()
    assert report["ok"] and [s["key"] for s in report["steps"]] == ["summary", "post", "acknowledge"]
    assert report["steps"][1]["inputs"]["text"].startswith(
        "Handover from the Early shift. 1 open issue(s): press-4 alarm"
    )
    # A message that reads what the event does not carry fails where the run would.
    broken = text.replace("Notes: {{ event.data.notes }}", "Notes: {{ event.data.remarks }}")
    report = (await api.post("/api/v1/templates/test-bench", json={**body, "yaml": broken}, headers=key)).json()
    assert not report["ok"] and report["outcome"] == "failed" and report["error"].startswith("post:")
    assert "remarks" in report["error"]
    invalid = (
        await api.post("/api/v1/templates/test-bench", json={**body, "params": {"acknowledge_seconds": 1}}, headers=key)
    ).json()
    assert invalid["outcome"] == "invalid" and invalid["errors"][0]["field"] == "params.acknowledge_seconds"
