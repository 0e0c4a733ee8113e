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
