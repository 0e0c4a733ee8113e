"""Rollouts in the partner console: move the customers that run a library template to a newly published
version, wave by wave (the canaries first); each wave's customers with their outcome, the next wave
run from the page, a wave rolled back. ``RolloutService`` (behind ``/api/v1/partners/{id}/rollouts``)
does the work; these pages choose and show.

Which customers run the template is read inside each customer, so only those that grant their partner
access can be looked at (and upgraded): the others are listed apart, with the reason."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery
from litestar.response import Response, Template
from sqlalchemy.ext.asyncio import AsyncSession

from andon.frontend.customer.console import form_problems, service_refused
from andon.frontend.flash import redirect_with_notice
from andon.frontend.pages import Form, page
from andon.frontend.partner.controllers import partner_staff_only
from andon.platform.auth.rbac import P
from andon.platform.db.scope import unbind_tenant
from andon.platform.db.types import utcnow
from andon.platform.engine.dispatch import broker_sender
from andon.platform.http.errors import AndonError
from andon.platform.http.params import Caller, DbSession, PathId
from andon.platform.tenancy.principal import Principal
from andon.templates_catalog.deployments.models import PARTNER
from andon.templates_catalog.deployments.service import DeploymentService
from andon.templates_catalog.library.library import LibraryService
from andon.templates_catalog.library.models import PUBLISHED
from andon.templates_catalog.library.versions import semver
from andon.templates_catalog.rollouts.schemas import RolloutCreate, RolloutRead
from andon.templates_catalog.rollouts.service import RolloutService
from andon.tenants.orgs.service import CustomerService

ROLLOUTS = "/partner/rollouts"
WAVE_FIELD = "wave-"
RELEASE = "release"
CANARY, LATER, LEAVE_OUT = "canary", "later", "skip"
WAVE_CHOICES = ((CANARY, "Canary (first wave)"), (LATER, "Second wave"), (LEAVE_OUT, "Leave out"))
# The rollout pages look at this many customers at most; a partner with more rolls out through the API.
CUSTOMER_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Candidate:
    """A customer of the partner and what it runs of the template (``reachable``: it grants access)."""

    id: uuid.UUID
    name: str
    reachable: bool
    versions: tuple[str, ...]


def _partner(principal: Principal) -> uuid.UUID:
    assert principal.partner_id is not None  # partner_staff_only
    return principal.partner_id


def _service(db_session: DbSession, principal: Principal, state: State) -> RolloutService:
    return RolloutService(db_session, principal, broker_sender(state.broker))


async def customer_names(session: AsyncSession, principal: Principal) -> dict[str, str]:
    rows, _ = await CustomerService(session, principal).list(limit=CUSTOMER_LIMIT, offset=0, q=None, partner_id=None)
    return {str(c.id): c.name for c in rows}


async def candidates(session: AsyncSession, principal: Principal, state: State, template_key: str) -> list[Candidate]:
    """Each customer of the partner with the versions of ``template_key`` (from the library) it runs."""
    customers = CustomerService(session, principal)
    rows, _ = await customers.list(limit=CUSTOMER_LIMIT, offset=0, q=None, partner_id=None)
    now = utcnow()
    found: list[Candidate] = []
    for customer in rows:
        if not customer.partner_may_act(now):
            found.append(Candidate(customer.id, customer.name, False, ()))
            continue
        tenant = await customers.open_tenant(customer.id)
        deployments = await DeploymentService(session, tenant, broker_sender(state.broker)).of_template(
            template_key, PARTNER
        )
        versions = tuple(sorted({d.version for d in deployments}, key=semver))
        # The partner's own rows are read outside any customer's scope.
        await unbind_tenant(session)
        found.append(Candidate(customer.id, customer.name, True, versions))
    return found


async def releases(session: AsyncSession, principal: Principal) -> list[tuple[str, str]]:
    """Every published version of the library as (``key@version``, words), newest first per template."""
    choices: list[tuple[str, str]] = []
    for template in await LibraryService(session, principal).list(_partner(principal)):
        published = sorted((v.version for v in template.versions if v.status == PUBLISHED), key=semver, reverse=True)
        choices += [(f"{template.key}@{v}", f"{template.name} {v}") for v in published]
    return choices


def read_waves(data: Mapping[str, str], offered: Sequence[Candidate]) -> tuple[list[list[str]], dict[str, str]]:
    """The waves chosen (canaries, then the rest), and what is wrong with the choice."""
    canaries: list[str] = []
    later: list[str] = []
    for candidate in offered:
        choice = data.get(WAVE_FIELD + str(candidate.id), LEAVE_OUT)
        if choice == CANARY:
            canaries.append(str(candidate.id))
        elif choice == LATER:
            later.append(str(candidate.id))
    waves = [w for w in (canaries, later) if w]
    errors = {} if waves else {"waves": "choose at least one customer for the rollout"}
    return waves, errors


class RolloutPageController(Controller):
    path = ROLLOUTS
    tags = ["Partner console"]
    include_in_schema = False
    guards = [partner_staff_only]

    @get("/", opt={"permission": P.WORKFLOWS_READ})
    async def rollouts(self, db_session: DbSession, principal: Caller, state: State) -> Template:
        rows = await _service(db_session, principal, state).list(_partner(principal))
        return page(
            "partner/rollouts.html",
            principal=principal,
            rows=sorted(rows, key=lambda r: r.created_at, reverse=True),
        )

    async def _new_page(
        self,
        db_session: DbSession,
        principal: Principal,
        state: State,
        release: str | None,
        *,
        chosen: Mapping[str, str] | None = None,
        status: int = 200,
        errors: dict[str, str] | None = None,
        error: str | None = None,
    ) -> Template:
        choices = await releases(db_session, principal)
        known = dict(choices)
        picked = release if release in known else None
        offered: list[Candidate] = []
        unreachable: list[Candidate] = []
        version = ""
        if picked is not None:
            key, version = picked.split("@", 1)
            for candidate in await candidates(db_session, principal, state, key):
                if not candidate.reachable:
                    unreachable.append(candidate)
                elif candidate.versions:
                    offered.append(candidate)
        waves = dict(chosen or {})
        for c in offered:
            # Those already on the version have nothing to move: left out unless chosen.
            waves.setdefault(str(c.id), LEAVE_OUT if c.versions == (version,) else LATER)
        return page(
            "partner/rollout_new.html",
            status=status,
            principal=principal,
            releases=choices,
            release=picked,
            release_name=known.get(picked or ""),
            version=version,
            offered=offered,
            unreachable=unreachable,
            waves=waves,
            wave_choices=WAVE_CHOICES,
            errors=errors or {},
            error=error,
        )

    @get("/new", opt={"permission": P.WORKFLOWS_WRITE})
    async def new_rollout(
        self, db_session: DbSession, principal: Caller, state: State, release: FromQuery[str | None] = None
    ) -> Template:
        return await self._new_page(db_session, principal, state, release)

    @post("/new", opt={"permission": P.WORKFLOWS_WRITE})
    async def create(self, db_session: DbSession, principal: Caller, state: State, data: Form) -> Response[Any]:
        release = str(data.get(RELEASE, ""))
        known = dict(await releases(db_session, principal))
        if release not in known:
            return await self._new_page(
                db_session,
                principal,
                state,
                None,
                status=422,
                errors={RELEASE: "choose a published version"},
                error="Some fields need your attention.",
            )
        key, version = release.split("@", 1)
        offered = [c for c in await candidates(db_session, principal, state, key) if c.reachable and c.versions]
        chosen = {str(c.id): str(data.get(WAVE_FIELD + str(c.id), LEAVE_OUT)) for c in offered}
        waves, errors = read_waves(data, offered)
        if errors:
            return await self._new_page(
                db_session,
                principal,
                state,
                release,
                chosen=chosen,
                status=422,
                errors=errors,
                error="Some fields need your attention.",
            )
        try:
            plan = msgspec.convert({"template": key, "version": version, "waves": waves}, RolloutCreate)
            made = await _service(db_session, principal, state).create(_partner(principal), plan)
        except (AndonError, msgspec.ValidationError) as exc:
            refusal = await service_refused(db_session, principal, exc)
            fields = refusal["errors"]
            return await self._new_page(
                db_session,
                principal,
                state,
                release,
                chosen=chosen,
                status=refusal["status"],
                errors={"waves": "; ".join(fields.values())} if fields else {},
                error=refusal["error"],
            )
        where = f"{len(waves[0])} canary customer(s)" if len(waves) > 1 else f"{len(waves[0])} customer(s)"
        return redirect_with_notice(
            state.settings,
            f"{ROLLOUTS}/{made.id}",
            f"Rollout of {key} {version} planned; run the first wave ({where}) when ready.",
        )

    async def _detail(
        self, db_session: DbSession, principal: Principal, read: RolloutRead, *, status: int = 200, **context: Any
    ) -> Template:
        names = await customer_names(db_session, principal)
        outcomes = {c.customer_id: c for c in read.customers}
        waves = [
            {
                "number": n,
                "ran": n < read.next_wave,
                "next": n == read.next_wave,
                "rows": [(names.get(cid, cid), cid, outcomes.get(cid)) for cid in wave],
                "can_roll_back": n < read.next_wave
                and any(outcomes.get(cid) is not None and outcomes[cid].status == "upgraded" for cid in wave),
            }
            for n, wave in enumerate(read.waves)
        ]
        return page(
            "partner/rollout.html",
            status=status,
            principal=principal,
            r=read,
            waves=waves,
            here=f"{ROLLOUTS}/{read.id}",
            writer=P.WORKFLOWS_WRITE in principal.permissions,
            **context,
        )

    @get("/{rollout_id:uuid}", opt={"permission": P.WORKFLOWS_READ})
    async def rollout(self, db_session: DbSession, principal: Caller, state: State, rollout_id: PathId) -> Template:
        read = await _service(db_session, principal, state).get(_partner(principal), rollout_id)
        return await self._detail(db_session, principal, read)

    async def _act(
        self, db_session: DbSession, principal: Principal, state: State, rollout_id: uuid.UUID, wave: int | None
    ) -> Response[Any]:
        service = _service(db_session, principal, state)
        try:
            if wave is None:
                read = await service.advance(_partner(principal), rollout_id)
                done = read.next_wave - 1
                outcomes = [c.status for c in read.customers if c.wave == done]
                message = f"Wave {done + 1} ran: " + ", ".join(
                    f"{outcomes.count(s)} {s.replace('_', ' ')}" for s in sorted(set(outcomes))
                )
            else:
                read = await service.roll_back(_partner(principal), rollout_id, wave)
                message = f"Wave {wave + 1} rolled back: its customers are on the version they had."
        except AndonError as exc:
            if exc.status_code == 404:
                raise
            await service_refused(db_session, principal, exc)
            summary, _ = form_problems(exc)
            current = await service.get(_partner(principal), rollout_id)
            return await self._detail(db_session, principal, current, status=exc.status_code, error=summary)
        return redirect_with_notice(state.settings, f"{ROLLOUTS}/{read.id}", message + ".")

    @post("/{rollout_id:uuid}/advance", opt={"permission": P.WORKFLOWS_WRITE})
    async def advance(
        self, db_session: DbSession, principal: Caller, state: State, rollout_id: PathId
    ) -> Response[Any]:
        return await self._act(db_session, principal, state, rollout_id, None)

    @post("/{rollout_id:uuid}/waves/{wave:int}/rollback", opt={"permission": P.WORKFLOWS_WRITE})
    async def roll_back(
        self, db_session: DbSession, principal: Caller, state: State, rollout_id: PathId, wave: FromPath[int]
    ) -> Response[Any]:
        return await self._act(db_session, principal, state, rollout_id, wave)
