"""The operator's view of the platform: is it up, is the schema current, how big is it, is the audit
trail intact. Numbers only: nothing here names what is inside a customer."""

from __future__ import annotations

from litestar import Controller, get
from litestar.datastructures import State
from litestar.response import Template

import andon
from andon.frontend.operator.access import operator_only
from andon.frontend.pages import page
from andon.platform.audit.service import verify
from andon.platform.auth.rbac import P
from andon.platform.auth.repository import count_usable_keys
from andon.platform.db.types import utcnow
from andon.platform.http.health import check_broker, check_database, check_migrations
from andon.platform.http.params import Caller, DbSession
from andon.platform.identity.repository import count_all_users
from andon.tenants.orgs.service import PartnerService


class OperatorHealthController(Controller):
    path = "/operator/health"
    tags = ["Operator console"]
    include_in_schema = False
    guards = [operator_only]

    @get("/", opt={"permission": P.PARTNERS_READ})
    async def health(self, db_session: DbSession, principal: Caller, state: State) -> Template:
        # The probes take their own connections, before this request's transaction starts: on SQLite
        # that transaction holds the write lock, and a probe's BEGIN IMMEDIATE would wait behind it.
        database = await check_database(state.engine)
        broker = await check_broker(state.broker)
        migrations = await check_migrations(state.settings.database, state.engine)
        partners, customers = await PartnerService(db_session, principal).count()
        # The walk reads the audit rows this request's scope may read: on PostgreSQL that is the
        # platform's and the partners' chains; customers' own chains need `andon audit verify`,
        # which runs as the schema owner.
        audit = await verify(db_session)
        return page(
            "operator/health.html",
            principal=principal,
            database=database,
            broker=broker,
            migrations=migrations,
            counts={
                "Partners": partners,
                "Customers": customers,
                "User accounts": await count_all_users(db_session, principal),
                "API keys in use": await count_usable_keys(db_session, principal, utcnow()),
            },
            audit=audit,
            on_postgres=state.settings.database.is_postgres,
            version=andon.__version__,
        )
