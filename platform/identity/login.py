"""Local-account login: password (argon2), lockout after repeated failures, optional TOTP step."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.config.settings import Settings
from andon.platform.crypto.secretbox import SecretBox
from andon.platform.db.types import utcnow
from andon.platform.identity import totp
from andon.platform.identity.models import LoginSession, User
from andon.platform.identity.passwords import hash_password, needs_rehash, verify_password
from andon.platform.identity.repository import IdentityLookup
from andon.platform.identity.sessions import ClientInfo, open_session

GENERIC_FAILURE = "Invalid e-mail or password"
MFA_WINDOW = timedelta(minutes=5)
SSO_ONLY = "This account signs in through your organisation's identity provider; use Continue on the sign-in page"


class LoginRefused(Exception):
    """Shown to the person as it is: it never says whether the account exists."""


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    session: LoginSession
    needs_totp: bool


OTHER_PORTAL = "This account signs in at its own organisation's portal, not this one"


def signs_in_here(user: User, portal_partner_id: uuid.UUID | None) -> bool:
    """A partner's portal is for that partner's people and its customers' people; the platform's
    own host is for everyone."""
    return portal_partner_id is None or user.partner_id == portal_partner_id


class PasswordLogin:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.lookup = IdentityLookup(session)

    async def password(
        self, email: str, password: str, client: ClientInfo, *, portal_partner_id: uuid.UUID | None = None
    ) -> LoginResult:
        """``portal_partner_id``: the partner whose portal this is (None on the platform's own host);
        only its own people, and its customers' people, sign in there."""
        await self.lookup.enable()
        user = await self.lookup.user_by_email(email.strip())
        now = utcnow()
        if user is not None and user.locked_until is not None and user.locked_until > now:
            verify_password(None, password)  # same cost as a real check
            minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
            raise LoginRefused(f"Too many failed attempts: this account is locked for {minutes} more minute(s)")
        ok = verify_password(user.password_hash if user else None, password)
        if user is not None and user.idp_id is not None:
            # Linked to a provider: it alone decides (its password was cleared when it was linked).
            raise LoginRefused(SSO_ONLY)
        if user is None or not ok or user.status != "active":
            if user is not None and user.password_hash is not None:
                await self._failed(user)
            raise LoginRefused(GENERIC_FAILURE)
        if not signs_in_here(user, portal_partner_id):
            # Said only after the password matched, so it tells nobody else that the account exists.
            raise LoginRefused(OTHER_PORTAL)
        user.failed_logins = 0
        user.locked_until = None
        if user.password_hash and needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        stage = "mfa" if user.totp_enabled else "active"
        if stage == "active":
            user.last_login_at = now
        token, row = await open_session(
            self.session,
            self.settings.session,
            user,
            method="password",
            client=client,
            stage=stage,
            # Half signed in lasts minutes, not the session lifetime: long enough to type a code.
            lifetime=MFA_WINDOW if stage == "mfa" else None,
        )
        return LoginResult(token=token, session=row, needs_totp=user.totp_enabled)

    async def _failed(self, user: User) -> None:
        user.failed_logins += 1
        if user.failed_logins >= self.settings.security.lockout_threshold:
            user.locked_until = utcnow() + timedelta(minutes=self.settings.security.lockout_minutes)
            user.failed_logins = 0
        await self.session.flush()

    async def second_factor(self, user: User, pending: LoginSession, code: str, box: SecretBox) -> None:
        """Promote an "mfa" session to "active" with a valid, unused TOTP code."""
        if not user.totp_enabled or user.totp_secret_sealed is None:
            raise LoginRefused("No second factor is set up for this account")
        now = utcnow()
        if user.locked_until is not None and user.locked_until > now:
            pending.revoked_at = now
            raise LoginRefused("Too many failed attempts: this account is locked; sign in again later")
        step = totp.verify(box.open(user.totp_secret_sealed), code, last_step=user.totp_last_step)
        if step is None:
            await self._failed(user)
            if user.locked_until is not None:
                pending.revoked_at = now  # locked: this half-signed-in session is over
            raise LoginRefused("That code is not valid; use the current code from your authenticator app")
        user.totp_last_step = step
        user.failed_logins = 0
        user.last_login_at = utcnow()
        pending.stage = "active"
        await self.session.flush()
