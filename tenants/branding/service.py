"""Branding rules: readable colours (WCAG AA), unique custom domains, sanitised logos; and which brand
a request wears, by its host name."""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.audit.service import record
from andon.platform.audit.snapshot import snapshot
from andon.platform.config.settings import Settings
from andon.platform.http.errors import ConflictError, ValidationFailedError
from andon.platform.identity.service import EmailBrand
from andon.platform.tenancy.principal import Principal
from andon.tenants.branding.contrast import AA_NORMAL_TEXT, WHITE, contrast_ratio, darken_until_readable
from andon.tenants.branding.custom_css import clean_css
from andon.tenants.branding.images import sanitise_favicon, sanitise_logo
from andon.tenants.branding.models import PartnerBrand
from andon.tenants.branding.repository import BrandRepository
from andon.tenants.branding.schemas import BrandRead, BrandUpdate, ContrastCheck
from andon.tenants.orgs.service import PartnerService

DEFAULT_PRODUCT = "Andon"
# Images are audited by size and version (see set_image), not byte by byte.
_NOT_AUDITED = frozenset({"created_at", "updated_at", "logo_png", "favicon_png"})
DEFAULT_PRIMARY = "#1f4e79"
DEFAULT_ACCENT = "#0b6e4f"


@dataclass(frozen=True, slots=True)
class Brand:
    """What a page wears: the partner's brand, or Andon's own where no partner is known."""

    product_name: str
    primary_colour: str
    accent_colour: str
    logo_url: str | None = None
    support_email: str | None = None
    support_url: str | None = None
    partner_id: uuid.UUID | None = None
    favicon_url: str | None = None
    custom_css_url: str | None = None
    custom_css: str | None = None

    @property
    def css(self) -> str:
        return f":root {{ --primary: {self.primary_colour}; --accent: {self.accent_colour}; }}"


ANDON = Brand(DEFAULT_PRODUCT, DEFAULT_PRIMARY, DEFAULT_ACCENT)


def _brand(row: PartnerBrand) -> Brand:
    base = f"/brand/{row.partner_id}"
    return Brand(
        row.product_name,
        row.primary_colour,
        row.accent_colour,
        f"{base}/logo.png?v={row.logo_version}" if row.logo_version else None,
        row.support_email,
        row.support_url,
        row.partner_id,
        f"{base}/favicon.png?v={row.favicon_version}" if row.favicon_version else None,
        f"{base}/custom.css?v={row.css_version}" if row.custom_css else None,
        row.custom_css,
    )


def contrast_checks(primary: str, accent: str) -> list[ContrastCheck]:
    checks = []
    for field, colour in (("primary_colour", primary), ("accent_colour", accent)):
        ratio = round(contrast_ratio(colour, WHITE), 2)
        passes = ratio >= AA_NORMAL_TEXT
        checks.append(
            ContrastCheck(
                field=field, ratio=ratio, passes=passes, suggestion=None if passes else darken_until_readable(colour)
            )
        )
    return checks


def brand_read(brand: Brand, hosts: list[str], partner_id: uuid.UUID) -> BrandRead:
    return BrandRead(
        partner_id=partner_id,
        product_name=brand.product_name,
        primary_colour=brand.primary_colour,
        accent_colour=brand.accent_colour,
        support_email=brand.support_email,
        support_url=brand.support_url,
        hosts=hosts,
        logo_url=brand.logo_url,
        favicon_url=brand.favicon_url,
        custom_css=brand.custom_css,
        css=brand.css,
        contrast=contrast_checks(brand.primary_colour, brand.accent_colour),
    )


class BrandingService:
    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.session = session
        self.principal = principal
        self.repo = BrandRepository(session)

    async def get(self, partner_id: uuid.UUID) -> tuple[Brand, list[str]]:
        partner = await PartnerService(self.session, self.principal).get(partner_id)
        row = await self.repo.for_partner(partner.id)
        if row is None:
            return Brand(partner.name, DEFAULT_PRIMARY, DEFAULT_ACCENT, partner_id=partner.id), []
        return _brand(row), list(row.hosts)

    async def update(
        self, partner_id: uuid.UUID, data: BrandUpdate, *, dry_run: bool = False
    ) -> tuple[Brand, list[str]]:
        partner = await PartnerService(self.session, self.principal).get(partner_id)
        failing = [c for c in contrast_checks(data.primary_colour, data.accent_colour) if not c.passes]
        if failing:
            raise ValidationFailedError(
                "colours must be readable: "
                + "; ".join(
                    f"{c.field} has contrast {c.ratio}:1 with white text, below the WCAG AA minimum of "
                    f"{AA_NORMAL_TEXT}:1; try {c.suggestion}"
                    for c in failing
                ),
                extra={
                    "errors": [
                        {
                            "field": c.field,
                            "message": f"contrast {c.ratio}:1 < {AA_NORMAL_TEXT}:1",
                            "ratio": c.ratio,
                            "suggestion": c.suggestion,
                        }
                        for c in failing
                    ]
                },
            )
        hosts = sorted(set(data.hosts))
        taken = await self.repo.hosts_of_others(partner.id)
        clash = sorted(set(hosts) & taken)
        if clash:
            raise ConflictError(
                f"host name(s) {', '.join(clash)} already belong to another partner",
                extra={"errors": [{"field": "hosts", "message": "already in use"}]},
            )
        custom_css = clean_css(data.custom_css) if data.custom_css and data.custom_css.strip() else None
        row = await self.repo.for_partner(partner.id)
        if dry_run:
            current = _brand(row) if row else None
            preview = Brand(
                data.product_name,
                data.primary_colour,
                data.accent_colour,
                current.logo_url if current else None,
                data.support_email,
                data.support_url,
                partner.id,
                current.favicon_url if current else None,
                None,
                custom_css,
            )
            return preview, hosts
        before = snapshot(row, skip=_NOT_AUDITED) if row else None
        if row is None:
            row = await self.repo.add(PartnerBrand(partner_id=partner.id, product_name=data.product_name))
        for name in ("product_name", "primary_colour", "accent_colour", "support_email", "support_url"):
            setattr(row, name, getattr(data, name))
        row.hosts = hosts
        if custom_css != row.custom_css:
            row.custom_css = custom_css
            row.css_version += 1
        await self.session.flush()
        await record(
            self.session,
            self.principal,
            "branding.updated",
            target_type="partner_brand",
            target_id=partner.id,
            before=before,
            after=snapshot(row, skip=_NOT_AUDITED),
            partner_id=partner.id,
        )
        return _brand(row), hosts

    async def set_logo(self, partner_id: uuid.UUID, data: bytes) -> Brand:
        return await self._set_image(partner_id, "logo", sanitise_logo(data))

    async def set_favicon(self, partner_id: uuid.UUID, data: bytes) -> Brand:
        return await self._set_image(partner_id, "favicon", sanitise_favicon(data))

    async def _set_image(self, partner_id: uuid.UUID, kind: str, clean: bytes) -> Brand:
        partner = await PartnerService(self.session, self.principal).get(partner_id)
        row = await self.repo.for_partner(partner.id)
        if row is None:
            row = await self.repo.add(PartnerBrand(partner_id=partner.id, product_name=partner.name))
        setattr(row, f"{kind}_png", clean)
        version = getattr(row, f"{kind}_version") + 1
        setattr(row, f"{kind}_version", version)
        await self.session.flush()
        await record(
            self.session,
            self.principal,
            f"branding.{kind}_changed",
            target_type="partner_brand",
            target_id=partner.id,
            after={"bytes": len(clean), "version": version},
            partner_id=partner.id,
        )
        return _brand(row)


class BrandsByHost:
    """Which brand a host name wears, asked before every page. Each process keeps the whole
    host-to-brand map for ``ttl`` seconds (a brand edit elsewhere shows within that), and forgets it
    at once when a brand changes here."""

    def __init__(self, ttl: float = 10.0) -> None:
        self.ttl = ttl
        self._hosts: dict[str, Brand] = {}
        self._loaded_at = -math.inf

    async def __call__(self, sessionmaker: async_sessionmaker[AsyncSession], host: str | None) -> Brand:
        if time.monotonic() - self._loaded_at > self.ttl:
            async with sessionmaker() as session, session.begin():
                rows = await BrandRepository(session).all_for_host_lookup()
                self._hosts = {h: _brand(row) for row in rows for h in row.hosts}
            self._loaded_at = time.monotonic()
        return self._hosts.get((host or "").split(":", 1)[0].lower(), ANDON)

    def forget(self) -> None:
        self._loaded_at = -math.inf


async def brand_of(session: AsyncSession, partner_id: uuid.UUID, fallback_name: str) -> Brand:
    """The brand a partner's documents wear (invoices to its customers). The caller has already
    fetched something of that partner within its reach (a customer's invoice, the partner itself); a
    partner without a brand yet shows its name in the default colours."""
    row = await BrandRepository(session).for_partner(partner_id)
    if row is None:
        return Brand(fallback_name, DEFAULT_PRIMARY, DEFAULT_ACCENT, partner_id=partner_id)
    return _brand(row)


async def public_asset(session: AsyncSession, partner_id: uuid.UUID, kind: str) -> bytes | str | None:
    """A brand's logo, favicon or custom CSS: public, because sign-in pages show them."""
    return await BrandRepository(session).public_asset(partner_id, kind)


async def email_brand(session: AsyncSession, partner_id: uuid.UUID | None, settings: Settings) -> EmailBrand | None:
    """E-mails about a partner's customers speak in the partner's product name and link to its own
    portal host (its first custom domain), so nothing says Andon unless the partner wants it."""
    if partner_id is None:
        return None
    # The partner is already within the caller's reach (it owns the node being managed, or the
    # customer belongs to it); a partner without a brand yet sends as Andon.
    row = await BrandRepository(session).for_partner(partner_id)
    if row is None:
        return None
    return EmailBrand(row.product_name, portal_url(settings, row.hosts[0]) if row.hosts else settings.http.base_url)


def portal_url(settings: Settings, host: str) -> str:
    """The URL of a partner's portal host, with the scheme and port the platform itself uses."""
    base = urlsplit(settings.http.base_url)
    port = f":{base.port}" if base.port and base.port not in (80, 443) else ""
    return f"{base.scheme}://{host}{port}"
