"""Stripe's API, the part Andon's sync uses, over a real socket, in Stripe's wire format.

Requests are form-encoded with nested keys (``metadata[k]=v``, ``items[0][price]=...``) and carry
``Authorization: Bearer <secret key>``; answers are JSON objects with ``id`` and ``object``, lists are
``{"object": "list", "data", "has_more", "url"}`` paged by ``starting_after``, errors are
``{"error": {"type", "code", "message", "param"}}`` (400 invalid request, 401 bad key, 404 missing).
A POST's ``Idempotency-Key`` replays the first answer (``Idempotent-Replayed: true``) and refuses the
same key with other parameters (``idempotency_error``). A meter event whose ``identifier`` was seen
before is refused (400 "An event already exists with identifier ..."), as Stripe does. Meter event
summaries aggregate the events by the meter's formula (sum, count, last). Invoices are made by the
test (``invoice``), priced from the subscription's prices and the meters' summaries like Stripe does
(``invoice_for``), and webhook events are signed with the endpoint's secret (``signed``).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import time
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support.contracts.server import ContractFake, query_of
from tests.support.vendor_fake import Scripted, Seen

API_KEY = "sk_test_51AndonFakeStripeKey0000"
WEBHOOK_SECRET = "whsec_andon_fake_signing_secret_0001"
MAX_AGE = 35 * 86400
MAX_AHEAD = 5 * 60


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``a[b][0][c]=v`` → ``{"a": {"b": [{"c": "v"}]}}`` (how Stripe reads its form bodies)."""
    root: dict[str, Any] = {}
    for name, value in pairs:
        parts = re.findall(r"[^\[\]]+", name)
        node: Any = root
        for part, following in itertools.pairwise(parts):
            child: Any = [] if following.isdigit() else {}
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append(None)
                if node[index] is None:
                    node[index] = child
                node = node[index]
            else:
                node = node.setdefault(part, child)
        last = parts[-1]
        if isinstance(node, list):
            index = int(last)
            while len(node) <= index:
                node.append(None)
            node[index] = value
        else:
            node[last] = value
    return root


class StripeError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.type = "invalid_request_error"


class StripeFake(ContractFake):
    idempotent = False  # Stripe's own replay rules are below

    def __init__(self) -> None:
        super().__init__("bearer")
        self.bearer = API_KEY
        self.webhook_secret = WEBHOOK_SECRET
        self.objects: dict[str, dict[str, dict[str, Any]]] = {
            k: {} for k in ("customer", "product", "price", "billing.meter", "subscription", "invoice")
        }
        self.meter_events: list[dict[str, Any]] = []
        self.sent: list[Any] = []
        self.identifiers: set[str] = set()
        self.idempotency: dict[str, tuple[str, Scripted]] = {}
        self.counter = itertools.count(1)
        for kind, path, prefix in (
            ("customer", "customers", "cus"),
            ("product", "products", "prod"),
            ("price", "prices", "price"),
            ("billing.meter", "billing/meters", "mtr"),
            ("subscription", "subscriptions", "sub"),
        ):
            self.route("POST", f"/v1/{path}", self._creator(kind, prefix))
            self.route("GET", f"/v1/{path}", self._lister(kind))
            self.route("GET", f"/v1/{path}/(?P<id>[A-Za-z0-9_]+)", self._retriever(kind))
            self.route("POST", f"/v1/{path}/(?P<id>[A-Za-z0-9_]+)", self._updater(kind))
        self.route("POST", "/v1/billing/meter_events", self._meter_event)
        self.route("GET", "/v1/billing/meters/(?P<id>[A-Za-z0-9_]+)/event_summaries", self._summaries)
        self.route("GET", "/v1/invoices", self._lister("invoice"))
        self.route("GET", "/v1/invoices/(?P<id>[A-Za-z0-9_]+)", self._retriever("invoice"))

    # -- wire format -------------------------------------------------------------------------------
    def error(self, status: int, message: str, code: str | None = None, param: str | None = None) -> Scripted:
        kind = "idempotency_error" if code == "idempotency_key_in_use" else "invalid_request_error"
        body: dict[str, Any] = {"type": kind, "message": message}
        if code:
            body["code"] = code
        if param:
            body["param"] = param
        return Scripted(status, {"error": body}, headers={"request-id": f"req_{next(self.counter):08d}"})

    def answer(self, seen: Seen) -> Scripted:
        with self.lock:
            self.requests.append(seen)
            if seen.headers.get("authorization") != f"Bearer {self.bearer}":
                masked = seen.headers.get("authorization", "").removeprefix("Bearer ")[-4:]
                return self.error(401, f"Invalid API Key provided: sk_test_****{masked}")
            if self.failures:
                return self.failures.pop(0)
            key = seen.headers.get("idempotency-key")
            signature = f"{seen.method} {urlsplit(seen.path).path} {sorted(parse_qsl(seen.body.decode()))}"
            if key and seen.method == "POST" and key in self.idempotency:
                first, answer = self.idempotency[key]
                if first != signature:
                    return self.error(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with. Try using a key other than '{key}' if you meant to execute a different request.",
                        code="idempotency_key_in_use",
                    )
                return Scripted(answer.status, answer.body, headers={**answer.headers, "Idempotent-Replayed": "true"})
            path = urlsplit(seen.path).path
            for method, pattern, handler in self.routes:
                found = pattern.match(path)
                if found and method == seen.method:
                    try:
                        answer = handler(seen, found.groupdict())
                    except StripeError as exc:
                        # Parameters that fail validation are not kept for the key (Stripe's rule).
                        return self.error(exc.status, exc.message, exc.code, exc.param)
                    break
            else:
                return self.error(404, f"Unrecognized request URL ({seen.method}: {path}).")
            if key and seen.method == "POST":
                self.idempotency[key] = (signature, answer)
            self.sent.append(answer.body)
            return answer

    def last_body(self) -> Any:
        """The JSON of the last answer sent (what the SDK parsed)."""
        with self.lock:
            return json.loads(json.dumps(self.sent[-1]))

    def _form(self, seen: Seen) -> dict[str, Any]:
        return decode_form(parse_qsl(seen.body.decode(), keep_blank_values=True))

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self.counter):014d}Fk"

    def _get(self, kind: str, id_: str, param: str = "id") -> dict[str, Any]:
        found = self.objects[kind].get(id_)
        if found is None:
            raise StripeError(404, f"No such {kind.split('.')[-1]}: '{id_}'", code="resource_missing", param=param)
        return found

    # -- generic resources -------------------------------------------------------------------------
    def _creator(self, kind: str, prefix: str) -> Any:
        def create(seen: Seen, _: dict[str, str]) -> Scripted:
            form = self._form(seen)
            obj: dict[str, Any] = {
                "id": self._new_id(prefix),
                "object": kind,
                "created": int(time.time()),
                "livemode": False,
            }
            obj.update(getattr(self, f"_make_{kind.replace('.', '_')}")(form))
            self.objects[kind][obj["id"]] = obj
            return Scripted(200, obj)

        return create

    def _retriever(self, kind: str) -> Any:
        return lambda seen, found: Scripted(200, self._get(kind, found["id"]))

    def _updater(self, kind: str) -> Any:
        def update(seen: Seen, found: dict[str, str]) -> Scripted:
            obj = self._get(kind, found["id"])
            form = self._form(seen)
            getattr(self, f"_update_{kind.replace('.', '_')}")(obj, form)
            return Scripted(200, obj)

        return update

    def _lister(self, kind: str) -> Any:
        def list_(seen: Seen, _: dict[str, str]) -> Scripted:
            query = query_of(seen)
            items = sorted(self.objects[kind].values(), key=lambda o: o["id"])
            if "customer" in query:
                items = [o for o in items if o.get("customer") == query["customer"]]
            if "starting_after" in query:
                items = [o for o in items if o["id"] > query["starting_after"]]
            limit = int(query.get("limit", 10))
            if not 1 <= limit <= 100:
                raise StripeError(400, "This value must be between 1 and 100.", param="limit")
            url = urlsplit(seen.path).path
            return Scripted(200, {"object": "list", "data": items[:limit], "has_more": len(items) > limit, "url": url})

        return list_

    @staticmethod
    def _metadata(obj: dict[str, Any], form: dict[str, Any]) -> None:
        for name, value in form.get("metadata", {}).items():
            if value == "":
                obj["metadata"].pop(name, None)  # Stripe unsets a key sent empty
            else:
                obj["metadata"][name] = value

    # -- customers, products, prices ---------------------------------------------------------------
    def _make_customer(self, form: dict[str, Any]) -> dict[str, Any]:
        obj: dict[str, Any] = {"name": form.get("name"), "email": form.get("email"), "metadata": {}}
        self._metadata(obj, form)
        return obj

    def _update_customer(self, obj: dict[str, Any], form: dict[str, Any]) -> None:
        for name in ("name", "email"):
            if name in form:
                obj[name] = form[name] or None
        self._metadata(obj, form)

    def _make_product(self, form: dict[str, Any]) -> dict[str, Any]:
        if not form.get("name"):
            raise StripeError(400, "Missing required param: name.", code="parameter_missing", param="name")
        obj: dict[str, Any] = {"name": form["name"], "active": True, "metadata": {}}
        self._metadata(obj, form)
        return obj

    def _update_product(self, obj: dict[str, Any], form: dict[str, Any]) -> None:
        if "name" in form:
            obj["name"] = form["name"]
        self._metadata(obj, form)

    def _make_price(self, form: dict[str, Any]) -> dict[str, Any]:
        for name in ("currency", "product"):
            if not form.get(name):
                raise StripeError(400, f"Missing required param: {name}.", code="parameter_missing", param=name)
        self._get("product", form["product"], "product")
        recurring = form.get("recurring") or None
        scheme = form.get("billing_scheme", "per_unit")
        obj: dict[str, Any] = {
            "active": True,
            "currency": form["currency"],
            "product": form["product"],
            "nickname": form.get("nickname"),
            "billing_scheme": scheme,
            "type": "recurring" if recurring else "one_time",
            "metadata": {},
            "unit_amount": None,
            "unit_amount_decimal": None,
            "tiers_mode": None,
            "tiers": None,
            "recurring": None,
        }
        self._metadata(obj, form)
        if recurring:
            usage = recurring.get("usage_type", "licensed")
            meter = recurring.get("meter")
            if usage == "metered" and not meter:
                raise StripeError(
                    400, "Metered prices must be backed by a meter.", code="parameter_missing", param="recurring[meter]"
                )
            if meter:
                self._get("billing.meter", meter, "recurring[meter]")
            obj["recurring"] = {
                "interval": recurring.get("interval"),
                "interval_count": 1,
                "usage_type": usage,
                "meter": meter,
            }
        if scheme == "tiered":
            tiers = form.get("tiers") or []
            if form.get("tiers_mode") not in ("graduated", "volume") or not tiers:
                raise StripeError(400, "Tiered prices need tiers and a tiers_mode.", param="tiers_mode")
            if tiers[-1].get("up_to") != "inf":
                raise StripeError(400, "The last tier must have up_to set to 'inf'.", param="tiers")
            obj["tiers_mode"] = form["tiers_mode"]
            obj["tiers"] = [
                {
                    "up_to": None if t["up_to"] == "inf" else int(t["up_to"]),
                    "unit_amount_decimal": t.get("unit_amount_decimal", t.get("unit_amount", "0")),
                    "flat_amount": int(t.get("flat_amount", 0)),
                }
                for t in tiers
            ]
        elif "unit_amount" in form:
            obj["unit_amount"] = int(form["unit_amount"])
            obj["unit_amount_decimal"] = form["unit_amount"]
        elif "unit_amount_decimal" in form:
            obj["unit_amount_decimal"] = form["unit_amount_decimal"]
        else:
            raise StripeError(
                400, "Missing required param: unit_amount.", code="parameter_missing", param="unit_amount"
            )
        return obj

    def _update_price(self, obj: dict[str, Any], form: dict[str, Any]) -> None:
        changeable = {"active", "nickname", "metadata"}
        for name in form:
            if name not in changeable:
                raise StripeError(400, f"Received unknown parameter: {name}", param=name)
        if "active" in form:
            obj["active"] = form["active"] == "true"
        if "nickname" in form:
            obj["nickname"] = form["nickname"]
        self._metadata(obj, form)

    # -- meters and meter events -------------------------------------------------------------------
    def _make_billing_meter(self, form: dict[str, Any]) -> dict[str, Any]:
        for name in ("display_name", "event_name"):
            if not form.get(name):
                raise StripeError(400, f"Missing required param: {name}.", code="parameter_missing", param=name)
        formula = (form.get("default_aggregation") or {}).get("formula")
        if formula not in ("sum", "count", "last"):
            raise StripeError(400, "Invalid default_aggregation[formula].", param="default_aggregation[formula]")
        if any(m["event_name"] == form["event_name"] for m in self.objects["billing.meter"].values()):
            raise StripeError(
                400,
                f"An active meter with event_name `{form['event_name']}` already exists.",
                code="resource_already_exists",
                param="event_name",
            )
        mapping = form.get("customer_mapping") or {"event_payload_key": "stripe_customer_id", "type": "by_id"}
        values = form.get("value_settings") or {"event_payload_key": "value"}
        return {
            "display_name": form["display_name"],
            "event_name": form["event_name"],
            "default_aggregation": {"formula": formula},
            "customer_mapping": mapping,
            "value_settings": values,
            "status": "active",
            "event_time_window": None,
        }

    def _update_billing_meter(self, obj: dict[str, Any], form: dict[str, Any]) -> None:
        for name in form:
            if name != "display_name":
                raise StripeError(400, f"Received unknown parameter: {name}", param=name)
        obj["display_name"] = form["display_name"]

    def _meter_event(self, seen: Seen, _: dict[str, str]) -> Scripted:
        form = self._form(seen)
        if not form.get("event_name"):
            raise StripeError(400, "Missing required param: event_name.", code="parameter_missing", param="event_name")
        payload = form.get("payload") or {}
        meter = next((m for m in self.objects["billing.meter"].values() if m["event_name"] == form["event_name"]), None)
        customer_key = (meter or {}).get("customer_mapping", {}).get("event_payload_key", "stripe_customer_id")
        value_key = (meter or {}).get("value_settings", {}).get("event_payload_key", "value")
        if customer_key not in payload:
            raise StripeError(
                400, f"Missing required param: payload[{customer_key}].", param=f"payload[{customer_key}]"
            )
        now = int(time.time())
        stamp = int(form.get("timestamp", now))
        if stamp < now - MAX_AGE or stamp > now + MAX_AHEAD:
            raise StripeError(
                400,
                "Timestamp must be within the past 35 days and no more than 5 minutes in the future.",
                param="timestamp",
            )
        identifier = form.get("identifier") or f"auto_{next(self.counter)}"
        if identifier in self.identifiers:
            raise StripeError(400, f"An event already exists with identifier {identifier}.", param="identifier")
        self.identifiers.add(identifier)
        event = {
            "object": "billing.meter_event",
            "created": now,
            "event_name": form["event_name"],
            "identifier": identifier,
            "livemode": False,
            "payload": payload,
            "timestamp": stamp,
        }
        self.meter_events.append(
            {**event, "customer": payload[customer_key], "value": Decimal(payload.get(value_key, "1"))}
        )
        return Scripted(200, event)

    def aggregate(self, meter_id: str, customer: str, start: int, end: int) -> Decimal:
        meter = self._get("billing.meter", meter_id)
        events = [
            e
            for e in self.meter_events
            if e["event_name"] == meter["event_name"] and e["customer"] == customer and start <= e["timestamp"] < end
        ]
        formula = meter["default_aggregation"]["formula"]
        if formula == "count":
            return Decimal(len(events))
        if formula == "last":
            # The latest by timestamp; of events at the same second, the one received last.
            return (
                max(enumerate(events), key=lambda pair: (pair[1]["timestamp"], pair[0]))[1]["value"]
                if events
                else Decimal(0)
            )
        return sum((e["value"] for e in events), Decimal(0))

    def _summaries(self, seen: Seen, found: dict[str, str]) -> Scripted:
        query = query_of(seen)
        for name in ("customer", "start_time", "end_time"):
            if name not in query:
                raise StripeError(400, f"Missing required param: {name}.", code="parameter_missing", param=name)
        start, end = int(query["start_time"]), int(query["end_time"])
        if start % 60 or end % 60:
            raise StripeError(400, "start_time and end_time must be aligned to minute boundaries.", param="start_time")
        value = self.aggregate(found["id"], query["customer"], start, end)
        summary = {
            "id": f"mtrusg_{found['id']}_{start}",
            "object": "billing.meter_event_summary",
            "aggregated_value": float(value),
            "start_time": start,
            "end_time": end,
            "livemode": False,
            "meter": found["id"],
        }
        url = urlsplit(seen.path).path
        return Scripted(200, {"object": "list", "data": [summary], "has_more": False, "url": url})

    # -- subscriptions and invoices ----------------------------------------------------------------
    def _items(self, sub_id: str, wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        items = []
        currencies = set()
        for index, item in enumerate(wanted):
            price = self._get("price", item.get("price", ""), f"items[{index}][price]")
            if not price["active"]:
                raise StripeError(
                    400, f"The price specified is inactive: {price['id']}", param=f"items[{index}][price]"
                )
            metered = (price["recurring"] or {}).get("usage_type") == "metered"
            if metered and "quantity" in item:
                raise StripeError(
                    400,
                    "Quantity should not be specified where usage_type is `metered`.",
                    param=f"items[{index}][quantity]",
                )
            currencies.add(price["currency"])
            items.append(
                {
                    "id": self._new_id("si"),
                    "object": "subscription_item",
                    "price": price,
                    "quantity": None if metered else int(item.get("quantity", 1)),
                    "subscription": sub_id,
                }
            )
        if len(currencies) > 1:
            raise StripeError(400, "All prices on a subscription must have the same currency.", param="items")
        return items

    def _make_subscription(self, form: dict[str, Any]) -> dict[str, Any]:
        customer = self._get("customer", form.get("customer", ""), "customer")
        sub_id = self._new_id("sub")
        items = self._items(sub_id, form.get("items") or [])
        if not items:
            raise StripeError(400, "Missing required param: items.", code="parameter_missing", param="items")
        obj: dict[str, Any] = {
            "customer": customer["id"],
            "status": "trialing" if form.get("trial_period_days") else "active",
            "items": {
                "object": "list",
                "data": items,
                "has_more": False,
                "url": f"/v1/subscription_items?subscription={sub_id}",
            },
            "metadata": {},
            "billing_cycle_anchor_config": form.get("billing_cycle_anchor_config"),
        }
        self._metadata(obj, form)
        # The id the items were made for.
        obj["id"] = sub_id
        return obj

    def _update_subscription(self, obj: dict[str, Any], form: dict[str, Any]) -> None:
        keep = list(obj["items"]["data"])
        added = []
        for index, item in enumerate(form.get("items") or []):
            if "id" in item:
                if not any(i["id"] == item["id"] for i in keep):
                    raise StripeError(404, f"No such subscription item: '{item['id']}'", param=f"items[{index}][id]")
                if item.get("deleted") == "true":
                    keep = [i for i in keep if i["id"] != item["id"]]
            else:
                added.append(item)
        obj["items"]["data"] = keep + self._items(obj["id"], added)
        self._metadata(obj, form)

    def invoice_for(self, subscription_id: str, start: int, end: int) -> int:
        """What Stripe charges for one cycle: each licensed price times its quantity, each metered
        price on its meter's aggregate over the cycle (per unit, graduated or volume tiers)."""
        sub = self._get("subscription", subscription_id)
        total = Decimal(0)
        for item in sub["items"]["data"]:
            price = item["price"]
            if price["recurring"]["usage_type"] == "licensed":
                total += Decimal(price["unit_amount_decimal"]) * item["quantity"]
                continue
            quantity = self.aggregate(price["recurring"]["meter"], sub["customer"], start, end)
            if price["billing_scheme"] == "per_unit":
                total += Decimal(price["unit_amount_decimal"]) * quantity
                continue
            tiers = price["tiers"]
            if price["tiers_mode"] == "volume":
                tier = next(t for t in tiers if t["up_to"] is None or quantity <= t["up_to"])
                total += Decimal(tier["unit_amount_decimal"]) * quantity + tier["flat_amount"]
                continue
            low = Decimal(0)
            for tier in tiers:
                high = quantity if tier["up_to"] is None else min(quantity, Decimal(tier["up_to"]))
                if high > low:
                    total += Decimal(tier["unit_amount_decimal"]) * (high - low) + tier["flat_amount"]
                low = max(low, high)
        # Stripe rounds the invoice's amounts to whole minor units.
        return int(total.quantize(Decimal(1)))

    def invoice(
        self, subscription_id: str, start: int, end: int, *, status: str = "open", total: int | None = None
    ) -> dict[str, Any]:
        """An invoice for a cycle, as Stripe makes it at the cycle's end (``total`` forces another amount)."""
        sub = self._get("subscription", subscription_id)
        amount = self.invoice_for(subscription_id, start, end) if total is None else total
        with self.lock:
            obj = {
                "id": self._new_id("in"),
                "object": "invoice",
                "created": int(time.time()),
                "livemode": False,
                "customer": sub["customer"],
                "currency": sub["items"]["data"][0]["price"]["currency"],
                "status": status,
                "total": amount,
                "subtotal": amount,
                "amount_due": amount,
                "amount_paid": amount if status == "paid" else 0,
                "amount_remaining": 0 if status == "paid" else amount,
                "period_start": start,
                "period_end": end,
                "parent": {"type": "subscription_details", "subscription_details": {"subscription": subscription_id}},
                "metadata": {},
            }
            self.objects["invoice"][obj["id"]] = obj
        return obj

    # -- webhooks ----------------------------------------------------------------------------------
    def event(self, type_: str, obj: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
        return {
            "id": self._new_id("evt"),
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": created or int(time.time()),
            "data": {"object": json.loads(json.dumps(obj))},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type_,
        }

    def signed(
        self, event: dict[str, Any], *, at: int | None = None, secret: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The delivery Stripe would POST: the event's JSON and its ``Stripe-Signature`` header."""
        body = json.dumps(event, indent=2).encode()
        stamp = at or int(time.time())
        mac = hmac.new((secret or self.webhook_secret).encode(), f"{stamp}.".encode() + body, hashlib.sha256)
        return body, {"stripe-signature": f"t={stamp},v1={mac.hexdigest()}", "content-type": "application/json"}
