"""The checked tenant scope every tenant-owned query requires.

A ``TenantId`` is only minted by ``open_tenant`` after the caller's reach over that customer has been
verified (see ``tenants/orgs/service.py``), so mypy refuses a raw UUID where a scope is needed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import NewType

from andon.platform.tenancy.principal import OrgKind, Principal

TenantId = NewType("TenantId", uuid.UUID)


@dataclass(frozen=True, slots=True)
class TenantContext:
    tenant_id: TenantId
    partner_id: uuid.UUID
    principal: Principal

    @property
    def delegated(self) -> bool:
        """True when someone outside the customer (its partner, the operator) acts inside it."""
        return self.principal.org_kind is not OrgKind.CUSTOMER
