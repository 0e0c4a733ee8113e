"""Deploying a template for a customer: everything checked before anything is written (parameters
against the template's schema, every binding to a connection that offers what the template calls,
the sites, the messages), then the workflow is created from the template with the placeholders
filled. An upgrade creates the workflow's next version and turns the old one off (runs under way
finish on the version they started with); a rollback turns the previous version back on."""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from andon.connectors.outbound.service import offered_capabilities
from andon.platform.audit.service import record
from andon.platform.audit.snapshot import snapshot
from andon.platform.engine.executor import Send
from andon.platform.engine.models import Workflow
from andon.platform.engine.schemas import WorkflowCreate, WorkflowUpdate
from andon.platform.engine.service import WorkflowService
from andon.platform.http.errors import ConflictError, NotFoundError, ValidationFailedError, field_error
from andon.platform.tenancy.context import TenantContext
from andon.templates_catalog.builtin import builtin_templates
from andon.templates_catalog.deployments.defaults import DEPLOYMENT, SITE, Resolved, SiteGroup, resolve_by_site
from andon.templates_catalog.deployments.models import ACTIVE, CATALOG, PAUSED, Deployment
from andon.templates_catalog.deployments.repository import DeploymentRepository
from andon.templates_catalog.deployments.schemas import (
    DeploymentCreate,
    DeploymentRead,
    DeploymentUpgrade,
    ParameterValue,
    SiteVariantRead,
)
from andon.templates_catalog.dsl.format import Template, Trigger
from andon.templates_catalog.dsl.load import built_definition, parameter_errors, parse
from andon.templates_catalog.library.models import PUBLISHED, TemplateVersion
from andon.templates_catalog.library.repository import LibraryRepository
from andon.templates_catalog.library.versions import semver
from andon.tenants.orgs.service import CustomerService
from andon.tenants.plant.service import PlantService


def variant_key(key: str, group: SiteGroup) -> str:
    """The workflow key of a group of sites that runs with values of its own: the deployment's key
    and its first site (so it reads in the runs list, and stays the same across upgrades)."""
    return f"{key[:88]}--{group.site_ids[0].replace('-', '')[:8]}"


def _refused(problems: list[tuple[str, str]]) -> ValidationFailedError:
    return ValidationFailedError(
        "The deployment is not valid: " + "; ".join(f"{f}: {m}" for f, m in problems[:10]),
        extra={"errors": [{"field": f, "message": m} for f, m in problems]},
    )


def trigger_filter(
    triggers: Sequence[Trigger], site_ids: Sequence[str], except_sites: Sequence[str] = ()
) -> str | None:
    """One CEL filter for the workflow: the event is of one of the template's types and passes that
    trigger's own condition, and comes from one of the deployment's sites (when it names any), and
    not from a site that runs as a variant of its own."""
    parts: list[str] = []
    if len(triggers) > 1 or any(t.when for t in triggers):
        rules = [
            f"(event.type == {json.dumps(t.event_type)}" + (f" && ({t.when})" if t.when else "") + ")" for t in triggers
        ]
        parts.append(" || ".join(rules) if len(rules) > 1 else rules[0])
    if site_ids:
        parts.append(f"event.site_id != null && event.site_id in {json.dumps(list(site_ids))}")
    if except_sites:
        parts.append(f"!(event.site_id in {json.dumps(list(except_sites))})")
    if not parts:
        return None
    return " && ".join(f"({p})" for p in parts) if len(parts) > 1 else parts[0]


class DeploymentService:
    def __init__(self, session: AsyncSession, tenant: TenantContext, send: Send) -> None:
        self.session = session
        self.tenant = tenant
        self.repo = DeploymentRepository(session, tenant)
        self.workflows = WorkflowService(session, tenant, send)

    async def _audit(self, action: str, deployment: Deployment, before: dict[str, Any] | None = None) -> None:
        await record(
            self.session,
            self.tenant.principal,
            action,
            target_type="deployment",
            target_id=deployment.id,
            before=before,
            after=snapshot(deployment),
            tenant=self.tenant,
        )

    async def get(self, deployment_id: uuid.UUID) -> Deployment:
        deployment = await self.repo.get(deployment_id)
        if deployment is None:
            raise NotFoundError(f"deployment {deployment_id} not found")
        return deployment

    async def every(self) -> Sequence[Deployment]:
        return await self.repo.every()

    async def of_template(self, template_key: str, source: str) -> Sequence[Deployment]:
        return await self.repo.of_template(template_key, source)

    # --- which template ---------------------------------------------------------------------------------

    async def _library(self) -> LibraryRepository:
        customer = await CustomerService(self.session, self.tenant.principal).get(self.tenant.tenant_id)
        return LibraryRepository(self.session, customer.partner_id)

    async def _template(self, key: str, source: str, version: str | None) -> tuple[Template, uuid.UUID | None]:
        if source == CATALOG:
            found = builtin_templates().get(key)
            if found is None:
                raise field_error("template", f"no catalog template '{key}'")
            if version is not None and version != found[0].version:
                raise field_error("version", f"the catalog offers {key} at {found[0].version} only")
            return found[0], None
        library = await self._library()
        template = await library.by_key(key)
        if template is None:
            raise field_error("template", f"no template '{key}' in your partner's library")
        offered: builtins.list[TemplateVersion] = [
            v for v in await library.versions(template.id) if v.status == PUBLISHED
        ]
        if not offered:
            raise field_error("template", f"'{key}' has no published version to deploy")
        chosen = (
            max(offered, key=lambda v: semver(v.version))
            if version is None
            else next((v for v in offered if v.version == version), None)
        )
        if chosen is None:
            raise field_error("version", f"{version} of '{key}' is not published (or is deprecated)")
        return parse(chosen.yaml, f"{key}@{chosen.version}"), template.id

    # --- the checks --------------------------------------------------------------------------------------

    async def _problems(
        self,
        template: Template,
        groups: builtins.list[SiteGroup],
        bindings: dict[str, str],
        messages: dict[str, str],
        sites: builtins.list[str],
    ) -> builtins.list[tuple[str, str]]:
        problems = []
        for group in groups:
            resolved = group.resolved
            for name, message in parameter_errors(template.parameters, resolved.values):
                level = resolved.sources.get(name, DEPLOYMENT)
                # A bad inherited value is named with where it comes from, so it is fixed there.
                where = f"the site {group.site_ids[0]}" if level == SITE and group.site_ids else f"the {level}"
                problem = (
                    f"params.{name}" if name else "params",
                    message + (f" (set by {where})" if level != DEPLOYMENT else ""),
                )
                if problem not in problems:
                    problems.append(problem)
        for name in sorted(set(template.requires) - set(bindings)):
            problems.append(
                (f"bindings.{name}", f"bind '{template.requires[name].title}' to one of your outbound connections")
            )
        for name, key in sorted(bindings.items()):
            need = template.requires.get(name)
            if need is None:
                problems.append((f"bindings.{name}", f"the template has no binding '{name}'"))
                continue
            offered = await offered_capabilities(self.session, self.tenant, key)
            if offered is None:
                problems.append((f"bindings.{name}", f"you have no outbound connection '{key}'"))
                continue
            kind, capabilities = offered
            missing = [c for c in need.capabilities if c not in capabilities]
            if missing:
                problems.append(
                    (f"bindings.{name}", f"'{key}' ({kind}) does not offer {', '.join(missing)}; {name} needs them")
                )
        for name in sorted(set(messages) - set(template.messages)):
            problems.append((f"messages.{name}", f"the template has no message '{name}'"))
        known = await PlantService(self.session, self.tenant).site_ids()
        for i, site in enumerate(sites):
            if uuid.UUID(site) not in known:
                problems.append((f"site_ids[{i}]", f"no site {site} in this customer"))
        return problems

    async def _workflows(
        self,
        key: str,
        template: Template,
        groups: builtins.list[SiteGroup],
        bindings: dict[str, str],
        messages: dict[str, str],
        enabled: bool,
    ) -> builtins.list[Workflow]:
        """A workflow (or its next version) for each group of sites: the main one under ``key``."""
        made = []
        for index, group in enumerate(groups):
            merged = group.resolved.values
            made.append(
                await self.workflows.create(
                    WorkflowCreate(
                        key=key if index == 0 else variant_key(key, group),
                        name=template.name,
                        definition=built_definition(template, merged, messages=messages, bindings=bindings),
                        trigger_type=template.triggers[0].event_type if template.triggers else None,
                        also_triggered_by=[t.event_type for t in template.triggers[1:]],
                        trigger_filter=trigger_filter(template.triggers, group.site_ids, group.except_sites),
                        params=merged,
                        enabled=enabled,
                    )
                )
            )
        return made

    async def _switch(self, workflow_ids: Iterable[uuid.UUID | str | None], enabled: bool) -> None:
        for workflow_id in workflow_ids:
            if workflow_id is not None:
                await self.workflows.update(uuid.UUID(str(workflow_id)), WorkflowUpdate(enabled=enabled))

    # --- changes ------------------------------------------------------------------------------------------

    async def create(self, data: DeploymentCreate) -> Deployment:
        template, library_id = await self._template(data.template, data.source, data.version)
        key = data.key or template.template
        sites = [str(s) for s in data.site_ids]
        groups = await resolve_by_site(self.session, self.tenant, template, sites, dict(data.params))
        problems = await self._problems(template, groups, dict(data.bindings), dict(data.messages), sites)
        if problems:
            raise _refused(problems)
        keys = [key, *(variant_key(key, g) for g in groups[1:])]
        if await self.repo.by_key(key) is not None or any([await self.workflows.latest(k) is not None for k in keys]):
            raise ConflictError(
                f"a workflow '{key}' already runs here; deploy under another key",
                extra={"errors": [{"field": "key", "message": "already in use"}]},
            )
        workflow, *variants = await self._workflows(
            key, template, groups, dict(data.bindings), dict(data.messages), data.enabled
        )
        deployment = await self.repo.add(
            Deployment(
                key=key,
                template_key=template.template,
                source=data.source,
                library_template_id=library_id,
                version=template.version,
                site_ids=sites,
                params=dict(data.params),
                resolved=_stored(groups[0].resolved),
                site_variants=_variants(groups[1:], variants),
                bindings=dict(data.bindings),
                messages=dict(data.messages),
                status=ACTIVE if data.enabled else PAUSED,
                workflow_id=workflow.id,
                deployed_by=self.tenant.principal.label,
            )
        )
        await self._audit("deployment.created", deployment)
        return deployment

    async def upgrade(self, deployment_id: uuid.UUID, data: DeploymentUpgrade) -> Deployment:
        deployment = await self.get(deployment_id)
        before = snapshot(deployment)
        template, _ = await self._template(deployment.template_key, deployment.source, data.version)
        params = {**deployment.params, **data.params}
        bindings = {**deployment.bindings, **data.bindings}
        groups = await resolve_by_site(self.session, self.tenant, template, deployment.site_ids, params)
        problems = await self._problems(template, groups, bindings, deployment.messages, deployment.site_ids)
        if problems:
            raise _refused(problems)
        enabled = deployment.status == ACTIVE
        workflow, *variants = await self._workflows(
            deployment.key, template, groups, bindings, deployment.messages, enabled
        )
        await self._switch(_workflow_ids(deployment), False)
        deployment.previous_version, deployment.previous_workflow_id = deployment.version, deployment.workflow_id
        deployment.version, deployment.workflow_id = template.version, workflow.id
        deployment.previous_resolved, deployment.resolved = deployment.resolved, _stored(groups[0].resolved)
        deployment.previous_site_variants = deployment.site_variants
        deployment.site_variants = _variants(groups[1:], variants)
        deployment.params, deployment.bindings = params, bindings
        await self.session.flush()
        await self._audit("deployment.upgraded", deployment, before)
        return deployment

    async def rollback(self, deployment_id: uuid.UUID) -> Deployment:
        """Back to the version the last upgrade replaced (its workflow turned on again, the newer off)."""
        deployment = await self.get(deployment_id)
        if deployment.previous_workflow_id is None or deployment.previous_version is None:
            raise ConflictError("this deployment has no earlier version to go back to")
        before = snapshot(deployment)
        enabled = deployment.status == ACTIVE
        await self._switch(_workflow_ids(deployment), False)
        await self._switch(
            [deployment.previous_workflow_id, *(v["workflow_id"] for v in deployment.previous_site_variants or [])],
            enabled,
        )
        deployment.version, deployment.previous_version = deployment.previous_version, deployment.version
        deployment.workflow_id, deployment.previous_workflow_id = (
            deployment.previous_workflow_id,
            deployment.workflow_id,
        )
        deployment.resolved, deployment.previous_resolved = deployment.previous_resolved or {}, deployment.resolved
        deployment.site_variants, deployment.previous_site_variants = (
            deployment.previous_site_variants or [],
            deployment.site_variants,
        )
        await self.session.flush()
        await self._audit("deployment.rolled_back", deployment, before)
        return deployment

    async def set_enabled(self, deployment_id: uuid.UUID, enabled: bool) -> Deployment:
        deployment = await self.get(deployment_id)
        before = snapshot(deployment)
        await self._switch(_workflow_ids(deployment), enabled)
        deployment.status = ACTIVE if enabled else PAUSED
        await self.session.flush()
        await self._audit("deployment.resumed" if enabled else "deployment.paused", deployment, before)
        return deployment


def _stored(resolved: Resolved) -> dict[str, Any]:
    return {name: [value, resolved.sources[name]] for name, value in sorted(resolved.values.items())}


def _variants(groups: Sequence[SiteGroup], workflows: Sequence[Workflow]) -> builtins.list[dict[str, Any]]:
    return [
        {"site_ids": group.site_ids, "workflow_id": str(workflow.id), "resolved": _stored(group.resolved)}
        for group, workflow in zip(groups, workflows, strict=True)
    ]


def _workflow_ids(deployment: Deployment) -> builtins.list[uuid.UUID | str | None]:
    return [deployment.workflow_id, *(v["workflow_id"] for v in deployment.site_variants)]


def _values(resolved: dict[str, Any]) -> builtins.list[ParameterValue]:
    return [ParameterValue(name=n, value=v, source=level) for n, (v, level) in sorted(resolved.items())]


def deployment_read(deployment: Deployment) -> DeploymentRead:
    return DeploymentRead(
        id=deployment.id,
        key=deployment.key,
        template_key=deployment.template_key,
        source=deployment.source,
        version=deployment.version,
        site_ids=deployment.site_ids,
        params=_values(deployment.resolved),
        site_variants=[
            SiteVariantRead(
                site_ids=v["site_ids"], workflow_id=uuid.UUID(v["workflow_id"]), params=_values(v["resolved"])
            )
            for v in deployment.site_variants
        ],
        bindings=deployment.bindings,
        messages=deployment.messages,
        status=deployment.status,
        workflow_id=deployment.workflow_id,
        previous_version=deployment.previous_version,
        deployed_by=deployment.deployed_by,
        created_at=deployment.created_at,
        updated_at=deployment.updated_at,
    )
