"""The customer-admin console without JavaScript: people and roles, sign-in providers, API keys, plant
and the audit trail, each behind its permission, each confined to the caller's own customer."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import select

from andon.platform.db.scope import allow_auth_lookup
from andon.platform.identity.models import IdentityProvider
from tests.support.browser import browser_on, csrf_token, new_user_signed_in
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio
CLIENT_SECRET = "client-secret-7f3a9c2e1b"
ADA = "ada@alpha-customer.example"


async def _person(app: Litestar, api: httpx.AsyncClient, tenant: Tenant, email: str, role: str) -> httpx.AsyncClient:
    """A person of ``tenant`` with ``role``, made through the API, signed in through the login form."""
    users_url = f"/api/v1/customers/{tenant.customer_id}/users"
    return await new_user_signed_in(app, api, users_url=users_url, key=tenant.key, email=email, role=role)


@pytest.fixture
async def ada(app: Litestar, api: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    """The first customer's administrator, signed in."""
    browser = await _person(app, api, world.a.customer, ADA, "customer_admin")
    yield browser
    await browser.aclose()


async def _token(browser: httpx.AsyncClient, path: str) -> str:
    page = await browser.get(path)
    assert page.status_code == 200, page.text
    return csrf_token(page.text)


async def _created(browser: httpx.AsyncClient, path: str, data: dict[str, str]) -> httpx.URL:
    """Posts a form the console accepts; where it sends the browser next (``.path`` without the notice)."""
    r = await browser.post(path, data=data, follow_redirects=False)
    assert r.status_code == 303, r.text
    return httpx.URL(r.headers["location"])


def _error_next_to(page: str, field: str, message: str) -> None:
    """The message sits under the field, and the field points at it for screen readers."""
    assert re.search(rf'<p class="error" id="{field}-error">[^<]*{re.escape(message)}', page), page
    assert re.search(rf'id="{field}"[^>]*aria-describedby="[^"]*{field}-error', page, re.S) or re.search(
        rf'aria-describedby="{field}-error"', page
    ), page


async def _refused(browser: httpx.AsyncClient, path: str, data: dict[str, str], field: str, message: str) -> str:
    """Posts a form the console turns down with ``message`` at ``field``; the page that says so."""
    r = await browser.post(path, data=data)
    assert r.status_code == 422, r.text
    _error_next_to(r.text, field, message)
    return r.text


async def _users(api: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    r = await api.get(f"/api/v1/customers/{tenant.customer_id}/users", headers=auth(tenant.key))
    assert r.status_code == 200
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def _user(api: httpx.AsyncClient, tenant: Tenant, email: str) -> dict[str, Any]:
    return next(u for u in await _users(api, tenant) if u["email"] == email)


async def test_admin_invites_people_and_changes_their_roles(
    api: httpx.AsyncClient, world: World, ada: httpx.AsyncClient
) -> None:
    me = (await _user(api, world.a.customer, ADA))["id"]
    listing = await ada.get("/admin/users")
    assert listing.status_code == 200 and ADA in listing.text
    assert 'href="/admin/users/new"' in listing.text
    empty = await ada.get("/admin/users", params={"q": "nobody-like-this"})
    assert "No people match “nobody-like-this”" in empty.text

    token = await _token(ada, "/admin/users/new")
    tom = {"csrf_token": token, "display_name": "Tom", "email": "tom@alpha-customer.example"}
    no_role = await _refused(ada, "/admin/users/new", tom, "roles", "choose at least one role")
    assert 'value="tom@alpha-customer.example"' in no_role  # what was typed comes back
    bad_email = {**tom, "email": "not-an-address", "role-technician": "on"}
    await _refused(ada, "/admin/users/new", bad_email, "email", "not in the expected format")
    too_wide = await ada.post("/admin/users/new", data={**tom, "role-nope": "on"})
    assert too_wide.status_code == 422 and "unknown role" in too_wide.text
    assert len(await _users(api, world.a.customer)) == 1  # none of the refused invitations wrote anything
    assert "tom@alpha-customer.example" not in (await ada.get("/dev/mailbox")).text

    invited = await _created(ada, "/admin/users/new", {**tom, "role-technician": "on"})
    detail_url = invited.path
    shown = await ada.get(invited)
    assert "Invitation sent to tom@alpha-customer.example" in shown.text and "invited" in shown.text
    assert "tom@alpha-customer.example" in (await ada.get("/dev/mailbox")).text
    assert [g["role"] for g in (await _user(api, world.a.customer, tom["email"]))["grants"]] == ["technician"]

    await _created(
        ada, f"{detail_url}/roles", {"csrf_token": token, "role-auditor": "on", "role-plant_supervisor": "on"}
    )
    grants = (await _user(api, world.a.customer, tom["email"]))["grants"]
    assert sorted(g["role"] for g in grants) == ["auditor", "plant_supervisor"]
    listing = await ada.get("/admin/users")
    assert "Auditor, Plant supervisor" in listing.text

    # Deactivating: someone else, yes; oneself, no.
    off = await ada.post(
        f"{detail_url}/status", data={"csrf_token": token, "status": "disabled"}, follow_redirects=True
    )
    assert off.status_code == 200 and "Deactivated" in off.text and "Reactivate" in off.text
    assert (await _user(api, world.a.customer, tom["email"]))["status"] == "disabled"
    self_off = await ada.post(f"/admin/users/{me}/status", data={"csrf_token": token, "status": "disabled"})
    assert self_off.status_code == 422 and "cannot deactivate your own account" in self_off.text
    assert (await _user(api, world.a.customer, ADA))["status"] == "active"


async def test_users_list_pages_and_searches(api: httpx.AsyncClient, world: World, ada: httpx.AsyncClient) -> None:
    for i in range(26):
        r = await api.post(
            f"/api/v1/customers/{world.a.customer.customer_id}/users",
            headers=auth(world.a.customer.key),
            json={"email": f"worker{i:02}@alpha-customer.example", "display_name": f"Worker {i:02}"},
        )
        assert r.status_code == 201
    first = await ada.get("/admin/users")
    assert "27 people" in first.text and 'rel="next"' in first.text and 'rel="prev"' not in first.text
    second = await ada.get("/admin/users", params={"offset": 25})
    assert 'rel="prev"' in second.text and 'rel="next"' not in second.text
    assert second.text.count("<tr>") == 1 + 2  # the header row and the last two people
    found = await ada.get("/admin/users", params={"q": "Worker 07"})
    assert "1 person" in found.text and "worker07@" in found.text and "worker08@" not in found.text


async def test_identity_provider_secret_goes_in_and_never_comes_out(
    app: Litestar, api: httpx.AsyncClient, world: World, ada: httpx.AsyncClient
) -> None:
    empty = await ada.get("/admin/sign-in")
    assert empty.status_code == 200 and "No identity provider yet" in empty.text
    token = await _token(ada, "/admin/sign-in/new")
    form = {
        "csrf_token": token,
        "name": "Alpha SSO",
        "issuer": "login.alpha.example",
        "client_id": "andon-portal",
        "client_secret": CLIENT_SECRET,
        "scopes": "openid email profile",
        "email_domains": "alpha-customer.example",
    }
    bad = await _refused(ada, "/admin/sign-in/new", form, "issuer", "not in the expected format")
    assert CLIENT_SECRET not in bad
    assert "No identity provider yet" in (await ada.get("/admin/sign-in")).text

    created = await _created(ada, "/admin/sign-in/new", {**form, "issuer": "https://login.alpha.example"})
    detail_url = created.path
    pages = [await ada.get(created), await ada.get("/admin/sign-in")]
    assert "Alpha SSO" in pages[1].text and "https://login.alpha.example" in pages[1].text
    assert "stored, never shown" in pages[0].text

    # An empty secret field keeps the stored secret; switching the provider off is a checkbox.
    edit = {
        "csrf_token": token,
        "name": "Alpha SSO (staff)",
        "client_secret": "",
        "scopes": "openid email",
        "email_domains": "alpha-customer.example, alpha-staff.example",
    }
    await _created(ada, detail_url, edit)
    r = await api.get(
        f"/api/v1/customers/{world.a.customer.customer_id}/identity-providers", headers=auth(world.a.customer.key)
    )
    (idp,) = r.json()
    assert idp["name"] == "Alpha SSO (staff)" and idp["enabled"] is False
    assert idp["email_domains"] == ["alpha-customer.example", "alpha-staff.example"]
    assert app.state.secretbox.open(await _sealed_secret(app, idp["id"])) == CLIENT_SECRET

    bad_domain = {
        "csrf_token": token,
        "name": "X",
        "client_secret": "new-" + CLIENT_SECRET,
        "email_domains": "NOT A DOMAIN",
    }
    assert CLIENT_SECRET not in await _refused(
        ada, detail_url, bad_domain, "email_domains", "not in the expected format"
    )
    assert app.state.secretbox.open(await _sealed_secret(app, idp["id"])) == CLIENT_SECRET

    pages += [await ada.get(detail_url), await ada.get("/admin/audit")]
    assert "identity_provider.updated" in pages[-1].text
    for shown in pages:
        assert CLIENT_SECRET not in shown.text

    await _created(ada, f"{detail_url}/delete", {"csrf_token": token})
    assert (await ada.get(detail_url)).status_code == 404


async def _sealed_secret(app: Litestar, idp_id: str) -> str:
    """Straight from the table: the pages must not show it, so only the database can prove it was kept."""
    async with app.state.sessionmaker() as session, session.begin():
        await allow_auth_lookup(session)  # row-level security on PostgreSQL: a sign-in style lookup
        sealed = await session.scalar(
            select(IdentityProvider.client_secret_sealed).where(IdentityProvider.id == uuid.UUID(idp_id))
        )
    assert isinstance(sealed, str)
    return sealed


async def test_api_key_secret_is_shown_once_then_only_its_prefix(
    api: httpx.AsyncClient, world: World, ada: httpx.AsyncClient
) -> None:
    token = await _token(ada, "/admin/api-keys/new")
    refused = await _refused(
        ada, "/admin/api-keys/new", {"csrf_token": token, "name": "", "expires_on": "2001-01-01"}, "name", "required"
    )
    assert "choose at least one role" in refused
    past = {"csrf_token": token, "name": "Gateway", "role-ingest": "on", "expires_on": "2001-01-01"}
    await _refused(ada, "/admin/api-keys/new", past, "expires_on", "must be in the future")
    assert "Gateway" not in (await ada.get("/admin/api-keys")).text

    issued = await ada.post(
        "/admin/api-keys/new",
        data={"csrf_token": token, "name": "Line 3 gateway", "role-ingest": "on", "expires_on": "2099-12-31"},
    )
    assert issued.status_code == 201 and issued.headers["cache-control"] == "no-store"
    secret = re.search(r'id="secret" readonly value="([^"]+)"', issued.text)
    assert secret and "shown only once" in issued.text
    key = secret.group(1)
    sites = f"/api/v1/customers/{world.a.customer.customer_id}/sites"
    assert (await api.get(sites, headers=auth(key))).status_code == 200

    listing = await ada.get("/admin/api-keys")
    assert "Line 3 gateway" in listing.text and key not in listing.text
    row = re.search(
        r'href="/admin/api-keys/([0-9a-f-]{36})"><code>([^<…]+)…</code></a></td>\s*<td>Line 3 gateway', listing.text
    )
    assert row and key.startswith(row.group(2))
    detail = await ada.get(f"/admin/api-keys/{row.group(1)}")
    assert detail.status_code == 200 and key not in detail.text and "2099-12-31" in detail.text

    await _created(ada, f"/admin/api-keys/{row.group(1)}/revoke", {"csrf_token": token})
    assert (await api.get(sites, headers=auth(key))).status_code == 401
    assert "revoked" in (await ada.get(f"/admin/api-keys/{row.group(1)}")).text
    revoked = (await ada.get("/admin/api-keys", params={"status": "revoked", "q": "line 3"})).text
    assert "Line 3 gateway" in revoked and "1 key(s) matching" in revoked
    assert "Line 3 gateway" not in (await ada.get("/admin/api-keys", params={"status": "active"})).text
    assert "No key matches" in (await ada.get("/admin/api-keys", params={"q": row.group(2)[:6] + "zz"})).text


async def test_sites_and_assets_are_created_edited_found_and_paged(
    api: httpx.AsyncClient, world: World, ada: httpx.AsyncClient
) -> None:
    sites = await ada.get("/admin/plant")
    assert sites.status_code == 200 and "alpha-customer plant" in sites.text
    token = await _token(ada, "/admin/plant/sites/new")
    oslo = {"csrf_token": token, "name": "Oslo", "external_id": "OSL", "timezone": "Europe/Oslo"}
    bad_zone = {**oslo, "timezone": "Mars/Base", "description": ""}
    bad_zone_page = await _refused(ada, "/admin/plant/sites/new", bad_zone, "timezone", "unknown time zone")
    assert "not a known IANA time zone" in bad_zone_page
    taken = {**oslo, "external_id": "alpha-customer-S"}
    await _refused(ada, "/admin/plant/sites/new", taken, "external_id", "already in use")
    no_name = {"csrf_token": token, "name": "", "timezone": "Europe/Oslo"}
    await _refused(ada, "/admin/plant/sites/new", no_name, "name", "required")
    assert "Oslo" not in (await ada.get("/admin/plant")).text

    site_url = (await _created(ada, "/admin/plant/sites/new", oslo)).path
    site_id = site_url.rsplit("/", 1)[1]
    await _created(ada, site_url, {**oslo, "name": "Oslo works"})
    assert "Oslo works" in (await ada.get("/admin/plant")).text

    form = await ada.get("/admin/plant/assets/new", params={"site_id": site_id})
    assert f'<option value="{site_id}" selected>' in form.text
    press = {"csrf_token": token, "site_id": site_id, "name": "Press 9"}
    wrong_line = {**press, "line_id": str(world.a.customer.line_id)}
    await _refused(ada, "/admin/plant/assets/new", wrong_line, "line_id", "belongs to another site")
    no_site = {"csrf_token": token, "site_id": "", "name": "X"}
    await _refused(ada, "/admin/plant/assets/new", no_site, "site_id", "choose the site")
    asset_url = (await _created(ada, "/admin/plant/assets/new", {**press, "line_id": "", "criticality": "B"})).path
    bad_edit = {"csrf_token": token, "name": "Press 9", "criticality": "Z"}
    await _refused(ada, asset_url, bad_edit, "criticality", "not in the expected format")
    await _created(ada, asset_url, {"csrf_token": token, "name": "Press 9A", "criticality": "A"})

    at_oslo = await ada.get("/admin/plant/assets", params={"site_id": site_id})
    assert "Press 9A" in at_oslo.text and ">Press<" not in at_oslo.text and "at Oslo works" in at_oslo.text
    everywhere = await ada.get("/admin/plant/assets", params={"site_id": ""})
    assert "Press 9A" in everywhere.text and ">Press<" in everywhere.text
    assert "No assets match “zzz”" in (await ada.get("/admin/plant/assets", params={"q": "zzz"})).text
    lines = await ada.get("/admin/plant/lines")
    assert lines.status_code == 200 and ">Line<" in lines.text

    for i in range(26):
        r = await api.post(
            f"/api/v1/customers/{world.a.customer.customer_id}/assets",
            headers=auth(world.a.customer.key),
            json={"site_id": site_id, "name": f"Robot {i:02}"},
        )
        assert r.status_code == 201
    robots = await ada.get("/admin/plant/assets", params={"q": "robot", "site_id": site_id})
    assert "26 assets" in robots.text and "Robot 00" in robots.text
    next_link = re.search(r'rel="next" href="([^"]+)"', robots.text)
    assert next_link and "q=robot" in next_link.group(1) and f"site_id={site_id}" in next_link.group(1)
    last = await ada.get(next_link.group(1).replace("&amp;", "&"))
    assert "Robot 25" in last.text and "Robot 00" not in last.text and 'rel="prev"' in last.text


async def test_auditor_reads_the_trail_and_the_plant_but_writes_nothing(
    app: Litestar, api: httpx.AsyncClient, world: World, ada: httpx.AsyncClient
) -> None:
    token = await _token(ada, "/admin/plant/sites/new")
    site_url = (
        await _created(ada, "/admin/plant/sites/new", {"csrf_token": token, "name": "Audited site", "timezone": "UTC"})
    ).path
    auditor = await _person(app, api, world.a.customer, "aud@alpha-customer.example", "auditor")

    trail = await auditor.get("/admin/audit")
    assert trail.status_code == 200 and "site.created" in trail.text and ADA in trail.text
    assert "Audited site" in trail.text and 'method="post"' not in trail.text.split("<main", 1)[1]
    only_sites = (await auditor.get("/admin/audit", params={"record": "site", "q": "created"})).text
    assert "site.created" in only_sites and "user.created" not in only_sites
    assert '<option value="site" selected>' in only_sites
    assert "No entry matches" in (await auditor.get("/admin/audit", params={"q": "no-such-action"})).text
    sites = await auditor.get("/admin/plant")
    assert sites.status_code == 200 and "Audited site" in sites.text
    assert "/admin/plant/sites/new" not in sites.text
    site = await auditor.get(site_url)
    assert site.status_code == 200 and "<form" not in site.text.split("<main", 1)[1]
    asset = await auditor.get(f"/admin/plant/assets/{world.a.customer.asset_id}")
    assert asset.status_code == 200 and "<form" not in asset.text.split("<main", 1)[1]
    assets = await auditor.get("/admin/plant/assets")
    assert "Add an asset" not in assets.text

    page_token = csrf_token(
        (await auditor.get("/account")).text
    )  # the auditor's own session token: the refusals below are about the role, not the token
    writes = [
        ("/admin/plant/sites/new", {"name": "Nope", "timezone": "UTC"}),
        (site_url, {"name": "Renamed", "timezone": "UTC"}),
        (f"/admin/plant/assets/{world.a.customer.asset_id}", {"name": "Renamed"}),
        ("/admin/users/new", {"display_name": "X", "email": "x@alpha-customer.example", "role-auditor": "on"}),
        ("/admin/api-keys/new", {"name": "X", "role-ingest": "on"}),
        (f"/admin/api-keys/{world.a.customer.key_id}/revoke", {}),
        ("/admin/sign-in/new", {"name": "X", "issuer": "https://x.example", "client_id": "x", "client_secret": "x"}),
    ]
    for path, data in writes:
        r = await auditor.post(path, data={"csrf_token": page_token, **data})
        assert r.status_code == 403, (path, r.status_code)
    for path in (
        "/admin/plant/sites/new",
        "/admin/plant/assets/new",
        "/admin/users",
        "/admin/api-keys",
        "/admin/sign-in",
    ):
        assert (await auditor.get(path)).status_code == 403, path
    assert "Renamed" not in (await ada.get("/admin/plant")).text
    assert (
        await api.get(
            f"/api/v1/customers/{world.a.customer.customer_id}/sites/{world.a.customer.site_id}",
            headers=auth(world.a.customer.key),
        )
    ).json()["name"] == "alpha-customer plant"
    await auditor.aclose()


async def test_a_plant_supervisor_sees_plant_lists_without_write_buttons(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    sue = await _person(app, api, world.a.customer, "sue@alpha-customer.example", "plant_supervisor")
    sites = await sue.get("/admin/plant")
    assert sites.status_code == 200 and "alpha-customer plant" in sites.text and "Add a site" not in sites.text
    assert (await sue.get("/admin/audit")).status_code == 403
    nav = sites.text.split("</nav>", 1)[0]
    assert 'href="/admin/plant"' in nav and 'href="/admin/audit"' not in nav and 'href="/admin/users"' not in nav
    await sue.aclose()


async def test_another_customers_admin_finds_nothing_of_this_customer(
    app: Litestar, api: httpx.AsyncClient, world: World, ada: httpx.AsyncClient
) -> None:
    ada_id = (await _user(api, world.a.customer, ADA))["id"]
    token = await _token(ada, "/admin/sign-in/new")
    made = await _created(
        ada,
        "/admin/sign-in/new",
        {
            "csrf_token": token,
            "name": "Alpha SSO",
            "issuer": "https://login.alpha.example",
            "client_id": "c",
            "client_secret": CLIENT_SECRET,
        },
    )
    idp_id = made.path.rsplit("/", 1)[1]
    bravo = await _person(app, api, world.b.customer, "bob@bravo-customer.example", "customer_admin")
    own = await _token(bravo, "/admin/users/new")
    a = world.a.customer

    for path in (
        f"/admin/users/{ada_id}",
        f"/admin/sign-in/{idp_id}",
        f"/admin/api-keys/{a.key_id}",
        f"/admin/plant/sites/{a.site_id}",
        f"/admin/plant/assets/{a.asset_id}",
    ):
        assert (await bravo.get(path)).status_code == 404, path
    for path, data in (
        (f"/admin/users/{ada_id}/roles", {"role-auditor": "on"}),
        (f"/admin/users/{ada_id}/status", {"status": "disabled"}),
        (f"/admin/sign-in/{idp_id}", {"name": "Hijacked"}),
        (f"/admin/sign-in/{idp_id}/delete", {}),
        (f"/admin/api-keys/{a.key_id}/revoke", {}),
        (f"/admin/plant/sites/{a.site_id}", {"name": "Hijacked", "timezone": "UTC"}),
        (f"/admin/plant/assets/{a.asset_id}", {"name": "Hijacked"}),
    ):
        r = await bravo.post(path, data={"csrf_token": own, **data})
        assert r.status_code == 404, (path, r.status_code)
    # Nor can an asset be put on another customer's site.
    stray = await bravo.post(
        "/admin/plant/assets/new", data={"csrf_token": own, "site_id": str(a.site_id), "name": "Stray"}
    )
    assert stray.status_code == 422

    lists = [
        await bravo.get(p)
        for p in (
            "/admin/users",
            "/admin/sign-in",
            "/admin/api-keys",
            "/admin/plant",
            "/admin/plant/lines",
            "/admin/plant/assets",
            "/admin/audit",
        )
    ]
    for page in lists:
        assert page.status_code == 200
        for secret_of_alpha in (ADA, "Alpha SSO", "alpha-customer", str(a.site_id)):
            assert secret_of_alpha not in page.text, (page.url, secret_of_alpha)
    assert "bravo-customer plant" in lists[3].text
    filtered = await bravo.get("/admin/plant/assets", params={"site_id": str(a.site_id)})
    assert filtered.status_code == 200 and "No assets yet" in filtered.text

    # Alpha's records are untouched.
    r = await api.get(f"/api/v1/customers/{a.customer_id}/users/{ada_id}", headers=auth(a.key))
    assert r.json()["status"] == "active" and [g["role"] for g in r.json()["grants"]] == ["customer_admin"]
    r = await api.get(f"/api/v1/customers/{a.customer_id}/api-keys/{a.key_id}", headers=auth(a.key))
    assert r.json()["revoked_at"] is None
    r = await api.get(f"/api/v1/customers/{a.customer_id}/assets/{a.asset_id}", headers=auth(a.key))
    assert r.json()["name"] == "Press"
    assert "Alpha SSO" in (await ada.get("/admin/sign-in")).text
    await bravo.aclose()


async def test_partner_staff_and_strangers_are_turned_away(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    partner = await new_user_signed_in(
        app,
        api,
        users_url=f"/api/v1/partners/{world.a.partner_id}/users",
        key=world.a.key,
        email="pat@alpha.example",
        role="partner_admin",
    )
    for path in ("/admin/plant", "/admin/users", "/admin/audit"):
        refused = await partner.get(path)
        assert refused.status_code == 403 and "for the customer's own staff" in refused.text
    await partner.aclose()
    async with browser_on(app, "andon.test") as stranger:
        assert (await stranger.get("/admin/plant")).status_code in (302, 303, 401)


async def test_console_forms_need_the_session_token(ada: httpx.AsyncClient) -> None:
    r = await ada.post("/admin/plant/sites/new", data={"name": "Forged", "timezone": "UTC"})
    assert r.status_code == 403
    assert "Forged" not in (await ada.get("/admin/plant")).text
