"""The template catalog: what a partner or a customer may browse and check. (Partner libraries,
versions and deployments build on this.)"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.engine.definition import compile_definition
from andon.platform.http.errors import NotFoundError
from andon.platform.tenancy.principal import Principal
from andon.templates_catalog.builtin import builtin_templates
from andon.templates_catalog.dsl.format import Template
from andon.templates_catalog.dsl.load import TemplateError, built_definition, defaults, parameter_errors, parse
from andon.templates_catalog.library.repository import LibraryRepository
from andon.templates_catalog.library.schemas import (
    BenchReport,
    BenchRequest,
    BenchStepRead,
    BindingRead,
    StepSummary,
    TemplateProblem,
    TemplateRead,
    TemplateSummary,
    TemplateVerdict,
    TriggerRead,
)
from andon.templates_catalog.library.versions import newer
from andon.templates_catalog.test_bench import simulate
from andon.tenants.orgs.service import CustomerService


def summary(template: Template, source: str) -> TemplateSummary:
    return TemplateSummary(
        key=template.template,
        version=template.version,
        name=template.name,
        summary=template.summary,
        category=template.category,
        icon=template.icon,
        owner=template.owner,
        source=source,
        triggers=[t.event_type for t in template.triggers],
    )


def detail(template: Template, text: str, source: str) -> TemplateRead:
    compiled = compile_definition(built_definition(template, defaults(template.parameters)))
    return TemplateRead(
        **{f: getattr(summary(template, source), f) for f in TemplateSummary.__struct_fields__},
        description=template.description,
        trigger_rules=[TriggerRead(event_type=t.event_type, when=t.when) for t in template.triggers],
        parameters=template.parameters,
        requires=[
            BindingRead(name=name, title=b.title, description=b.description, capabilities=b.capabilities, types=b.types)
            for name, b in template.requires.items()
        ],
        messages=template.messages,
        steps=[
            StepSummary(key=s.key, kind=type(s).__struct_config__.tag, title=s.title, next=list(s.successors()))  # type: ignore[arg-type]
            for s in compiled.definition.steps
        ],
        yaml=text,
    )


def _matches(template: Template, q: str | None, category: str | None) -> bool:
    if category and template.category != category:
        return False
    if not q:
        return True
    needle = q.casefold()
    return any(needle in text.casefold() for text in (template.template, template.name, template.summary))


class TemplateCatalog:
    """What a caller may browse: the catalog, and the published library of the caller's partner."""

    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.session = session
        self.principal = principal

    async def _partner_id(self) -> uuid.UUID | None:
        if self.principal.customer_id is not None:
            # A customer deploys from its partner's library.
            customer = await CustomerService(self.session, self.principal).get(self.principal.customer_id)
            return customer.partner_id
        return self.principal.partner_id

    async def _library(self) -> list[tuple[Template, str]]:
        partner_id = await self._partner_id()
        if partner_id is None:
            return []
        latest: dict[str, tuple[Template, str]] = {}
        for _, version in await LibraryRepository(self.session, partner_id).published():
            template = parse(version.yaml, version.version)
            held = latest.get(template.template)
            if held is None or newer(template.version, held[0].version):
                latest[template.template] = (template, version.yaml)
        return list(latest.values())

    async def list(self, *, q: str | None = None, category: str | None = None) -> list[TemplateSummary]:
        found: list[tuple[Template, str]] = [(t, "catalog") for t, _ in builtin_templates().values()]
        found += [(t, "partner") for t, _ in await self._library()]
        found.sort(key=lambda pair: (pair[0].name, pair[1]))
        return [summary(t, source) for t, source in found if _matches(t, q, category)]

    async def get(self, key: str, source: str = "catalog") -> TemplateRead:
        """A catalog template, or (``source="partner"``) the newest published version of the caller's
        partner's library template ``key``."""
        if source == "partner":
            found = next((pair for pair in await self._library() if pair[0].template == key), None)
            if found is None:
                raise NotFoundError(f"no published template {key} in your partner's library")
            return detail(*found, "partner")
        catalog = builtin_templates().get(key)
        if catalog is None:
            raise NotFoundError(f"template {key} not found")
        return detail(*catalog, "catalog")

    def check(self, text: str) -> TemplateVerdict:
        try:
            template = parse(text)
        except TemplateError as exc:
            problems = [
                TemplateProblem(field=p.path or "template", line=p.line, message=p.message) for p in exc.problems
            ]
            return TemplateVerdict(ok=False, errors=problems)
        return TemplateVerdict(ok=True, errors=[], template=summary(template, "draft"))


def bench(data: BenchRequest) -> BenchReport:
    """The draft checked, then walked against the sample event (``test_bench.simulate``)."""
    try:
        template = parse(data.yaml)
    except TemplateError as exc:
        problems = [TemplateProblem(field=p.path or "template", line=p.line, message=p.message) for p in exc.problems]
        return BenchReport(ok=False, outcome="invalid", error=None, errors=problems, params={}, steps=[])
    wrong = parameter_errors(template.parameters, {**defaults(template.parameters), **data.params})
    if wrong:
        problems = [TemplateProblem(field=f"params.{n}" if n else "params", line=None, message=m) for n, m in wrong]
        return BenchReport(ok=False, outcome="invalid", error=None, errors=problems, params={}, steps=[])
    result = simulate(template, data.event, params=data.params, answers=data.answers, decisions=dict(data.decisions))
    return BenchReport(
        ok=result.outcome == "succeeded",
        outcome=result.outcome,
        error=result.error,
        errors=[],
        params=result.params,
        steps=[
            BenchStepRead(
                key=s.key,
                kind=s.kind,
                title=s.title,
                status=s.status,
                inputs=s.inputs,
                output=s.output,
                next=s.next,
                note=s.note,
            )
            for s in result.steps
        ],
    )
