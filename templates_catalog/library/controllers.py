"""``/api/v1/templates``: the catalog, a template's detail, the format's JSON Schema, and a check;
``/api/v1/partners/{id}/templates``: a partner's own library (forks, drafts, versions)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, get, post, put
from litestar.params import JSONBody, Parameter, QueryParameter

from andon.platform.auth.rbac import P
from andon.platform.http.params import Caller, DbSession, PathId
from andon.templates_catalog.dsl.format import template_schema
from andon.templates_catalog.library.library import LibraryService
from andon.templates_catalog.library.schemas import (
    BenchReport,
    BenchRequest,
    ForkCreate,
    LibraryTemplateRead,
    TemplateCheck,
    TemplateRead,
    TemplateSummary,
    TemplateVerdict,
    VersionDiff,
)
from andon.templates_catalog.library.service import TemplateCatalog, bench

TemplateKeyParam = Annotated[str, Parameter(pattern=r"^[a-z][a-z0-9-]{1,62}[a-z0-9]$")]
SourceParam = Annotated[Literal["catalog", "partner"], QueryParameter()]


class TemplateController(Controller):
    path = "/api/v1/templates"
    tags = ["Templates"]

    @get("/", opt={"permission": P.WORKFLOWS_READ})
    async def list_templates(
        self,
        db_session: DbSession,
        principal: Caller,
        q: Annotated[str | None, QueryParameter(max_length=200)] = None,
        category: Annotated[str | None, QueryParameter(max_length=40)] = None,
    ) -> list[TemplateSummary]:
        """The catalog and the caller's partner's published library, filtered by words (`q`) and `category`."""
        return await TemplateCatalog(db_session, principal).list(q=q, category=category)

    @get("/schema", opt={"permission": P.WORKFLOWS_READ})
    async def schema(self) -> dict[str, Any]:
        """The template format's JSON Schema, for editors."""
        return template_schema()

    @post("/check", status_code=200, opt={"permission": P.WORKFLOWS_READ})
    async def check(self, db_session: DbSession, principal: Caller, data: JSONBody[TemplateCheck]) -> TemplateVerdict:
        """Checks a template's YAML; every problem with its line and path. Stores nothing."""
        return TemplateCatalog(db_session, principal).check(data.yaml)

    @post("/test-bench", status_code=200, opt={"permission": P.WORKFLOWS_READ})
    async def test_bench(self, data: JSONBody[BenchRequest]) -> BenchReport:
        """Walks a draft against a sample event with fakes for every system: the step timeline with
        rendered inputs and the path taken, or the error that would fail the run. Calls and stores nothing."""
        return bench(data)

    @get("/{key:str}", opt={"permission": P.WORKFLOWS_READ})
    async def get_template(
        self, db_session: DbSession, principal: Caller, key: TemplateKeyParam, source: SourceParam = "catalog"
    ) -> TemplateRead:
        """A template (the catalog's, or with `source=partner` the partner library's newest published
        version): its parameters (JSON Schema), required connections, messages, steps and YAML."""
        return await TemplateCatalog(db_session, principal).get(key, source)


VersionParam = Annotated[str, Parameter(pattern=r"^(\d{1,6}\.\d{1,6}\.\d{1,6}|draft|upstream)$")]


class PartnerLibraryController(Controller):
    path = "/api/v1/partners/{partner_id:uuid}/templates"
    tags = ["Templates"]

    @get("/", opt={"permission": P.WORKFLOWS_READ})
    async def list_library(
        self, db_session: DbSession, principal: Caller, partner_id: PathId
    ) -> list[LibraryTemplateRead]:
        """The partner's own templates with their versions, and whether the catalog has moved on."""
        return await LibraryService(db_session, principal).list(partner_id)

    @post("/", opt={"permission": P.WORKFLOWS_WRITE})
    async def create_template(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, data: JSONBody[TemplateCheck]
    ) -> LibraryTemplateRead:
        """A new template from YAML, as a draft."""
        return await LibraryService(db_session, principal).create(partner_id, data.yaml)

    @post("/forks", opt={"permission": P.WORKFLOWS_WRITE})
    async def fork(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, data: JSONBody[ForkCreate]
    ) -> LibraryTemplateRead:
        """Copies a catalog template into the library as a draft that remembers its upstream."""
        return await LibraryService(db_session, principal).fork(partner_id, data)

    @get("/{template_id:uuid}", opt={"permission": P.WORKFLOWS_READ})
    async def get_library_template(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, template_id: PathId
    ) -> LibraryTemplateRead:
        return await LibraryService(db_session, principal).get(partner_id, template_id)

    @put("/{template_id:uuid}/draft", opt={"permission": P.WORKFLOWS_WRITE})
    async def save_draft(
        self,
        db_session: DbSession,
        principal: Caller,
        partner_id: PathId,
        template_id: PathId,
        data: JSONBody[TemplateCheck],
    ) -> LibraryTemplateRead:
        """Replaces the draft (checked first: 422 with every problem's line and path)."""
        return await LibraryService(db_session, principal).save_draft(partner_id, template_id, data.yaml)

    @post("/{template_id:uuid}/publish", status_code=200, opt={"permission": P.WORKFLOWS_WRITE})
    async def publish(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, template_id: PathId
    ) -> LibraryTemplateRead:
        """The draft becomes an immutable version (newer than every published one)."""
        return await LibraryService(db_session, principal).publish(partner_id, template_id)

    @post(
        "/{template_id:uuid}/versions/{version:str}/deprecate", status_code=200, opt={"permission": P.WORKFLOWS_WRITE}
    )
    async def deprecate(
        self, db_session: DbSession, principal: Caller, partner_id: PathId, template_id: PathId, version: VersionParam
    ) -> LibraryTemplateRead:
        """No new deployment may pick this version."""
        return await LibraryService(db_session, principal).deprecate(partner_id, template_id, version)

    @get("/{template_id:uuid}/diff", opt={"permission": P.WORKFLOWS_READ})
    async def diff(
        self,
        db_session: DbSession,
        principal: Caller,
        partner_id: PathId,
        template_id: PathId,
        base: VersionParam,
        head: VersionParam,
    ) -> VersionDiff:
        """A unified diff between two versions (a version number, `draft`, or `upstream`: the catalog's)."""
        return await LibraryService(db_session, principal).diff(partner_id, template_id, base, head)


TEMPLATE_CONTROLLERS = [TemplateController, PartnerLibraryController]
