"""The caller's own audit chain (platform operator or partner)."""

from __future__ import annotations

from litestar import Controller, get

from andon.platform.api.schemas import to_read
from andon.platform.audit.schemas import AuditEntryRead
from andon.platform.audit.service import list_chain
from andon.platform.auth.rbac import P
from andon.platform.http.errors import AndonError
from andon.platform.http.params import Caller, DbSession, Limit, Offset
from andon.platform.tenancy.principal import OrgKind


class AuditController(Controller):
    path = "/api/v1/audit"
    tags = ["Audit"]

    @get("/", opt={"permission": P.AUDIT_READ})
    async def list_entries(
        self, db_session: DbSession, principal: Caller, limit: Limit = 50, offset: Offset = 0
    ) -> list[AuditEntryRead]:
        if principal.org_kind is OrgKind.CUSTOMER:
            raise AndonError(f"a customer's trail is at /api/v1/customers/{principal.customer_id}/audit")
        rows = await list_chain(db_session, tenant=None, principal=principal, limit=limit, offset=offset)
        return [to_read(r, AuditEntryRead) for r in rows]
