"""Staged rollouts: a partner moves its customers' deployments of one library template to a new
version, wave by wave (canaries first), each customer inside its own tenant and savepoint, so one
customer's refusal is recorded without stopping the others. A wave can be rolled back: each of its
customers returns to the version it had. Runs under way keep the version they started with."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.audit.service import record
from andon.platform.db.scope import unbind_tenant
from andon.platform.engine.executor import Send
from andon.platform.http.errors import AndonError, ConflictError, NotFoundError, PermissionDeniedError, field_error
from andon.platform.tenancy.principal import OrgKind, Principal
from andon.templates_catalog.deployments.models import PARTNER
from andon.templates_catalog.deployments.schemas import DeploymentUpgrade
from andon.templates_catalog.deployments.service import DeploymentService
from andon.templates_catalog.library.models import PUBLISHED
from andon.templates_catalog.library.repository import LibraryRepository
from andon.templates_catalog.rollouts.models import COMPLETED, IN_PROGRESS, Rollout
from andon.templates_catalog.rollouts.repository import RolloutRepository
from andon.templates_catalog.rollouts.schemas import CustomerOutcome, RolloutCreate, RolloutRead
from andon.tenants.orgs.service import CustomerService, PartnerService


def rollout_read(rollout: Rollout) -> RolloutRead:
    customers = [
        CustomerOutcome(customer_id=cid, **outcome)
        for cid, outcome in sorted(rollout.results.items(), key=lambda item: (item[1]["wave"], item[0]))
    ]
    return RolloutRead(
        id=rollout.id,
        template_key=rollout.template_key,
        version=rollout.version,
        waves=rollout.waves,
        next_wave=rollout.next_wave,
        status=rollout.status,
        customers=customers,
        created_by=rollout.created_by,
        created_at=rollout.created_at,
        updated_at=rollout.updated_at,
    )


class RolloutService:
    def __init__(self, session: AsyncSession, principal: Principal, send: Send) -> None:
        self.session = session
        self.principal = principal
        self.send = send

    async def _partner(self, partner_id: uuid.UUID) -> uuid.UUID:
        partner = await PartnerService(self.session, self.principal).get(partner_id)
        if not (self.principal.org_kind is OrgKind.PARTNER and self.principal.partner_id == partner.id):
            raise PermissionDeniedError("only the partner's own people roll out its templates")
        return partner.id

    async def _rollout(self, partner_id: uuid.UUID, rollout_id: uuid.UUID) -> tuple[RolloutRepository, Rollout]:
        repo = RolloutRepository(self.session, await self._partner(partner_id))
        rollout = await repo.get(rollout_id, lock=True)
        if rollout is None:
            raise NotFoundError(f"rollout {rollout_id} not found")
        return repo, rollout

    async def list(self, partner_id: uuid.UUID) -> list[RolloutRead]:
        partner = await PartnerService(self.session, self.principal).get(partner_id)
        return [rollout_read(r) for r in await RolloutRepository(self.session, partner.id).every()]

    async def get(self, partner_id: uuid.UUID, rollout_id: uuid.UUID) -> RolloutRead:
        _, rollout = await self._rollout(partner_id, rollout_id)
        return rollout_read(rollout)

    async def create(self, partner_id: uuid.UUID, data: RolloutCreate) -> RolloutRead:
        partner = await self._partner(partner_id)
        library = LibraryRepository(self.session, partner)
        template = await library.by_key(data.template)
        if template is None:
            raise field_error("template", f"no template '{data.template}' in your library")
        version = await library.version(template.id, data.version)
        if version is None or version.status != PUBLISHED:
            raise field_error("version", f"{data.version} of '{data.template}' is not published")
        waves = [[str(c) for c in wave] for wave in data.waves]
        seen: set[str] = set()
        customers = CustomerService(self.session, self.principal)
        for w, wave in enumerate(waves):
            for i, cid in enumerate(wave):
                if cid in seen:
                    raise field_error(f"waves[{w}][{i}]", f"customer {cid} is in an earlier wave already")
                seen.add(cid)
                try:
                    customer = await customers.get(uuid.UUID(cid))
                except NotFoundError:
                    raise field_error(f"waves[{w}][{i}]", f"no customer {cid} of yours") from None
                if customer.partner_id != partner:
                    raise field_error(f"waves[{w}][{i}]", f"no customer {cid} of yours")
        rollout = Rollout(
            partner_id=partner,
            template_id=template.id,
            template_key=template.key,
            version=data.version,
            waves=waves,
            results={},
            created_by=self.principal.label,
        )
        await RolloutRepository(self.session, partner).add(rollout)
        await self._audit("rollout.created", rollout)
        return rollout_read(rollout)

    async def _audit(self, action: str, rollout: Rollout, after: dict[str, Any] | None = None) -> None:
        await record(
            self.session,
            self.principal,
            action,
            target_type="rollout",
            target_id=rollout.id,
            after=after or {"template": rollout.template_key, "version": rollout.version, "waves": rollout.waves},
            partner_id=rollout.partner_id,
        )

    async def _in_customer(self, customer_id: str, work: Any) -> dict[str, Any]:
        """``work(deployments)`` inside the customer's tenant and a savepoint; the outcome either way."""
        try:
            async with self.session.begin_nested():
                tenant = await CustomerService(self.session, self.principal).open_tenant(uuid.UUID(customer_id))
                outcome: dict[str, Any] = await work(DeploymentService(self.session, tenant, self.send))
        except AndonError as exc:
            outcome = {"status": "failed", "detail": exc.detail}
        await unbind_tenant(self.session)
        return outcome

    async def advance(self, partner_id: uuid.UUID, rollout_id: uuid.UUID) -> RolloutRead:
        """Runs the next wave: each of its customers' deployments of the template moves to the version."""
        _, rollout = await self._rollout(partner_id, rollout_id)
        if rollout.next_wave >= len(rollout.waves):
            raise ConflictError("every wave of this rollout has run")
        wave = rollout.next_wave

        async def upgrade(deployments: DeploymentService) -> dict[str, Any]:
            found = list(await deployments.of_template(rollout.template_key, PARTNER))
            if not found:
                return {"status": "not_deployed", "detail": f"{rollout.template_key} is not deployed here"}
            before = found[0].version
            if before == rollout.version:
                return {"status": "unchanged", "from_version": before}
            for deployment in found:
                await deployments.upgrade(deployment.id, DeploymentUpgrade(version=rollout.version))
            return {"status": "upgraded", "from_version": before}

        # The rollout row is changed only after the customers: each customer's work runs bound to its
        # tenant, where the partner's own rows may not be written.
        results = dict(rollout.results)
        for customer_id in rollout.waves[wave]:
            results[customer_id] = {"wave": wave, **await self._in_customer(customer_id, upgrade)}
        rollout.results = results
        rollout.next_wave = wave + 1
        rollout.status = COMPLETED if rollout.next_wave == len(rollout.waves) else IN_PROGRESS
        await self.session.flush()
        await self._audit("rollout.wave_run", rollout, {"wave": wave, "version": rollout.version})
        return rollout_read(rollout)

    async def roll_back(self, partner_id: uuid.UUID, rollout_id: uuid.UUID, wave: int) -> RolloutRead:
        """Each customer of ``wave`` that this rollout upgraded returns to the version it had."""
        _, rollout = await self._rollout(partner_id, rollout_id)
        if not 0 <= wave < rollout.next_wave:
            raise field_error("wave", f"wave {wave} has not run (waves 0 to {rollout.next_wave - 1} have)")

        async def back(deployments: DeploymentService) -> dict[str, Any]:
            for deployment in await deployments.of_template(rollout.template_key, PARTNER):
                if deployment.version == rollout.version:
                    await deployments.rollback(deployment.id)
            return {"status": "rolled_back"}

        results = dict(rollout.results)
        for customer_id in rollout.waves[wave]:
            held = results.get(customer_id, {})
            if held.get("status") != "upgraded":
                continue
            outcome = await self._in_customer(customer_id, back)
            results[customer_id] = {**held, **outcome, "wave": wave}
        rollout.results = results
        await self.session.flush()
        await self._audit("rollout.wave_rolled_back", rollout, {"wave": wave})
        return rollout_read(rollout)
