"""A customer's plant wired to every vendor system a catalog template calls, for the end-to-end tests
of the catalog: the contract fakes (each speaking its vendor's protocol on a real socket), a chat
webhook fake, a real SMTP server; the customer's outbound connections to them made through the API;
deployments through the deployments API; events through CloudEvents ingress; the run moved by the
outbox relay and a real Dramatiq worker; tasks done and approvals signed by signed-in people."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.engine.test_escalation import FakeClock, scheduler
from tests.support.browser import csrf_token, new_user_signed_in
from tests.support.contracts.calling import connect
from tests.support.contracts.cmms import CmmsFake
from tests.support.contracts.crm import CrmFake
from tests.support.contracts.erp import ErpFake
from tests.support.contracts.qms import QmsFake
from tests.support.contracts.server import ContractFake, serve
from tests.support.contracts.servicenow import ServiceNowFake
from tests.support.contracts.supplier_portal import SupplierPortalFake
from tests.support.ingress import post_events
from tests.support.vendor_fake import Seen, VendorFake, vendor_fake
from tests.support.workers import drain, relay_all
from tests.tenants.factories import World, auth

PASSWORD = "correct horse battery staple"  # new_user_signed_in's password
PLANT = "DE01"
# The customer's plant, as the test world names it in events (its external ids).
SITE = "alpha-customer-S"
ASSET = "alpha-customer-P"


class Mailbox:
    """An SMTP server's delivered mail: (recipients, message)."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        message = BytesParser(_class=EmailMessage, policy=policy.default).parsebytes(envelope.original_content or b"")
        self.received.append((list(envelope.rcpt_tos), message))
        return "250 OK"


@dataclass
class Fakes:
    cmms: CmmsFake
    servicenow: ServiceNowFake
    erp: ErpFake
    crm: CrmFake
    qms: QmsFake
    supplier: SupplierPortalFake
    chat: VendorFake
    mail: Mailbox
    smtp_port: int

    def calls(self) -> dict[str, list[str]]:
        """Every API request each fake answered (token requests left out), as ``METHOD path``."""
        seen: dict[str, list[Seen]] = {
            name: fake.api_requests()
            for name, fake in (
                ("cmms", self.cmms),
                ("servicenow", self.servicenow),
                ("erp", self.erp),
                ("crm", self.crm),
                ("qms", self.qms),
                ("supplier", self.supplier),
                ("chat", self.chat),
            )
        }
        made = {name: [f"{r.method} {r.path}" for r in requests] for name, requests in seen.items() if requests}
        if self.mail.received:
            made["mail"] = [f"SMTP {', '.join(to)}" for to, _ in self.mail.received]
        return made


@contextmanager
def contract_fakes() -> Iterator[Fakes]:
    with ExitStack() as stack:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        mailbox = Mailbox()
        smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
        smtp.start()
        stack.callback(smtp.stop)
        yield Fakes(
            cmms=stack.enter_context(serve(CmmsFake("bearer"))),
            servicenow=stack.enter_context(serve(ServiceNowFake("basic", table="change_request"))),
            erp=stack.enter_context(serve(ErpFake("oauth2", plant=PLANT))),
            crm=stack.enter_context(serve(CrmFake("oauth2"))),
            qms=stack.enter_context(serve(QmsFake("api_key"))),
            supplier=stack.enter_context(serve(SupplierPortalFake("api_key"))),
            chat=stack.enter_context(vendor_fake()),
            mail=mailbox,
            smtp_port=port,
        )


@dataclass
class Person:
    """Someone of the customer signed in, calling the API with their session, as the portal does."""

    browser: httpx.AsyncClient
    token: str
    email: str

    async def post(self, url: str, body: dict[str, Any]) -> httpx.Response:
        return await self.browser.post(url, json=body, headers={"x-csrf-token": self.token})


@dataclass
class Plant:
    app: Litestar
    api: httpx.AsyncClient
    world: World
    fakes: Fakes
    sessionmaker: async_sessionmaker[AsyncSession]
    people: dict[str, Person] = field(default_factory=dict)
    connected: set[str] = field(default_factory=set)

    @property
    def key(self) -> str:
        return self.world.a.customer.key

    @property
    def base(self) -> str:
        return f"/api/v1/customers/{self.world.a.customer.customer_id}"

    async def get(self, path: str, **params: Any) -> Any:
        r = await self.api.get(self.base + path, headers=auth(self.key), params=params)
        assert r.status_code == 200, r.text
        return r.json()

    # -- the customer admin's set-up ------------------------------------------------------------
    async def connect(self, key: str, kind: str) -> None:
        """An outbound connection ``key`` of type ``kind`` to the fake that speaks it."""
        vendors: dict[str, tuple[ContractFake, dict[str, Any]]] = {
            "cmms": (self.fakes.cmms, {}),
            "servicenow": (self.fakes.servicenow, {"table": "change_request"}),
            "erp": (self.fakes.erp, {"plant": PLANT}),
            "crm": (self.fakes.crm, {}),
            "qms": (self.fakes.qms, {}),
            "supplier_portal": (self.fakes.supplier, {}),
        }
        if kind in vendors:
            fake, config = vendors[kind]
            await connect(self.api, self.world, key, kind, fake, 100, **config)
            return
        if kind == "email":
            smtp = {"host": "127.0.0.1", "port": self.fakes.smtp_port, "security": "none"}
            body: dict[str, Any] = {"config": {**smtp, "sender": "andon@alpha-customer.example"}}
        else:  # slack, teams: the webhook URL is the secret
            body = {"secrets": {"webhook_url": f"{self.fakes.chat.url}/hooks/{key}"}}
        r = await self.api.post(
            f"{self.base}/outbound-connections/",
            headers=auth(self.key),
            json={"key": key, "name": key, "type": kind, **body},
        )
        assert r.status_code == 201, r.text

    async def deploy(self, template: str, bindings: dict[str, str], **params: Any) -> dict[str, Any]:
        """``template`` enabled for the customer's site, each binding to a connection of its own key
        and type (``{binding: type}``), as the customer admin does it."""
        for key, kind in bindings.items():
            if key not in self.connected:
                await self.connect(key, kind)
                self.connected.add(key)
        r = await self.api.post(
            f"{self.base}/deployments/",
            headers=auth(self.key),
            json={
                "template": template,
                "site_ids": [str(self.world.a.customer.site_id)],
                "params": params,
                "bindings": {key: key for key in bindings},
            },
        )
        assert r.status_code == 201, r.text
        made: dict[str, Any] = r.json()
        assert made["status"] == "active" and made["workflow_id"]
        return made

    async def person(self, role: str) -> Person:
        """One person per role, made on first use."""
        if role not in self.people:
            email = f"{role}-{uuid.uuid4().hex[:6]}@alpha-customer.example"
            browser = await new_user_signed_in(
                self.app, self.api, users_url=f"{self.base}/users", key=self.key, email=email, role=role
            )
            self.people[role] = Person(browser, csrf_token((await browser.get("/account")).text), email)
        return self.people[role]

    async def close(self) -> None:
        for person in self.people.values():
            await person.browser.aclose()

    # -- the plant's events and the run they start ---------------------------------------------
    async def send(self, type_: str, data: dict[str, Any], **attributes: Any) -> None:
        """One CloudEvent from the plant through ingress, taken by the worker to the first thing the
        runs it starts wait for."""
        event = {
            "specversion": "1.0",
            "id": f"evt-{uuid.uuid4().hex[:12]}",
            "source": "urn:andon-e2e:plant",
            "type": type_,
            "siteid": SITE,
            "data": data,
            **attributes,
        }
        r = await post_events(self.api, self.key, event)
        assert r.status_code == 201, r.text
        await relay_all(self.app)
        await self.settle()

    async def settle(self) -> None:
        """Until the worker has done everything sent so far, including the steps a completed task or
        a signature queued (their messages go out once the request's transaction commits)."""
        drain(self.app)
        await asyncio.sleep(0.1)
        drain(self.app)

    async def run(self, deployment: dict[str, Any]) -> dict[str, Any]:
        """The deployment's one run, in full."""
        runs = await self.get("/runs/", workflow_key=deployment["key"])
        assert runs["total"] == 1, runs
        detail: dict[str, Any] = await self.get(f"/runs/{runs['items'][0]['id']}")
        return detail

    async def escalations(self, run: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = await self.get(f"/runs/{run['run']['id']}/escalations")
        return found

    async def hidden_from_the_other_customer(self, run: dict[str, Any]) -> None:
        """The other partner's customer finds none of it: no deployment, run, task or breach."""
        other = self.world.b.customer
        theirs = f"/api/v1/customers/{other.customer_id}"
        for path in ("/runs/", "/tasks/", "/sla-breaches/"):
            r = await self.api.get(theirs + path, headers=auth(other.key))
            assert r.status_code == 200 and r.json()["total"] == 0, (path, r.text)
        assert (await self.api.get(theirs + "/deployments/", headers=auth(other.key))).json() == []
        for base in (theirs, self.base):
            r = await self.api.get(f"{base}/runs/{run['run']['id']}", headers=auth(other.key))
            assert r.status_code == 404, r.text

    async def tasks(self, run: dict[str, Any], status: str = "open") -> list[dict[str, Any]]:
        """The run's tasks with ``status`` (as the run shows them), by step."""
        detail = await self.get(f"/runs/{run['run']['id']}")
        tasks = [t for t in detail["tasks"] if t["status"] == status]
        return sorted(tasks, key=lambda t: (t["step_key"], t["title"]))

    async def complete(self, role: str, task: dict[str, Any], **outcome: Any) -> None:
        person = await self.person(role)
        r = await person.post(f"{self.base}/tasks/{task['id']}/complete", {"outcome": outcome})
        assert r.status_code == 200 and r.json()["status"] == "done", r.text
        await self.settle()

    async def sign(self, role: str, task: dict[str, Any], decision: str = "approve") -> None:
        person = await self.person(role)
        r = await person.post(
            f"{self.base}/tasks/{task['id']}/decide",
            {"decision": decision, "reason": f"{decision}: checked the run's evidence", "password": PASSWORD},
        )
        assert r.status_code == 200 and r.json()["task"]["status"] == "done", r.text
        await self.settle()

    async def fire_timers(self, at: datetime) -> None:
        """The scheduler's pass at ``at`` (SLA due times judged, escalation levels paged)."""
        await scheduler(self.sessionmaker, FakeClock(at)).fire_due()


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)) / timedelta(seconds=1)


def statuses(run: dict[str, Any]) -> dict[str, str]:
    """Each step the run took, with its status."""
    return {s["step_key"]: s["status"] for s in run["steps"]}


def chat_messages(fakes: Fakes) -> list[tuple[str, str]]:
    """What the chat webhooks received, in order: (webhook path, the text a person reads), from a
    Slack message's text or a Teams adaptive card's text blocks."""
    said: list[tuple[str, str]] = []
    for request in fakes.chat.api_requests():
        body = request.json()
        if "attachments" in body:
            blocks = body["attachments"][0]["content"]["body"]
            said.append((request.path, "\n".join(b["text"] for b in blocks)))
        else:
            said.append((request.path, body["text"]))
    return said


def bodies(fake: ContractFake | VendorFake, method: str) -> list[Any]:
    """The JSON bodies of a fake's ``method`` requests, in order."""
    return [r.json() for r in fake.api_requests() if r.method == method]
