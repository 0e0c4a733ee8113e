"""Users and identity providers of a partner or a customer, managed by that org or the one above."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from litestar import Controller, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.api.schemas import Page, to_read
from andon.platform.auth.rbac import P
from andon.platform.http.params import Caller, DbSession, Limit, Offset, PathId, Search, Tenant
from andon.platform.identity.models import IdentityProvider, RoleGrant, User
from andon.platform.identity.schemas import (
    GrantRead,
    GrantsReplace,
    IdentityProviderCreate,
    IdentityProviderRead,
    IdentityProviderUpdate,
    UserCreate,
    UserRead,
    UserUpdate,
)
from andon.platform.identity.service import CALLBACK_PATH, IdpAdmin, UserAdmin
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.node import OrgNode
from andon.platform.tenancy.principal import OrgKind, Principal
from andon.tenants.orgs.dependencies import TENANT_DEPENDENCY
from andon.tenants.orgs.service import PartnerService
from andon.tenants.plant.service import PlantService


def _user_read(user: User, grants: Sequence[RoleGrant]) -> UserRead:
    read = to_read(user, UserRead)
    read.grants = [
        GrantRead(role=g.role, scope_kind=g.scope_kind, scope_id=g.scope_id, source=g.source) for g in grants
    ]
    return read


def _idp_read(idp: IdentityProvider, state: State) -> IdentityProviderRead:
    read = to_read(idp, IdentityProviderRead)
    read.redirect_uri = state.settings.http.base_url.rstrip("/") + CALLBACK_PATH
    return read


def _customer_node(tenant: TenantContext) -> OrgNode:
    return OrgNode(kind=OrgKind.CUSTOMER, partner_id=tenant.partner_id, tenant=tenant)


async def _partner_node(db_session: AsyncSession, principal: Principal, partner_id: uuid.UUID) -> OrgNode:
    partner = await PartnerService(db_session, principal).get(partner_id)
    return OrgNode(kind=OrgKind.PARTNER, partner_id=partner.id)


class CustomerUserController(Controller):
    path = "/api/v1/customers/{customer_id:uuid}/users"
    tags = ["Users"]
    dependencies = TENANT_DEPENDENCY

    @staticmethod
    def _admin(db_session: AsyncSession, tenant: TenantContext, state: State) -> UserAdmin:
        return UserAdmin(db_session, tenant.principal, _customer_node(tenant), state.settings)

    @get("/", opt={"permission": P.USERS_READ})
    async def list_users(
        self,
        db_session: DbSession,
        tenant: Tenant,
        state: State,
        limit: Limit = 50,
        offset: Offset = 0,
        q: Search = None,
    ) -> Page[UserRead]:
        admin = self._admin(db_session, tenant, state)
        rows, total = await admin.list(limit=limit, offset=offset, q=q)
        items = [_user_read(u, await admin.grants(u.id)) for u in rows]
        return Page(items=items, total=total, limit=limit, offset=offset)

    @post("/", opt={"permission": P.USERS_WRITE})
    async def create_user(
        self, db_session: DbSession, tenant: Tenant, state: State, data: JSONBody[UserCreate]
    ) -> UserRead:
        admin = self._admin(db_session, tenant, state)
        user, _ = await admin.create(data, site_ids=await PlantService(db_session, tenant).site_ids())
        return _user_read(user, await admin.grants(user.id))

    @get("/{user_id:uuid}", opt={"permission": P.USERS_READ})
    async def get_user(self, db_session: DbSession, tenant: Tenant, state: State, user_id: PathId) -> UserRead:
        admin = self._admin(db_session, tenant, state)
        return _user_read(await admin.get(user_id), await admin.grants(user_id))

    @patch("/{user_id:uuid}", opt={"permission": P.USERS_WRITE})
    async def update_user(
        self, db_session: DbSession, tenant: Tenant, state: State, user_id: PathId, data: JSONBody[UserUpdate]
    ) -> UserRead:
        admin = self._admin(db_session, tenant, state)
        return _user_read(await admin.update(user_id, data), await admin.grants(user_id))

    @put("/{user_id:uuid}/grants", opt={"permission": P.USERS_WRITE})
    async def replace_grants(
        self, db_session: DbSession, tenant: Tenant, state: State, user_id: PathId, data: JSONBody[GrantsReplace]
    ) -> UserRead:
        admin = self._admin(db_session, tenant, state)
        await admin.replace_grants(user_id, data.grants, site_ids=await PlantService(db_session, tenant).site_ids())
        return _user_read(await admin.get(user_id), await admin.grants(user_id))

    @delete("/{user_id:uuid}", opt={"permission": P.USERS_WRITE})
    async def delete_user(self, db_session: DbSession, tenant: Tenant, state: State, user_id: PathId) -> None:
        await self._admin(db_session, tenant, state).delete(user_id)


class PartnerUserController(Controller):
    path = "/api/v1/partners/{partner_id:uuid}/users"
    tags = ["Users"]

    @staticmethod
    async def _admin(db_session: AsyncSession, principal: Principal, state: State, partner_id: uuid.UUID) -> UserAdmin:
        return UserAdmin(db_session, principal, await _partner_node(db_session, principal, partner_id), state.settings)

    @get("/", opt={"permission": P.USERS_READ})
    async def list_users(
        self,
        db_session: DbSession,
        principal: Caller,
        state: State,
        partner_id: PathId,
        limit: Limit = 50,
        offset: Offset = 0,
        q: Search = None,
    ) -> Page[UserRead]:
        admin = await self._admin(db_session, principal, state, partner_id)
        rows, total = await admin.list(limit=limit, offset=offset, q=q)
        items = [_user_read(u, await admin.grants(u.id)) for u in rows]
        return Page(items=items, total=total, limit=limit, offset=offset)

    @post("/", opt={"permission": P.USERS_WRITE})
    async def create_user(
        self, db_session: DbSession, principal: Caller, state: State, partner_id: PathId, data: JSONBody[UserCreate]
    ) -> UserRead:
        admin = await self._admin(db_session, principal, state, partner_id)
        user, _ = await admin.create(data, site_ids=set())
        return _user_read(user, await admin.grants(user.id))

    @get("/{user_id:uuid}", opt={"permission": P.USERS_READ})
    async def get_user(
        self, db_session: DbSession, principal: Caller, state: State, partner_id: PathId, user_id: PathId
    ) -> UserRead:
        admin = await self._admin(db_session, principal, state, partner_id)
        return _user_read(await admin.get(user_id), await admin.grants(user_id))

    @patch("/{user_id:uuid}", opt={"permission": P.USERS_WRITE})
    async def update_user(
        self,
        db_session: DbSession,
        principal: Caller,
        state: State,
        partner_id: PathId,
        user_id: PathId,
        data: JSONBody[UserUpdate],
    ) -> UserRead:
        admin = await self._admin(db_session, principal, state, partner_id)
        return _user_read(await admin.update(user_id, data), await admin.grants(user_id))

    @put("/{user_id:uuid}/grants", opt={"permission": P.USERS_WRITE})
    async def replace_grants(
        self,
        db_session: DbSession,
        principal: Caller,
        state: State,
        partner_id: PathId,
        user_id: PathId,
        data: JSONBody[GrantsReplace],
    ) -> UserRead:
        admin = await self._admin(db_session, principal, state, partner_id)
        await admin.replace_grants(user_id, data.grants, site_ids=set())
        return _user_read(await admin.get(user_id), await admin.grants(user_id))

    @delete("/{user_id:uuid}", opt={"permission": P.USERS_WRITE})
    async def delete_user(
        self, db_session: DbSession, principal: Caller, state: State, partner_id: PathId, user_id: PathId
    ) -> None:
        await (await self._admin(db_session, principal, state, partner_id)).delete(user_id)


class CustomerIdentityProviderController(Controller):
    path = "/api/v1/customers/{customer_id:uuid}/identity-providers"
    tags = ["Identity providers"]
    dependencies = TENANT_DEPENDENCY

    @staticmethod
    def _admin(db_session: AsyncSession, tenant: TenantContext, state: State) -> IdpAdmin:
        return IdpAdmin(db_session, tenant.principal, _customer_node(tenant), state.secretbox)

    @get("/", opt={"permission": P.IDENTITY_READ})
    async def list_idps(self, db_session: DbSession, tenant: Tenant, state: State) -> list[IdentityProviderRead]:
        return [_idp_read(i, state) for i in await self._admin(db_session, tenant, state).list()]

    @post("/", opt={"permission": P.IDENTITY_WRITE})
    async def create_idp(
        self, db_session: DbSession, tenant: Tenant, state: State, data: JSONBody[IdentityProviderCreate]
    ) -> IdentityProviderRead:
        return _idp_read(await self._admin(db_session, tenant, state).create(data), state)

    @patch("/{idp_id:uuid}", opt={"permission": P.IDENTITY_WRITE})
    async def update_idp(
        self,
        db_session: DbSession,
        tenant: Tenant,
        state: State,
        idp_id: PathId,
        data: JSONBody[IdentityProviderUpdate],
    ) -> IdentityProviderRead:
        return _idp_read(await self._admin(db_session, tenant, state).update(idp_id, data), state)

    @delete("/{idp_id:uuid}", opt={"permission": P.IDENTITY_WRITE})
    async def delete_idp(self, db_session: DbSession, tenant: Tenant, state: State, idp_id: PathId) -> None:
        await self._admin(db_session, tenant, state).delete(idp_id)


class PartnerIdentityProviderController(Controller):
    path = "/api/v1/partners/{partner_id:uuid}/identity-providers"
    tags = ["Identity providers"]

    @staticmethod
    async def _admin(db_session: AsyncSession, principal: Principal, state: State, partner_id: uuid.UUID) -> IdpAdmin:
        return IdpAdmin(db_session, principal, await _partner_node(db_session, principal, partner_id), state.secretbox)

    @get("/", opt={"permission": P.IDENTITY_READ})
    async def list_idps(
        self, db_session: DbSession, principal: Caller, state: State, partner_id: PathId
    ) -> list[IdentityProviderRead]:
        return [_idp_read(i, state) for i in await (await self._admin(db_session, principal, state, partner_id)).list()]

    @post("/", opt={"permission": P.IDENTITY_WRITE})
    async def create_idp(
        self,
        db_session: DbSession,
        principal: Caller,
        state: State,
        partner_id: PathId,
        data: JSONBody[IdentityProviderCreate],
    ) -> IdentityProviderRead:
        admin = await self._admin(db_session, principal, state, partner_id)
        return _idp_read(await admin.create(data), state)

    @patch("/{idp_id:uuid}", opt={"permission": P.IDENTITY_WRITE})
    async def update_idp(
        self,
        db_session: DbSession,
        principal: Caller,
        state: State,
        partner_id: PathId,
        idp_id: PathId,
        data: JSONBody[IdentityProviderUpdate],
    ) -> IdentityProviderRead:
        admin = await self._admin(db_session, principal, state, partner_id)
        return _idp_read(await admin.update(idp_id, data), state)

    @delete("/{idp_id:uuid}", opt={"permission": P.IDENTITY_WRITE})
    async def delete_idp(
        self, db_session: DbSession, principal: Caller, state: State, partner_id: PathId, idp_id: PathId
    ) -> None:
        await (await self._admin(db_session, principal, state, partner_id)).delete(idp_id)
