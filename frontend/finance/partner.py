"""The partner's finance pages (``/partner/billing``, billing:read; changes need billing:write).

- The overview of a period: each customer's usage and live retail preview, the margin report
  (retail revenue against wholesale cost per customer, with a bar chart), what the operator will bill
  (the wholesale preview), the documents issued and received, and closing the period (refused with
  the date it may close from while usage may still arrive).
- A customer's page: its usage chart, the preview, its plan history and the plan change form (a plan
  of the partner's books from a date; a change inside a period shows as prorated lines).
- Price books and plans: the books with the newest version of each plan, a new book, and the plan
  form (items priced flat, per unit, graduated or volume with tiers, units included, a minimum, trial
  days). ``Plan`` and ``PriceBookService`` validate; their refusals come back next to the fields.

Amounts are typed in major units ("49.00") and stored in minor units; unit prices stay exact text."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery
from litestar.response import Response, Template

from andon.billing.invoices.service import InvoiceService, billing_tenant
from andon.billing.plans.schemas import PriceBookCreate, PriceBookRead, SubscriptionChange
from andon.billing.plans.service import PriceBookService, SubscriptionService, WholesaleSubscriptionService
from andon.billing.pricing.money import exponent, format_minor
from andon.billing.pricing.prices import Plan
from andon.billing.usage.meters import METERS
from andon.billing.usage.service import UsageService
from andon.frontend.customer.console import form_problems, refused
from andon.frontend.finance.chart import MarginBar, margin_chart
from andon.frontend.finance.common import (
    chosen_period,
    document_view,
    draft_view,
    money,
    recent_periods,
    usage_view,
)
from andon.frontend.flash import redirect_with_notice
from andon.frontend.pages import Form, page
from andon.frontend.partner.controllers import partner_staff_only
from andon.platform.auth.rbac import P
from andon.platform.db.scope import discard_changes
from andon.platform.http.errors import AndonError, NotFoundError
from andon.platform.http.params import Caller, DbSession, PathId
from andon.platform.tenancy.principal import Principal
from andon.tenants.orgs.models import Customer
from andon.tenants.orgs.service import CustomerService

BASE = "/partner/billing"
PRICE_TYPES = (
    ("flat", "Flat fee per period"),
    ("per_unit", "Per unit"),
    ("graduated", "Graduated tiers (each unit at its tier's price)"),
    ("volume", "Volume tiers (every unit at the reached tier's price)"),
)
TIERED = ("graduated", "volume")
ITEM_PARTS = ("title", "meter", "type", "amount", "unit_price", "included", "tiers")
PLAN_FIELDS = ("key", "name", "minimum", "trial_days")
# Blank item rows the plan form offers beyond the plan's own items.
SPARE_ROWS = 2
MIN_ROWS = 3
# The tier without end, as typed in the tiers box.
ENDLESS = ("*", "rest", "more")
# Customers listed on one overview; a partner with more pages through the API.
CUSTOMERS_SHOWN = 500
DOCUMENTS_SHOWN = 200
# Meters shown per customer on the overview (the customer's page shows them all).
OVERVIEW_METERS = ("events.ingested", "runs.started", "steps.executed")


def _partner_id(principal: Principal) -> uuid.UUID:
    assert principal.partner_id is not None  # partner_staff_only let only partner staff in
    return principal.partner_id


def item_field(row: int, part: str) -> str:
    return f"item-{row}-{part}"


# --- the plan form ---


def _minor(text: str, currency: str) -> int:
    """Major units as typed ("49.5") in minor units; ValueError with the reason when it cannot be."""
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        raise ValueError("a number such as 49.00") from None
    if value < 0:
        raise ValueError("never negative")
    places = exponent(currency)
    scaled = value.scaleb(places)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"at most {places} decimal places in {currency}")
    return int(scaled)


def _major(amount: int, currency: str) -> str:
    places = exponent(currency)
    return f"{Decimal(amount).scaleb(-places):.{places}f}"


def _tiers(text: str, currency: str) -> list[dict[str, Any]]:
    """One tier a line: its last unit (``*`` for the last, endless one), the unit price, optionally a
    flat fee in major units ("1000 0.01", "* 0.005 5.00")."""
    tiers: list[dict[str, Any]] = []
    for number, line in enumerate((ln for ln in text.splitlines() if ln.strip()), start=1):
        words = line.split()
        if len(words) not in (2, 3):
            raise ValueError(f"line {number}: write the last unit, the unit price and optionally a flat fee")
        up_to: int | None = None
        if words[0].lower() not in ENDLESS:
            if not words[0].replace(",", "").isdigit():
                raise ValueError(f"line {number}: the last unit is a whole number, or * for the last tier")
            up_to = int(words[0].replace(",", ""))
        tier: dict[str, Any] = {"up_to": up_to, "unit_price": words[1]}
        if len(words) == 3:
            try:
                tier["flat_fee"] = _minor(words[2], currency)
            except ValueError as exc:
                raise ValueError(f"line {number}: flat fee: {exc}") from None
        tiers.append(tier)
    if not tiers:
        raise ValueError("at least one tier, one a line")
    return tiers


def _tiers_text(tiers: list[dict[str, Any]], currency: str) -> str:
    lines = []
    for t in tiers:
        end = "*" if t.get("up_to") is None else str(t["up_to"])
        fee = f" {_major(t['flat_fee'], currency)}" if t.get("flat_fee") else ""
        lines.append(f"{end} {t.get('unit_price', '0')}{fee}")
    return "\n".join(lines)


def plan_values(document: Mapping[str, Any], currency: str) -> tuple[dict[str, str], int]:
    """A stored plan as the form's strings, and how many item rows it fills."""
    values = {
        "key": str(document["key"]),
        "name": str(document["name"]),
        "minimum": _major(int(document.get("minimum", 0)), currency),
        "trial_days": str(document.get("trial_days", 0)),
    }
    items = list(document["items"])
    for row, item in enumerate(items):
        price = item["price"]
        values |= {
            item_field(row, "title"): str(item["title"]),
            item_field(row, "meter"): str(item["meter"]),
            item_field(row, "type"): str(price["type"]),
            item_field(row, "amount"): _major(int(price["amount"]), currency) if price["type"] == "flat" else "",
            item_field(row, "unit_price"): str(price.get("unit_price", "")),
            item_field(row, "included"): str(price.get("included", "") or ""),
            item_field(row, "tiers"): _tiers_text(price["tiers"], currency) if price["type"] in TIERED else "",
        }
    return values, len(items)


def _item(row: int, values: Mapping[str, str], currency: str, errors: dict[str, str]) -> dict[str, Any]:
    kind = values[item_field(row, "type")]
    price: dict[str, Any] = {"type": kind}
    if kind == "flat":
        try:
            price["amount"] = _minor(values[item_field(row, "amount")] or "0", currency)
        except ValueError as exc:
            errors[item_field(row, "amount")] = str(exc)
    elif kind not in TIERED and kind != "per_unit":
        errors[item_field(row, "type")] = "choose a price type"
    if kind == "per_unit":
        price["unit_price"] = values[item_field(row, "unit_price")]
    if kind in TIERED:
        try:
            price["tiers"] = _tiers(values[item_field(row, "tiers")], currency)
        except ValueError as exc:
            errors[item_field(row, "tiers")] = str(exc)
    if kind != "flat":
        included = values[item_field(row, "included")] or "0"
        if included.isdigit():
            price["included"] = int(included)
        else:
            errors[item_field(row, "included")] = "a whole number of units"
    meter = values[item_field(row, "meter")]
    if kind != "flat" and not meter:
        errors[item_field(row, "meter")] = "a usage price needs the meter it prices"
    return {"meter": meter, "title": values[item_field(row, "title")], "price": price}


def read_plan_form(
    data: Mapping[str, str], currency: str
) -> tuple[dict[str, str], int, dict[str, Any], list[int], dict[str, str]]:
    """What was typed (to put back), the item rows offered, the plan as ``Plan`` takes it, the form
    row of each of its items, and what could not be read. A row without a title is left out."""
    values = {n: str(data.get(n, "")).strip() for n in PLAN_FIELDS}
    rows = 0
    while item_field(rows, "title") in data:
        rows += 1
    errors: dict[str, str] = {}
    items: list[dict[str, Any]] = []
    used: list[int] = []
    for row in range(rows):
        for part in ITEM_PARTS:
            name = item_field(row, part)
            raw = str(data.get(name, ""))
            values[name] = raw.replace("\r\n", "\n").strip() if part == "tiers" else raw.strip()
        if not values[item_field(row, "title")]:
            continue
        items.append(_item(row, values, currency, errors))
        used.append(row)
    if not items:
        errors[item_field(0, "title")] = "a plan prices at least one item: give it a title"
    plan: dict[str, Any] = {"key": values["key"], "name": values["name"], "currency": currency, "items": items}
    try:
        plan["minimum"] = _minor(values["minimum"] or "0", currency)
    except ValueError as exc:
        errors["minimum"] = str(exc)
    if values["trial_days"] and not values["trial_days"].isdigit():
        errors["trial_days"] = "a whole number of days"
    else:
        plan["trial_days"] = int(values["trial_days"] or 0)
    return values, max(rows, MIN_ROWS), plan, used, errors


_WHERE = re.compile(r"^\$?\.?items\[(\d+)\](?:\.(\w+))?(?:\.(\w+))?")


def plan_field(path: str, used: list[int], plan: Mapping[str, Any]) -> str:
    """A service or schema field path (``items[1].price.tiers``) as the plan form's field name."""
    match = _WHERE.match(path)
    if match is None:
        top = path.removeprefix("$.").split(".")[0].split("[")[0]
        return top if top in PLAN_FIELDS else ""
    index, part, sub = int(match.group(1)), match.group(2), match.group(3)
    row = used[index] if index < len(used) else 0
    if part in ("meter", "title"):
        return item_field(row, part)
    if part == "price" and sub in ("amount", "unit_price", "included", "tiers"):
        return item_field(row, sub)
    kind = plan["items"][index]["price"]["type"] if index < len(plan["items"]) else ""
    return item_field(row, "tiers" if kind in TIERED else "type")


def plan_problems(
    exc: AndonError | msgspec.ValidationError, used: list[int], plan: Mapping[str, Any]
) -> tuple[str, dict[str, str]]:
    if isinstance(exc, msgspec.ValidationError):
        text = str(exc)
        message, _, where = text.partition(" - at `")
        missing = re.match(r"^Object missing required field `([^`]+)`", text)
        if missing:
            message, where = "required", f"{where.rstrip('`')}.{missing.group(1)}"
        field = plan_field(where.rstrip("`"), used, plan)
        summary = "Some fields need your attention."
        _, plain = form_problems(msgspec.ValidationError(f"{message} - at `$.x`"))
        words = plain.get("x", message)
        return (summary, {field: words}) if field else (f"{summary} {words}", {})
    errors = exc.extra.get("errors", []) if isinstance(exc.extra, dict) else []
    fields: dict[str, str] = {}
    for e in errors:
        field = plan_field(str(e.get("field", "")), used, plan)
        if field:
            fields.setdefault(field, str(e.get("message", "")))
    return exc.detail, fields


# --- pages ---


async def _customer(db_session: DbSession, principal: Principal, customer_id: uuid.UUID) -> Customer:
    """One of the partner's own customers (another partner's does not exist here: 404)."""
    customer = await CustomerService(db_session, principal).get(customer_id)
    if customer.partner_id != principal.partner_id:
        raise NotFoundError(f"customer {customer_id} not found")
    return customer


async def _customers(db_session: DbSession, principal: Principal) -> list[Customer]:
    rows, _ = await CustomerService(db_session, principal).list(
        limit=CUSTOMERS_SHOWN, offset=0, q=None, partner_id=principal.partner_id
    )
    return sorted(rows, key=lambda c: c.name)


def _plan_choices(books: list[PriceBookRead]) -> list[tuple[str, str]]:
    return [
        (f"{b.id}:{p.key}", f"{b.name} · {p.name} (version {p.version}, {b.currency})") for b in books for p in b.plans
    ]


class PartnerBillingPageController(Controller):
    path = BASE
    tags = ["Partner console"]
    include_in_schema = False
    guards = [partner_staff_only]

    async def _overview(
        self, db_session: DbSession, principal: Principal, period: str, *, status: int = 200, **context: Any
    ) -> Template:
        partner_id = _partner_id(principal)
        service = InvoiceService(db_session, principal)
        margin = await service.margin(partner_id, period)
        customers = []
        for customer in await _customers(db_session, principal):
            totals = await UsageService(db_session, billing_tenant(customer, principal)).totals(period)
            customers.append((customer, {t.meter: t.quantity for t in totals}))
        rows = [
            {
                "customer_id": str(r.customer_id),
                "name": r.customer_name,
                "retail": money(r.retail_minor, r.retail_currency),
                "retail_source": r.retail_source,
                "wholesale": money(r.wholesale_minor, r.wholesale_currency),
                "wholesale_source": r.wholesale_source,
                "margin": "—"
                if r.margin_minor is None
                else money(r.margin_minor, r.retail_currency or r.wholesale_currency),
            }
            for r in margin.customers
        ]
        chart = margin_chart(
            [
                MarginBar(r.customer_name, r.retail_minor, r.wholesale_minor, row["retail"], row["wholesale"])
                for r, row in zip(margin.customers, rows, strict=True)
            ],
            label=f"Retail revenue and wholesale cost per customer, {period}",
        )
        documents = await (await service.partner_documents(partner_id)).list(limit=DOCUMENTS_SHOWN)
        return page(
            "finance/partner.html",
            status=status,
            principal=principal,
            period=period,
            periods=recent_periods(),
            customers=customers,
            meters=METERS,
            overview_meters=OVERVIEW_METERS,
            margin=rows,
            chart=chart,
            wholesale=draft_view(await service.wholesale_preview(partner_id, period)),
            documents=[document_view(d) for d in reversed(documents)],
            api=f"/api/v1/partners/{partner_id}",
            **context,
        )

    @get("/", opt={"permission": P.BILLING_READ})
    async def overview(
        self, db_session: DbSession, principal: Caller, period: FromQuery[str | None] = None
    ) -> Template:
        return await self._overview(db_session, principal, chosen_period(period))

    @post("/close", opt={"permission": P.BILLING_WRITE})
    async def close(self, db_session: DbSession, principal: Caller, state: State, data: Form) -> Response[Any]:
        period = str(data.get("period", "")).strip()
        if chosen_period(period) != period:
            return await self._overview(
                db_session, principal, chosen_period(None), status=422, close_error="Choose a period (YYYY-MM)."
            )
        try:
            created = await InvoiceService(db_session, principal).close(_partner_id(principal), period)
        except AndonError as exc:
            await discard_changes(db_session, principal)
            return await self._overview(db_session, principal, period, status=409, close_error=exc.detail)
        words = f"Closed {period}: {len(created)} invoice(s) issued." if created else f"{period} was already closed."
        return redirect_with_notice(state.settings, f"{BASE}?period={period}", words)

    async def _customer_page(
        self,
        db_session: DbSession,
        principal: Principal,
        customer: Customer,
        period: str,
        *,
        values: dict[str, str] | None = None,
        **context: Any,
    ) -> Template:
        tenant = billing_tenant(customer, principal)
        books = await PriceBookService(db_session, principal).list_books(_partner_id(principal))
        return page(
            "finance/partner_customer.html",
            principal=principal,
            customer=customer,
            period=period,
            periods=recent_periods(),
            usage=await usage_view(db_session, tenant, period, who=customer.name),
            preview=draft_view(await InvoiceService(db_session, principal).preview(tenant, period)),
            subscription=await SubscriptionService(db_session, tenant).read(),
            plans=_plan_choices(books),
            values=values or {},
            errors=context.pop("errors", {}),
            api=f"/api/v1/customers/{customer.id}",
            **context,
        )

    @get("/customers/{customer_id:uuid}", opt={"permission": P.BILLING_READ})
    async def customer(
        self, db_session: DbSession, principal: Caller, customer_id: PathId, period: FromQuery[str | None] = None
    ) -> Template:
        customer = await _customer(db_session, principal, customer_id)
        return await self._customer_page(db_session, principal, customer, chosen_period(period))

    @post("/customers/{customer_id:uuid}/subscription", opt={"permission": P.BILLING_WRITE})
    async def subscribe(
        self, db_session: DbSession, principal: Caller, state: State, customer_id: PathId, data: Form
    ) -> Response[Any]:
        customer = await _customer(db_session, principal, customer_id)
        values = {n: str(data.get(n, "")).strip() for n in ("plan", "at")}
        errors: dict[str, str] = {}
        book, _, key = values["plan"].partition(":")
        at: datetime | None = None
        if values["at"]:
            try:
                at = datetime.fromisoformat(values["at"]).replace(tzinfo=UTC)
            except ValueError:
                errors["at"] = "a date, YYYY-MM-DD"
        try:
            book_id = uuid.UUID(book)
        except ValueError:
            errors["plan"] = "choose a plan from the list"
        period = chosen_period(values["at"][:7] if at else None)
        if errors:
            return await self._customer_page(db_session, principal, customer, period, values=values, **refused(errors))
        try:
            tenant = await CustomerService(db_session, principal).open_tenant(customer.id)
            await SubscriptionService(db_session, tenant).change(
                SubscriptionChange(price_book_id=book_id, plan=key, at=at)
            )
        except (AndonError, msgspec.ValidationError) as exc:
            await discard_changes(db_session, principal)
            summary, fields = form_problems(exc, {"price_book_id": "plan", "version": "plan"})
            return await self._customer_page(
                db_session, principal, customer, period, values=values, **refused(fields, summary)
            )
        when = f"from {at:%Y-%m-%d}" if at else "from now"
        return redirect_with_notice(
            state.settings,
            f"{BASE}/customers/{customer.id}?period={period}",
            f"{customer.name} is on {key} {when}; the preview below shows the period with it.",
        )

    # --- price books and plans ---

    async def _books_page(self, db_session: DbSession, principal: Principal, **context: Any) -> Template:
        partner_id = _partner_id(principal)
        service = PriceBookService(db_session, principal)
        wholesale = await WholesaleSubscriptionService(db_session, principal).read(partner_id)
        return page(
            "finance/plans.html",
            principal=principal,
            books=await service.list_books(partner_id),
            wholesale=wholesale,
            money=format_minor,
            values=context.pop("values", {"currency": "EUR"}),
            errors=context.pop("errors", {}),
            **context,
        )

    @get("/plans", opt={"permission": P.BILLING_READ})
    async def books(self, db_session: DbSession, principal: Caller) -> Template:
        return await self._books_page(db_session, principal)

    @post("/plans", opt={"permission": P.BILLING_WRITE})
    async def create_book(self, db_session: DbSession, principal: Caller, state: State, data: Form) -> Response[Any]:
        values = {n: str(data.get(n, "")).strip() for n in ("key", "name", "currency")}
        values["currency"] = values["currency"].upper()
        try:
            book = await PriceBookService(db_session, principal).create(
                _partner_id(principal), msgspec.convert(values, PriceBookCreate)
            )
        except (AndonError, msgspec.ValidationError) as exc:
            await discard_changes(db_session, principal)
            summary, fields = form_problems(exc)
            return await self._books_page(db_session, principal, values=values, **refused(fields, summary))
        return redirect_with_notice(
            state.settings, f"{BASE}/plans/{book.id}/new", f"Created the price book {book.name}."
        )

    async def _book(self, db_session: DbSession, principal: Principal, book_id: uuid.UUID) -> PriceBookRead:
        return await PriceBookService(db_session, principal).get(_partner_id(principal), book_id)

    def _plan_form(
        self, principal: Principal, book: PriceBookRead, values: dict[str, str], rows: int, **context: Any
    ) -> Template:
        return page(
            "finance/plan_form.html",
            status=context.pop("status", 200),
            principal=principal,
            book=book,
            values=values,
            rows=rows,
            errors=context.pop("errors", {}),
            meters=[("", "No meter (a flat fee)")] + [(m.key, f"{m.title} ({m.key})") for m in METERS.values()],
            price_types=PRICE_TYPES,
            **context,
        )

    @get("/plans/{book_id:uuid}/new", opt={"permission": P.BILLING_WRITE})
    async def new_plan(self, db_session: DbSession, principal: Caller, book_id: PathId) -> Template:
        book = await self._book(db_session, principal, book_id)
        return self._plan_form(principal, book, {"minimum": "0", "trial_days": "0"}, MIN_ROWS, editing=False)

    @get("/plans/{book_id:uuid}/{key:str}", opt={"permission": P.BILLING_WRITE})
    async def edit_plan(
        self, db_session: DbSession, principal: Caller, book_id: PathId, key: FromPath[str]
    ) -> Template:
        book = await self._book(db_session, principal, book_id)
        latest = next((p for p in book.plans if p.key == key), None)
        if latest is None:
            raise NotFoundError(f"plan '{key}' not found")
        values, filled = plan_values(latest.document, book.currency)
        return self._plan_form(principal, book, values, filled + SPARE_ROWS, editing=True, version=latest.version)

    @post("/plans/{book_id:uuid}", opt={"permission": P.BILLING_WRITE})
    async def save_plan(
        self, db_session: DbSession, principal: Caller, state: State, book_id: PathId, data: Form
    ) -> Response[Any]:
        book = await self._book(db_session, principal, book_id)
        editing = data.get("editing") == "1"
        values, rows, raw, used, errors = read_plan_form(data, book.currency)
        if errors:
            return self._plan_form(principal, book, values, rows, editing=editing, **refused(errors))
        try:
            saved = await PriceBookService(db_session, principal).put_plan(
                _partner_id(principal), book.id, msgspec.convert(raw, Plan)
            )
        except (AndonError, msgspec.ValidationError) as exc:
            await discard_changes(db_session, principal)
            summary, fields = plan_problems(exc, used, raw)
            return self._plan_form(principal, book, values, rows, editing=editing, **refused(fields, summary))
        return redirect_with_notice(
            state.settings, f"{BASE}/plans#book-{book.id}", f"Saved {saved.name} as version {saved.version}."
        )


FINANCE_PARTNER_PAGES = [PartnerBillingPageController]
