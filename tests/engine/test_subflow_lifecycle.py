"""A parent run's lifecycle bounds its children's, on a real worker and the scheduler with a clock set
ahead: a waiting subflow step gives up after ``timeout_seconds`` (taking ``on_timeout`` or failing)
and cancels the child it stopped waiting for (unless told not to); a parent that fails cancels its
running children and theirs, each saying why, and leaves a finished child as it was; a succeeded
parent leaves a fire-and-forget child running; another customer's runs are never touched."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from litestar import Litestar

from andon.platform.db.types import utcnow
from andon.platform.engine.executor import STEP_QUEUE
from andon.platform.engine.scheduler import Scheduler
from tests.engine.test_subflow_step import (
    DOUBLE,
    WAITS,
    _base,
    _detail,
    _runs_of,
    _save,
    _start,
    _steps,
    _workflow,
    settle,
)
from tests.support.workers import running_worker
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio


def _waiting_sub(**fields: Any) -> dict[str, Any]:
    return {"key": "sub", "kind": "subflow", "workflow": "waits", "inputs": {"asset": "{{ event.subject }}"}, **fields}


def _scheduler(app: Litestar, after: float) -> Scheduler:
    """A scheduler whose clock runs ``after`` seconds ahead: it fires what is due by then."""

    def clock() -> datetime:
        return utcnow() + timedelta(seconds=after)

    return Scheduler(app.state.sessionmaker, app.state.scheduler.send, clock=clock)


async def _open_tasks(api: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    r = await api.get(f"{_base(tenant)}/tasks/", headers=auth(tenant.key), params={"status": "open"})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_a_timed_out_wait_takes_on_timeout_and_cancels_the_child(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    await _workflow(api, c, "waits", WAITS)
    parent = await _workflow(
        api,
        c,
        "parent",
        [
            _waiting_sub(timeout_seconds=60, on_timeout="late", next="after"),
            {"key": "after", "kind": "set", "values": {"ok": "true"}},
            {"key": "late", "kind": "set", "values": {"child": "steps.sub.run_id"}},
        ],
    )
    run_id = await _start(api, c, parent, {"subject": "press-3"})
    with running_worker(app):
        await settle(app)
        [child] = await _runs_of(api, c, "waits")
        assert await _scheduler(app, 30).fire_due() == 0, "nothing is due before the timeout"
        await settle(app)
        assert (await _detail(api, c, run_id))["run"]["status"] == "running"
        assert await _scheduler(app, 61).fire_due() == 1
        await settle(app)
    detail = await _detail(api, c, run_id)
    assert detail["run"]["status"] == "succeeded", detail
    sub = _steps(detail)["sub"]
    assert sub["status"] == "succeeded" and sub["output"] == {
        "timed_out": True,
        "run_id": child["id"],
        "workflow": "waits",
    }
    assert _steps(detail)["late"]["output"] == {"child": child["id"]} and "after" not in _steps(detail)
    child_detail = await _detail(api, c, child["id"])
    assert child_detail["run"]["status"] == "cancelled"
    assert (
        child_detail["run"]["error"] == f"cancelled because its parent run {run_id} stopped waiting for it after 60 s"
    )
    assert [s["status"] for s in child_detail["steps"]] == ["cancelled"]
    assert [t["status"] for t in child_detail["tasks"]] == ["cancelled"]
    assert await _open_tasks(api, c) == []


async def test_a_timed_out_wait_without_on_timeout_fails_the_step_and_cancels_the_child(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    await _workflow(api, c, "waits", WAITS)
    parent = await _workflow(api, c, "parent", [_waiting_sub(timeout_seconds=90)])
    run_id = await _start(api, c, parent, {"subject": "press-4"})
    with running_worker(app):
        await settle(app)
        [child] = await _runs_of(api, c, "waits")
        await _scheduler(app, 91).fire_due()
        await settle(app)
    detail = await _detail(api, c, run_id)
    sub = _steps(detail)["sub"]
    assert detail["run"]["status"] == "failed", detail
    assert (sub["status"], sub["error_kind"]) == ("failed", "timeout")
    assert sub["error"] == f"the child run {child['id']} did not finish within 90 s"
    assert detail["run"]["error"] == f"sub: the child run {child['id']} did not finish within 90 s"
    child_run = (await _detail(api, c, child["id"]))["run"]
    assert child_run["status"] == "cancelled" and "stopped waiting for it after 90 s" in child_run["error"]


async def test_a_child_kept_on_timeout_runs_on_and_a_child_done_in_time_stops_the_timer(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    await _workflow(api, c, "waits", WAITS)
    await _workflow(api, c, "double", DOUBLE)
    kept = await _workflow(
        api,
        c,
        "kept",
        [
            _waiting_sub(timeout_seconds=60, on_timeout="late", cancel_child_on_timeout=False),
            {"key": "late", "kind": "set", "values": {"ok": "true"}},
        ],
    )
    quick = await _workflow(
        api, c, "quick", [_waiting_sub(workflow="double", inputs={"n": 2, "asset": "x"}, timeout_seconds=60)]
    )
    kept_run = await _start(api, c, kept, {"subject": "press-5"})
    quick_run = await _start(api, c, quick, {})
    with running_worker(app):
        await settle(app)
        assert (await _detail(api, c, quick_run))["run"]["status"] == "succeeded"
        await _scheduler(app, 61).fire_due()
        await settle(app)
    assert (await _detail(api, c, kept_run))["run"]["status"] == "succeeded"
    [child] = await _runs_of(api, c, "waits")
    assert child["status"] == "running" and child["error"] is None
    # The quick child's outcome stands: its step's timeout, fired later, found nothing waiting.
    detail = await _detail(api, c, quick_run)
    assert detail["run"]["status"] == "succeeded" and _steps(detail)["sub"]["output"]["status"] == "succeeded"


async def test_a_failing_parent_cancels_its_running_children_and_theirs_but_not_a_finished_one(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    a, b = world.a.customer, world.b.customer
    for tenant in (a, b):
        await _workflow(api, tenant, "waits", WAITS)
    await _workflow(api, a, "double", DOUBLE)
    await _workflow(api, a, "middle", [_waiting_sub(inputs={"asset": "{{ inputs.asset }}"})])
    parent = await _workflow(
        api,
        a,
        "parent",
        [
            {"key": "done", "kind": "subflow", "workflow": "double", "inputs": {"n": 1, "asset": "x"}, "next": "fork"},
            {"key": "fork", "kind": "parallel", "branches": ["sub", "loose", "gate"]},
            _waiting_sub(workflow="middle", timeout_seconds=600),
            {"key": "loose", "kind": "subflow", "workflow": "waits", "wait": False, "inputs": {"asset": "loose"}},
            {"key": "gate", "kind": "task", "title": "Gate", "next": "boom"},
            {"key": "boom", "kind": "set", "values": {"v": "1 / 0"}},
        ],
    )
    # Another customer's run of a workflow of the same key, waiting too: never touched.
    others = await _workflow(api, b, "others", [_waiting_sub()])
    other_run = await _start(api, b, others, {"subject": "press-b"})
    run_id = await _start(api, a, parent, {"subject": "press-6"})
    with running_worker(app):
        await settle(app)
        [done] = await _runs_of(api, a, "double")
        [middle] = await _runs_of(api, a, "middle")
        leaves = {
            r["context"]["inputs"]["asset"]: r
            for r in [await _detail(api, a, x["id"]) for x in await _runs_of(api, a, "waits")]
        }
        assert set(leaves) == {"press-6", "loose"}
        [gate] = [t for t in await _open_tasks(api, a) if t["title"] == "Gate"]
        r = await api.post(f"{_base(a)}/tasks/{gate['id']}/complete", headers=auth(a.key), json={"outcome": {}})
        assert r.status_code == 200, r.text
        await settle(app)
    detail = await _detail(api, a, run_id)
    assert detail["run"]["status"] == "failed" and detail["run"]["error"].startswith("boom:"), detail
    middle_run = (await _detail(api, a, middle["id"]))["run"]
    assert (middle_run["status"], middle_run["error"]) == (
        "cancelled",
        f"cancelled because its parent run {run_id} failed",
    )
    leaf = await _detail(api, a, leaves["press-6"]["run"]["id"])
    assert (leaf["run"]["status"], leaf["run"]["error"]) == (
        "cancelled",
        f"cancelled because its parent run {middle['id']} was cancelled",
    )
    assert [t["status"] for t in leaf["tasks"]] == ["cancelled"]
    loose = (await _detail(api, a, leaves["loose"]["run"]["id"]))["run"]
    assert (loose["status"], loose["error"]) == ("cancelled", f"cancelled because its parent run {run_id} failed")
    # The step that waited for the middle run is held: retrying the run starts a new child.
    sub = _steps(detail)["sub"]
    assert (sub["status"], sub["error_kind"]) == ("cancelled", "held")
    # The child that had finished is as it was.
    finished = (await _detail(api, a, done["id"]))["run"]
    assert (finished["status"], finished["error"], finished["finished_at"]) == ("succeeded", None, done["finished_at"])
    assert await _open_tasks(api, a) == []
    # The other customer: its run still waits, its child still runs, and it sees none of a's runs.
    other = await _detail(api, b, other_run)
    assert other["run"]["status"] == "running" and _steps(other)["sub"]["status"] == "waiting"
    assert [r["status"] for r in await _runs_of(api, b, "waits")] == ["running"]
    assert await _runs_of(api, b, "middle") == []
    r = await api.get(f"{_base(b)}/runs/{middle['id']}", headers=auth(b.key))
    assert r.status_code == 404
    # Passing over the failed step resumes the run: the held step starts a new child and waits for it
    # afresh; only the new wait's timeout fires (the old wait's was withdrawn when the step was held).
    with running_worker(app):
        r = await api.post(
            f"{_base(a)}/runs/{run_id}/steps/boom/skip", headers=auth(a.key), json={"reason": "checked by hand"}
        )
        assert r.status_code == 200, r.text
        await settle(app)
        resumed = await _detail(api, a, run_id)
        assert resumed["run"]["status"] == "running" and _steps(resumed)["sub"]["status"] == "waiting"
        [again] = [r for r in await _runs_of(api, a, "middle") if r["status"] == "running"]
        assert await _scheduler(app, 601).fire_due() == 1
        await settle(app)
    sub = _steps(await _detail(api, a, run_id))["sub"]
    assert sub["error"] == f"the child run {again['id']} did not finish within 600 s"


async def test_a_person_cancelling_a_parent_cancels_its_children_and_leaves_a_finished_one(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    a, b = world.a.customer, world.b.customer
    for tenant in (a, b):
        await _workflow(api, tenant, "waits", WAITS)
    await _workflow(api, a, "double", DOUBLE)
    parent = await _workflow(
        api,
        a,
        "parent",
        [
            {"key": "done", "kind": "subflow", "workflow": "double", "inputs": {"n": 1, "asset": "x"}, "next": "sub"},
            _waiting_sub(),
        ],
    )
    others = await _workflow(api, b, "parent", [_waiting_sub()])
    other_run = await _start(api, b, others, {"subject": "press-b"})
    run_id = await _start(api, a, parent, {"subject": "press-8"})
    with running_worker(app):
        await settle(app)
        [done] = await _runs_of(api, a, "double")
        [child] = await _runs_of(api, a, "waits")
        # Another customer cannot cancel it: it does not exist for them.
        r = await api.post(f"{_base(b)}/runs/{run_id}/cancel", headers=auth(b.key))
        assert r.status_code == 404
        r = await api.post(f"{_base(a)}/runs/{run_id}/cancel", headers=auth(a.key))
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        await settle(app)
    child_run = (await _detail(api, a, child["id"]))["run"]
    assert (child_run["status"], child_run["error"]) == (
        "cancelled",
        f"cancelled because its parent run {run_id} was cancelled",
    )
    finished = (await _detail(api, a, done["id"]))["run"]
    assert (finished["status"], finished["error"], finished["finished_at"]) == ("succeeded", None, done["finished_at"])
    assert (await _detail(api, b, other_run))["run"]["status"] == "running"
    assert [r["status"] for r in await _runs_of(api, b, "waits")] == ["running"]


async def test_a_fire_and_forget_child_of_a_succeeded_parent_keeps_running(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    await _workflow(api, c, "waits", WAITS)
    parent = await _workflow(api, c, "parent", [_waiting_sub(wait=False)])
    run_id = await _start(api, c, parent, {"subject": "press-9"})
    with running_worker(app):
        await settle(app)
    assert (await _detail(api, c, run_id))["run"]["status"] == "succeeded"
    [child] = await _runs_of(api, c, "waits")
    assert (child["status"], child["error"]) == ("running", None)
    assert [t["title"] for t in await _open_tasks(api, c)] == ["Confirm press-9"]


async def test_timeouts_are_checked_when_saved(api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    await _workflow(api, c, "waits", WAITS)
    late = {"key": "late", "kind": "set", "values": {"ok": "true"}}
    r = await _save(api, c, "no-timeout", [_waiting_sub(on_timeout="late"), late])
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {
            "field": "steps[0].on_timeout",
            "message": "on_timeout needs timeout_seconds (how long to wait for the child run)",
        }
    ]
    r = await _save(api, c, "no-wait", [_waiting_sub(wait=False, timeout_seconds=5, on_timeout="late"), late])
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["steps[0].timeout_seconds", "steps[0].on_timeout"]
    r = await _save(api, c, "bad-target", [_waiting_sub(timeout_seconds=5, on_timeout="nowhere")])
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "steps[0]", "message": "goes to 'nowhere', which is not a step"}]
    r = await _save(api, c, "zero", [_waiting_sub(timeout_seconds=0)])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "steps[0].timeout_seconds"


async def test_a_child_that_ends_as_its_parent_times_out_still_counts(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    c = world.a.customer
    await _workflow(api, c, "waits", WAITS)
    parent = await _workflow(api, c, "parent", [_waiting_sub(timeout_seconds=60)])
    run_id = await _start(api, c, parent, {"subject": "press-10"})
    with running_worker(app):
        await settle(app)
    [child] = await _runs_of(api, c, "waits")
    # The timeout wakes the parent's step, but its message is lost before a worker takes it ...
    assert await _scheduler(app, 61).fire_due() == 1
    app.state.broker.flush(STEP_QUEUE)
    # ... and meanwhile the child ends: its ending finds the step no longer waiting and wakes nothing.
    [task] = await _open_tasks(api, c)
    r = await api.post(f"{_base(c)}/tasks/{task['id']}/complete", headers=auth(c.key), json={"outcome": {"ok": 1}})
    assert r.status_code == 200, r.text
    with running_worker(app):
        await settle(app)
        assert (await _detail(api, c, child["id"]))["run"]["status"] == "succeeded"
        assert _steps(await _detail(api, c, run_id))["sub"]["status"] == "queued"
        # The sweep sends the lost message again: the step finds its child done, and passes with it.
        assert await _scheduler(app, 120).sweep() == 1
        await settle(app)
    detail = await _detail(api, c, run_id)
    assert detail["run"]["status"] == "succeeded", detail
    sub = _steps(detail)["sub"]
    assert sub["output"]["run_id"] == child["id"] and sub["output"]["status"] == "succeeded"
    assert (await _detail(api, c, child["id"]))["run"]["status"] == "succeeded"
