"""Users and identity providers of a partner or a customer, managed by that org or the one above.

The routes are written once; the customer and partner controllers differ only in how the org node is
reached (a checked tenant context, or a partner within the caller's reach), given as the ``node``
dependency.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from litestar import Controller, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

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
from andon.platform.tenancy.node import OrgNode
from andon.platform.tenancy.principal import OrgKind
from andon.tenants.branding.service import email_brand
from andon.tenants.orgs.dependencies import provide_tenant
from andon.tenants.orgs.service import PartnerService
from andon.tenants.plant.service import PlantService

Node = NamedDependency[OrgNode]
Users = NamedDependency[UserAdmin]
Idps = NamedDependency[IdpAdmin]
SiteIds = NamedDependency[set[uuid.UUID]]


async def provide_customer_node(tenant: Tenant) -> OrgNode:
    return OrgNode(kind=OrgKind.CUSTOMER, partner_id=tenant.partner_id, tenant=tenant)


async def provide_partner_node(db_session: DbSession, principal: Caller, partner_id: PathId) -> OrgNode:
    partner = await PartnerService(db_session, principal).get(partner_id)
    return OrgNode(kind=OrgKind.PARTNER, partner_id=partner.id)


async def provide_site_ids(db_session: DbSession, node: Node) -> set[uuid.UUID]:
    """The sites a site-level grant may name: the customer's; a partner has none."""
    return await PlantService(db_session, node.tenant).site_ids() if node.tenant else set()


async def provide_user_admin(db_session: DbSession, principal: Caller, node: Node, state: State) -> UserAdmin:
    brand = await email_brand(db_session, node.partner_id, state.settings)
    return UserAdmin(db_session, principal, node, state.settings, brand)


async def provide_idp_admin(db_session: DbSession, principal: Caller, node: Node, state: State) -> IdpAdmin:
    return IdpAdmin(db_session, principal, node, state.secretbox)


COMMON = {
    "site_ids": Provide(provide_site_ids),
    "users": Provide(provide_user_admin),
    "idps": Provide(provide_idp_admin),
}
AT_CUSTOMER = {"tenant": Provide(provide_tenant), "node": Provide(provide_customer_node), **COMMON}
AT_PARTNER = {"node": Provide(provide_partner_node), **COMMON}


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


class _UserRoutes(Controller):
    tags = ["Users"]

    @get("/", opt={"permission": P.USERS_READ})
    async def list_users(self, users: Users, limit: Limit = 50, offset: Offset = 0, q: Search = None) -> Page[UserRead]:
        rows, total = await users.list(limit=limit, offset=offset, q=q)
        items = [_user_read(u, await users.grants(u.id)) for u in rows]
        return Page(items=items, total=total, limit=limit, offset=offset)

    @post("/", opt={"permission": P.USERS_WRITE})
    async def create_user(self, users: Users, site_ids: SiteIds, data: JSONBody[UserCreate]) -> UserRead:
        user, _ = await users.create(data, site_ids=site_ids)
        return _user_read(user, await users.grants(user.id))

    @get("/{user_id:uuid}", opt={"permission": P.USERS_READ})
    async def get_user(self, users: Users, user_id: PathId) -> UserRead:
        return _user_read(await users.get(user_id), await users.grants(user_id))

    @patch("/{user_id:uuid}", opt={"permission": P.USERS_WRITE})
    async def update_user(self, users: Users, user_id: PathId, data: JSONBody[UserUpdate]) -> UserRead:
        return _user_read(await users.update(user_id, data), await users.grants(user_id))

    @put("/{user_id:uuid}/grants", opt={"permission": P.USERS_WRITE})
    async def replace_grants(
        self, users: Users, site_ids: SiteIds, user_id: PathId, data: JSONBody[GrantsReplace]
    ) -> UserRead:
        await users.replace_grants(user_id, data.grants, site_ids=site_ids)
        return _user_read(await users.get(user_id), await users.grants(user_id))

    @delete("/{user_id:uuid}", opt={"permission": P.USERS_WRITE})
    async def delete_user(self, users: Users, user_id: PathId) -> None:
        await users.delete(user_id)


class _IdentityProviderRoutes(Controller):
    tags = ["Identity providers"]

    @get("/", opt={"permission": P.IDENTITY_READ})
    async def list_idps(self, idps: Idps, state: State) -> list[IdentityProviderRead]:
        return [_idp_read(i, state) for i in await idps.list()]

    @post("/", opt={"permission": P.IDENTITY_WRITE})
    async def create_idp(
        self, idps: Idps, state: State, data: JSONBody[IdentityProviderCreate]
    ) -> IdentityProviderRead:
        return _idp_read(await idps.create(data), state)

    @patch("/{idp_id:uuid}", opt={"permission": P.IDENTITY_WRITE})
    async def update_idp(
        self, idps: Idps, state: State, idp_id: PathId, data: JSONBody[IdentityProviderUpdate]
    ) -> IdentityProviderRead:
        return _idp_read(await idps.update(idp_id, data), state)

    @delete("/{idp_id:uuid}", opt={"permission": P.IDENTITY_WRITE})
    async def delete_idp(self, idps: Idps, idp_id: PathId) -> None:
        await idps.delete(idp_id)


class CustomerUserController(_UserRoutes):
    path = "/api/v1/customers/{customer_id:uuid}/users"
    dependencies = AT_CUSTOMER


class PartnerUserController(_UserRoutes):
    path = "/api/v1/partners/{partner_id:uuid}/users"
    dependencies = AT_PARTNER


class CustomerIdentityProviderController(_IdentityProviderRoutes):
    path = "/api/v1/customers/{customer_id:uuid}/identity-providers"
    dependencies = AT_CUSTOMER


class PartnerIdentityProviderController(_IdentityProviderRoutes):
    path = "/api/v1/partners/{partner_id:uuid}/identity-providers"
    dependencies = AT_PARTNER
