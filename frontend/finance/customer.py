"""The customer's finance page (``/admin/billing``, billing:read): a period's usage by meter with its
daily chart, usage per site and per workflow template, the live invoice preview, the plan in force,
and the issued invoices and credit notes with their printable form and CSV (links to the API, which
the session cookie opens the same way)."""

from __future__ import annotations

from litestar import get
from litestar.params import FromQuery
from litestar.response import Template

from andon.billing.invoices.service import InvoiceService
from andon.billing.plans.service import SubscriptionService
from andon.billing.usage.meters import METERS
from andon.billing.usage.service import UsageService
from andon.frontend.customer.console import CustomerConsoleController
from andon.frontend.finance.common import chosen_period, document_view, draft_view, recent_periods, usage_view
from andon.frontend.operations.console import sites_of
from andon.frontend.pages import page
from andon.platform.auth.rbac import P
from andon.platform.http.params import Caller, DbSession, Tenant

# The meters a breakdown is shown for, by the dimension the usage collector records.
BY_SITE = ("events.ingested", "runs.started", "steps.executed", "actions.executed")
BY_TEMPLATE = ("runs.started", "steps.executed")
# Invoices listed on the page; older ones are in the API's list.
DOCUMENTS_SHOWN = 100


class CustomerBillingPageController(CustomerConsoleController):
    path = "/admin/billing"

    @get("/", opt={"permission": P.BILLING_READ})
    async def billing(
        self, db_session: DbSession, principal: Caller, tenant: Tenant, period: FromQuery[str | None] = None
    ) -> Template:
        chosen = chosen_period(period)
        usage = await usage_view(db_session, tenant, chosen, who="your plants")
        meters = UsageService(db_session, tenant)
        sites = {str(s.id): s.name for s in await sites_of(db_session, tenant)}
        by_site = {
            key: [(sites.get(v or "", v or "no site"), n) for v, n in await meters.breakdown(chosen, key, "site")]
            for key in BY_SITE
        }
        by_template = {
            key: [(v or "no template", n) for v, n in await meters.breakdown(chosen, key, "template")]
            for key in BY_TEMPLATE
        }
        service = InvoiceService(db_session, principal)
        documents = await service.tenant_documents(tenant).list(limit=DOCUMENTS_SHOWN)
        return page(
            "finance/customer.html",
            principal=principal,
            period=chosen,
            periods=recent_periods(),
            usage=usage,
            meters=METERS,
            by_site={k: v for k, v in by_site.items() if v},
            by_template={k: v for k, v in by_template.items() if v},
            preview=draft_view(await service.preview(tenant, chosen)),
            subscription=await SubscriptionService(db_session, tenant).read(),
            documents=[document_view(d) for d in reversed(documents)],
            api=f"/api/v1/customers/{tenant.tenant_id}",
        )


FINANCE_CUSTOMER_PAGES = [CustomerBillingPageController]
