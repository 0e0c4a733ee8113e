"""The inbox with assignees: what is assigned to me comes first, then my roles' unassigned items;
"Take it" assigns an item to me, "Hand on to…" gives my item to another holder of its role (both forms
with the CSRF token); an item assigned to someone else offers no form to do it; the run's page shows
the assignee; another customer can neither take nor hand on."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar

from tests.frontend.test_customer_console import _person
from tests.frontend.test_runs_pages import HTML, _main, _post, _run, _settle, _start, _token, _words, _workflow
from tests.support.workers import running_worker
from tests.tenants.factories import Tenant, World

pytestmark = pytest.mark.anyio
TOM = "tom@alpha-customer.example"
TIM = "tim@alpha-customer.example"
SUE = "sue@alpha-customer.example"
CHECK: list[dict[str, Any]] = [
    {"key": "check", "kind": "task", "title": "Check lot {{ event.lot }} at the gate", "role": "technician"}
]


@pytest.fixture
def worker(app: Litestar) -> Iterator[None]:
    with running_worker(app):
        yield


@pytest.fixture
async def tom(app: Litestar, api: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    browser = await _person(app, api, world.a.customer, TOM, "technician")
    yield browser
    await browser.aclose()


@pytest.fixture
async def tim(app: Litestar, api: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    browser = await _person(app, api, world.a.customer, TIM, "technician")
    yield browser
    await browser.aclose()


@pytest.fixture
async def sue(app: Litestar, api: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    browser = await _person(app, api, world.a.customer, SUE, "plant_supervisor")
    yield browser
    await browser.aclose()


@pytest.fixture
async def bea(app: Litestar, api: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    browser = await _person(app, api, world.b.customer, "bea@bravo-customer.example", "technician")
    yield browser
    await browser.aclose()


async def _checks(app: Litestar, api: httpx.AsyncClient, tenant: Tenant) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two open checks for technicians, the first (L-1) older than the second (L-2)."""
    workflow = await _workflow(api, tenant, "gate-check", "Gate check", CHECK)
    tasks = []
    for lot in ("L-1", "L-2"):
        run_id = await _start(api, tenant, workflow, {"lot": lot})
        await _settle(app, api, tenant, run_id)
        tasks.append((await _run(api, tenant, run_id))["tasks"][0])
    return tasks[0], tasks[1]


async def test_take_it_puts_an_item_first_and_hand_on_gives_it_to_another_holder(
    app: Litestar,
    worker: None,
    api: httpx.AsyncClient,
    world: World,
    tom: httpx.AsyncClient,
    tim: httpx.AsyncClient,
    sue: httpx.AsyncClient,
) -> None:
    c = world.a.customer
    older, newer = await _checks(app, api, c)

    inbox = await tom.get("/operations/inbox")
    page = _words(inbox)
    assert "For your roles, not yet assigned" in page and "Assigned to me" not in page
    assert page.index("Check lot L-1") < page.index("Check lot L-2")  # oldest first
    assert page.count("Not assigned: anyone holding the role") == 2
    take = re.search(
        rf'<form method="post" action="/operations/inbox/{newer["id"]}/take"[^>]*>(.*?)</form>', inbox.text, re.S
    )
    assert take and 'name="csrf_token"' in take.group(1) and "Take it" in take.group(1)
    # A supervisor does not hold the technician role: the items are not theirs to take or do.
    covering = _main(await sue.get("/operations/inbox?view=all"))
    assert "Check lot L-1" in covering and "Take it" not in covering and "Mark as done" not in covering
    assert "Only people holding the technician role do it." in covering

    # Without the form's CSRF token nothing happens.
    assert (await tom.post(f"/operations/inbox/{newer['id']}/take", data={}, headers=HTML)).status_code == 403
    taken = await _post(tom, f"/operations/inbox/{newer['id']}/take", {})
    assert taken.status_code == 303, taken.text
    assert "Yours now: Check lot L-2 at the gate" in _words(await tom.get(taken.headers["location"]))
    mine = await tom.get("/operations/inbox")
    page = _words(mine)
    assert page.index("Assigned to me (1)") < page.index("Check lot L-2") < page.index("For your roles")
    assert page.index("For your roles") < page.index("Check lot L-1")  # mine first, though newer
    assert "Assigned to you" in page and "Hand on to…" in page
    choices = re.search(r'<select id="to-[^"]+" name="to"[^>]*>(.*?)</select>', mine.text, re.S)
    assert choices and TIM in choices.group(1) and TOM not in choices.group(1) and SUE not in choices.group(1)
    tim_id = re.search(r'<option value="([0-9a-f-]{36})">Tim', choices.group(1))
    assert tim_id

    # Tim no longer sees it among his role's items; covering all roles he sees it is Tom's, without a form.
    assert "Check lot L-2" not in _main(await tim.get("/operations/inbox"))
    everyone = _words(await tim.get("/operations/inbox?view=all"))
    assert f"Assigned to Tom <{TOM}>" in everyone and "Only the person it is assigned to completes it." in everyone
    refused = await _post(tim, f"/operations/inbox/{newer['id']}/complete", {"result": "done", "note": ""})
    assert refused.status_code == 403 and "Not done: this task is assigned to someone else" in _words(refused)

    # Handing on: a person must be chosen; then it is Tim's, and says who handed it on.
    nobody = await _post(tom, f"/operations/inbox/{newer['id']}/delegate", {"to": "", "handover": "off at noon"})
    assert nobody.status_code == 422
    assert re.search(rf'<p class="error" id="to-{newer["id"]}-error">choose who takes it over', nobody.text)
    handed = await _post(
        tom, f"/operations/inbox/{newer['id']}/delegate", {"to": tim_id.group(1), "handover": "off at noon"}
    )
    assert handed.status_code == 303, handed.text
    assert "Handed on: Check lot L-2 at the gate" in _words(await tom.get(handed.headers["location"]))
    his = _words(await tim.get("/operations/inbox"))
    assert his.index("Assigned to me (1)") < his.index("Check lot L-2") and f"handed on by {TOM}" in his
    task = (await _run(api, c, newer["run_id"]))["tasks"][0]
    assert task["delegated_from"] is not None and task["assignee"] == tim_id.group(1)

    # The run's page shows who has it.
    run_page = _words(await sue.get(f"/operations/runs/{newer['run_id']}"))
    assert f"Assigned to Tim <{TIM}>" in run_page and f"handed on by {TOM}" in run_page
    assert "Not assigned: anyone holding the technician role" in _words(
        await sue.get(f"/operations/runs/{older['run_id']}")
    )

    done = await _post(tim, f"/operations/inbox/{newer['id']}/complete", {"result": "done", "note": ""})
    assert done.status_code == 303
    await _settle(app, api, c, newer["run_id"])
    assert (await _run(api, c, newer["run_id"]))["run"]["status"] == "succeeded"


async def test_another_customer_can_neither_take_nor_hand_on(
    app: Litestar, worker: None, api: httpx.AsyncClient, world: World, tom: httpx.AsyncClient, bea: httpx.AsyncClient
) -> None:
    c = world.a.customer
    older, _ = await _checks(app, api, c)
    assert (await _post(tom, f"/operations/inbox/{older['id']}/take", {})).status_code == 303
    token = await _token(bea)
    for action, data in (("take", {}), ("delegate", {"to": TOM, "handover": ""})):
        r = await bea.post(
            f"/operations/inbox/{older['id']}/{action}", data={"csrf_token": token, **data}, headers=HTML
        )
        assert r.status_code == 404
    assert "Nothing waits for you" in _main(await bea.get("/operations/inbox?view=all"))
    task = (await _run(api, c, older["run_id"]))["tasks"][0]
    assert task["delegated_from"] is None and task["assigned_by"] is not None
