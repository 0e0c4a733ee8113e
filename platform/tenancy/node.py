"""An org node that owns things (keys, users, identity providers): the platform, a partner, or a
customer. A customer node always comes with its checked tenant context."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, false
from sqlalchemy.sql.elements import SQLCoreOperations

from andon.platform.http.errors import AndonError
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import OrgKind, Principal

DEPTH = {OrgKind.PLATFORM: 0, OrgKind.PARTNER: 1, OrgKind.CUSTOMER: 2}


@dataclass(frozen=True, slots=True)
class OrgNode:
    kind: OrgKind
    partner_id: uuid.UUID | None = None
    tenant: TenantContext | None = None

    @property
    def tenant_id(self) -> uuid.UUID | None:
        return self.tenant.tenant_id if self.tenant else None

    @classmethod
    def own(cls, principal: Principal, what: str = "keys") -> OrgNode:
        if principal.org_kind is OrgKind.CUSTOMER:
            raise AndonError(f"customer {what} are managed under /api/v1/customers/{principal.customer_id}/{what}")
        return cls(kind=principal.org_kind, partner_id=principal.partner_id)

    def is_below(self, principal: Principal) -> bool:
        """An org administers the node directly below it fully (e.g. the operator bootstraps a partner)."""
        return DEPTH[self.kind] == DEPTH[principal.org_kind] + 1

    def owns(
        self,
        org_kind: SQLCoreOperations[str],
        partner_id: SQLCoreOperations[uuid.UUID | None],
        tenant_id: SQLCoreOperations[uuid.UUID | None],
    ) -> ColumnElement[bool]:
        """The SQL condition "owned by this node", for any table with these three columns."""
        if self.kind is OrgKind.PLATFORM:
            return org_kind == "platform"
        if self.kind is OrgKind.PARTNER and self.partner_id is not None:
            return (org_kind == "partner") & (partner_id == self.partner_id)
        if self.kind is OrgKind.CUSTOMER and self.tenant_id is not None:
            return (org_kind == "customer") & (tenant_id == self.tenant_id)
        return false()
