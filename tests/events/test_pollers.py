"""Pollers for the systems that cannot push: a vendor's REST endpoint paged by a cursor (a real HTTP
server on a local port), and a drop folder of CSV / JSON files.

What is fetched reaches the worker like any other event; the cursor moves only after a page's events
are committed, so a restart resumes where the last commit left off and a page fetched twice is stored
once; a failing vendor is backed off and recovers; a customer's poller never reaches Andon's own
network, the server's files or another customer's folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar import Litestar
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.egress import public_address
from andon.connectors.ingress.poll_run import PollLimits, PollStore
from andon.connectors.ingress.pollers import PollReport, PollScheduler
from andon.connectors.sources.repository import PollStateRepository, SourceConnectionRepository
from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.config.settings import (
    DatabaseSettings,
    Environment,
    LimitSettings,
    PollingSettings,
    RedisSettings,
    SecuritySettings,
    Settings,
    WorkerSettings,
)
from andon.platform.db.engine import create_engine, create_sessionmaker
from andon.platform.db.scope import apply_principal_scope
from andon.platform.http.app import create_app
from andon.platform.tenancy.principal import system_principal
from andon.tenants.orgs.service import CustomerService
from tests.support.browser import browser_on
from tests.support.workers import drain, relay_all, running_worker
from tests.tenants.factories import Tenant, World, auth

pytestmark = pytest.mark.anyio
ALARM = "dev.andon.machine.alarm.v1"
VENDOR_KEY = "vendor-api-key-0123456789"


# --- a vendor's REST API, on a real socket ----------------------------------------------------------


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (the poller's timeout) is expected here, not an error to print."""


class Vendor:
    """Records paged by a cursor: ``c<n>`` means "after the first n records". Every request is
    recorded (path, cursor asked for, credential); queued ``failures`` answer the next requests."""

    def __init__(self, page_size: int = 2) -> None:
        self.page_size = page_size
        self.records: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.failures: list[str] = []
        # Each page also repeats this many records from before the cursor (a sloppy vendor).
        self.overlap = 0
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                vendor.answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/records"

    def cursors(self, path: str = "/api/records") -> list[str | None]:
        return [r["cursor"] for r in self.requests if r["path"] == path]

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        cursor = parse_qs(url.query).get("since", [None])[0]
        self.requests.append({"path": url.path, "cursor": cursor, "auth": request.headers.get("X-Api-Key")})
        if self.failures:
            failure = self.failures.pop(0)
            if failure == "slow":
                time.sleep(1.5)
                return self._send(request, 200, {"data": {"records": []}})
            if failure == "html":
                return self._send(request, 200, b"<html><body>Down for maintenance</body></html>", "text/html")
            if failure == "redirect":
                return self._send(request, 302, b"", "text/plain", {"Location": "http://169.254.169.254/"})
            return self._send(request, 500, b"upstream exploded", "text/plain")
        if request.headers.get("X-Api-Key") != f"Token {VENDOR_KEY}":
            return self._send(request, 401, {"error": "bad key"})
        after = int(cursor[1:]) if cursor else 0
        fresh = self.records[after : after + self.page_size]
        page = self.records[max(0, after - self.overlap) : after] + fresh if fresh else []
        return self._send(request, 200, {"data": {"records": page}, "paging": {"next": f"c{after + len(fresh)}"}})

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(raw)


@pytest.fixture
def vendor() -> Iterator[Vendor]:
    served = Vendor()
    served.thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()


def record(n: int, **fields: Any) -> dict[str, Any]:
    return {"id": f"r{n}", "code": f"E{n}", "message": "Over temperature", "value": 90 + n, **fields}


# --- helpers ------------------------------------------------------------------------------------------


class Clock:
    """The scheduler's time, moved by the test (connections are due once their interval has passed)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC) + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 3600) -> None:
        self.now += timedelta(seconds=seconds)


def scheduler(app: Litestar, clock: Clock, settings: Settings | None = None, **options: Any) -> PollScheduler:
    return PollScheduler(
        app.state.sessionmaker,
        app.state.secretbox,
        settings or app.state.settings,
        on_events=app.state.relay.wake,
        clock=clock,
        **options,
    )


def with_polling(settings: Settings, **polling: Any) -> Settings:
    return settings.model_copy(update={"polling": PollingSettings(**polling)})


def rest_config(url: str, **config: Any) -> dict[str, Any]:
    return {
        "url": url,
        "cursor_param": "since",
        "items": "data.records",
        "next_cursor": "paging.next",
        "auth_header": "X-Api-Key",
        "auth_prefix": "Token ",
        **config,
    }


async def _connection(api: httpx.AsyncClient, tenant: Tenant, kind: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": f"{kind} {uuid.uuid4().hex[:8]}", "kind": kind, **fields}
    if kind == "rest_poll":
        body.setdefault("event_type", ALARM)
        body.setdefault("secret", VENDOR_KEY)
    r = await api.post(f"/api/v1/customers/{tenant.customer_id}/connections/", headers=auth(tenant.key), json=body)
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()
    return made


async def _read(api: httpx.AsyncClient, tenant: Tenant, connection: dict[str, Any]) -> dict[str, Any]:
    r = await api.get(
        f"/api/v1/customers/{tenant.customer_id}/connections/{connection['id']}", headers=auth(tenant.key)
    )
    assert r.status_code == 200, r.text
    read: dict[str, Any] = r.json()
    return read


async def _events(api: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    r = await api.get("/api/v1/events", headers=auth(tenant.key), params={"limit": 100})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def _deliveries(api: httpx.AsyncClient, tenant: Tenant, connection: dict[str, Any]) -> list[dict[str, Any]]:
    r = await api.get(
        f"/api/v1/customers/{tenant.customer_id}/connections/{connection['id']}/deliveries",
        headers=auth(tenant.key),
        params={"limit": 100},
    )
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def _alerts(api: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    r = await api.get(f"/api/v1/customers/{tenant.customer_id}/alerts", headers=auth(tenant.key))
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def _set_cursor(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant, connection_id: str, cursor: str | None
) -> None:
    """What a crash between a page's commit and its cursor's would leave behind."""
    system = system_principal(ALL_PERMISSIONS, "test")
    async with sessionmaker() as session, session.begin():
        await apply_principal_scope(session, system)
        ctx = await CustomerService(session, system).open_tenant(tenant.customer_id)
        connection = await SourceConnectionRepository(session, ctx).get(uuid.UUID(connection_id))
        assert connection is not None
        connection.cursor = cursor


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def one(reports: list[PollReport]) -> PollReport:
    assert len(reports) == 1, reports
    return reports[0]


# --- REST ---------------------------------------------------------------------------------------------


async def test_a_rest_endpoint_is_polled_page_by_page_and_its_events_reach_the_worker(
    app: Litestar, api: httpx.AsyncClient, world: World, vendor: Vendor
) -> None:
    c = world.a.customer
    vendor.records = [record(n) for n in range(5)]
    conn = await _connection(api, c, "rest_poll", config=rest_config(vendor.url))
    assert conn["next_poll_at"] and conn["cursor"] is None and "secret" in conn
    clock = Clock()
    polls = scheduler(app, clock)

    report = one(await polls.run_once())
    assert (report.new, report.duplicates, report.deliveries, report.error) == (5, 0, 3, None)
    # From no cursor, page by page, until a page brings nothing new; the vendor's key on every request.
    assert vendor.cursors() == [None, "c2", "c4", "c5"]
    assert {r["auth"] for r in vendor.requests} == {f"Token {VENDOR_KEY}"}
    read = await _read(api, c, conn)
    assert (read["cursor"], read["last_error"]) == ("c5", None)
    assert _at(read["next_poll_at"]) == clock.now + timedelta(seconds=60)
    events = await _events(api, c)
    assert sorted(e["data"]["code"] for e in events) == [f"E{n}" for n in range(5)]
    assert {(e["type"], e["channel"], e["source"]) for e in events} == {(ALARM, "poll", conn["source"])}
    log = await _deliveries(api, c, conn)
    assert [(d["webhook_id"], d["outcome"], len(d["event_ids"])) for d in log] == [
        ("cursor c4", "accepted", 1),
        ("cursor c2", "accepted", 2),
        ("first page", "accepted", 2),
    ]

    assert await relay_all(app) == 5
    with running_worker(app):
        drain(app)
    assert {e["status"] for e in await _events(api, c)} == {"processed"}
    assert len(await _alerts(api, c)) == 5

    # Not due yet: nothing is fetched.
    assert await polls.run_once() == []
    # Due again, nothing new: one request from the stored cursor, no delivery.
    clock.advance()
    report = one(await polls.run_once())
    assert (report.new, report.deliveries, report.error) == (0, 0, None)
    assert vendor.cursors()[-1] == "c5" and len(vendor.requests) == 5
    # A new record at the vendor: only it is fetched and stored.
    vendor.records.append(record(5))
    clock.advance()
    assert one(await polls.run_once()).new == 1
    assert vendor.cursors()[-2:] == ["c5", "c6"]
    assert (await _read(api, c, conn))["cursor"] == "c6"
    assert len(await _events(api, c)) == 6


async def test_a_restart_resumes_from_the_stored_cursor(
    app: Litestar, api: httpx.AsyncClient, world: World, vendor: Vendor, settings: Settings
) -> None:
    c = world.a.customer
    vendor.records = [record(n) for n in range(3)]
    conn = await _connection(api, c, "rest_poll", config=rest_config(vendor.url))
    clock = Clock()
    assert one(await scheduler(app, clock).run_once()).new == 3
    assert (await _read(api, c, conn))["cursor"] == "c3"

    # Another process (a new app, a new scheduler) after a restart.
    vendor.records += [record(3), record(4)]
    vendor.requests.clear()
    restarted = create_app(settings)
    try:
        clock.advance()
        assert one(await scheduler(restarted, clock).run_once()).new == 2
    finally:
        await restarted.state.engine.dispose()
    assert vendor.cursors() == ["c3", "c5"]
    assert len(await _events(api, c)) == 5


async def test_a_suspended_customer_is_not_polled(
    app: Litestar, api: httpx.AsyncClient, world: World, vendor: Vendor
) -> None:
    c = world.a.customer
    vendor.records = [record(0)]
    conn = await _connection(api, c, "rest_poll", config=rest_config(vendor.url))
    customer = f"/api/v1/customers/{c.customer_id}"
    suspended = await api.patch(customer, json={"status": "suspended"}, headers=auth(world.a.key))
    assert suspended.status_code == 200, suspended.text
    clock = Clock()
    polls = scheduler(app, clock)
    assert await polls.run_once() == [] and vendor.requests == []
    read = (await api.get(f"{customer}/connections/{conn['id']}", headers=auth(world.a.key))).json()
    assert read["last_error"] == "the customer is suspended: not polled until it is active again"
    assert _at(read["next_poll_at"]) == clock.now + timedelta(hours=1)

    assert (await api.patch(customer, json={"status": "active"}, headers=auth(world.a.key))).status_code == 200
    clock.advance(3601)
    assert one(await polls.run_once()).new == 1
    assert (await _read(api, c, conn))["last_error"] is None


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        ("500", "answered HTTP 500: upstream exploded"),
        ("slow", "did not answer within 0.5 s"),
        ("html", "the answer is not JSON: <html><body>Down for maintenance"),
        ("redirect", "answered HTTP 302 (a redirect to http://169.254.169.254/); redirects are not followed"),
    ],
)
async def test_a_failing_vendor_is_backed_off_and_recovers(
    app: Litestar, api: httpx.AsyncClient, world: World, vendor: Vendor, settings: Settings, failure: str, message: str
) -> None:
    c = world.a.customer
    vendor.records = [record(0)]
    vendor.failures = [failure, failure]
    conn = await _connection(api, c, "rest_poll", config=rest_config(vendor.url, interval_seconds=60))
    clock = Clock()
    polls = scheduler(app, clock, with_polling(settings, timeout_seconds=0.5))

    for wait in (120, 240):  # the wait doubles from the interval
        report = one(await polls.run_once())
        assert report.error is not None and message in report.error, report.error
        read = await _read(api, c, conn)
        assert read["last_error"] == report.error and read["cursor"] is None
        assert _at(read["next_poll_at"]) == clock.now + timedelta(seconds=wait)
        clock.advance(wait)
    assert await _events(api, c) == []

    report = one(await polls.run_once())
    assert (report.error, report.new) == (None, 1)
    read = await _read(api, c, conn)
    assert (read["last_error"], read["cursor"]) == (None, "c1")
    assert _at(read["next_poll_at"]) == clock.now + timedelta(seconds=60)


async def test_a_wrong_key_and_a_record_that_is_not_an_event_stop_the_cursor(
    app: Litestar, api: httpx.AsyncClient, world: World, vendor: Vendor
) -> None:
    c = world.a.customer
    vendor.records = [record(0), {"id": "r1", "code": "E1"}]  # an alarm needs a message
    wrong = await _connection(api, c, "rest_poll", config=rest_config(vendor.url), secret="not-the-vendor-key-42")
    clock = Clock()
    report = one(await scheduler(app, clock).run_once())
    assert report.error == '127.0.0.1 answered HTTP 401: {"error": "bad key"}'
    assert (await _read(api, c, wrong))["last_error"] == report.error

    conn = await _connection(api, c, "rest_poll", config=rest_config(vendor.url))
    clock.advance(1)
    report = one(await scheduler(app, clock).run_once())
    # The page is refused whole and logged; the cursor stays, so nothing is skipped once it is fixed.
    assert report.error is not None and report.error.startswith("the records at first page were refused (422)")
    assert "data.message" in report.error
    assert (await _read(api, c, conn))["cursor"] is None and await _events(api, c) == []
    [refused] = await _deliveries(api, c, conn)
    assert (refused["outcome"], refused["status_code"], refused["webhook_id"]) == ("refused", 422, "first page")


async def test_a_record_fetched_twice_is_stored_once(
    app: Litestar,
    api: httpx.AsyncClient,
    world: World,
    vendor: Vendor,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    c = world.a.customer
    vendor.records = [record(n) for n in range(4)]
    vendor.overlap = 1  # every page after the first repeats the record before it
    conn = await _connection(api, c, "rest_poll", config=rest_config(vendor.url))
    clock = Clock()
    polls = scheduler(app, clock)
    report = one(await polls.run_once())
    assert (report.new, report.duplicates) == (4, 1)

    # A crash after the page's commit, before its cursor's: the pages are fetched again, nothing is
    # stored twice.
    await _set_cursor(sessionmaker, c, conn["id"], None)
    clock.advance()
    report = one(await polls.run_once())
    assert (report.new, report.duplicates, report.error) == (0, 5, None)
    events = await _events(api, c)
    assert len(events) == 4 and len({e["event_id"] for e in events}) == 4
    outcomes = [d["outcome"] for d in await _deliveries(api, c, conn)]
    assert outcomes.count("accepted") == 2 and outcomes.count("duplicate") == 2


async def test_two_schedulers_never_poll_one_connection_at_once(
    app: Litestar, api: httpx.AsyncClient, world: World, vendor: Vendor, settings: Settings
) -> None:
    vendor.records = [record(0)]
    made = [
        await _connection(api, world.a.customer, "rest_poll", config=rest_config(f"{vendor.url}/{n}")) for n in range(3)
    ] + [await _connection(api, world.b.customer, "rest_poll", config=rest_config(f"{vendor.url}/b"))]
    clock = Clock()
    # Two processes: each its own engine (its own connections to the database).
    engines = [create_engine(settings.database) for _ in range(2)]
    try:
        schedulers = [
            PollScheduler(create_sessionmaker(e), app.state.secretbox, settings, clock=clock) for e in engines
        ]
        reports = [r for batch in await asyncio.gather(*(s.run_once() for s in schedulers)) for r in batch]
    finally:
        for engine in engines:
            await engine.dispose()
    assert sorted(str(r.connection_id) for r in reports) == sorted(m["id"] for m in made)
    assert all(r.error is None for r in reports)
    for path in [f"/api/records/{n}" for n in range(3)] + ["/api/records/b"]:
        assert vendor.cursors(path).count(None) == 1, path


async def test_polled_urls_may_not_reach_private_networks(
    app: Litestar, api: httpx.AsyncClient, world: World, vendor: Vendor, settings: Settings
) -> None:
    c = world.a.customer
    guarded = with_polling(settings, allow_private_networks=False)
    clock = Clock()
    for url in (vendor.url, "http://localhost:9/x", "http://169.254.169.254/latest/meta-data", "http://[::1]:9/"):
        await _connection(api, c, "rest_poll", config=rest_config(url))
    reports = await scheduler(app, clock, guarded).run_once()
    assert len(reports) == 4
    for report in reports:
        assert report.error is not None and "an address that is not public" in report.error, report.error
    assert vendor.requests == []

    unspecified = "0.0.0.0"  # noqa: S104 - an address to refuse, not one to bind
    for address in ("127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", unspecified):
        assert not public_address(address), address
    for address in ("::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "64:ff9b::a00:1", "224.0.0.1"):
        assert not public_address(address), address
    assert public_address("93.184.216.34") and public_address("2606:2800:220:1:248:1893:25c8:1946")

    # The default: allowed in development and tests, refused in production.
    assert PollLimits.from_settings(settings).allow_private_networks is True
    production = Settings(
        environment=Environment.PRODUCTION,
        database=DatabaseSettings(url="postgresql+asyncpg://andon@db/andon"),
        redis=RedisSettings(url="redis://redis:6379/0"),
        security=SecuritySettings(secret_key=SecretStr("x" * 32)),
    )
    assert PollLimits.from_settings(production).allow_private_networks is False


async def test_poller_settings_are_checked_when_saved(api: httpx.AsyncClient, world: World) -> None:
    c = world.a.customer
    base = f"/api/v1/customers/{c.customer_id}/connections/"
    refusals: list[tuple[str, dict[str, Any], str]] = [
        ("rest_poll", {"url": "file:///etc/passwd"}, "config.url"),
        ("rest_poll", {"url": "gopher://vendor.example/"}, "config.url"),
        ("rest_poll", {"url": "https://vendor.example/", "items": "data[["}, "config.items"),
        ("rest_poll", {"url": "https://vendor.example/", "auth_header": "Host"}, "config.auth_header"),
        ("drop_folder", {"path": "../../etc"}, "config.path"),
        ("drop_folder", {"path": "incoming/../../../etc"}, "config.path"),
        ("drop_folder", {"path": "incoming", "pattern": "../*.csv"}, "config.pattern"),
    ]
    for kind, config, field in refusals:
        r = await api.post(
            base, headers=auth(c.key), json={"name": "x", "kind": kind, "config": config, "event_type": ALARM}
        )
        assert r.status_code == 422, (config, r.text)
        assert [e["field"] for e in r.json()["errors"]] == [field], r.json()
    folder = await _connection(api, c, "drop_folder", config={"path": "incoming"}, event_type=ALARM)
    patched = await api.patch(f"{base}{folder['id']}", headers=auth(c.key), json={"config": {"path": "../b"}})
    assert patched.status_code == 422 and patched.json()["errors"][0]["field"] == "config.path"


async def test_the_scheduler_runs_beside_the_relay_and_the_worker(
    world: World, vendor: Vendor, settings: Settings
) -> None:
    """In process (``andon dev``): a new connection is polled within a tick, and its events processed."""
    in_process = with_polling(settings, tick_seconds=0.05).model_copy(
        update={"workers": WorkerSettings(in_process=True, threads=1)}
    )
    vendor.records = [record(0), record(1)]
    app = create_app(in_process)
    c = world.a.customer
    try:
        async with app.lifespan(), browser_on(app, "andon.test") as api:
            conn = await _connection(api, c, "rest_poll", config=rest_config(vendor.url))
            deadline = time.monotonic() + 60  # generous: the machine may be busy with other suites
            # The cursor is saved in its own transaction after the page's events commit, so the
            # worker may finish the events before the cursor lands: wait for both.
            while time.monotonic() < deadline:
                events = await _events(api, c)
                cursor = (await _read(api, c, conn))["cursor"]
                if len(events) == 2 and {e["status"] for e in events} == {"processed"} and cursor == "c2":
                    break
                await asyncio.sleep(0.1)
            assert [e["status"] for e in events] == ["processed", "processed"]
            assert app.state.polls.running
            assert cursor == "c2"
    finally:
        await app.state.engine.dispose()

    off = create_app(with_polling(in_process, enabled=False))
    try:
        async with off.lifespan():
            assert not off.state.polls.running
    finally:
        await off.state.engine.dispose()


async def test_over_the_event_limit_the_poller_waits_without_an_error(
    api: httpx.AsyncClient, world: World, vendor: Vendor, settings: Settings
) -> None:
    c = world.a.customer
    limited = settings.model_copy(update={"limits": LimitSettings(events_per_second=0.5, events_burst=2)})
    app = create_app(limited)
    try:
        vendor.records = [record(n) for n in range(4)]
        conn = await _connection(api, c, "rest_poll", config=rest_config(vendor.url))
        clock = Clock()
        polls = scheduler(app, clock, charge=app.state.rate_limiter.check_events)
        report = one(await polls.run_once())
        assert (report.new, report.error) == (2, None)
        read = await _read(api, c, conn)
        assert read["cursor"] == "c2" and read["last_error"] is None
        assert clock.now < _at(read["next_poll_at"]) <= clock.now + timedelta(seconds=5)
    finally:
        await app.state.rate_limiter.close()
        await app.state.engine.dispose()


# --- drop folders -------------------------------------------------------------------------------------


def area(settings: Settings, tenant: Tenant) -> Path:
    return settings.data_dir / "drop" / str(tenant.customer_id)


def drop(folder: Path, name: str, content: str | bytes, *, age: float = 60) -> Path:
    """A file dropped ``age`` seconds ago (written completely)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    at = time.time() - age
    os.utime(path, (at, at))
    return path


ALARMS_CSV = "code,message,value\nE1,Over temperature,96.5\nE2,Door open,\n"


async def test_csv_rows_become_events_and_the_file_moves_to_processed(
    app: Litestar, api: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    c = world.a.customer
    conn = await _connection(api, c, "drop_folder", config={"path": "incoming"}, event_type=ALARM)
    incoming = area(settings, c) / "incoming"
    drop(incoming, "alarms.csv", ALARMS_CSV)
    drop(incoming, "fresh.csv", ALARMS_CSV.replace("E1", "E3"), age=0)  # still being written
    drop(incoming, "next.csv.part", ALARMS_CSV)
    drop(incoming, "notes.txt", "not for us")
    clock = Clock()
    polls = scheduler(app, clock)

    report = one(await polls.run_once())
    assert (report.new, report.deliveries, report.error) == (2, 1, None)
    assert sorted(p.name for p in incoming.iterdir()) == ["fresh.csv", "next.csv.part", "notes.txt", "processed"]
    assert [p.name for p in (incoming / "processed").iterdir()] == ["alarms.csv"]
    events = sorted(await _events(api, c), key=lambda e: e["data"]["code"])
    assert [e["data"] for e in events] == [
        {"code": "E1", "message": "Over temperature", "value": "96.5"},
        {"code": "E2", "message": "Door open", "value": None},
    ]
    [logged] = await _deliveries(api, c, conn)
    assert (logged["webhook_id"], logged["outcome"]) == ("file alarms.csv", "accepted")
    assert json.loads((await _read(api, c, conn))["cursor"])["file"] == "alarms.csv"

    assert await relay_all(app) == 2
    with running_worker(app):
        drain(app)
    assert len(await _alerts(api, c)) == 2

    # Once written, the other file's turn comes.
    os.utime(incoming / "fresh.csv", (time.time() - 10, time.time() - 10))
    clock.advance()
    assert one(await polls.run_once()).new == 1  # E3 is new; E2 is the same row as before
    assert sorted(p.name for p in (incoming / "processed").iterdir()) == ["alarms.csv", "fresh.csv"]


async def test_a_mapping_reads_json_lines_and_a_json_array(
    app: Litestar, api: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    c = world.a.customer
    mapping = {"id": "ref", "type": "'dev.andon.machine.alarm.v1'", "data": "{code: alarm, message: text}"}
    lines = await _connection(
        api, c, "drop_folder", config={"path": "mes", "pattern": "*.jsonl", "format": "jsonl"}, mapping=mapping
    )
    arrays = await _connection(
        api, c, "drop_folder", config={"path": "scada", "pattern": "*.json", "format": "json"}, mapping=mapping
    )
    rows = [{"ref": f"m-{n}", "alarm": f"E{n}", "text": "Jam"} for n in range(3)]
    drop(area(settings, c) / "mes", "export.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    drop(area(settings, c) / "scada", "export.json", json.dumps([{"ref": "s-1", "alarm": "S1", "text": "Low air"}]))
    reports = await scheduler(app, Clock()).run_once()
    assert sorted(r.new for r in reports) == [1, 3] and {r.error for r in reports} == {None}
    events = await _events(api, c)
    assert sorted(e["event_id"] for e in events) == ["m-0", "m-1", "m-2", "s-1"]
    assert {e["source"] for e in events} == {lines["source"], arrays["source"]}


async def test_a_file_that_cannot_become_events_moves_to_failed_with_its_reason(
    app: Litestar, api: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    c = world.a.customer
    conn = await _connection(api, c, "drop_folder", config={"path": "incoming"}, event_type=ALARM)
    incoming = area(settings, c) / "incoming"
    drop(incoming, "a-ragged.csv", "code,message\nE1,Jam\nE2,Jam,extra\n", age=90)
    drop(incoming, "b-latin1.csv", "code,message\nE1,Temp\u00e9rature\n".encode("latin-1"), age=80)
    drop(incoming, "c-no-message.csv", "code,value\nE1,3\n", age=70)
    drop(incoming, "d-good.csv", ALARMS_CSV, age=60)
    report = one(await scheduler(app, Clock()).run_once())
    assert (report.new, report.refused, report.error) == (2, 3, None)
    assert sorted(p.name for p in (incoming / "failed").iterdir()) == [
        "a-ragged.csv",
        "b-latin1.csv",
        "c-no-message.csv",
    ]
    assert [p.name for p in (incoming / "processed").iterdir()] == ["d-good.csv"]
    log = {d["webhook_id"]: d for d in await _deliveries(api, c, conn)}
    assert (log["file a-ragged.csv"]["outcome"], log["file a-ragged.csv"]["status_code"]) == ("refused", 422)
    assert log["file a-ragged.csv"]["reason"] == "line 3 has more fields than the header has columns"
    assert log["file b-latin1.csv"]["reason"] == "the file is not UTF-8 text (byte 20)"
    assert "data.message" in log["file c-no-message.csv"]["reason"]
    assert log["file d-good.csv"]["outcome"] == "accepted"
    assert len(await _events(api, c)) == 2


async def test_a_file_committed_before_a_crash_is_moved_on_not_delivered_again(
    app: Litestar, api: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    c = world.a.customer
    conn = await _connection(api, c, "drop_folder", config={"path": "incoming"}, event_type=ALARM)
    incoming = area(settings, c) / "incoming"
    dropped = drop(incoming, "alarms.csv", ALARMS_CSV)
    stat = dropped.stat()
    clock = Clock()
    polls = scheduler(app, clock)
    assert one(await polls.run_once()).new == 2

    # The crash came after the cursor was stored and before the move: the same file is still there.
    again = drop(incoming, "alarms.csv", ALARMS_CSV)
    os.utime(again, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    clock.advance()
    report = one(await polls.run_once())
    assert (report.deliveries, report.error) == (0, None)
    assert len(list((incoming / "processed").iterdir())) == 2  # moved on, under a name of its own
    # The same rows in another file are delivered, and stored once.
    drop(incoming, "repeat.csv", ALARMS_CSV, age=30)
    clock.advance()
    report = one(await polls.run_once())
    assert (report.deliveries, report.new, report.duplicates) == (1, 0, 2)
    assert len(await _events(api, c)) == 2 and len(await _deliveries(api, c, conn)) == 2


async def test_a_folder_outside_the_customers_drop_area_is_refused(
    app: Litestar, api: httpx.AsyncClient, world: World, settings: Settings, tmp_path: Path
) -> None:
    a, b = world.a.customer, world.b.customer
    secret = drop(area(settings, b) / "incoming", "b-secrets.csv", ALARMS_CSV)
    outside = drop(tmp_path / "server", "passwd.csv", ALARMS_CSV)
    area(settings, a).mkdir(parents=True)
    (area(settings, a) / "escape").symlink_to(area(settings, b) / "incoming")
    drop(area(settings, a) / "linked", "ok.csv", ALARMS_CSV)
    (area(settings, a) / "linked" / "sneaky.csv").symlink_to(outside)
    drop(area(settings, a) / "trap", "t.csv", "code,message\nT1,Jam\n")
    (area(settings, a) / "trap" / "processed").symlink_to(outside.parent)
    made = {
        path: await _connection(api, a, "drop_folder", config={"path": path}, event_type=ALARM)
        for path in ("/etc", str(area(settings, b) / "incoming"), str(outside.parent), "escape")
    }
    linked = await _connection(api, a, "drop_folder", config={"path": "linked"}, event_type=ALARM)
    trap = await _connection(api, a, "drop_folder", config={"path": "trap"}, event_type=ALARM)
    reports = {str(r.connection_id): r for r in await scheduler(app, Clock()).run_once()}
    for path, conn in made.items():
        error = reports[conn["id"]].error
        assert error == f"config.path: {path} is outside this customer's drop area; give a folder relative to it " + (
            "(for example 'incoming')"
        ), error
        assert (await _read(api, a, conn))["last_error"] == error
    # A symlinked file is not a dropped file: it stays, unread.
    assert reports[linked["id"]].new == 2 and (area(settings, a) / "linked" / "sneaky.csv").is_symlink()
    # A link planted as processed/ does not carry a file out of the area either.
    assert reports[trap["id"]].error == "cannot move t.csv: processed/ in the folder is not a plain folder"
    assert (area(settings, a) / "trap" / "t.csv").exists() and [p.name for p in outside.parent.iterdir()] == [
        "passwd.csv"
    ]
    assert secret.exists() and outside.exists()
    assert await _events(api, b) == [] and len(await _events(api, a)) == 3


async def test_each_customer_reads_only_its_own_drop_area(
    app: Litestar, api: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    a, b = world.a.customer, world.b.customer
    conn_a = await _connection(api, a, "drop_folder", config={"path": "incoming"}, event_type=ALARM)
    conn_b = await _connection(api, b, "drop_folder", config={"path": "incoming"}, event_type=ALARM)
    drop(area(settings, a) / "incoming", "a.csv", ALARMS_CSV)
    drop(area(settings, b) / "incoming", "b.csv", "code,message\nB1,Jam\n")
    reports = {str(r.connection_id): r for r in await scheduler(app, Clock()).run_once()}
    assert (reports[conn_a["id"]].new, reports[conn_b["id"]].new) == (2, 1)
    assert sorted(e["data"]["code"] for e in await _events(api, a)) == ["E1", "E2"]
    assert [e["data"]["code"] for e in await _events(api, b)] == ["B1"]
    # Neither sees the other's connection or its deliveries.
    foreign = f"/api/v1/customers/{b.customer_id}/connections/{conn_a['id']}/deliveries"
    assert (await api.get(foreign, headers=auth(b.key))).status_code == 404
    assert [d["webhook_id"] for d in await _deliveries(api, b, conn_b)] == ["file b.csv"]


@pytest.fixture
async def second_engine(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings.database)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.mark.postgres
async def test_a_claimed_connection_is_skipped_not_waited_for(
    app: Litestar,
    api: httpx.AsyncClient,
    world: World,
    vendor: Vendor,
    settings: Settings,
    second_engine: async_sessionmaker[AsyncSession],
) -> None:
    """While one process's claim transaction holds the row, another's claim passes it by at once."""
    conn = await _connection(api, world.a.customer, "rest_poll", config=rest_config(vendor.url))
    clock = Clock()
    first, second = PollStore(app.state.sessionmaker), PollStore(second_engine)
    [due] = await first.due(clock.now, 10)
    assert str(due.id) == conn["id"]
    lease = clock.now + timedelta(minutes=5)
    async with app.state.sessionmaker() as session, session.begin():
        tenant, _ = await PollStore._enter(session, due.tenant_id, due.id, due.name, due.kind)
        assert await PollStateRepository(session, tenant).claim(due.id, {"rest_poll"}, clock.now, lease) is not None
        started = time.monotonic()
        assert (
            await asyncio.wait_for(second.claim(due, clock.now, lease, suspended_retry=timedelta(hours=1)), 5) is None
        )
        assert time.monotonic() - started < 2
    # Committed: the lease is in force, and the connection is no longer due for anyone.
    assert await second.due(clock.now, 10) == []


async def test_a_run_whose_lease_ran_out_writes_nothing_more(
    app: Litestar, api: httpx.AsyncClient, world: World, vendor: Vendor
) -> None:
    c = world.a.customer
    vendor.records = [record(n) for n in range(3)]
    conn = await _connection(api, c, "rest_poll", config=rest_config(vendor.url))
    clock = Clock()
    slow = scheduler(app, clock)
    [stalled] = await slow.claim_due(5)
    # The first process stalls past its lease; another takes the connection over.
    later = Clock()
    later.now = clock.now + timedelta(seconds=301)
    other = scheduler(app, later)
    [taken] = await other.claim_due(5)
    assert await slow.claim_due(5) == []

    late = await slow.poll(stalled)
    assert late.next_poll_at is None and late.new == 2  # stored (once), but its cursor was not
    assert (await _read(api, c, conn))["cursor"] is None
    report = await other.poll(taken)
    assert (report.new, report.duplicates, report.error) == (1, 2, None)
    read = await _read(api, c, conn)
    assert read["cursor"] == "c3" and _at(read["next_poll_at"]) == later.now + timedelta(seconds=60)


@pytest.mark.postgres
async def test_a_value_postgresql_cannot_store_fails_the_file_not_the_run(
    app: Litestar, api: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    c = world.a.customer
    conn = await _connection(api, c, "drop_folder", config={"path": "incoming"}, event_type=ALARM)
    incoming = area(settings, c) / "incoming"
    drop(incoming, "nul.csv", "code,message\nE1,Jam\x00med\n", age=90)
    drop(incoming, "good.csv", ALARMS_CSV)
    report = one(await scheduler(app, Clock()).run_once())
    assert (report.new, report.refused, report.error) == (2, 1, None)
    assert [p.name for p in (incoming / "failed").iterdir()] == ["nul.csv"]
    log = {d["webhook_id"]: d for d in await _deliveries(api, c, conn)}
    assert log["file nul.csv"]["outcome"] == "refused"
    assert log["file nul.csv"]["reason"] == "a value in it cannot be stored (for example a NUL character in text)"
