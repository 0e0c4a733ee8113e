"""Inherited parameter values: a partner sets values for all its customers, a customer for itself and
for each of its sites; a deployment resolves template default → partner → customer → site → its own,
and keeps where each value came from. A deployment for several sites (or every site) runs with the
customer's values, and with each site's own where they make a difference (``resolve_by_site``)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.audit.service import record
from andon.platform.http.errors import PermissionDeniedError, ValidationFailedError
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import OrgKind, Principal
from andon.templates_catalog.deployments.defaults_models import CustomerParameterDefaults, PartnerParameterDefaults
from andon.templates_catalog.deployments.repository import CustomerDefaultsRepository, PartnerDefaultsRepository
from andon.templates_catalog.dsl.format import Template
from andon.templates_catalog.dsl.load import defaults
from andon.tenants.orgs.service import CustomerService, PartnerService
from andon.tenants.plant.service import PlantService

TEMPLATE = "template"
PARTNER = "partner"
CUSTOMER = "customer"
SITE = "site"
DEPLOYMENT = "deployment"


@dataclass(frozen=True, slots=True)
class Resolved:
    values: dict[str, Any]
    # Each value's level: template, partner, customer, site or deployment.
    sources: dict[str, str]


def value_problems(template: Template, values: dict[str, Any], prefix: str = "values") -> list[tuple[str, str]]:
    """Each value that is not a parameter of the template or fails that parameter's schema (a partial
    set: what it leaves out is inherited)."""
    properties = template.parameters.get("properties") or {}
    problems = [(f"{prefix}.{name}", "the template has no such parameter") for name in values if name not in properties]
    partial = {**template.parameters, "required": []}
    for error in jsonschema.Draft202012Validator(partial).iter_errors(
        {k: v for k, v in values.items() if k in properties}
    ):
        name = ".".join(str(p) for p in error.absolute_path)
        problems.append((f"{prefix}.{name}" if name else prefix, error.message))
    return problems


def _refused(problems: list[tuple[str, str]]) -> ValidationFailedError:
    return ValidationFailedError(
        "The values are not valid: " + "; ".join(f"{f}: {m}" for f, m in problems[:10]),
        extra={"errors": [{"field": f, "message": m} for f, m in problems]},
    )


async def resolve(
    session: AsyncSession,
    tenant: TenantContext,
    template: Template,
    site_ids: list[str],
    own: dict[str, Any],
) -> Resolved:
    values, sources = dict(defaults(template.parameters)), dict.fromkeys(defaults(template.parameters), TEMPLATE)

    def take(layer: dict[str, Any], level: str) -> None:
        for name, value in layer.items():
            values[name], sources[name] = value, level

    customer = await CustomerService(session, tenant.principal).get(tenant.tenant_id)
    partner_row = await PartnerDefaultsRepository(session, customer.partner_id).for_template(template.template)
    take(partner_row.values if partner_row else {}, PARTNER)
    rows = await CustomerDefaultsRepository(session, tenant).for_template(template.template)
    take(next((r.values for r in rows if r.site_id is None), {}), CUSTOMER)
    if len(site_ids) == 1:
        take(next((r.values for r in rows if r.site_id is not None and str(r.site_id) == site_ids[0]), {}), SITE)
    take(own, DEPLOYMENT)
    return Resolved(values, sources)


@dataclass(frozen=True, slots=True)
class SiteGroup:
    """Sites that run with the same values. ``site_ids`` empty: every site but ``except_sites``."""

    resolved: Resolved
    site_ids: list[str] = field(default_factory=list)
    except_sites: list[str] = field(default_factory=list)


async def resolve_by_site(
    session: AsyncSession, tenant: TenantContext, template: Template, site_ids: list[str], own: dict[str, Any]
) -> list[SiteGroup]:
    """The groups of sites a deployment runs as, the first being its main one. One site: its values.
    Several sites, or every site (none named): the customer's values, and a group for each set of
    sites whose own values resolve differently, so a site's values apply to its own events."""
    if len(site_ids) == 1:
        return [SiteGroup(await resolve(session, tenant, template, site_ids, own), list(site_ids))]
    base = await resolve(session, tenant, template, [], own)
    rows = await CustomerDefaultsRepository(session, tenant).for_template(template.template)
    with_values = {str(r.site_id) for r in rows if r.site_id is not None and r.values}
    candidates = [s for s in site_ids if s in with_values] if site_ids else sorted(with_values)
    variants: dict[str, SiteGroup] = {}
    for site in candidates:
        own_site = await resolve(session, tenant, template, [site], own)
        if own_site.values == base.values:
            continue
        same = json.dumps(own_site.values, sort_keys=True, default=str) + json.dumps(own_site.sources, sort_keys=True)
        variants.setdefault(same, SiteGroup(own_site)).site_ids.append(site)
    apart = {s for group in variants.values() for s in group.site_ids}
    if not site_ids:
        return [SiteGroup(base, except_sites=sorted(apart)), *variants.values()]
    rest = [s for s in site_ids if s not in apart]
    return ([SiteGroup(base, rest)] if rest else []) + list(variants.values())


class ParameterDefaultsService:
    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.session = session
        self.principal = principal

    async def partner_values(self, partner_id: uuid.UUID, template: Template) -> dict[str, Any]:
        partner = await PartnerService(self.session, self.principal).get(partner_id)
        row = await PartnerDefaultsRepository(self.session, partner.id).for_template(template.template)
        return dict(row.values) if row else {}

    async def set_partner_values(
        self, partner_id: uuid.UUID, template: Template, values: dict[str, Any]
    ) -> dict[str, Any]:
        partner = await PartnerService(self.session, self.principal).get(partner_id)
        if not (self.principal.org_kind is OrgKind.PARTNER and self.principal.partner_id == partner.id):
            raise PermissionDeniedError("only the partner's own people set its values")
        problems = value_problems(template, values)
        if problems:
            raise _refused(problems)
        repo = PartnerDefaultsRepository(self.session, partner.id)
        row = await repo.for_template(template.template)
        if row is None:
            row = PartnerParameterDefaults(partner_id=partner.id, template_key=template.template, values=values)
            await repo.add(row)
        else:
            row.values = dict(values)
        row.updated_by = self.principal.label
        await self.session.flush()
        await record(
            self.session,
            self.principal,
            "template.partner_values_set",
            target_type="template",
            target_id=template.template,
            after={"values": values},
            partner_id=partner.id,
        )
        return dict(row.values)

    async def customer_values(self, tenant: TenantContext, template: Template) -> dict[str, dict[str, Any]]:
        """{"": the customer's values, "<site id>": a site's}."""
        rows = await CustomerDefaultsRepository(self.session, tenant).for_template(template.template)
        return {str(r.site_id) if r.site_id else "": dict(r.values) for r in rows}

    async def set_customer_values(
        self, tenant: TenantContext, template: Template, values: dict[str, Any], site_id: uuid.UUID | None
    ) -> dict[str, Any]:
        problems = value_problems(template, values)
        if site_id is not None and site_id not in await PlantService(self.session, tenant).site_ids():
            problems.append(("site_id", f"no site {site_id} in this customer"))
        if problems:
            raise _refused(problems)
        repo = CustomerDefaultsRepository(self.session, tenant)
        row = next((r for r in await repo.for_template(template.template) if r.site_id == site_id), None)
        if row is None:
            row = CustomerParameterDefaults(template_key=template.template, site_id=site_id, values=values)
            await repo.add(row)
        else:
            row.values = dict(values)
        row.updated_by = tenant.principal.label
        await self.session.flush()
        await record(
            self.session,
            tenant.principal,
            "template.customer_values_set",
            target_type="template",
            target_id=template.template,
            after={"values": values, "site_id": str(site_id) if site_id else None},
            tenant=tenant,
        )
        return dict(row.values)
