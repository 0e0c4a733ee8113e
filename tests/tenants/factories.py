"""Two partners, each with one customer and a full plant, and an API key for every org.

Built through the services (as the demo is), so fixtures exercise the same rules as the API.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.auth.schemas import ApiKeyCreate
from andon.platform.auth.service import ApiKeyService
from andon.platform.db.scope import apply_principal_scope
from andon.platform.tenancy.node import OrgNode
from andon.platform.tenancy.principal import OrgKind, system_principal
from andon.tenants.orgs.schemas import CustomerCreate, PartnerCreate
from andon.tenants.orgs.service import CustomerService, PartnerService
from andon.tenants.plant import schemas as ps
from andon.tenants.plant.service import PlantService


@dataclass
class Tenant:
    customer_id: uuid.UUID
    slug: str
    key: str
    key_id: uuid.UUID
    site_id: uuid.UUID
    area_id: uuid.UUID
    line_id: uuid.UUID
    asset_id: uuid.UUID
    shift_calendar_id: uuid.UUID

    def node(self, kind: str) -> uuid.UUID:
        return {
            "sites": self.site_id,
            "areas": self.area_id,
            "lines": self.line_id,
            "assets": self.asset_id,
            "shift-calendars": self.shift_calendar_id,
        }[kind]


@dataclass
class Org:
    partner_id: uuid.UUID
    slug: str
    key: str
    key_id: uuid.UUID
    customer: Tenant


@dataclass
class World:
    operator_key: str
    a: Org
    b: Org


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _tenant(session: AsyncSession, partner_id: uuid.UUID, slug: str) -> Tenant:
    system = system_principal(ALL_PERMISSIONS, "test factory")
    customers = CustomerService(session, system)
    customer = await customers.create(
        CustomerCreate(slug=slug, name=slug.title(), partner_id=partner_id, default_timezone="Europe/Berlin")
    )
    ctx = await customers.open_tenant(customer.id)
    plant = PlantService(session, ctx)
    site = await plant.create(
        "site", ps.SiteCreate(name=f"{slug} plant", external_id=f"{slug}-S", timezone="Europe/Berlin")
    )
    area = await plant.create("area", ps.AreaCreate(site_id=site.id, name="Area", external_id=f"{slug}-A"))
    line = await plant.create(
        "line", ps.LineCreate(site_id=site.id, area_id=area.id, name="Line", external_id=f"{slug}-L")
    )
    asset = await plant.create(
        "asset",
        ps.AssetCreate(site_id=site.id, line_id=line.id, name="Press", external_id=f"{slug}-P", criticality="A"),
    )
    calendar = await plant.create(
        "shift_calendar",
        ps.ShiftCalendarCreate(
            site_id=site.id, name="Shifts", shifts=[ps.Shift(name="Early", start="06:00", end="14:00")]
        ),
    )
    owner = OrgNode(OrgKind.CUSTOMER, partner_id=partner_id, tenant=ctx)
    key, plaintext = await ApiKeyService(session, system, owner).issue(
        ApiKeyCreate(name=f"{slug} admin", roles=["customer_admin"])
    )
    return Tenant(customer.id, slug, plaintext, key.id, site.id, area.id, line.id, asset.id, calendar.id)


async def _org(session: AsyncSession, slug: str) -> Org:
    system = system_principal(ALL_PERMISSIONS, "test factory")
    partner = await PartnerService(session, system).create(PartnerCreate(slug=slug, name=slug.title()))
    key, plaintext = await ApiKeyService(session, system, OrgNode(OrgKind.PARTNER, partner_id=partner.id)).issue(
        ApiKeyCreate(name=f"{slug} admin", roles=["partner_admin"])
    )
    customer = await _tenant(session, partner.id, f"{slug}-customer")
    return Org(partner.id, slug, plaintext, key.id, customer)


async def build_world(sessionmaker: async_sessionmaker[AsyncSession]) -> World:
    system = system_principal(ALL_PERMISSIONS, "test factory")
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system)
        _, operator_key = await ApiKeyService(session, system, OrgNode(OrgKind.PLATFORM)).issue(
            ApiKeyCreate(name="operator", roles=["platform_operator"])
        )
        a = await _org(session, "alpha")
        b = await _org(session, "bravo")
    return World(operator_key, a, b)
