"""The partner console without JavaScript: plain forms, POST-redirect-GET. A partner admin signs in,
finds and onboards a customer (its administrator invited), and imports its plant with a check first."""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar

from tests.support.browser import browser_on, csrf_token
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple"
PLANT = b"""kind,external_id,name,parent_external_id
site,OSL,Oslo plant,
line,OSL-L1,Line 1,OSL
asset,OSL-P1,Press 1,OSL-L1
"""


async def _partner_admin(app: Litestar, api: httpx.AsyncClient, world: World) -> httpx.AsyncClient:
    r = await api.post(
        f"/api/v1/partners/{world.a.partner_id}/users",
        headers=auth(world.a.key),
        json={
            "email": "pat@alpha.example",
            "display_name": "Pat",
            "password": PASSWORD,
            "grants": [{"role": "partner_admin"}],
        },
    )
    assert r.status_code == 201, r.text
    browser = browser_on(app, "andon.test")
    page = await browser.get("/login")
    signed = await browser.post(
        "/login",
        data={
            "csrf_token": csrf_token(page.text),
            "email": "pat@alpha.example",
            "password": PASSWORD,
            "next": "/partner/customers",
        },
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/partner/customers"
    return browser


async def test_onboard_a_customer_without_javascript(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    browser = await _partner_admin(app, api, world)
    listing = await browser.get("/partner/customers")
    assert listing.status_code == 200 and "alpha-customer".title() in listing.text
    assert world.b.customer.slug.title() not in listing.text  # never another partner's customers
    assert "No customer matches" in (await browser.get("/partner/customers", params={"q": "zzz"})).text
    suspended = await browser.get("/partner/customers", params={"status": "suspended"})
    assert "No customer matches among the suspended ones" in suspended.text
    active = (await browser.get("/partner/customers", params={"status": "active"})).text
    assert "alpha-customer".title() in active and '<option value="active" selected>' in active

    form = await browser.get("/partner/customers/new")
    token = csrf_token(form.text)
    # A slug that is taken: a clear message next to the form, nothing created, nobody invited.
    taken = await browser.post(
        "/partner/customers/new",
        data={
            "csrf_token": token,
            "name": "Dup",
            "slug": world.b.customer.slug,
            "default_timezone": "UTC",
            "admin_name": "Dee",
            "admin_email": "dee@dup.example",
        },
    )
    assert taken.status_code == 422 and "already exists" in taken.text
    bad_zone = await browser.post(
        "/partner/customers/new",
        data={
            "csrf_token": token,
            "name": "Nordic Foods",
            "slug": "nordic-foods",
            "default_timezone": "Mars/Base",
            "admin_name": "Nina",
            "admin_email": "nina@nordic.example",
        },
    )
    assert bad_zone.status_code == 422 and "not a known IANA time zone" in bad_zone.text
    created = await browser.post(
        "/partner/customers/new",
        data={
            "csrf_token": token,
            "name": "Nordic Foods",
            "slug": "nordic-foods",
            "default_timezone": "Europe/Oslo",
            "admin_name": "Nina",
            "admin_email": "nina@nordic.example",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303
    detail_url = created.headers["location"].split("?")[0]
    mailbox = await browser.get("/dev/mailbox")
    assert "nina@nordic.example" in mailbox.text and "dee@dup.example" not in mailbox.text
    listing = await browser.get("/partner/customers")
    assert "Nordic Foods" in listing.text and "Dup" not in listing.text

    detail = await browser.get(detail_url)
    assert detail.status_code == 200 and "Nordic Foods" in detail.text
    upload = f"{detail_url}/plant"
    broken = PLANT.replace(b"OSL-L1\n", b"GHOST\n")
    check = await browser.post(
        upload,
        data={"csrf_token": csrf_token(detail.text), "action": "import"},
        files={"file": ("plant.csv", broken, "text/csv")},
    )
    assert check.status_code == 422 and "problem(s) found; nothing was changed" in check.text
    assert "no line or site with external_id" in check.text
    ok = await browser.post(
        upload,
        data={"csrf_token": csrf_token(detail.text), "action": "import"},
        files={"file": ("plant.csv", PLANT, "text/csv")},
    )
    assert ok.status_code == 200 and "Imported" in ok.text
    assert "1 sites · 1 lines · 1 assets · 0 shift calendars" in ok.text
    assert "<tr><td>asset</td><td>1</td><td>0</td><td>0</td></tr>" in ok.text
    await browser.aclose()


async def test_console_forms_need_the_session_token(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    browser = await _partner_admin(app, api, world)
    r = await browser.post(
        "/partner/customers/new",
        data={"name": "X", "slug": "x-co", "default_timezone": "UTC", "admin_name": "X", "admin_email": "x@x.example"},
    )
    assert r.status_code == 403
    await browser.aclose()


async def test_brand_editor_previews_refuses_and_saves(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    browser = await _partner_admin(app, api, world)
    editor = await browser.get("/partner/branding")
    assert editor.status_code == 200 and "htmx-2.0.11.min.js" in editor.text
    token = csrf_token(editor.text)
    form = {
        "csrf_token": token,
        "product_name": "Alpha Ops",
        "primary_colour": "#ffcc00",
        "accent_colour": "#0b5d3b",
        "support_email": "",
        "support_url": "",
        "hosts": "portal.alpha.example",
    }
    preview = await browser.post("/partner/branding", data={**form, "action": "preview"})
    assert preview.status_code == 422 and "1.51:1" in preview.text and "below the WCAG AA minimum" in preview.text
    form["primary_colour"] = "#123456"
    preview = await browser.post("/partner/branding", data={**form, "action": "preview"})
    assert preview.status_code == 200 and "Alpha Ops" in preview.text
    assert (await api.get(f"/api/v1/partners/{world.a.partner_id}/branding", headers=auth(world.a.key))).json()[
        "product_name"
    ] == "Alpha"  # preview saved nothing
    saved = await browser.post("/partner/branding", data={**form, "action": "save"}, follow_redirects=False)
    assert saved.status_code == 303
    assert (await api.get(f"/api/v1/partners/{world.a.partner_id}/branding", headers=auth(world.a.key))).json()[
        "hosts"
    ] == ["portal.alpha.example"]
    async with browser_on(app, "portal.alpha.example") as visitor:
        assert "Alpha Ops" in (await visitor.get("/login")).text
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    bad = await browser.post(
        "/partner/branding/logo", data={"csrf_token": token}, files={"logo": ("logo.svg", svg, "image/svg+xml")}
    )
    assert bad.status_code == 415 and "SVG images can carry scripts" in bad.text
    assert (await browser.get("/static/vendor/htmx-2.0.11.min.js")).status_code == 200
    await browser.aclose()
