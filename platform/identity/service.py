"""Identity rules: users and their grants at an org node, identity providers, OIDC sign-in with
just-in-time provisioning and group mapping, invitations and password resets, own sessions."""

from __future__ import annotations

import builtins
import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.audit.service import record
from andon.platform.audit.snapshot import snapshot
from andon.platform.auth.keys import hash_key
from andon.platform.auth.rbac import ALL_PERMISSIONS, ROLES, UnknownRoleError, check_grantable, site_grantable
from andon.platform.config.settings import Settings
from andon.platform.crypto.secretbox import SecretBox
from andon.platform.db.scope import apply_principal_scope
from andon.platform.db.types import utcnow
from andon.platform.http.errors import ConflictError, NotFoundError, ValidationFailedError, field_error
from andon.platform.identity import oidc
from andon.platform.identity.models import IdentityProvider, LoginFlow, OneTimeToken, OutboundEmail, RoleGrant, User
from andon.platform.identity.passwords import hash_password, password_problems
from andon.platform.identity.repository import (
    IdentityLookup,
    IdentityProviderRepository,
    OutboxRepository,
    SessionRepository,
    UserRepository,
)
from andon.platform.identity.schemas import (
    GrantIn,
    IdentityProviderCreate,
    IdentityProviderUpdate,
    UserCreate,
    UserUpdate,
)
from andon.platform.identity.sessions import ClientInfo, open_session
from andon.platform.tenancy.context import TenantContext, TenantId
from andon.platform.tenancy.node import OrgNode
from andon.platform.tenancy.principal import OrgKind, Principal, SubjectKind

INVITATION_DAYS = 7
RESET_HOURS = 1
FLOW_MINUTES = 10
CALLBACK_PATH = "/auth/oidc/callback"


def _check_roles(roles: Sequence[str], kind: OrgKind, granter: frozenset[str], field: str) -> None:
    try:
        check_grantable(list(roles), kind, granter)
    except UnknownRoleError as exc:
        raise field_error(field, str(exc)) from None


class UserAdmin:
    """Users of one org node, managed by someone who reaches it."""

    def __init__(
        self,
        session: AsyncSession,
        principal: Principal,
        node: OrgNode,
        settings: Settings,
        brand: EmailBrand | None = None,
    ) -> None:
        self.session = session
        self.principal = principal
        self.node = node
        self.settings = settings
        self.brand = brand
        self.repo = UserRepository(session, node.owns(User.org_kind, User.partner_id, User.tenant_id))

    async def _audit(self, action: str, target: uuid.UUID, **changes: Any) -> None:
        await record(
            self.session,
            self.principal,
            action,
            target_type="user",
            target_id=target,
            tenant=self.node.tenant,
            partner_id=self.node.partner_id,
            **changes,
        )

    async def get(self, user_id: uuid.UUID) -> User:
        user = await self.repo.get(user_id)
        if user is None:
            raise NotFoundError(f"user {user_id} not found")
        return user

    async def grants(self, user_id: uuid.UUID) -> Sequence[RoleGrant]:
        return await self.repo.grants(user_id)

    async def list(self, *, limit: int, offset: int, q: str | None) -> tuple[Sequence[User], int]:
        return await self.repo.list(limit=limit, offset=offset, q=q)

    def _granter(self) -> frozenset[str]:
        return ALL_PERMISSIONS if self.node.is_below(self.principal) else self.principal.permissions

    def _grant_rows(
        self, user_id: uuid.UUID, grants: Sequence[GrantIn], site_ids: set[uuid.UUID], source: str = "manual"
    ) -> builtins.list[RoleGrant]:
        _check_roles([g.role for g in grants], self.node.kind, self._granter(), "grants")
        scoped = [g for g in grants if g.site_id is not None]
        if scoped and len(scoped) != len(grants):
            raise field_error(
                "grants", "a person's roles are either for the whole customer or for chosen sites, not both"
            )
        for g in scoped:
            if not site_grantable(g.role):
                raise field_error(
                    "grants", f"role '{g.role}' acts on the whole customer and cannot be limited to a site"
                )
        rows: builtins.list[RoleGrant] = []
        for g in grants:
            if g.site_id is not None:
                if self.node.kind is not OrgKind.CUSTOMER or g.site_id not in site_ids:
                    raise field_error("grants", f"site {g.site_id} is not a site of this customer")
                rows.append(
                    RoleGrant(user_id=user_id, role=g.role, scope_kind="site", scope_id=g.site_id, source=source)
                )
            else:
                scope_id = self.node.tenant_id if self.node.kind is OrgKind.CUSTOMER else self.node.partner_id
                rows.append(
                    RoleGrant(
                        user_id=user_id, role=g.role, scope_kind=self.node.kind.value, scope_id=scope_id, source=source
                    )
                )
        return rows

    async def create(self, data: UserCreate, *, site_ids: set[uuid.UUID]) -> tuple[User, str | None]:
        """Returns the user and, for an invitation, the single-use token (also e-mailed)."""
        email = data.email.strip().lower()
        if await self.repo.email_taken(email):
            raise ConflictError(
                f"a user with e-mail {email} already exists",
                extra={"errors": [{"field": "email", "message": "already in use"}]},
            )
        if (
            data.password is not None
            and self.node.is_below(self.principal)
            and self.principal.subject_kind is not SubjectKind.SYSTEM
        ):
            # Someone from the organisation above may invite people, never know their password.
            raise field_error("password", "people you add to another organisation are invited: leave the password out")
        if data.password is not None:
            problems = password_problems(
                data.password, email=email, min_length=self.settings.security.min_password_length
            )
            if problems:
                raise field_error("password", "; ".join(problems))
        user = await self.repo.add(
            User(
                email=email,
                display_name=data.display_name,
                org_kind=self.node.kind.value,
                partner_id=self.node.partner_id,
                tenant_id=self.node.tenant_id,
                status="active" if data.password else "invited",
                password_hash=hash_password(data.password) if data.password else None,
            )
        )
        rows = self._grant_rows(user.id, data.grants, site_ids)
        await self.repo.replace_grants(user.id, rows, source="manual")
        await self._audit("user.created", user.id, after={**snapshot(user), "grants": [_grant_dict(g) for g in rows]})
        token = None
        if data.password is None:
            token = await issue_token(self.session, user, "invite", timedelta(days=INVITATION_DAYS))
            await send_email(self.session, self.settings, user, "invite", token, self.brand)
        return user, token

    async def update(self, user_id: uuid.UUID, data: UserUpdate) -> User:
        user = await self.get(user_id)
        before = snapshot(user)
        for name in data.__struct_fields__:
            value = getattr(data, name)
            if value is not msgspec.UNSET:
                setattr(user, name, value)
        if user.status == "disabled":
            await SessionRepository(self.session, user.id).revoke(utcnow())
        await self.session.flush()
        await self._audit("user.updated", user.id, before=before, after=snapshot(user))
        return user

    async def replace_grants(self, user_id: uuid.UUID, grants: Sequence[GrantIn], *, site_ids: set[uuid.UUID]) -> None:
        user = await self.get(user_id)
        before = [_grant_dict(g) for g in await self.repo.grants(user.id)]
        rows = self._grant_rows(user.id, grants, site_ids)
        await self.repo.replace_grants(user.id, rows, source="manual")
        await self._audit(
            "user.grants_changed", user.id, before={"grants": before}, after={"grants": [_grant_dict(g) for g in rows]}
        )

    async def delete(self, user_id: uuid.UUID) -> None:
        user = await self.get(user_id)
        before = snapshot(user)
        await self.repo.delete(user)
        await self._audit("user.deleted", user_id, before=before)


def _grant_dict(g: RoleGrant) -> dict[str, Any]:
    return {
        "role": g.role,
        "scope_kind": g.scope_kind,
        "scope_id": str(g.scope_id) if g.scope_id else None,
        "source": g.source,
    }


async def issue_token(session: AsyncSession, user: User, purpose: str, ttl: timedelta) -> str:
    token = secrets.token_urlsafe(32)
    await IdentityLookup(session).add(
        OneTimeToken(purpose=purpose, token_hash=hash_key(token), user_id=user.id, expires_at=utcnow() + ttl)
    )
    return token


@dataclass(frozen=True, slots=True)
class EmailBrand:
    """Whose name the e-mail speaks in and where its links point: a partner's product on its own
    portal host, or Andon on the platform's base URL."""

    product_name: str
    base_url: str


_EMAILS = {
    "invite": (
        "You are invited to {product}",
        "/invitations/{token}",
        "{name}, you have been invited. Set your password within 7 days:\n\n{link}\n",
    ),
    "reset": (
        "Reset your {product} password",
        "/password-reset/{token}",
        "{name}, someone asked to reset your password. If it was you, use this link within an hour:\n\n{link}\n"
        "If not, ignore this e-mail; your password stays as it is.\n",
    ),
}


async def send_email(
    session: AsyncSession, settings: Settings, user: User, kind: str, token: str, brand: EmailBrand | None = None
) -> None:
    """Queue the e-mail in the outbox, in the same transaction as the token it carries."""
    brand = brand or EmailBrand("Andon", settings.http.base_url)
    subject, path, body = _EMAILS[kind]
    subject = subject.format(product=brand.product_name)
    link = brand.base_url.rstrip("/") + path.format(token=token)
    await OutboxRepository(session).add(
        OutboundEmail(
            tenant_id=user.tenant_id,
            partner_id=user.partner_id,
            to_address=user.email,
            subject=subject,
            body_text=body.format(name=user.display_name, link=link) + f"\n-- \n{brand.product_name}\n",
            meta={"kind": kind, "link": link, "brand": brand.product_name},
        )
    )


async def redeem_token(session: AsyncSession, settings: Settings, purpose: str, token: str, password: str) -> User:
    """Set a password with an invitation or reset token: single use, expiring; activates the user."""
    lookup = IdentityLookup(session)
    await lookup.enable()
    row = await lookup.token(purpose, hash_key(token))
    now = utcnow()
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise ValidationFailedError("This link is invalid, already used or expired; ask for a new one")
    user = await lookup.user(row.user_id)
    if user is None or user.status == "disabled":
        raise ValidationFailedError("This link is invalid, already used or expired; ask for a new one")
    problems = password_problems(password, email=user.email, min_length=settings.security.min_password_length)
    if problems:
        raise field_error("password", "; ".join(problems))
    row.used_at = now
    user.password_hash = hash_password(password)
    user.status = "active"
    user.failed_logins = 0
    user.locked_until = None
    await SessionRepository(session, user.id).revoke(now)
    await session.flush()
    return user


async def request_password_reset(
    session: AsyncSession,
    settings: Settings,
    email: str,
    brand_of: Callable[[uuid.UUID | None], Awaitable[EmailBrand | None]],
) -> None:
    """Always looks the same to the caller; only a local account that exists gets an e-mail, in the
    brand ``brand_of`` gives for the account's partner."""
    lookup = IdentityLookup(session)
    await lookup.enable()
    user = await lookup.user_by_email(email.strip())
    if user is not None and user.status == "active" and user.idp_id is None:
        token = await issue_token(session, user, "reset", timedelta(hours=RESET_HOURS))
        await send_email(session, settings, user, "reset", token, await brand_of(user.partner_id))


class IdpAdmin:
    """An org node's identity providers. The client secret is sealed at rest and never returned."""

    def __init__(self, session: AsyncSession, principal: Principal, node: OrgNode, box: SecretBox) -> None:
        self.session = session
        self.principal = principal
        self.node = node
        self.box = box
        self.repo = IdentityProviderRepository(
            session, node.owns(IdentityProvider.org_kind, IdentityProvider.partner_id, IdentityProvider.tenant_id)
        )

    def _check(
        self, group_roles: dict[str, list[str]], default_roles: list[str], machine_clients: dict[str, list[str]]
    ) -> None:
        granter = ALL_PERMISSIONS if self.node.is_below(self.principal) else self.principal.permissions
        for group, roles in group_roles.items():
            _check_roles(roles, self.node.kind, granter, f"group_roles.{group}")
        _check_roles(default_roles, self.node.kind, granter, "default_roles")
        for client, roles in machine_clients.items():
            _check_roles(roles, self.node.kind, granter, f"machine_clients.{client}")

    async def _audit(self, action: str, idp: IdentityProvider, before: dict[str, Any] | None = None) -> None:
        after = {k: v for k, v in snapshot(idp).items() if k != "client_secret_sealed"}
        if before is not None:
            before = {k: v for k, v in before.items() if k != "client_secret_sealed"}
        await record(
            self.session,
            self.principal,
            action,
            target_type="identity_provider",
            target_id=idp.id,
            before=before,
            after=after,
            tenant=self.node.tenant,
            partner_id=self.node.partner_id,
        )

    async def get(self, idp_id: uuid.UUID) -> IdentityProvider:
        idp = await self.repo.get(idp_id)
        if idp is None:
            raise NotFoundError(f"identity provider {idp_id} not found")
        return idp

    async def list(self) -> Sequence[IdentityProvider]:
        return await self.repo.list()

    async def _claims_free(
        self,
        idp_id: uuid.UUID | None,
        domains: Sequence[str],
        hosts: Sequence[str],
        issuer: str,
        api_audience: str | None,
    ) -> None:
        """E-mail domains, host names and a machine (issuer, audience) pair belong to one organisation:
        otherwise one organisation's provider could sign in another's people or machines."""
        clashes = await IdentityLookup(self.session).claims_elsewhere(
            idp_id, domains=domains, hosts=hosts, issuer=issuer, api_audience=api_audience
        )
        if clashes:
            raise ConflictError(
                "already claimed by another organisation's identity provider: " + ", ".join(clashes),
                extra={"errors": [{"field": "email_domains/hosts/api_audience", "message": c} for c in clashes]},
            )

    async def create(self, data: IdentityProviderCreate) -> IdentityProvider:
        self._check(data.group_roles, data.default_roles, data.machine_clients)
        domains, hosts = sorted({d.lower() for d in data.email_domains}), sorted({h.lower() for h in data.hosts})
        await self._claims_free(None, domains, hosts, data.issuer, data.api_audience)
        idp = await self.repo.add(
            IdentityProvider(
                org_kind=self.node.kind.value,
                partner_id=self.node.partner_id,
                tenant_id=self.node.tenant_id,
                name=data.name,
                # Kept exactly as given: discovery must name the very same issuer, trailing slash and all.
                issuer=data.issuer,
                client_id=data.client_id,
                client_secret_sealed=self.box.seal(data.client_secret),
                scopes=data.scopes,
                email_domains=domains,
                hosts=hosts,
                claim_mapping=data.claim_mapping,
                group_roles=data.group_roles,
                default_roles=data.default_roles,
                api_audience=data.api_audience,
                machine_clients=data.machine_clients,
                enabled=True,
            )
        )
        await self._audit("identity_provider.created", idp)
        return idp

    async def update(self, idp_id: uuid.UUID, data: IdentityProviderUpdate) -> IdentityProvider:
        idp = await self.get(idp_id)
        before = snapshot(idp)
        sent = {n: getattr(data, n) for n in data.__struct_fields__ if getattr(data, n) is not msgspec.UNSET}
        self._check(
            sent.get("group_roles", idp.group_roles),
            sent.get("default_roles", idp.default_roles),
            sent.get("machine_clients", idp.machine_clients),
        )
        if "client_secret" in sent:
            idp.client_secret_sealed = self.box.seal(sent.pop("client_secret"))
        for name in ("email_domains", "hosts"):
            if name in sent:
                sent[name] = sorted({v.lower() for v in sent[name]})
        await self._claims_free(
            idp.id,
            sent.get("email_domains", idp.email_domains),
            sent.get("hosts", idp.hosts),
            idp.issuer,
            sent.get("api_audience", idp.api_audience),
        )
        for name, value in sent.items():
            setattr(idp, name, value)
        if sent.get("enabled") is False:
            await IdentityLookup(self.session).end_provider_access(idp.id, utcnow())
        await self.session.flush()
        await self._audit("identity_provider.updated", idp, before)
        return idp

    async def delete(self, idp_id: uuid.UUID) -> None:
        idp = await self.get(idp_id)
        await self._audit("identity_provider.deleted", idp, snapshot(idp))
        await IdentityLookup(self.session).end_provider_access(idp.id, utcnow())
        await self.repo.delete(idp)


@dataclass(frozen=True, slots=True)
class SignIn:
    user: User
    token: str
    redirect_to: str


def safe_next(target: str | None) -> str:
    """Only local paths: an open redirect after login is a phishing tool."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/account"
    return target


class OidcLogin:
    def __init__(
        self, session: AsyncSession, settings: Settings, box: SecretBox, cache: oidc.OidcMetadataCache
    ) -> None:
        self.session = session
        self.settings = settings
        self.box = box
        self.cache = cache
        self.lookup = IdentityLookup(session)

    def origin(self, idp: IdentityProvider, host: str | None) -> str:
        """The host the person is on when it is one of the provider's hosts (so the session cookie lands
        there and they come back there), otherwise the platform's own base URL."""
        if host and host.lower() in idp.hosts:
            scheme = "https" if self.settings.secure_cookies else "http"
            return f"{scheme}://{host.lower()}"
        return self.settings.http.base_url.rstrip("/")

    def redirect_uri(self, idp: IdentityProvider, host: str | None) -> str:
        return self.origin(idp, host) + CALLBACK_PATH

    def _provider(self, idp: IdentityProvider) -> oidc.ProviderConfig:
        return oidc.ProviderConfig(idp.issuer, idp.client_id, self.box.open(idp.client_secret_sealed), idp.scopes)

    async def provider_for_email(self, email: str) -> IdentityProvider | None:
        """Home realm discovery: the enabled provider that claims the e-mail's domain."""
        await self.lookup.enable()
        domain = email.strip().lower().rsplit("@", 1)[-1]
        for idp in await self.lookup.idps():
            if domain in idp.email_domains:
                return idp
        return None

    async def provider_for_host(self, host: str | None) -> IdentityProvider | None:
        """The provider an organisation's own portal host offers first, if any."""
        if not host:
            return None
        await self.lookup.enable()
        for idp in await self.lookup.idps():
            if host.lower() in idp.hosts:
                return idp
        return None

    async def start(
        self, idp_id: uuid.UUID, *, next_path: str | None, host: str | None = None, login_hint: str | None = None
    ) -> str:
        await self.lookup.enable()
        idp = await self.lookup.idp(idp_id)
        if idp is None:
            raise NotFoundError("that sign-in option does not exist")
        flow = LoginFlow(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(48),
            idp_id=idp.id,
            redirect_to=safe_next(next_path),
            redirect_uri=self.redirect_uri(idp, host),
            expires_at=utcnow() + timedelta(minutes=FLOW_MINUTES),
        )
        await self.lookup.add(flow)
        return await oidc.authorization_url(
            self.cache,
            self._provider(idp),
            redirect_uri=flow.redirect_uri,
            state=flow.state,
            nonce=flow.nonce,
            code_verifier=flow.code_verifier,
            login_hint=login_hint,
        )

    async def callback(self, *, state: str, code: str, client: ClientInfo) -> SignIn:
        """Validate everything, then find or create the user and open a session.

        Nothing is created unless the whole exchange checks out; a flow is single use.
        """
        await self.lookup.enable()
        flow = await self.lookup.flow_by_state(state)
        if flow is None or flow.used_at is not None or flow.expires_at <= utcnow():
            raise oidc.OidcError("this sign-in attempt is unknown, already used or expired; start again")
        flow.used_at = utcnow()
        await self.session.flush()
        idp = await self.lookup.idp(flow.idp_id)
        if idp is None:
            raise oidc.OidcError("that sign-in option no longer exists")
        provider = self._provider(idp)
        token = await oidc.exchange_code(
            self.cache, provider, redirect_uri=flow.redirect_uri, code=code, code_verifier=flow.code_verifier
        )
        claims = await oidc.validate_id_token(self.cache, provider, token["id_token"], nonce=flow.nonce)
        user = await self._provision(idp, claims)
        session_token, _ = await open_session(
            self.session,
            self.settings.session,
            user,
            method="oidc",
            client=client,
            idp_id=idp.id,
            id_token=token["id_token"],
        )
        return SignIn(user=user, token=session_token, redirect_to=flow.redirect_to)

    async def _provision(self, idp: IdentityProvider, claims: dict[str, Any]) -> User:
        mapping = {"email": "email", "name": "name", "groups": "groups", **idp.claim_mapping}
        email = claims.get(mapping["email"])
        if not isinstance(email, str) or "@" not in email:
            raise oidc.OidcError("the provider did not say who you are (no e-mail claim)")
        if claims.get("email_verified") is not True:
            raise oidc.OidcError("the provider does not vouch for this e-mail address (email_verified)")
        email = email.lower()
        name = claims.get(mapping["name"]) if isinstance(claims.get(mapping["name"]), str) else email
        groups_claim = claims.get(mapping["groups"], [])
        groups = [g for g in groups_claim if isinstance(g, str)] if isinstance(groups_claim, list) else []
        subject = str(claims["sub"])
        user = await self.lookup.user_by_subject(idp.id, subject)
        if user is None:
            existing = await self.lookup.user_by_email(email)
            if existing is not None:
                if existing.idp_id not in (None, idp.id) or not _same_org(existing, idp):
                    raise oidc.OidcError("this e-mail belongs to an account of another organisation")
                user = existing
                user.idp_id, user.idp_subject = idp.id, subject
                # From now on this person signs in only through the provider: a password kept beside
                # it would survive the organisation revoking them there.
                user.password_hash = None
                if user.status == "invited":
                    user.status = "active"
            else:
                user = User(
                    email=email,
                    display_name=str(name)[:200],
                    org_kind=idp.org_kind,
                    partner_id=idp.partner_id,
                    tenant_id=idp.tenant_id,
                    status="active",
                    idp_id=idp.id,
                    idp_subject=subject,
                )
                await self.lookup.add(user)
                await self._audit_provisioned(idp, user)
        if user.status != "active":
            raise oidc.OidcError("this account is disabled; ask your administrator")
        roles = sorted({r for g in groups for r in idp.group_roles.get(g, [])} | set(idp.default_roles))
        roles = [r for r in roles if r in ROLES and ROLES[r].org_kind.value == idp.org_kind]
        scope_id = idp.tenant_id if idp.org_kind == "customer" else idp.partner_id
        await UserRepository(self.session, User.id == user.id).replace_grants(
            user.id,
            [
                RoleGrant(user_id=user.id, role=r, scope_kind=idp.org_kind, scope_id=scope_id, source="idp")
                for r in roles
            ],
            source="idp",
        )
        user.last_login_at = utcnow()
        user.display_name = str(name)[:200]
        await self.session.flush()
        return user

    async def _audit_provisioned(self, idp: IdentityProvider, user: User) -> None:
        """Recorded on the chain of the organisation the provider belongs to, as the provider."""
        actor = Principal(
            subject_kind=SubjectKind.SYSTEM,
            subject_id=idp.id,
            label=f"identity provider {idp.name}",
            org_kind=OrgKind(idp.org_kind),
            partner_id=idp.partner_id,
            customer_id=idp.tenant_id if idp.org_kind == "customer" else None,
        )
        await apply_principal_scope(self.session, actor)
        tenant = None
        if idp.org_kind == "customer" and idp.tenant_id is not None and idp.partner_id is not None:
            tenant = TenantContext(tenant_id=TenantId(idp.tenant_id), partner_id=idp.partner_id, principal=actor)
        await record(
            self.session,
            actor,
            "user.provisioned",
            target_type="user",
            target_id=user.id,
            after=snapshot(user),
            tenant=tenant,
            partner_id=idp.partner_id,
        )


def _same_org(user: User, idp: IdentityProvider) -> bool:
    return (user.org_kind, user.partner_id, user.tenant_id) == (idp.org_kind, idp.partner_id, idp.tenant_id)
