"""Routes for the caller's own API keys (platform or partner node) and the role catalogue."""

from __future__ import annotations

from litestar import Controller, delete, get, post
from litestar.params import JSONBody

from andon.platform.api.schemas import Page, to_read
from andon.platform.auth.models import ApiKey
from andon.platform.auth.rbac import ROLES, P
from andon.platform.auth.schemas import ApiKeyCreate, ApiKeyIssued, ApiKeyRead, RoleRead
from andon.platform.auth.service import ApiKeyService
from andon.platform.http.params import Caller, DbSession, Limit, Offset, PathId
from andon.platform.tenancy.node import OrgNode


def issued(key: ApiKey, plaintext: str) -> ApiKeyIssued:
    read = to_read(key, ApiKeyRead)
    return ApiKeyIssued(**{f: getattr(read, f) for f in read.__struct_fields__}, key=plaintext)


class ApiKeyController(Controller):
    path = "/api/v1/api-keys"
    tags = ["API keys"]

    @get("/", opt={"permission": P.API_KEYS_READ})
    async def list_keys(
        self, db_session: DbSession, principal: Caller, limit: Limit = 50, offset: Offset = 0
    ) -> Page[ApiKeyRead]:
        service = ApiKeyService(db_session, principal, OrgNode.own(principal))
        rows, total = await service.list(limit=limit, offset=offset)
        return Page(items=[to_read(r, ApiKeyRead) for r in rows], total=total, limit=limit, offset=offset)

    @post("/", opt={"permission": P.API_KEYS_WRITE})
    async def issue_key(self, db_session: DbSession, principal: Caller, data: JSONBody[ApiKeyCreate]) -> ApiKeyIssued:
        key, plaintext = await ApiKeyService(db_session, principal, OrgNode.own(principal)).issue(data)
        return issued(key, plaintext)

    @get("/{key_id:uuid}", opt={"permission": P.API_KEYS_READ})
    async def get_key(self, db_session: DbSession, principal: Caller, key_id: PathId) -> ApiKeyRead:
        return to_read(await ApiKeyService(db_session, principal, OrgNode.own(principal)).get(key_id), ApiKeyRead)

    @delete("/{key_id:uuid}", opt={"permission": P.API_KEYS_WRITE}, status_code=200)
    async def revoke_key(self, db_session: DbSession, principal: Caller, key_id: PathId) -> ApiKeyRead:
        service = ApiKeyService(db_session, principal, OrgNode.own(principal))
        return to_read(await service.revoke(key_id), ApiKeyRead)


class RoleController(Controller):
    path = "/api/v1/roles"
    tags = ["Roles"]

    @get("/", opt={"permission": P.ROLES_READ})
    async def list_roles(self) -> list[RoleRead]:
        return [
            RoleRead(
                name=r.name,
                title=r.title,
                org_kind=r.org_kind.value,
                permissions=sorted(r.permissions),
                description=r.description,
            )
            for r in ROLES.values()
        ]
