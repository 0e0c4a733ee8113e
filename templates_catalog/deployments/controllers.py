"""A customer's deployments of templates: ``/api/v1/customers/{id}/deployments`` (the customer, or its
partner on its behalf)."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import JSONBody

from andon.platform.auth.rbac import P
from andon.platform.engine.dispatch import broker_sender
from andon.platform.http.params import DbSession, PathId, Tenant
from andon.templates_catalog.deployments.schemas import DeploymentCreate, DeploymentRead, DeploymentUpgrade
from andon.templates_catalog.deployments.service import DeploymentService, deployment_read
from andon.tenants.orgs.dependencies import TENANT_DEPENDENCY


def _service(db_session: DbSession, tenant: Tenant, state: State) -> DeploymentService:
    return DeploymentService(db_session, tenant, broker_sender(state.broker))


class DeploymentController(Controller):
    path = "/api/v1/customers/{customer_id:uuid}/deployments"
    tags = ["Deployments"]
    dependencies = TENANT_DEPENDENCY

    @get("/", opt={"permission": P.WORKFLOWS_READ})
    async def list_deployments(self, db_session: DbSession, tenant: Tenant, state: State) -> list[DeploymentRead]:
        return [deployment_read(d) for d in await _service(db_session, tenant, state).every()]

    @post("/", opt={"permission": P.WORKFLOWS_WRITE})
    async def deploy(
        self, db_session: DbSession, tenant: Tenant, state: State, data: JSONBody[DeploymentCreate]
    ) -> DeploymentRead:
        """Enables a template for this customer: parameters, a connection for each binding, sites.
        Everything is checked first (422 naming each field); nothing is deployed on a refusal."""
        return deployment_read(await _service(db_session, tenant, state).create(data))

    @get("/{deployment_id:uuid}", opt={"permission": P.WORKFLOWS_READ})
    async def get_deployment(
        self, db_session: DbSession, tenant: Tenant, state: State, deployment_id: PathId
    ) -> DeploymentRead:
        return deployment_read(await _service(db_session, tenant, state).get(deployment_id))

    @post("/{deployment_id:uuid}/upgrade", status_code=200, opt={"permission": P.WORKFLOWS_WRITE})
    async def upgrade(
        self,
        db_session: DbSession,
        tenant: Tenant,
        state: State,
        deployment_id: PathId,
        data: JSONBody[DeploymentUpgrade],
    ) -> DeploymentRead:
        """Moves to another version; runs under way finish on the version they started with."""
        return deployment_read(await _service(db_session, tenant, state).upgrade(deployment_id, data))

    @post("/{deployment_id:uuid}/rollback", status_code=200, opt={"permission": P.WORKFLOWS_WRITE})
    async def rollback(
        self, db_session: DbSession, tenant: Tenant, state: State, deployment_id: PathId
    ) -> DeploymentRead:
        """Back to the version the last upgrade replaced."""
        return deployment_read(await _service(db_session, tenant, state).rollback(deployment_id))

    @post("/{deployment_id:uuid}/pause", status_code=200, opt={"permission": P.WORKFLOWS_WRITE})
    async def pause(self, db_session: DbSession, tenant: Tenant, state: State, deployment_id: PathId) -> DeploymentRead:
        return deployment_read(await _service(db_session, tenant, state).set_enabled(deployment_id, False))

    @post("/{deployment_id:uuid}/resume", status_code=200, opt={"permission": P.WORKFLOWS_WRITE})
    async def resume(
        self, db_session: DbSession, tenant: Tenant, state: State, deployment_id: PathId
    ) -> DeploymentRead:
        return deployment_read(await _service(db_session, tenant, state).set_enabled(deployment_id, True))


DEPLOYMENT_CONTROLLERS = [DeploymentController]
