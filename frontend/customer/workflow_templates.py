"""Workflow templates in the customer-admin console: the gallery (the built-in catalog and the partner's
published library), a template's page (its triggers, its steps drawn as a diagram, its parameters and
the connections it needs), the enable-workflow form, and the customer's deployments with pause and
resume. ``TemplateCatalog`` reads templates and ``DeploymentService`` checks and deploys them.

The enable form is drawn from the template: its parameters from their JSON Schema
(``frontend/schema_form.py``), a chooser per binding offering the outbound connections that can do
everything the binding calls, the sites as checkboxes (none ticked: every site), and the template's
messages to rewrite. A refusal comes back with each of the service's messages next to its field.

The same pages serve the partner's staff acting inside a customer that has granted them access
(delegation), under ``/partner/customers/{id}/templates`` and ``.../deployments``: the tenant comes from
``open_tenant`` (which refuses a customer without the grant, and hides another partner's), and every
address on the pages starts from ``base``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery
from litestar.response import Response, Template

from andon.connectors.outbound.catalogue import CONNECTOR_TYPES
from andon.connectors.outbound.models import OutboundConnection
from andon.connectors.outbound.service import OutboundConnectionAdmin
from andon.frontend.customer.console import OWN_TENANT, customer_staff_only, form_page, refused, service_refused
from andon.frontend.flash import redirect_with_notice
from andon.frontend.operations.console import sites_of
from andon.frontend.operations.run_graph import render_svg
from andon.frontend.pages import Form, page
from andon.frontend.partner.controllers import partner_staff_only
from andon.frontend.schema_form import SchemaField, read_fields, schema_fields
from andon.platform.auth.rbac import P
from andon.platform.engine.dispatch import broker_sender
from andon.platform.http.errors import AndonError
from andon.platform.http.params import Caller, DbSession, PathId, Tenant
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import Principal
from andon.templates_catalog.deployments.models import ACTIVE, Deployment
from andon.templates_catalog.deployments.schemas import DeploymentCreate
from andon.templates_catalog.deployments.service import DeploymentService, deployment_read
from andon.templates_catalog.dsl.load import built_definition, defaults, parse
from andon.templates_catalog.library.schemas import BindingRead, TemplateRead
from andon.templates_catalog.library.service import TemplateCatalog
from andon.tenants.orgs.dependencies import TENANT_DEPENDENCY

ADMIN = "/admin"
TEMPLATES = "/templates"
DEPLOYMENTS_PART = "/deployments"
DELEGATED = "/partner/customers/{customer_id:uuid}"
# The address the console mounting the pages starts from (``/admin``, or a customer's under ``/partner``).
Base = NamedDependency[str]
GALLERY = "customer/template_gallery.html"
DETAIL = "customer/template_detail.html"
ENABLE = "customer/template_enable.html"
DEPLOYMENTS = "customer/deployment_list.html"

PARAM_FIELD = "param-"
BINDING_FIELD = "binding-"
SITE_FIELD = "site-"
MESSAGE_FIELD = "message-"
# Where the service's refusals about the sites are shown: the site checkboxes' fieldset.
SITES = "sites"
# Choosers list at most this many connections; a customer with more binds through the API.
CONNECTION_CHOOSER_LIMIT = 500
# The catalog's icon names (lucide's) as a mark drawn in text, so no icon font is needed.
ICON_MARKS = {
    "wrench": "W",
    "calendar-clock": "C",
    "git-pull-request": "E",
    "message-circle-warning": "F",
    "shield-alert": "Q",
    "repeat": "S",
    "package": "P",
    "truck": "T",
}


def _catalog(db_session: DbSession, principal: Principal) -> TemplateCatalog:
    return TemplateCatalog(db_session, principal)


def _deployments(db_session: DbSession, tenant: TenantContext, state: State) -> DeploymentService:
    return DeploymentService(db_session, tenant, broker_sender(state.broker))


def _definition(template: TemplateRead) -> dict[str, Any]:
    """The workflow the template deploys with its defaults, for the diagram (read from the template's own
    text, so a partner template is drawn the same way as a catalog one)."""
    parsed = parse(template.yaml, template.key)
    return built_definition(parsed, defaults(parsed.parameters))


def parameter_fields(template: TemplateRead) -> tuple[SchemaField, ...]:
    return schema_fields(template.parameters, PARAM_FIELD)


def offering(binding: BindingRead, connections: Sequence[OutboundConnection]) -> list[OutboundConnection]:
    """The connections whose type offers every capability the binding calls (what the service checks)."""
    fit: list[OutboundConnection] = []
    for connection in connections:
        kind = CONNECTOR_TYPES.get(connection.type)
        if kind is not None and all(c in kind.capabilities for c in binding.capabilities):
            fit.append(connection)
    return fit


def _text(value: str) -> str:
    """A text area's value as the template writes it (browsers send CRLF line ends)."""
    return value.replace("\r\n", "\n").strip()


def _starting_values(template: TemplateRead, choices: Mapping[str, list[OutboundConnection]]) -> dict[str, str]:
    """The form as it opens: the parameters' defaults, the only fitting connection already chosen, the
    template's own messages."""
    values = {f.name: f.default for f in parameter_fields(template)}
    values |= {BINDING_FIELD + n: fit[0].key for n, fit in choices.items() if len(fit) == 1}
    values |= {MESSAGE_FIELD + n: text for n, text in template.messages.items()}
    values["key"] = template.key
    return values


def read_enable_form(
    template: TemplateRead, data: Mapping[str, str], sites: Sequence[uuid.UUID]
) -> tuple[dict[str, str], list[str], dict[str, Any], dict[str, str]]:
    """What was typed (to put back), the sites ticked, the deployment as the service takes it, and the
    notes of what could not be read. A parameter left at its default and a message left as the template
    writes it are not sent: they keep following the template."""
    values: dict[str, str] = {"key": str(data.get("key", "")).strip()}
    errors: dict[str, str] = {}
    fields = parameter_fields(template)
    typed = read_fields(fields, data, values, errors)
    declared = defaults(template.parameters)
    params = {k: v for k, v in typed.items() if k not in declared or v != declared[k]}
    bindings: dict[str, str] = {}
    for binding in template.requires:
        chosen = str(data.get(BINDING_FIELD + binding.name, "")).strip()
        values[BINDING_FIELD + binding.name] = chosen
        if chosen:
            bindings[binding.name] = chosen
    messages: dict[str, str] = {}
    for name, text in template.messages.items():
        written = _text(str(data.get(MESSAGE_FIELD + name, text)))
        values[MESSAGE_FIELD + name] = written
        if written and written != _text(text):
            messages[name] = written
    known = {str(s) for s in sites}
    ticked = [k.removeprefix(SITE_FIELD) for k in data if k.startswith(SITE_FIELD)]
    chosen_sites = [s for s in ticked if s in known]
    if len(chosen_sites) != len(ticked):
        errors[SITES] = "choose sites from the list"
    raw: dict[str, Any] = {
        "template": template.key,
        "source": template.source,
        "site_ids": chosen_sites,
        "params": params,
        "bindings": bindings,
        "messages": messages,
    }
    if values["key"] and values["key"] != template.key:
        raw["key"] = values["key"]
    return values, chosen_sites, raw, errors


def _rename(template: TemplateRead, chosen_sites: Sequence[str]) -> dict[str, str]:
    """The service's field names as the form's."""
    names = {f"params.{f.key}": f.name for f in parameter_fields(template)} | {"params": "params"}
    names |= {f"bindings.{b.name}": BINDING_FIELD + b.name for b in template.requires}
    names |= {f"messages.{n}": MESSAGE_FIELD + n for n in template.messages}
    names |= {f"site_ids[{i}]": SITES for i in range(len(chosen_sites))} | {"site_ids": SITES}
    return names


def _site_names(sites: Sequence[Any]) -> dict[str, str]:
    return {str(s.id): str(s.name) for s in sites}


class TemplatePages(Controller):
    """The template pages, whichever console mounts them (``base`` is that console's address)."""

    include_in_schema = False

    @get("/", opt={"permission": P.WORKFLOWS_READ})
    async def gallery(
        self,
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        base: Base,
        q: FromQuery[str | None] = None,
        category: FromQuery[str | None] = None,
    ) -> Template:
        catalog = _catalog(db_session, principal)
        everything = await catalog.list()
        categories = sorted({t.category for t in everything})
        words = (q or "").strip()[:200] or None
        chosen = category if category in categories else None
        shown = await catalog.list(q=words, category=chosen) if (words or chosen) else everything
        return page(
            GALLERY,
            principal=principal,
            templates=shown,
            total=len(everything),
            categories=categories,
            filters={"q": words or "", "category": chosen or ""},
            marks=ICON_MARKS,
            base=base,
            delegated=tenant.delegated,
        )

    async def _template(
        self, db_session: DbSession, principal: Principal, key: str, source: str | None
    ) -> TemplateRead:
        return await _catalog(db_session, principal).get(key, "partner" if source == "partner" else "catalog")

    @get("/{key:str}", opt={"permission": P.WORKFLOWS_READ})
    async def template(
        self,
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        base: Base,
        key: FromPath[str],
        source: FromQuery[str | None] = None,
    ) -> Template:
        template = await self._template(db_session, principal, key, source)
        return page(
            DETAIL,
            principal=principal,
            tpl=template,
            fields=parameter_fields(template),
            titles={s.key: s.title or s.key for s in template.steps},
            graph=render_svg(
                _definition(template),
                {},
                label=f"Steps of {template.name}: {', '.join(s.title or s.key for s in template.steps)}",
                idle="",
            ),
            marks=ICON_MARKS,
            base=base,
            delegated=tenant.delegated,
        )

    async def _enable_form(
        self,
        db_session: DbSession,
        principal: Principal,
        tenant: TenantContext,
        state: State,
        base: str,
        template: TemplateRead,
        values: dict[str, str] | None = None,
        chosen_sites: Sequence[str] = (),
        **context: Any,
    ) -> Template:
        connections, _ = await OutboundConnectionAdmin(db_session, tenant, state.outbound).list(
            limit=CONNECTION_CHOOSER_LIMIT, offset=0
        )
        choices = {b.name: offering(b, connections) for b in template.requires}
        return form_page(
            ENABLE,
            principal,
            tpl=template,
            fields=parameter_fields(template),
            bindings=[(b, choices[b.name]) for b in template.requires],
            sites=await sites_of(db_session, tenant),
            chosen_sites=set(chosen_sites),
            values=values if values is not None else _starting_values(template, choices),
            base=base,
            delegated=tenant.delegated,
            **context,
        )

    @get("/{key:str}/enable", opt={"permission": P.WORKFLOWS_WRITE})
    async def enable_form(
        self,
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        state: State,
        base: Base,
        key: FromPath[str],
        source: FromQuery[str | None] = None,
    ) -> Template:
        template = await self._template(db_session, principal, key, source)
        return await self._enable_form(db_session, principal, tenant, state, base, template)

    @post("/{key:str}/enable", opt={"permission": P.WORKFLOWS_WRITE})
    async def enable(
        self,
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        state: State,
        base: Base,
        key: FromPath[str],
        data: Form,
        source: FromQuery[str | None] = None,
    ) -> Response[Any]:
        template = await self._template(db_session, principal, key, source)
        sites = await sites_of(db_session, tenant)
        values, chosen_sites, raw, errors = read_enable_form(template, data, [s.id for s in sites])
        if errors:
            return await self._enable_form(
                db_session, principal, tenant, state, base, template, values, chosen_sites, **refused(errors)
            )
        try:
            deployment = await _deployments(db_session, tenant, state).create(msgspec.convert(raw, DeploymentCreate))
        except (AndonError, msgspec.ValidationError) as exc:
            problems = await service_refused(db_session, principal, exc, _rename(template, chosen_sites))
            return await self._enable_form(
                db_session, principal, tenant, state, base, template, values, chosen_sites, **problems
            )
        where = ", ".join(_site_names(sites)[s] for s in deployment.site_ids) or "every site"
        return redirect_with_notice(
            state.settings, base + DEPLOYMENTS_PART, f"Enabled {template.name} for {where} as {deployment.key}."
        )


class DeploymentPages(Controller):
    """The deployment pages, whichever console mounts them (``base`` is that console's address)."""

    include_in_schema = False

    @get("/", opt={"permission": P.WORKFLOWS_READ})
    async def deployments(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, state: State, base: Base
    ) -> Template:
        rows = await _deployments(db_session, tenant, state).every()
        names: dict[tuple[str, str], str] = {
            (t.key, t.source): t.name for t in await _catalog(db_session, principal).list()
        }
        sites = _site_names(await sites_of(db_session, tenant))
        listed = [
            {
                "deployment": deployment_read(d),
                "name": names.get((d.template_key, d.source), d.template_key),
                "sites": [sites.get(s, s) for s in d.site_ids],
                # Sites that run with values of their own, and the values that differ.
                "variants": [
                    {
                        "sites": [sites.get(s, s) for s in v["site_ids"]],
                        "values": {n: val for n, (val, level) in v["resolved"].items() if level == "site"},
                    }
                    for v in d.site_variants
                ],
                "active": d.status == ACTIVE,
            }
            for d in rows
        ]
        return page(DEPLOYMENTS, principal=principal, rows=listed, base=base, delegated=tenant.delegated)

    async def _switch(
        self,
        db_session: DbSession,
        tenant: TenantContext,
        state: State,
        base: str,
        deployment_id: uuid.UUID,
        enabled: bool,
    ) -> Response[Any]:
        deployment: Deployment = await _deployments(db_session, tenant, state).set_enabled(deployment_id, enabled)
        done = "Resumed" if enabled else "Paused"
        later = "" if enabled else ": events no longer start it; runs under way go on"
        return redirect_with_notice(state.settings, base + DEPLOYMENTS_PART, f"{done} {deployment.key}{later}.")

    @post("/{deployment_id:uuid}/pause", opt={"permission": P.WORKFLOWS_WRITE})
    async def pause(
        self, db_session: DbSession, tenant: Tenant, state: State, base: Base, deployment_id: PathId
    ) -> Response[Any]:
        return await self._switch(db_session, tenant, state, base, deployment_id, False)

    @post("/{deployment_id:uuid}/resume", opt={"permission": P.WORKFLOWS_WRITE})
    async def resume(
        self, db_session: DbSession, tenant: Tenant, state: State, base: Base, deployment_id: PathId
    ) -> Response[Any]:
        return await self._switch(db_session, tenant, state, base, deployment_id, True)


def _admin_base() -> str:
    return ADMIN


def _delegated_base(customer_id: PathId) -> str:
    return f"/partner/customers/{customer_id}"


# The customer's own staff: the customer is theirs (``OWN_TENANT``), nothing in the address names it.
AS_CUSTOMER_STAFF = {**OWN_TENANT, "base": Provide(_admin_base, sync_to_thread=False)}
# The partner's staff inside a customer: ``open_tenant`` checks the customer's grant on every page.
AS_PARTNER_STAFF = {**TENANT_DEPENDENCY, "base": Provide(_delegated_base, sync_to_thread=False)}


class CustomerTemplatesPageController(TemplatePages):
    path = ADMIN + TEMPLATES
    tags = ["Customer console"]
    guards = [customer_staff_only]
    dependencies = AS_CUSTOMER_STAFF


class CustomerDeploymentsPageController(DeploymentPages):
    path = ADMIN + DEPLOYMENTS_PART
    tags = ["Customer console"]
    guards = [customer_staff_only]
    dependencies = AS_CUSTOMER_STAFF


class DelegatedTemplatesPageController(TemplatePages):
    path = DELEGATED + TEMPLATES
    tags = ["Partner console"]
    guards = [partner_staff_only]
    dependencies = AS_PARTNER_STAFF


class DelegatedDeploymentsPageController(DeploymentPages):
    path = DELEGATED + DEPLOYMENTS_PART
    tags = ["Partner console"]
    guards = [partner_staff_only]
    dependencies = AS_PARTNER_STAFF
