"""Stripe's webhook: each delivery verified by its ``Stripe-Signature`` (HMAC-SHA256 of
``<timestamp>.<body>`` with the endpoint's secret, the timestamp within the tolerance), processed
once by its event id, invoice events mirrored into ``stripe_invoices``.

The event id is stored in the same transaction as the event's effects: a replayed delivery (Stripe
retries until it gets a 2xx, and an attacker may resend a captured one) finds it and changes
nothing. Events of one invoice may arrive out of order; an older one never overwrites a newer one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Controller, Request, post
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.billing.stripe.client import stripe_sdk
from andon.billing.stripe.models import StripeInvoice
from andon.billing.stripe.repository import StripeInvoiceRepository, claim_event, record_outcome, tenant_of_customer
from andon.billing.usage.meters import period_of
from andon.platform.config.settings import StripeSettings
from andon.platform.db.scope import apply_principal_scope, bind_tenant
from andon.platform.http.errors import AndonError
from andon.platform.tenancy.context import TenantContext, TenantId
from andon.platform.tenancy.principal import system_principal

PATH = "/api/v1/billing/stripe/webhook"
INVOICE_EVENTS = frozenset({"invoice.finalized", "invoice.paid", "invoice.payment_failed"})
STRIPE = system_principal(frozenset(), label="stripe webhook")


class SignatureRefusedError(AndonError):
    title = "Stripe signature refused"
    type_slug = "stripe-signature-refused"


@dataclass(frozen=True, slots=True)
class Receipt:
    event_id: str
    duplicate: bool
    outcome: str


class WebhookReceipt(msgspec.Struct, kw_only=True):
    event: str
    duplicate: bool
    outcome: str


def verify(settings: StripeSettings, body: bytes, signature: str | None) -> dict[str, Any]:
    """The event a delivery carries, once its signature proves Stripe sent it (and recently)."""
    from andon.billing.stripe.client import StripeUnavailableError

    secret = settings.webhook_secret.get_secret_value()
    if not secret:
        raise StripeUnavailableError(
            "Stripe webhooks are not configured: set ANDON_STRIPE_WEBHOOK_SECRET to the endpoint's signing secret"
        )
    if not signature:
        raise SignatureRefusedError(
            "Stripe-Signature: the header is missing; only Stripe's signed deliveries are taken"
        )
    stripe = stripe_sdk()
    try:
        text = body.decode()
        stripe.Webhook.construct_event(text, signature, secret, tolerance=settings.webhook_tolerance_seconds)
    except stripe.SignatureVerificationError as exc:
        # The SDK says which: no valid v1 signature, or a timestamp outside the tolerance.
        raise SignatureRefusedError(f"Stripe-Signature: {exc.user_message or exc}") from None
    except (UnicodeDecodeError, ValueError):
        raise SignatureRefusedError("body: not a Stripe event (the body is not JSON)") from None
    event = json.loads(text)
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise SignatureRefusedError("body: not a Stripe event (no id or type)")
    return event


def _moment(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), tz=UTC)


class StripeWebhooks:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def process(self, event: dict[str, Any]) -> Receipt:
        event_id, type_ = event["id"], event["type"]
        async with self.sessionmaker() as session, session.begin():
            await apply_principal_scope(session, STRIPE)
            # Claimed before anything is applied: a concurrent delivery of the same event waits on
            # the claim's unique key, then finds it taken and applies nothing.
            if not await claim_event(session, event_id, type_, "processing"):
                return Receipt(event_id, True, "already processed")
            outcome = await self._apply(session, event) if type_ in INVOICE_EVENTS else f"ignored: {type_} is not used"
            await record_outcome(session, event_id, outcome)
        return Receipt(event_id, False, outcome)

    async def _apply(self, session: AsyncSession, event: dict[str, Any]) -> str:
        invoice = event.get("data", {}).get("object", {})
        customer = invoice.get("customer")
        if invoice.get("object") != "invoice" or not isinstance(customer, str):
            return "ignored: the event carries no invoice"
        found = await tenant_of_customer(session, customer)
        if found is None:
            return f"ignored: customer {customer} is not one of Andon's"
        tenant_id, partner_id = found
        tenant = TenantContext(tenant_id=TenantId(tenant_id), partner_id=partner_id, principal=STRIPE)
        await bind_tenant(session, tenant_id, STRIPE)
        repo = StripeInvoiceRepository(session, tenant)
        created = _moment(event["created"])
        row = await repo.by_stripe_id(invoice["id"])
        if row is not None and row.event_created > created:
            return f"kept invoice {invoice['id']}: a newer event was already applied"
        values = {
            "stripe_customer_id": customer,
            "status": str(invoice.get("status") or "draft"),
            "currency": str(invoice.get("currency") or "").upper()[:3],
            "total": int(invoice.get("total") or 0),
            "amount_due": int(invoice.get("amount_due") or 0),
            "amount_paid": int(invoice.get("amount_paid") or 0),
            "period": period_of(_moment(invoice.get("period_start") or event["created"])),
            "event_created": created,
            "last_event_type": event["type"],
        }
        if row is None:
            await repo.add(StripeInvoice(stripe_id=invoice["id"], **values))
        else:
            for name, value in values.items():
                setattr(row, name, value)
            await session.flush()
        return f"invoice {invoice['id']} {values['status']} in tenant {tenant_id}"


class StripeWebhookController(Controller):
    path = PATH
    tags = ["Billing"]

    @post(
        "/",
        # Public: Stripe proves itself by the signature, checked here, not by an API key.
        opt={"public": True},
        status_code=200,
        description=(
            "Stripe's events (invoice.finalized, invoice.paid, invoice.payment_failed), signed with the "
            "endpoint's secret in `Stripe-Signature`. A replayed event answers 200 with `duplicate: true` and "
            "changes nothing; a forged or stale signature is refused with 400."
        ),
    )
    async def receive(self, request: Request[Any, Any, Any], state: State) -> WebhookReceipt:
        settings: StripeSettings = state.settings.stripe
        event = verify(settings, await request.body(), request.headers.get("stripe-signature"))
        receipt = await StripeWebhooks(state.sessionmaker).process(event)
        return WebhookReceipt(event=receipt.event_id, duplicate=receipt.duplicate, outcome=receipt.outcome)
