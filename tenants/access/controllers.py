"""A customer's API keys and audit trail, reached by the customer itself or its partner."""

from __future__ import annotations

import uuid

from litestar import Controller, delete, get, post
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.api.schemas import Page, to_read
from andon.platform.audit.schemas import AuditEntryRead
from andon.platform.audit.service import list_chain
from andon.platform.auth.controllers import issued
from andon.platform.auth.rbac import P
from andon.platform.auth.schemas import ApiKeyCreate, ApiKeyIssued, ApiKeyRead
from andon.platform.auth.service import ApiKeyService
from andon.platform.http.params import Caller, DbSession, Limit, Offset, PathId, Tenant
from andon.platform.tenancy.node import OrgNode
from andon.platform.tenancy.principal import OrgKind, Principal
from andon.tenants.orgs.dependencies import TENANT_DEPENDENCY
from andon.tenants.orgs.service import PartnerService


def _keys(db_session: DbSession, tenant: Tenant) -> ApiKeyService:
    owner = OrgNode(kind=OrgKind.CUSTOMER, partner_id=tenant.partner_id, tenant=tenant)
    return ApiKeyService(db_session, tenant.principal, owner)


class CustomerApiKeyController(Controller):
    path = "/api/v1/customers/{customer_id:uuid}/api-keys"
    tags = ["API keys"]
    dependencies = TENANT_DEPENDENCY

    @get("/", opt={"permission": P.API_KEYS_READ})
    async def list_keys(
        self, db_session: DbSession, tenant: Tenant, limit: Limit = 50, offset: Offset = 0
    ) -> Page[ApiKeyRead]:
        rows, total = await _keys(db_session, tenant).list(limit=limit, offset=offset)
        return Page(items=[to_read(r, ApiKeyRead) for r in rows], total=total, limit=limit, offset=offset)

    @post("/", opt={"permission": P.API_KEYS_WRITE})
    async def issue_key(self, db_session: DbSession, tenant: Tenant, data: JSONBody[ApiKeyCreate]) -> ApiKeyIssued:
        key, plaintext = await _keys(db_session, tenant).issue(data)
        return issued(key, plaintext)

    @get("/{key_id:uuid}", opt={"permission": P.API_KEYS_READ})
    async def get_key(self, db_session: DbSession, tenant: Tenant, key_id: PathId) -> ApiKeyRead:
        return to_read(await _keys(db_session, tenant).get(key_id), ApiKeyRead)

    @delete("/{key_id:uuid}", opt={"permission": P.API_KEYS_WRITE}, status_code=200)
    async def revoke_key(self, db_session: DbSession, tenant: Tenant, key_id: PathId) -> ApiKeyRead:
        return to_read(await _keys(db_session, tenant).revoke(key_id), ApiKeyRead)


class PartnerApiKeyController(Controller):
    """The operator issues a partner its first keys; the partner may manage them here too."""

    path = "/api/v1/partners/{partner_id:uuid}/api-keys"
    tags = ["API keys"]

    @staticmethod
    async def _keys(db_session: AsyncSession, principal: Principal, partner_id: uuid.UUID) -> ApiKeyService:
        partner = await PartnerService(db_session, principal).get(partner_id)
        return ApiKeyService(db_session, principal, OrgNode(kind=OrgKind.PARTNER, partner_id=partner.id))

    @get("/", opt={"permission": P.API_KEYS_READ})
    async def list_keys(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, limit: Limit = 50, offset: Offset = 0
    ) -> Page[ApiKeyRead]:
        rows, total = await (await self._keys(db_session, principal, partner_id)).list(limit=limit, offset=offset)
        return Page(items=[to_read(r, ApiKeyRead) for r in rows], total=total, limit=limit, offset=offset)

    @post("/", opt={"permission": P.API_KEYS_WRITE})
    async def issue_key(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, data: JSONBody[ApiKeyCreate]
    ) -> ApiKeyIssued:
        key, plaintext = await (await self._keys(db_session, principal, partner_id)).issue(data)
        return issued(key, plaintext)

    @delete("/{key_id:uuid}", opt={"permission": P.API_KEYS_WRITE}, status_code=200)
    async def revoke_key(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, key_id: PathId
    ) -> ApiKeyRead:
        return to_read(await (await self._keys(db_session, principal, partner_id)).revoke(key_id), ApiKeyRead)


class CustomerAuditController(Controller):
    path = "/api/v1/customers/{customer_id:uuid}/audit"
    tags = ["Audit"]
    dependencies = TENANT_DEPENDENCY

    @get("/", opt={"permission": P.AUDIT_READ})
    async def list_entries(
        self, db_session: DbSession, tenant: Tenant, limit: Limit = 50, offset: Offset = 0
    ) -> list[AuditEntryRead]:
        rows = await list_chain(db_session, tenant=tenant, principal=tenant.principal, limit=limit, offset=offset)
        return [to_read(r, AuditEntryRead) for r in rows]
