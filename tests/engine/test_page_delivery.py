"""Escalation pages delivered through the customer's own notify connections: a real SMTP server and a
Slack webhook fake receive them from a real Dramatiq worker once the scheduler's page committed;
a failing remote is retried (with backoff, a bounded number of times) and never sent twice; a channel
naming a missing connection is refused when the workflow is saved; a level without channels is only
recorded; and one customer's pages never go through another's connections."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.platform.alerts.models import Incident
from andon.platform.alerts.raised import raise_step_alert
from andon.platform.alerts.repository import IncidentEntryRepository, IncidentRepository
from andon.platform.engine.models import PAGE_TIMER
from andon.platform.engine.page_delivery import MAX_ATTEMPTS, PAGE_QUEUE, PageDelivery, page_sender
from andon.platform.engine.repository import TimerRepository
from andon.platform.engine.scheduler import Scheduler
from tests.engine.test_escalation import (
    FakeClock,
    Ladder,
    base,
    berlin,
    crew,
    in_tenant,
    ladder,
    scheduler,
    start,
    workflow,
)
from tests.support.vendor_fake import Scripted, VendorFake, vendor_fake
from tests.support.workers import running_worker
from tests.templates.e2e_support import Mailbox
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio
SUPERVISOR = {"role": "supervisor", "on_shift": True}


@dataclass
class Remotes:
    mail: Mailbox
    chat: VendorFake
    smtp_port: int

    def mails(self) -> list[tuple[list[str], EmailMessage]]:
        return list(self.mail.received)

    def chat_posts(self, path: str) -> list[dict[str, Any]]:
        return [r.json() for r in self.chat.api_requests() if r.path == path]


@pytest.fixture
def remotes() -> Iterator[Remotes]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        with vendor_fake() as chat:
            yield Remotes(mailbox, chat, port)
    finally:
        smtp.stop()


async def connect(api: httpx.AsyncClient, tenant: Tenant, remotes: Remotes, key: str, kind: str) -> None:
    if kind == "email":
        body: dict[str, Any] = {
            "config": {
                "host": "127.0.0.1",
                "port": remotes.smtp_port,
                "security": "none",
                "sender": "pages@plant.example",
            }
        }
    else:
        body = {"secrets": {"webhook_url": f"{remotes.chat.url}/hooks/{tenant.slug}/{key}"}}
    r = await api.post(
        f"{base(tenant)}/outbound-connections/",
        headers=auth(tenant.key),
        json={"key": key, "name": key, "type": kind, **body},
    )
    assert r.status_code == 201, r.text


async def with_incident(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant, made: dict[str, Any], clock: FakeClock
) -> tuple[uuid.UUID, uuid.UUID]:
    """A run started for an alert of a new incident: (run id, incident id)."""
    async with in_tenant(sessionmaker, tenant) as (session, ctx):
        incident = await IncidentRepository(session, ctx).add(
            Incident(title="Press 1 jammed", opened_at=clock(), site_id=tenant.site_id)
        )
        alert = await raise_step_alert(
            session,
            ctx,
            run_id=uuid.uuid4(),
            step_key="jam",
            title="Press 1 jammed",
            site_id=tenant.site_id,
            incident_id=incident.id,
            now=clock(),
        )
    run_id = await start(sessionmaker, tenant, made, clock(), alert=alert)
    return run_id, incident.id


def paging(app: Litestar, sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock) -> Scheduler:
    """The scheduler as the app wires it: pages handed to the worker once their batch committed."""
    return scheduler(sessionmaker, clock, page_sender(app.state.broker))


async def fire(app: Litestar, timers: Scheduler) -> None:
    """One scheduler batch, then every page message it sent handled by the worker."""
    await timers.fire_due()
    app.state.broker.join(PAGE_QUEUE, timeout=30_000)


async def page_timers(sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant, run_id: uuid.UUID) -> list[Any]:
    async with in_tenant(sessionmaker, tenant) as (session, ctx):
        return [t for t in await TimerRepository(session, ctx).of_run(run_id, [PAGE_TIMER]) if t.fired_at is None]


TWO_CHANNELS = ["ops_mail.notify", "shift_chat.notify"]


async def test_a_page_reaches_the_on_shift_person_by_mail_and_the_shift_chat_once(
    app: Litestar,
    api: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    remotes: Remotes,
) -> None:
    c = world.a.customer
    people = await crew(api, c)
    await connect(api, c, remotes, "ops_mail", "email")
    await connect(api, c, remotes, "shift_chat", "slack")
    made = await workflow(
        api, c, escalation={"notify": TWO_CHANNELS, "levels": [{"after": 300, "targets": [SUPERVISOR]}]}
    )
    clock = FakeClock(berlin(26, 10, 0))
    run_id, incident_id = await with_incident(sessionmaker, c, made, clock)
    timers = paging(app, sessionmaker, clock)

    with running_worker(app):
        clock.advance(300)
        await fire(app, timers)
        # A timer that fires again later (the safety net) finds the page delivered: nothing twice.
        clock.advance(3600)
        await fire(app, timers)

    [(to, mail)] = remotes.mails()
    assert to == [people.early], "one message, to the Early supervisor on shift at 10:05"
    assert mail["Subject"] == "[Andon] Escalation level 1 of 1: Press 1 jammed"
    body = mail.get_content()
    assert "Press 1 jammed" in body and f"/operations/incidents/{incident_id}" in body
    [posted] = remotes.chat_posts(f"/hooks/{c.slug}/shift_chat")
    assert "[CRITICAL]" in posted["text"] and "Escalation level 1 of 1: Press 1 jammed" in posted["text"]
    assert "Ana <" in posted["text"], "the chat names the person paged"
    [button] = posted["blocks"][1]["elements"]
    assert button["url"] == f"{app.state.settings.http.base_url}/operations/incidents/{incident_id}"

    state = await ladder(sessionmaker, c, run_id)
    [page] = state.pages
    assert page.delivery == "sent" and page.delivery_attempts == 1 and page.delivery_lease_until is None
    assert {k: v["status"] for k, v in (page.delivery_detail or {}).items()} == dict.fromkeys(TWO_CHANNELS, "sent")
    assert await page_timers(sessionmaker, c, run_id) == [], "nothing is left waiting to deliver it"
    async with in_tenant(sessionmaker, c) as (session, ctx):
        entries = await IncidentEntryRepository(session, ctx).timeline(incident_id)
    [entry] = [e for e in entries if e.kind == "escalation"]
    assert entry.text == ("Escalation level 1 paged Ana — delivery sent: ops_mail.notify sent; shift_chat.notify sent")
    # The run's escalations say how each page went out.
    seen = (await api.get(f"{base(c)}/runs/{run_id}/escalations", headers=auth(c.key))).json()
    [read] = seen["escalations"][0]["sent"]
    assert read["delivery"] == "sent" and read["delivery_detail"]["ops_mail.notify"]["status"] == "sent"


async def test_a_failing_chat_is_retried_with_backoff_and_nothing_is_sent_twice(
    app: Litestar,
    api: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    remotes: Remotes,
) -> None:
    c = world.a.customer
    people = await crew(api, c)
    await connect(api, c, remotes, "ops_mail", "email")
    await connect(api, c, remotes, "shift_chat", "slack")
    made = await workflow(
        api, c, escalation={"notify": TWO_CHANNELS, "levels": [{"after": 0, "targets": [SUPERVISOR]}]}
    )
    clock = FakeClock(berlin(26, 15, 0))
    run_id = await start(sessionmaker, c, made, clock())
    timers = paging(app, sessionmaker, clock)
    remotes.chat.queue(Scripted(503, {"error": "down"}))

    with running_worker(app):
        await fire(app, timers)
        state = await ladder(sessionmaker, c, run_id)
        [page] = state.pages
        detail = page.delivery_detail or {}
        assert page.delivery == "pending" and detail["shift_chat.notify"]["status"] == "retrying"
        assert detail["ops_mail.notify"]["status"] == "sent"
        [retry] = await page_timers(sessionmaker, c, run_id)
        waited = (retry.fire_at - datetime.now(UTC)).total_seconds()
        assert 20 < waited <= 30, "the first retry waits its backoff (30 s)"

        clock.set(retry.fire_at + timedelta(seconds=1))
        await fire(app, timers)

    [(to, _)] = remotes.mails()
    assert to == [people.late], "the e-mail went once: the retry calls only the failed channel"
    posts = [r for r in remotes.chat.api_requests() if r.path == f"/hooks/{c.slug}/shift_chat"]
    assert len(posts) == 2 and posts[0].json() == posts[1].json(), "the same message, tried again"
    [page] = (await ladder(sessionmaker, c, run_id)).pages
    detail = page.delivery_detail or {}
    assert page.delivery == "sent" and page.delivery_attempts == 2
    assert detail["shift_chat.notify"] == {**detail["shift_chat.notify"], "status": "sent", "attempts": 2}
    assert detail["ops_mail.notify"]["attempts"] == 1


async def test_a_chat_that_stays_down_is_given_up_after_the_last_attempt(
    app: Litestar,
    api: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    remotes: Remotes,
) -> None:
    c = world.a.customer
    await crew(api, c)
    await connect(api, c, remotes, "ops_mail", "email")
    await connect(api, c, remotes, "shift_chat", "slack")
    made = await workflow(
        api, c, escalation={"notify": TWO_CHANNELS, "levels": [{"after": 0, "targets": [SUPERVISOR]}]}
    )
    clock = FakeClock(berlin(26, 15, 0))
    run_id, incident_id = await with_incident(sessionmaker, c, made, clock)
    timers = paging(app, sessionmaker, clock)
    remotes.chat.queue(*[Scripted(503, {"error": "down"})] * (MAX_ATTEMPTS + 3))

    with running_worker(app):
        for _ in range(MAX_ATTEMPTS + 2):
            await fire(app, timers)
            clock.set(datetime.now(UTC) + timedelta(hours=1))

    [page] = (await ladder(sessionmaker, c, run_id)).pages
    detail = page.delivery_detail or {}
    assert page.delivery == "partial" and page.delivery_attempts == MAX_ATTEMPTS
    assert detail["shift_chat.notify"]["status"] == "failed" and detail["shift_chat.notify"]["attempts"] == MAX_ATTEMPTS
    assert len(remotes.mails()) == 1
    assert await page_timers(sessionmaker, c, run_id) == []
    async with in_tenant(sessionmaker, c) as (session, ctx):
        entries = await IncidentEntryRepository(session, ctx).timeline(incident_id)
    [entry] = [e for e in entries if e.kind == "escalation"]
    assert "delivery partial: ops_mail.notify sent; shift_chat.notify failed (" in entry.text


async def test_a_channel_the_customer_has_no_connection_for_is_refused_when_saved(
    api: httpx.AsyncClient, world: World, remotes: Remotes
) -> None:
    c = world.a.customer
    await connect(api, c, remotes, "ops_mail", "email")
    cases: list[tuple[dict[str, Any], str, str]] = [
        (
            {
                "escalation": {
                    "notify": ["ops_mail.notify", "nowhere.notify"],
                    "levels": [{"after": 0, "targets": [SUPERVISOR]}],
                }
            },
            "escalation.notify[1]",
            "you have no outbound connection 'nowhere'",
        ),
        (
            {"escalation": {"levels": [{"after": 0, "targets": [SUPERVISOR], "notify": ["ops_mail.send"]}]}},
            "escalation.levels[0].notify[0]",
            "pages go through a connection's notify capability",
        ),
        (
            {"escalation": {"notify": ["ops_mail"], "levels": [{"after": 0, "targets": [SUPERVISOR]}]}},
            "escalation.notify[0]",
            "is not '<connection key>.notify'",
        ),
    ]
    for definition, field, message in cases:
        body = {"steps": [{"key": "note", "kind": "set", "values": {"noted": "true"}}], **definition}
        r = await api.post(
            f"{base(c)}/workflows/",
            headers=auth(c.key),
            json={"key": f"bad-{uuid.uuid4().hex[:6]}", "name": "Bad", "definition": body},
        )
        assert r.status_code == 422, r.text
        [error] = r.json()["errors"]
        assert error["field"] == field and message in error["message"], error
    # An escalate step's channels are checked the same way.
    step = {"key": "raise_it", "kind": "escalate", "levels": [{"after": 0, "targets": [SUPERVISOR]}]}
    r = await api.post(
        f"{base(c)}/workflows/",
        headers=auth(c.key),
        json={"key": "raise-it", "name": "Raise", "definition": {"steps": [{**step, "notify": ["gone.notify"]}]}},
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "steps[0].notify[0]", "message": "you have no outbound connection 'gone'"}]


async def test_a_level_without_channels_is_recorded_with_delivery_none(
    app: Litestar,
    api: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    remotes: Remotes,
) -> None:
    c = world.a.customer
    await crew(api, c)
    await connect(api, c, remotes, "shift_chat", "slack")
    levels = [
        {"after": 0, "targets": [SUPERVISOR], "notify": []},
        {"after": 60, "targets": [SUPERVISOR]},
    ]
    made = await workflow(api, c, escalation={"notify": ["shift_chat.notify"], "levels": levels})
    clock = FakeClock(berlin(26, 15, 0))
    run_id = await start(sessionmaker, c, made, clock())
    timers = paging(app, sessionmaker, clock)
    with running_worker(app):
        await fire(app, timers)
        first: Ladder = await ladder(sessionmaker, c, run_id)
        assert [p.delivery for p in first.pages] == ["none"], "level 1 overrides the ladder's channels with none"
        assert await page_timers(sessionmaker, c, run_id) == []
        assert remotes.chat.api_requests() == []
        clock.advance(60)
        await fire(app, timers)
    assert [p.delivery for p in (await ladder(sessionmaker, c, run_id)).pages] == ["none", "sent"]
    assert len(remotes.chat_posts(f"/hooks/{c.slug}/shift_chat")) == 1


async def test_pages_go_only_through_their_own_customers_connections(
    app: Litestar,
    api: httpx.AsyncClient,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    remotes: Remotes,
) -> None:
    a, b = world.a.customer, world.b.customer
    await crew(api, a)
    await crew(api, b)
    # Both customers name their chat connection the same; each points at its own webhook.
    await connect(api, a, remotes, "shift_chat", "slack")
    await connect(api, b, remotes, "shift_chat", "slack")
    ladder_def = {"notify": ["shift_chat.notify"], "levels": [{"after": 0, "targets": [SUPERVISOR]}]}
    made_a = await workflow(api, a, escalation=ladder_def)
    made_b = await workflow(api, b, escalation=ladder_def)
    clock = FakeClock(berlin(26, 15, 0))
    run_a = await start(sessionmaker, a, made_a, clock())
    timers = paging(app, sessionmaker, clock)
    with running_worker(app):
        await fire(app, timers)
    [page_a] = (await ladder(sessionmaker, a, run_a)).pages
    assert page_a.delivery == "sent"
    assert len(remotes.chat_posts(f"/hooks/{a.slug}/shift_chat")) == 1
    assert remotes.chat_posts(f"/hooks/{b.slug}/shift_chat") == [], "A's page never goes through B's connection"

    # A worker handed A's page under B's tenant finds nothing to deliver.
    run_b = await start(sessionmaker, b, made_b, clock())
    delivery = PageDelivery(sessionmaker, app.state.capabilities, "https://portal.example")
    assert await delivery.deliver(b.customer_id, world.b.partner_id, page_a.id) is None
    assert remotes.chat_posts(f"/hooks/{b.slug}/shift_chat") == []
    [untouched] = (await ladder(sessionmaker, a, run_a)).pages
    assert (untouched.delivery, untouched.delivery_attempts, untouched.delivery_lease_until) == ("sent", 1, None)
    # B's own page goes through B's connection only.
    with running_worker(app):
        await fire(app, timers)
    [page_b] = (await ladder(sessionmaker, b, run_b)).pages
    assert page_b.delivery == "sent"
    assert len(remotes.chat_posts(f"/hooks/{b.slug}/shift_chat")) == 1
    assert len(remotes.chat_posts(f"/hooks/{a.slug}/shift_chat")) == 1
    seen = (await api.get(f"{base(b)}/runs/{run_a}/escalations", headers=auth(b.key))).status_code
    assert seen == 404
