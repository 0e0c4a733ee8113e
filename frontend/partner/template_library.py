"""The partner's template library in its console: the templates it forked from the catalog (or wrote),
each with its versions and a badge when the catalog has moved on since the fork; the editor (the YAML
with every problem by line and path, a Check that saves nothing, and a form view for the parameters'
defaults and the message texts), publishing a version, deprecating one, and the diff between any two.

Every change goes through ``LibraryService``, the service behind ``/api/v1/partners/{id}/templates``:
the page checks nothing the API would not. The form view writes its values into the draft's YAML
(``template_yaml.with_values``) and saves that text like the YAML editor does."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery
from litestar.response import Response, Template

from andon.frontend.customer.console import form_problems, service_refused
from andon.frontend.flash import redirect_with_notice
from andon.frontend.pages import Form, page
from andon.frontend.partner.controllers import partner_staff_only
from andon.frontend.partner.template_yaml import Path, with_values
from andon.frontend.schema_form import SchemaField, read_fields, schema_fields
from andon.platform.auth.rbac import P
from andon.platform.http.errors import AndonError, NotFoundError
from andon.platform.http.params import Caller, DbSession, PathId
from andon.platform.tenancy.principal import Principal
from andon.templates_catalog.builtin import builtin_templates
from andon.templates_catalog.dsl.format import Template as TemplateDoc
from andon.templates_catalog.dsl.load import TemplateError, parse
from andon.templates_catalog.library.library import LibraryService
from andon.templates_catalog.library.models import DRAFT
from andon.templates_catalog.library.schemas import ForkCreate, LibraryTemplateRead
from andon.templates_catalog.library.service import TemplateCatalog
from andon.templates_catalog.library.versions import semver

LIBRARY = "/partner/library"
LIST_PAGE = "partner/library.html"
EDITOR_PAGE = "partner/template_edit.html"
DIFF_PAGE = "partner/template_diff.html"
PARAM_FIELD = "param-"
MESSAGE_FIELD = "message-"
VERSION = "version"
PUBLISH_FIELD = "publish-version"
UPSTREAM = "upstream"
TABS = ("yaml", "form")
# An emptied map or list box is an empty default.
EMPTY: dict[str, Any] = {"headers": {}, "lines": []}
_SEMVER = re.compile(r"^\d{1,6}\.\d{1,6}\.\d{1,6}$")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the YAML, where the editor shows it."""

    line: int | None
    field: str
    message: str


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DiffLine:
    kind: str  # add, remove, hunk, file, same
    text: str


def _partner(principal: Principal) -> uuid.UUID:
    # ``partner_staff_only`` let only partner staff this far, and every one of them has a partner.
    assert principal.partner_id is not None
    return principal.partner_id


def _library(db_session: DbSession, principal: Principal) -> LibraryService:
    return LibraryService(db_session, principal)


def _text(value: str) -> str:
    """A text area's value as YAML keeps it (browsers send CRLF line ends)."""
    return value.replace("\r\n", "\n")


def _line_of_key(text: str, field: str) -> int | None:
    """The line of ``template:`` or ``version:``, which the library's own rules name without a line."""
    if field not in ("template", VERSION):
        return None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(f"{field}:"):
            return number
    return None


def problems_of(exc: AndonError, text: str) -> list[Problem]:
    """The service's refusal as the editor's list: each problem with its line where one is known."""
    errors = exc.extra.get("errors", []) if isinstance(exc.extra, dict) else []
    found = []
    for e in errors:
        field = str(e.get("field") or "template")
        line = e.get("line")
        found.append(Problem(line if isinstance(line, int) else _line_of_key(text, field), field, str(e["message"])))
    return found or [Problem(None, "template", exc.detail)]


def _next_version(read: LibraryTemplateRead) -> str:
    """What the next draft is called by default: the minor after the newest version."""
    known = [v.version for v in read.versions]
    major, minor, _ = max((semver(v) for v in known), default=(1, -1, 0))
    return f"{major}.{minor + 1}.0"


def _latest(read: LibraryTemplateRead) -> str:
    """The version the editor opens: the draft, else the newest published one."""
    if read.draft is not None:
        return DRAFT
    return max((v.version for v in read.versions), key=semver)


def _versions_for_diff(read: LibraryTemplateRead) -> list[tuple[str, str]]:
    """(value, label) pairs for the diff's choosers: upstream, each version, the draft."""
    choices: list[tuple[str, str]] = []
    if read.upstream_key:
        choices.append((UPSTREAM, f"Catalog {read.upstream_key} (now)"))
    for v in sorted(read.versions, key=lambda v: semver(v.version)):
        if v.status != DRAFT:
            choices.append((v.version, f"{v.version} ({v.status})"))
    if read.draft is not None:
        choices.append((DRAFT, f"Draft {read.draft}"))
    return choices


def _default_diff(read: LibraryTemplateRead) -> tuple[str, str]:
    """What changed last: the draft (or newest version) against the version before, else upstream."""
    released = sorted((v.version for v in read.versions if v.status != DRAFT), key=semver)
    head = DRAFT if read.draft is not None else (released[-1] if released else DRAFT)
    before = released if head == DRAFT else released[:-1]
    base = before[-1] if before else (UPSTREAM if read.upstream_key else head)
    return base, head


def diff_lines(diff: str) -> list[DiffLine]:
    lines = []
    for text in diff.splitlines():
        if text.startswith(("+++", "---")):
            kind = "file"
        elif text.startswith("@@"):
            kind = "hunk"
        elif text.startswith("+"):
            kind = "add"
        elif text.startswith("-"):
            kind = "remove"
        else:
            kind = "same"
        lines.append(DiffLine(kind, text))
    return lines


# --- the form view ----------------------------------------------------------------------------------------


def form_fields(doc: TemplateDoc) -> tuple[SchemaField, ...]:
    return schema_fields(doc.parameters, PARAM_FIELD)


def form_values(doc: TemplateDoc) -> dict[str, str]:
    """The form view as it opens: the draft's version, its parameters' defaults, its messages."""
    values = {f.name: f.default for f in form_fields(doc)}
    values |= {MESSAGE_FIELD + name: text for name, text in doc.messages.items()}
    values[VERSION] = doc.version
    return values


def read_form(doc: TemplateDoc, data: Mapping[str, str]) -> tuple[dict[str, str], dict[Path, Any], dict[str, str]]:
    """What was typed (to put back), the changes to the YAML by path, and what could not be read. A value
    left as the draft has it is no change, so the draft's own text stays as it was written."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    fields = form_fields(doc)
    typed = read_fields(fields, data, values, errors)
    changes: dict[Path, Any] = {}
    properties = doc.parameters.get("properties") or {}
    for field in fields:
        path: Path = ("parameters", "properties", field.key, "default")
        had = isinstance(properties.get(field.key), dict) and "default" in properties[field.key]
        if field.key in typed:
            value = typed[field.key]
        elif field.widget in EMPTY:
            value = EMPTY[field.widget]
        else:
            if had and field.name not in errors:
                # Taking a default away changes what the template needs of every deployment: a YAML edit.
                errors[field.name] = "the default customers start from; to remove it, edit the YAML"
            continue
        if not had or properties[field.key]["default"] != value:
            changes[path] = value
    for name, current in doc.messages.items():
        written = _text(str(data.get(MESSAGE_FIELD + name, current)))
        values[MESSAGE_FIELD + name] = written
        if not written.strip():
            errors[MESSAGE_FIELD + name] = "required: a message the workflow sends cannot be empty"
        elif written.strip() != current.strip():
            changes[("messages", name)] = written.strip()
    version = str(data.get(VERSION, "")).strip()
    values[VERSION] = version
    if not _SEMVER.match(version):
        errors[VERSION] = "a version such as 1.1.0"
    elif version != doc.version:
        changes[(VERSION,)] = version
    return values, changes, errors


def form_field_of(problem: Problem, doc: TemplateDoc) -> str | None:
    """The form view's control a problem belongs to, if any."""
    parts = problem.field.split(".")
    if parts[:2] == ["parameters", "properties"] and len(parts) > 2:
        return PARAM_FIELD + parts[2]
    if parts[0] == "messages" and len(parts) > 1 and parts[1] in doc.messages:
        return MESSAGE_FIELD + parts[1]
    if parts[0] == VERSION:
        return VERSION
    return None


class TemplateLibraryPageController(Controller):
    path = LIBRARY
    tags = ["Partner console"]
    include_in_schema = False
    guards = [partner_staff_only]

    async def _list_page(
        self, db_session: DbSession, principal: Principal, *, status: int = 200, **context: Any
    ) -> Template:
        rows = await _library(db_session, principal).list(_partner(principal))
        catalog = sorted(((t.template, t.name) for t, _ in builtin_templates().values()), key=lambda pair: pair[1])
        context.setdefault("values", {})
        context.setdefault("errors", {})
        return page(
            LIST_PAGE,
            status=status,
            principal=principal,
            rows=rows,
            catalog=catalog,
            forked={r.upstream_key for r in rows},
            **context,
        )

    @get("/", opt={"permission": P.WORKFLOWS_READ})
    async def library(self, db_session: DbSession, principal: Caller) -> Template:
        return await self._list_page(db_session, principal)

    @post("/forks", opt={"permission": P.WORKFLOWS_WRITE})
    async def fork(self, db_session: DbSession, principal: Caller, state: State, data: Form) -> Response[Any]:
        values = {k: str(data.get(k, "")).strip() for k in ("template", "key")}
        try:
            raw: dict[str, Any] = {"template": values["template"]}
            if values["key"]:
                raw["key"] = values["key"]
            made = await _library(db_session, principal).fork(_partner(principal), msgspec.convert(raw, ForkCreate))
        except (AndonError, msgspec.ValidationError) as exc:
            problems = await service_refused(db_session, principal, exc)
            if not problems["errors"] and isinstance(exc, AndonError):
                # A taken key is a conflict about the key, whatever the service calls it.
                problems["errors"] = {"key": exc.detail}
            return await self._list_page(db_session, principal, values=values, **problems)
        return redirect_with_notice(
            state.settings,
            f"{LIBRARY}/{made.id}",
            f"Forked {made.name} {made.upstream_version} into your library as {made.key}; edit it, then publish.",
        )

    async def _editor(
        self,
        db_session: DbSession,
        principal: Principal,
        template_id: uuid.UUID,
        *,
        tab: str = "yaml",
        text: str | None = None,
        problems: Sequence[Problem] = (),
        checked: bool = False,
        status: int = 200,
        form: dict[str, str] | None = None,
        form_errors: dict[str, str] | None = None,
        publish: dict[str, str] | None = None,
        publish_error: str | None = None,
        error: str | None = None,
    ) -> Template:
        library = _library(db_session, principal)
        read = await library.get(_partner(principal), template_id)
        opened = _latest(read)
        stored = await library.text(_partner(principal), template_id, opened)
        doc: TemplateDoc | None
        try:
            doc = parse(stored)
        except TemplateError:
            doc = None  # the format tightened since it was saved: the form view asks for the YAML first
        return page(
            EDITOR_PAGE,
            status=status,
            principal=principal,
            t=read,
            tab=tab if tab in TABS else "yaml",
            here=f"{LIBRARY}/{read.id}",
            opened=opened,
            text=stored if text is None else text,
            problems=problems,
            bad_lines=sorted({p.line for p in problems if p.line}),
            checked=checked,
            fields=form_fields(doc) if doc else (),
            messages=doc.messages if doc else {},
            form=form if form is not None else (form_values(doc) if doc else {}),
            errors=form_errors or {},
            publish=publish or {PUBLISH_FIELD: read.draft or _next_version(read)},
            publish_error=publish_error,
            error=error,
            suggested=_next_version(read),
            diff=_default_diff(read),
            writer=P.WORKFLOWS_WRITE in principal.permissions,
        )

    @get("/{template_id:uuid}", opt={"permission": P.WORKFLOWS_READ})
    async def editor(
        self, db_session: DbSession, principal: Caller, template_id: PathId, tab: FromQuery[str] = "yaml"
    ) -> Template:
        return await self._editor(db_session, principal, template_id, tab=tab)

    @post("/{template_id:uuid}/check", opt={"permission": P.WORKFLOWS_READ})
    async def check(self, db_session: DbSession, principal: Caller, template_id: PathId, data: Form) -> Template:
        """Checks the text in the editor and saves nothing; the text comes back as typed. Always 200, as
        the API's check: the check worked, whatever it found (and htmx swaps in only a success)."""
        text = _text(str(data.get("yaml", "")))
        verdict = TemplateCatalog(db_session, principal).check(text)
        problems = [Problem(p.line, p.field, p.message) for p in verdict.errors]
        if verdict.ok and verdict.template is not None:
            read = await _library(db_session, principal).get(_partner(principal), template_id)
            if verdict.template.key != read.key:
                problems.append(
                    Problem(
                        _line_of_key(text, "template"),
                        "template",
                        f"this library template is '{read.key}'; the YAML says '{verdict.template.key}'",
                    )
                )
            released = {v.version: v.status for v in read.versions if v.status != DRAFT}
            if verdict.template.version in released:
                problems.append(
                    Problem(
                        _line_of_key(text, VERSION),
                        VERSION,
                        f"{verdict.template.version} is already {released[verdict.template.version]}; "
                        "give the draft a new version",
                    )
                )
        return await self._editor(
            db_session,
            principal,
            template_id,
            text=text,
            problems=problems,
            checked=True,
        )

    @post("/{template_id:uuid}/draft", opt={"permission": P.WORKFLOWS_WRITE})
    async def save_draft(
        self, db_session: DbSession, principal: Caller, state: State, template_id: PathId, data: Form
    ) -> Response[Any]:
        text = _text(str(data.get("yaml", "")))
        try:
            saved = await _library(db_session, principal).save_draft(_partner(principal), template_id, text)
        except AndonError as exc:
            if isinstance(exc, NotFoundError):
                raise
            refusal = await service_refused(db_session, principal, exc)
            return await self._editor(
                db_session,
                principal,
                template_id,
                text=text,
                problems=problems_of(exc, text),
                status=refusal["status"],
                error="Not saved: the YAML needs the changes listed below.",
            )
        return redirect_with_notice(state.settings, f"{LIBRARY}/{template_id}", f"Draft {saved.draft} saved.")

    @post("/{template_id:uuid}/form", opt={"permission": P.WORKFLOWS_WRITE})
    async def save_form(
        self, db_session: DbSession, principal: Caller, state: State, template_id: PathId, data: Form
    ) -> Response[Any]:
        """The form view: the parameters' defaults and the messages written into the draft's YAML."""
        library = _library(db_session, principal)
        read = await library.get(_partner(principal), template_id)
        stored = await library.text(_partner(principal), template_id, _latest(read))
        try:
            doc = parse(stored)
        except TemplateError as exc:
            problems = [Problem(p.line, p.path or "template", p.message) for p in exc.problems]
            return await self._editor(db_session, principal, template_id, problems=problems, status=422)
        values, changes, errors = read_form(doc, data)
        if errors:
            return await self._editor(
                db_session,
                principal,
                template_id,
                tab="form",
                form=values,
                form_errors=errors,
                status=422,
                error="Some fields need your attention.",
            )
        if not changes:
            return redirect_with_notice(state.settings, f"{LIBRARY}/{template_id}?tab=form", "Nothing changed.")
        text = with_values(stored, changes)
        try:
            saved = await library.save_draft(_partner(principal), template_id, text)
        except AndonError as exc:
            await service_refused(db_session, principal, exc)
            problems = problems_of(exc, text)
            placed = {f: p.message for p in problems if (f := form_field_of(p, doc)) is not None}
            rest = [p for p in problems if form_field_of(p, doc) is None]
            return await self._editor(
                db_session,
                principal,
                template_id,
                tab="form",
                form=values,
                form_errors=placed,
                problems=rest,
                status=422,
                error="Not saved: some values need your attention.",
            )
        return redirect_with_notice(
            state.settings, f"{LIBRARY}/{template_id}?tab=form", f"Draft {saved.draft} saved from the form."
        )

    async def _publish(self, db_session: DbSession, principal: Principal, template_id: uuid.UUID, version: str) -> str:
        """Publishes the draft as ``version`` (written into the draft first when it says another); the
        refusal, as the version field shows it, is raised as ``_Refused``."""
        library = _library(db_session, principal)
        partner = _partner(principal)
        if not _SEMVER.match(version):
            raise _Refused("a version such as 1.1.0")
        read = await library.get(partner, template_id)
        if read.draft is None:
            raise _Refused("there is no draft to publish; save one first")
        try:
            if read.draft != version:
                draft = await library.text(partner, template_id, DRAFT)
                await library.save_draft(partner, template_id, with_values(draft, {(VERSION,): version}))
            published = await library.publish(partner, template_id)
        except AndonError as exc:
            if isinstance(exc, NotFoundError):
                raise
            await service_refused(db_session, principal, exc)
            summary, fields = form_problems(exc)
            raise _Refused(fields.get(VERSION) or "; ".join(fields.values()) or summary) from None
        return f"Published {published.key} {published.latest_published}; roll it out to your customers when ready."

    @post("/{template_id:uuid}/publish", opt={"permission": P.WORKFLOWS_WRITE})
    async def publish(
        self, db_session: DbSession, principal: Caller, state: State, template_id: PathId, data: Form
    ) -> Response[Any]:
        """The draft becomes an immutable version; a version typed here is written into the draft first."""
        version = str(data.get(PUBLISH_FIELD, "")).strip()
        try:
            done = await self._publish(db_session, principal, template_id, version)
        except _Refused as refusal:
            return await self._editor(
                db_session,
                principal,
                template_id,
                publish={PUBLISH_FIELD: version},
                publish_error=refusal.reason,
                status=422,
                error=f"Not published: {refusal.reason}",
            )
        return redirect_with_notice(state.settings, f"{LIBRARY}/{template_id}", done)

    @post("/{template_id:uuid}/versions/{version:str}/deprecate", opt={"permission": P.WORKFLOWS_WRITE})
    async def deprecate(
        self, db_session: DbSession, principal: Caller, state: State, template_id: PathId, version: FromPath[str]
    ) -> Response[Any]:
        if not _SEMVER.match(version):
            raise NotFoundError(f"no published version {version}")
        read = await _library(db_session, principal).deprecate(_partner(principal), template_id, version)
        return redirect_with_notice(
            state.settings,
            f"{LIBRARY}/{template_id}",
            f"{read.key} {version} is deprecated: no new deployment may pick it; deployments on it keep it.",
        )

    @get("/{template_id:uuid}/diff", opt={"permission": P.WORKFLOWS_READ})
    async def diff(
        self,
        db_session: DbSession,
        principal: Caller,
        template_id: PathId,
        base: FromQuery[str | None] = None,
        head: FromQuery[str | None] = None,
    ) -> Template:
        library = _library(db_session, principal)
        read = await library.get(_partner(principal), template_id)
        choices = _versions_for_diff(read)
        known = {value for value, _ in choices}
        default_base, default_head = _default_diff(read)
        chosen_base = base if base in known else default_base
        chosen_head = head if head in known else default_head
        found = await library.diff(_partner(principal), template_id, chosen_base, chosen_head)
        lines = diff_lines(found.diff)
        return page(
            DIFF_PAGE,
            principal=principal,
            t=read,
            here=f"{LIBRARY}/{read.id}",
            choices=choices,
            base=chosen_base,
            head=chosen_head,
            lines=lines,
            added=sum(1 for line in lines if line.kind == "add"),
            removed=sum(1 for line in lines if line.kind == "remove"),
        )
