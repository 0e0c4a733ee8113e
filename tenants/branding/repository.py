"""All SQL of partner brands."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from andon.platform.db.scope import allow_auth_lookup, lookup_window
from andon.tenants.branding.models import PartnerBrand


class BrandRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def for_partner(self, partner_id: uuid.UUID) -> PartnerBrand | None:
        """Callers reach this only after the partner itself was fetched within their reach."""
        stmt = select(PartnerBrand).where(PartnerBrand.partner_id == partner_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def all_for_host_lookup(self) -> Sequence[PartnerBrand]:
        """Every brand, to match a request's host name before anyone is known (public pages)."""
        await allow_auth_lookup(self.session)
        # Host routing of public pages needs names and colours; the images stay in the database.
        stmt = select(PartnerBrand).options(
            defer(PartnerBrand.logo_png), defer(PartnerBrand.favicon_png)
        )  # andon: unscoped-ok
        return (await self.session.execute(stmt)).scalars().all()

    async def hosts_of_others(self, partner_id: uuid.UUID) -> set[str]:
        """Custom domains other partners hold, read in a window that does not widen the transaction."""
        async with lookup_window(self.session):
            stmt = select(PartnerBrand).where(PartnerBrand.partner_id != partner_id)  # andon: unscoped-ok
            rows = (await self.session.execute(stmt)).scalars().all()
            return {h for row in rows for h in row.hosts}

    async def public_asset(self, partner_id: uuid.UUID, kind: str) -> bytes | str | None:
        """Logos, favicons and custom CSS are public (sign-in pages show them before anyone is known)."""
        column = {"logo": PartnerBrand.logo_png, "favicon": PartnerBrand.favicon_png, "css": PartnerBrand.custom_css}[
            kind
        ]
        await allow_auth_lookup(self.session)
        stmt = select(column).where(PartnerBrand.partner_id == partner_id)  # andon: unscoped-ok
        value: bytes | str | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return value

    async def add(self, brand: PartnerBrand) -> PartnerBrand:
        self.session.add(brand)
        await self.session.flush()
        return brand
