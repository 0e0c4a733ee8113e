"""The portal's front door: ``/`` takes each person to their first console, or to sign in."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.response import Redirect

from andon.frontend.nav import home_for


class HomeController(Controller):
    include_in_schema = False

    @get("/", opt={"public": True})
    async def home(self, request: Request[Any, Any, Any]) -> Redirect:
        user = request.scope.get("user")
        return Redirect(home_for(user) if user is not None else "/login", status_code=303)
