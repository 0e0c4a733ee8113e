"""Browsers for in-process tests."""

from __future__ import annotations

import re
from typing import Any, cast

import httpx
from litestar import Litestar


def browser_on(app: Litestar, host: str) -> httpx.AsyncClient:
    """A browser on one host name. Plain httpx over ASGI, in the test's own event loop: several
    browsers share one app (and its connection pool), which Litestar's test client, running each app
    in a thread of its own with its own lifespan, does not allow."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=cast(Any, app)), base_url=f"http://{host}")


def csrf_token(page: str) -> str:
    """The CSRF token a server-rendered form carries."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page[:400]
    return match.group(1)


async def new_user_signed_in(
    app: Litestar,
    api: httpx.AsyncClient,
    *,
    users_url: str,
    key: str,
    email: str,
    role: str,
    host: str = "andon.test",
    password: str = "correct horse battery staple",  # noqa: S107 - a test account
) -> httpx.AsyncClient:
    """A browser signed in as a new user with ``role``, created through the users API at ``users_url``."""
    created = await api.post(
        users_url,
        headers={"Authorization": f"Bearer {key}"},
        json={
            "email": email,
            "display_name": email.split("@")[0].title(),
            "password": password,
            "grants": [{"role": role}],
        },
    )
    assert created.status_code == 201, created.text
    browser = browser_on(app, host)
    form = await browser.get("/login")
    signed = await browser.post(
        "/login", data={"csrf_token": csrf_token(form.text), "email": email, "password": password, "next": "/account"}
    )
    assert signed.status_code == 303, signed.text[:300]
    return browser
