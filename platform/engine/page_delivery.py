"""Delivering escalation pages through the customer's own notify channels.

A ladder names its channels (``notify: ["ops_mail.notify", "shift_chat.notify"]``, or a level its
own): ``notify`` capabilities of the customer's outbound connections, checked when the workflow is
saved. An e-mail channel gets one message per page, addressed to the people paged; a Slack or Teams
channel one message naming them, with the severity and a link to the incident (or run) in the
portal, where it is acknowledged.

The scheduler records the page in its own transaction and, once that committed, hands it to a
worker (``PAGE_ACTOR``); nothing goes over the network inside the scheduler's transaction. Pattern
(STYLE 7): "compute what is missing and do only that" — a worker takes the page by compare-and-set
on its delivery attempt and lease, calls only the channels not yet settled, each with an idempotency
key of its own (page and channel), so a retry never sends twice to a remote that deduplicates, and
records each channel's outcome on the page. A failed channel is retried with backoff, up to
``MAX_ATTEMPTS`` deliveries, through the page's scheduler timer; the same timer takes the page over
when the worker's message or the worker itself was lost. The page ends ``sent``, ``partial`` (some
channel failed for good) or ``failed``, and the incident's timeline entry says so.

Every call takes the path an action step's call takes (``Capabilities.call``, which routes
``<key>.<capability>`` to the tenant's own connections: egress rules, circuit breakers, the
connector-call record), in the page's tenant only.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import dramatiq
import structlog
from dramatiq import Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.alerts.repository import IncidentEntryRepository, IncidentRepository
from andon.platform.db.scope import bind_tenant
from andon.platform.db.types import utcnow
from andon.platform.engine.capabilities import INVALID, Call, Capabilities, CapabilityError
from andon.platform.engine.definition import Definition, ladder_channels
from andon.platform.engine.escalation import PENDING, arm_delivery, levels_of, schedule
from andon.platform.engine.executor import ENGINE, tenant_context
from andon.platform.engine.models import PAGE_TIMER, Escalation, EscalationPage, WorkflowRun
from andon.platform.engine.repository import (
    EscalationPageRepository,
    EscalationRepository,
    RunRepository,
    TimerRepository,
)
from andon.platform.engine.run_timers import DeliverPages, SentPage
from andon.platform.events.relay import enqueue_all
from andon.platform.tenancy.context import TenantContext

log = structlog.get_logger("andon.pages")

PAGE_ACTOR = "engine.deliver_page"
PAGE_QUEUE = "pages"
# Deliveries of one page before its failing channels are given up.
MAX_ATTEMPTS = 5
FIRST_RETRY_SECONDS = 30.0
MAX_RETRY_SECONDS = 900.0
# Each channel's call; the lease covers every channel of a page and a margin.
CALL_SECONDS = 10.0
LEASE_MARGIN = timedelta(seconds=30)
# The connection types a page can go through, and the message each takes.
EMAIL_TYPES = frozenset({"email"})
CHAT_TYPES = frozenset({"slack", "teams"})
# Channel outcomes.
SENT, RETRYING, FAILED, SKIPPED = "sent", "retrying", "failed", "skipped"
# The chat connectors' severities, from an event's or alert's.
_CHAT_SEVERITY = {
    "critical": "critical",
    "high": "major",
    "major": "major",
    "medium": "minor",
    "minor": "minor",
    "low": "warning",
    "warning": "warning",
    "info": "info",
}

# The type and capability names of the tenant's connection ``key``, or None: the connectors domain
# answers (``connectors.outbound.service.offered_capabilities``); the kernel does not know it.
ConnectionKinds = Callable[[AsyncSession, TenantContext, str], Awaitable[tuple[str, set[str]] | None]]
_LOOKUP: list[ConnectionKinds] = []


def use_connections(lookup: ConnectionKinds) -> None:
    """Called by the app and worker entry points with the connectors domain's lookup."""
    _LOOKUP[:] = [lookup]


async def _kind_of(session: AsyncSession, tenant: TenantContext, key: str) -> tuple[str, set[str]] | None:
    if not _LOOKUP:
        raise RuntimeError("page channels need the connectors domain: call use_connections at start-up")
    return await _LOOKUP[0](session, tenant, key)


def channel_problem(channel: str, found: tuple[str, set[str]] | None) -> str | None:
    """Why ``channel`` cannot carry pages (its connection as ``found``), or None when it can."""
    key, _, capability = channel.partition(".")
    if found is None:
        return f"you have no outbound connection '{key}'"
    kind, offered = found
    if kind not in EMAIL_TYPES | CHAT_TYPES:
        return f"'{key}' is a {kind} connection; pages go through e-mail, Slack or Teams connections"
    if capability != "notify" or capability not in offered:
        return f"pages go through a connection's notify capability ('{key}.notify'), not {capability}"
    return None


async def channel_problems(
    session: AsyncSession, tenant: TenantContext, definition: Definition
) -> list[tuple[str, str]]:
    """Every ladder channel of the definition that is not a notify channel of this customer."""
    problems: list[tuple[str, str]] = []
    for field, channel in ladder_channels(definition):
        problem = channel_problem(channel, await _kind_of(session, tenant, channel.partition(".")[0]))
        if problem is not None:
            problems.append((field, problem))
    return problems


def page_message(page: SentPage) -> Message[object]:
    args = (str(page.tenant_id), str(page.partner_id), str(page.page_id))
    return Message(queue_name=PAGE_QUEUE, actor_name=PAGE_ACTOR, args=args, kwargs={}, options={})


def page_sender(broker: dramatiq.Broker) -> DeliverPages:
    """The scheduler's delivery hook: one message per page, once the pages' batch committed."""

    async def deliver(pages: Sequence[SentPage]) -> None:
        if not pages:
            return
        try:
            await asyncio.to_thread(enqueue_all, broker, [page_message(p) for p in pages])
        except Exception as exc:  # the broker is away: each page's timer takes it over
            log.warning("page_messages_not_sent", count=len(pages), error=f"{type(exc).__name__}: {exc}")

    return deliver


def retry_delay(attempt: int) -> float:
    return float(min(FIRST_RETRY_SECONDS * 2 ** (attempt - 1), MAX_RETRY_SECONDS))


@dataclass(frozen=True, slots=True)
class Send:
    channel: str
    inputs: dict[str, Any]


@dataclass(slots=True)
class Claimed:
    page: EscalationPage
    attempt: int
    number: int
    run_id: uuid.UUID
    detail: dict[str, dict[str, Any]]
    sends: list[Send]


def _about(run: WorkflowRun, incident_title: str | None) -> str:
    event = run.context.get("event") if isinstance(run.context, dict) else None
    subject = event.get("subject") if isinstance(event, dict) else None
    return str(subject or incident_title or run.workflow_key)[:200]


def _severity(run: WorkflowRun) -> str | None:
    context = run.context if isinstance(run.context, dict) else {}
    for source in (context.get("event"), context.get("alert")):
        if isinstance(source, dict) and str(source.get("severity", "")).lower() in _CHAT_SEVERITY:
            return _CHAT_SEVERITY[str(source["severity"]).lower()]
    return None


class PageDelivery:
    """Delivers one page (``deliver``): in the worker's event loop, with its sessionmaker and the
    capabilities its step executor calls through."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        capabilities: Capabilities,
        base_url: str,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.capabilities = capabilities
        self.base_url = base_url.rstrip("/")
        self.clock = clock

    async def deliver(self, tenant_id: uuid.UUID, partner_id: uuid.UUID, page_id: uuid.UUID) -> str | None:
        """The page's delivery after this attempt (pending, sent, partial, failed), or None when
        there was nothing for this worker to do (delivered already, taken by another, not found)."""
        tenant = tenant_context(tenant_id, partner_id)
        claimed = await self._claim(tenant, page_id)
        if claimed is None:
            return None
        for send in claimed.sends:
            before = claimed.detail.get(send.channel, {})
            tries = int(before.get("attempts", 0)) + 1
            call = Call(
                send.channel,
                send.inputs,
                f"andon:page:{page_id}:{send.channel}",
                CALL_SECONDS,
                tenant.tenant_id,
                claimed.run_id,
                partner_id=partner_id,
                step_key=f"@page{claimed.number}",
            )
            try:
                await self.capabilities.call(call)
            except CapabilityError as exc:
                final = exc.kind in (INVALID, "forbidden", "not_found") or claimed.attempt >= MAX_ATTEMPTS
                claimed.detail[send.channel] = self._outcome(FAILED if final else RETRYING, tries, str(exc)[:500])
            else:
                claimed.detail[send.channel] = self._outcome(SENT, tries, None)
        return await self._settle(tenant, claimed)

    def _outcome(self, status: str, attempts: int, error: str | None) -> dict[str, Any]:
        return {"status": status, "attempts": attempts, "error": error, "at": self.clock().isoformat()}

    async def _claim(self, tenant: TenantContext, page_id: uuid.UUID) -> Claimed | None:
        now = self.clock()
        async with self.sessionmaker() as session, session.begin():
            await bind_tenant(session, tenant.tenant_id, ENGINE)
            pages = EscalationPageRepository(session, tenant)
            lease_until = now + LEASE_MARGIN + timedelta(seconds=CALL_SECONDS * 10)
            page = await pages.claim_delivery(page_id, now, lease_until)
            if page is None:
                return None
            escalation = await EscalationRepository(session, tenant).get(page.escalation_id)
            run = await RunRepository(session, tenant).read(page.run_id)
            if escalation is None or run is None:  # pragma: no cover - pages go with their run (cascade)
                return None
            # Should this worker die, the page's timer takes it over when the lease ends.
            await arm_delivery(session, tenant, page, page.delivery_attempts + 1, lease_until, now)
            detail: dict[str, dict[str, Any]] = dict(page.delivery_detail or {})
            sends = await self._sends(session, tenant, page, escalation, run, detail)
            return Claimed(page, page.delivery_attempts, page.number, page.run_id, detail, sends)

    async def _sends(
        self,
        session: AsyncSession,
        tenant: TenantContext,
        page: EscalationPage,
        escalation: Escalation,
        run: WorkflowRun,
        detail: dict[str, dict[str, Any]],
    ) -> list[Send]:
        """The calls still to make: one per channel not yet sent or given up."""
        levels = levels_of(escalation)
        incident = await IncidentRepository(session, tenant).get(run.incident_id) if run.incident_id else None
        about = _about(run, incident.title if incident else None)
        link = (
            f"{self.base_url}/operations/incidents/{run.incident_id}"
            if run.incident_id
            else f"{self.base_url}/operations/runs/{run.id}"
        )
        which = f"Escalation level {page.level + 1} of {len(levels)}" + (
            f" (repeat {page.repeat})" if page.repeat else ""
        )
        paged_pages = len(schedule(levels))
        names = ", ".join(f"{p['name']} <{p['email']}>" if p.get("email") else str(p["name"]) for p in page.paged)
        text = (
            f"{which}, page {page.number} of at most {paged_pages}: {about} (workflow {run.workflow_key}).\n"
            f"Paged: {names or 'nobody (no one matched the level targets)'}.\n"
            f"Acknowledge to stop the escalation: {link}"
        )
        sends: list[Send] = []
        for channel in levels[page.level].notify or []:
            if detail.get(channel, {}).get("status") in (SENT, FAILED, SKIPPED):
                continue
            found = await _kind_of(session, tenant, channel.partition(".")[0])
            problem = channel_problem(channel, found)
            if problem is not None or found is None:  # the connection changed since the workflow was saved
                detail[channel] = self._outcome(FAILED, 0, problem)
                continue
            if found[0] in EMAIL_TYPES:
                to = sorted({str(p["email"]) for p in page.paged if p.get("email")})
                if not to:
                    detail[channel] = self._outcome(SKIPPED, 0, "nobody with an e-mail address was paged")
                    continue
                sends.append(Send(channel, {"to": to, "subject": f"[Andon] {which}: {about}"[:300], "text": text}))
            else:
                chat: dict[str, Any] = {"text": text[:3000], "title": f"{which}: {about}"[:300], "link": link}
                severity = _severity(run)
                if severity is not None:
                    chat["severity"] = severity
                sends.append(Send(channel, chat))
        return sends

    async def _settle(self, tenant: TenantContext, claimed: Claimed) -> str | None:
        now = self.clock()
        statuses = [d["status"] for d in claimed.detail.values()]
        if RETRYING in statuses:
            delivery = PENDING
        elif SENT in statuses:
            delivery = "sent" if FAILED not in statuses else "partial"
        elif FAILED in statuses:
            delivery = "failed"
        else:
            delivery = "none"  # every channel skipped: nobody to reach through them
        page = claimed.page
        async with self.sessionmaker() as session, session.begin():
            await bind_tenant(session, tenant.tenant_id, ENGINE)
            settled = await EscalationPageRepository(session, tenant).settle_delivery(
                page.id, claimed.attempt, delivery=delivery, delivery_detail=claimed.detail
            )
            if not settled:
                return None  # another worker took it over (this one outlived its lease)
            if delivery == PENDING:
                at = now + timedelta(seconds=retry_delay(claimed.attempt))
                await arm_delivery(session, tenant, page, claimed.attempt + 1, at, now)
            else:
                await TimerRepository(session, tenant).cancel_run_timers(page.run_id, [PAGE_TIMER], now, refs=[page.id])
                await self._note(session, tenant, page, delivery, claimed.detail)
        log.info("page_delivered", page_id=str(page.id), delivery=delivery, attempt=claimed.attempt)
        return delivery

    async def _note(
        self,
        session: AsyncSession,
        tenant: TenantContext,
        page: EscalationPage,
        delivery: str,
        detail: dict[str, dict[str, Any]],
    ) -> None:
        """The incident timeline's "paged" entry says how the page went out."""
        if page.entry_id is None:
            return
        entry = await IncidentEntryRepository(session, tenant).get(page.entry_id)
        if entry is None:
            return
        parts = []
        for channel, outcome in detail.items():
            said = f"{channel} {outcome['status']}"
            if outcome["status"] != SENT and outcome.get("error"):
                said += f" ({str(outcome['error'])[:120]})"
            parts.append(said)
        entry.text = f"{entry.text} — delivery {delivery}: {'; '.join(parts)}"
