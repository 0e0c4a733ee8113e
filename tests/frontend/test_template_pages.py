"""Workflow templates in the customer-admin console without JavaScript: the gallery found by words and
category, a template's page with its step diagram, parameters and the connections it needs, the
enable form drawn from the template (refusals next to their fields, what was typed kept), the
deployments list with pause and resume; an auditor only reads, another customer sees nothing; the
partner's staff get the same pages inside a customer only while it grants them access."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar import Litestar

from tests.frontend.test_customer_console import _created, _person, _refused, _token
from tests.support.browser import new_user_signed_in
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio
GALLERY = "/admin/templates"
DEPLOYMENTS = "/admin/deployments"
HANDOVER = f"{GALLERY}/shift-handover"
DOWNTIME = f"{GALLERY}/unplanned-downtime-escalation"
CATALOG_NAMES = (
    "Customer order risk",
    "Engineering change communication",
    "Field issue feedback loop",
    "Quality deviation response",
    "Shift handover",
    "Spare parts replenishment",
    "Supplier delay management",
    "Unplanned downtime escalation",
)


@pytest.fixture
async def admin(app: Litestar, api: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    browser = await _person(app, api, world.a.customer, "carla@alpha-customer.example", "customer_admin")
    yield browser
    await browser.aclose()


def _main(page: httpx.Response) -> str:
    return html.unescape(page.text.split('<main id="main"', 1)[1].split("</main>", 1)[0])


def _cards(page: httpx.Response) -> list[str]:
    return re.findall(r'<li data-template="([a-z0-9-]+)">', page.text)


async def _connection(api: httpx.AsyncClient, tenant: Tenant, key: str, type_: str, **body: Any) -> None:
    r = await api.post(
        f"/api/v1/customers/{tenant.customer_id}/outbound-connections/",
        headers=auth(tenant.key),
        json={"key": key, "name": f"{key} connection", "type": type_, **body},
    )
    assert r.status_code == 201, r.text


async def _deployments(api: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    r = await api.get(f"/api/v1/customers/{tenant.customer_id}/deployments/", headers=auth(tenant.key))
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()
    return found


def _handover_form(token: str, tenant: Tenant, **fields: str) -> dict[str, str]:
    base = {
        "csrf_token": token,
        "param-acknowledge_seconds": "900",
        "param-escalate_to_role": "supervisor",
        "binding-chat": "shift_slack",
        f"site-{tenant.site_id}": "on",
        "message-acknowledge": "Read the handover and acknowledge.",
        "key": "shift-handover",
    }
    return {k: v for k, v in {**base, **fields}.items() if v is not None}


async def test_the_gallery_is_found_by_words_and_category_and_shows_a_template_whole(
    admin: httpx.AsyncClient,
) -> None:
    everything = await admin.get(GALLERY)
    assert everything.status_code == 200
    page = _main(everything)
    for name in CATALOG_NAMES:
        assert f">{name}</a>" in page, name
    assert len(_cards(everything)) == len(CATALOG_NAMES)
    assert "Built-in catalog" in page and '<option value="downtime">Downtime</option>' in page
    assert re.search(r'<a[^>]*href="/admin/templates"[^>]*>Workflows</a>', everything.text)  # in the navigation

    assert _cards(await admin.get(GALLERY, params={"q": "DOWNTIME"})) == ["unplanned-downtime-escalation"]
    assert _cards(await admin.get(GALLERY, params={"category": "shift"})) == ["shift-handover"]
    assert _cards(await admin.get(GALLERY, params={"q": "handover", "category": "downtime"})) == []
    nothing = _main(await admin.get(GALLERY, params={"q": "handover", "category": "downtime"}))
    assert "No templates match “handover” in downtime" in nothing
    # A hand-edited category is no filter at all, not an error.
    assert len(_cards(await admin.get(GALLERY, params={"category": "<nope>"}))) == len(CATALOG_NAMES)

    detail = await admin.get(DOWNTIME)
    assert detail.status_code == 200
    shown = _main(detail)
    assert "<h1>Unplanned downtime escalation</h1>" in shown
    assert "Maintenance hears about the stop within seconds" in shown  # the description
    assert "<code>dev.andon.machine.alarm.v1</code>, when <code>event.severity in params.severities</code>" in shown
    assert "<li>An event of type <code>dev.andon.downtime.started.v1</code>, when <code>" in shown
    # The diagram: every step a node, the paths between them drawn.
    svg = shown.split("<svg", 1)[1].split("</svg>", 1)[0]
    steps = re.findall(r'data-step="([a-z_]+)"', svg)
    assert set(steps) == {
        "notify_maintenance",
        "history",
        "work_order",
        "orders",
        "assess",
        "back_running",
        "still_down",
    }
    assert (
        svg.count('class="edge"') == 7
        and ">timeout</text>" in svg
        and ">none found</text>" in svg
        and "not reached" not in svg
    )
    assert 'role="img"' in svg and "Steps of Unplanned downtime escalation: Tell maintenance" in svg
    assert (
        '<strong>Find the orders at risk</strong> <span class="muted">(lookup)</span>, then assess the orders at risk'
        " or wait until the asset runs again</li>"
    ) in shown
    parameters = shown.split('id="parameters"', 1)[1].split("</table>", 1)[0]
    assert re.search(
        r"<td>Acknowledge within \(seconds\)</td><td><code>300</code></td><td[^>]*>60 to 14400\.", parameters
    )
    assert "<td>Alarm severities that start it</td><td><code>critical, high</code></td>" in parameters
    requires = shown.split('id="requires"', 1)[1].split("</table>", 1)[0]
    assert "<td>Maintenance system (CMMS)</td><td>create_work_order, lookup_asset_history</td>" in requires
    assert "<td>ERP (open orders)</td><td>lookup_open_orders</td>" in requires
    assert f'href="{DOWNTIME}/enable">Enable Unplanned downtime escalation</a>' in shown

    assert (await admin.get(f"{GALLERY}/no-such-template")).status_code == 404
    assert (await admin.get(f"{GALLERY}/no-such-template/enable")).status_code == 404


async def test_the_enable_form_refuses_by_field_then_deploys(
    api: httpx.AsyncClient, world: World, admin: httpx.AsyncClient
) -> None:
    tenant = world.a.customer
    await _connection(
        api, tenant, "shift_slack", "slack", secrets={"webhook_url": "https://hooks.slack.com/services/T/B/x"}
    )
    await _connection(api, tenant, "line_mqtt", "mqtt", config={"host": "broker.example.com"})

    downtime = _main(await admin.get(f"{DOWNTIME}/enable"))
    # No connection can do what the CMMS binding calls: the form says so and where to add one.
    assert "None of your outbound connections can create_work_order, lookup_asset_history" in downtime
    assert 'href="/admin/outbound/new">Add an outbound connection</a>' in downtime
    assert 'id="param-severities" name="param-severities"' in downtime and "critical\nhigh</textarea>" in downtime

    form = _main(await admin.get(f"{HANDOVER}/enable"))
    assert re.search(
        r'<input id="param-acknowledge_seconds" name="param-acknowledge_seconds" type="number" value="1800"', form
    )
    chooser = form.split('<select id="binding-chat"', 1)[1].split("</select>", 1)[0]
    # Only a connection that can notify is offered; being the only one, it is already chosen.
    assert '<option value="shift_slack" selected>shift_slack connection (shift_slack)</option>' in chooser
    assert "line_mqtt" not in chooser
    assert f'id="site-{tenant.site_id}" name="site-{tenant.site_id}" value="on">' in form  # none ticked: every site
    assert "Check the running incidents, SLA clocks and approvals in the inbox, then acknowledge.</textarea>" in form

    token = await _token(admin, f"{HANDOVER}/enable")
    path = f"{HANDOVER}/enable"
    too_soon = await _refused(
        admin,
        path,
        _handover_form(token, tenant, **{"param-acknowledge_seconds": "5"}),
        "param-acknowledge_seconds",
        "5 is less than the minimum of 300",
    )
    # What was typed stays.
    assert 'value="5"' in too_soon and "Read the handover and acknowledge.</textarea>" in too_soon
    assert re.search(rf'id="site-{tenant.site_id}" name="site-{tenant.site_id}" value="on" checked', too_soon)
    await _refused(
        admin,
        path,
        _handover_form(token, tenant, **{"binding-chat": "line_mqtt"}),
        "binding-chat",
        "(mqtt) does not offer notify",
    )
    await _refused(
        admin,
        path,
        _handover_form(token, tenant, **{"binding-chat": ""}),
        "binding-chat",
        "to one of your outbound connections",
    )
    await _refused(
        admin,
        path,
        _handover_form(token, tenant, **{"param-acknowledge_seconds": "soon"}),
        "param-acknowledge_seconds",
        "a whole number",
    )
    other_site = {f"site-{world.b.customer.site_id}": "on"}
    refused_site = await admin.post(path, data=_handover_form(token, tenant, **other_site))
    assert (
        refused_site.status_code == 422
        and '<p class="error" id="sites-error">choose sites from the list' in refused_site.text
    )
    await _refused(admin, path, _handover_form(token, tenant, key="Not A Key!"), "key", "not in the expected format")
    assert await _deployments(api, tenant) == []  # none of the refusals deployed anything

    made = await _created(admin, path, _handover_form(token, tenant))
    assert made.path == DEPLOYMENTS
    [deployment] = await _deployments(api, tenant)
    assert (deployment["template_key"], deployment["status"], deployment["site_ids"]) == (
        "shift-handover",
        "active",
        [str(tenant.site_id)],
    )
    # Only what was changed is the deployment's own; the rest keeps following the template.
    assert {p["name"]: (p["value"], p["source"]) for p in deployment["params"]} == {
        "acknowledge_seconds": (900, "deployment"),
        "escalate_to_role": ("supervisor", "template"),
    }
    assert deployment["bindings"] == {"chat": "shift_slack"}
    assert deployment["messages"] == {"acknowledge": "Read the handover and acknowledge."}

    listed = await admin.get(str(made))
    page = _main(listed)
    assert "Enabled Shift handover for alpha-customer plant as shift-handover." in page
    row = page.split(f'id="deployment-{deployment["id"]}"', 1)[1].split("</tr>", 1)[0]
    assert (
        ">Shift handover</a>" in row and "1.0.0" in row and "Active" in row and "<td>alpha-customer plant</td>" in row
    )
    assert "chat: <code>shift_slack</code>" in row
    assert 'href="/operations/runs?workflow=shift-handover"' in row
    runs = await admin.get("/operations/runs", params={"workflow": "shift-handover"})
    assert runs.status_code == 200 and '<option value="shift-handover" selected>' in runs.text

    again = await _refused(admin, path, _handover_form(token, tenant), "key", "already in use")
    assert "already runs here" in again

    paused = await _created(admin, f"{DEPLOYMENTS}/{deployment['id']}/pause", {"csrf_token": token})
    assert paused.path == DEPLOYMENTS
    assert [d["status"] for d in await _deployments(api, tenant)] == ["paused"]
    assert "Resume shift-handover</button>" in (await admin.get(DEPLOYMENTS)).text
    await _created(admin, f"{DEPLOYMENTS}/{deployment['id']}/resume", {"csrf_token": token})
    assert [d["status"] for d in await _deployments(api, tenant)] == ["active"]


async def test_an_auditor_reads_but_cannot_enable_and_another_customer_sees_nothing(
    app: Litestar, api: httpx.AsyncClient, world: World, admin: httpx.AsyncClient
) -> None:
    tenant = world.a.customer
    await _connection(
        api, tenant, "shift_slack", "slack", secrets={"webhook_url": "https://hooks.slack.com/services/T/B/x"}
    )
    token = await _token(admin, f"{HANDOVER}/enable")
    await _created(admin, f"{HANDOVER}/enable", _handover_form(token, tenant))
    [deployment] = await _deployments(api, tenant)

    auditor = await _person(app, api, tenant, "audrey@alpha-customer.example", "auditor")
    try:
        assert (await auditor.get(GALLERY)).status_code == 200
        detail = await auditor.get(HANDOVER)
        assert detail.status_code == 200 and f"{HANDOVER}/enable" not in detail.text
        listed = await auditor.get(DEPLOYMENTS)
        assert listed.status_code == 200 and "shift_slack" in listed.text and "Pause shift-handover" not in listed.text
        assert (await auditor.get(f"{HANDOVER}/enable")).status_code == 403
        their_token = await _token(auditor, "/account")
        refused = await auditor.post(f"{HANDOVER}/enable", data=_handover_form(their_token, tenant, key="second"))
        assert refused.status_code == 403
        stopped = await auditor.post(f"{DEPLOYMENTS}/{deployment['id']}/pause", data={"csrf_token": their_token})
        assert stopped.status_code == 403
    finally:
        await auditor.aclose()
    assert [(d["key"], d["status"]) for d in await _deployments(api, tenant)] == [("shift-handover", "active")]

    other = await _person(app, api, world.b.customer, "olga@beta-customer.example", "customer_admin")
    try:
        theirs = _main(await other.get(DEPLOYMENTS))
        assert "No enabled workflows yet" in theirs and "shift-handover" not in theirs and "shift_slack" not in theirs
        other_token = await _token(other, "/account")
        for act in ("pause", "resume"):
            r = await other.post(f"{DEPLOYMENTS}/{deployment['id']}/{act}", data={"csrf_token": other_token})
            assert r.status_code == 404
        missing = await other.post(f"{DEPLOYMENTS}/{uuid.uuid4()}/pause", data={"csrf_token": other_token})
        assert missing.status_code == 404
        # Their enable form offers none of the first customer's connections or sites.
        form = _main(await other.get(f"{HANDOVER}/enable"))
        assert "shift_slack" not in form and str(tenant.site_id) not in form
    finally:
        await other.aclose()
    assert [(d["key"], d["status"]) for d in await _deployments(api, tenant)] == [("shift-handover", "active")]
    assert await _deployments(api, world.b.customer) == []


async def test_partner_staff_inside_a_customer_that_granted_access_see_the_same_pages(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    tenant = world.a.customer
    await _connection(
        api, tenant, "shift_slack", "slack", secrets={"webhook_url": "https://hooks.slack.com/services/T/B/x"}
    )
    inside = f"/partner/customers/{tenant.customer_id}"
    partner = await new_user_signed_in(
        app,
        api,
        users_url=f"/api/v1/partners/{world.a.partner_id}/users",
        key=world.a.key,
        email="pat@alpha.example",
        role="partner_admin",
    )
    try:
        assert f'href="{inside}/templates">its workflows</a>' in (await partner.get(inside)).text
        gallery = await partner.get(f"{inside}{GALLERY.removeprefix('/admin')}")
        assert gallery.status_code == 200 and "You are acting inside this customer" in gallery.text
        assert f'href="{inside}/templates/shift-handover"' in gallery.text and 'href="/admin/' not in _main(gallery)
        form = _main(await partner.get(f"{inside}/templates/shift-handover/enable"))
        assert f'action="{inside}/templates/shift-handover/enable"' in form
        assert '<option value="shift_slack" selected>' in form
        token = await _token(partner, f"{inside}/templates/shift-handover/enable")
        made = await _created(partner, f"{inside}/templates/shift-handover/enable", _handover_form(token, tenant))
        assert made.path == f"{inside}/deployments"
        [deployment] = await _deployments(api, tenant)
        assert deployment["deployed_by"] == "user pat@alpha.example"
        listed = _main(await partner.get(str(made)))
        assert (
            "Enabled Shift handover" in listed and f'action="{inside}/deployments/{deployment["id"]}/pause"' in listed
        )
        assert "/operations/runs" not in listed  # the runs pages are the customer's own console

        # The customer withdraws the grant: the pages close at once.
        off = await api.patch(
            f"/api/v1/customers/{tenant.customer_id}", json={"partner_access": False}, headers=auth(tenant.key)
        )
        assert off.status_code == 200, off.text
        assert (await partner.get(f"{inside}/templates")).status_code == 403
        assert (await partner.get(f"{inside}/deployments")).status_code == 403
        paused = await partner.post(f"{inside}/deployments/{deployment['id']}/pause", data={"csrf_token": token})
        assert paused.status_code == 403
    finally:
        await partner.aclose()
    assert [d["status"] for d in await _deployments(api, tenant)] == ["active"]

    # Another partner's staff reach none of this customer's pages; the customer's own staff stay in /admin.
    stranger = await new_user_signed_in(
        app,
        api,
        users_url=f"/api/v1/partners/{world.b.partner_id}/users",
        key=world.b.key,
        email="bo@beta.example",
        role="partner_admin",
    )
    try:
        assert (await stranger.get(f"{inside}/templates")).status_code == 404
        assert (await stranger.get(f"{inside}/deployments")).status_code == 404
    finally:
        await stranger.aclose()
    carla = await _person(app, api, tenant, "carla@alpha-customer.example", "customer_admin")
    try:
        assert (await carla.get(f"{inside}/templates")).status_code == 403
    finally:
        await carla.aclose()


async def test_a_partner_template_is_opened_and_enabled_from_the_gallery(
    api: httpx.AsyncClient, admin: httpx.AsyncClient, world: World
) -> None:
    tenant, partner = world.a.customer, auth(world.a.key)
    library = f"/api/v1/partners/{world.a.partner_id}/templates"
    r = await api.post(
        library + "/forks", json={"template": "shift-handover", "key": "handover-northwind"}, headers=partner
    )
    assert r.status_code == 201, r.text
    assert (await api.post(f"{library}/{r.json()['id']}/publish", headers=partner)).status_code == 200
    await _connection(
        api, tenant, "shift_slack", "slack", secrets={"webhook_url": "https://hooks.slack.com/services/T/B/x"}
    )

    gallery = (await admin.get(GALLERY)).text
    assert f'href="{GALLERY}/handover-northwind?source=partner"' in gallery
    detail = await admin.get(f"{GALLERY}/handover-northwind", params={"source": "partner"})
    assert detail.status_code == 200 and f'href="{GALLERY}/handover-northwind/enable?source=partner"' in detail.text
    # Without the source it is not a catalog template.
    assert (await admin.get(f"{GALLERY}/handover-northwind")).status_code == 404
    path = f"{GALLERY}/handover-northwind/enable?source=partner"
    token = await _token(admin, path)
    form = {**_handover_form(token, tenant), "key": "handover-northwind"}
    await _created(admin, path, form)
    [deployment] = await _deployments(api, tenant)
    assert (deployment["template_key"], deployment["source"], deployment["version"]) == (
        "handover-northwind",
        "partner",
        "1.0.0",
    )
    # The other partner's customer finds no such template.
    shown = await api.get(
        "/api/v1/templates/handover-northwind", params={"source": "partner"}, headers=auth(world.b.customer.key)
    )
    assert shown.status_code == 404


async def test_the_list_names_the_sites_that_run_with_values_of_their_own(
    api: httpx.AsyncClient, world: World, admin: httpx.AsyncClient
) -> None:
    tenant = world.a.customer
    base = f"/api/v1/customers/{tenant.customer_id}"
    site = await api.post(f"{base}/sites", json={"name": "Linz", "timezone": "Europe/Vienna"}, headers=auth(tenant.key))
    assert site.status_code == 201, site.text
    set_values = await api.put(
        f"{base}/template-values/shift-handover",
        params={"site_id": site.json()["id"]},
        json={"values": {"acknowledge_seconds": 600}},
        headers=auth(tenant.key),
    )
    assert set_values.status_code == 200, set_values.text
    await _connection(
        api, tenant, "shift_slack", "slack", secrets={"webhook_url": "https://hooks.slack.com/services/T/B/x"}
    )
    made = await api.post(
        f"{base}/deployments/",
        json={"template": "shift-handover", "bindings": {"chat": "shift_slack"}},
        headers=auth(tenant.key),
    )
    assert made.status_code == 201, made.text
    listed = " ".join(_main(await admin.get(DEPLOYMENTS)).split())
    assert "Every site" in listed and "Linz with its own <code>acknowledge_seconds</code> 600" in listed
