"""Property tests of rating: graduated and volume tiers, included quantities, proration at any change
date, and documents whose lines add up to their total with no rounding drift."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from andon.billing.pricing.money import allocate, format_minor, round_half_even, unit_price_minor
from andon.billing.pricing.prices import FlatPrice, GraduatedPrice, PerUnitPrice, Plan, PlanItem, Tier, VolumePrice
from andon.billing.pricing.rating import exact_lines, item_lines, period_share, rate

CURRENCIES = st.sampled_from(["EUR", "USD", "JPY"])
# Unit prices as a price book writes them: up to 6 decimals, some below a cent.
UNIT_PRICES = st.decimals(min_value=0, max_value=Decimal("50"), places=6, allow_nan=False, allow_infinity=False).map(
    lambda d: format(d.normalize(), "f")
)


@st.composite
def tiers(draw: st.DrawFn) -> list[Tier]:
    ends = sorted(draw(st.sets(st.integers(min_value=1, max_value=1500), min_size=0, max_size=4)))
    bounds: list[int | None] = [*ends, None]
    return [
        Tier(up_to=end, unit_price=draw(UNIT_PRICES), flat_fee=draw(st.integers(min_value=0, max_value=5000)))
        for end in bounds
    ]


def _unit_price_at(tier_list: list[Tier], unit: int) -> Tier:
    return next(t for t in tier_list if t.up_to is None or unit <= t.up_to)


@settings(max_examples=300)
@given(tiers(), st.integers(min_value=0, max_value=2000), st.integers(min_value=0, max_value=300), CURRENCIES)
def test_graduated_prices_each_unit_at_its_tier(
    tier_list: list[Tier], quantity: int, included: int, currency: str
) -> None:
    item = PlanItem(meter="events", title="Events", price=GraduatedPrice(tiers=tier_list, included=included))
    lines = item_lines(item, quantity, currency)
    billable = max(0, quantity - included)
    assert sum(line.quantity for line in lines if line.unit_price is not None) == billable
    # Unit by unit, as a person would reckon it.
    expected = sum(
        (unit_price_minor(_unit_price_at(tier_list, u).unit_price, currency) for u in range(1, billable + 1)),
        Fraction(0),
    )
    touched = {id(_unit_price_at(tier_list, u)) for u in range(1, billable + 1)}
    expected += sum(t.flat_fee for t in tier_list if id(t) in touched)
    assert sum((line.exact for line in lines), Fraction(0)) == expected


@settings(max_examples=300)
@given(tiers(), st.integers(min_value=0, max_value=5000), st.integers(min_value=0, max_value=300), CURRENCIES)
def test_volume_prices_every_unit_at_the_tier_the_quantity_reaches(
    tier_list: list[Tier], quantity: int, included: int, currency: str
) -> None:
    item = PlanItem(meter="events", title="Events", price=VolumePrice(tiers=tier_list, included=included))
    lines = item_lines(item, quantity, currency)
    billable = max(0, quantity - included)
    if not billable:
        assert lines == []
        return
    tier = _unit_price_at(tier_list, billable)
    assert (
        sum((line.exact for line in lines), Fraction(0))
        == billable * unit_price_minor(tier.unit_price, currency) + tier.flat_fee
    )


@given(st.integers(min_value=0, max_value=10**7), st.integers(min_value=0, max_value=10**6), UNIT_PRICES)
def test_included_units_are_free(quantity: int, included: int, price: str) -> None:
    item = PlanItem(meter="runs", title="Runs", price=PerUnitPrice(unit_price=price, included=included))
    lines = item_lines(item, quantity, "EUR")
    assert sum(line.quantity for line in lines) == max(0, quantity - included)


@given(st.lists(st.fractions(min_value=-(10**6), max_value=10**6, max_denominator=10**4), max_size=200))
def test_rounding_is_spread_so_lines_add_up_to_the_total_rounded_once(exact: list[Fraction]) -> None:
    amounts = allocate(exact)
    if not exact:
        assert amounts == []
        return
    assert sum(amounts) == round_half_even(sum(exact, Fraction(0)))
    assert all(abs(a - e) < 1 for a, e in zip(amounts, exact, strict=True))
    assert allocate(exact) == amounts  # the same document always rounds the same way


def test_ten_thousand_sub_cent_lines_do_not_drift() -> None:
    # Rounding each line on its own would give 0 cents 10,000 times (or 1 cent: +67 %); spread, the
    # document is within half a cent of the exact 33.00.
    exact = [unit_price_minor("0.0033", "EUR")] * 10_000
    amounts = allocate(exact)
    assert sum(amounts) == 3300 and set(amounts) == {0, 1}


PLAN = Plan(
    key="standard",
    name="Standard",
    currency="EUR",
    minimum=50_000,
    items=[
        PlanItem(meter="", title="Platform fee", price=FlatPrice(amount=29_900)),
        PlanItem(
            meter="events",
            title="Events",
            price=GraduatedPrice(
                tiers=[Tier(up_to=100_000, unit_price="0.0005"), Tier(up_to=None, unit_price="0.0002")], included=10_000
            ),
        ),
        PlanItem(meter="runs", title="Workflow runs", price=PerUnitPrice(unit_price="0.012", included=500)),
        PlanItem(
            meter="assets",
            title="Active assets",
            price=VolumePrice(tiers=[Tier(up_to=50, unit_price="4"), Tier(up_to=None, unit_price="3", flat_fee=1_000)]),
        ),
    ],
)
USAGE = st.fixed_dictionaries(
    {
        "events": st.integers(min_value=0, max_value=5_000_000),
        "runs": st.integers(min_value=0, max_value=200_000),
        "assets": st.integers(min_value=0, max_value=400),
    }
)


@settings(max_examples=300)
@given(USAGE, st.integers(min_value=0, max_value=30 * 86400))
def test_a_plan_changed_at_any_moment_bills_each_part_for_its_share(usage: dict[str, int], changed_at: int) -> None:
    period = 30 * 86400
    before, after = period_share(changed_at, period), period_share(period - changed_at, period)
    assert before + after == 1
    whole = exact_lines(PLAN, {}, Fraction(1))
    parts = exact_lines(PLAN, {}, before) + exact_lines(PLAN, {}, after)
    # Without usage, the fees of the two parts add up to the whole period's, exactly.
    assert sum((line.exact for line in parts), Fraction(0)) == sum((line.exact for line in whole), Fraction(0))
    rated = rate(PLAN, usage, before)
    assert rated.total == sum(line.amount for line in rated.lines)
    assert abs(rated.total - sum((line.exact for line in rated.lines), Fraction(0))) <= Fraction(1, 2)
    # The minimum commitment holds for the share covered.
    assert rated.total >= round_half_even(PLAN.minimum * before)


def test_a_worked_example() -> None:
    rated = rate(PLAN, {"events": 250_000, "runs": 1_500, "assets": 60})
    assert [(line.title, line.quantity, line.amount) for line in rated.lines] == [
        ("Platform fee", 1, 29_900),
        ("Events (1 to 100,000)", 100_000, 5_000),
        ("Events (100,001 and up)", 140_000, 2_800),
        ("Workflow runs", 1_000, 1_200),
        ("Active assets (volume 51 and up)", 60, 18_000),
        ("Active assets (volume 51 and up), tier fee", 1, 1_000),
    ]
    assert rated.total == 29_900 + 5_000 + 2_800 + 1_200 + 18_000 + 1_000
    assert format_minor(rated.total, "EUR") == "579.00 EUR" and format_minor(-5, "JPY") == "-5 JPY"
    small = rate(PLAN, {})
    assert [line.title for line in small.lines] == ["Platform fee", "Minimum commitment"] and small.total == 50_000
