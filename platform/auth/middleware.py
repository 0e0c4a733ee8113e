"""Authentication: ``Authorization: Bearer <api key>`` becomes a Principal on the connection.

No header means an anonymous connection. A header that is present but wrong leaves the connection
anonymous with the reason in ``scope["auth"]``; the permission guard then refuses every route that is
not public with that reason (one message for all key failures, so nothing is revealed). Refusing in
the guard, not here, keeps the refusal inside the route's error handling and request logging.

A key once verified is trusted for ``security.api_key_cache_seconds`` by this process (see
``verified.py``): a gateway sending hundreds of events a second costs one lookup every few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from andon.platform.auth.keys import hash_key, matches, split_key
from andon.platform.auth.repository import ApiKeyLookup
from andon.platform.auth.verified import VerifiedKeys
from andon.platform.db.types import utcnow
from andon.platform.identity.login import OTHER_PORTAL, signs_in_here
from andon.platform.identity.oidc import OidcError, unverified_target, validate_access_token
from andon.platform.identity.principals import principal_at_node, principal_for_user
from andon.platform.identity.repository import IdentityLookup
from andon.platform.identity.sessions import resolve_session
from andon.platform.tenancy.principal import SubjectKind

INVALID = "invalid, expired or revoked API key"
SESSION_ENDED = "your session has ended; sign in again"
JWT_REFUSED = "this token is not from an identity provider that grants machine access here"
SUSPENDED = "your organisation's account is suspended; contact your service partner"


@dataclass(frozen=True, slots=True)
class AuthFailure:
    reason: str


class AuthenticationMiddleware(AbstractAuthenticationMiddleware):
    """Machines send ``Authorization: Bearer``; browsers carry the session cookie."""

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:  # type: ignore[type-arg]
        header = connection.headers.get("authorization")
        if not header:
            cookie = connection.cookies.get(connection.app.state.settings.session.cookie_name)
            if cookie:
                return await self._from_session(connection, cookie)
            return AuthenticationResult(user=None, auth=None)
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return AuthenticationResult(user=None, auth=AuthFailure("use 'Authorization: Bearer <API key>'"))
        prefix = split_key(token)
        if prefix is None:
            if token.count(".") == 2:
                return await self._from_jwt(connection, token)
            return AuthenticationResult(user=None, auth=AuthFailure(INVALID))
        app_state = connection.app.state
        now = utcnow()
        verified: VerifiedKeys = app_state.verified_keys
        digest = hash_key(token)
        hit = verified.get(digest, now)
        if hit is None:
            async with verified.refreshing(digest):
                hit = verified.get(digest, now)
                if hit is None:
                    return await self._from_api_key(connection, token, prefix, digest)
        return AuthenticationResult(user=hit.principal, auth=hit.prefix)

    async def _from_api_key(
        self,
        connection: ASGIConnection,  # type: ignore[type-arg]
        token: str,
        prefix: str,
        digest: str,
    ) -> AuthenticationResult:
        app_state = connection.app.state
        now = utcnow()
        async with app_state.sessionmaker() as session, session.begin():
            lookup = ApiKeyLookup(session)
            key = await lookup.by_prefix(prefix)
            if (
                key is None
                or not matches(token, key.key_hash)
                or key.revoked_at is not None
                or (key.expires_at is not None and key.expires_at <= now)
            ):
                return AuthenticationResult(user=None, auth=AuthFailure(INVALID))
            touch_every = timedelta(seconds=app_state.settings.security.api_key_touch_seconds)
            if key.last_used_at is None or now - key.last_used_at >= touch_every:
                await lookup.touch(key.id, now)
            principal = principal_at_node(
                key, key.roles, kind=SubjectKind.API_KEY, subject_id=key.id, label=f"api key {key.prefix} ({key.name})"
            )
            if not await app_state.org_active(session, principal):
                return AuthenticationResult(user=None, auth=AuthFailure(SUSPENDED))
        app_state.verified_keys.put(digest, principal, key.prefix, key.expires_at)
        return AuthenticationResult(user=principal, auth=key.prefix)

    async def _from_jwt(self, connection: ASGIConnection, token: str) -> AuthenticationResult:  # type: ignore[type-arg]
        """A client-credential JWT from an organisation's own identity provider (machine access)."""
        app_state = connection.app.state
        target = unverified_target(token)
        async with app_state.sessionmaker() as session, session.begin():
            lookup = IdentityLookup(session)
            await lookup.enable()
            idp = await lookup.idp_for_machines(*target) if target else None
            if idp is None or idp.api_audience is None:
                return AuthenticationResult(user=None, auth=AuthFailure(JWT_REFUSED))
            try:
                claims = await validate_access_token(app_state.oidc_cache, idp.issuer, token, audience=idp.api_audience)
            except OidcError as exc:
                return AuthenticationResult(user=None, auth=AuthFailure(str(exc)))
            # Only the client_id claim names a machine client; "sub" may name a person and is never mapped.
            client_id = str(claims.get("client_id") or "")
            roles = idp.machine_clients.get(client_id)
            if roles is None:
                return AuthenticationResult(user=None, auth=AuthFailure(f"client '{client_id}' has no access here"))
            principal = principal_at_node(
                idp, roles, kind=SubjectKind.SERVICE, subject_id=idp.id, label=f"service {client_id} via {idp.name}"
            )
            if not await app_state.org_active(session, principal):
                return AuthenticationResult(user=None, auth=AuthFailure(SUSPENDED))
        return AuthenticationResult(user=principal, auth=client_id)

    async def _from_session(self, connection: ASGIConnection, token: str) -> AuthenticationResult:  # type: ignore[type-arg]
        app_state = connection.app.state
        async with app_state.sessionmaker() as session, session.begin():
            found = await resolve_session(session, app_state.settings.session, token)
            if found is None:
                return AuthenticationResult(user=None, auth=AuthFailure(SESSION_ENDED))
            user, login = found
            principal = principal_for_user(user, await IdentityLookup(session).grants(user.id), login)
            if not await app_state.org_active(session, principal):
                return AuthenticationResult(user=None, auth=AuthFailure(SUSPENDED))
        # Cookies are per host, so this holds anyway unless a session cookie is carried to another
        # partner's portal by hand; a session is good only on its own partner's portal.
        brand = await app_state.brand_for_host(app_state.sessionmaker, connection.headers.get("host"))
        if not signs_in_here(user, brand.partner_id):
            return AuthenticationResult(user=None, auth=AuthFailure(OTHER_PORTAL))
        return AuthenticationResult(user=principal, auth=None)
