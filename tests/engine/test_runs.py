"""The engine end to end on one process: workflows saved through the API, runs started by an event
or by hand, steps executed by a real Dramatiq worker, effects applied once by a remote that
deduplicates by idempotency key, retries woken by the scheduler, people completing tasks."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from litestar import Litestar

from tests.support.effects_fake import EffectsFake, effects_fake
from tests.support.workers import drain, relay_all, running_worker
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio
ALARM = "dev.andon.machine.alarm.v1"
STRUCTURED = {"content-type": "application/cloudevents+json"}
# Retries a test can wait for: 0.05 s, then 0.1 s.
FAST = {"initial_seconds": 0.05, "max_attempts": 3}


def _base(tenant: Tenant) -> str:
    return f"/api/v1/customers/{tenant.customer_id}"


@pytest.fixture
def fake() -> Any:
    with effects_fake() as running:
        yield running


def response_flow(url: str, **action: Any) -> dict[str, Any]:
    """Classify, then page (critical) or open a ticket, then notify two teams at once and join."""
    return {
        "steps": [
            {"key": "classify", "kind": "set", "values": {"critical": "event.severity == 'critical'"}, "next": "route"},
            {"key": "route", "kind": "condition", "when": "steps.classify.critical", "then": "page", "else": "ticket"},
            {
                "key": "page",
                "kind": "action",
                "capability": "http.post",
                "inputs": {"url": f"{url}/page", "json": {"who": "on-call", "about": "{{ event.subject }}"}},
                "retry": FAST,
                "next": "notify",
                **action,
            },
            {
                "key": "ticket",
                "kind": "action",
                "capability": "http.post",
                "inputs": {"url": f"{url}/ticket", "json": {"title": "{{ event.subject }}"}},
                "next": "notify",
            },
            {"key": "notify", "kind": "parallel", "branches": ["tell_maintenance", "tell_quality"]},
            {
                "key": "tell_maintenance",
                "kind": "action",
                "capability": "http.post",
                "inputs": {"url": f"{url}/notify", "json": {"team": "maintenance"}},
                "retry": FAST,
                "next": "together",
            },
            {
                "key": "tell_quality",
                "kind": "action",
                "capability": "http.post",
                "inputs": {"url": f"{url}/notify", "json": {"team": "quality"}},
                "retry": FAST,
                "next": "together",
            },
            {"key": "together", "kind": "join", "after": ["tell_maintenance", "tell_quality"]},
        ]
    }


async def _workflow(
    api: httpx.AsyncClient, tenant: Tenant, definition: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    r = await api.post(
        f"{_base(tenant)}/workflows/",
        headers=auth(tenant.key),
        json={"key": f"wf-{uuid.uuid4().hex[:6]}", "name": "Response", "definition": definition, **fields},
    )
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()
    return made


async def _run(api: httpx.AsyncClient, tenant: Tenant, run_id: str) -> dict[str, Any]:
    r = await api.get(f"{_base(tenant)}/runs/{run_id}", headers=auth(tenant.key))
    assert r.status_code == 200, r.text
    detail: dict[str, Any] = r.json()
    return detail


async def _start(api: httpx.AsyncClient, tenant: Tenant, workflow: dict[str, Any], event: dict[str, Any]) -> str:
    r = await api.post(
        f"{_base(tenant)}/workflows/{workflow['id']}/runs", headers=auth(tenant.key), json={"event": event}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _steps(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step_key"]: s for s in detail["steps"]}


async def test_an_alarm_starts_a_run_that_takes_its_branch_and_applies_each_effect_once(
    app: Litestar, api: httpx.AsyncClient, world: World, fake: EffectsFake
) -> None:
    c = world.a.customer
    await _workflow(api, c, response_flow(fake.url), trigger_type=ALARM, trigger_filter="event.severity != 'info'")
    event = {
        "specversion": "1.0",
        "id": "alarm-1",
        "source": "urn:plc:press",
        "type": ALARM,
        "subject": "Press 1 over temperature",
        "severity": "critical",
        "assetid": c.slug + "-P",
        "data": {"code": "E42", "message": "Over temperature"},
    }
    for _ in range(2):  # the same event twice: stored once, one run
        await api.post("/api/v1/events", headers={**auth(c.key), **STRUCTURED}, json=event)
    quiet = {**event, "id": "alarm-2", "severity": "info", "data": {"code": "E1", "message": "note"}}
    await api.post("/api/v1/events", headers={**auth(c.key), **STRUCTURED}, json=quiet)
    await relay_all(app)
    with running_worker(app):
        drain(app)
    runs = (await api.get(f"{_base(c)}/runs/", headers=auth(c.key))).json()
    assert runs["total"] == 1, "the info alarm is filtered out; the repeat starts nothing"
    detail = await _run(api, c, runs["items"][0]["id"])
    assert detail["run"]["status"] == "succeeded", detail
    steps = _steps(detail)
    assert steps["route"]["output"] == {"result": True} and "ticket" not in steps
    assert steps["page"]["output"]["body"]["echo"] == {"who": "on-call", "about": "Press 1 over temperature"}
    assert {k: steps[k]["status"] for k in ("tell_maintenance", "tell_quality", "together")} == dict.fromkeys(
        ("tell_maintenance", "tell_quality", "together"), "succeeded"
    )
    assert fake.stats() == {"applied": 3, "absorbed": 0}
    assert detail["run"]["alert_id"] is not None and detail["context"]["event"]["severity"] == "critical"


async def test_a_flaky_remote_is_retried_by_the_scheduler_with_the_same_key(
    app: Litestar, api: httpx.AsyncClient, world: World, fake: EffectsFake
) -> None:
    c = world.a.customer
    fake.fail_first = 2
    flow = await _workflow(api, c, response_flow(fake.url))
    run_id = await _start(api, c, flow, {"severity": "critical", "subject": "P1"})
    with running_worker(app):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            drain(app)
            await asyncio.sleep(0.05)
            await app.state.scheduler.fire_due()
            if (await _run(api, c, run_id))["run"]["status"] != "running":
                break
    detail = await _run(api, c, run_id)
    steps = _steps(detail)
    assert detail["run"]["status"] == "succeeded", detail
    assert steps["page"]["attempt"] == 3 and steps["tell_quality"]["attempt"] == 3
    # Each effect applied once, under one key per step, however many attempts it took.
    assert fake.stats()["applied"] == 3 and set(fake.attempts.values()) == {3}


async def test_exhausted_retries_open_a_fallback_task_and_the_run_continues_from_its_outcome(
    app: Litestar, api: httpx.AsyncClient, world: World, fake: EffectsFake
) -> None:
    c = world.a.customer
    fake.fail_first = 99
    definition = response_flow(fake.url)
    definition["steps"] = [s for s in definition["steps"] if s["key"] in ("classify", "route", "page", "ticket")]
    for step in definition["steps"]:
        step.pop("next", None) if step["key"] in ("page", "ticket") else None
    flow = await _workflow(api, c, definition)
    run_id = await _start(api, c, flow, {"severity": "critical", "subject": "P1"})
    with running_worker(app):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            drain(app)
            await asyncio.sleep(0.05)
            await app.state.scheduler.fire_due()
            tasks = (await api.get(f"{_base(c)}/tasks/", headers=auth(c.key), params={"status": "open"})).json()
            if tasks["total"]:
                break
        [task] = tasks["items"]
        assert task["kind"] == "fallback" and "Do by hand" in task["title"] and "503" in task["instructions"]
        done = await api.post(
            f"{_base(c)}/tasks/{task['id']}/complete",
            headers=auth(c.key),
            json={"outcome": {"paged": "by phone"}, "note": "called the on-call engineer"},
        )
        assert done.status_code == 200, done.text
        again = await api.post(f"{_base(c)}/tasks/{task['id']}/complete", headers=auth(c.key), json={})
        assert again.status_code == 409
        await asyncio.sleep(0.1)
        drain(app)
    detail = await _run(api, c, run_id)
    assert detail["run"]["status"] == "succeeded", detail
    assert _steps(detail)["page"]["output"]["outcome"] == {"paged": "by phone"}
    assert fake.stats()["applied"] == 0
    alerts = (await api.get(f"{_base(c)}/alerts", headers=auth(c.key))).json()["items"]
    assert [a["type"] for a in alerts] == ["dev.andon.workflow.step_failed"] and "page failed" in alerts[0]["title"]


async def test_waits_timers_and_people_controls(
    app: Litestar, api: httpx.AsyncClient, world: World, fake: EffectsFake
) -> None:
    c = world.a.customer
    definition = {
        "steps": [
            {
                "key": "await_ack",
                "kind": "wait_for_event",
                "event_type": "dev.andon.machine.state_changed.v1",
                "correlation": "{{ event.subject }}",
                "timeout_seconds": 600,
                "next": "pause",
            },
            {"key": "pause", "kind": "timer", "seconds": 0.1, "next": "confirm"},
            {"key": "confirm", "kind": "task", "title": "Confirm {{ event.subject }} runs", "role": "supervisor"},
        ]
    }
    flow = await _workflow(api, c, definition)
    run_id = await _start(api, c, flow, {"subject": "press-7"})
    other = await _start(api, c, flow, {"subject": "press-8"})
    with running_worker(app):
        drain(app)
        assert _steps(await _run(api, c, run_id))["await_ack"]["status"] == "waiting"
        state = {
            "specversion": "1.0",
            "id": "state-1",
            "source": "urn:plc:press",
            "type": "dev.andon.machine.state_changed.v1",
            "subject": "press-7",
            "data": {"state": "running"},
        }
        assert (await api.post("/api/v1/events", headers={**auth(c.key), **STRUCTURED}, json=state)).status_code == 201
        await relay_all(app)
        drain(app)
        await asyncio.sleep(0.15)
        await app.state.scheduler.fire_due()
        drain(app)
    detail = await _run(api, c, run_id)
    steps = _steps(detail)
    assert steps["await_ack"]["output"]["subject"] == "press-7" and steps["pause"]["status"] == "succeeded"
    assert steps["confirm"]["status"] == "waiting" and detail["tasks"][0]["title"] == "Confirm press-7 runs"
    # The other run still waits for its own press; skipping needs a reason, then the run goes on.
    assert _steps(await _run(api, c, other))["await_ack"]["status"] == "waiting"
    r = await api.post(f"{_base(c)}/runs/{other}/steps/await_ack/skip", headers=auth(c.key), json={"reason": ""})
    assert r.status_code == 400 or r.status_code == 422
    r = await api.post(
        f"{_base(c)}/runs/{other}/steps/await_ack/skip", headers=auth(c.key), json={"reason": "press 8 is down for PM"}
    )
    assert r.status_code == 200, r.text
    cancelled = await api.post(f"{_base(c)}/runs/{run_id}/cancel", headers=auth(c.key))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert (await api.post(f"{_base(c)}/runs/{run_id}/cancel", headers=auth(c.key))).status_code == 409
    after = await _run(api, c, run_id)
    assert after["tasks"][0]["status"] == "cancelled" and _steps(after)["confirm"]["status"] == "cancelled"
    trail = (await api.get(f"{_base(c)}/audit", headers=auth(c.key), params={"limit": 200})).text
    assert "run.cancelled" in trail and "run.step_skipped" in trail and "press 8 is down for PM" in trail


async def test_a_definition_is_checked_whole_and_another_tenant_sees_nothing(
    api: httpx.AsyncClient, world: World, fake: EffectsFake
) -> None:
    a, b = world.a.customer, world.b.customer
    broken = {
        "steps": [
            {"key": "a", "kind": "condition", "when": "event.severity ==", "then": "b", "else": "nowhere"},
            {"key": "b", "kind": "timer", "seconds": 1, "next": "a"},
        ]
    }
    r = await api.post(
        f"{_base(a)}/workflows/", headers=auth(a.key), json={"key": "broken", "name": "B", "definition": broken}
    )
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"steps[0]", "steps[0].when", "steps[1]"} <= fields
    check = await api.post(f"{_base(a)}/workflows/check", headers=auth(a.key), json={"definition": broken})
    assert check.status_code == 200 and not check.json()["ok"]

    flow = await _workflow(api, a, response_flow(fake.url))
    again = await _workflow(api, a, response_flow(fake.url), key=flow["key"])
    assert (flow["version"], again["version"]) == (1, 2)
    run_id = await _start(api, a, flow, {"severity": "low", "subject": "x"})
    assert (await api.get(f"{_base(b)}/runs/{run_id}", headers=auth(b.key))).status_code == 404
    assert (await api.get(f"{_base(b)}/workflows/{flow['id']}", headers=auth(b.key))).status_code == 404
    assert (await api.get(f"{_base(b)}/runs/", headers=auth(b.key))).json()["total"] == 0
    assert (await api.post(f"{_base(b)}/runs/{run_id}/cancel", headers=auth(b.key))).status_code == 404
    assert (await api.get(f"{_base(a)}/runs/{run_id}", headers=auth(b.key))).status_code in (403, 404)


@pytest.mark.parametrize("branches", [["maintenance", "quality"], ["quality", "maintenance"]])
async def test_a_failed_branch_fails_the_run_and_a_retry_finishes_it_without_repeating_effects(
    app: Litestar, api: httpx.AsyncClient, world: World, fake: EffectsFake, branches: list[str]
) -> None:
    """The failing branch runs second (the other's output stands) or first (the other branch is then
    held, and runs when the run is retried)."""
    c = world.a.customer
    fake.missing = {"/quality"}

    def post(key: str, path: str) -> dict[str, Any]:
        return {
            "key": key,
            "kind": "action",
            "capability": "http.post",
            "inputs": {"url": f"{fake.url}{path}"},
            "on_exhausted": "fail",
            "next": "together",
        }

    definition = {
        "steps": [
            {"key": "fan", "kind": "parallel", "branches": branches},
            post("maintenance", "/maintenance"),
            post("quality", "/quality"),
            {"key": "together", "kind": "join", "after": ["maintenance", "quality"]},
        ]
    }
    flow = await _workflow(api, c, definition)
    run_id = await _start(api, c, flow, {})
    with running_worker(app):
        drain(app)
        failed = await _run(api, c, run_id)
        # However the branches interleaved, the run is failed, never "succeeded" past its failure.
        assert failed["run"]["status"] == "failed" and "404" in failed["run"]["error"], failed
        assert _steps(failed)["quality"]["status"] == "failed" and "together" not in _steps(failed)
        other = _steps(failed)["maintenance"]
        assert (other["status"], other["error_kind"]) in (("succeeded", None), ("cancelled", "held"))
        fake.missing = set()
        retried = await api.post(f"{_base(c)}/runs/{run_id}/steps/quality/retry", headers=auth(c.key))
        assert retried.status_code == 200 and retried.json()["status"] == "running"
        await asyncio.sleep(0.1)
        drain(app)
    done = await _run(api, c, run_id)
    assert done["run"]["status"] == "succeeded", done
    assert {k: v["status"] for k, v in _steps(done).items()} == dict.fromkeys(
        ("fan", "maintenance", "quality", "together"), "succeeded"
    )
    assert fake.stats() == {"applied": 2, "absorbed": 0}


async def test_a_step_that_breaks_fails_with_its_error_instead_of_hanging(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    definition = {"steps": [{"key": "check", "kind": "task", "title": "{{ 1 / (event.subject | length - 1) }}"}]}
    flow = await _workflow(api, c, definition)
    run_id = await _start(api, c, flow, {"subject": "x"})
    with running_worker(app):
        drain(app)
    detail = await _run(api, c, run_id)
    step = _steps(detail)["check"]
    assert (step["status"], step["error_kind"]) == ("failed", "internal") and "ZeroDivisionError" in step["error"]
    assert detail["run"]["status"] == "failed"


async def test_a_workflow_started_by_several_event_types_runs_for_each_and_tells_them_apart(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    definition = {"steps": [{"key": "which", "kind": "set", "values": {"type": "event.type"}}]}
    made = await _workflow(
        api,
        c,
        definition,
        trigger_type=ALARM,
        also_triggered_by=["dev.andon.downtime.started.v1", "dev.andon.machine.state_changed.v1"],
        # Each trigger with its own condition, as a deployed template's filter has them.
        trigger_filter="event.type != 'dev.andon.machine.state_changed.v1' || event.data.state == 'fault'",
    )
    assert made["also_triggered_by"] == ["dev.andon.downtime.started.v1", "dev.andon.machine.state_changed.v1"]
    base = {"specversion": "1.0", "source": "urn:plc:press", "subject": "Press 1"}
    events = [
        {**base, "id": "e1", "type": ALARM, "severity": "high", "data": {"code": "E1", "message": "hot"}},
        {**base, "id": "e2", "type": "dev.andon.downtime.started.v1", "severity": "high", "data": {"reason": "jam"}},
        {**base, "id": "e3", "type": "dev.andon.machine.state_changed.v1", "data": {"state": "fault"}},
        {**base, "id": "e4", "type": "dev.andon.machine.state_changed.v1", "data": {"state": "running"}},
        {**base, "id": "e5", "type": "dev.andon.downtime.ended.v1", "data": {}},
    ]
    for event in events:
        r = await api.post("/api/v1/events", headers={**auth(c.key), **STRUCTURED}, json=event)
        assert r.status_code == 201, r.text
    await relay_all(app)
    with running_worker(app):
        drain(app)
    runs = (await api.get(f"{_base(c)}/runs/", headers=auth(c.key))).json()["items"]
    started = sorted([(await _run(api, c, r["id"]))["context"]["steps"]["which"]["type"] for r in runs])
    assert started == sorted([ALARM, "dev.andon.downtime.started.v1", "dev.andon.machine.state_changed.v1"])
    refused = await api.post(
        f"{_base(c)}/workflows/",
        headers=auth(c.key),
        json={"key": "x", "name": "X", "definition": definition, "trigger_type": ALARM, "also_triggered_by": ["nope"]},
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "also_triggered_by[0]"
