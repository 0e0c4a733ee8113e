"""Approvals: electronic signatures (a reason and the signer's password, recorded with what they were
shown), k of n, separation of duties (the requester cannot approve), rejection, reminder and expiry."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar

from tests.support.browser import csrf_token, new_user_signed_in
from tests.support.workers import drain, running_worker
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple"


def _base(tenant: Tenant) -> str:
    return f"/api/v1/customers/{tenant.customer_id}"


class Person:
    """Someone signed in, calling the API with their session (and its CSRF token), as the portal does."""

    def __init__(self, browser: httpx.AsyncClient, token: str) -> None:
        self.browser = browser
        self.token = token

    async def post(self, url: str, body: dict[str, Any]) -> httpx.Response:
        return await self.browser.post(url, json=body, headers={"x-csrf-token": self.token})


async def _person(app: Litestar, api: httpx.AsyncClient, tenant: Tenant, role: str) -> Person:
    browser = await new_user_signed_in(
        app,
        api,
        users_url=f"{_base(tenant)}/users",
        key=tenant.key,
        email=f"{role}-{uuid.uuid4().hex[:6]}@acme.example",
        role=role,
    )
    return Person(browser, csrf_token((await browser.get("/account")).text))


async def _approval_run(api: httpx.AsyncClient, tenant: Tenant, starter: Person, **approval: Any) -> str:
    steps = [
        {
            "key": "sign_off",
            "kind": "approval",
            "title": "Release lot {{ event.lot }}",
            "instructions": "Deviation {{ event.deviation }}: release under concession?",
            "meaning": "Released under concession",
            "next": "released",
            **approval,
        },
        {"key": "released", "kind": "set", "values": {"released": "true"}},
    ]
    if approval.get("on_reject"):
        steps.append({"key": "contain", "kind": "set", "values": {"contained": "true"}})
    r = await api.post(
        f"{_base(tenant)}/workflows/",
        headers=auth(tenant.key),
        json={"key": f"release-{uuid.uuid4().hex[:6]}", "name": "Release", "definition": {"steps": steps}},
    )
    assert r.status_code == 201, r.text
    started = await starter.post(
        f"{_base(tenant)}/workflows/{r.json()['id']}/runs", {"event": {"lot": "L-77", "deviation": "D-12"}}
    )
    assert started.status_code == 201, started.text
    return str(started.json()["id"])


async def _open_task(api: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    tasks = (await api.get(f"{_base(tenant)}/tasks/", headers=auth(tenant.key), params={"status": "open"})).json()
    assert tasks["total"] == 1, tasks
    task: dict[str, Any] = tasks["items"][0]
    return task


async def _run(api: httpx.AsyncClient, tenant: Tenant, run_id: str) -> dict[str, Any]:
    detail: dict[str, Any] = (await api.get(f"{_base(tenant)}/runs/{run_id}", headers=auth(tenant.key))).json()
    return detail


async def test_two_of_n_sign_with_separation_of_duties_and_the_evidence_is_kept(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    requester = await _person(app, api, c, "plant_supervisor")
    first, second = await _person(app, api, c, "plant_supervisor"), await _person(app, api, c, "quality_engineer")
    technician = await _person(app, api, c, "technician")
    run_id = await _approval_run(api, c, requester, approvals=2)
    with running_worker(app):
        drain(app)
        task = await _open_task(api, c)
        assert (task["kind"], task["required_approvals"], task["title"]) == ("approval", 2, "Release lot L-77")
        decide = f"{_base(c)}/tasks/{task['id']}/decide"
        approve = {"decision": "approve", "reason": "within the concession limits", "password": PASSWORD}

        own = await requester.post(decide, approve)
        assert own.status_code == 403 and "separation of duties" in own.json()["detail"]
        wrong = await first.post(decide, {**approve, "password": "not the password at all"})
        assert wrong.status_code == 401
        assert (await technician.post(decide, approve)).status_code == 403
        machine = await api.post(decide, headers=auth(c.key), json=approve)
        assert machine.status_code == 403 and "a person's" in machine.json()["detail"]
        no_reason = await first.post(decide, {**approve, "reason": ""})
        assert no_reason.status_code in (400, 422)

        signed = await first.post(decide, approve)
        assert signed.status_code == 200, signed.text
        assert signed.json()["task"]["status"] == "open" and len(signed.json()["decisions"]) == 1
        assert (await first.post(decide, approve)).status_code == 409
        done = await second.post(decide, {**approve, "reason": "lab results attached"})
        assert done.status_code == 200 and done.json()["task"]["status"] == "done"
        await asyncio.sleep(0.1)
        drain(app)

    detail = await _run(api, c, run_id)
    assert detail["run"]["status"] == "succeeded", detail
    steps = {s["step_key"]: s for s in detail["steps"]}
    assert steps["sign_off"]["output"]["decision"] == "approved" and steps["sign_off"]["output"]["approvals"] == 2
    evidence = (await api.get(f"{_base(c)}/tasks/{task['id']}", headers=auth(c.key))).json()["decisions"]
    assert [d["reason"] for d in evidence] == ["within the concession limits", "lab results attached"]
    for signature in evidence:
        assert signature["meaning"] == "Released under concession" and signature["method"] == "password"
        assert signature["shown"]["event"] == {"lot": "L-77", "deviation": "D-12"}
        assert signature["shown"]["instructions"] == "Deviation D-12: release under concession?"
        digest = hashlib.sha256(msgspec.json.encode(signature["shown"], order="sorted")).hexdigest()
        assert signature["shown_digest"] == digest and "@acme.example" in signature["signer"]
    trail = (await api.get(f"{_base(c)}/audit", headers=auth(c.key), params={"limit": 200})).text
    assert trail.count("approval.signed") == 2


async def test_a_rejection_takes_the_reject_path(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    starter, reviewer = await _person(app, api, c, "plant_supervisor"), await _person(app, api, c, "quality_engineer")
    run_id = await _approval_run(api, c, starter, approvals=2, on_reject="contain")
    with running_worker(app):
        drain(app)
        task = await _open_task(api, c)
        r = await reviewer.post(
            f"{_base(c)}/tasks/{task['id']}/decide",
            {"decision": "reject", "reason": "hardness out of range", "password": PASSWORD},
        )
        assert r.status_code == 200 and r.json()["task"]["status"] == "done"
        await asyncio.sleep(0.1)
        drain(app)
    steps = {s["step_key"]: s for s in (await _run(api, c, run_id))["steps"]}
    assert steps["sign_off"]["output"]["decision"] == "rejected" and "released" not in steps
    assert steps["contain"]["status"] == "succeeded"


async def test_an_unsigned_approval_is_reminded_then_expires(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    starter, late = await _person(app, api, c, "plant_supervisor"), await _person(app, api, c, "quality_engineer")
    run_id = await _approval_run(api, c, starter, expires_seconds=1.0, remind_seconds=0.3)
    with running_worker(app):
        drain(app)
        task = await _open_task(api, c)
        assert task["due_at"] is not None and task["reminders"] == 0
        await asyncio.sleep(0.4)
        await app.state.scheduler.fire_due()
        reminded = (await api.get(f"{_base(c)}/tasks/{task['id']}", headers=auth(c.key))).json()["task"]
        assert reminded["reminders"] == 1 and reminded["last_reminded_at"] and reminded["status"] == "open"
        await asyncio.sleep(0.8)
        await app.state.scheduler.fire_due()
        drain(app)
        too_late = await late.post(
            f"{_base(c)}/tasks/{task['id']}/decide",
            {"decision": "approve", "reason": "sorry, was on the floor", "password": PASSWORD},
        )
        assert too_late.status_code == 409
    detail = await _run(api, c, run_id)
    assert detail["run"]["status"] == "failed" and "expired" in detail["run"]["error"]
    assert detail["tasks"][0]["status"] == "expired"
