"""Sign-in pages: e-mail first (home realm discovery sends people to their company's provider),
password and second factor for local accounts, the OIDC round trip, sign-out, the account page,
invitations, password reset and, in development, the mailbox.

Every page works without JavaScript: plain forms, POST-redirect-GET. Anonymous forms carry a
double-submit CSRF token (cookie + field); signed-in forms carry the session's token.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie, State
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from andon.frontend.flash import redirect_with_notice
from andon.frontend.pages import Form, page
from andon.platform.config.settings import Settings
from andon.platform.db.types import utcnow
from andon.platform.http.errors import AndonError, NotFoundError, ValidationFailedError
from andon.platform.http.params import Caller, DbSession, PathId
from andon.platform.identity import totp
from andon.platform.identity.login import OTHER_PORTAL, LoginRefused, PasswordLogin, signs_in_here
from andon.platform.identity.oidc import OidcError, end_session_url
from andon.platform.identity.repository import IdentityLookup, OutboxRepository, SessionRepository
from andon.platform.identity.service import (
    EmailBrand,
    OidcLogin,
    redeem_token,
    request_password_reset,
    safe_next,
)
from andon.platform.identity.sessions import ClientInfo, resolve_session
from andon.platform.tenancy.principal import SubjectKind
from andon.tenants.branding.service import email_brand

PRE_CSRF_COOKIE = "andon_form"
MFA_COOKIE = "andon_mfa"
FLOW_COOKIE = "andon_oidc_state"


def urlsplit_state(url: str) -> str:
    """The ``state`` parameter of the authorization URL we are about to send the browser to."""
    return parse_qs(urlsplit(url).query).get("state", [""])[0]


def _host(request: Request[Any, Any, Any]) -> str | None:
    return request.headers.get("host")


def _client(request: Request[Any, Any, Any]) -> ClientInfo:
    return ClientInfo(ip=request.client.host if request.client else None, user_agent=request.headers.get("user-agent"))


def _cookie(settings: Settings, name: str, value: str, *, max_age: int | None) -> Cookie:
    return Cookie(
        key=name, value=value, max_age=max_age, httponly=True, secure=settings.secure_cookies, samesite="lax", path="/"
    )


def _session_cookie(settings: Settings, token: str) -> Cookie:
    return _cookie(settings, settings.session.cookie_name, token, max_age=settings.session.absolute_hours * 3600)


def _expired(settings: Settings, name: str) -> Cookie:
    return _cookie(settings, name, "", max_age=0)


def _anonymous_form(
    state: State, request: Request[Any, Any, Any], template: str, *, status: int = 200, **context: Any
) -> Template:
    """A public form with its double-submit token (kept if the browser already has one)."""
    token = request.cookies.get(PRE_CSRF_COOKIE) or secrets.token_urlsafe(24)
    cookie = _cookie(state.settings, PRE_CSRF_COOKIE, token, max_age=3600)
    return page(template, status=status, cookies=[cookie], csrf_token=token, **context)


def _check_anonymous_csrf(request: Request[Any, Any, Any], form: dict[str, str]) -> None:
    cookie = request.cookies.get(PRE_CSRF_COOKIE, "")
    sent = form.get("csrf_token", "")
    if not cookie or not hmac.compare_digest(cookie, sent):
        raise AndonError("this form has expired; reload the page and try again")


class SignInController(Controller):
    tags = ["Sign-in pages"]
    include_in_schema = False

    @get("/login", opt={"public": True})
    async def login_page(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        state: State,
        next: FromQuery[str] = "/account",
        logged_out: FromQuery[bool] = False,
    ) -> Template:
        message = "You are signed out." if logged_out else None
        login = OidcLogin(db_session, state.settings, state.secretbox, state.oidc_cache)
        offered = await login.provider_for_host(_host(request))
        return _anonymous_form(
            state,
            request,
            "auth/login.html",
            next=safe_next(next),
            email="",
            show_password=False,
            message=message,
            offered=offered,
        )

    @post("/login", opt={"public": True})
    async def login_submit(
        self, request: Request[Any, Any, Any], db_session: DbSession, state: State, data: Form
    ) -> Response[Any]:
        _check_anonymous_csrf(request, data)
        email = data.get("email", "").strip()
        next_path = safe_next(data.get("next"))
        form: dict[str, Any] = {"next": next_path, "email": email}
        if "@" not in email:
            return _anonymous_form(
                state,
                request,
                "auth/login.html",
                status=422,
                show_password=False,
                error="Enter your work e-mail address",
                **form,
            )
        if "password" not in data:
            idp = await OidcLogin(db_session, state.settings, state.secretbox, state.oidc_cache).provider_for_email(
                email
            )
            if idp is not None:
                query = urlencode({"next": next_path, "login_hint": email})
                return Redirect(f"/auth/oidc/{idp.id}/start?{query}", status_code=303)
            return _anonymous_form(state, request, "auth/login.html", show_password=True, **form)
        try:
            result = await PasswordLogin(db_session, state.settings).password(
                email, data["password"], _client(request), portal_partner_id=request.state.brand.partner_id
            )
        except LoginRefused as refused:
            # Returned, not raised: the failed-attempt count must be committed for lockout to work.
            return _anonymous_form(
                state, request, "auth/login.html", status=401, show_password=True, error=str(refused), **form
            )
        if result.needs_totp:
            cookie = _cookie(state.settings, MFA_COOKIE, result.token, max_age=600)
            return Redirect("/login/totp", status_code=303, cookies=[cookie])
        return Redirect(next_path, status_code=303, cookies=[_session_cookie(state.settings, result.token)])

    @get("/login/totp", opt={"public": True})
    async def totp_page(self, request: Request[Any, Any, Any], state: State) -> Template:
        return _anonymous_form(state, request, "auth/totp.html")

    @post("/login/totp", opt={"public": True})
    async def totp_submit(
        self, request: Request[Any, Any, Any], db_session: DbSession, state: State, data: Form
    ) -> Response[Any]:
        _check_anonymous_csrf(request, data)
        pending_token = request.cookies.get(MFA_COOKIE, "")
        found = (
            await resolve_session(db_session, state.settings.session, pending_token, stage="mfa")
            if pending_token
            else None
        )
        if found is None:
            return Redirect("/login", status_code=303)
        user, pending = found
        try:
            await PasswordLogin(db_session, state.settings).second_factor(
                user, pending, data.get("code", ""), state.secretbox
            )
        except LoginRefused as refused:
            return _anonymous_form(state, request, "auth/totp.html", status=401, error=str(refused))
        return Redirect(
            "/account",
            status_code=303,
            cookies=[
                _session_cookie(state.settings, pending_token),
                _expired(state.settings, MFA_COOKIE),
            ],
        )

    @get("/auth/oidc/{idp_id:uuid}/start", opt={"public": True})
    async def oidc_start(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        state: State,
        idp_id: PathId,
        next: FromQuery[str] = "/account",
        login_hint: FromQuery[str | None] = None,
    ) -> Response[Any]:
        login = OidcLogin(db_session, state.settings, state.secretbox, state.oidc_cache)
        try:
            url = await login.start(idp_id, next_path=next, host=_host(request), login_hint=login_hint)
        except OidcError as exc:
            return page("auth/message.html", status=502, heading="Sign-in is unavailable", text=str(exc), error=True)
        state_cookie = _cookie(state.settings, FLOW_COOKIE, urlsplit_state(url), max_age=600)
        return Redirect(url, status_code=303, cookies=[state_cookie])

    @get("/auth/oidc/callback", opt={"public": True})
    async def oidc_callback(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        state: State,
        code: FromQuery[str | None] = None,
        error: FromQuery[str | None] = None,
        error_description: FromQuery[str | None] = None,
    ) -> Response[Any]:
        query_state = request.query_params.get("state")
        if error or not code or not query_state:
            text = error_description or error or "the identity provider sent no authorization code"
            return page("auth/message.html", status=400, heading="Sign-in failed", text=text, error=True)
        started_here = request.cookies.get(FLOW_COOKIE, "")
        if not hmac.compare_digest(started_here, query_state):
            # Without this, someone could finish their own sign-in in your browser (login CSRF).
            return page(
                "auth/message.html",
                status=400,
                heading="Sign-in failed",
                error=True,
                text="this sign-in was started in another browser or has expired; start again",
            )
        login = OidcLogin(db_session, state.settings, state.secretbox, state.oidc_cache)
        try:
            signed_in = await login.callback(state=query_state, code=code, client=_client(request))
        except OidcError as exc:
            # The flow was marked used; that is committed, so a replayed callback fails the same way.
            return page("auth/message.html", status=400, heading="Sign-in failed", text=str(exc), error=True)
        if not signs_in_here(signed_in.user, request.state.brand.partner_id):
            return page("auth/message.html", status=403, heading="Sign-in failed", text=OTHER_PORTAL, error=True)
        return Redirect(
            signed_in.redirect_to,
            status_code=303,
            cookies=[_session_cookie(state.settings, signed_in.token), _expired(state.settings, FLOW_COOKIE)],
        )

    @post("/logout", opt={"authenticated": True})
    async def logout(
        self, request: Request[Any, Any, Any], db_session: DbSession, principal: Caller, state: State
    ) -> Response[Any]:
        """End this session; for a provider sign-in, also end the provider's (RP-initiated logout)."""
        settings = state.settings
        target = "/login?logged_out=true"
        if principal.subject_id is not None and principal.session_id is not None:
            sessions = SessionRepository(db_session, principal.subject_id)
            current = next((s for s in await sessions.active(utcnow()) if s.id == principal.session_id), None)
            await sessions.revoke(utcnow(), only=principal.session_id)
            if current is not None and current.idp_id is not None:
                target = await self._provider_logout(
                    db_session, state, current.idp_id, current.id_token, _host(request), target
                )
        return Redirect(target, status_code=303, cookies=[_expired(settings, settings.session.cookie_name)])

    @staticmethod
    async def _provider_logout(
        db_session: DbSession, state: State, idp_id: Any, id_token: str | None, host: str | None, fallback: str
    ) -> str:
        lookup = IdentityLookup(db_session)
        await lookup.enable()
        idp = await lookup.idp(idp_id)
        if idp is None:
            return fallback
        login = OidcLogin(db_session, state.settings, state.secretbox, state.oidc_cache)
        try:
            url = await end_session_url(
                state.oidc_cache,
                idp.issuer,
                id_token_hint=id_token,
                client_id=idp.client_id,
                post_logout_redirect_uri=login.origin(idp, host) + fallback,
            )
        except OidcError:
            return fallback  # the provider is unreachable: our session is over regardless
        return url or fallback


class AccountPageController(Controller):
    tags = ["Account pages"]
    include_in_schema = False

    async def _context(self, db_session: DbSession, principal: Caller) -> dict[str, Any]:
        if principal.subject_kind is not SubjectKind.USER or principal.subject_id is None:
            raise AndonError("the account page is for people; API keys have none")
        lookup = IdentityLookup(db_session)
        user = await lookup.user(principal.subject_id)
        if user is None:
            raise NotFoundError("account not found")
        return {
            "user": user,
            "principal": principal,
            "grants": await lookup.grants(user.id),
            "sessions": await SessionRepository(db_session, user.id).active(utcnow()),
        }

    @get("/account", opt={"authenticated": True})
    async def account(self, db_session: DbSession, principal: Caller) -> Template:
        return page("auth/account.html", **await self._context(db_session, principal))

    @post("/account/sessions/revoke-all", opt={"authenticated": True})
    async def revoke_all(self, db_session: DbSession, principal: Caller, state: State) -> Redirect:
        assert principal.subject_id is not None
        count = await SessionRepository(db_session, principal.subject_id).revoke(utcnow(), keep=principal.session_id)
        return redirect_with_notice(state.settings, "/account", f"Signed out of {count} other session(s).")

    @post("/account/totp/start", opt={"authenticated": True})
    async def totp_start(self, db_session: DbSession, principal: Caller, state: State) -> Template:
        context = await self._context(db_session, principal)
        user = context["user"]
        if user.totp_enabled:
            # Replacing an active second factor would quietly switch it off: refuse instead.
            return page("auth/account.html", status=409, error="Two-step verification is already on.", **context)
        secret = totp.new_secret()
        user.totp_secret_sealed = state.secretbox.seal(secret)
        user.totp_enabled = False
        return page(
            "auth/account.html",
            totp_secret=secret,
            totp_uri=totp.provisioning_uri(secret, email=user.email, issuer="Andon"),
            **context,
        )

    @post("/account/totp/confirm", opt={"authenticated": True})
    async def totp_confirm(self, db_session: DbSession, principal: Caller, state: State, data: Form) -> Response[Any]:
        context = await self._context(db_session, principal)
        user = context["user"]
        if user.totp_secret_sealed is None:
            return Redirect("/account", status_code=303)
        secret = state.secretbox.open(user.totp_secret_sealed)
        step = totp.verify(secret, data.get("code", ""), last_step=None)
        if step is None:
            return page(
                "auth/account.html",
                status=422,
                totp_secret=secret,
                totp_uri=totp.provisioning_uri(secret, email=user.email, issuer="Andon"),
                error="That code did not match; check your device's clock and try the current code.",
                **context,
            )
        user.totp_enabled = True
        user.totp_last_step = step
        return redirect_with_notice(state.settings, "/account", "Two-step verification is on.")


class TokenPagesController(Controller):
    """Invitations and password resets: single-use links that set a password."""

    tags = ["Account pages"]
    include_in_schema = False

    @get(["/invitations/{token:str}", "/password-reset/{token:str}"], opt={"public": True})
    async def set_password_page(self, request: Request[Any, Any, Any], state: State, token: FromPath[str]) -> Template:
        heading = (
            "Welcome: choose your password" if request.url.path.startswith("/invitations") else "Choose a new password"
        )
        return _anonymous_form(
            state,
            request,
            "auth/set_password.html",
            heading=heading,
            min_length=state.settings.security.min_password_length,
        )

    @post(["/invitations/{token:str}", "/password-reset/{token:str}"], opt={"public": True})
    async def set_password(
        self, request: Request[Any, Any, Any], db_session: DbSession, state: State, token: FromPath[str], data: Form
    ) -> Response[Any]:
        _check_anonymous_csrf(request, data)
        purpose = "invite" if request.url.path.startswith("/invitations") else "reset"
        try:
            await redeem_token(db_session, state.settings, purpose, token, data.get("password", ""))
        except ValidationFailedError as exc:
            heading = "Welcome: choose your password" if purpose == "invite" else "Choose a new password"
            return _anonymous_form(
                state,
                request,
                "auth/set_password.html",
                status=422,
                heading=heading,
                error=exc.detail,
                min_length=state.settings.security.min_password_length,
            )
        return Redirect("/login?next=/account", status_code=303)

    @get("/password-reset", opt={"public": True})
    async def reset_page(self, request: Request[Any, Any, Any], state: State) -> Template:
        return _anonymous_form(state, request, "auth/reset_request.html")

    @post("/password-reset", opt={"public": True})
    async def reset_submit(
        self, request: Request[Any, Any, Any], db_session: DbSession, state: State, data: Form
    ) -> Template:
        _check_anonymous_csrf(request, data)

        async def brand_of(partner_id: uuid.UUID | None) -> EmailBrand | None:
            # The person's own partner speaks, with a link to its own portal, whichever portal the
            # request came through (and never to an unknown Host header).
            return await email_brand(db_session, partner_id, state.settings)

        await request_password_reset(db_session, state.settings, data.get("email", ""), brand_of)
        return _anonymous_form(
            state,
            request,
            "auth/reset_request.html",
            message="If that address has an account here, a reset link is on its way.",
        )

    @get("/dev/mailbox", opt={"public": True})
    async def mailbox(self, db_session: DbSession, state: State) -> Template:
        if not state.settings.dev_mailbox:
            raise NotFoundError("not found")
        await IdentityLookup(db_session).enable()
        return page("auth/mailbox.html", emails=await OutboxRepository(db_session).recent())
