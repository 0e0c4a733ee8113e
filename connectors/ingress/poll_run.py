"""One run of a polled connection, and the poll state it keeps.

A poller (a REST endpoint, a drop folder) is handed a ``PollRun``: it delivers what it fetched
through the intake, as every channel does, and moves the cursor only once those events are
committed. A crash in between fetches the same page (or file) again, and the events' stable ids
absorb the repeat: at-least-once fetching, exactly-once storage.

Every write to a connection (the claim, the cursor, the next turn, the last error) happens inside
the connection's own tenant, as the connection itself; only the list of what is due is read across
tenants, in the authentication lookup mode, as the webhook's lookup is.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.sources.intake import ConnectionIntake, Delivery, Receipt, Refused
from andon.connectors.sources.kinds import POLLED
from andon.connectors.sources.repository import ConnectionFound, DuePolls, PollDue, PollStateRepository
from andon.platform.auth.rbac import P
from andon.platform.config.settings import Settings
from andon.platform.db.errors import is_data_exception
from andon.platform.db.scope import apply_principal_scope
from andon.platform.http.errors import AndonError, TooManyRequestsError, ValidationFailedError
from andon.platform.observability.metrics import count_delivery, count_events
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import OrgKind, Principal, SubjectKind
from andon.tenants.orgs.service import CustomerService, org_is_active

CHANNEL = "poll"
UNSTORABLE = "a value in it cannot be stored (for example a NUL character in text)"

# Charges a customer ``cost`` events or raises TooManyRequestsError (the app's rate limiter).
Charge = Callable[[uuid.UUID, int], Awaitable[None]]


class PollError(Exception):
    """Ends a run; the message is what the connection's administrator reads as its ``last_error``."""


class LeaseLost(Exception):
    """The connection is no longer this run's (its lease ran out and another process claimed it, or it
    was deleted): the run stops and writes nothing more."""


class Throttled(Exception):
    """The customer is over its event limit: the run stops where it is, without an error, and the
    connection is due again once the limit allows."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"over the event limit; retry in {retry_after:g} s")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class PollLimits:
    """What the settings allow a poll (``settings.polling``), resolved once."""

    timeout_seconds: float
    max_response_bytes: int
    max_file_bytes: int
    max_batches: int
    allow_private_networks: bool
    drop_root: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> PollLimits:
        polling = settings.polling
        return cls(
            timeout_seconds=polling.timeout_seconds,
            max_response_bytes=polling.max_response_bytes,
            max_file_bytes=polling.max_file_bytes,
            max_batches=polling.max_batches,
            allow_private_networks=settings.private_networks_allowed(polling.allow_private_networks),
            drop_root=polling.drop_root or settings.data_dir / "drop",
        )


class PollStore:
    """Claims and poll state. The claim moves ``next_poll_at`` to the end of a lease; every later write
    names that lease (``PollStateRepository``), so a run that lost its connection writes nothing."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], kinds: Collection[str] = POLLED) -> None:
        self.sessionmaker = sessionmaker
        self.kinds = frozenset(kinds)

    async def due(self, now: datetime, limit: int) -> list[PollDue]:
        async with self.sessionmaker() as session, session.begin():
            return await DuePolls(session).due(self.kinds, now, limit)

    async def claim(
        self, due: PollDue, now: datetime, lease_until: datetime, *, suspended_retry: timedelta
    ) -> tuple[ConnectionFound, str | None] | None:
        """The connection and its cursor, now this caller's until ``lease_until``; None when another
        process has it, it is no longer due, or its customer is suspended (then it waits)."""
        async with self.sessionmaker() as session, session.begin():
            tenant, active = await self._enter(session, due.tenant_id, due.id, due.name, due.kind)
            repo = PollStateRepository(session, tenant)
            claimed = await repo.claim(due.id, self.kinds, now, lease_until)
            if claimed is None or active:
                return claimed
            # A suspended customer is not polled (nothing it sends is taken); look again later.
            await repo.save(
                due.id,
                lease_until,
                next_poll_at=now + suspended_retry,
                last_error="the customer is suspended: not polled until it is active again",
            )
            return None

    async def save(self, found: ConnectionFound, lease: datetime, **state: str | datetime | None) -> bool:
        async with self.sessionmaker() as session, session.begin():
            tenant, _ = await self._enter(session, found.tenant_id, found.id, found.name, found.kind)
            return await PollStateRepository(session, tenant).save(found.id, lease, **state)

    @staticmethod
    async def _enter(
        session: AsyncSession, tenant_id: uuid.UUID, connection_id: uuid.UUID, name: str, kind: str
    ) -> tuple[TenantContext, bool]:
        """The connection's tenant, entered as the connection itself (as the intake enters it), and
        whether the customer is active."""
        principal = Principal(
            subject_kind=SubjectKind.SERVICE,
            subject_id=connection_id,
            label=f"{kind} connection {name}",
            org_kind=OrgKind.CUSTOMER,
            customer_id=tenant_id,
            permissions=frozenset({P.EVENTS_WRITE}),
        )
        await apply_principal_scope(session, principal)
        active = await org_is_active(session, principal)
        return await CustomerService(session, principal).open_tenant(tenant_id), active


class PollRun:
    """What a poller is given: the connection, where it left off, and the means to deliver events and
    move on. Counts what it delivered, for the run's report."""

    def __init__(
        self,
        *,
        found: ConnectionFound,
        cursor: str | None,
        lease: datetime,
        store: PollStore,
        intake: ConnectionIntake,
        limits: PollLimits,
        lease_for: timedelta,
        clock: Callable[[], datetime],
        charge: Charge | None = None,
        on_events: Callable[[], None] | None = None,
    ) -> None:
        self.found = found
        self.cursor = cursor
        self.lease = lease
        self.store = store
        self.intake = intake
        self.limits = limits
        self.lease_for = lease_for
        self.clock = clock
        self.charge = charge
        self.on_events = on_events
        self.deliveries = 0
        self.new = 0
        self.duplicates = 0
        self.refused = 0

    async def deliver(self, delivery: Delivery) -> Receipt:
        """Stores the delivery's events once (the intake logs it on the connection either way).
        Raises the intake's AndonError when it is refused, Throttled over the customer's limit."""
        if self.charge is not None:
            try:
                await self.charge(self.found.tenant_id, len(delivery.payloads or ()) or 1)
            except TooManyRequestsError as exc:
                raise Throttled(float(exc.extra.get("retry_after", 1))) from None
        try:
            receipt = await self.intake.receive(self.found, delivery, channel=CHANNEL)
        except AndonError as refusal:
            self.deliveries += 1
            self.refused += 1
            count_delivery(CHANNEL, refusal.status_code)
            raise
        except DBAPIError as exc:
            if not is_data_exception(exc):
                raise
            await self.refuse(delivery, UNSTORABLE)
            raise ValidationFailedError(UNSTORABLE) from None
        self.deliveries += 1
        self.new += receipt.new
        self.duplicates += receipt.duplicates
        count_delivery(CHANNEL, "accepted" if receipt.new else "duplicate")
        count_events(CHANNEL, receipt.new, receipt.duplicates)
        if receipt.new and self.on_events is not None:
            self.on_events()
        return receipt

    async def refuse(self, delivery: Delivery, reason: str) -> None:
        """Logs a delivery that cannot become events (a malformed file) as refused, storing nothing."""

        def check(found: ConnectionFound, now: datetime) -> None:
            raise Refused(ValidationFailedError(reason), reason)

        self.deliveries += 1
        self.refused += 1
        try:
            await self.intake.receive(self.found, delivery, channel=CHANNEL, check=check)
        except AndonError as refusal:
            count_delivery(CHANNEL, refusal.status_code)

    async def advance(self, cursor: str | None) -> None:
        """Stores where the next run resumes (after the events before it are committed), and renews
        the lease. Raises LeaseLost when the connection is no longer this run's."""
        lease = self.clock() + self.lease_for
        if not await self.store.save(self.found, self.lease, cursor=cursor, next_poll_at=lease):
            raise LeaseLost(str(self.found.id))
        self.cursor, self.lease = cursor, lease
