"""The operator console without JavaScript: the platform operator signs in, finds partners, creates one
with its first administrator invited, suspends and reactivates one, and reads the platform's health;
partner and customer staff cannot open it, and the operator still cannot open a customer's plant."""

from __future__ import annotations

import re

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.audit.models import AuditEntry
from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.config.settings import RedisSettings, Settings
from andon.platform.db.engine import create_engine, create_sessionmaker
from andon.platform.db.scope import apply_principal_scope
from andon.platform.http.app import create_app
from andon.platform.http.health import head_revisions
from andon.platform.identity.schemas import GrantIn, UserCreate
from andon.platform.identity.service import UserAdmin
from andon.platform.tenancy.node import OrgNode
from andon.platform.tenancy.principal import OrgKind, system_principal
from andon.tenants.orgs.schemas import PartnerCreate, PartnerUpdate
from andon.tenants.orgs.service import PartnerService
from tests.support.browser import browser_on, csrf_token, new_user_signed_in
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple"
OPERATOR = "olga@andon.example"
PAGE = {"accept": "text/html"}


async def _operator_user(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    """Operator people are seeded (as ``andon dev`` does), not invited by anyone above them."""
    system = system_principal(ALL_PERMISSIONS, "test")
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system)
        invite = UserCreate(
            email=OPERATOR, display_name="Olga", password=PASSWORD, grants=[GrantIn(role="platform_operator")]
        )
        await UserAdmin(session, system, OrgNode(OrgKind.PLATFORM), settings).create(invite, site_ids=set())


async def _sign_in(app: Litestar, email: str, next_path: str, password: str = PASSWORD) -> httpx.AsyncClient:
    browser = browser_on(app, "andon.test")
    login = await browser.get("/login")
    signed = await browser.post(
        "/login",
        data={"csrf_token": csrf_token(login.text), "email": email, "password": password, "next": next_path},
    )
    assert signed.status_code == 303 and signed.headers["location"] == next_path, signed.text
    return browser


async def _operator(
    app: Litestar, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> httpx.AsyncClient:
    await _operator_user(sessionmaker, settings)
    return await _sign_in(app, OPERATOR, "/operator/partners")


async def _partner_admin(app: Litestar, api: httpx.AsyncClient, world: World) -> httpx.AsyncClient:
    return await new_user_signed_in(
        app,
        api,
        users_url=f"/api/v1/partners/{world.a.partner_id}/users",
        key=world.a.key,
        email="pat@alpha.example",
        role="partner_admin",
        password=PASSWORD,
    )


async def _customer_admin(app: Litestar, api: httpx.AsyncClient, world: World) -> httpx.AsyncClient:
    return await new_user_signed_in(
        app,
        api,
        users_url=f"/api/v1/customers/{world.a.customer.customer_id}/users",
        key=world.a.customer.key,
        email="cy@alpha-customer.example",
        role="customer_admin",
        password=PASSWORD,
    )


async def _partner_total(api: httpx.AsyncClient, world: World) -> int:
    r = await api.get("/api/v1/partners", headers=auth(world.operator_key))
    assert r.status_code == 200
    total: int = r.json()["total"]
    return total


def _row(html: str, name: str) -> str:
    """The table row of the partner with this name (its cells, tags included)."""
    match = re.search(
        rf"<tr>\s*<td><a href=\"/operator/partners/[0-9a-f-]+\">{re.escape(name)}</a></td>.*?</tr>", html, re.S
    )
    assert match, f"no row for {name}"
    return match.group(0)


async def test_lists_partners_with_search_filter_and_paging(
    app: Litestar, world: World, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    system = system_principal(ALL_PERMISSIONS, "test")
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system)
        partners = PartnerService(session, system)
        for i in range(30):
            extra = await partners.create(PartnerCreate(slug=f"zulu-{i:02d}", name=f"Zulu {i:02d}"))
            if i % 10 == 0:
                await partners.update(extra.id, PartnerUpdate(status="suspended"))
    browser = await _operator(app, sessionmaker, settings)

    first = await browser.get("/operator/partners")
    assert first.status_code == 200
    assert "32 partner(s)" in first.text and "showing 1 to 25" in first.text
    alpha = _row(first.text, "Alpha")
    assert "<code>alpha</code>" in alpha and "Active" in alpha and "<td>1</td>" in alpha  # its one customer
    assert "<td>0</td>" in _row(first.text, "Zulu 01")
    assert "Suspended" in _row(first.text, "Zulu 00")
    assert "Zulu 22" in first.text and "Zulu 23" not in first.text and "Previous" not in first.text
    next_url = re.search(r'<a href="([^"]+)">Next</a>', first.text)
    assert next_url and "offset=25" in next_url.group(1)
    second = await browser.get(next_url.group(1).replace("&amp;", "&"))
    assert "showing 26 to 32" in second.text and "Zulu 23" in second.text and "Alpha" not in second.text
    assert ">Previous</a>" in second.text and ">Next</a>" not in second.text

    found = await browser.get("/operator/partners", params={"q": "alp"})
    assert "1 partner(s) matching “alp”" in found.text and "Bravo" not in found.text
    suspended = await browser.get("/operator/partners", params={"status": "suspended"})
    assert "3 partner(s)" in suspended.text
    assert all(name in suspended.text for name in ("Zulu 00", "Zulu 10", "Zulu 20")) and "Alpha" not in suspended.text
    both = await browser.get("/operator/partners", params={"q": "zulu 1", "status": "active"})
    assert "9 partner(s)" in both.text and "Zulu 10" not in both.text
    none = await browser.get("/operator/partners", params={"q": "nobody", "status": "suspended"})
    assert "No partner matches “nobody” among the suspended ones" in none.text
    await browser.aclose()


async def test_a_platform_without_partners_says_what_to_do(
    app: Litestar, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    browser = await _operator(app, sessionmaker, settings)
    empty = await browser.get("/operator/partners")
    assert "No partners yet. Create the first one" in empty.text
    assert 'href="/operator/partners/new"' in empty.text and "<table" not in empty.text
    await browser.aclose()


async def test_creates_a_partner_with_its_first_admin_atomically(
    app: Litestar,
    api: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    browser = await _operator(app, sessionmaker, settings)
    form = await browser.get("/operator/partners/new")
    assert form.status_code == 200 and '<label for="admin_email">' in form.text
    token = csrf_token(form.text)
    before = await _partner_total(api, world)
    fields = {
        "csrf_token": token,
        "name": "Delta MSP",
        "slug": "delta",
        "admin_name": "Dana",
        "admin_email": "dana@delta.example",
    }

    taken = await browser.post("/operator/partners/new", data={**fields, "slug": "alpha"})
    assert taken.status_code == 422
    assert 'aria-describedby="slug-hint slug-error"' in taken.text
    assert '<p class="error" id="slug-error">already in use</p>' in taken.text
    assert "a partner with slug &#39;alpha&#39; already exists" in taken.text
    assert 'value="Delta MSP"' in taken.text  # what was typed is kept

    malformed = await browser.post("/operator/partners/new", data={**fields, "slug": "delta msp!"})
    assert malformed.status_code == 422 and 'id="slug-error">Expected `str` matching regex' in malformed.text

    half = await browser.post("/operator/partners/new", data={**fields, "admin_name": ""})
    assert half.status_code == 422 and 'id="admin_name-error">needed to invite the administrator' in half.text

    # The administrator cannot be invited (the e-mail is somebody's already): the partner is not made either.
    await api.post(
        f"/api/v1/partners/{world.b.partner_id}/users",
        headers=auth(world.b.key),
        json={
            "email": "dana@delta.example",
            "display_name": "Dana B",
            "password": PASSWORD,
            "grants": [{"role": "partner_admin"}],
        },
    )
    clash = await browser.post("/operator/partners/new", data=fields)
    assert clash.status_code == 422 and 'id="admin_email-error">already in use' in clash.text
    assert await _partner_total(api, world) == before
    assert "Delta MSP" not in (await browser.get("/operator/partners")).text

    fields["admin_email"] = "dana@delta-msp.example"
    created = await browser.post("/operator/partners/new", data=fields, follow_redirects=False)
    assert created.status_code == 303, created.text
    assert await _partner_total(api, world) == before + 1
    detail = await browser.get(created.headers["location"])
    assert detail.status_code == 200 and "<h1>Delta MSP</h1>" in detail.text
    assert "The invitation to dana@delta-msp.example is on its way." in detail.text
    assert "Active" in detail.text and "<dd>0</dd>" in detail.text

    mailbox = (await browser.get("/dev/mailbox")).text
    # One invitation, to the address that was accepted; none from the refused attempts.
    assert mailbox.count("To dana@delta-msp.example") == 1 and "dana@delta.example" not in mailbox
    link = re.search(r"http://[^/\s]+(/invitations/[\w-]+)", mailbox)
    assert link
    async with browser_on(app, "andon.test") as dana:
        welcome = await dana.get(link.group(1))
        accepted = await dana.post(link.group(1), data={"csrf_token": csrf_token(welcome.text), "password": PASSWORD})
        assert accepted.status_code == 303
    dana = await _sign_in(app, "dana@delta-msp.example", "/partner/customers")
    assert "No customers yet" in (await dana.get("/partner/customers")).text  # the new partner's own console
    await dana.aclose()
    await browser.aclose()


async def test_suspension_locks_out_the_partner_and_its_customers_until_reactivated(
    app: Litestar,
    api: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    pat = await _partner_admin(app, api, world)
    assert (await pat.get("/partner/customers")).status_code == 200
    browser = await _operator(app, sessionmaker, settings)
    detail_url = f"/operator/partners/{world.a.partner_id}"
    detail = await browser.get(detail_url)
    assert f'href="{detail_url}/suspend">Suspend Alpha…</a>' in detail.text

    confirm = await browser.get(f"{detail_url}/suspend")
    assert confirm.status_code == 200 and "its\n1 customer(s)" in confirm.text
    assert (await browser.post(f"{detail_url}/suspend", data={})).status_code == 403  # no session token
    assert (await pat.get("/partner/customers")).status_code == 200
    suspended = await browser.post(
        f"{detail_url}/suspend", data={"csrf_token": csrf_token(confirm.text)}, follow_redirects=False
    )
    assert suspended.status_code == 303
    shown = await browser.get(suspended.headers["location"])
    assert "Suspended Alpha: its staff and its customers can no longer sign in" in shown.text
    assert "<strong>Suspended</strong>" in shown.text and "Reactivate Alpha</button>" in shown.text

    refused = await pat.get("/partner/customers")
    assert refused.status_code == 401 and "suspended" in refused.json()["detail"]
    assert (
        (await pat.get("/partner/customers", headers=PAGE, follow_redirects=False))
        .headers["location"]
        .startswith("/login")
    )
    assert (await api.get("/api/v1/customers", headers=auth(world.a.key))).status_code == 401
    customer = world.a.customer
    assert (
        await api.get(f"/api/v1/customers/{customer.customer_id}/sites", headers=auth(customer.key))
    ).status_code == 401
    assert (await api.get("/api/v1/customers", headers=auth(world.b.key))).status_code == 200  # others unaffected

    again = await browser.post(
        f"{detail_url}/suspend", data={"csrf_token": csrf_token(confirm.text)}, follow_redirects=True
    )
    assert "Alpha is already suspended." in again.text
    trail = (await api.get("/api/v1/audit", headers=auth(world.operator_key))).json()
    changes = [e for e in trail if e["action"] == "partner.updated" and e["target_id"] == str(world.a.partner_id)]
    assert len(changes) == 1 and changes[0]["after"]["status"] == "suspended"
    assert changes[0]["actor"]["label"] == f"user {OPERATOR}"

    reactivated = await browser.post(
        f"{detail_url}/reactivate", data={"csrf_token": csrf_token(shown.text)}, follow_redirects=False
    )
    assert reactivated.status_code == 303
    assert "Reactivated Alpha" in (await browser.get(reactivated.headers["location"])).text
    assert (await pat.get("/partner/customers")).status_code == 200  # the same session works again
    assert (
        await api.get(f"/api/v1/customers/{customer.customer_id}/sites", headers=auth(customer.key))
    ).status_code == 200
    await pat.aclose()
    await browser.aclose()


async def test_health_page_shows_states_revision_counts_and_audit(
    app: Litestar,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    browser = await _operator(app, sessionmaker, settings)
    health = await browser.get("/operator/health")
    assert health.status_code == 200
    text = re.sub(r"\s+", " ", health.text)
    assert re.search(
        r"<th scope=\"row\">Database</th> <td><strong[^>]*>✓ Reachable</strong></td> <td>answered in [\d.]+ ms", text
    )
    # In-process on SQLite runs, Redis when ANDON_REDIS_URL is set (as in CI).
    assert re.search(r'<th scope="row">Message broker</th> <td><strong[^>]*>✓ Reachable</strong></td>', text)
    head = ", ".join(head_revisions())
    assert f"✓ Up to date</strong></td> <td>at {head}; this version expects {head}</td>" in text
    assert "✓ Intact" in text and "chain(s) checked" in text
    for label, n in (("Partners", 2), ("Customers", 2), ("User accounts", 1), ("API keys in use", 5)):
        assert f'<th scope="row">{label}</th><td>{n}</td>' in text, label

    # Someone edits an audit entry behind the application's back (as the schema owner could).
    owner = create_engine(settings.database, url=settings.database.owner_url)
    async with create_sessionmaker(owner)() as session, session.begin():
        await session.execute(update(AuditEntry).where(AuditEntry.seq == 1).values(action="nothing.happened"))
    await owner.dispose()
    tampered = re.sub(r"\s+", " ", (await browser.get("/operator/health")).text)
    assert (
        '<strong class="error">✗ Tampered</strong>' in tampered
        and "content does not match its hash: edited" in tampered
    )
    await browser.aclose()


async def test_health_page_says_when_the_broker_is_down(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    broken = settings.model_copy(update={"redis": RedisSettings(url="redis://127.0.0.1:1/0")})
    app = create_app(broken)
    try:
        browser = await _operator(app, sessionmaker, settings)
        text = re.sub(r"\s+", " ", (await browser.get("/operator/health")).text)
        broker = '<th scope="row">Message broker</th> <td><strong class="error">✗ Unreachable</strong></td>'
        assert f"{broker} <td>redis: ConnectionError" in text
        await browser.aclose()
    finally:
        await app.state.engine.dispose()


@pytest.mark.parametrize("who", ["partner admin", "customer admin"])
async def test_partner_and_customer_staff_get_a_branded_403(
    who: str, app: Litestar, api: httpx.AsyncClient, world: World
) -> None:
    browser = await (_partner_admin if who == "partner admin" else _customer_admin)(app, api, world)
    for path in ("/operator/partners", f"/operator/partners/{world.a.partner_id}", "/operator/health"):
        page = await browser.get(path, headers=PAGE)
        assert page.status_code == 403, path
        assert page.headers["content-type"].startswith("text/html")
        assert "<h1>You can&#39;t open this page</h1>" in page.text
        assert "the operator console is for the platform operator" in page.text or "partners:read" in page.text
    form = await browser.get("/account")
    refused = await browser.post(
        "/operator/partners/new",
        data={"csrf_token": csrf_token(form.text), "name": "Sneaky", "slug": "sneaky"},
        headers=PAGE,
    )
    assert refused.status_code == 403
    assert await _partner_total(api, world) == 2
    await browser.aclose()


async def test_the_operator_cannot_open_a_customers_plant(
    app: Litestar, world: World, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    browser = await _operator(app, sessionmaker, settings)
    customer = world.a.customer
    detail = await browser.get(f"/operator/partners/{world.a.partner_id}")
    assert detail.status_code == 200 and "<dd>1</dd>" in detail.text
    assert f"{customer.slug} plant" not in detail.text  # a count of customers, never what is inside them
    console = await browser.get(f"/partner/customers/{customer.customer_id}", headers=PAGE)
    assert console.status_code == 403 and "You can&#39;t open this page" in console.text
    for kind in ("sites", "lines", "assets"):
        assert (await browser.get(f"/api/v1/customers/{customer.customer_id}/{kind}")).status_code == 403, kind
    # Where the operator's role does carry the permission (people), the service itself still refuses.
    people = await browser.get(f"/api/v1/customers/{customer.customer_id}/users")
    assert people.status_code == 403
    assert people.json()["detail"] == "the platform operator has no access inside a customer"
    await browser.aclose()
