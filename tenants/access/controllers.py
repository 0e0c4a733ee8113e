"""A customer's API keys and audit trail, reached by the customer itself or its partner."""

from __future__ import annotations

from litestar import Controller, delete, get, post
from litestar.params import JSONBody

from andon.platform.api.schemas import Page, to_read
from andon.platform.audit.schemas import AuditEntryRead
from andon.platform.audit.service import list_chain
from andon.platform.auth.controllers import issued
from andon.platform.auth.rbac import P
from andon.platform.auth.schemas import ApiKeyCreate, ApiKeyIssued, ApiKeyRead
from andon.platform.auth.service import ApiKeyService, KeyOwner
from andon.platform.http.params import DbSession, Limit, Offset, PathId, Tenant
from andon.platform.tenancy.principal import OrgKind
from andon.tenants.orgs.dependencies import TENANT_DEPENDENCY


def _keys(db_session: DbSession, tenant: Tenant) -> ApiKeyService:
    owner = KeyOwner(kind=OrgKind.CUSTOMER, partner_id=tenant.partner_id, tenant=tenant)
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
