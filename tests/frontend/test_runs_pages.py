"""The runs pages and the inbox without JavaScript: runs found by status, workflow and words; a run's
page with its step graph (inline SVG), timeline and signatures; cancel, retry and skip (with a reason)
through the run service; the inbox of a person's open tasks and approvals, completed and signed with a
reason and the password (a wrong one says so, nothing is recorded); a technician cannot sign; another
customer finds none of it."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar

from andon.frontend.operations.run_graph import layout, render_svg
from tests.frontend.test_customer_console import _person
from tests.support.browser import csrf_token
from tests.support.workers import drain, running_worker
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple"
SUE = "sue@alpha-customer.example"
TOM = "tom@alpha-customer.example"
HTML = {"accept": "text/html"}


def _base(tenant: Tenant) -> str:
    return f"/api/v1/customers/{tenant.customer_id}"


def _main(page: httpx.Response) -> str:
    """The page's main content, unescaped, for reading as a person would."""
    return html.unescape(page.text.split('<main id="main"', 1)[1].split("</main>", 1)[0])


def _words(page: httpx.Response) -> str:
    """The words of the page's main content, without markup, each run of white space one space."""
    main = page.text.split('<main id="main"', 1)[1].split("</main>", 1)[0]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", main)).split())


@pytest.fixture
def worker(app: Litestar) -> Iterator[None]:
    """One worker for the whole test: its database connections belong to its own event loop, so a
    test does not start a second one after the first stopped."""
    with running_worker(app):
        yield


@pytest.fixture
async def sue(app: Litestar, api: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    """A plant supervisor of the first customer: follows runs, steps in, signs approvals."""
    browser = await _person(app, api, world.a.customer, SUE, "plant_supervisor")
    yield browser
    await browser.aclose()


@pytest.fixture
async def tom(app: Litestar, api: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    """A technician of the first customer: does tasks, reads runs, signs nothing, changes no run."""
    browser = await _person(app, api, world.a.customer, TOM, "technician")
    yield browser
    await browser.aclose()


@pytest.fixture
async def bea(app: Litestar, api: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    """A plant supervisor of the second customer."""
    browser = await _person(app, api, world.b.customer, "bea@bravo-customer.example", "plant_supervisor")
    yield browser
    await browser.aclose()


async def _workflow(api: httpx.AsyncClient, tenant: Tenant, key: str, name: str, steps: list[dict[str, Any]]) -> str:
    r = await api.post(
        f"{_base(tenant)}/workflows/",
        headers=auth(tenant.key),
        json={"key": key, "name": name, "definition": {"steps": steps}},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _start(api: httpx.AsyncClient, tenant: Tenant, workflow_id: str, event: dict[str, Any]) -> str:
    r = await api.post(f"{_base(tenant)}/workflows/{workflow_id}/runs", headers=auth(tenant.key), json={"event": event})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _run(api: httpx.AsyncClient, tenant: Tenant, run_id: str) -> dict[str, Any]:
    r = await api.get(f"{_base(tenant)}/runs/{run_id}", headers=auth(tenant.key))
    assert r.status_code == 200, r.text
    detail: dict[str, Any] = r.json()
    return detail


RELEASE: list[dict[str, Any]] = [
    {
        "key": "sign_off",
        "kind": "approval",
        "title": "Release lot {{ event.lot }}",
        "instructions": "Deviation {{ event.deviation }}: release under concession?",
        "meaning": "Released under concession",
        "next": "check",
        "on_reject": "contain",
    },
    {"key": "check", "kind": "task", "title": "Check lot {{ event.lot }} at the gate", "role": "technician"},
    {"key": "contain", "kind": "set", "values": {"contained": "true"}},
]
BROKEN: list[dict[str, Any]] = [
    {"key": "start", "kind": "set", "values": {"seen": "true"}, "next": "boom"},
    {"key": "boom", "kind": "set", "values": {"x": "event.nothing.here"}, "next": "after"},
    {"key": "after", "kind": "set", "values": {"done": "true"}},
]


async def _two_runs(app: Litestar, api: httpx.AsyncClient, tenant: Tenant) -> tuple[str, str]:
    """A lot release waiting for its approval, and a run whose second step failed (the test's worker
    runs them)."""
    release = await _workflow(api, tenant, "lot-release", "Lot release", RELEASE)
    broken = await _workflow(api, tenant, "gauge-sync", "Gauge sync", BROKEN)
    release_run = await _start(api, tenant, release, {"lot": "L-77", "deviation": "D-12"})
    broken_run = await _start(api, tenant, broken, {"gauge": "G-1"})
    for run_id in (release_run, broken_run):
        await _settle(app, api, tenant, run_id)
    return release_run, broken_run


async def _settle(app: Litestar, api: httpx.AsyncClient, tenant: Tenant, run_id: str) -> None:
    """Wait for the step messages an act sent once its transaction committed (from a task of the app's
    event loop, through the broker), and for the worker to finish the steps they queued."""
    for _ in range(100):
        await asyncio.sleep(0.1)
        drain(app)
        steps = (await _run(api, tenant, run_id))["steps"]
        if not any(s["status"] in ("queued", "running") for s in steps):
            return
    raise AssertionError(f"run {run_id} still has queued steps")


async def _token(browser: httpx.AsyncClient) -> str:
    """The session's CSRF token, as any form of the portal carries it."""
    return csrf_token((await browser.get("/account")).text)


async def _post(browser: httpx.AsyncClient, path: str, data: dict[str, str]) -> httpx.Response:
    token = await _token(browser)
    return await browser.post(path, data={"csrf_token": token, **data}, follow_redirects=False)


async def test_runs_are_found_by_filters_and_shown_with_their_graph(
    app: Litestar, worker: None, api: httpx.AsyncClient, world: World, sue: httpx.AsyncClient, bea: httpx.AsyncClient
) -> None:
    c = world.a.customer
    empty = await sue.get("/operations/runs")
    assert empty.status_code == 200 and "No runs yet" in _main(empty)
    nav = empty.text.split('<nav aria-label="Main">', 1)[1].split("</nav>", 1)[0]
    links = re.findall(r'href="(/operations/[a-z]+)"', nav)
    assert links == [
        "/operations/incidents",
        "/operations/inbox",
        "/operations/alerts",
        "/operations/runs",
        "/operations/events",
    ]
    release_run, broken_run = await _two_runs(app, api, c)

    listing = _main(await sue.get("/operations/runs"))
    assert "2 run(s)" in listing and "Lot release" in listing and "Gauge sync" in listing
    assert f'href="/operations/runs/{release_run}"' in listing and f'href="/operations/runs/{broken_run}"' in listing
    assert listing.index(broken_run) < listing.index(release_run)  # newest first
    assert 'class="badge status-failed"' in listing and 'class="badge status-running"' in listing

    async def shown(**params: str) -> str:
        page = await sue.get("/operations/runs", params=params)
        assert page.status_code == 200, page.text
        return _main(page)

    failed = await shown(status="failed")
    assert "1 run(s) matching" in failed and broken_run in failed and release_run not in failed
    assert '<option value="failed" selected>' in failed
    by_workflow = await shown(workflow="lot-release")
    assert "1 run(s) matching" in by_workflow and release_run in by_workflow
    assert release_run in await shown(q="release") and broken_run not in await shown(q="release")
    assert broken_run in await shown(q="gauge") and broken_run in await shown(q=broken_run)
    assert "No run matches" in await shown(q="nothing like this")
    assert "2 run(s)" in await shown(status="not-a-status", workflow="no-such-workflow")  # ignored

    broken = await sue.get(f"/operations/runs/{broken_run}")
    assert broken.status_code == 200
    page = _main(broken)
    assert "Gauge sync" in page and 'class="badge status-failed"' in page
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="run-graph" role="img"' in broken.text
    assert re.search(r'<g class="node status-succeeded" data-step="start">', broken.text)
    assert re.search(r'<g class="node status-failed" data-step="boom">', broken.text)
    assert re.search(r'<g class="node status-none" data-step="after">', broken.text)  # not reached
    assert broken.text.count('<path class="edge"') == 2
    assert "Error (invalid)" in page and "nothing" in page and "attempt 1" in page
    assert 'aria-label="Retry step boom"' in page and "Why skip “boom” (failed)?" in page
    assert "every 3s" not in broken.text  # a failed run does not poll

    waiting = await sue.get(f"/operations/runs/{release_run}")
    # Under way, the page asks every 3 s whether anything changed, and fetches its live part when it did.
    assert 'hx-trigger="run-changed from:body" hx-select="#run-live"' in waiting.text
    asked = re.search(
        r'hx-get="(/operations/runs/[^"]+/changes)\?since=([0-9a-f]+)" hx-trigger="every 3s"', waiting.text
    )
    assert asked, waiting.text
    same = await sue.get(asked.group(1), params={"since": asked.group(2)})
    assert same.status_code == 204 and "hx-trigger" not in same.headers
    changed = await sue.get(asked.group(1), params={"since": "0" * 16})
    assert changed.status_code == 200 and changed.headers["hx-trigger"] == "run-changed"
    assert (await bea.get(asked.group(1), params={"since": "0" * 16})).status_code == 404
    detail = _main(waiting)
    assert "Release lot L-77" in detail and "Open it in the inbox" in detail and "No signature yet" in detail
    assert re.search(r'<g class="node status-waiting" data-step="sign_off">', waiting.text)
    assert ">rejected</text>" in waiting.text  # the reject path's edge is labelled
    assert "Cancel the run" in detail

    # The second customer: the same addresses find nothing, and its own lists are empty.
    for path in (f"/operations/runs/{release_run}", f"/operations/runs/{broken_run}"):
        assert (await bea.get(path, headers=HTML)).status_code == 404
    assert "No runs yet" in _main(await bea.get("/operations/runs"))
    assert "Nothing waits for you" in _main(await bea.get("/operations/inbox"))
    token = await _token(bea)
    for action in ("cancel", "steps/boom/retry"):
        r = await bea.post(f"/operations/runs/{broken_run}/{action}", data={"csrf_token": token}, headers=HTML)
        assert r.status_code == 404
    assert (await _run(api, c, broken_run))["run"]["status"] == "failed"


async def test_people_retry_skip_and_cancel_runs(
    app: Litestar, worker: None, api: httpx.AsyncClient, world: World, sue: httpx.AsyncClient, tom: httpx.AsyncClient
) -> None:
    c = world.a.customer
    release_run, broken_run = await _two_runs(app, api, c)
    here = f"/operations/runs/{broken_run}"

    # A technician reads runs but changes none: no buttons, and the route refuses.
    technician_view = _main(await tom.get(here))
    assert "Retry" not in technician_view and "Skip" not in technician_view
    token = await _token(tom)
    refused = await tom.post(f"{here}/steps/boom/retry", data={"csrf_token": token}, headers=HTML)
    assert refused.status_code == 403
    # Without the form's CSRF token nothing happens.
    assert (await sue.post(f"{here}/cancel", data={}, headers=HTML)).status_code == 403

    retried = await _post(sue, f"{here}/steps/boom/retry", {})
    assert retried.status_code == 303 and retried.headers["location"].startswith(here)
    assert "Retrying step boom" in _main(await sue.get(retried.headers["location"]))
    await _settle(app, api, c, broken_run)
    steps = {s["step_key"]: s for s in (await _run(api, c, broken_run))["steps"]}
    assert steps["boom"]["attempt"] == 2 and steps["boom"]["status"] == "failed"  # still broken
    assert "attempt 2" in _main(await sue.get(here))

    no_reason = await _post(sue, f"{here}/steps/boom/skip", {"reason": " "})
    assert no_reason.status_code == 422
    assert re.search(r'<p class="error" id="reason-boom-error">say why', no_reason.text)
    assert re.search(
        r'id="reason-boom"[^>]*aria-describedby="reason-boom-hint reason-boom-error"', no_reason.text, re.S
    )
    skipped = await _post(sue, f"{here}/steps/boom/skip", {"reason": "gauge synced by hand"})
    assert skipped.status_code == 303
    await _settle(app, api, c, broken_run)
    after = await _run(api, c, broken_run)
    assert after["run"]["status"] == "succeeded", after
    page = _main(await sue.get(here))
    assert "Skipped: gauge synced by hand" in page and 'class="badge status-succeeded"' in page
    again = await _post(sue, f"{here}/steps/boom/retry", {})
    assert "Nothing changed: step 'boom' is skipped" in _main(await sue.get(again.headers["location"]))

    release = f"/operations/runs/{release_run}"
    cancelled = await _post(sue, f"{release}/cancel", {})
    assert cancelled.status_code == 303
    shown = _main(await sue.get(cancelled.headers["location"]))
    assert "Cancelled the run" in shown and 'class="badge status-cancelled"' in shown and "Cancel the run" not in shown
    twice = await _post(sue, f"{release}/cancel", {})
    assert "Nothing changed: the run is cancelled" in _main(await sue.get(twice.headers["location"]))
    assert (await _run(api, c, release_run))["tasks"][0]["status"] == "cancelled"
    trail = (await api.get(f"{_base(c)}/audit", headers=auth(c.key), params={"limit": 200})).text
    assert "run.step_retried" in trail and "run.step_skipped" in trail and "gauge synced by hand" in trail
    assert trail.count("run.cancelled") == 1


async def test_the_inbox_signs_approvals_and_completes_tasks(
    app: Litestar,
    worker: None,
    api: httpx.AsyncClient,
    world: World,
    sue: httpx.AsyncClient,
    tom: httpx.AsyncClient,
    bea: httpx.AsyncClient,
) -> None:
    c = world.a.customer
    release_run, _ = await _two_runs(app, api, c)
    task = (await _run(api, c, release_run))["tasks"][0]
    decide = f"/operations/inbox/{task['id']}/decide"

    inbox = await sue.get("/operations/inbox")
    assert inbox.status_code == 200
    shown = _words(inbox)
    assert "Release lot L-77" in shown and "Deviation D-12: release under concession?" in shown
    assert "Your signature means: Released under concession" in shown and 'name="password"' in inbox.text
    assert 'hx-get="/operations/inbox/count?shown=1"' in inbox.text and 'hx-trigger="every 10s"' in inbox.text
    count = await sue.get("/operations/inbox/count", params={"shown": "0"})
    assert count.status_code == 200 and "<strong>1</strong> open item for you" in count.text
    assert "The list changed: reload it" in count.text and "<main" not in count.text

    # A technician has no approvals in the inbox, and cannot sign one by posting the form.
    assert "Nothing waits for you" in _main(await tom.get("/operations/inbox"))
    assert "Nothing waits for you" in _main(await tom.get("/operations/inbox?view=all"))  # not even another's
    token = await _token(tom)
    data = {"csrf_token": token, "decision": "approve", "reason": "looks fine", "password": PASSWORD}
    assert (await tom.post(decide, data=data, headers=HTML)).status_code == 403

    # A wrong password: the form says so by the password field, and nothing is recorded.
    wrong = await _post(sue, decide, {"decision": "approve", "reason": "within limits", "password": "not it"})
    assert wrong.status_code == 422 and "Traceback" not in wrong.text
    field = f"password-{task['id']}"
    assert re.search(rf'<p class="error" id="{field}-error">The password does not match', wrong.text)
    assert re.search(rf'id="{field}"[^>]*aria-describedby="{field}-hint {field}-error"', wrong.text, re.S)
    assert "within limits" in _main(wrong)  # the reason typed comes back
    evidence = await api.get(f"{_base(c)}/tasks/{task['id']}", headers=auth(c.key))
    assert evidence.json()["decisions"] == [] and evidence.json()["task"]["status"] == "open"
    no_reason = await _post(sue, decide, {"decision": "approve", "reason": "", "password": PASSWORD})
    assert no_reason.status_code == 422
    assert re.search(rf'<p class="error" id="reason-{task["id"]}-error">say why', no_reason.text)

    # The second customer neither sees nor signs it.
    assert "Nothing waits for you" in _main(await bea.get("/operations/inbox?view=all"))
    token = await _token(bea)
    assert (await bea.post(decide, data={**data, "csrf_token": token}, headers=HTML)).status_code == 404

    signed = await _post(
        sue,
        decide,
        {"decision": "approve", "reason": "within the limits", "password": PASSWORD},
    )
    assert signed.status_code == 303, signed.text
    assert "Approved: Release lot L-77" in _main(await sue.get(signed.headers["location"]))
    await _settle(app, api, c, release_run)
    check = next(t for t in (await _run(api, c, release_run))["tasks"] if t["step_key"] == "check")
    mine = _main(await tom.get("/operations/inbox"))
    assert "Check lot L-77 at the gate" in mine and "Nothing waits" not in mine
    complete = f"/operations/inbox/{check['id']}/complete"
    needs_note = await _post(tom, complete, {"result": "not_possible", "note": ""})
    assert needs_note.status_code == 422
    assert re.search(rf'<p class="error" id="note-{check["id"]}-error">say what you found', needs_note.text)
    done = await _post(tom, complete, {"result": "done", "note": "seal intact"})
    assert done.status_code == 303
    assert "Done: Check lot L-77 at the gate" in _main(await tom.get(done.headers["location"]))
    await _settle(app, api, c, release_run)
    assert "Nothing waits for you" in _main(await sue.get("/operations/inbox"))
    detail = await _run(api, c, release_run)
    assert detail["run"]["status"] == "succeeded", detail
    steps = {s["step_key"]: s for s in detail["steps"]}
    assert (
        steps["check"]["output"]["outcome"] == {"result": "done"} and steps["check"]["output"]["note"] == "seal intact"
    )

    # The run's page shows the signature as evidence: who, when, what it means, why, how proved.
    run_page = await sue.get(f"/operations/runs/{release_run}")
    page = _words(run_page)
    signatures = page.split("Signatures", 1)[1]
    assert SUE in signatures and "Released under concession" in signatures and "Reason: within the limits" in signatures
    assert "Identity proved by password" in signatures and "<time datetime=" in _main(run_page)
    assert "What the signer was shown" in signatures and '"lot": "L-77"' in signatures
    assert "Note: seal intact" in page
    trail = (await api.get(f"{_base(c)}/audit", headers=auth(c.key), params={"limit": 200})).text
    assert trail.count("approval.signed") == 1 and trail.count("task.completed") == 1


async def test_a_requester_cannot_approve_their_own_request(
    app: Litestar, worker: None, api: httpx.AsyncClient, world: World, sue: httpx.AsyncClient
) -> None:
    """Separation of duties, said on the form rather than as an error page."""
    c = world.a.customer
    workflow = await _workflow(api, c, "own-release", "Own release", RELEASE)
    me = (await sue.get("/api/v1/me")).json()
    token = await _token(sue)
    started = await sue.post(
        f"{_base(c)}/workflows/{workflow}/runs",
        json={"event": {"lot": "L-9", "deviation": "D-1"}},
        headers={"x-csrf-token": token},
    )
    assert started.status_code == 201, started.text
    await _settle(app, api, c, str(started.json()["id"]))
    task = (await _run(api, c, str(started.json()["id"])))["tasks"][0]
    assert task["requester"] == str(me["id"])
    own = await _post(
        sue,
        f"/operations/inbox/{task['id']}/decide",
        {"decision": "approve", "reason": "my own lot", "password": PASSWORD},
    )
    assert own.status_code == 403 and "Not signed: separation of duties" in _words(own)
    assert "Release lot L-9" in _main(own)  # still in the inbox, with the form


async def test_the_graph_lays_out_branches_joins_and_unknown_kinds() -> None:
    """Each step one layer below the furthest step leading to it; a join under all its branches, the
    edges into it dashed; labels on branch edges; every value escaped; a kind the page does not know
    drawn all the same."""
    definition = {
        "steps": [
            {"key": "fan_out", "kind": "parallel", "branches": ["page", "wait", "note"]},
            {"key": "page", "kind": "action", "capability": "notify", "next": "slow", "fallback": "by_hand"},
            {"key": "slow", "kind": "timer", "seconds": 5, "next": "join"},
            {"key": "wait", "kind": "timer", "seconds": 1, "next": "join"},
            {"key": "note", "kind": "escalate", "title": "<b>Ladder</b>", "next": "join"},
            {"key": "by_hand", "kind": "task", "title": "Page by phone"},
            {"key": "join", "kind": "join", "after": ["slow", "wait", "note"]},
        ]
    }
    graph = layout(definition, {"fan_out": "succeeded", "page": "failed"})
    layers = {key: node.layer for key, node in graph.nodes.items()}
    assert layers == {"fan_out": 0, "page": 1, "wait": 1, "note": 1, "slow": 2, "by_hand": 2, "join": 3}
    assert [(e.source, e.target, e.label, e.into_join) for e in graph.edges if e.target in ("join", "by_hand")] == [
        ("page", "by_hand", "fallback", False),
        ("slow", "join", "", True),
        ("wait", "join", "", True),
        ("note", "join", "", True),
    ]
    svg = str(render_svg(definition, {"fan_out": "succeeded", "page": "failed"}, label="Steps & <status>"))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert '<title id="run-graph-title">Steps &amp; &lt;status&gt;</title>' in svg and "<b>" not in svg
    assert svg.count('<g class="node') == 7 and svg.count('stroke-dasharray="5 4"') == 3
    assert '<g class="node status-failed" data-step="page">' in svg and ">branch</text>" in svg
    assert str(render_svg({"steps": "not a list"}, {}, label="x")) == ""
