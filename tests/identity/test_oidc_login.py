"""Single sign-on through real OpenID Connect providers, end to end over HTTP: redirect, provider
login, callback, session cookie, an authorised page, logout; for a partner and for a customer, each
with its own provider on its own host name; and every way a sign-in must be refused."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.identity.conftest import Realm
from tests.identity.conftest import browser_on as _browser
from tests.support.browser import csrf_token
from tests.support.oidc_provider import client_credentials_token, provider_login, provider_logout
from tests.tenants.factories import World, auth

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def _configure(api: httpx.AsyncClient, world: World, realms: dict[str, Realm]) -> dict[str, str]:
    """Alpha (a partner) and bravo's customer each register their provider through the API."""
    alpha, bravo = realms["alpha"], realms["bravo"]
    a = await api.post(
        f"/api/v1/partners/{world.a.partner_id}/identity-providers",
        json={
            "name": "Alpha SSO",
            "issuer": alpha.issuer,
            "client_id": alpha.client_id,
            "client_secret": alpha.client_secret,
            "scopes": "openid email profile groups",
            "email_domains": ["alpha-msp.example"],
            "hosts": [alpha.host],
            "group_roles": {"msp-admins": ["partner_admin"], "msp-support": ["partner_support"]},
        },
        headers=auth(world.a.key),
    )
    assert a.status_code == 201, a.text
    assert "client_secret" not in a.json() and "client_secret_sealed" not in a.json()
    b = await api.post(
        f"/api/v1/customers/{world.b.customer.customer_id}/identity-providers",
        json={
            "name": "Bravo Plant SSO",
            "issuer": bravo.issuer,
            "client_id": bravo.client_id,
            "client_secret": bravo.client_secret,
            "scopes": "openid email profile groups",
            "email_domains": ["bravo-plant.example"],
            "hosts": [bravo.host],
            "group_roles": {"supervisors": ["plant_supervisor"]},
        },
        headers=auth(world.b.customer.key),
    )
    assert b.status_code == 201, b.text
    return {"alpha": a.json()["id"], "bravo": b.json()["id"]}


async def _sign_in(app: Litestar, realm: Realm, email: str, idp_id: str) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    browser = _browser(app, realm.host)
    idp_browser = httpx.AsyncClient(timeout=10)
    page = await browser.get("/login")
    assert f"/auth/oidc/{idp_id}/start" in page.text  # the host offers its organisation's provider
    start = await browser.get(f"/auth/oidc/{idp_id}/start", params={"next": "/account"}, follow_redirects=False)
    assert start.status_code == 303
    assert start.headers["location"].startswith(realm.issuer)
    back = await provider_login(idp_browser, start.headers["location"], email, realm.accounts[email]["password"])
    assert back.status_code in (302, 303), back.text[:300]
    callback = urlsplit(back.headers["location"])
    assert callback.netloc == realm.host and callback.path == "/auth/oidc/callback"
    done = await browser.get(f"{callback.path}?{callback.query}", follow_redirects=False)
    assert done.status_code == 303, done.text[:500]
    assert done.headers["location"] == "/account"
    return browser, idp_browser


async def test_partner_and_customer_sign_in_on_their_own_hosts(
    app: Litestar, api: httpx.AsyncClient, world: World, realms: dict[str, Realm]
) -> None:
    ids = await _configure(api, world, realms)

    # A partner administrator of alpha, on alpha's host.
    ada, ada_idp = await _sign_in(app, realms["alpha"], "ada@alpha-msp.example", ids["alpha"])
    account = await ada.get("/account")
    assert account.status_code == 200 and "Ada Admin" in account.text and "partner_admin" in account.text
    me = (await ada.get("/api/v1/me")).json()
    assert (me["kind"], me["org_kind"], me["partner_id"]) == ("user", "partner", str(world.a.partner_id))
    assert "customers:write" in me["permissions"]
    customers = (await ada.get("/api/v1/customers")).json()["items"]
    assert [c["id"] for c in customers] == [str(world.a.customer.customer_id)]

    # A plant supervisor of bravo's customer, on bravo's host: its own customer only.
    sue, sue_idp = await _sign_in(app, realms["bravo"], "sue@bravo-plant.example", ids["bravo"])
    me = (await sue.get("/api/v1/me")).json()
    assert (me["org_kind"], me["customer_id"]) == ("customer", str(world.b.customer.customer_id))
    assert "plant:read" in me["permissions"] and "plant:write" not in me["permissions"]
    assert (await sue.get(f"/api/v1/customers/{world.b.customer.customer_id}/sites")).status_code == 200
    assert (await sue.get(f"/api/v1/customers/{world.a.customer.customer_id}/sites")).status_code == 404
    assert (await sue.get(f"/api/v1/customers/{world.a.customer.customer_id}")).status_code == 404

    # Sign-out ends our session and the provider's, and comes back to the organisation's host.
    out = await ada.post("/logout", data={"csrf_token": csrf_token(account.text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"].startswith(realms["alpha"].issuer)
    back = await provider_logout(ada_idp, out.headers["location"])
    assert back.headers["location"].startswith(f"http://{realms['alpha'].host}/login?logged_out=true")
    assert (await ada.get("/api/v1/me")).status_code == 401
    page = await ada.get("/account", headers={"accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/account"
    # Bravo's session is untouched by alpha's sign-out.
    assert (await sue.get("/api/v1/me")).status_code == 200
    for c in (ada, sue, ada_idp, sue_idp):
        await c.aclose()


async def test_home_realm_discovery_by_email_domain(
    app: Litestar, api: httpx.AsyncClient, world: World, realms: dict[str, Realm]
) -> None:
    ids = await _configure(api, world, realms)
    async with _browser(app, "andon.test") as browser:
        page = await browser.get("/login")
        assert "/auth/oidc/" not in page.text  # the platform's own host offers no provider
        r = await browser.post(
            "/login",
            data={"csrf_token": csrf_token(page.text), "email": "sue@bravo-plant.example", "next": "/account"},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"].startswith(f"/auth/oidc/{ids['bravo']}/start")
        local = await browser.post(
            "/login", data={"csrf_token": csrf_token(page.text), "email": "someone@elsewhere.example"}
        )
        assert 'name="password"' in local.text  # no provider claims the domain: ask for a password


async def test_group_mapping_is_reapplied_at_every_login(
    app: Litestar, api: httpx.AsyncClient, world: World, realms: dict[str, Realm]
) -> None:
    ids = await _configure(api, world, realms)
    sam, sam_idp = await _sign_in(app, realms["alpha"], "sam@alpha-msp.example", ids["alpha"])
    assert "partner_support" in (await sam.get("/account")).text
    # The partner stops mapping the support group to any role; at the next login the role is gone.
    r = await api.patch(
        f"/api/v1/partners/{world.a.partner_id}/identity-providers/{ids['alpha']}",
        json={"group_roles": {"msp-admins": ["partner_admin"]}},
        headers=auth(world.a.key),
    )
    assert r.status_code == 200, r.text
    again, again_idp = await _sign_in(app, realms["alpha"], "sam@alpha-msp.example", ids["alpha"])
    me = (await again.get("/api/v1/me")).json()
    assert me["permissions"] == []
    for c in (sam, again, sam_idp, again_idp):
        await c.aclose()


async def _users(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("SELECT set_config('andon.auth_lookup', 'on', true)"))
        return int((await session.execute(text("SELECT count(*) FROM users"))).scalar_one())


async def test_callback_refusals_create_nothing(
    app: Litestar,
    api: httpx.AsyncClient,
    world: World,
    realms: dict[str, Realm],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    ids = await _configure(api, world, realms)
    bravo = realms["bravo"]
    before = await _users(sessionmaker)
    async with _browser(app, bravo.host) as browser, httpx.AsyncClient() as idp:
        # Wrong state.
        r = await browser.get("/auth/oidc/callback", params={"code": "x", "state": "forged"})
        assert r.status_code == 400 and "started in another browser" in r.text

        # A wrong nonce: the flow's nonce no longer matches what the provider put in the ID token.
        start = await browser.get(f"/auth/oidc/{ids['bravo']}/start", follow_redirects=False)
        back = await provider_login(idp, start.headers["location"], "sue@bravo-plant.example", "bravo-pass-1")
        async with sessionmaker() as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                await session.execute(text("SELECT set_config('andon.auth_lookup', 'on', true)"))
            await session.execute(text("UPDATE login_flows SET nonce = 'tampered'"))
        cb = urlsplit(back.headers["location"])
        r = await browser.get(f"{cb.path}?{cb.query}", follow_redirects=False)
        assert r.status_code == 400 and "invalid &#39;nonce&#39; claim" in r.text
        assert await _users(sessionmaker) == before

        # A good sign-in, then the same callback replayed: refused.
        start = await browser.get(f"/auth/oidc/{ids['bravo']}/start", follow_redirects=False)
        back = await provider_login(idp, start.headers["location"], "sue@bravo-plant.example", "bravo-pass-1")
        cb = urlsplit(back.headers["location"])
        ok = await browser.get(f"{cb.path}?{cb.query}", follow_redirects=False)
        assert ok.status_code == 303
        replay = await browser.get(f"{cb.path}?{cb.query}", follow_redirects=False)
        assert replay.status_code == 400 and "start again" in replay.text
        # Login CSRF: a callback that someone else started cannot sign this browser in.
        start = await browser.get(f"/auth/oidc/{ids['bravo']}/start", follow_redirects=False)
        back = await provider_login(idp, start.headers["location"], "sue@bravo-plant.example", "bravo-pass-1")
        cb = urlsplit(back.headers["location"])
        async with _browser(app, bravo.host) as victim:
            forced = await victim.get(f"{cb.path}?{cb.query}", follow_redirects=False)
            assert forced.status_code == 400 and "started in another browser" in forced.text
            assert (await victim.get("/api/v1/me")).status_code == 401
        assert await _users(sessionmaker) == before + 1

        # The provider said no (the user cancelled): a clear page, nothing created.
        r = await browser.get("/auth/oidc/callback", params={"error": "access_denied", "state": "x"})
        assert r.status_code == 400 and "access_denied" in r.text

        # A wrong password at the provider never reaches us at all.
        start = await browser.get(f"/auth/oidc/{ids['bravo']}/start", follow_redirects=False)
        async with httpx.AsyncClient() as fresh:
            form = await provider_login(fresh, start.headers["location"], "sue@bravo-plant.example", "nope")
        assert form.status_code == 200 and "Invalid email or password" in form.text
    assert await _users(sessionmaker) == before + 1


async def test_machine_access_with_client_credential_jwts(
    api: httpx.AsyncClient, world: World, realms: dict[str, Realm]
) -> None:
    alpha, bravo = realms["alpha"], realms["bravo"]
    ids = await _configure(api, world, realms)
    r = await api.patch(
        f"/api/v1/partners/{world.a.partner_id}/identity-providers/{ids['alpha']}",
        json={"api_audience": "https://api.alpha.test", "machine_clients": {alpha.client_id: ["partner_engineer"]}},
        headers=auth(world.a.key),
    )
    assert r.status_code == 200, r.text
    token = await client_credentials_token(alpha.issuer, alpha.client_id, alpha.client_secret, "https://api.alpha.test")
    machine = {"Authorization": f"Bearer {token}"}
    me = (await api.get("/api/v1/me", headers=machine)).json()
    assert (me["kind"], me["org_kind"], me["partner_id"]) == ("service", "partner", str(world.a.partner_id))
    assert (await api.get("/api/v1/customers", headers=machine)).status_code == 200
    # Least privilege: the engineer role reads, it does not create customers.
    assert (await api.post("/api/v1/customers", json={"slug": "m1", "name": "M"}, headers=machine)).status_code == 403

    # A token for another audience, or from a provider without machine access, is refused.
    other = await client_credentials_token(bravo.issuer, bravo.client_id, bravo.client_secret, "https://api.bravo.test")
    refused = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {other}"})
    assert refused.status_code == 401 and "machine access" in refused.json()["detail"]
    r = await api.patch(
        f"/api/v1/partners/{world.a.partner_id}/identity-providers/{ids['alpha']}",
        json={"api_audience": "https://api.elsewhere.test"},
        headers=auth(world.a.key),
    )
    wrong_aud = await api.get("/api/v1/me", headers=machine)
    assert wrong_aud.status_code == 401 and "machine access" in wrong_aud.json()["detail"]
    # A client the organisation did not list gets nothing.
    r = await api.patch(
        f"/api/v1/partners/{world.a.partner_id}/identity-providers/{ids['alpha']}",
        json={"api_audience": "https://api.alpha.test", "machine_clients": {}},
        headers=auth(world.a.key),
    )
    unlisted = await api.get("/api/v1/me", headers=machine)
    assert unlisted.status_code == 401 and "has no access here" in unlisted.json()["detail"]


async def test_provider_controls_linked_accounts_and_claims_are_exclusive(
    app: Litestar, api: httpx.AsyncClient, world: World, realms: dict[str, Realm]
) -> None:
    ids = await _configure(api, world, realms)
    c = world.b.customer
    # A local account that later signs in through its organisation's provider is linked to it ...
    r = await api.post(
        f"/api/v1/customers/{c.customer_id}/users",
        headers=auth(c.key),
        json={"email": "sue@bravo-plant.example", "display_name": "Sue", "password": "a long local pass"},
    )
    assert r.status_code == 201
    sue, sue_idp = await _sign_in(app, realms["bravo"], "sue@bravo-plant.example", ids["bravo"])
    # ... and from then on its password no longer works: the provider decides who gets in.
    async with _browser(app, "andon.test") as other:
        page = await other.get("/login")
        refused = await other.post(
            "/login",
            data={
                "csrf_token": csrf_token(page.text),
                "email": "sue@bravo-plant.example",
                "password": "a long local pass",
            },
        )
        assert refused.status_code == 401 and "identity provider" in refused.text
    # Switching the provider off ends its sessions at once.
    assert (await sue.get("/api/v1/me")).status_code == 200
    off = await api.patch(
        f"/api/v1/customers/{c.customer_id}/identity-providers/{ids['bravo']}",
        json={"enabled": False},
        headers=auth(c.key),
    )
    assert off.status_code == 200
    assert (await sue.get("/api/v1/me")).status_code == 401
    await sue.aclose()
    await sue_idp.aclose()

    # Another organisation cannot claim alpha's e-mail domain, host name or machine audience.
    for claim in ({"email_domains": ["alpha-msp.example"]}, {"hosts": [realms["alpha"].host]}):
        r = await api.patch(
            f"/api/v1/customers/{c.customer_id}/identity-providers/{ids['bravo']}", json=claim, headers=auth(c.key)
        )
        assert r.status_code == 409 and "another organisation" in r.json()["detail"]
    bad = await api.patch(
        f"/api/v1/customers/{c.customer_id}/identity-providers/{ids['bravo']}",
        json={"hosts": ["not a host!"]},
        headers=auth(c.key),
    )
    assert bad.status_code == 422
