"""The fake Stripe against the official SDK: what the sync relies on behaves as Stripe documents it
(form-encoded nested parameters, list paging, error envelopes and statuses, Idempotency-Key replay,
meter event identifiers, summaries by formula, webhook signatures the SDK accepts)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import stripe

from tests.support.contracts.server import serve
from tests.support.stripe_fake import API_KEY, StripeFake, decode_form

pytestmark = [
    pytest.mark.anyio,
    # The SDK's httpx transport posts its form body as bytes, which httpx 0.28 calls deprecated.
    pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning"),
]


@pytest.fixture
def fake() -> Iterator[StripeFake]:
    with serve(StripeFake()) as running:
        yield running


@pytest.fixture
async def client(fake: StripeFake) -> AsyncIterator[stripe.StripeClient]:
    http = stripe.HTTPXClient()
    yield stripe.StripeClient(API_KEY, base_addresses={"api": fake.url}, http_client=http, max_network_retries=0)
    await http.close_async()  # type: ignore[no-untyped-call]


def _p(values: dict[str, Any]) -> Any:
    return values


def test_nested_form_keys_decode_as_stripe_reads_them() -> None:
    pairs = [("metadata[a]", "1"), ("items[0][price]", "p1"), ("items[1][price]", "p2"), ("items[1][quantity]", "3")]
    assert decode_form(pairs) == {"metadata": {"a": "1"}, "items": [{"price": "p1"}, {"price": "p2", "quantity": "3"}]}


async def test_objects_round_trip_with_metadata_and_lists_page(client: stripe.StripeClient, fake: StripeFake) -> None:
    made = await client.v1.customers.create_async(_p({"name": "Acme", "metadata": {"andon_tenant_id": "t-1"}}))
    assert made.object == "customer" and made.id.startswith("cus_")
    sent = fake.api_requests()[-1]
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert b"metadata[andon_tenant_id]=t-1" in sent.body.replace(b"%5B", b"[").replace(b"%5D", b"]")
    again = await client.v1.customers.retrieve_async(made.id)
    assert again.metadata is not None and again.metadata["andon_tenant_id"] == "t-1" and again.name == "Acme"
    await client.v1.customers.update_async(made.id, _p({"name": "Acme GmbH", "metadata": {"andon_tenant_id": ""}}))
    changed = await client.v1.customers.retrieve_async(made.id)
    assert changed.name == "Acme GmbH" and "andon_tenant_id" not in (changed.metadata or {})
    for n in range(4):
        await client.v1.customers.create_async(_p({"name": f"c{n}"}))
    page = await client.v1.customers.list_async(_p({"limit": 2}))
    assert fake.last_body()["object"] == "list" and len(page.data) == 2 and page.has_more
    assert len([c.id async for c in page.auto_paging_iter()]) == 5


async def test_errors_come_in_stripes_envelope_with_its_statuses(client: stripe.StripeClient, fake: StripeFake) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        await client.v1.customers.retrieve_async("cus_nope")
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as invalid:
        await client.v1.products.create_async(_p({"metadata": {"x": "1"}}))
    assert invalid.value.http_status == 400 and invalid.value.param == "name"
    http = stripe.HTTPXClient()
    wrong = stripe.StripeClient("sk_test_wrong", base_addresses={"api": fake.url}, http_client=http)
    with pytest.raises(stripe.AuthenticationError):
        await wrong.v1.customers.list_async()
    await http.close_async()  # type: ignore[no-untyped-call]


async def test_an_idempotency_key_replays_its_first_answer_and_refuses_other_parameters(
    client: stripe.StripeClient, fake: StripeFake
) -> None:
    first = await client.v1.customers.create_async(_p({"name": "Once"}), {"idempotency_key": "k-1"})
    second = await client.v1.customers.create_async(_p({"name": "Once"}), {"idempotency_key": "k-1"})
    assert first.id == second.id and len(fake.objects["customer"]) == 1
    with pytest.raises(stripe.IdempotencyError):
        await client.v1.customers.create_async(_p({"name": "Other"}), {"idempotency_key": "k-1"})
    assert len(fake.objects["customer"]) == 1


async def test_prices_need_a_meter_when_metered_and_tiers_end_without_bound(client: stripe.StripeClient) -> None:
    product = await client.v1.products.create_async(_p({"name": "Plan"}))
    meter = await client.v1.billing.meters.create_async(
        _p({"display_name": "Runs", "event_name": "runs", "default_aggregation": {"formula": "sum"}})
    )
    with pytest.raises(stripe.InvalidRequestError) as unmetered:
        await client.v1.prices.create_async(
            _p(
                {
                    "currency": "eur",
                    "product": product.id,
                    "unit_amount_decimal": "0.5",
                    "recurring": {"interval": "month", "usage_type": "metered"},
                }
            )
        )
    assert unmetered.value.param == "recurring[meter]"
    tiered = await client.v1.prices.create_async(
        _p(
            {
                "currency": "eur",
                "product": product.id,
                "billing_scheme": "tiered",
                "tiers_mode": "graduated",
                "tiers": [{"up_to": 100, "unit_amount_decimal": "0"}, {"up_to": "inf", "unit_amount_decimal": "2.5"}],
                "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
            }
        )
    )
    assert tiered.tiers_mode == "graduated" and tiered.recurring is not None and tiered.recurring.meter == meter.id
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.billing.meters.create_async(
            _p({"display_name": "Again", "event_name": "runs", "default_aggregation": {"formula": "sum"}})
        )


async def test_meter_events_are_unique_by_identifier_and_summed_by_the_meters_formula(
    client: stripe.StripeClient, fake: StripeFake
) -> None:
    summed = await client.v1.billing.meters.create_async(
        _p({"display_name": "Runs", "event_name": "runs", "default_aggregation": {"formula": "sum"}})
    )
    last = await client.v1.billing.meters.create_async(
        _p({"display_name": "Seats", "event_name": "seats", "default_aggregation": {"formula": "last"}})
    )
    now = int(time.time())
    for ident, name, value, at in (
        ("a", "runs", 3, now - 60),
        ("b", "runs", 4, now - 30),
        ("c", "seats", 9, now - 90),
        ("d", "seats", 7, now - 10),
    ):
        await client.v1.billing.meter_events.create_async(
            _p(
                {
                    "event_name": name,
                    "identifier": ident,
                    "timestamp": at,
                    "payload": {"stripe_customer_id": "cus_1", "value": str(value)},
                }
            )
        )
    with pytest.raises(stripe.InvalidRequestError) as duplicate:
        await client.v1.billing.meter_events.create_async(
            _p({"event_name": "runs", "identifier": "a", "payload": {"stripe_customer_id": "cus_1", "value": "3"}})
        )
    assert "already exists with identifier a" in str(duplicate.value.user_message)
    with pytest.raises(stripe.InvalidRequestError) as stale:
        await client.v1.billing.meter_events.create_async(
            _p(
                {
                    "event_name": "runs",
                    "identifier": "e",
                    "timestamp": now - 36 * 86400,
                    "payload": {"stripe_customer_id": "cus_1", "value": "3"},
                }
            )
        )
    assert stale.value.param == "timestamp"
    window = {"customer": "cus_1", "start_time": (now // 60 - 10) * 60, "end_time": (now // 60 + 1) * 60}
    runs = await client.v1.billing.meters.event_summaries.list_async(summed.id, _p(window))
    seats = await client.v1.billing.meters.event_summaries.list_async(last.id, _p(window))
    assert [s.aggregated_value for s in runs.data] == [7.0]
    assert [s.aggregated_value for s in seats.data] == [7.0]
    other = await client.v1.billing.meters.event_summaries.list_async(summed.id, _p({**window, "customer": "cus_2"}))
    assert other.data[0].aggregated_value == 0.0
    assert len(fake.meter_events) == 4


def test_webhook_signatures_are_the_ones_the_sdk_verifies(fake: StripeFake) -> None:
    event = fake.event("invoice.paid", {"id": "in_1", "object": "invoice"})
    body, headers = fake.signed(event)
    verified = stripe.Webhook.construct_event(body.decode(), headers["stripe-signature"], fake.webhook_secret)
    assert verified.id == event["id"]
    forged, forged_headers = fake.signed(event, secret="whsec_someone_else")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(forged.decode(), forged_headers["stripe-signature"], fake.webhook_secret)
    old, old_headers = fake.signed(event, at=int(time.time()) - 3600)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.Webhook.construct_event(old.decode(), old_headers["stripe-signature"], fake.webhook_secret)
