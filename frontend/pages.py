"""What every server-rendered page shares: the brand it wears, how it is rendered, its form body."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Template

# A plain HTML form post; pages work without JavaScript.
Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


async def wear_brand(request: Request[Any, Any, Any]) -> None:
    """Before each page: the brand of the partner whose domain this is (Andon's elsewhere)."""
    async with request.app.state.sessionmaker() as session, session.begin():
        request.state.brand = await request.app.state.brand_for_host(session, request.headers.get("host"))


def page(template: str, *, status: int = 200, cookies: list[Cookie] | None = None, **context: Any) -> Template:
    return Template(template_name=template, context=context, status_code=status, cookies=cookies or [])
