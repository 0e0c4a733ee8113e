"""``andon billing``: Stripe reconciliation and the usage push, across every customer linked to Stripe;
the period close (``billing/invoices/cli.py``) joins the same group."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import click
from sqlalchemy.ext.asyncio import AsyncSession

from andon.billing.invoices.cli import close, period_param
from andon.platform.config.settings import Settings
from andon.platform.tenancy.context import TenantContext


@click.group()
def billing() -> None:
    """Billing: period close, Stripe reconciliation and usage push (ANDON_STRIPE_API_KEY)."""


billing.add_command(close)


@billing.command("reconcile")
@click.option("--period", required=True, callback=period_param, help="The month, YYYY-MM.")
def reconcile(period: str) -> None:
    """List every difference between Andon's ledger and Stripe's for a month; exit 1 if any."""
    sys.exit(asyncio.run(_reconcile(Settings(), period)))


@billing.command("push-usage")
def push_usage() -> None:
    """Send the usage recorded since the last push to Stripe as meter events (safe to run again)."""
    sys.exit(asyncio.run(_push(Settings())))


async def _each_customer(settings: Settings, work: Callable[[AsyncSession, TenantContext], Awaitable[None]]) -> None:
    from andon.billing.stripe.pending import each_linked_customer
    from andon.platform.db.engine import create_engine, create_sessionmaker

    engine = create_engine(settings.database)
    try:
        await each_linked_customer(create_sessionmaker(engine), work)
    finally:
        await engine.dispose()


async def _reconcile(settings: Settings, period: str) -> int:
    from andon.billing.invoices.service import issued_total
    from andon.billing.stripe.client import StripeUnavailableError, connected
    from andon.billing.stripe.reconcile import Reconciliation, reconcile_tenant

    report = Reconciliation(period)
    try:
        async with connected(settings.stripe) as client:

            async def one(session: AsyncSession, tenant: TenantContext) -> None:
                total = await issued_total(session, tenant, period)
                await reconcile_tenant(client, session, tenant, period, report, andon_invoice_total=total)

            await _each_customer(settings, one)
    except StripeUnavailableError as exc:
        click.echo(exc.detail, err=True)
        return 2
    for difference in report.differences:
        click.echo(difference.line())
    click.echo(
        f"{period}: {len(report.differences)} difference(s) in {report.checked} meters and invoices "
        f"of {report.customers} customer(s)"
    )
    return 0 if report.in_sync else 1


async def _push(settings: Settings) -> int:
    from andon.billing.stripe.client import StripeUnavailableError, connected
    from andon.billing.stripe.sync import StripeSync

    try:
        async with connected(settings.stripe) as client:

            async def one(session: AsyncSession, tenant: TenantContext) -> None:
                sync = StripeSync(client, session, tenant)
                await sync.ensure_meters()
                pushed = await sync.push_usage()
                click.echo(
                    f"{tenant.tenant_id}: {pushed.sent} sent, {pushed.duplicates} already in Stripe, "
                    f"{pushed.gauges} period values, {len(pushed.too_old)} too old for Stripe"
                )

            await _each_customer(settings, one)
    except StripeUnavailableError as exc:
        click.echo(exc.detail, err=True)
        return 2
    return 0
