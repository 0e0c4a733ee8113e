"""The billing benchmark: one month of usage of 1,000 customers (10 million records on PostgreSQL)
aggregated into invoices, with wall time, PostgreSQL CPU and peak memory.

    .venv/bin/python -m benchmarks.billing.run --label latest

1. Creates a fresh database (``andon_bench_billing``; dropped first) and the non-owner role the app
   connects as, migrates it as the owner, and seeds through the services: ``--partners`` partners
   sharing ``--customers`` customers, each partner with a retail plan (a platform fee, graduated
   events, volume steps, seats and sites per unit, a minimum) that every customer subscribes to, and
   an operator wholesale plan every partner is on.
2. Loads ``--records`` usage records of October 2026 in SQL (``INSERT ... SELECT`` over
   ``generate_series``, indexes dropped during the load and built again after, then ``VACUUM ANALYZE``),
   spread over ten meters, five sites per customer and every second of the month; then offers 1 % of
   them again with the same idempotency keys, which the unique constraint turns away. Loading is setup
   and is not measured.
3. Measures, each in a fresh child process connected as the app role (row-level security applies):
   ``baseline`` (one raw ``SELECT tenant_id, meter, sum, count, max ... GROUP BY`` over the same
   records as the owner: the floor any implementation pays), ``retail`` (``InvoiceService.close`` of
   every partner, one transaction each) and ``wholesale`` (``InvoiceService.close_wholesale``). Per
   step: wall time, PostgreSQL CPU (``/proc``), the child's peak RSS (``getrusage``) and its RSS before
   the step, documents created and their total.
4. Writes ``benchmarks/billing/results/<label>.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from andon.billing.invoices.service import InvoiceService
from andon.billing.plans.schemas import PriceBookCreate, SubscriptionChange
from andon.billing.plans.service import PriceBookService, SubscriptionService, WholesaleSubscriptionService
from andon.billing.pricing.prices import (
    FlatPrice,
    GraduatedPrice,
    PerUnitPrice,
    Plan,
    PlanItem,
    Tier,
    VolumePrice,
)
from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.config.settings import DatabaseSettings
from andon.platform.db import migrate
from andon.platform.db.engine import create_engine, create_sessionmaker
from andon.platform.db.scope import apply_principal_scope
from andon.platform.tenancy.context import TenantContext, TenantId
from andon.platform.tenancy.principal import OrgKind, Principal, SubjectKind, system_principal
from andon.tenants.orgs.schemas import CustomerCreate, PartnerCreate
from andon.tenants.orgs.service import CustomerService, PartnerService
from benchmarks.ingress.run import _dsn, create_database, versions

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
PERIOD = "2026-10"
MONTH_START = datetime(2026, 10, 1, tzinfo=UTC)
# After October's grace (three days): the close is allowed.
CLOSE_AT = datetime(2026, 11, 5, tzinfo=UTC)
OPERATOR = system_principal(ALL_PERMISSIONS, "billing benchmark")
# Ten meters, weighted towards events; every aggregation (sum, max, last, unique) is represented.
METERS = (
    "events.ingested",
    "events.ingested",
    "events.ingested",
    "runs.started",
    "steps.executed",
    "steps.executed",
    "notifications.sent",
    "connector.calls",
    "seats",
    "assets.active",
    "sites.active",
)
# The indexes and constraints of usage_records (migration 0018) that are dropped while loading and
# built again after: building an index once is far cheaper than maintaining it row by row.
INDEXES = (
    ("ix_usage_records_tenant_id", "CREATE INDEX ix_usage_records_tenant_id ON usage_records (tenant_id)"),
    (
        "ix_usage_records_tenant_period_meter",
        "CREATE INDEX ix_usage_records_tenant_period_meter ON usage_records (tenant_id, period, meter)",
    ),
    (
        "ix_usage_records_partner_period",
        "CREATE INDEX ix_usage_records_partner_period ON usage_records (partner_id, period)",
    ),
)
CONSTRAINTS = (
    ("pk_usage_records", "PRIMARY KEY (id)"),
    ("uq_usage_records_tenant_id_idempotency_key", "UNIQUE (tenant_id, idempotency_key)"),
)


def partner_principal(partner_id: uuid.UUID, slug: str) -> Principal:
    return Principal(
        subject_kind=SubjectKind.SYSTEM,
        subject_id=None,
        label=f"{slug} billing",
        org_kind=OrgKind.PARTNER,
        partner_id=partner_id,
        permissions=ALL_PERMISSIONS,
    )


def retail_plan() -> Plan:
    return Plan(
        key="plant",
        name="Plant",
        currency="EUR",
        minimum=50_000,
        items=[
            PlanItem(meter="", title="Platform", price=FlatPrice(amount=20_000)),
            PlanItem(
                meter="events.ingested",
                title="Events",
                price=GraduatedPrice(
                    included=1_000,
                    tiers=[
                        Tier(up_to=10_000, unit_price="0.01"),
                        Tier(up_to=50_000, unit_price="0.005", flat_fee=500),
                        Tier(up_to=None, unit_price="0.0025"),
                    ],
                ),
            ),
            PlanItem(
                meter="steps.executed",
                title="Workflow steps",
                price=VolumePrice(
                    tiers=[Tier(up_to=5_000, unit_price="0.02"), Tier(up_to=None, unit_price="0.015")],
                ),
            ),
            PlanItem(meter="runs.started", title="Runs", price=PerUnitPrice(unit_price="0.003", included=100)),
            PlanItem(meter="seats", title="Seats", price=PerUnitPrice(unit_price="12.50", included=5)),
            PlanItem(meter="assets.active", title="Assets", price=PerUnitPrice(unit_price="2")),
            PlanItem(meter="sites.active", title="Sites", price=PerUnitPrice(unit_price="40", included=1)),
        ],
    )


def wholesale_plan() -> Plan:
    return Plan(
        key="partner-standard",
        name="Partner standard",
        currency="EUR",
        items=[
            PlanItem(meter="", title="Per customer", price=FlatPrice(amount=5_000)),
            PlanItem(
                meter="events.ingested",
                title="Events",
                price=GraduatedPrice(
                    tiers=[Tier(up_to=20_000, unit_price="0.002"), Tier(up_to=None, unit_price="0.001")]
                ),
            ),
            PlanItem(meter="steps.executed", title="Steps", price=PerUnitPrice(unit_price="0.004")),
            PlanItem(meter="sites.active", title="Sites", price=PerUnitPrice(unit_price="10")),
        ],
    )


async def seed(settings: DatabaseSettings, partners: int, customers: int) -> list[uuid.UUID]:
    """Partners, customers, plans and subscriptions, through the services (as the owner)."""
    engine = create_engine(settings, url=settings.owner_url)
    sessions = create_sessionmaker(engine)
    made: list[uuid.UUID] = []
    try:
        async with sessions() as session, session.begin():
            await apply_principal_scope(session, OPERATOR)
            books = PriceBookService(session, OPERATOR)
            book = await books.create(None, PriceBookCreate(key="wholesale", name="Wholesale", currency="EUR"))
            await books.put_plan(None, book.id, wholesale_plan())
            wholesale_book = book.id
        for p in range(partners):
            async with sessions() as session, session.begin():
                await apply_principal_scope(session, OPERATOR)
                slug = f"bench-{p + 1}"
                created = PartnerCreate(slug=slug, name=f"Bench {p + 1}")
                partner = await PartnerService(session, OPERATOR).create(created)
                start = SubscriptionChange(price_book_id=wholesale_book, plan="partner-standard", at=MONTH_START)
                await WholesaleSubscriptionService(session, OPERATOR).change(partner.id, start)
                principal = partner_principal(partner.id, slug)
                retail = PriceBookService(session, principal)
                book = await retail.create(partner.id, PriceBookCreate(key="retail", name="Retail", currency="EUR"))
                await retail.put_plan(partner.id, book.id, retail_plan())
                made.append(partner.id)
                retail_book = book.id
                mine = range(p, customers, partners)
                service = CustomerService(session, OPERATOR)
                for c in mine:
                    customer = await service.create(
                        CustomerCreate(
                            slug=f"plant-{c + 1:05d}",
                            name=f"Plant {c + 1:05d}",
                            partner_id=partner.id,
                            default_timezone="UTC",
                        )
                    )
                    tenant = TenantContext(tenant_id=TenantId(customer.id), partner_id=partner.id, principal=principal)
                    await SubscriptionService(session, tenant).change(
                        SubscriptionChange(price_book_id=retail_book, plan="plant", at=MONTH_START)
                    )
    finally:
        await engine.dispose()
    return made


def load_usage(settings: DatabaseSettings, records: int) -> dict[str, Any]:
    """``records`` usage records of October spread evenly over the customers, then 1 % offered again."""
    with psycopg.connect(_dsn(settings.owner_url), autocommit=True) as conn:
        customers = conn.execute("SELECT count(*) FROM customers").fetchone()
        per = max(1, records // int(customers[0] if customers else 1))
        started = time.monotonic()
        for name, _ in INDEXES:
            conn.execute(f"DROP INDEX {name}")  # fixed names above
        for name, _ in CONSTRAINTS:
            conn.execute(f"ALTER TABLE usage_records DROP CONSTRAINT {name}")
        meters = "ARRAY[" + ",".join(f"'{m}'" for m in METERS) + "]"
        # g is the record's number within its customer: it picks the meter, the site, the second of the
        # month and the quantity, and makes the idempotency key (unique within the customer).
        insert = f"""
            INSERT INTO usage_records (id, tenant_id, partner_id, meter, quantity, occurred_at, recorded_at,
                                       period, late, idempotency_key, dimensions, created_at, updated_at)
            SELECT gen_random_uuid(), c.id, c.partner_id, m.meter,
                   CASE m.meter WHEN 'seats' THEN 5 + (g * 7 + c.n) %% 20
                                WHEN 'assets.active' THEN 10 + (g * 13 + c.n) %% 50
                                WHEN 'sites.active' THEN 1
                                ELSE 1 + (g * 31 + c.n) %% 9 END,
                   t.at, t.at + interval '2 seconds', '{PERIOD}', false, 'bench:' || g,
                   jsonb_build_object('site', 'site-' || ((g + c.n) %% 5), 'template', 'tpl-' || (g %% 3)),
                   t.at, t.at
            FROM (SELECT id, partner_id, row_number() OVER (ORDER BY slug) AS n FROM customers
                  ORDER BY slug LIMIT %(limit)s OFFSET %(offset)s) c
            CROSS JOIN generate_series(1, %(per)s) g
            CROSS JOIN LATERAL (SELECT ({meters})[1 + (g * 7 + c.n) %% {len(METERS)}] AS meter) m
            CROSS JOIN LATERAL (SELECT timestamptz '{MONTH_START.isoformat()}'
                                       + ((g * 2591 + c.n * 977) %% 2678400) * interval '1 second' AS at) t
        """  # noqa: S608 (the module's own constants)
        total = int(customers[0]) if customers else 0
        step = 100
        for offset in range(0, total, step):
            conn.execute(insert, {"limit": step, "offset": offset, "per": per})
            print(f"  loaded {min(total, offset + step) * per:,} records", flush=True)
        loaded = time.monotonic() - started
        for name, definition in CONSTRAINTS:
            conn.execute(f"ALTER TABLE usage_records ADD CONSTRAINT {name} {definition}")
        for _, create in INDEXES:
            conn.execute(create)
        indexed = time.monotonic() - started - loaded
        # 1 % again under the same keys: the unique constraint turns every one away.
        again = conn.execute(
            """
            INSERT INTO usage_records (id, tenant_id, partner_id, meter, quantity, occurred_at, recorded_at,
                                       period, late, idempotency_key, dimensions, created_at, updated_at)
            SELECT gen_random_uuid(), tenant_id, partner_id, meter, quantity, occurred_at, recorded_at,
                   period, late, idempotency_key, dimensions, created_at, updated_at
            FROM usage_records TABLESAMPLE SYSTEM (1)
            ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
            """
        )
        offered = conn.execute("SELECT count(*) FROM usage_records TABLESAMPLE SYSTEM (1)").fetchone()
        accepted_again = again.rowcount
        conn.execute("VACUUM (ANALYZE) usage_records")
        count = conn.execute("SELECT count(*) FROM usage_records").fetchone()
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('usage_records'))").fetchone()
    return {
        "records": int(count[0]) if count else 0,
        "per_customer": per,
        "duplicates_offered_about": int(offered[0]) if offered else 0,
        "duplicates_accepted": accepted_again,
        "load_s": round(loaded, 1),
        "index_s": round(indexed, 1),
        "table_size": str(size[0]) if size else "?",
    }


def postgres_cpu_seconds() -> float:
    """User + system CPU of PostgreSQL so far: its live processes, plus what the exited ones used
    (parallel workers, closed connections), which the postmaster collects as its children's time."""
    stats: dict[int, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, IndexError, ValueError):
            text = stat.read_text()
            if "(postgres)" in text:
                stats[int(stat.parent.name)] = text.rsplit(")", 1)[1].split()
    ticks = 0
    for fields in stats.values():
        ticks += int(fields[11]) + int(fields[12])
        if int(fields[1]) not in stats:  # the postmaster: its reaped children's time too
            ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def _rss_kib() -> int:
    with Path("/proc/self/statm").open() as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


async def _step(settings: DatabaseSettings, step: str) -> dict[str, Any]:
    """One measured step in this (fresh) process."""
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    try:
        # Connect and load the ORM before the clock starts: the step measures the work, not start-up.
        async with sessions() as session, session.begin():
            await apply_principal_scope(session, OPERATOR)
            partners = [
                (p.id, p.slug) for p in (await PartnerService(session, OPERATOR).list(limit=1000, offset=0, q=None))[0]
            ]
        rss_before = _rss_kib()
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        pg_before, wall_before = postgres_cpu_seconds(), time.monotonic()
        documents, lines, total = 0, 0, 0
        if step == "baseline":
            with psycopg.connect(_dsn(settings.owner_url)) as conn:
                rows = conn.execute(
                    "SELECT tenant_id, meter, sum(quantity), count(*), max(quantity) FROM usage_records "
                    "WHERE period = %s GROUP BY tenant_id, meter",
                    (PERIOD,),
                ).fetchall()
            lines, total = len(rows), sum(int(r[2]) for r in rows)
        elif step == "retail":
            for partner_id, slug in partners:
                principal = partner_principal(partner_id, slug)
                async with sessions() as session, session.begin():
                    await apply_principal_scope(session, principal)
                    made = await InvoiceService(session, principal).close(partner_id, PERIOD, now=CLOSE_AT)
                documents += len(made)
                lines += sum(len(d.lines) for d in made)
                total += sum(d.invoice.total_minor for d in made)
        elif step == "wholesale":
            async with sessions() as session, session.begin():
                await apply_principal_scope(session, OPERATOR)
                made = await InvoiceService(session, OPERATOR).close_wholesale(PERIOD, now=CLOSE_AT)
            documents, lines = len(made), sum(len(d.lines) for d in made)
            total = sum(d.invoice.total_minor for d in made)
        wall = time.monotonic() - wall_before
        pg = postgres_cpu_seconds() - pg_before
    finally:
        await engine.dispose()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # ru_maxrss is the process's peak so far: start-up (imports, the ORM) plus the step.
    return {
        "step": step,
        "wall_s": round(wall, 2),
        "postgres_cpu_s": round(pg, 2),
        "python_cpu_s": round(usage.ru_utime + usage.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime, 2),
        "rss_before_mib": round(rss_before / 1024, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "documents": documents,
        "lines": lines,
        "total": total,
        "load_1m": round(os.getloadavg()[0], 2),
    }


def measure(settings: DatabaseSettings, step: str) -> dict[str, Any]:
    """Runs one step in a child process, so its peak RSS is that step's alone."""
    out = subprocess.run(  # noqa: S603 (this interpreter running this module)
        [sys.executable, "-m", "benchmarks.billing.run", "--step", step, "--settings", json.dumps(_plain(settings))],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _plain(settings: DatabaseSettings) -> dict[str, str]:
    return {"url": settings.url, "admin_url": settings.owner_url, "app_role": settings.app_role or ""}


def table(results: dict[str, Any]) -> str:
    rows = {r["step"]: r for r in results["steps"]}
    floor = rows.get("baseline", {}).get("wall_s") or 0
    head = (
        "| step | wall s | x baseline | PostgreSQL CPU s | Python CPU s | peak RSS MiB | RSS before MiB "
        "| documents | lines |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    body = [
        f"| {r['step']} | {r['wall_s']:,} | {r['wall_s'] / floor:.1f} | {r['postgres_cpu_s']:,} | "
        f"{r['python_cpu_s']:,} | {r['peak_rss_mib']:,} | {r['rss_before_mib']:,} | {r['documents']:,} | "
        f"{r['lines']:,} |"
        if floor
        else f"| {r['step']} | {r['wall_s']} | - | {r['postgres_cpu_s']} | {r['python_cpu_s']} | "
        f"{r['peak_rss_mib']} | {r['rss_before_mib']} | {r['documents']} | {r['lines']} |"
        for r in results["steps"]
    ]
    return "\n".join([head, *body])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", default="latest", help="results/<label>.json")
    parser.add_argument("--admin-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="andon_bench_billing")
    parser.add_argument("--partners", type=int, default=1)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--steps", nargs="+", default=["baseline", "retail", "wholesale"])
    parser.add_argument("--reuse", action="store_true", help="measure an existing database (no drop, seed or load)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where <label>.json is written")
    parser.add_argument("--report", nargs="+", metavar="LABEL", help="only print the tables of stored results")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        plain = json.loads(args.settings)
        child = DatabaseSettings(url=plain["url"], admin_url=plain["admin_url"], app_role=plain["app_role"] or None)
        print(json.dumps(asyncio.run(_step(child, args.step))), flush=True)
        return
    if args.report:
        for label in args.report:
            print(f"{label}\n{table(json.loads((args.results / f'{label}.json').read_text()))}\n")
        return

    started = time.monotonic()
    if args.reuse:
        settings = create_database_settings(args.admin_url, args.database)
        with psycopg.connect(_dsn(settings.owner_url), autocommit=True) as conn:
            # Issued documents are append-only for the app; the owner clears them to close again.
            conn.execute("DELETE FROM invoice_lines")
            conn.execute("DELETE FROM invoices")
            conn.execute("DELETE FROM invoice_sequences")
        setup: dict[str, Any] = {"reused": True}
    else:
        settings = create_database(args.admin_url, args.database)
        migrate.upgrade(settings)
        seed_started = time.monotonic()
        asyncio.run(seed(settings, args.partners, args.customers))
        seeded = time.monotonic() - seed_started
        print(f"seeded {args.partners} partner(s), {args.customers} customers in {seeded:.1f}s", flush=True)
        setup = load_usage(settings, args.records)
        setup["seed_s"] = round(time.monotonic() - seed_started - setup["load_s"] - setup["index_s"], 1)
        print(json.dumps(setup), flush=True)
    results: dict[str, Any] = {
        "label": args.label,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "partners": args.partners,
        "customers": args.customers,
        "setup": setup,
        "steps": [],
        "versions": versions(args.admin_url, ("sqlalchemy", "asyncpg", "psycopg")),
        "cpus": os.cpu_count(),
    }
    for step in args.steps:
        row = measure(settings, step)
        print(step, json.dumps(row), flush=True)
        results["steps"].append(row)
    results["total_runtime_s"] = round(time.monotonic() - started, 1)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.label}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


def create_database_settings(admin_url: str, name: str) -> DatabaseSettings:
    """The settings of an existing benchmark database (``--reuse``)."""
    from sqlalchemy.engine import make_url

    from benchmarks.ingress.run import APP_ROLE

    base = make_url(admin_url)
    owner = base.set(database=name).render_as_string(hide_password=False)
    app = base.set(database=name, username=APP_ROLE, password=APP_ROLE).render_as_string(hide_password=False)
    return DatabaseSettings(url=app, admin_url=owner, app_role=APP_ROLE)


if __name__ == "__main__":
    main()
