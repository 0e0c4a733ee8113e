"""The SMTP adapter against a real SMTP server (aiosmtpd) on a socket."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.outbound.errors import ConnectorError
from andon.connectors.outbound.runtime import OutboundCalls
from andon.platform.engine.capabilities import FORBIDDEN, INVALID
from andon.platform.engine.executor import ENGINE
from andon.platform.tenancy.context import TenantContext, TenantId
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
PASSWORD = "smtp-Pa55word-7731"


class Inbox:
    def __init__(self) -> None:
        self.received: list[tuple[list[str], Any]] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.received.append((list(envelope.rcpt_tos), message_from_bytes(envelope.original_content or b"")))
        return "250 OK"


def _authenticate(server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login == b"andon" and data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # False: the server answers 535 itself


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=_authenticate, auth_require_tls=False)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
async def calls(app: Litestar, sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[OutboundCalls]:
    made = OutboundCalls(sessionmaker, app.state.secretbox, allow_private=True)
    yield made
    await made.egress.close()


async def test_mail_is_sent_with_a_stable_message_id_and_a_wrong_password_is_forbidden(
    api: httpx.AsyncClient, world: World, smtp_server: tuple[Inbox, int], calls: OutboundCalls
) -> None:
    inbox, port = smtp_server
    base = f"/api/v1/customers/{world.a.customer.customer_id}/outbound-connections/"
    config = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "username": "andon",
        "sender": "andon@plant.example",
    }
    for key, password in (("mail", PASSWORD), ("mail_bad", "not-the-password")):
        r = await api.post(
            base,
            headers=auth(world.a.customer.key),
            json={"key": key, "name": key, "type": "email", "config": config, "secrets": {"password": password}},
        )
        assert r.status_code == 201, r.text
    tenant = TenantContext(TenantId(world.a.customer.customer_id), world.a.partner_id, ENGINE)
    notify = {"to": ["ana@plant.example"], "cc": ["ben@plant.example"], "subject": "Press 4 down", "text": "Check it."}
    first = await calls.call(tenant, "mail", "notify", notify, idempotency_key="andon:r1:s1")
    again = await calls.call(tenant, "mail", "notify", notify, idempotency_key="andon:r1:s1")
    assert first["message_id"] == again["message_id"] and first["refused"] == []
    assert len(inbox.received) == 2
    recipients, message = inbox.received[0]
    assert recipients == ["ana@plant.example", "ben@plant.example"]
    assert (message["Subject"], message["From"], message["Message-ID"]) == (
        "Press 4 down",
        "andon@plant.example",
        first["message_id"],
    )
    assert message.get_payload().strip() == "Check it."

    with pytest.raises(ConnectorError) as refused:
        await calls.call(tenant, "mail_bad", "notify", notify, idempotency_key="andon:r1:s2")
    assert refused.value.kind == FORBIDDEN and "not-the-password" not in str(refused.value)
    with pytest.raises(ConnectorError) as bad:
        await calls.call(tenant, "mail", "notify", {**notify, "to": ["not an address"]}, idempotency_key="x")
    assert bad.value.kind == INVALID
    assert len(inbox.received) == 2

    checked = await api.post(f"{base}{r.json()['id']}/check", headers=auth(world.a.customer.key))
    steps = checked.json()["steps"]
    assert checked.json()["ok"] is False and steps[-1] == {"what": "log in", "ok": False, "detail": "refused (535)"}


async def test_an_smtp_server_on_a_private_address_is_refused_in_production_mode(
    api: httpx.AsyncClient,
    world: World,
    smtp_server: tuple[Inbox, int],
    app: Litestar,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    inbox, port = smtp_server
    guarded = OutboundCalls(sessionmaker, app.state.secretbox, allow_private=False)
    r = await api.post(
        f"/api/v1/customers/{world.a.customer.customer_id}/outbound-connections/",
        headers=auth(world.a.customer.key),
        json={
            "key": "mail",
            "name": "Mail",
            "type": "email",
            "config": {"host": "localhost", "port": port, "sender": "a@b.example"},
        },
    )
    assert r.status_code == 201, r.text
    tenant = TenantContext(TenantId(world.a.customer.customer_id), world.a.partner_id, ENGINE)
    with pytest.raises(ConnectorError) as refused:
        await guarded.call(
            tenant, "mail", "notify", {"to": ["a@b.example"], "subject": "s", "text": "t"}, idempotency_key="k"
        )
    assert refused.value.kind == INVALID and "not public" in str(refused.value)
    assert inbox.received == []
