"""Inherited parameter values: ``/api/v1/partners/{id}/template-values/{key}`` (the partner's, for all
its customers) and ``/api/v1/customers/{id}/template-values/{key}`` (the customer's, or a site's)."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, get, put
from litestar.params import JSONBody, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.auth.rbac import P
from andon.platform.http.errors import NotFoundError
from andon.platform.http.params import Caller, DbSession, OptionalId, PathId, Tenant
from andon.templates_catalog.builtin import builtin_templates
from andon.templates_catalog.deployments.defaults import ParameterDefaultsService, resolve
from andon.templates_catalog.deployments.schemas import InheritedValues, ParameterValues
from andon.templates_catalog.dsl.format import Template
from andon.templates_catalog.dsl.load import defaults, parse
from andon.templates_catalog.library.models import PUBLISHED
from andon.templates_catalog.library.repository import LibraryRepository
from andon.templates_catalog.library.versions import semver
from andon.tenants.orgs.dependencies import TENANT_DEPENDENCY
from andon.tenants.orgs.service import CustomerService

TemplateKeyParam = Annotated[str, Parameter(pattern=r"^[a-z][a-z0-9-]{1,62}[a-z0-9]$")]


async def template_named(session: AsyncSession, partner_id: uuid.UUID, key: str) -> Template:
    """The partner's latest published version of ``key`` when its library has one, else the catalog's."""
    library = LibraryRepository(session, partner_id)
    held = await library.by_key(key)
    if held is not None:
        published = [v for v in await library.versions(held.id) if v.status == PUBLISHED]
        if published:
            newest = max(published, key=lambda v: semver(v.version))
            return parse(newest.yaml, f"{key}@{newest.version}")
    found = builtin_templates().get(key)
    if found is None:
        raise NotFoundError(f"template {key} not found")
    return found[0]


class PartnerValuesController(Controller):
    path = "/api/v1/partners/{partner_id:uuid}/template-values"
    tags = ["Deployments"]

    @get("/{key:str}", opt={"permission": P.WORKFLOWS_READ})
    async def partner_values(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, key: TemplateKeyParam
    ) -> InheritedValues:
        template = await template_named(db_session, partner_id, key)
        values = await ParameterDefaultsService(db_session, principal).partner_values(partner_id, template)
        return InheritedValues(template_key=key, template=defaults(template.parameters), partner=values)

    @put("/{key:str}", opt={"permission": P.WORKFLOWS_WRITE})
    async def set_partner_values(
        self,
        db_session: DbSession,
        principal: Caller,
        partner_id: PathId,
        key: TemplateKeyParam,
        data: JSONBody[ParameterValues],
    ) -> InheritedValues:
        """Values every customer's deployment of the template inherits (applied when it is deployed or upgraded)."""
        template = await template_named(db_session, partner_id, key)
        values = await ParameterDefaultsService(db_session, principal).set_partner_values(
            partner_id, template, data.values
        )
        return InheritedValues(template_key=key, template=defaults(template.parameters), partner=values)


class CustomerValuesController(Controller):
    path = "/api/v1/customers/{customer_id:uuid}/template-values"
    tags = ["Deployments"]
    dependencies = TENANT_DEPENDENCY

    async def _template(self, db_session: DbSession, tenant: Tenant, key: str) -> Template:
        customer = await CustomerService(db_session, tenant.principal).get(tenant.tenant_id)
        return await template_named(db_session, customer.partner_id, key)

    async def _read(self, db_session: DbSession, tenant: Tenant, template: Template) -> InheritedValues:
        inherited = await resolve(db_session, tenant, template, [], {})
        partner = {n: v for n, v in inherited.values.items() if inherited.sources[n] == "partner"}
        values = await ParameterDefaultsService(db_session, tenant.principal).customer_values(tenant, template)
        return InheritedValues(
            template_key=template.template, template=defaults(template.parameters), partner=partner, customer=values
        )

    @get("/{key:str}", opt={"permission": P.WORKFLOWS_READ})
    async def customer_values(self, db_session: DbSession, tenant: Tenant, key: TemplateKeyParam) -> InheritedValues:
        """The values at every level: the template's defaults, the partner's, the customer's and each site's."""
        return await self._read(db_session, tenant, await self._template(db_session, tenant, key))

    @put("/{key:str}", opt={"permission": P.WORKFLOWS_WRITE})
    async def set_customer_values(
        self,
        db_session: DbSession,
        tenant: Tenant,
        key: TemplateKeyParam,
        data: JSONBody[ParameterValues],
        site_id: OptionalId = None,
    ) -> InheritedValues:
        """The customer's values (or, with ``site_id``, one site's) that its deployments inherit."""
        template = await self._template(db_session, tenant, key)
        service = ParameterDefaultsService(db_session, tenant.principal)
        await service.set_customer_values(tenant, template, data.values, site_id)
        return await self._read(db_session, tenant, template)


DEFAULTS_CONTROLLERS = [PartnerValuesController, CustomerValuesController]
