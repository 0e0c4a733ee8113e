"""A partner's template library: fork from the catalog, edit a draft, publish immutable versions,
deprecate them, compare any two, and see when the catalog has moved on since the fork."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.audit.service import record
from andon.platform.db.types import utcnow
from andon.platform.http.errors import ConflictError, NotFoundError, PermissionDeniedError, field_error
from andon.platform.tenancy.principal import OrgKind, Principal
from andon.templates_catalog.builtin import builtin_templates
from andon.templates_catalog.dsl.format import Template
from andon.templates_catalog.dsl.load import TemplateError, parse
from andon.templates_catalog.library.models import (
    DEPRECATED,
    DRAFT,
    PUBLISHED,
    PartnerTemplate,
    TemplateVersion,
)
from andon.templates_catalog.library.repository import LibraryRepository
from andon.templates_catalog.library.schemas import ForkCreate, LibraryTemplateRead, VersionDiff, VersionRead
from andon.templates_catalog.library.versions import newer, semver, yaml_diff
from andon.tenants.orgs.service import PartnerService


def version_read(row: TemplateVersion) -> VersionRead:
    return VersionRead(
        version=row.version,
        status=row.status,
        created_at=row.created_at,
        published_at=row.published_at,
        published_by=row.published_by,
        deprecated_at=row.deprecated_at,
    )


def _checked(text: str) -> Template:
    try:
        return parse(text)
    except TemplateError as exc:
        raise exc.as_validation_error() from None


class LibraryService:
    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.session = session
        self.principal = principal

    async def _library(self, partner_id: uuid.UUID, *, write: bool = False) -> LibraryRepository:
        partner = await PartnerService(self.session, self.principal).get(partner_id)
        if write and not (self.principal.org_kind is OrgKind.PARTNER and self.principal.partner_id == partner.id):
            raise PermissionDeniedError("only the partner's own people change its template library")
        return LibraryRepository(self.session, partner.id)

    async def _template(
        self, library: LibraryRepository, template_id: uuid.UUID, *, lock: bool = False
    ) -> PartnerTemplate:
        template = await library.template(template_id, lock=lock)
        if template is None:
            raise NotFoundError(f"template {template_id} not found")
        return template

    async def _read(self, library: LibraryRepository, template: PartnerTemplate) -> LibraryTemplateRead:
        versions = list(await library.versions(template.id))
        published = [v.version for v in versions if v.status in (PUBLISHED, DEPRECATED)]
        latest = max(published, key=semver, default=None)
        catalog = builtin_templates().get(template.upstream_key or "")
        upstream_now = catalog[0].version if catalog else None
        return LibraryTemplateRead(
            id=template.id,
            key=template.key,
            name=template.name,
            upstream_key=template.upstream_key,
            upstream_version=template.upstream_version,
            upstream_newer=upstream_now
            if upstream_now and template.upstream_version and newer(upstream_now, template.upstream_version)
            else None,
            latest_published=latest,
            draft=next((v.version for v in versions if v.status == DRAFT), None),
            versions=[version_read(v) for v in versions],
        )

    async def _audit(self, action: str, partner_id: uuid.UUID, target: uuid.UUID, after: dict[str, Any]) -> None:
        await record(
            self.session,
            self.principal,
            action,
            target_type="template",
            target_id=target,
            after=after,
            partner_id=partner_id,
        )

    async def list(self, partner_id: uuid.UUID) -> list[LibraryTemplateRead]:
        library = await self._library(partner_id)
        return [await self._read(library, t) for t in await library.templates()]

    async def get(self, partner_id: uuid.UUID, template_id: uuid.UUID) -> LibraryTemplateRead:
        library = await self._library(partner_id)
        return await self._read(library, await self._template(library, template_id))

    async def fork(self, partner_id: uuid.UUID, data: ForkCreate) -> LibraryTemplateRead:
        library = await self._library(partner_id, write=True)
        found = builtin_templates().get(data.template)
        if found is None:
            raise field_error("template", f"no catalog template '{data.template}'")
        upstream, text = found
        key = data.key or upstream.template
        if await library.by_key(key) is not None:
            raise ConflictError(f"the library already has a template '{key}'; fork it under another key")
        if key != upstream.template:
            text = text.replace(f"template: {upstream.template}\n", f"template: {key}\n", 1)
        template = PartnerTemplate(
            partner_id=library.partner_id,
            key=key,
            name=upstream.name,
            upstream_key=upstream.template,
            upstream_version=upstream.version,
            created_by=self.principal.label,
        )
        await library.add(template)
        await library.add(
            TemplateVersion(partner_id=library.partner_id, template_id=template.id, version=upstream.version, yaml=text)
        )
        await self._audit(
            "template.forked",
            library.partner_id,
            template.id,
            {"key": key, "from": f"{upstream.template}@{upstream.version}"},
        )
        return await self._read(library, template)

    async def create(self, partner_id: uuid.UUID, text: str) -> LibraryTemplateRead:
        library = await self._library(partner_id, write=True)
        parsed = _checked(text)
        if await library.by_key(parsed.template) is not None:
            raise ConflictError(f"the library already has a template '{parsed.template}'")
        template = PartnerTemplate(
            partner_id=library.partner_id, key=parsed.template, name=parsed.name, created_by=self.principal.label
        )
        await library.add(template)
        await library.add(
            TemplateVersion(partner_id=library.partner_id, template_id=template.id, version=parsed.version, yaml=text)
        )
        await self._audit("template.created", library.partner_id, template.id, {"key": parsed.template})
        return await self._read(library, template)

    async def save_draft(self, partner_id: uuid.UUID, template_id: uuid.UUID, text: str) -> LibraryTemplateRead:
        """The template's draft becomes ``text`` (a draft is made when there is none). Its version must
        be new: published versions never change."""
        library = await self._library(partner_id, write=True)
        template = await self._template(library, template_id, lock=True)
        parsed = _checked(text)
        if parsed.template != template.key:
            raise field_error(
                "template", f"this library template is '{template.key}'; the YAML says '{parsed.template}'"
            )
        existing = await library.version(template.id, parsed.version)
        if existing is not None and existing.status != DRAFT:
            raise field_error("version", f"{parsed.version} is already {existing.status}; give the draft a new version")
        draft = await library.draft(template.id)
        if draft is None:
            draft = TemplateVersion(
                partner_id=library.partner_id, template_id=template.id, version=parsed.version, yaml=text
            )
            await library.add(draft)
        else:
            draft.version, draft.yaml = parsed.version, text
        template.name = parsed.name
        await self.session.flush()
        await self._audit("template.draft_saved", library.partner_id, template.id, {"version": parsed.version})
        return await self._read(library, template)

    async def publish(self, partner_id: uuid.UUID, template_id: uuid.UUID) -> LibraryTemplateRead:
        library = await self._library(partner_id, write=True)
        template = await self._template(library, template_id, lock=True)
        draft = await library.draft(template.id)
        if draft is None:
            raise ConflictError("there is no draft to publish; save one first")
        _checked(draft.yaml)  # the format may have tightened since it was saved
        released = [v.version for v in await library.versions(template.id) if v.status != DRAFT]
        latest = max(released, key=semver, default=None)
        if not newer(draft.version, latest):
            raise field_error("version", f"{draft.version} is not newer than the published {latest}; raise it")
        draft.status, draft.published_at, draft.published_by = PUBLISHED, utcnow(), self.principal.label
        await self.session.flush()
        await self._audit("template.published", library.partner_id, template.id, {"version": draft.version})
        return await self._read(library, template)

    async def deprecate(self, partner_id: uuid.UUID, template_id: uuid.UUID, version: str) -> LibraryTemplateRead:
        """No new deployment may pick this version; running deployments keep it until upgraded."""
        library = await self._library(partner_id, write=True)
        template = await self._template(library, template_id, lock=True)
        row = await library.version(template.id, version)
        if row is None or row.status == DRAFT:
            raise NotFoundError(f"no published version {version} of {template.key}")
        if row.status == PUBLISHED:
            row.status, row.deprecated_at = DEPRECATED, utcnow()
            await self.session.flush()
            await self._audit("template.deprecated", library.partner_id, template.id, {"version": version})
        return await self._read(library, template)

    async def diff(self, partner_id: uuid.UUID, template_id: uuid.UUID, base: str, head: str) -> VersionDiff:
        """Two versions compared (``upstream``: the catalog's current text; ``draft``: the draft)."""
        library = await self._library(partner_id)
        template = await self._template(library, template_id)
        return VersionDiff(
            base=base,
            head=head,
            diff=yaml_diff(
                await self._text(library, template, base), await self._text(library, template, head), base, head
            ),
        )

    async def text(self, partner_id: uuid.UUID, template_id: uuid.UUID, which: str) -> str:
        """One version's YAML (a version number, ``draft`` or ``upstream``), as ``diff`` compares them."""
        library = await self._library(partner_id)
        return await self._text(library, await self._template(library, template_id), which)

    async def _text(self, library: LibraryRepository, template: PartnerTemplate, which: str) -> str:
        if which == "upstream":
            found = builtin_templates().get(template.upstream_key or "")
            if found is None:
                raise NotFoundError(f"{template.key} was not forked from the catalog")
            return found[1]
        row = await library.draft(template.id) if which == DRAFT else await library.version(template.id, which)
        if row is None:
            raise NotFoundError(f"no version {which} of {template.key}")
        return row.yaml
