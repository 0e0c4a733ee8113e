"""What every server-rendered page shares: the brand it wears, its one-shot notice, how it is rendered,
its form body."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType, ScopeType
from litestar.params import Body
from litestar.response import Template
from litestar.types import ASGIApp, Receive, Scope, Send

from andon.frontend.flash import read_flash

# A plain HTML form post; pages work without JavaScript.
Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]

_NOT_PAGES = ("/api/", "/health/", "/static/")


async def dress_page(scope: Scope) -> None:
    """Give a page request its brand (the partner whose domain this is) and the notice a redirect
    carried; API, health and static requests are not pages."""
    state = scope.setdefault("state", {})
    if scope["type"] != ScopeType.HTTP or scope["path"].startswith(_NOT_PAGES) or "brand" in state:
        return
    request: Request[Any, Any, Any] = Request(scope)
    app_state = scope["litestar_app"].state
    state["brand"] = await app_state.brand_for_host(app_state.sessionmaker, request.headers.get("host"))
    state["flash"] = read_flash(app_state.settings, request.query_params.get("flash"))
    state["mark"] = await app_state.customer_mark(app_state.sessionmaker, scope.get("user"))


class PageContextMiddleware:
    """Dresses every routed page. An unknown address never reaches route middleware, so
    ``dress_error_page`` (an after-exception hook) dresses the error page instead."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await dress_page(scope)
        await self.app(scope, receive, send)


async def dress_error_page(_: BaseException, scope: Scope) -> None:
    await dress_page(scope)


def page(template: str, *, status: int = 200, cookies: list[Cookie] | None = None, **context: Any) -> Template:
    return Template(template_name=template, context=context, status_code=status, cookies=cookies or [])
