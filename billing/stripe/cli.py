"""``andon billing``: Stripe reconciliation and the usage push, across every customer linked to Stripe."""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from collections.abc import Awaitable, Callable

import click
from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.config.settings import Settings
from andon.platform.tenancy.context import TenantContext, TenantId
from andon.platform.tenancy.principal import system_principal

OPERATOR = system_principal(frozenset(), label="andon billing")


def _period(_: click.Context, __: click.Parameter, value: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise click.BadParameter("a month as YYYY-MM, for example 2026-11")
    return value


@click.group()
def billing() -> None:
    """Billing: Stripe reconciliation and usage push (ANDON_STRIPE_API_KEY)."""


@billing.command("reconcile")
@click.option("--period", required=True, callback=_period, help="The month, YYYY-MM.")
def reconcile(period: str) -> None:
    """List every difference between Andon's ledger and Stripe's for a month; exit 1 if any."""
    sys.exit(asyncio.run(_reconcile(Settings(), period)))


@billing.command("push-usage")
def push_usage() -> None:
    """Send the usage recorded since the last push to Stripe as meter events (safe to run again)."""
    sys.exit(asyncio.run(_push(Settings())))


async def _each_customer(settings: Settings, work: Callable[[AsyncSession, TenantContext], Awaitable[None]]) -> None:
    """``work`` in each customer linked to Stripe, one transaction each, bound to that customer."""
    from andon.billing.stripe.repository import customer_links
    from andon.platform.db.engine import create_engine, create_sessionmaker
    from andon.platform.db.scope import apply_principal_scope, bind_tenant
    from andon.tenants.orgs.service import CustomerService

    engine = create_engine(settings.database)
    try:
        sessions = create_sessionmaker(engine)
        async with sessions() as session, session.begin():
            await apply_principal_scope(session, OPERATOR)
            tenants = [tenant for tenant, _ in await customer_links(session)]
            customers = CustomerService(session, OPERATOR)
            partners: dict[uuid.UUID, uuid.UUID] = {t: (await customers.get(t)).partner_id for t in tenants}
        for tenant_id in tenants:
            async with sessions() as session, session.begin():
                await apply_principal_scope(session, OPERATOR)
                await bind_tenant(session, tenant_id, OPERATOR)
                tenant = TenantContext(
                    tenant_id=TenantId(tenant_id), partner_id=partners[tenant_id], principal=OPERATOR
                )
                await work(session, tenant)
    finally:
        await engine.dispose()


async def _reconcile(settings: Settings, period: str) -> int:
    from andon.billing.stripe.client import StripeUnavailableError, connected
    from andon.billing.stripe.reconcile import Reconciliation, reconcile_tenant

    report = Reconciliation(period)
    try:
        async with connected(settings.stripe) as client:

            async def one(session: AsyncSession, tenant: TenantContext) -> None:
                # Andon's own invoice totals join once period close (billing/invoices) hands them over.
                await reconcile_tenant(client, session, tenant, period, report)

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
