"""The ingress benchmark: accepted CloudEvents per second and acceptance latency on PostgreSQL.

    .venv/bin/python -m benchmarks.ingress.run --label after

1. Creates a fresh database (``andon_bench``; dropped first) and the non-owner role the app connects
   as, migrates it, and seeds one partner, one customer and an ``ingest`` API key through the services.
2. Starts the real app (``andon.platform.http.asgi:app``) under uvicorn in production settings
   (PostgreSQL, Redis db 6 with namespace ``bench``, logging at WARNING, uvloop + httptools, no
   access log) with the outbox relay and workers *off*: this measures acceptance, and the outbox
   rows wait for a relay as they would for ``andon worker`` processes elsewhere. It also starts the
   bare Litestar baseline (``baseline.py``: one INSERT per request) on the same PostgreSQL.
3. Runs the load client (``client.py``, its own process) at each concurrency against each target,
   plus against the baseline's no-op endpoint (the client's own ceiling on this machine).
4. Checks that every 2xx left an event and an outbox row in the database, writes
   ``benchmarks/ingress/results/<label>.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.auth.schemas import ApiKeyCreate
from andon.platform.auth.service import ApiKeyService
from andon.platform.config.settings import DatabaseSettings
from andon.platform.db import migrate
from andon.platform.db.engine import create_engine, create_sessionmaker
from andon.platform.db.scope import apply_principal_scope
from andon.platform.tenancy.node import OrgNode
from andon.platform.tenancy.principal import OrgKind, system_principal
from andon.tenants.orgs.schemas import CustomerCreate, PartnerCreate
from andon.tenants.orgs.service import CustomerService, PartnerService
from benchmarks.ingress.baseline import TABLE as baseline_table

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
APP_ROLE = "andon_app"
ANDON_PORT = 8701
BASELINE_PORT = 8702


def _dsn(url: str, database: str | None = None) -> str:
    u = make_url(url).set(drivername="postgresql")
    if database is not None:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


def create_database(admin_url: str, name: str) -> DatabaseSettings:
    with psycopg.connect(_dsn(admin_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        with suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD {}").format(
                    sql.Identifier(APP_ROLE), sql.Literal(APP_ROLE)
                )
            )
    base = make_url(admin_url)
    owner = base.set(database=name).render_as_string(hide_password=False)
    app = base.set(database=name, username=APP_ROLE, password=APP_ROLE).render_as_string(hide_password=False)
    return DatabaseSettings(url=app, admin_url=owner, app_role=APP_ROLE)


async def seed(settings: DatabaseSettings) -> tuple[str, uuid.UUID]:
    """One partner, one customer, and an ``ingest`` key of that customer: (plaintext, customer id)."""
    engine = create_engine(settings)
    system = system_principal(ALL_PERMISSIONS, "benchmark seed")
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await apply_principal_scope(session, system)
            partner = await PartnerService(session, system).create(PartnerCreate(slug="bench", name="Bench"))
            customers = CustomerService(session, system)
            customer = await customers.create(
                CustomerCreate(slug="bench-plant", name="Bench Plant", partner_id=partner.id, default_timezone="UTC")
            )
            tenant = await customers.open_tenant(customer.id)
            owner = OrgNode(OrgKind.CUSTOMER, partner_id=partner.id, tenant=tenant)
            _, plaintext = await ApiKeyService(session, system, owner).issue(
                ApiKeyCreate(name="bench gateway", roles=["ingest"])
            )
    finally:
        await engine.dispose()
    return plaintext, customer.id


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            # A fixed loopback URL of a server this script started.
            request = urllib.request.Request(url, method="POST" if url.endswith("/noop") else "GET")  # noqa: S310
            with urllib.request.urlopen(request, timeout=1):  # noqa: S310
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU so far of a process and every live descendant (uvicorn's worker processes),
    plus what its reaped children used (Linux /proc)."""
    stats: dict[int, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError):
            stats[int(stat.parent.name)] = stat.read_text().rsplit(")", 1)[1].split()
    tree, ticks = {pid}, 0
    for child, fields in sorted(stats.items()):
        if int(fields[1]) in tree:
            tree.add(child)
    for member in tree:
        fields = stats.get(member, [])
        ticks += sum(int(f) for f in fields[11:15]) if member == pid else sum(int(f) for f in fields[11:13])
    return ticks / os.sysconf("SC_CLK_TCK")


def named_cpu_seconds(name: str) -> float:
    """User + system CPU of every live process whose command name is ``name`` (postgres, redis-server)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, IndexError, ValueError):
            text = stat.read_text()
            if f"({name})" in text:
                fields = text.rsplit(")", 1)[1].split()
                total += sum(int(f) for f in fields[11:13]) / tick
    return total


def measure(
    port: int, path: str, key: str, concurrency: int, duration: float, warmup: float, server_pid: int
) -> dict[str, Any]:
    server_before, pg_before, wall_before = _cpu_seconds(server_pid), named_cpu_seconds("postgres"), time.monotonic()
    out = subprocess.run(  # noqa: S603 (this interpreter running the client module)
        [
            sys.executable,
            "-m",
            "benchmarks.ingress.client",
            f"--port={port}",
            f"--path={path}",
            f"--key={key}",
            f"-c{concurrency}",
            f"-d{duration}",
            f"-w{warmup}",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    wall = time.monotonic() - wall_before
    result: dict[str, Any] = json.loads(out.stdout)
    result["server_cpu_share"] = round((_cpu_seconds(server_pid) - server_before) / wall, 2)
    result["postgres_cpu_share"] = round((named_cpu_seconds("postgres") - pg_before) / wall, 2)
    # Other work on the machine skews every number: the 1-minute load average when this run ended.
    result["load_1m"] = round(os.getloadavg()[0], 2)
    return result


def _verify(settings: DatabaseSettings) -> dict[str, int]:
    with psycopg.connect(_dsn(settings.owner_url)) as conn:
        events = conn.execute("SELECT count(*) FROM events").fetchone()
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()
    return {"events": int(events[0]) if events else 0, "outbox": int(outbox[0]) if outbox else 0}


def versions(admin_url: str, names: tuple[str, ...]) -> dict[str, str]:
    """The versions of the packages named, PostgreSQL's and Python's, for a results file."""
    from importlib.metadata import version

    found = {name: version(name) for name in names}
    with psycopg.connect(_dsn(admin_url)) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    found["postgresql"] = str(row[0]) if row else "?"
    found["python"] = platform.python_version()
    return found


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)  # noqa: S603


def _cpu_ms(row: dict[str, Any]) -> str:
    """The server process's CPU per accepted event: less sensitive to a busy machine than events/s."""
    return f"{1000 * row['server_cpu_share'] / row['events_per_s']:.2f}" if row["events_per_s"] else "-"


def table(results: dict[str, Any]) -> str:
    lines = [
        "| c | andon events/s | p50 ms | p99 ms | CPU ms/event | baseline events/s | p50 ms | p99 ms "
        "| CPU ms/event | andon / baseline | load |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for a, b in zip(results["andon"], results["baseline"], strict=True):
        ratio = a["events_per_s"] / b["events_per_s"] if b["events_per_s"] else 0.0
        lines.append(
            f"| {a['concurrency']} | {a['events_per_s']:,.0f} | {a['p50_ms']} | {a['p99_ms']} | {_cpu_ms(a)} | "
            f"{b['events_per_s']:,.0f} | {b['p50_ms']} | {b['p99_ms']} | {_cpu_ms(b)} | {ratio:.2f} | "
            f"{a.get('load_1m', '?')} / {b.get('load_1m', '?')} |"
        )
    noop = results["client_ceiling"]
    lines.append("")
    lines.append(
        "Client ceiling (no-op endpoint): "
        + ", ".join(f"c={n['concurrency']}: {n['events_per_s']:,.0f}/s p99 {n['p99_ms']} ms" for n in noop)
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", default="latest", help="results/<label>.json")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("BENCH_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL superuser URL (the database in it is not used)",
    )
    parser.add_argument("--database", default="andon_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/6")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--targets", nargs="+", default=["andon", "baseline"], choices=["andon", "baseline"])
    parser.add_argument("--workers-in-process", action="store_true", help="run the relay and workers in the app")
    parser.add_argument(
        "--server-workers", type=int, default=1, help="uvicorn worker processes, for Andon and the baseline alike"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy record the app during the c=32 run")
    parser.add_argument("--serve", action="store_true", help="set up, start both servers, print the key and wait")
    parser.add_argument("--report", nargs="+", metavar="LABEL", help="only print the tables of stored results")
    args = parser.parse_args(argv)
    if args.report:
        report(args.report)
        return

    settings = create_database(args.admin_url, args.database)
    migrate.upgrade(settings)
    with psycopg.connect(_dsn(settings.owner_url), autocommit=True) as conn:
        conn.execute(baseline_table)
    key, _ = asyncio.run(seed(settings))
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "ANDON_ENVIRONMENT": "production",
        "ANDON_SECURITY_SECRET_KEY": "bench-" + "s" * 40,
        "ANDON_DATABASE_URL": settings.url,
        "ANDON_DATABASE_ADMIN_URL": settings.owner_url,
        "ANDON_DATABASE_APP_ROLE": APP_ROLE,
        "ANDON_REDIS_URL": args.redis_url,
        "ANDON_REDIS_NAMESPACE": "bench",
        "ANDON_LOG_LEVEL": "WARNING",
        # The per-tenant limit (default 500 events/s) would cap one tenant's rate: a big tenant's limit,
        # above what is measured, so every request is charged (a Redis call per lease of 500) and none
        # is refused.
        "ANDON_LIMITS_EVENTS_PER_SECOND": os.environ.get("ANDON_LIMITS_EVENTS_PER_SECOND", "10000"),
        "ANDON_LIMITS_EVENTS_BURST": os.environ.get("ANDON_LIMITS_EVENTS_BURST", "20000"),
        "ANDON_WORKERS_IN_PROCESS": "true" if args.workers_in_process else "false",
        "ANDON_HTTP_BASE_URL": f"http://127.0.0.1:{ANDON_PORT}",
        "BENCH_BASELINE_DSN": _dsn(settings.owner_url),
    }
    uvicorn = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--loop", "uvloop", "--http", "httptools"]
    uvicorn += ["--no-access-log", "--log-level", "warning"]
    if args.server_workers > 1:
        uvicorn += ["--workers", str(args.server_workers)]
    results: dict[str, Any] = {
        "label": args.label,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": versions(
            args.admin_url, ("litestar", "uvicorn", "uvloop", "httptools", "sqlalchemy", "asyncpg", "msgspec")
        ),
        "method": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "workers_in_process": args.workers_in_process,
            "server_workers": args.server_workers,
        },
    }
    with ExitStack() as stack:
        andon = _start([*uvicorn, "--port", str(ANDON_PORT), "andon.platform.http.asgi:app"], env, logs / "andon.log")
        stack.callback(_stop, andon)
        baseline = _start(
            [*uvicorn, "--port", str(BASELINE_PORT), "benchmarks.ingress.baseline:app"], env, logs / "baseline.log"
        )
        stack.callback(_stop, baseline)
        _wait_ready(f"http://127.0.0.1:{ANDON_PORT}/health/live", andon)
        _wait_ready(f"http://127.0.0.1:{BASELINE_PORT}/noop", baseline)
        if args.serve:
            print(f"andon on :{ANDON_PORT}, baseline on :{BASELINE_PORT}; key {key}; Ctrl-C stops", flush=True)
            with suppress(KeyboardInterrupt):
                andon.wait()
            return
        targets = {
            "andon": (ANDON_PORT, "/api/v1/events", andon.pid),
            "baseline": (BASELINE_PORT, "/events", baseline.pid),
        }
        for name in args.targets:
            port, path, pid = targets[name]
            results[name] = []
            for concurrency in args.concurrency:
                profiler = None
                if args.profile and name == "andon" and concurrency == max(args.concurrency):
                    profiler = _start(
                        [
                            str(Path(sys.executable).parent / "py-spy"),
                            "record",
                            "-o",
                            str(RESULTS / f"{args.label}-profile.txt"),
                            "--format",
                            "raw",
                            "--pid",
                            str(pid),
                            "--subprocesses",
                            "--duration",
                            str(int(args.duration + args.warmup)),
                        ],
                        env,
                        logs / "py-spy.log",
                    )
                row = measure(port, path, key, concurrency, args.duration, args.warmup, pid)
                if profiler is not None:
                    profiler.wait(timeout=60)
                print(name, json.dumps(row), flush=True)
                results[name].append(row)
        results["client_ceiling"] = []
        for concurrency in sorted({1, max(args.concurrency)}):
            row = measure(BASELINE_PORT, "/noop", key, concurrency, min(args.duration, 10), 2, baseline.pid)
            print("noop", json.dumps(row), flush=True)
            results["client_ceiling"].append(row)
    if "andon" in results:
        stored = _verify(settings)
        results["stored"] = stored
        accepted = sum(r["accepted"] for r in results["andon"])
        # Warm-up requests are stored too, so the database holds at least what the window counted.
        assert stored["events"] >= accepted, (stored, accepted)
        # Without a relay every accepted event still has its outbox row: they committed together.
        assert args.workers_in_process or stored["outbox"] == stored["events"], stored
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.label}.json").write_text(json.dumps(results, indent=2) + "\n")
    if "andon" in results and "baseline" in results:
        print(table(results))


def report(labels: list[str]) -> None:
    """Print the table of stored results: ``python -m benchmarks.ingress.run --report before after``."""
    for label in labels:
        print(f"### {label}\n")
        print(table(json.loads((RESULTS / f"{label}.json").read_text())) + "\n")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
