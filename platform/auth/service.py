"""Issuing, listing and revoking API keys for one org node."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.audit.service import record
from andon.platform.audit.snapshot import snapshot
from andon.platform.auth.keys import mint_key
from andon.platform.auth.models import ApiKey
from andon.platform.auth.rbac import ALL_PERMISSIONS, UnknownRoleError, check_grantable
from andon.platform.auth.repository import ApiKeyRepository
from andon.platform.auth.schemas import ApiKeyCreate
from andon.platform.db.types import utcnow
from andon.platform.http.errors import NotFoundError, ValidationFailedError
from andon.platform.tenancy.node import OrgNode
from andon.platform.tenancy.principal import Principal


class ApiKeyService:
    def __init__(self, session: AsyncSession, principal: Principal, owner: OrgNode) -> None:
        self.session = session
        self.principal = principal
        self.owner = owner
        self.repo = ApiKeyRepository(session, owner.owns(ApiKey.org_kind, ApiKey.partner_id, ApiKey.tenant_id))

    async def _audit(self, action: str, key: ApiKey, *, before: dict[str, object] | None = None) -> None:
        await record(
            self.session,
            self.principal,
            action,
            target_type="api_key",
            target_id=key.id,
            before=before,
            after=snapshot(key),
            tenant=self.owner.tenant,
            partner_id=self.owner.partner_id,
        )

    async def issue(self, data: ApiKeyCreate) -> tuple[ApiKey, str]:
        # An org administers the node below it fully; at its own node it cannot grant beyond itself.
        below = self.owner.is_below(self.principal)
        try:
            check_grantable(data.roles, self.owner.kind, ALL_PERMISSIONS if below else self.principal.permissions)
        except UnknownRoleError as exc:
            raise ValidationFailedError(str(exc), extra={"errors": [{"field": "roles", "message": str(exc)}]}) from None
        if data.expires_at is not None and data.expires_at <= utcnow():
            raise ValidationFailedError(
                "expires_at must be in the future",
                extra={"errors": [{"field": "expires_at", "message": "must be in the future"}]},
            )
        minted = mint_key()
        key = await self.repo.add(
            ApiKey(
                name=data.name,
                prefix=minted.prefix,
                key_hash=minted.key_hash,
                org_kind=self.owner.kind.value,
                partner_id=self.owner.partner_id,
                tenant_id=self.owner.tenant_id,
                roles=sorted(set(data.roles)),
                expires_at=data.expires_at,
                created_by=self.principal.label[:200],
            )
        )
        await self._audit("api_key.issued", key)
        return key, minted.plaintext

    async def get(self, key_id: uuid.UUID) -> ApiKey:
        key = await self.repo.get(key_id)
        if key is None:
            raise NotFoundError(f"API key {key_id} not found")
        return key

    async def list(
        self, *, limit: int, offset: int, q: str | None = None, state: str | None = None
    ) -> tuple[Sequence[ApiKey], int]:
        return await self.repo.list(limit=limit, offset=offset, q=q, state=state)

    async def revoke(self, key_id: uuid.UUID) -> ApiKey:
        key = await self.get(key_id)
        if key.revoked_at is None:
            before = snapshot(key)
            key.revoked_at = utcnow()
            await self.session.flush()
            await self._audit("api_key.revoked", key, before=before)
        return key
