"""The portal's shell: navigation by persona, one-shot notices that cannot be forged, and error pages
(unknown addresses included) in the brand of the portal they are on, while machines keep problem+json."""

from __future__ import annotations

import httpx
import pytest
from litestar import Litestar
from pydantic import SecretStr

from andon.frontend.flash import flash_token
from andon.platform.config.settings import Settings
from tests.support.browser import browser_on, new_user_signed_in
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
HTML = {"accept": "text/html"}


async def _brand_alpha(api: httpx.AsyncClient, world: World) -> None:
    r = await api.put(
        f"/api/v1/partners/{world.a.partner_id}/branding",
        json={"product_name": "Alpha Works", "hosts": ["alpha.example"]},
        headers=auth(world.a.key),
    )
    assert r.status_code == 200, r.text


async def _alpha_admin(app: Litestar, api: httpx.AsyncClient, world: World) -> httpx.AsyncClient:
    """Alpha's partner admin, signed in on Alpha's own portal host."""
    return await new_user_signed_in(
        app,
        api,
        users_url=f"/api/v1/partners/{world.a.partner_id}/users",
        key=world.a.key,
        email="pam@alpha.example",
        role="partner_admin",
        host="alpha.example",
    )


async def test_unknown_address_is_a_page_in_the_hosts_brand(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    await _brand_alpha(api, world)
    async with browser_on(app, "alpha.example") as browser:
        page = await browser.get("/no/such/page", headers=HTML)
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        assert "There is no such page" in page.text and "Alpha Works" in page.text and "Andon" not in page.text
        assert "Reference:" in page.text
        machine = await browser.get("/api/v1/no-such-thing", headers=HTML)
        assert machine.status_code == 404 and machine.headers["content-type"] == "application/problem+json"
        assert (await browser.get("/no/such/page")).headers["content-type"] == "application/problem+json"


async def test_navigation_and_refusals_follow_the_persona(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    await _brand_alpha(api, world)
    partner = await _alpha_admin(app, api, world)
    home = await partner.get("/")
    assert home.status_code == 303 and home.headers["location"] == "/partner/customers"
    listing = (await partner.get("/partner/customers")).text
    assert 'href="/partner/customers" aria-current="page"' in listing and 'href="/partner/branding"' in listing
    assert "/operator/" not in listing and "/admin/" not in listing

    auditor = await new_user_signed_in(
        app,
        api,
        users_url=f"/api/v1/customers/{world.a.customer.customer_id}/users",
        key=world.a.customer.key,
        email="aud@alpha-customer.example",
        role="auditor",
        host="alpha.example",
    )
    account = (await auditor.get("/account")).text
    assert 'href="/admin/audit"' in account and "/partner/" not in account and 'href="/admin/users"' not in account
    refused = await auditor.get("/partner/customers", headers=HTML)
    assert refused.status_code == 403 and "open this page" in refused.text and "Alpha Works" in refused.text
    await partner.aclose()
    await auditor.aclose()


async def test_notices_are_signed(app: Litestar, settings: Settings) -> None:
    """A crafted link cannot make the portal say what the platform never said."""
    other = settings.model_copy(deep=True)
    other.security.secret_key = SecretStr("another platform's secret, at least 32 characters long")
    async with browser_on(app, "andon.test") as browser:
        good = flash_token(settings, "Saved.")
        assert (
            '<p class="notice" role="status">Saved.</p>' in (await browser.get("/login", params={"flash": good})).text
        )
        signature = good.partition(".")[2]
        for bad in (
            f"{flash_token(settings, 'Call support at 555-0100').split('.')[0]}.{signature}",
            flash_token(other, "Call support at 555-0100"),
            "not-a-token",
        ):
            page = (await browser.get("/login", params={"flash": bad})).text
            assert "Call support at" not in page and 'class="notice"' not in page


async def test_a_session_is_good_only_on_its_own_partners_portal(
    app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    await _brand_alpha(api, world)
    r = await api.put(
        f"/api/v1/partners/{world.b.partner_id}/branding",
        json={"product_name": "Bravo Hub", "hosts": ["bravo.example"]},
        headers=auth(world.b.key),
    )
    assert r.status_code == 200, r.text
    partner = await _alpha_admin(app, api, world)
    assert (await partner.get("/partner/customers")).status_code == 200
    # The same session cookie, carried by hand to the other partner's portal, opens nothing there.
    async with browser_on(app, "bravo.example") as elsewhere:
        for cookie in partner.cookies.jar:
            elsewhere.cookies.set(cookie.name, cookie.value or "", domain="bravo.example")
        refused = await elsewhere.get("/partner/customers", headers=HTML)
        assert refused.status_code == 303 and refused.headers["location"].startswith("/login")
        machine = await elsewhere.get("/api/v1/me")
        assert machine.status_code == 401 and "own organisation's portal" in machine.json()["detail"]
    await partner.aclose()


async def test_a_failure_is_a_branded_page_with_a_reference(
    app: Litestar, api: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _brand_alpha(api, world)
    partner = await _alpha_admin(app, api, world)

    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("the database fell over")

    monkeypatch.setattr("andon.frontend.partner.controllers.CustomerService.list", broken)
    failed = await partner.get("/partner/customers", headers=HTML)
    assert failed.status_code == 500 and "Something went wrong on our side" in failed.text
    assert "Alpha Works" in failed.text and "fell over" not in failed.text and "Traceback" not in failed.text
    assert f"<code>{failed.headers['x-request-id']}</code>" in failed.text
    await partner.aclose()
