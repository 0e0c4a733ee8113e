"""All SQL of deployments and inherited parameter values (tenant- or partner-scoped by construction)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.db.repository import TenantRepository
from andon.templates_catalog.deployments.defaults_models import CustomerParameterDefaults, PartnerParameterDefaults
from andon.templates_catalog.deployments.models import Deployment


class DeploymentRepository(TenantRepository[Deployment]):
    model = Deployment

    async def by_key(self, key: str) -> Deployment | None:
        return await self.find(Deployment.key == key)

    async def of_template(self, template_key: str, source: str) -> Sequence[Deployment]:
        return await self.list(Deployment.template_key == template_key, Deployment.source == source)

    async def every(self) -> Sequence[Deployment]:
        return await self.list(limit=10_000)


class CustomerDefaultsRepository(TenantRepository[CustomerParameterDefaults]):
    model = CustomerParameterDefaults

    async def for_template(self, template_key: str) -> Sequence[CustomerParameterDefaults]:
        """The customer-wide row (no site) and the sites' rows of one template."""
        return await self.list(CustomerParameterDefaults.template_key == template_key, limit=10_000)


class PartnerDefaultsRepository:
    def __init__(self, session: AsyncSession, partner_id: uuid.UUID) -> None:
        """``partner_id``: a partner within the caller's reach, or the partner of the caller's tenant."""
        self.session = session
        self.partner_id = partner_id

    async def for_template(self, template_key: str) -> PartnerParameterDefaults | None:
        stmt = select(PartnerParameterDefaults).where(
            PartnerParameterDefaults.partner_id == self.partner_id,
            PartnerParameterDefaults.template_key == template_key,
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add(self, row: PartnerParameterDefaults) -> None:
        if row.partner_id != self.partner_id:
            raise ValueError("the row belongs to the repository's partner")
        self.session.add(row)
        await self.session.flush()
