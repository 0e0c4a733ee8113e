"""The operations pages without JavaScript: events found by type, source, subject, site and time and
shown whole; incidents with their timeline and alerts, acknowledged, resolved and shelved by the
people on shift through the alerts service (audited, noted on the timeline); read-only roles see no
buttons and are refused; another customer finds none of it."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.db.scope import apply_principal_scope
from andon.platform.events.repository import EventRepository
from andon.platform.tenancy.principal import system_principal
from andon.tenants.orgs.service import CustomerService
from tests.events.test_correlation import alarm, send
from tests.frontend.test_customer_console import _person, _refused, _token
from tests.support.workers import running_worker
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio
STATE_CHANGE = "dev.andon.machine.state_changed.v1"
SUE = "sue@alpha-customer.example"


@pytest.fixture
async def admin(app: Litestar, api: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    browser = await _person(app, api, world.a.customer, "carla@alpha-customer.example", "customer_admin")
    yield browser
    await browser.aclose()


@pytest.fixture
async def sue(app: Litestar, api: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    """A plant supervisor of the first customer: on shift, works incidents, administers nothing."""
    browser = await _person(app, api, world.a.customer, SUE, "plant_supervisor")
    yield browser
    await browser.aclose()


def _main(page: httpx.Response) -> str:
    """The page's main content, unescaped, for reading as a person would."""
    return html.unescape(page.text.split('<main id="main"', 1)[1].split("</main>", 1)[0])


async def _api(api: httpx.AsyncClient, tenant: Tenant, path: str, **params: Any) -> Any:
    r = await api.get(f"/api/v1/customers/{tenant.customer_id}{path}", headers=auth(tenant.key), params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def _events(api: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    r = await api.get("/api/v1/events", headers=auth(tenant.key), params={"limit": 100})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def _plant_alarms(app: Litestar, api: httpx.AsyncClient, world: World) -> dict[str, Any]:
    """Two alarms of the press (one incident) and a critical one from somewhere the plant does not know
    (another incident); the incidents and alerts by code."""
    c = world.a.customer
    with running_worker(app):
        await send(
            app,
            api,
            c.key,
            [alarm("E1"), alarm("E2"), alarm("E9", asset="crane-x", siteid="nowhere", severity="critical")],
        )
    alerts = (await _api(api, c, "/alerts", limit=100))["items"]
    by_code = {a["dedup_key"].rsplit(":", 1)[1]: a for a in alerts}
    return {"alerts": by_code, "press": by_code["E1"]["incident_id"], "crane": by_code["E9"]["incident_id"]}


async def test_events_are_found_by_filters_and_shown_whole(
    app: Litestar,
    api: httpx.AsyncClient,
    world: World,
    admin: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    c = world.a.customer
    assert "No events yet" in _main(await admin.get("/operations/events"))
    with running_worker(app):
        await send(
            app,
            api,
            c.key,
            [
                alarm("E1", subject="press-1", dedupkey="press-temp"),
                {**alarm(), "type": STATE_CHANGE, "data": {"state": "running"}, "subject": "line-2"},
                alarm("E2", asset="crane-x", siteid="nowhere"),
            ],
        )
    listing = _main(await admin.get("/operations/events"))
    assert "3 event(s)" in listing and listing.count('href="/operations/events/') == 3
    assert "Machine alarm" in listing and "Machine state change" in listing and "alpha-customer plant" in listing

    async def shown(**params: str) -> str:
        page = await admin.get("/operations/events", params=params)
        assert page.status_code == 200, page.text
        return _main(page)

    only_state = await shown(type=STATE_CHANGE)
    assert "1 event(s) matching" in only_state and "Machine state change" in only_state
    assert f'<option value="{STATE_CHANGE}" selected>' in only_state
    assert "line-2" in await shown(subject="line-2") and "press-1" not in await shown(subject="line-2")
    at_site = await shown(site_id=str(c.site_id))
    assert "2 event(s) matching" in at_site and "nowhere" not in at_site
    assert "3 event(s)" in await shown(source="urn:plc:press", since="2000-01-01T00:00")
    assert "No event matches" in await shown(since="2999-01-01T00:00")
    assert "No event matches" in await shown(source="urn:nobody")
    bad = await admin.get("/operations/events", params={"since": "yesterday", "site_id": "not-an-id"})
    assert bad.status_code == 422
    assert re.search(r'<p class="error" id="since-error">not a date and time', bad.text)
    assert re.search(r'id="since"[^>]*aria-describedby="since-error"', bad.text)
    assert re.search(r'<p class="error" id="site_id-error">choose one from the list', bad.text)
    assert 'value="yesterday"' in bad.text  # what was typed comes back

    events = {e["data"].get("code") or e["type"]: e for e in await _events(api, c)}
    alarm_page = await admin.get(f"/operations/events/{events['E1']['id']}")
    assert alarm_page.status_code == 200
    detail = _main(alarm_page)
    for shown_text in (
        events["E1"]["event_id"],
        "urn:plc:press",
        "press-1",
        "press-temp",
        "alpha-customer plant",
        "Line",
        "Press",
        '"code": "E1"',
        '"state": "raised"',
        "processed",
        "http",
    ):
        assert shown_text in detail, shown_text
    raw = detail.split("As it arrived", 1)[1]
    assert events["E1"]["event_id"] in raw and "press-temp" in raw
    unknown = _main(await admin.get(f"/operations/events/{events['E2']['id']}"))
    assert "matches no site or asset of your plant" in unknown and "crane-x" in unknown

    await _expire_raw(sessionmaker, c, events["E1"]["id"])
    expired = _main(await admin.get(f"/operations/events/{events['E1']['id']}"))
    assert "Raw payload expired" in expired and '"code": "E1"' in expired
    assert (await admin.get(f"/operations/events/{uuid.uuid4()}")).status_code == 404


async def _expire_raw(sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant, event_id: str) -> None:
    """The retention period has passed for this event's payload (moved, rather than waited for)."""
    system = system_principal(ALL_PERMISSIONS, "test")
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system)
        ctx = await CustomerService(session, system).open_tenant(tenant.customer_id)
        event = await EventRepository(session, ctx).get(uuid.UUID(event_id))
        assert event is not None
        event.raw = None


async def test_a_supervisor_works_an_incident_from_its_page(
    app: Litestar, api: httpx.AsyncClient, world: World, sue: httpx.AsyncClient
) -> None:
    c = world.a.customer
    made = await _plant_alarms(app, api, world)
    press, crane, alerts = made["press"], made["crane"], made["alerts"]

    nav = (await sue.get("/operations/incidents")).text.split("</nav>", 1)[0]
    for href in ("/operations/incidents", "/operations/alerts", "/operations/events", "/admin/plant"):
        assert f'href="{href}"' in nav, href
    assert 'href="/admin/connections"' not in nav
    assert (await sue.get("/")).headers["location"] == "/operations/incidents"

    listing = _main(await sue.get("/operations/incidents"))
    assert "2 incident(s)" in listing and f"/operations/incidents/{press}" in listing
    critical = _main(await sue.get("/operations/incidents", params={"severity": "critical"}))
    assert f"/operations/incidents/{crane}" in critical and f"/operations/incidents/{press}" not in critical
    at_site = _main(await sue.get("/operations/incidents", params={"site_id": str(c.site_id)}))
    assert f"/operations/incidents/{press}" in at_site and f"/operations/incidents/{crane}" not in at_site
    assert "No incident matches" in _main(await sue.get("/operations/incidents", params={"status": "resolved"}))

    url = f"/operations/incidents/{press}"
    page = _main(await sue.get(url))
    assert [m for m in re.findall(r"<strong>([^<]+)</strong>", page) if m in ("Opened", "Alert joined")] == [
        "Opened",
        "Alert joined",
        "Alert joined",
    ]
    assert "Alarm E1" in page and "Alarm E2" in page and "Acknowledge all 2 alerts" in page
    assert "2 waiting to be acknowledged" in page

    token = await _token(sue, url)
    acked = await sue.post(f"{url}/acknowledge", data={"csrf_token": token})
    assert acked.status_code == 303 and acked.headers["location"].startswith(f"{url}?flash=")
    after = _main(await sue.get(acked.headers["location"]))
    assert (
        "Acknowledged 2 alert(s)." in after
        and f"Acknowledged by user {SUE}: Machine alarm · alpha-customer-P · Alarm E1" in after
    )
    assert "Acknowledge all" not in after and "0 waiting to be acknowledged" in after
    detail = await _api(api, c, f"/incidents/{press}")
    # Two alerts acknowledged, then the incident itself: nothing of it is left without an owner.
    assert [e["kind"] for e in detail["timeline"]] == [
        "opened",
        "alert",
        "alert",
        "acknowledged",
        "acknowledged",
        "acknowledged",
    ]
    assert detail["incident"]["status"] == "acknowledged"
    assert {a["status"] for a in detail["alerts"]} == {"acknowledged"}
    assert {e["actor"] for e in detail["timeline"][3:]} == {f"user {SUE}"}
    trail = await api.get(f"/api/v1/customers/{c.customer_id}/audit", headers=auth(c.key))
    assert [e["action"] for e in trail.json()].count("alert.acknowledged") == 2
    again = await sue.post(f"{url}/acknowledge", data={"csrf_token": token}, follow_redirects=True)
    assert "Nothing changed: no alert was left to be acknowledged" in _main(again)

    # One alert: resolved from the incident's page, which it comes back to.
    e1, e2 = alerts["E1"]["id"], alerts["E2"]["id"]
    resolved = await sue.post(f"/operations/alerts/{e1}/resolve", data={"csrf_token": token, "back": url})
    assert resolved.status_code == 303 and resolved.headers["location"].startswith(f"{url}?flash=")
    escaped = await sue.post(
        f"/operations/alerts/{e1}/resolve", data={"csrf_token": token, "back": "https://evil.example/"}
    )
    assert escaped.headers["location"].startswith(f"/operations/alerts/{e1}?flash=")  # nowhere else
    assert "Nothing changed: the alert is already resolved" in _main(await sue.get(escaped.headers["location"]))

    # The other: shelved with a reason and an expiry, on its own page.
    alert_url = f"/operations/alerts/{e2}"
    form = {"csrf_token": token, "back": alert_url}
    await _refused(sue, f"{alert_url}/shelve", {**form, "minutes": "60", "reason": ""}, "reason", "required")
    await _refused(sue, f"{alert_url}/shelve", {**form, "minutes": "60", "reason": "x"}, "reason", "too short")
    await _refused(sue, f"{alert_url}/shelve", {**form, "minutes": "soon", "reason": "sensor swap"}, "minutes", "")
    too_long = await sue.post(f"{alert_url}/shelve", data={**form, "minutes": "99999", "reason": "sensor swap"})
    assert too_long.status_code == 422 and 'id="minutes-error"' in too_long.text
    shelved = await sue.post(f"{alert_url}/shelve", data={**form, "minutes": "480", "reason": "sensor swap"})
    assert shelved.status_code == 303
    shown = _main(await sue.get(shelved.headers["location"]))
    assert (
        "Shelved Machine alarm · alpha-customer-P · Alarm E2" in shown
        and "sensor swap" in shown
        and "Unshelve" in shown
    )
    on_shelf = _main(await sue.get("/operations/alerts", params={"shelved": "yes"}))
    assert "1 alert(s) matching" in on_shelf and "Alarm E2" in on_shelf
    assert "Alarm E2" not in _main(await sue.get("/operations/alerts", params={"shelved": "no"}))
    assert "sensor swap" in (await _api(api, c, f"/alerts/{e2}"))["shelved_reason"]
    await sue.post(f"{alert_url}/unshelve", data={"csrf_token": token, "back": url})
    assert "No alert matches" in _main(await sue.get("/operations/alerts", params={"shelved": "yes"}))

    listing = _main(await sue.get("/operations/alerts", params={"status": "acknowledged"}))
    assert "Alarm E2" in listing and "Alarm E1" not in listing and "Alarm E9" not in listing
    assert "Alarm E9" in _main(await sue.get("/operations/alerts", params={"severity": "critical"}))

    # Resolving the incident resolves what is left; the service then closes the incident.
    done = await sue.post(f"{url}/resolve", data={"csrf_token": token}, follow_redirects=True)
    assert "Resolved 1 alert(s)." in _main(done)
    assert (await _api(api, c, f"/incidents/{press}"))["incident"]["status"] == "resolved"
    kinds = [e["kind"] for e in (await _api(api, c, f"/incidents/{press}"))["timeline"]]
    assert kinds[6:] == ["resolved", "shelved", "unshelved", "resolved", "resolved"]
    closed = await sue.get(url)
    assert f'action="{url}/resolve"' not in closed.text and f'action="{url}/acknowledge"' not in closed.text


async def test_read_only_roles_see_no_buttons_and_are_refused(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    made = await _plant_alarms(app, api, world)
    press, e1 = made["press"], made["alerts"]["E1"]["id"]
    auditor = await _person(app, api, world.a.customer, "aud@alpha-customer.example", "auditor")
    for path in (f"/operations/incidents/{press}", f"/operations/alerts/{e1}", "/operations/incidents"):
        page = await auditor.get(path)
        assert page.status_code == 200 and 'method="post"' not in _main(page), path
    assert "Alarm E1" in _main(await auditor.get(f"/operations/incidents/{press}"))
    token = await _token(auditor, "/account")  # the auditor's own token: refusals are about the role
    for path, data in (
        (f"/operations/incidents/{press}/acknowledge", {}),
        (f"/operations/incidents/{press}/resolve", {}),
        (f"/operations/alerts/{e1}/acknowledge", {}),
        (f"/operations/alerts/{e1}/resolve", {}),
        (f"/operations/alerts/{e1}/shelve", {"minutes": "60", "reason": "not mine to shelve"}),
        (f"/operations/alerts/{e1}/unshelve", {}),
    ):
        r = await auditor.post(path, data={"csrf_token": token, **data})
        assert r.status_code == 403, (path, r.status_code)
    assert made["alerts"]["E1"]["status"] == (await _api(api, world.a.customer, f"/alerts/{e1}"))["status"]

    finance = await _person(app, api, world.a.customer, "fin@alpha-customer.example", "finance")
    for path in ("/operations/incidents", "/operations/alerts", "/operations/events", f"/operations/alerts/{e1}"):
        assert (await finance.get(path)).status_code == 403, path
    technician = await _person(app, api, world.a.customer, "tom@alpha-customer.example", "technician")
    assert "Acknowledge all 2 alerts" in _main(await technician.get(f"/operations/incidents/{press}"))
    forged = await technician.post(f"/operations/incidents/{press}/acknowledge", data={})
    assert forged.status_code == 403  # no session token: refused before anything changes
    assert (await _api(api, world.a.customer, f"/alerts/{e1}"))["status"] == "triggered"
    for browser in (auditor, finance, technician):
        await browser.aclose()


async def test_another_customer_finds_none_of_it(
    app: Litestar, api: httpx.AsyncClient, world: World, admin: httpx.AsyncClient
) -> None:
    made = await _plant_alarms(app, api, world)
    press, e1 = made["press"], made["alerts"]["E1"]["id"]
    [event, *_] = await _events(api, world.a.customer)
    bravo = await _person(app, api, world.b.customer, "bob@bravo-customer.example", "customer_admin")
    token = await _token(bravo, "/account")
    for path in (f"/operations/events/{event['id']}", f"/operations/incidents/{press}", f"/operations/alerts/{e1}"):
        assert (await bravo.get(path)).status_code == 404, path
        assert (await admin.get(path)).status_code == 200, path
    for path, data in (
        (f"/operations/incidents/{press}/acknowledge", {}),
        (f"/operations/incidents/{press}/resolve", {}),
        (f"/operations/alerts/{e1}/acknowledge", {}),
        (f"/operations/alerts/{e1}/resolve", {}),
        (f"/operations/alerts/{e1}/shelve", {"minutes": "60", "reason": "hijacked"}),
        (f"/operations/alerts/{e1}/unshelve", {}),
    ):
        r = await bravo.post(path, data={"csrf_token": token, **data})
        assert r.status_code == 404, (path, r.status_code)
    assert (await _api(api, world.a.customer, f"/alerts/{e1}"))["status"] == "triggered"
    site = str(world.a.customer.site_id)
    for path, params in (
        ("/operations/events", {}),
        ("/operations/incidents", {}),
        ("/operations/alerts", {}),
        ("/operations/events", {"site_id": site}),
        ("/operations/incidents", {"site_id": site}),
    ):
        page = await bravo.get(path, params=params)
        assert page.status_code == 200, path
        text = _main(page)
        assert "Alarm E1" not in text and "urn:plc:press" not in text and "alpha-customer" not in text, path
        assert "<tbody>" not in text, path
    await bravo.aclose()
