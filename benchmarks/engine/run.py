"""The engine benchmark: workflow steps per second per worker process, and event → first action
latency, on PostgreSQL + Redis.

    .venv/bin/python -m benchmarks.engine.run --label latest

1. Creates a fresh database (``andon_bench_engine``; dropped first) and the non-owner role the app
   connects as, migrates it, and seeds one partner, one customer and an ``ingest`` API key through
   the services (as the ingress benchmark does).
2. **Throughput.** For each variant (``set``: ten ``set`` steps, the engine's own cost; ``action``:
   ten ``http.post`` steps against a local counting remote, ``fake.py``) and each worker-thread
   count: saves a workflow through ``WorkflowService``, starts ``--runs`` runs with the engine's
   ``start_run`` and sends their first step messages to Redis, then starts ONE ``andon worker``
   process. Steps per second = succeeded steps / (last ``finished_at`` minus first ``started_at``) from
   ``step_runs``. The worker's CPU share comes from ``/proc`` over the same window.
   **Baseline:** ``naive_worker.py``, a Dramatiq worker process on the same broker whose actor does
   one INSERT per message: the same number of messages, queued first, then the worker started.
3. **Latency.** Starts the app under uvicorn (production settings, workers off in the app), one
   ``andon worker`` and one ``andon scheduler``; a workflow triggered by the machine-alarm event
   whose first step is an ``http.post`` to the remote. ``sender.py`` posts CloudEvents open-loop at
   each of ``--rates`` per second for ``--duration`` s, each with its own source (its own alert). Per run:
   the first action's ``started_at`` (and the remote's receive time) minus the event's ``created_at``.
4. Writes ``benchmarks/engine/results/<label>.json`` and prints markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import dramatiq
import psycopg
import redis

from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.config.settings import DatabaseSettings, WorkerSettings
from andon.platform.db import migrate
from andon.platform.db.engine import create_engine, create_sessionmaker
from andon.platform.db.scope import apply_principal_scope
from andon.platform.db.types import utcnow
from andon.platform.engine.dispatch import broker_sender
from andon.platform.engine.executor import StepMessage
from andon.platform.engine.runs import start_run
from andon.platform.engine.schemas import WorkflowCreate
from andon.platform.engine.service import WorkflowService
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import system_principal
from andon.tenants.orgs.service import CustomerService
from benchmarks.engine import naive_worker
from benchmarks.ingress.run import (
    APP_ROLE,
    _cpu_seconds,
    _dsn,
    _wait_ready,
    create_database,
    named_cpu_seconds,
    seed,
    versions,
)

VERSIONS = ("dramatiq", "redis", "sqlalchemy", "asyncpg", "psycopg", "httpx", "litestar", "uvicorn", "msgspec")

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
APP_PORT = 8710
FAKE_PORT = 8711
ALARM = "dev.andon.machine.alarm.v1"
SYSTEM = system_principal(ALL_PERMISSIONS, "engine benchmark")
DEFAULT_THREADS = WorkerSettings().threads


# --- setup -------------------------------------------------------------------------------------


async def _nothing(messages: Any) -> None:
    return None


async def create_workflow_and_runs(
    settings: DatabaseSettings,
    customer_id: uuid.UUID,
    broker: dramatiq.Broker,
    data: WorkflowCreate,
    runs: int,
    batch: int = 100,
) -> int:
    """Saves the workflow through the service, starts ``runs`` runs of it with the engine's
    ``start_run`` (``batch`` per transaction) and sends their first step messages after each commit.
    The number of messages sent."""
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    send = broker_sender(broker)
    sent = 0
    try:
        async with sessionmaker() as session, session.begin():
            await apply_principal_scope(session, SYSTEM)
            tenant: TenantContext = await CustomerService(session, SYSTEM).open_tenant(customer_id)
            workflow = await WorkflowService(session, tenant, _nothing).create(data)
        for first in range(0, runs, batch):
            messages: list[StepMessage] = []
            async with sessionmaker() as session, session.begin():
                await apply_principal_scope(session, SYSTEM)
                tenant = await CustomerService(session, SYSTEM).open_tenant(customer_id)
                for n in range(first, min(runs, first + batch)):
                    event = {"source": "urn:bench:throughput", "subject": f"run-{n}", "severity": "high"}
                    _, queued = await start_run(
                        session, tenant, workflow, {"event": event, "alert": None}, utcnow(), started_by="bench"
                    )
                    messages += queued
            await send(messages)
            sent += len(messages)
    finally:
        await engine.dispose()
    return sent


def set_definition(steps: int) -> dict[str, Any]:
    """Pure engine cost: each step evaluates one CEL expression over the context."""
    return {
        "steps": [
            {
                "key": f"s{n}",
                "kind": "set",
                "values": {"n": f"{n}", "seen": "size(steps)"},
                **({"next": f"s{n + 1}"} if n < steps else {}),
            }
            for n in range(1, steps + 1)
        ]
    }


def action_definition(steps: int, url: str) -> dict[str, Any]:
    """Each step an ``http.post`` to the local remote (answers 200 at once)."""
    return {
        "steps": [
            {
                "key": f"a{n}",
                "kind": "action",
                "capability": "http.post",
                "inputs": {"url": f"{url}/effect", "json": {"step": n, "run": "{{ run.id }}"}},
                "timeout_seconds": 10,
                **({"next": f"a{n + 1}"} if n < steps else {}),
            }
            for n in range(1, steps + 1)
        ]
    }


def latency_definition(url: str) -> dict[str, Any]:
    return {
        "steps": [
            {
                "key": "page",
                "kind": "action",
                "capability": "http.post",
                "inputs": {"url": f"{url}/page", "json": {"about": "{{ event.source }}"}},
                "timeout_seconds": 10,
                "next": "note",
            },
            {"key": "note", "kind": "set", "values": {"paged": "true"}},
        ]
    }


# --- processes and measurements ------------------------------------------------------------------


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)  # noqa: S603


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class CpuWindow:
    """CPU seconds of some processes between ``open`` and ``close``, as a share of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start: dict[str, float] = {}
        self.began = 0.0

    def _now(self) -> dict[str, float]:
        found = {name: _cpu_seconds(pid) for name, pid in self.pids.items()}
        found["postgres"] = named_cpu_seconds("postgres")
        found["redis"] = named_cpu_seconds("redis-server")
        return found

    def open(self) -> None:
        self.start, self.began = self._now(), time.monotonic()

    def close(self) -> tuple[float, dict[str, float]]:
        wall = time.monotonic() - self.began
        end = self._now()
        return wall, {name: round((end[name] - self.start[name]) / wall, 2) for name in end}


def purge_namespace(redis_url: str, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{namespace}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _pg(admin_url: str, database: str) -> psycopg.Connection[tuple[Any, ...]]:
    """A superuser connection to the benchmark database (it sees every tenant's rows)."""
    return psycopg.connect(_dsn(admin_url, database), autocommit=True)


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return (later - earlier).total_seconds()


def _pct(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return round(ordered[index] * 1000, 1)


def _summary_ms(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50_ms": _pct(values, 0.50),
        "p95_ms": _pct(values, 0.95),
        "p99_ms": _pct(values, 0.99),
        "max_ms": round(max(values) * 1000, 1) if values else None,
    }


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.logs = RESULTS / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.broker = naive_worker.build_broker(args.redis_url, args.namespace)
        self.fake_url = f"http://127.0.0.1:{FAKE_PORT}"
        self.setup(args.database)

    def setup(self, database: str) -> None:
        """A fresh database (dropped first), migrated and seeded; the processes' environment for it."""
        args = self.args
        self.database = database
        self.settings = create_database(args.admin_url, database)
        migrate.upgrade(self.settings, args.revision)
        with _pg(args.admin_url, database) as conn:
            conn.execute(naive_worker.TABLE)
            conn.execute(f"GRANT INSERT, SELECT ON bench_naive TO {APP_ROLE}")
            conn.execute(f"GRANT USAGE ON SEQUENCE bench_naive_id_seq TO {APP_ROLE}")
        self.key, self.customer_id = asyncio.run(seed(self.settings))
        self.env = {
            **os.environ,
            "ANDON_ENVIRONMENT": "production",
            "ANDON_SECURITY_SECRET_KEY": "bench-" + "s" * 40,
            "ANDON_DATABASE_URL": self.settings.url,
            "ANDON_DATABASE_ADMIN_URL": self.settings.owner_url,
            "ANDON_DATABASE_APP_ROLE": APP_ROLE,
            "ANDON_REDIS_URL": args.redis_url,
            "ANDON_REDIS_NAMESPACE": args.namespace,
            "ANDON_LOG_LEVEL": "WARNING",
            # The per-tenant limit (default 500 events/s) stays on, far above the rate sent.
            "ANDON_LIMITS_EVENTS_PER_SECOND": "10000",
            "ANDON_LIMITS_EVENTS_BURST": "20000",
            "ANDON_WORKERS_IN_PROCESS": "false",
            "ANDON_HTTP_BASE_URL": f"http://127.0.0.1:{APP_PORT}",
            "BENCH_NAIVE_DSN": _dsn(self.settings.url),
            "BENCH_NAIVE_REDIS": args.redis_url,
        }
        self.env.pop("ANDON_WORKERS_THREADS", None)
        # One tenant sends everything here: its fairness share caps how many steps run at once.
        if args.tenant_concurrency is not None:
            self.env["ANDON_ENGINE_TENANT_CONCURRENCY"] = str(args.tenant_concurrency)

    def worker_env(self, threads: int | None) -> dict[str, str]:
        env = dict(self.env)
        if threads is not None:
            env["ANDON_WORKERS_THREADS"] = str(threads)
        return env

    def andon(self, command: str, threads: int | None = None) -> subprocess.Popen[bytes]:
        return _start(
            [sys.executable, "-m", "andon.platform.cli.main", command],
            self.worker_env(threads),
            self.logs / f"{command}.log",
        )

    def profiler(self, pid: int, out: Path) -> subprocess.Popen[bytes]:
        py_spy = str(Path(sys.executable).parent / "py-spy")
        command = [py_spy, "record", "-o", str(out), "--format", "raw", "--pid", str(pid), "--subprocesses"]
        command += ["--threads", "--rate", "200", *(["--gil"] if self.args.profile_gil else [])]
        return _start(command, self.env, self.logs / "py-spy.log")

    # --- throughput ---

    def _progress(self, conn: psycopg.Connection[tuple[Any, ...]], workflow_key: str) -> tuple[int, int, int]:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE s.started_at IS NOT NULL), "
            "count(*) FILTER (WHERE s.status = 'succeeded'), "
            "count(*) FILTER (WHERE s.status IN ('failed', 'scheduled', 'waiting')) "
            "FROM step_runs s JOIN workflow_runs r ON r.id = s.run_id WHERE r.workflow_key = %s",
            (workflow_key,),
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    def throughput(self, variant: str, threads: int | None, *, profile: bool = False) -> dict[str, Any]:
        args = self.args
        shown = threads if threads is not None else DEFAULT_THREADS
        workflow_key = f"{variant}-t{shown}{'-profiled' if profile else ''}-{uuid.uuid4().hex[:4]}"
        definition = set_definition(args.steps) if variant == "set" else action_definition(args.steps, self.fake_url)
        purge_namespace(args.redis_url, args.namespace)
        data = WorkflowCreate(key=workflow_key, name=f"Bench {variant}", definition=definition)
        queued = asyncio.run(create_workflow_and_runs(self.settings, self.customer_id, self.broker, data, args.runs))
        expected = args.runs * args.steps
        worker = self.andon("worker", threads)
        spy: subprocess.Popen[bytes] | None = None
        window = CpuWindow({"worker": worker.pid})
        opened = False
        deadline = time.monotonic() + args.trial_timeout
        progress = (0, 0, 0)
        try:
            with _pg(args.admin_url, self.database) as conn:
                while time.monotonic() < deadline:
                    if worker.poll() is not None:
                        raise RuntimeError(f"andon worker exited with {worker.returncode}; see {self.logs}")
                    progress = self._progress(conn, workflow_key)
                    if progress[0] and not opened:
                        window.open()
                        opened = True
                        if profile:  # from the first step on: the boot is not part of the profile
                            spy = self.profiler(worker.pid, RESULTS / f"{args.label}-profile.txt")
                    if progress[1] + progress[2] >= expected:
                        break
                    time.sleep(0.25)
                wall, cpu = window.close() if opened else (0.0, {})
                row = conn.execute(
                    "SELECT count(*), min(s.started_at), max(s.finished_at), "
                    "avg(extract(epoch FROM s.finished_at - s.started_at)), "
                    "avg(extract(epoch FROM s.started_at - s.queued_at)) "
                    "FROM step_runs s JOIN workflow_runs r ON r.id = s.run_id "
                    "WHERE r.workflow_key = %s AND s.status = 'succeeded'",
                    (workflow_key,),
                ).fetchone()
                runs_done = conn.execute(
                    "SELECT count(*) FROM workflow_runs WHERE workflow_key = %s AND status = 'succeeded'",
                    (workflow_key,),
                ).fetchone()
        finally:
            if spy is not None:
                _stop(spy, signal.SIGINT)
            _stop(worker)
        assert row is not None and runs_done is not None
        done, first, last = int(row[0]), row[1], row[2]
        span = _seconds(last, first) or 0.0
        rate = done / span if span else 0.0
        result = {
            "variant": variant,
            "threads": shown,
            "threads_from": "settings default" if threads is None else "ANDON_WORKERS_THREADS",
            "profiled": profile,
            "runs": args.runs,
            "steps_expected": expected,
            "first_messages_sent": queued,
            "steps_succeeded": done,
            "steps_not_done": expected - done,
            "runs_succeeded": int(runs_done[0]),
            "span_s": round(span, 2),
            "steps_per_s": round(rate, 1),
            "step_work_avg_ms": round(float(row[3]) * 1000, 2) if row[3] is not None else None,
            "queue_wait_avg_ms": round(float(row[4]) * 1000, 1) if row[4] is not None else None,
            "cpu_share": cpu,
            "worker_cpu_ms_per_step": round(1000 * cpu.get("worker", 0.0) / rate, 2) if rate else None,
            "load_1m": round(os.getloadavg()[0], 2),
            "window_s": round(wall, 2),
        }
        if progress[2]:
            result["stuck_or_failed"] = progress[2]
        print("andon", json.dumps(result), flush=True)
        return result

    def naive(self, threads: int) -> dict[str, Any]:
        args = self.args
        tag = f"t{threads}-{uuid.uuid4().hex[:4]}"
        total = args.runs * args.steps
        purge_namespace(args.redis_url, args.namespace)
        for n in range(total):
            self.broker.enqueue(naive_worker.message(tag, n))
        worker = _start(
            [
                sys.executable,
                "-m",
                "benchmarks.engine.naive_worker",
                f"--threads={threads}",
                f"--namespace={args.namespace}",
            ],
            self.env,
            self.logs / "naive.log",
        )
        window = CpuWindow({"worker": worker.pid})
        opened = False
        deadline = time.monotonic() + args.trial_timeout
        try:
            with _pg(args.admin_url, self.database) as conn:
                while time.monotonic() < deadline:
                    if worker.poll() is not None:
                        raise RuntimeError(f"naive worker exited with {worker.returncode}")
                    count_row = conn.execute("SELECT count(*) FROM bench_naive WHERE tag = %s", (tag,)).fetchone()
                    count = int(count_row[0]) if count_row else 0
                    if count and not opened:
                        window.open()
                        opened = True
                    if count >= total:
                        break
                    time.sleep(0.25)
                wall, cpu = window.close() if opened else (0.0, {})
                row = conn.execute(
                    "SELECT count(*), min(created_at), max(created_at) FROM bench_naive WHERE tag = %s", (tag,)
                ).fetchone()
        finally:
            _stop(worker)
        assert row is not None
        done = int(row[0])
        span = _seconds(row[2], row[1]) or 0.0
        rate = (done - 1) / span if span else 0.0
        result = {
            "threads": threads,
            "messages": total,
            "inserted": done,
            "span_s": round(span, 2),
            "messages_per_s": round(rate, 1),
            "cpu_share": cpu,
            "worker_cpu_ms_per_message": round(1000 * cpu.get("worker", 0.0) / rate, 2) if rate else None,
            "load_1m": round(os.getloadavg()[0], 2),
            "window_s": round(wall, 2),
        }
        print("naive", json.dumps(result), flush=True)
        return result

    # --- latency ---

    def send(self, tag: str, rate: float, duration: float) -> dict[str, Any]:
        out = subprocess.run(  # noqa: S603 (this interpreter running the sender module)
            [
                sys.executable,
                "-m",
                "benchmarks.engine.sender",
                f"--port={APP_PORT}",
                f"--key={self.key}",
                f"--rate={rate}",
                f"--duration={duration}",
                f"--tag={tag}",
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def _latency_rows(self, conn: psycopg.Connection[tuple[Any, ...]], tag: str) -> list[tuple[Any, ...]]:
        return conn.execute(
            "SELECT e.created_at, r.id, r.started_at, p.queued_at, p.started_at, p.finished_at, p.status "
            "FROM events e "
            "LEFT JOIN workflow_runs r ON r.trigger_event_id = e.id AND r.workflow_key = 'alarm-page' "
            "LEFT JOIN step_runs p ON p.run_id = r.id AND p.step_key = 'page' "
            "WHERE e.source LIKE %s",
            (f"urn:bench:cell-{tag}-%",),
        ).fetchall()

    def _drain(self, conn: psycopg.Connection[tuple[Any, ...]], tag: str, sent: int, timeout: float) -> float:
        """Waits until every stored event's run has its first action done (or nothing moves for 10 s)."""
        began, last_change, last = time.monotonic(), time.monotonic(), (-1, -1)
        while time.monotonic() - began < timeout:
            rows = self._latency_rows(conn, tag)
            done = sum(1 for r in rows if r[6] in ("succeeded", "failed"))
            state = (len(rows), done)
            if state != last:
                last, last_change = state, time.monotonic()
            if len(rows) >= sent and done >= len(rows):
                break
            if time.monotonic() - last_change > 10:
                break
            time.sleep(0.5)
        return time.monotonic() - began

    def _fake_times(self) -> dict[str, float]:
        with urllib.request.urlopen(f"{self.fake_url}/times", timeout=10) as answer:  # noqa: S310 (loopback)
            times: dict[str, float] = json.loads(answer.read())
        return times

    def latency(self, rate: float, threads: int | None) -> dict[str, Any]:
        """One latency run on a database of its own (``<database>_latency``, dropped first): nothing
        left over from an earlier run (a backlog, a second triggered workflow) weighs on it."""
        args = self.args
        self.setup(f"{args.database}_latency")
        purge_namespace(args.redis_url, args.namespace)
        data = WorkflowCreate(
            key="alarm-page",
            name="Alarm page",
            definition=latency_definition(self.fake_url),
            trigger_type=ALARM,
        )
        asyncio.run(create_workflow_and_runs(self.settings, self.customer_id, self.broker, data, 0))
        uvicorn = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(APP_PORT)]
        uvicorn += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
        with ExitStack() as stack:
            app = _start([*uvicorn, "andon.platform.http.asgi:app"], self.env, self.logs / "app.log")
            stack.callback(_stop, app)
            worker = self.andon("worker", threads)
            stack.callback(_stop, worker)
            scheduler = self.andon("scheduler")
            stack.callback(_stop, scheduler)
            _wait_ready(f"http://127.0.0.1:{APP_PORT}/health/live", app)
            with _pg(args.admin_url, self.database) as conn:
                # Warm-up: a few events through the whole path (pools, caches, the worker booted).
                warm = f"w{uuid.uuid4().hex[:6]}"
                self.send(warm, 20, 1)
                self._drain(conn, warm, 20, 60)
                time.sleep(1)
                tag = f"l{uuid.uuid4().hex[:6]}"
                window = CpuWindow({"app": app.pid, "worker": worker.pid, "scheduler": scheduler.pid})
                window.open()
                spy = None
                if args.profile_latency:  # the worker while events arrive (not while it drains)
                    profile = RESULTS / f"{args.label}-latency{rate:g}-profile.txt"
                    spy = self.profiler(worker.pid, profile)
                sender = self.send(tag, rate, args.duration)
                wall, cpu = window.close()
                if spy is not None:
                    _stop(spy, signal.SIGINT)
                load = round(os.getloadavg()[0], 2)
                drained = self._drain(conn, tag, int(sender["sent"]), args.drain_timeout)
                rows = self._latency_rows(conn, tag)
        times = self._fake_times()
        to_claim, to_remote, to_run, run_to_claim = [], [], [], []
        statuses: Counter[str] = Counter()
        for created, run_id, run_started, _queued, started, _finished, status in rows:
            statuses[str(status)] += 1
            if run_id is None:
                continue
            if (seconds := _seconds(run_started, created)) is not None:
                to_run.append(seconds)
            if (seconds := _seconds(started, created)) is not None:
                to_claim.append(seconds)
            if (seconds := _seconds(started, run_started)) is not None:
                run_to_claim.append(seconds)
            received = times.get(f"andon:{run_id}:page")
            if received is not None:
                to_remote.append(received - created.timestamp())
        result = {
            "rate": rate,
            "duration_s": args.duration,
            "threads": threads if threads is not None else DEFAULT_THREADS,
            "sender": sender,
            "events_stored": len(rows),
            "runs_started": sum(1 for r in rows if r[1] is not None),
            "first_action": dict(statuses),
            "remote_received": len(to_remote),
            "event_to_first_action_started": _summary_ms(to_claim),
            "event_to_remote_received": _summary_ms(to_remote),
            "event_to_run_started": _summary_ms(to_run),
            "run_started_to_first_action_started": _summary_ms(run_to_claim),
            "cpu_share": cpu,
            "window_s": round(wall, 2),
            "drain_s": round(drained, 1),
            "load_1m": load,
        }
        print("latency", json.dumps(result), flush=True)
        return result


# --- profile ----------------------------------------------------------------------------------

# Substrings of py-spy frame names ("function (short/path.py:line)") and what they stand for.
CATEGORIES = {
    "Executor.run_step (whole step)": ("Executor.run_step (",),
    "claim transaction": ("Executor._claim (",),
    "work (evaluate, call)": ("Executor._work (",),
    "complete transaction": ("Executor._complete (",),
    "  advance (queue next, end run)": ("advance (engine/executor.py",),
    "  definition_of (msgspec.convert of the run's definition)": ("definition_of (engine/executor.py",),
    "bind_tenant (set_config round trip)": ("bind_tenant (db/scope.py",),
    "lock_name (advisory lock round trip)": ("lock_name (db/scope.py",),
    "send next step (dispatch, to_thread + Redis)": ("send (engine/dispatch.py",),
    "Redis enqueue (any thread)": ("enqueue (dramatiq/brokers/redis.py", "do_dispatch (dramatiq/brokers/redis.py"),
    "Dramatiq consumer threads (fetch, ack)": ("ConsumerThread", "_RedisConsumer"),
    "Dramatiq worker threads (process message, middleware)": ("WorkerThread",),
    "Dramatiq AsyncIO bridge (event loop thread)": ("dramatiq/asyncio.py",),
    "SQLAlchemy (any)": ("(sqlalchemy/",),
    "  SQLAlchemy ORM flush / unit of work": ("flush (sqlalchemy/orm/session.py",),
    "  SQLAlchemy SQL compilation": ("(sqlalchemy/sql/compiler.py",),
    "  pool checkout pre-ping": ("do_ping (", "_do_ping ("),
    "greenlet bridge (greenlet_spawn)": ("greenlet_spawn (",),
    "asyncpg (any)": ("(asyncpg/",),
    "asyncio.to_thread": ("to_thread (asyncio/threads.py",),
    "httpx (action calls)": ("(httpx/",),
    "CEL evaluate": ("evaluate (engine/expressions.py",),
    "outbox relay (idle polling)": ("(events/relay.py",),
    "structlog / logging": ("(structlog/", "(logging/"),
}


# Which thread a stack belongs to, by a frame it contains (first match).
ROLES = (
    ("Dramatiq event-loop thread (the steps run here)", "EventLoopThread.run (dramatiq/asyncio.py"),
    ("Dramatiq worker threads (hand each message to the loop, wait)", "WorkerThread"),
    ("Dramatiq consumer threads (fetch from Redis, ack)", "ConsumerThread"),
    ("asyncio.to_thread pool (Redis enqueue of next steps)", "concurrent/futures/thread.py"),
    ("main loop (outbox relay)", "run_worker"),
)
LOOP = "EventLoopThread.run (dramatiq/asyncio.py"


def summarize_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """Inclusive shares of a py-spy ``--format raw`` file (collapsed stacks: ``a;b;c count``): each
    category and each frame counts the samples whose stack contains it at least once. ``threads_pct``
    splits the samples by thread; ``event_loop_pct`` gives the categories as shares of the Dramatiq
    event-loop thread's samples only (where the executor runs; SQLAlchemy's greenlets show up there
    only in part, as py-spy reports some greenlet stacks as separate roots)."""
    samples = loop_samples = 0
    frames: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    in_loop: Counter[str] = Counter()
    roles: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        parts = stack.split(";")
        leaves[parts[-1]] += count
        roles[next((name for name, needle in ROLES if needle in stack), "other")] += count
        for frame in set(parts):
            if not frame.startswith(("process ", "thread ", "<module>", "_run_code", "Thread._bootstrap")):
                frames[frame] += count
        loop = LOOP in stack
        loop_samples += count if loop else 0
        for category, needles in CATEGORIES.items():
            if any(needle in stack for needle in needles):
                categories[category] += count
                if loop:
                    in_loop[category] += count
        if loop and "_SelectorSocketTransport.write" in stack:
            in_loop["socket send() (transport.write)"] += count
        if loop and "EpollSelector.select" in stack:
            in_loop["idle (epoll)"] += count
    if not samples:
        return {"samples": 0}

    def share(n: int, of: int = samples) -> float:
        return round(100 * n / of, 1) if of else 0.0

    return {
        "samples": samples,
        "threads_pct": {name: share(n) for name, n in roles.most_common()},
        "event_loop_pct": {name: share(n, loop_samples) for name, n in in_loop.most_common()},
        "categories_pct": {name: share(n) for name, n in categories.most_common()},
        "top_frames_inclusive_pct": {name: share(n) for name, n in frames.most_common(top)},
        "top_frames_self_pct": {name: share(n) for name, n in leaves.most_common(top)},
    }


# --- tables -------------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    lines: list[str] = []
    throughput = results.get("throughput")
    if throughput:
        naive = {row["threads"]: row for row in throughput.get("naive", [])}
        lines += [
            "| variant | threads | steps/s | worker CPU | CPU ms/step | postgres CPU | redis CPU | step work avg ms "
            "| naive msgs/s (same threads) | andon / naive | load |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in throughput["andon"]:
            base = naive.get(row["threads"])
            ratio = f"{row['steps_per_s'] / base['messages_per_s']:.2f}" if base and base["messages_per_s"] else "-"
            cpu = row["cpu_share"]
            lines.append(
                f"| {row['variant']}{' (py-spy)' if row['profiled'] else ''} | {row['threads']} "
                f"| {row['steps_per_s']:,.0f} | {cpu.get('worker', '-')} | {row['worker_cpu_ms_per_step']} "
                f"| {cpu.get('postgres', '-')} | {cpu.get('redis', '-')} | {row['step_work_avg_ms']} "
                f"| {base['messages_per_s'] if base else '-'} | {ratio} | {row['load_1m']} |"
            )
        lines.append("")
        lines += [
            "| naive threads | msgs/s | worker CPU | CPU ms/msg | postgres CPU | load |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for row in throughput.get("naive", []):
            cpu = row["cpu_share"]
            lines.append(
                f"| {row['threads']} | {row['messages_per_s']:,.0f} | {cpu.get('worker', '-')} "
                f"| {row['worker_cpu_ms_per_message']} | {cpu.get('postgres', '-')} | {row['load_1m']} |"
            )
    for row in results.get("latency", []):
        lines.append("")
        sender = row["sender"]
        lines.append(
            f"Latency at {row['rate']:g} events/s for {row['duration_s']:g} s, worker threads {row['threads']}: "
            f"{sender['sent']} sent, {sender['accepted']} accepted (accept p99 {sender['accept_p99_ms']} ms), "
            f"{row['events_stored']} stored, {row['runs_started']} runs started, first action {row['first_action']}, "
            f"load {row['load_1m']}, CPU {row['cpu_share']}"
        )
        lines.append("")
        lines.append("| from → to | n | p50 ms | p95 ms | p99 ms | max ms |")
        lines.append("|---|---:|---:|---:|---:|---:|")
        for name in (
            "event_to_first_action_started",
            "event_to_remote_received",
            "event_to_run_started",
            "run_started_to_first_action_started",
        ):
            s = row[name]
            cells = [name.replace("_", " "), s["n"], s["p50_ms"], s["p95_ms"], s["p99_ms"], s["max_ms"]]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", default="latest", help="results/<label>.json")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("BENCH_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL superuser URL (the database in it is not used)",
    )
    parser.add_argument("--database", default="andon_bench_engine")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    parser.add_argument("--namespace", default="bench-engine")
    parser.add_argument(
        "--revision",
        default="head",
        help="migrate to this revision (head; or an earlier one while a new one is broken)",
    )
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--tenant-concurrency",
        type=int,
        default=None,
        help="ANDON_ENGINE_TENANT_CONCURRENCY for the app and workers (default: the settings default, 6; 0: no share)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        nargs="*",
        default=[8, 16],
        help=f"ANDON_WORKERS_THREADS values tried besides the settings default ({DEFAULT_THREADS})",
    )
    parser.add_argument("--variants", nargs="+", default=["set", "action"], choices=["set", "action"])
    parser.add_argument("--profile", action="store_true", help="one more set run under py-spy (most threads)")
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="py-spy --gil: sample only the thread holding the GIL (what runs, not what waits)",
    )
    parser.add_argument("--profile-only", action="store_true", help="only the profiled run")
    parser.add_argument("--profile-variant", default="set", choices=["set", "action"], help="the variant profiled")
    parser.add_argument(
        "--profile-latency", action="store_true", help="py-spy on the worker while latency events are sent"
    )
    parser.add_argument("--rates", type=float, nargs="*", default=[200.0], help="latency: events per second")
    parser.add_argument("--duration", type=float, default=30.0, help="latency: seconds of sending")
    parser.add_argument(
        "--latency-threads",
        type=int,
        nargs="*",
        default=[0],
        help="worker threads for the latency runs (0: the settings default)",
    )
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--trial-timeout", type=float, default=240.0)
    parser.add_argument("--skip", nargs="*", default=[], choices=["throughput", "naive", "latency"])
    parser.add_argument("--report", nargs="+", metavar="LABEL", help="only print the tables of stored results")
    parser.add_argument("--summarize", metavar="FILE", help="only summarise a py-spy raw profile")
    args = parser.parse_args(argv)
    if args.report:
        for label in args.report:
            print(f"### {label}\n\n{table(json.loads((RESULTS / f'{label}.json').read_text()))}\n")
        return
    if args.summarize:
        print(json.dumps(summarize_profile(Path(args.summarize)), indent=2))
        return

    RESULTS.mkdir(exist_ok=True)
    bench = Bench(args)
    results: dict[str, Any] = {
        "label": args.label,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": versions(args.admin_url, VERSIONS),
        "method": {
            "runs": args.runs,
            "steps_per_run": args.steps,
            "threads_default": DEFAULT_THREADS,
            "threads_tried": args.threads,
            "latency_rates": args.rates,
            "latency_duration_s": args.duration,
            "tenant_concurrency": args.tenant_concurrency,
        },
    }
    thread_counts: list[int | None] = [None, *[t for t in args.threads if t != DEFAULT_THREADS]]
    out = RESULTS / f"{args.label}.json"

    def save() -> None:
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")

    fake = _start(
        [sys.executable, "-m", "benchmarks.engine.fake", f"--port={FAKE_PORT}"], bench.env, bench.logs / "fake.log"
    )
    try:
        _wait_ready(f"{bench.fake_url}/stats", fake)
        if "throughput" not in args.skip:
            results["throughput"] = {"andon": [], "naive": []}
            for variant in [] if args.profile_only else args.variants:
                for threads in thread_counts:
                    results["throughput"]["andon"].append(bench.throughput(variant, threads))
                    save()
            if args.profile or args.profile_only:
                most = max(t if t is not None else DEFAULT_THREADS for t in thread_counts)
                results["throughput"]["andon"].append(bench.throughput(args.profile_variant, most, profile=True))
                profile = RESULTS / f"{args.label}-profile.txt"
                if profile.exists():
                    results["profile"] = summarize_profile(profile)
                save()
        if "naive" not in args.skip:
            results.setdefault("throughput", {"andon": [], "naive": []})
            for threads in thread_counts:
                results["throughput"]["naive"].append(bench.naive(threads if threads is not None else DEFAULT_THREADS))
                save()
        if "latency" not in args.skip:
            results["latency"] = []
            for rate in args.rates:
                for threads in args.latency_threads:
                    results["latency"].append(bench.latency(rate, threads or None))
                    save()
    finally:
        _stop(fake)
        purge_namespace(args.redis_url, args.namespace)
    save()
    print(table(results))


if __name__ == "__main__":
    main()
