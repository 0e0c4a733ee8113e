"""Which site, line and asset an event's ``siteid`` / ``assetid`` name: an Andon id, or the external
id the plant was imported with (what a gateway knows). Unknown references resolve to nothing: the
event is still kept, with what the sender said."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.events.ingress import PlantRefs
from andon.platform.tenancy.context import TenantContext
from andon.tenants.plant.models import Asset, Site
from andon.tenants.plant.repository import AssetRepository, PlantRepository, SiteRepository


async def _find(repo: PlantRepository[Site] | PlantRepository[Asset], ref: str) -> Site | Asset | None:
    try:
        found = await repo.get(uuid.UUID(ref))
    except ValueError:
        found = None
    if found is None:
        found = (await repo.by_external_ids([ref])).get(ref)
    return found


async def resolve_plant_refs(
    session: AsyncSession, tenant: TenantContext, site_ref: str | None, asset_ref: str | None
) -> PlantRefs:
    asset = await _find(AssetRepository(session, tenant), asset_ref) if asset_ref else None
    if isinstance(asset, Asset):
        return PlantRefs(site_id=asset.site_id, line_id=asset.line_id, asset_id=asset.id)
    site = await _find(SiteRepository(session, tenant), site_ref) if site_ref else None
    return PlantRefs(site_id=site.id if isinstance(site, Site) else None)
