"""The caller's own account: who am I, my sessions, sign out everywhere."""

from __future__ import annotations

from litestar import Controller, delete, get
from litestar.datastructures import State

from andon.platform.db.types import utcnow
from andon.platform.http.errors import AndonError, NotFoundError
from andon.platform.http.params import Caller, DbSession, PathId
from andon.platform.identity.repository import SessionRepository
from andon.platform.identity.schemas import MeRead, SessionRead
from andon.platform.tenancy.principal import Principal, SubjectKind


def _sessions(db_session: DbSession, principal: Principal) -> SessionRepository:
    if principal.subject_kind is not SubjectKind.USER or principal.subject_id is None:
        raise AndonError("sessions belong to people; API keys have none")
    return SessionRepository(db_session, principal.subject_id)


class MeController(Controller):
    path = "/api/v1/me"
    tags = ["Account"]

    @get("/", opt={"authenticated": True})
    async def me(self, principal: Caller) -> MeRead:
        return MeRead(
            kind=principal.subject_kind.value,
            id=principal.subject_id,
            label=principal.label,
            org_kind=principal.org_kind.value,
            partner_id=principal.partner_id,
            customer_id=principal.customer_id,
            permissions=sorted(principal.permissions),
            site_ids=sorted(principal.site_ids) if principal.site_ids is not None else None,
        )

    @get("/sessions", opt={"authenticated": True})
    async def sessions(self, db_session: DbSession, principal: Caller) -> list[SessionRead]:
        rows = await _sessions(db_session, principal).active(utcnow())
        return [
            SessionRead(
                id=r.id,
                method=r.method,
                ip=r.ip,
                user_agent=r.user_agent,
                created_at=r.created_at,
                last_seen_at=r.last_seen_at,
                expires_at=r.expires_at,
                current=r.id == principal.session_id,
            )
            for r in rows
        ]

    @delete("/sessions", opt={"authenticated": True}, status_code=200)
    async def revoke_all(self, db_session: DbSession, principal: Caller, state: State) -> dict[str, int]:
        """Sign out everywhere else; the session making the call stays."""
        revoked = await _sessions(db_session, principal).revoke(utcnow(), keep=principal.session_id)
        return {"revoked": revoked}

    @delete("/sessions/{session_id:uuid}", opt={"authenticated": True}, status_code=200)
    async def revoke_one(self, db_session: DbSession, principal: Caller, session_id: PathId) -> dict[str, int]:
        revoked = await _sessions(db_session, principal).revoke(utcnow(), only=session_id)
        if not revoked:
            raise NotFoundError(f"session {session_id} not found")
        return {"revoked": revoked}
