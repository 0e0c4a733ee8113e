"""``andon billing close``: the period close of every issuer (or one partner) from the command line.

Each partner's retail close and the operator's wholesale close run in a transaction of their own, so
one issuer's failure leaves the others' documents issued; closing again creates nothing new."""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import click

from andon.platform.auth.rbac import ALL_PERMISSIONS
from andon.platform.config.settings import Settings
from andon.platform.tenancy.principal import OrgKind, Principal, SubjectKind, system_principal

OPERATOR = system_principal(ALL_PERMISSIONS, label="andon billing close")


def period_param(_: click.Context | None, __: click.Parameter | None, value: str) -> str:
    """A ``--period`` option: a month as YYYY-MM."""
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise click.BadParameter("a month as YYYY-MM, for example 2026-11")
    return value


def partner_closer(partner_id: uuid.UUID, name: str) -> Principal:
    """The partner's own billing, acting for it from the command line (it issues its retail invoices)."""
    return Principal(
        subject_kind=SubjectKind.SYSTEM,
        subject_id=None,
        label=f"andon billing close ({name})",
        org_kind=OrgKind.PARTNER,
        partner_id=partner_id,
        permissions=ALL_PERMISSIONS,
    )


@dataclass
class IssuerClose:
    issuer: str
    documents: int = 0
    totals: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    error: str | None = None

    def line(self) -> str:
        if self.error is not None:
            return f"{self.issuer}: failed, nothing issued: {self.error}"
        money = ", ".join(f"{total} {currency}" for currency, total in sorted(self.totals.items())) or "0"
        return f"{self.issuer}: {self.documents} document(s), total {money} (minor units)"


@click.command("close")
@click.option("--period", required=True, callback=period_param, help="The month, YYYY-MM.")
@click.option("--partner", "partner_id", type=click.UUID, default=None, help="Only this partner's retail close.")
def close(period: str, partner_id: uuid.UUID | None) -> None:
    """Issue the month's invoices: every partner's retail invoices and Andon's wholesale invoices to
    partners (only the partner's retail ones with --partner). Safe to run again."""
    sys.exit(asyncio.run(close_period(Settings(), period, partner_id)))


async def close_period(
    settings: Settings, period: str, partner_id: uuid.UUID | None = None, *, now: datetime | None = None
) -> int:
    """0 when every issuer closed, 1 when one failed, 2 when the period may not be closed yet."""
    from andon.billing.invoices.service import InvoiceService, closable_from
    from andon.platform.db.engine import create_engine, create_sessionmaker
    from andon.platform.db.scope import apply_principal_scope
    from andon.platform.db.types import utcnow
    from andon.platform.http.errors import AndonError
    from andon.tenants.orgs.service import PartnerService

    now = now or utcnow()
    opens = closable_from(period)
    if now < opens:
        click.echo(
            f"{period} cannot be closed before {opens.isoformat()}: usage may arrive until its grace ends",
            err=True,
        )
        return 2
    engine = create_engine(settings.database)
    sessions = create_sessionmaker(engine)
    results: list[IssuerClose] = []
    try:
        async with sessions() as session, session.begin():
            await apply_principal_scope(session, OPERATOR)
            partners = PartnerService(session, OPERATOR)
            if partner_id is not None:
                chosen = [await partners.get(partner_id)]
            else:
                chosen, total = [], 1
                while len(chosen) < total:
                    page, total = await partners.list(limit=500, offset=len(chosen), q=None)
                    if not page:
                        break
                    chosen.extend(page)
            issuers = [(p.id, p.name) for p in sorted(chosen, key=lambda p: p.slug)]
        for pid, name in issuers:
            principal = partner_closer(pid, name)
            outcome = IssuerClose(name)
            try:
                async with sessions() as session, session.begin():
                    await apply_principal_scope(session, principal)
                    made = await InvoiceService(session, principal).close(pid, period, now=now)
            except AndonError as exc:
                outcome.error = exc.detail
            else:
                outcome.documents = len(made)
                for doc in made:
                    outcome.totals[doc.invoice.currency] += doc.invoice.total_minor
            results.append(outcome)
        if partner_id is None:
            outcome = IssuerClose("Andon (wholesale)")
            try:
                async with sessions() as session, session.begin():
                    await apply_principal_scope(session, OPERATOR)
                    made = await InvoiceService(session, OPERATOR).close_wholesale(period, now=now)
            except AndonError as exc:
                outcome.error = exc.detail
            else:
                outcome.documents = len(made)
                for doc in made:
                    outcome.totals[doc.invoice.currency] += doc.invoice.total_minor
            results.append(outcome)
    finally:
        await engine.dispose()
    for outcome in results:
        click.echo(outcome.line())
    created = sum(r.documents for r in results)
    click.echo(f"{period}: {created} document(s) issued by {len(results)} issuer(s)")
    return 1 if any(r.error is not None for r in results) else 0
