"""Local accounts: password sign-in with lockout, sessions (list, revoke-all, CSRF), invitations with
expiry and single use, password reset, and TOTP as a second factor with replay protection."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pyotp
import pytest
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.identity.conftest import browser_on
from tests.support.browser import csrf_token
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple"


async def _user(api: httpx.AsyncClient, world: World, email: str, **extra: Any) -> dict[str, Any]:
    c = world.a.customer
    r = await api.post(
        f"/api/v1/customers/{c.customer_id}/users",
        json={"email": email, "display_name": "Tess Tech", "grants": [{"role": "technician"}], **extra},
        headers=auth(c.key),
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _login(browser: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    page = await browser.get("/login")
    return await browser.post(
        "/login",
        data={"csrf_token": csrf_token(page.text), "email": email, "password": password, "next": "/account"},
        follow_redirects=False,
    )


async def _sql(maker: async_sessionmaker[AsyncSession], statement: str, **params: Any) -> None:
    async with maker() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("SELECT set_config('andon.auth_lookup', 'on', true)"))
        await session.execute(text(statement), params)


async def test_password_sign_in_sessions_andcsrf_token(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    await _user(api, world, "tess@acme.example", password=PASSWORD)
    async with browser_on(app, "andon.test") as phone, browser_on(app, "andon.test") as laptop:
        assert (await _login(phone, "tess@acme.example", PASSWORD)).status_code == 303
        signed_in = await _login(laptop, "tess@acme.example", PASSWORD)
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/account"
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
        me = (await laptop.get("/api/v1/me")).json()
        assert me["permissions"] == [
            "alerts:write",
            "customers:read",
            "events:read",
            "plant:read",
            "runs:read",
            "tasks:write",
        ]
        sessions = (await laptop.get("/api/v1/me/sessions")).json()
        assert len(sessions) == 2 and sum(s["current"] for s in sessions) == 1

        # A state-changing request without the session's CSRF token is refused, with it allowed.
        no_token = await laptop.delete("/api/v1/me/sessions")
        assert no_token.status_code == 403 and "CSRF" in no_token.json()["detail"]
        page = await laptop.get("/account")
        revoked = await laptop.delete("/api/v1/me/sessions", headers={"X-CSRF-Token": csrf_token(page.text)})
        assert revoked.json() == {"revoked": 1}
        assert (await phone.get("/api/v1/me")).status_code == 401  # signed out everywhere else
        assert (await laptop.get("/api/v1/me")).status_code == 200

        out = await laptop.post("/logout", data={"csrf_token": csrf_token(page.text)}, follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/login?logged_out=true"
        assert (await laptop.get("/api/v1/me")).status_code == 401


async def test_brute_force_locks_the_account(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    await _user(api, world, "lock@acme.example", password=PASSWORD)
    async with browser_on(app, "andon.test") as attacker:
        for _ in range(5):
            r = await _login(attacker, "lock@acme.example", "wrong password!!")
            assert r.status_code == 401 and "Invalid e-mail or password" in r.text
        r = await _login(attacker, "lock@acme.example", PASSWORD)
        assert r.status_code == 401 and "locked for 15 more minute(s)" in r.text
        # An unknown address gets the same answer as a wrong password.
        r = await _login(attacker, "nobody@acme.example", PASSWORD)
        assert r.status_code == 401 and "Invalid e-mail or password" in r.text


async def test_invitation_single_use_and_expiry(
    app: Litestar, api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    invited = await _user(api, world, "new@acme.example")
    assert invited["status"] == "invited"
    async with browser_on(app, "andon.test") as browser:
        mailbox = await browser.get("/dev/mailbox")
        link = re.search(r"http://\S+/invitations/(\S+)", mailbox.text)
        assert link, mailbox.text[:800]
        path = f"/invitations/{link.group(1)}"
        page = await browser.get(path)
        weak = await browser.post(path, data={"csrf_token": csrf_token(page.text), "password": "short"})
        assert weak.status_code == 422 and "at least 12 characters" in weak.text
        ok = await browser.post(
            path, data={"csrf_token": csrf_token(page.text), "password": PASSWORD}, follow_redirects=False
        )
        assert ok.status_code == 303
        again = await browser.post(path, data={"csrf_token": csrf_token(page.text), "password": PASSWORD + "!"})
        assert again.status_code == 422 and "already used or expired" in again.text
        assert (await _login(browser, "new@acme.example", PASSWORD)).status_code == 303

    late = await _user(api, world, "late@acme.example")
    await _sql(
        sessionmaker,
        "UPDATE one_time_tokens SET expires_at = :past WHERE user_id IN (SELECT id FROM users WHERE email = :email)",
        past=datetime(2020, 1, 1, tzinfo=UTC),
        email=late["email"],
    )
    async with browser_on(app, "andon.test") as browser:
        mailbox = await browser.get("/dev/mailbox")
        tokens = re.findall(r"/invitations/(\S+)", mailbox.text)
        page = await browser.get(f"/invitations/{tokens[0]}")
        r = await browser.post(
            f"/invitations/{tokens[0]}", data={"csrf_token": csrf_token(page.text), "password": PASSWORD}
        )
        assert r.status_code == 422 and "expired" in r.text


async def test_password_reset(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    await _user(api, world, "forgot@acme.example", password=PASSWORD)
    async with browser_on(app, "andon.test") as old_device, browser_on(app, "andon.test") as browser:
        assert (await _login(old_device, "forgot@acme.example", PASSWORD)).status_code == 303
        page = await browser.get("/password-reset")
        for email in ("forgot@acme.example", "nobody@acme.example"):
            r = await browser.post("/password-reset", data={"csrf_token": csrf_token(page.text), "email": email})
            assert "If that address has an account here" in r.text  # the same answer either way
        mailbox = await browser.get("/dev/mailbox")
        links = re.findall(r"/password-reset/(\S+)", mailbox.text)
        assert len(links) == 1
        form = await browser.get(f"/password-reset/{links[0]}")
        new = PASSWORD + " 2"
        r = await browser.post(
            f"/password-reset/{links[0]}",
            data={"csrf_token": csrf_token(form.text), "password": new},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert (await old_device.get("/api/v1/me")).status_code == 401  # a reset ends every session
        assert (await _login(browser, "forgot@acme.example", PASSWORD)).status_code == 401
        assert (await _login(browser, "forgot@acme.example", new)).status_code == 303


async def test_totp_second_factor(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    await _user(api, world, "mfa@acme.example", password=PASSWORD)
    async with browser_on(app, "andon.test") as browser:
        assert (await _login(browser, "mfa@acme.example", PASSWORD)).status_code == 303
        account = await browser.get("/account")
        setup = await browser.post("/account/totp/start", data={"csrf_token": csrf_token(account.text)})
        secret = re.search(r"<p><code>([A-Z2-7]+)</code></p>", setup.text)
        assert secret
        totp = pyotp.TOTP(secret.group(1))
        wrong = await browser.post(
            "/account/totp/confirm", data={"csrf_token": csrf_token(setup.text), "code": "000000"}
        )
        assert wrong.status_code == 422
        on = await browser.post(
            "/account/totp/confirm",
            data={"csrf_token": csrf_token(setup.text), "code": totp.now()},
            follow_redirects=False,
        )
        assert on.status_code == 303
        await browser.post("/logout", data={"csrf_token": csrf_token(account.text)})

    async with browser_on(app, "andon.test") as browser:
        r = await _login(browser, "mfa@acme.example", PASSWORD)
        assert r.status_code == 303 and r.headers["location"] == "/login/totp"
        assert (await browser.get("/api/v1/me")).status_code == 401  # half signed in is not signed in
        page = await browser.get("/login/totp")
        bad = await browser.post("/login/totp", data={"csrf_token": csrf_token(page.text), "code": "123456"})
        assert bad.status_code == 401 and "not valid" in bad.text
        code = pyotp.TOTP(secret.group(1)).at(__import__("time").time() + 30)  # the next step: unused
        ok = await browser.post(
            "/login/totp", data={"csrf_token": csrf_token(page.text), "code": code}, follow_redirects=False
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/account"
        assert (await browser.get("/api/v1/me")).status_code == 200

    async with browser_on(app, "andon.test") as browser:
        await _login(browser, "mfa@acme.example", PASSWORD)
        page = await browser.get("/login/totp")
        replay = await browser.post("/login/totp", data={"csrf_token": csrf_token(page.text), "code": code})
        assert replay.status_code == 401  # each code works once


async def test_anonymous_forms_need_their_token(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    async with browser_on(app, "andon.test") as browser:
        r = await browser.post("/login", data={"email": "x@acme.example", "password": PASSWORD})
        assert r.status_code == 400 and "reload the page" in r.json()["detail"]


async def test_idle_and_absolute_timeouts(
    app: Litestar, api: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await _user(api, world, "idle@acme.example", password=PASSWORD)
    async with browser_on(app, "andon.test") as browser:
        assert (await _login(browser, "idle@acme.example", PASSWORD)).status_code == 303
        assert (await browser.get("/api/v1/me")).status_code == 200
        # 31 minutes without a request (idle timeout: 30).
        await _sql(
            sessionmaker, "UPDATE login_sessions SET last_seen_at = :t", t=datetime.now(UTC) - timedelta(minutes=31)
        )
        r = await browser.get("/api/v1/me")
        assert r.status_code == 401 and "session has ended" in r.json()["detail"]
    async with browser_on(app, "andon.test") as browser:
        assert (await _login(browser, "idle@acme.example", PASSWORD)).status_code == 303
        # Active all along, but past the absolute lifetime (12 hours).
        await _sql(
            sessionmaker, "UPDATE login_sessions SET expires_at = :t", t=datetime.now(UTC) - timedelta(seconds=1)
        )
        assert (await browser.get("/api/v1/me")).status_code == 401


async def test_second_factor_obeys_the_lockout(app: Litestar, api: httpx.AsyncClient, world: World) -> None:
    await _user(api, world, "guess@acme.example", password=PASSWORD)
    async with browser_on(app, "andon.test") as browser:
        await _login(browser, "guess@acme.example", PASSWORD)
        account = await browser.get("/account")
        setup = await browser.post("/account/totp/start", data={"csrf_token": csrf_token(account.text)})
        secret = re.search(r"<p><code>([A-Z2-7]+)</code></p>", setup.text)
        assert secret
        await browser.post(
            "/account/totp/confirm",
            data={"csrf_token": csrf_token(setup.text), "code": pyotp.TOTP(secret.group(1)).now()},
        )
    async with browser_on(app, "andon.test") as attacker:
        await _login(attacker, "guess@acme.example", PASSWORD)
        page = await attacker.get("/login/totp")
        for _ in range(5):
            await attacker.post("/login/totp", data={"csrf_token": csrf_token(page.text), "code": "000000"})
        code = pyotp.TOTP(secret.group(1)).at(__import__("time").time() + 30)
        late = await attacker.post(
            "/login/totp", data={"csrf_token": csrf_token(page.text), "code": code}, follow_redirects=False
        )
        assert late.status_code == 303 and late.headers["location"] == "/login"  # the half-session is gone
        assert (await attacker.get("/api/v1/me")).status_code == 401
