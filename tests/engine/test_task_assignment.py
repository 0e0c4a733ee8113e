"""Human tasks with an assignee: assigned (by someone holding the role, or an administrator), taken
back to the role, handed on by the assignee (keeping who handed it on); only the assignee completes or
signs; an unassigned task is any role holder's; a step names its assignee, and one the customer does
not have leaves a note, not a failure; another customer finds none of it; every change is audited."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar

from tests.support.browser import csrf_token, new_user_signed_in
from tests.support.workers import drain, running_worker
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple"


def _base(tenant: Tenant) -> str:
    return f"/api/v1/customers/{tenant.customer_id}"


@dataclass
class Person:
    """Someone signed in, calling the API with their session (and its CSRF token), as the portal does."""

    browser: httpx.AsyncClient
    token: str
    id: str
    email: str

    async def post(self, url: str, body: dict[str, Any]) -> httpx.Response:
        return await self.browser.post(url, json=body, headers={"x-csrf-token": self.token})


async def _person(app: Litestar, api: httpx.AsyncClient, tenant: Tenant, role: str) -> Person:
    email = f"{role}-{uuid.uuid4().hex[:6]}@acme.example"
    browser = await new_user_signed_in(
        app, api, users_url=f"{_base(tenant)}/users", key=tenant.key, email=email, role=role
    )
    me = (await browser.get("/api/v1/me")).json()
    return Person(browser, csrf_token((await browser.get("/account")).text), str(me["id"]), email)


async def _run_of(api: httpx.AsyncClient, tenant: Tenant, steps: list[dict[str, Any]], event: dict[str, Any]) -> str:
    r = await api.post(
        f"{_base(tenant)}/workflows/",
        headers=auth(tenant.key),
        json={"key": f"assign-{uuid.uuid4().hex[:6]}", "name": "Assign", "definition": {"steps": steps}},
    )
    assert r.status_code == 201, r.text
    started = await api.post(
        f"{_base(tenant)}/workflows/{r.json()['id']}/runs", headers=auth(tenant.key), json={"event": event}
    )
    assert started.status_code == 201, started.text
    return str(started.json()["id"])


CHECK: list[dict[str, Any]] = [
    {"key": "check", "kind": "task", "title": "Check the seal of lot {{ event.lot }}", "role": "technician"}
]


async def _detail(api: httpx.AsyncClient, tenant: Tenant, run_id: str) -> dict[str, Any]:
    r = await api.get(f"{_base(tenant)}/runs/{run_id}", headers=auth(tenant.key))
    assert r.status_code == 200, r.text
    detail: dict[str, Any] = r.json()
    return detail


async def _task(api: httpx.AsyncClient, tenant: Tenant, run_id: str) -> dict[str, Any]:
    [task] = (await _detail(api, tenant, run_id))["tasks"]
    assert isinstance(task, dict)
    return task


async def _trail(api: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    r = await api.get(f"{_base(tenant)}/audit", headers=auth(tenant.key), params={"limit": 200})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()
    return items


async def test_a_task_is_assigned_reassigned_handed_on_and_only_its_assignee_completes_it(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    tina, theo = await _person(app, api, c, "technician"), await _person(app, api, c, "technician")
    sue = await _person(app, api, c, "plant_supervisor")  # does not hold the technician role
    run_id = await _run_of(api, c, CHECK, {"lot": "L-7"})
    with running_worker(app):
        drain(app)
        task = await _task(api, c, run_id)
        url = f"{_base(c)}/tasks/{task['id']}"
        assert task["assignee"] is None and task["assigned_by"] is None

        # Someone holding the role assigns it (by e-mail); someone who does not may not.
        refused = await sue.post(f"{url}/assign", {"assignee": tina.email})
        assert refused.status_code == 403 and "technician role" in refused.json()["detail"]
        given = await theo.post(f"{url}/assign", {"assignee": tina.email.upper()})
        assert given.status_code == 200, given.text
        assert given.json()["assignee"] == tina.id and given.json()["assigned_at"] is not None
        assert theo.email in given.json()["assigned_by"] or "Technician" in given.json()["assigned_by"]

        # A person the customer does not have, or who does not hold the role: 422, and nothing changes.
        unknown = await theo.post(f"{url}/assign", {"assignee": "nobody@acme.example"})
        assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "assignee"
        unfit = await theo.post(f"{url}/assign", {"assignee": sue.id})
        assert unfit.status_code == 422 and "does not hold the technician role" in unfit.text
        assert (await theo.post(f"{url}/assign", {})).status_code in (400, 422)  # null is said, not implied
        assert (await _task(api, c, run_id))["assignee"] == tina.id

        # An administrator (the customer's key) reassigns it, by id.
        again = await api.post(f"{url}/assign", headers=auth(c.key), json={"assignee": theo.id})
        assert again.status_code == 200 and again.json()["assignee"] == theo.id

        # Only the assignee hands it on, to another holder of the role; it keeps who handed it on.
        assert (await tina.post(f"{url}/delegate", {"to": tina.email})).status_code == 403
        to_self = await theo.post(f"{url}/delegate", {"to": theo.email})
        assert to_self.status_code == 422
        assert (await theo.post(f"{url}/delegate", {"to": sue.email})).status_code == 422
        handed = await theo.post(f"{url}/delegate", {"to": tina.email, "note": "I am off at noon"})
        assert handed.status_code == 200, handed.text
        assert (handed.json()["assignee"], handed.json()["delegated_from"]) == (tina.id, theo.id)

        # Only the assignee completes it: not another technician, not the key.
        done = {"outcome": {"result": "done"}, "note": "seal intact"}
        not_theirs = await theo.post(f"{url}/complete", done)
        assert not_theirs.status_code == 403 and "assigned to someone else" in not_theirs.json()["detail"]
        assert (await api.post(f"{url}/complete", headers=auth(c.key), json=done)).status_code == 403
        completed = await tina.post(f"{url}/complete", done)
        assert completed.status_code == 200 and completed.json()["status"] == "done"
        await asyncio.sleep(0.1)
        drain(app)

        # A closed task changes hands no more.
        assert (await theo.post(f"{url}/assign", {"assignee": theo.email})).status_code == 409
        assert (await tina.post(f"{url}/delegate", {"to": theo.email})).status_code == 409
    assert (await _detail(api, c, run_id))["run"]["status"] == "succeeded"

    trail = [e for e in await _trail(api, c) if e["target_id"] == task["id"]]
    actions = sorted(e["action"] for e in trail)
    assert actions == ["task.assigned", "task.assigned", "task.completed", "task.delegated"]
    delegated = next(e for e in trail if e["action"] == "task.delegated")
    assert delegated["after"]["note"] == "I am off at noon" and delegated["after"]["assignee_email"] == tina.email
    assert delegated["before"] == {"assignee": theo.id}


async def test_an_unassigned_task_is_any_role_holders_and_can_go_back_to_the_role(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    tina, theo = await _person(app, api, c, "technician"), await _person(app, api, c, "technician")
    sue = await _person(app, api, c, "plant_supervisor")
    run_id = await _run_of(api, c, CHECK, {"lot": "L-8"})
    with running_worker(app):
        drain(app)
        task = await _task(api, c, run_id)
        url = f"{_base(c)}/tasks/{task['id']}"
        # Nobody holds it yet: there is nothing to hand on.
        assert (await tina.post(f"{url}/delegate", {"to": theo.email})).status_code == 409
        taken = await tina.post(f"{url}/assign", {"assignee": tina.id})
        assert taken.status_code == 200 and taken.json()["assignee"] == tina.id
        back = await tina.post(f"{url}/assign", {"assignee": None})
        assert back.status_code == 200 and back.json()["assignee"] is None
        # Back with the role: someone outside it may not complete it, any technician may.
        outside = await sue.post(f"{url}/complete", {"outcome": {"result": "done"}})
        assert outside.status_code == 403 and "technician role" in outside.json()["detail"]
        done = await theo.post(f"{url}/complete", {"outcome": {"result": "done"}})
        assert done.status_code == 200, done.text
        await asyncio.sleep(0.1)
        drain(app)
    assert (await _detail(api, c, run_id))["run"]["status"] == "succeeded"
    assigned = [e for e in await _trail(api, c) if e["action"] == "task.assigned" and e["target_id"] == task["id"]]
    assert sorted(str(e["after"]["assignee"]) for e in assigned) == sorted([tina.id, "None"])


async def test_a_step_names_its_assignee_and_an_unknown_person_leaves_a_note(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    tina = await _person(app, api, c, "technician")
    steps = [{**CHECK[0], "assignee": "{{ event.owner }}"}]
    known = await _run_of(api, c, steps, {"lot": "L-1", "owner": tina.email})
    unknown = await _run_of(api, c, steps, {"lot": "L-2", "owner": "ghost@acme.example"})
    missing = await _run_of(api, c, steps, {"lot": "L-3"})
    with running_worker(app):
        drain(app)
        await asyncio.sleep(0.1)
        drain(app)
    task = await _task(api, c, known)
    assert (task["assignee"], task["assigned_by"]) == (tina.id, "workflow definition")
    for run_id, said in ((unknown, "no user 'ghost@acme.example'"), (missing, "no assignee")):
        detail = await _detail(api, c, run_id)
        assert detail["run"]["status"] == "running" and detail["tasks"][0]["assignee"] is None
        [step] = detail["steps"]
        assert step["status"] == "waiting" and step["error_kind"] == "unassigned" and said in step["error"]
        assert "open to the technician role" in step["error"]

    # An approval that needs several signatures is not given to one person.
    several = await api.post(
        f"{_base(c)}/workflows/check",
        headers=auth(c.key),
        json={"definition": {"steps": [{"key": "a", "kind": "approval", "approvals": 2, "assignee": "x@y.example"}]}},
    )
    assert several.json()["ok"] is False and several.json()["errors"][0]["field"] == "steps[0].assignee"


async def test_only_the_assignee_signs_an_assigned_approval(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    starter = await _person(app, api, c, "plant_supervisor")
    sam, quinn = await _person(app, api, c, "plant_supervisor"), await _person(app, api, c, "quality_engineer")
    r = await api.post(
        f"{_base(c)}/workflows/",
        headers=auth(c.key),
        json={
            "key": "release",
            "name": "Release",
            "definition": {"steps": [{"key": "sign_off", "kind": "approval", "title": "Release lot"}]},
        },
    )
    assert r.status_code == 201, r.text
    started = await starter.post(f"{_base(c)}/workflows/{r.json()['id']}/runs", {"event": {}})
    assert started.status_code == 201, started.text
    with running_worker(app):
        drain(app)
        task = await _task(api, c, str(started.json()["id"]))
        url = f"{_base(c)}/tasks/{task['id']}"
        # Separation of duties: the requester is not given their own approval.
        own = await sam.post(f"{url}/assign", {"assignee": starter.email})
        assert own.status_code == 422 and "separation of duties" in own.text
        assert (await sam.post(f"{url}/assign", {"assignee": sam.email})).status_code == 200
        approve = {"decision": "approve", "reason": "within the concession limits", "password": PASSWORD}
        other = await quinn.post(f"{url}/decide", approve)
        assert other.status_code == 403 and "assigned to someone else" in other.json()["detail"]
        signed = await sam.post(f"{url}/decide", approve)
        assert signed.status_code == 200 and signed.json()["task"]["status"] == "done"
        await asyncio.sleep(0.1)
        drain(app)


async def test_another_customer_finds_no_task_to_assign(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    a, b = world.a.customer, world.b.customer
    tina = await _person(app, api, a, "technician")
    bert = await _person(app, api, b, "technician")
    run_id = await _run_of(api, a, CHECK, {"lot": "L-9"})
    with running_worker(app):
        drain(app)
        task = await _task(api, a, run_id)
    theirs = f"{_base(b)}/tasks/{task['id']}"
    assert (await bert.post(f"{theirs}/assign", {"assignee": bert.email})).status_code == 404
    assert (await bert.post(f"{theirs}/delegate", {"to": bert.email})).status_code == 404
    by_key = await api.post(f"{theirs}/assign", headers=auth(b.key), json={"assignee": None})
    assert by_key.status_code == 404
    # Nor is the first customer's person anyone the second customer's tasks can be given to.
    given = await api.post(f"{_base(a)}/tasks/{task['id']}/assign", headers=auth(a.key), json={"assignee": bert.email})
    assert given.status_code == 422
    assert (await _task(api, a, run_id))["assignee"] is None
    assert tina.id != bert.id
