"""Andon's billing objects pushed to Stripe, each created once and changed only when it changed.

Every object is keyed by its Andon id: a tenant's customer and subscriptions in ``stripe_links``, the
shared meters, products and prices in ``stripe_catalog``, each with a hash of what was sent. A run
that finds the same hash sends nothing; a changed customer, product or meter is updated in place, a
changed price (immutable in Stripe) is created anew and the old one archived. Creations carry an
Idempotency-Key derived from the object and its hash, so a run that died after Stripe created an
object but before Andon stored its id gets the same object back when run again.

Usage goes as meter events, each identified by its usage record's idempotency key (prefixed with
the tenant, whose keys are its own), so a record sent twice counts once in Stripe. A watermark on
``recorded_at`` makes the push resumable; each run looks back a little before it, because records
of concurrent writers commit slightly out of order, and Stripe drops the events it already has.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from andon.billing.pricing.money import exponent
from andon.billing.pricing.prices import FlatPrice, GraduatedPrice, PerUnitPrice, Plan, PlanItem, Tier, VolumePrice
from andon.billing.stripe.client import IDENTIFIER_MAX, params, stripe_sdk
from andon.billing.stripe.repository import (
    PushableUsage,
    StripeCatalog,
    StripeLinkRepository,
    StripeWatermarkRepository,
)
from andon.billing.usage.meters import METERS, Meter, period_end
from andon.billing.usage.service import UsageService
from andon.platform.db.types import utcnow
from andon.platform.http.errors import ConflictError, field_error
from andon.platform.tenancy.context import TenantContext

if TYPE_CHECKING:
    from stripe import StripeClient

STREAM = "meter_events"
OVERLAP = timedelta(minutes=10)
# Stripe refuses meter events older than this.
MAX_EVENT_AGE = timedelta(days=35)
BATCH = 500
# Meters Stripe can aggregate event by event; the others (max, last, distinct count) are sent as the
# period's value computed by Andon, to a Stripe meter that keeps the last value.
PER_EVENT = frozenset({"sum", "count"})
FORMULA = {"sum": "sum", "count": "count", "max": "last", "last": "last", "unique": "last"}
CUSTOMER = "customer"


@dataclass(frozen=True, slots=True)
class BillingCustomer:
    """Who a tenant is to Stripe."""

    name: str
    email: str | None = None


@dataclass(frozen=True, slots=True)
class BillingSubscription:
    """A tenant on a plan: Andon's subscription id, and the id of the plan (version) it is on."""

    andon_id: str
    plan_id: str
    plan: Plan


@dataclass
class SyncReport:
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    # What Stripe's objects cannot say (a plan's minimum commitment).
    notes: list[str] = field(default_factory=list)


@dataclass
class PushReport:
    sent: int = 0
    # Events Stripe already had (their identifier): a resent record that counts once.
    duplicates: int = 0
    gauges: int = 0
    # Idempotency keys of records too old for Stripe (reconciliation shows what they leave out).
    too_old: list[str] = field(default_factory=list)
    position: datetime | None = None


def fingerprint(values: Any) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def event_name(meter_key: str) -> str:
    return "andon_" + meter_key.replace(".", "_")


def identifier(tenant_id: object, key: str) -> str:
    """A meter event's identifier: the tenant and the usage record's idempotency key (hashed when
    together they pass Stripe's length limit)."""
    plain = f"{tenant_id}:{key}"
    if len(plain) <= IDENTIFIER_MAX:
        return plain
    return f"{tenant_id}:sha256:{hashlib.sha256(key.encode()).hexdigest()[:40]}"


def _decimal(unit_price: str, currency: str) -> str:
    """A unit price in the currency's minor unit as Stripe's ``unit_amount_decimal`` (exact text)."""
    return format(Decimal(unit_price).scaleb(exponent(currency)).normalize(), "f")


def _tiers(tiers: list[Tier], included: int, currency: str) -> list[dict[str, Any]]:
    # Included units are a free first tier, and every tier after it moves up by as many units.
    found: list[dict[str, Any]] = [{"up_to": included, "unit_amount_decimal": "0"}] if included else []
    for tier in tiers:
        found.append(
            {
                "up_to": "inf" if tier.up_to is None else tier.up_to + included,
                "unit_amount_decimal": _decimal(tier.unit_price, currency),
                "flat_amount": tier.flat_fee,
            }
        )
    return found


def price_values(
    plan_id: str, index: int, item: PlanItem, currency: str, product: str, meter: str | None
) -> dict[str, Any]:
    """The Stripe price for one plan item: a monthly licensed fee, or metered on the item's meter."""
    price = item.price
    values: dict[str, Any] = {
        "currency": currency.lower(),
        "product": product,
        "nickname": item.title,
        "metadata": {"andon_plan_id": plan_id, "andon_item": str(index), "andon_meter": item.meter},
    }
    if isinstance(price, FlatPrice):
        return {**values, "unit_amount": price.amount, "recurring": {"interval": "month", "usage_type": "licensed"}}
    if meter is None:
        raise field_error(f"plan.items[{index}].meter", "a usage price needs a meter")
    values["recurring"] = {"interval": "month", "usage_type": "metered", "meter": meter}
    if isinstance(price, PerUnitPrice):
        if not price.included:
            return {**values, "billing_scheme": "per_unit", "unit_amount_decimal": _decimal(price.unit_price, currency)}
        tiers = [Tier(up_to=None, unit_price=price.unit_price)]
        return {
            **values,
            "billing_scheme": "tiered",
            "tiers_mode": "graduated",
            **_tier_params(tiers, price.included, currency),
        }
    if isinstance(price, GraduatedPrice):
        return {
            **values,
            "billing_scheme": "tiered",
            "tiers_mode": "graduated",
            **_tier_params(price.tiers, price.included, currency),
        }
    assert isinstance(price, VolumePrice)
    if price.included:
        # Stripe prices every unit at the tier the whole quantity reaches, included units too.
        raise field_error(
            f"plan.items[{index}].price.included", "a volume price with included units cannot be expressed in Stripe"
        )
    return {**values, "billing_scheme": "tiered", "tiers_mode": "volume", **_tier_params(price.tiers, 0, currency)}


def _tier_params(tiers: list[Tier], included: int, currency: str) -> dict[str, Any]:
    return {"tiers": _tiers(tiers, included, currency)}


def meter_values(meter: Meter) -> dict[str, Any]:
    return {
        "display_name": f"Andon: {meter.title}",
        "event_name": event_name(meter.key),
        "default_aggregation": {"formula": FORMULA[meter.aggregation]},
        "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
        "value_settings": {"event_payload_key": "value"},
    }


def _key(kind: str, scope: str, andon_id: str, print_: str) -> str:
    digest = hashlib.sha256(f"{kind}\n{scope}\n{andon_id}\n{print_}".encode()).hexdigest()[:40]
    return f"andon-{kind}-{digest}"


class StripeSync:
    """One tenant's sync, inside the caller's transaction (it commits what was sent, with its ids)."""

    def __init__(self, client: StripeClient, session: AsyncSession, tenant: TenantContext) -> None:
        self.client = client
        self.session = session
        self.tenant = tenant
        self.links = StripeLinkRepository(session, tenant)
        self.catalog = StripeCatalog(session)
        self.report = SyncReport()

    # -- shared catalogue ------------------------------------------------------------------------
    async def ensure_meters(self) -> dict[str, str]:
        """A Stripe meter for each Andon meter; Andon meter key → Stripe meter id."""
        found: dict[str, str] = {}
        existing: dict[str, str] | None = None
        for meter in METERS.values():
            values = meter_values(meter)
            entry = await self.catalog.get("meter", meter.key)
            print_ = fingerprint(values)
            if entry is not None and entry.fingerprint == print_:
                self.report.unchanged["meter"] += 1
                found[meter.key] = entry.stripe_id
                continue
            if entry is not None:
                # Only the name of a meter may change; its event name and aggregation are fixed.
                await self.client.v1.billing.meters.update_async(
                    entry.stripe_id, params({"display_name": values["display_name"]})
                )
                self.report.updated["meter"] += 1
                stripe_id = entry.stripe_id
            else:
                if existing is None:
                    # An event name belongs to one meter for good: a meter made before this database
                    # knew it (restored from a backup) is adopted, not created again.
                    existing = {m.event_name: m.id async for m in await self._all_meters()}
                stripe_id = existing.get(values["event_name"]) or ""
                if not stripe_id:
                    made = await self.client.v1.billing.meters.create_async(
                        params(values), {"idempotency_key": _key("meter", "shared", meter.key, print_)}
                    )
                    stripe_id = made.id
                    self.report.created["meter"] += 1
            await self.catalog.put("meter", meter.key, stripe_id, print_)
            found[meter.key] = stripe_id
        return found

    async def _all_meters(self) -> Any:
        page = await self.client.v1.billing.meters.list_async(params({"limit": 100}))
        return page.auto_paging_iter()

    async def ensure_plan(self, plan_id: str, plan: Plan) -> list[str]:
        """A product for the plan and a price per item; the Stripe price id of each item, in order."""
        if plan.minimum:
            self.report.notes.append(
                f"plan {plan.key}: its minimum commitment is not a Stripe price; Stripe's invoices leave it out"
            )
        meters = await self.ensure_meters()
        product = await self._catalog_object(
            "product",
            plan_id,
            {"name": plan.name, "metadata": {"andon_plan_id": plan_id, "andon_plan_key": plan.key}},
            create=self.client.v1.products.create_async,
            update=self.client.v1.products.update_async,
        )
        prices: list[str] = []
        for index, item in enumerate(plan.items):
            if item.meter and item.meter not in meters:
                raise field_error(f"plan.items[{index}].meter", f"no meter '{item.meter}'")
            values = price_values(plan_id, index, item, plan.currency, product, meters.get(item.meter))
            prices.append(
                await self._catalog_object(
                    "price", f"{plan_id}:{index}", values, create=self.client.v1.prices.create_async, update=None
                )
            )
        return prices

    async def _catalog_object(
        self, kind: str, andon_id: str, values: dict[str, Any], *, create: Any, update: Any
    ) -> str:
        print_ = fingerprint(values)
        entry = await self.catalog.get(kind, andon_id)
        if entry is not None and entry.fingerprint == print_:
            self.report.unchanged[kind] += 1
            return entry.stripe_id
        if entry is not None and update is not None:
            await update(entry.stripe_id, params(values))
            self.report.updated[kind] += 1
            stripe_id = entry.stripe_id
        else:
            made = await create(params(values), {"idempotency_key": _key(kind, "shared", andon_id, print_)})
            stripe_id = made.id
            if entry is not None:
                # A price never changes in Stripe: the new one replaces it and the old one is archived.
                await self.client.v1.prices.update_async(entry.stripe_id, params({"active": False}))
                self.report.updated[kind] += 1
            else:
                self.report.created[kind] += 1
        await self.catalog.put(kind, andon_id, stripe_id, print_)
        return stripe_id

    # -- the tenant's own objects ----------------------------------------------------------------
    async def ensure_customer(self, customer: BillingCustomer) -> str:
        values: dict[str, Any] = {
            "name": customer.name,
            "metadata": {
                "andon_tenant_id": str(self.tenant.tenant_id),
                "andon_partner_id": str(self.tenant.partner_id),
            },
        }
        if customer.email:
            values["email"] = customer.email
        print_ = fingerprint(values)
        link = await self.links.get_link(CUSTOMER, str(self.tenant.tenant_id))
        if link is not None and link.fingerprint == print_:
            self.report.unchanged[CUSTOMER] += 1
            return link.stripe_id
        if link is not None:
            await self.client.v1.customers.update_async(link.stripe_id, params(values))
            self.report.updated[CUSTOMER] += 1
            stripe_id = link.stripe_id
        else:
            key = _key(CUSTOMER, str(self.tenant.tenant_id), str(self.tenant.tenant_id), print_)
            stripe_id = (await self.client.v1.customers.create_async(params(values), {"idempotency_key": key})).id
            self.report.created[CUSTOMER] += 1
        await self.links.put(CUSTOMER, str(self.tenant.tenant_id), stripe_id, print_)
        return stripe_id

    async def customer_id(self) -> str:
        link = await self.links.get_link(CUSTOMER, str(self.tenant.tenant_id))
        if link is None:
            raise ConflictError("this customer has no Stripe customer yet: sync the customer first")
        return link.stripe_id

    async def ensure_subscription(self, subscription: BillingSubscription) -> str:
        customer = await self.customer_id()
        prices = await self.ensure_plan(subscription.plan_id, subscription.plan)
        items: list[dict[str, Any]] = [
            {"price": price} if item.meter else {"price": price, "quantity": 1}
            for price, item in zip(prices, subscription.plan.items, strict=True)
        ]
        metadata = {
            "andon_subscription_id": subscription.andon_id,
            "andon_tenant_id": str(self.tenant.tenant_id),
            "andon_plan_id": subscription.plan_id,
        }
        values: dict[str, Any] = {
            "customer": customer,
            "items": items,
            "metadata": metadata,
            # Andon's periods are calendar months: Stripe's cycle turns on the 1st too.
            "billing_cycle_anchor_config": {"day_of_month": 1},
            "proration_behavior": "none",
        }
        if subscription.plan.trial_days:
            values["trial_period_days"] = subscription.plan.trial_days
        print_ = fingerprint(values)
        link = await self.links.get_link("subscription", subscription.andon_id)
        if link is not None and link.fingerprint == print_:
            self.report.unchanged["subscription"] += 1
            return link.stripe_id
        if link is not None:
            # Another plan: its prices replace the subscription's items, from the next invoice on.
            current = await self.client.v1.subscriptions.retrieve_async(link.stripe_id)
            changes = [{"id": old.id, "deleted": True} for old in current["items"].data]
            await self.client.v1.subscriptions.update_async(
                link.stripe_id,
                params({"items": [*changes, *items], "metadata": metadata, "proration_behavior": "none"}),
            )
            self.report.updated["subscription"] += 1
            stripe_id = link.stripe_id
        else:
            key = _key("subscription", str(self.tenant.tenant_id), subscription.andon_id, print_)
            stripe_id = (await self.client.v1.subscriptions.create_async(params(values), {"idempotency_key": key})).id
            self.report.created["subscription"] += 1
        await self.links.put("subscription", subscription.andon_id, stripe_id, print_)
        return stripe_id

    async def end_subscription(self, andon_id: str, at: datetime) -> str | None:
        """Ends a cancelled subscription in Stripe at the moment Andon's ends (``cancel_at``); the
        Stripe id, or None when it never reached Stripe."""
        link = await self.links.get_link("subscription", andon_id)
        if link is None:
            return None
        values = {"cancel_at": int(at.timestamp()), "proration_behavior": "none"}
        print_ = fingerprint(values)
        if link.fingerprint == print_:
            self.report.unchanged["subscription"] += 1
            return link.stripe_id
        await self.client.v1.subscriptions.update_async(link.stripe_id, params(values))
        self.report.updated["subscription"] += 1
        await self.links.put("subscription", andon_id, link.stripe_id, print_)
        return link.stripe_id

    # -- usage -----------------------------------------------------------------------------------
    async def push_usage(self, *, now: datetime | None = None) -> PushReport:
        """Sends the tenant's usage recorded since the watermark as meter events."""
        now = now or utcnow()
        customer = await self.customer_id()
        meters = {e.andon_id for e in await self.catalog.of_kind("meter")}
        usage = PushableUsage(self.session, self.tenant)
        marks = StripeWatermarkRepository(self.session, self.tenant)
        mark = await marks.position(STREAM)
        not_before = mark.position - OVERLAP if mark is not None else None
        report = PushReport()
        gauges: set[str] = set()
        after = None
        while batch := await usage.since(after, limit=BATCH, not_before=not_before):
            for record in batch:
                if record.meter not in meters:
                    raise ConflictError(f"meter {record.meter} has no Stripe meter yet: sync the meters first")
                if METERS[record.meter].aggregation not in PER_EVENT:
                    gauges.add(record.period)
                    continue
                # A late record counts in the period it arrived in, in Stripe as in Andon.
                at = record.recorded_at if record.late else record.occurred_at
                if at < now - MAX_EVENT_AGE:
                    report.too_old.append(record.idempotency_key)
                    continue
                await self._send(
                    report,
                    record.meter,
                    customer,
                    record.quantity,
                    at,
                    identifier(self.tenant.tenant_id, record.idempotency_key),
                )
            after = (batch[-1].recorded_at, batch[-1].id)
            await marks.advance(STREAM, batch[-1].recorded_at, len(batch))
            report.position = batch[-1].recorded_at
        for period in sorted(gauges):
            await self._send_gauges(report, customer, period, now)
        return report

    async def _send_gauges(self, report: PushReport, customer: str, period: str, now: datetime) -> None:
        # The period's value as Andon computes it; the latest event is the one Stripe keeps. Within
        # a past period the event sits at its last second.
        at = min(now, period_end(period) - timedelta(seconds=1))
        if at < now - MAX_EVENT_AGE:
            report.too_old.append(f"{period} gauges")
            return
        for total in await UsageService(self.session, self.tenant).totals(period):
            if METERS[total.meter].aggregation in PER_EVENT:
                continue
            # Records only ever add up: a value already sent on as many records is the same value
            # (Stripe drops it), a value that came back after another is a new event.
            key = f"{total.meter}:{period}:{total.quantity}:{total.records}"
            await self._send(report, total.meter, customer, total.quantity, at, identifier(self.tenant.tenant_id, key))
            report.gauges += 1

    async def _send(self, report: PushReport, meter: str, customer: str, value: int, at: datetime, ident: str) -> None:
        stripe = stripe_sdk()
        try:
            await self.client.v1.billing.meter_events.create_async(
                params(
                    {
                        "event_name": event_name(meter),
                        "identifier": ident,
                        "timestamp": int(at.timestamp()),
                        "payload": {"stripe_customer_id": customer, "value": str(value)},
                    }
                )
            )
        except stripe.InvalidRequestError as exc:
            # Stripe refuses an identifier it has seen (400, not to be retried) rather than ignoring it.
            if not str(exc.user_message or "").startswith("An event already exists with identifier"):
                raise
            report.duplicates += 1
            return
        report.sent += 1
