"""``/api/v1/partners/{id}/rollouts``: staged rollouts of a library template across customers."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, Parameter

from andon.platform.auth.rbac import P
from andon.platform.engine.dispatch import broker_sender
from andon.platform.http.params import Caller, DbSession, PathId
from andon.templates_catalog.rollouts.schemas import RolloutCreate, RolloutRead
from andon.templates_catalog.rollouts.service import RolloutService


def _service(db_session: DbSession, principal: Caller, state: State) -> RolloutService:
    return RolloutService(db_session, principal, broker_sender(state.broker))


class RolloutController(Controller):
    path = "/api/v1/partners/{partner_id:uuid}/rollouts"
    tags = ["Templates"]

    @get("/", opt={"permission": P.WORKFLOWS_READ})
    async def list_rollouts(
        self, db_session: DbSession, principal: Caller, state: State, partner_id: PathId
    ) -> list[RolloutRead]:
        return await _service(db_session, principal, state).list(partner_id)

    @post("/", opt={"permission": P.WORKFLOWS_WRITE})
    async def create_rollout(
        self, db_session: DbSession, principal: Caller, state: State, partner_id: PathId, data: JSONBody[RolloutCreate]
    ) -> RolloutRead:
        """Plans a rollout of a published library version in waves of customers (canaries first)."""
        return await _service(db_session, principal, state).create(partner_id, data)

    @get("/{rollout_id:uuid}", opt={"permission": P.WORKFLOWS_READ})
    async def get_rollout(
        self, db_session: DbSession, principal: Caller, state: State, partner_id: PathId, rollout_id: PathId
    ) -> RolloutRead:
        return await _service(db_session, principal, state).get(partner_id, rollout_id)

    @post("/{rollout_id:uuid}/advance", status_code=200, opt={"permission": P.WORKFLOWS_WRITE})
    async def advance(
        self, db_session: DbSession, principal: Caller, state: State, partner_id: PathId, rollout_id: PathId
    ) -> RolloutRead:
        """Runs the next wave; each customer's outcome is recorded (one refusal does not stop the rest)."""
        return await _service(db_session, principal, state).advance(partner_id, rollout_id)

    @post("/{rollout_id:uuid}/waves/{wave:int}/rollback", status_code=200, opt={"permission": P.WORKFLOWS_WRITE})
    async def roll_back(
        self,
        db_session: DbSession,
        principal: Caller,
        state: State,
        partner_id: PathId,
        rollout_id: PathId,
        wave: Annotated[int, Parameter(ge=0, le=19)],
    ) -> RolloutRead:
        """The wave's customers go back to the version they had."""
        return await _service(db_session, principal, state).roll_back(partner_id, rollout_id, wave)


ROLLOUT_CONTROLLERS = [RolloutController]
