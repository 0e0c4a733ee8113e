"""The customer's audit trail, read-only: who did what to which record, newest first."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.params import FromQuery
from litestar.response import Template

from andon.frontend.customer.console import PAGE_SIZE, CustomerConsoleController, first_row, pager
from andon.frontend.pages import page
from andon.platform.audit.service import list_chain, target_types
from andon.platform.auth.rbac import P
from andon.platform.http.params import Caller, DbSession, Tenant

# Sealed or hashed values mean nothing to a reader and are not theirs to copy; the entry still says
# that such a field changed.
_HIDDEN = ("secret", "hash", "sealed", "password")


def _shown(value: Any) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return text if len(text) <= 120 else text[:117] + "…"


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(field, was, now) for every field an entry changed; a creation or deletion shows one side."""
    before, after = before or {}, after or {}
    rows = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if any(word in name for word in _HIDDEN):
            rows.append((name, "(hidden)" if name in before else "", "(hidden)" if name in after else ""))
        else:
            rows.append((name, "" if old is None else _shown(old), "" if new is None else _shown(new)))
    return rows


class CustomerAuditPageController(CustomerConsoleController):
    path = "/admin/audit"

    @get("/", opt={"permission": P.AUDIT_READ})
    async def trail(
        self,
        db_session: DbSession,
        principal: Caller,
        tenant: Tenant,
        offset: FromQuery[int] = 0,
        record: FromQuery[str | None] = None,
        q: FromQuery[str | None] = None,
    ) -> Template:
        offset = first_row(offset)
        kinds = await target_types(db_session, tenant=tenant, principal=principal)
        record = record if record in kinds else None
        q = (q or "").strip()[:80] or None
        # One row more than a page says whether there is a next page without counting the chain.
        rows = await list_chain(
            db_session,
            tenant=tenant,
            principal=principal,
            limit=PAGE_SIZE + 1,
            offset=offset,
            target_type=record,
            action=q,
        )
        entries = [(e, changes(e.before, e.after)) for e in rows[:PAGE_SIZE]]
        return page(
            "customer/audit.html",
            principal=principal,
            entries=entries,
            has_next=len(rows) > PAGE_SIZE,
            kinds=kinds,
            record=record,
            q=q,
            **pager(offset, record=record, q=q),
        )
