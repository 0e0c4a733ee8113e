"""The ``subflow`` step on a real worker: a child run of another workflow of the same customer, waited
for (its outcome becomes the step's output; its failure fails the step or takes ``on_failure``) or
not; cycles refused when saved and nesting capped while running; cancelling a parent cancels its
children; another customer's workflow is never found, when saving or when running."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.db.scope import apply_principal_scope
from andon.platform.engine.models import Workflow
from andon.platform.engine.repository import WorkflowRepository
from andon.platform.engine.service import _SENDING
from andon.platform.engine.subflows import MAX_DEPTH
from andon.platform.tenancy.principal import system_principal
from andon.tenants.orgs.service import CustomerService
from tests.support.waiting import eventually
from tests.support.workers import drain, running_worker
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio


def _base(tenant: Tenant) -> str:
    return f"/api/v1/customers/{tenant.customer_id}"


async def _save(api: httpx.AsyncClient, tenant: Tenant, key: str, steps: list[dict[str, Any]]) -> httpx.Response:
    return await api.post(
        f"{_base(tenant)}/workflows/",
        headers=auth(tenant.key),
        json={"key": key, "name": key.title(), "definition": {"steps": steps}},
    )


async def _workflow(api: httpx.AsyncClient, tenant: Tenant, key: str, steps: list[dict[str, Any]]) -> str:
    r = await _save(api, tenant, key, steps)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _start(api: httpx.AsyncClient, tenant: Tenant, workflow_id: str, event: dict[str, Any]) -> str:
    r = await api.post(f"{_base(tenant)}/workflows/{workflow_id}/runs", headers=auth(tenant.key), json={"event": event})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _detail(api: httpx.AsyncClient, tenant: Tenant, run_id: str) -> dict[str, Any]:
    r = await api.get(f"{_base(tenant)}/runs/{run_id}", headers=auth(tenant.key))
    assert r.status_code == 200, r.text
    detail: dict[str, Any] = r.json()
    return detail


async def _runs_of(api: httpx.AsyncClient, tenant: Tenant, key: str) -> list[dict[str, Any]]:
    r = await api.get(f"{_base(tenant)}/runs/", headers=auth(tenant.key), params={"workflow_key": key})
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def settle(app: Litestar) -> None:
    """``drain``, once the step messages a request left to send after its commit are sent: drained
    before, a message still on its way would be missed (the API sends them as a task of its own)."""
    assert await eventually(lambda: not _SENDING, within=20)
    drain(app)


def _steps(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step_key"]: s for s in detail["steps"]}


def _sub(workflow: str, **fields: Any) -> dict[str, Any]:
    return {"key": "sub", "kind": "subflow", "workflow": workflow, **fields}


DOUBLE = [
    {"key": "double", "kind": "set", "values": {"v": "inputs.n * 2", "asset": "inputs.asset", "depth": "parent.depth"}}
]
BROKEN = [{"key": "divide", "kind": "set", "values": {"v": "inputs.n / 0"}}]
WAITS = [{"key": "confirm", "kind": "task", "title": "Confirm {{ inputs.asset }}"}]


async def test_a_waited_subflow_passes_with_the_childs_outputs(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    await _workflow(api, c, "double", DOUBLE)
    parent = await _workflow(
        api,
        c,
        "parent",
        [
            _sub("double", inputs={"n": 21, "asset": "{{ event.subject }}"}, next="after"),
            {"key": "after", "kind": "set", "values": {"got": "steps.sub.steps.double.v"}},
        ],
    )
    run_id = await _start(api, c, parent, {"subject": "press-7"})
    with running_worker(app):
        await settle(app)
    detail = await _detail(api, c, run_id)
    assert detail["run"]["status"] == "succeeded", detail
    sub = _steps(detail)["sub"]
    [child] = await _runs_of(api, c, "double")
    assert sub["output"]["run_id"] == child["id"] and sub["output"]["status"] == "succeeded"
    assert sub["output"]["steps"] == {"double": {"v": 42, "asset": "press-7", "depth": 1}}
    assert _steps(detail)["after"]["output"] == {"got": 42}
    child_detail = await _detail(api, c, child["id"])
    assert child_detail["run"]["status"] == "succeeded"
    assert child_detail["context"]["parent"] == {
        "run_id": run_id,
        "workflow": "parent",
        "step_key": "sub",
        "depth": 1,
        "wait": True,
    }


@pytest.mark.parametrize("on_failure", [None, "recover"])
async def test_a_failed_child_fails_the_step_or_takes_on_failure(
    app: Litestar, api: httpx.AsyncClient, world: World, on_failure: str | None
) -> None:
    c = world.a.customer
    await _workflow(api, c, "broken", BROKEN)
    steps = [
        _sub("broken", inputs={"n": 1}, next="after", on_failure=on_failure),
        {"key": "after", "kind": "set", "values": {"ok": "true"}},
        {"key": "recover", "kind": "set", "values": {"why": "steps.sub.error"}},
    ]
    parent = await _workflow(api, c, "parent", steps if on_failure else steps[:2])
    run_id = await _start(api, c, parent, {})
    with running_worker(app):
        await settle(app)
    detail = await _detail(api, c, run_id)
    [child] = await _runs_of(api, c, "broken")
    assert child["status"] == "failed"
    sub = _steps(detail)["sub"]
    if on_failure is None:
        assert detail["run"]["status"] == "failed", detail
        assert (sub["status"], sub["error_kind"]) == ("failed", "subflow")
        assert "'broken' failed: divide:" in sub["error"] and "after" not in _steps(detail)
    else:
        assert detail["run"]["status"] == "succeeded", detail
        assert sub["status"] == "succeeded" and sub["output"]["status"] == "failed"
        assert _steps(detail)["recover"]["output"]["why"].startswith("divide:") and "after" not in _steps(detail)


async def test_an_unwaited_subflow_goes_on_at_once(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    await _workflow(api, c, "waits", WAITS)
    parent = await _workflow(
        api,
        c,
        "parent",
        [
            _sub("waits", inputs={"asset": "{{ event.subject }}"}, wait=False, next="after"),
            {"key": "after", "kind": "set", "values": {"child": "steps.sub.run_id"}},
        ],
    )
    run_id = await _start(api, c, parent, {"subject": "press-9"})
    with running_worker(app):
        await settle(app)
    detail = await _detail(api, c, run_id)
    [child] = await _runs_of(api, c, "waits")
    assert detail["run"]["status"] == "succeeded", detail
    assert _steps(detail)["sub"]["output"] == {"run_id": child["id"], "workflow": "waits"}
    assert _steps(detail)["after"]["output"] == {"child": child["id"]}
    child_detail = await _detail(api, c, child["id"])
    assert child["status"] == "running" and child_detail["tasks"][0]["title"] == "Confirm press-9"


async def test_nesting_stops_at_the_depth_cap_and_the_failure_climbs_back(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    levels = MAX_DEPTH + 2
    await _workflow(api, c, f"level-{levels - 1}", DOUBLE)
    for n in range(levels - 2, -1, -1):
        last = await _workflow(api, c, f"level-{n}", [_sub(f"level-{n + 1}", inputs={"n": n})])
    top = await _start(api, c, last, {})
    with running_worker(app):
        await settle(app)
    assert (await _detail(api, c, top))["run"]["status"] == "failed"
    [deepest] = await _runs_of(api, c, f"level-{MAX_DEPTH}")
    sub = _steps(await _detail(api, c, deepest["id"]))["sub"]
    assert (sub["status"], sub["error_kind"]) == ("failed", "too_deep")
    assert f"at most {MAX_DEPTH} deep" in sub["error"]
    assert await _runs_of(api, c, f"level-{levels - 1}") == [], "the run past the cap never started"
    for n in range(MAX_DEPTH + 1):
        assert [r["status"] for r in await _runs_of(api, c, f"level-{n}")] == ["failed"]


async def test_cancelling_a_parent_cancels_its_children_and_a_cancelled_child_wakes_its_parent(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    await _workflow(api, c, "waits", WAITS)
    await _workflow(api, c, "middle", [_sub("waits", inputs={"asset": "{{ inputs.asset }}"})])
    parent = await _workflow(api, c, "parent", [_sub("middle", inputs={"asset": "{{ event.subject }}"})])
    first = await _start(api, c, parent, {"subject": "press-1"})
    with running_worker(app):
        await settle(app)
        [middle] = await _runs_of(api, c, "middle")
        [leaf] = await _runs_of(api, c, "waits")
        assert (middle["status"], leaf["status"]) == ("running", "running")
        r = await api.post(f"{_base(c)}/runs/{first}/cancel", headers=auth(c.key))
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        await settle(app)
        for run_id, why in (
            (middle["id"], f"its parent run {first} was cancelled"),
            (leaf["id"], f"its parent run {middle['id']} was cancelled"),
        ):
            detail = await _detail(api, c, run_id)
            assert detail["run"]["status"] == "cancelled" and why in detail["run"]["error"]
        assert (await _detail(api, c, leaf["id"]))["tasks"][0]["status"] == "cancelled"
        assert _steps(await _detail(api, c, first))["sub"]["status"] == "cancelled"

        # A child cancelled on its own wakes the parent waiting for it, which fails with it.
        second = await _start(api, c, parent, {"subject": "press-2"})
        await settle(app)
        [middle] = [r for r in await _runs_of(api, c, "middle") if r["status"] == "running"]
        r = await api.post(f"{_base(c)}/runs/{middle['id']}/cancel", headers=auth(c.key))
        assert r.status_code == 200
        await settle(app)
    detail = await _detail(api, c, second)
    assert detail["run"]["status"] == "failed", detail
    assert "'middle' cancelled" in _steps(detail)["sub"]["error"]
    assert [r["status"] for r in await _runs_of(api, c, "waits")] == ["cancelled", "cancelled"]


async def test_cycles_and_unknown_workflows_are_refused_when_saved(api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    r = await _save(api, c, "selfish", [_sub("selfish")])
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"field": "steps[0].workflow", "message": "a workflow cannot run itself as a subflow"}
    ]
    r = await _save(api, c, "orphan", [_sub("nobody")])
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "steps[0].workflow", "message": "no workflow 'nobody' in this customer"}]
    await _workflow(api, c, "b", DOUBLE)
    await _workflow(api, c, "c", [_sub("b")])
    await _workflow(api, c, "a", [_sub("c")])
    r = await _save(api, c, "b", [_sub("a")])  # b's next version would close a → c → b → a
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert error["field"] == "steps[0].workflow" and "b → a → c → b" in error["message"]


async def test_another_customers_workflow_is_not_found_when_saving_or_running(
    app: Litestar, api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    a, b = world.a.customer, world.b.customer
    await _workflow(api, a, "secret-child", DOUBLE)
    r = await _save(api, b, "thief", [_sub("secret-child")])
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"field": "steps[0].workflow", "message": "no workflow 'secret-child' in this customer"}
    ]
    # A definition saved before the checks existed (written directly): running it finds nothing.
    system = system_principal(ALL_PERMISSIONS, "test")
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system)
        ctx = await CustomerService(session, system).open_tenant(b.customer_id)
        old = await WorkflowRepository(session, ctx).add(
            Workflow(key="thief", version=1, name="Thief", definition={"steps": [_sub("secret-child")]}, params={})
        )
        old_id = str(old.id)
    run_id = await _start(api, b, old_id, {})
    with running_worker(app):
        await settle(app)
    detail = await _detail(api, b, run_id)
    sub = _steps(detail)["sub"]
    assert detail["run"]["status"] == "failed"
    assert (sub["error_kind"], sub["error"]) == ("not_found", "no workflow 'secret-child' in this customer")
    assert await _runs_of(api, a, "secret-child") == []
    assert await _runs_of(api, b, "secret-child") == []
