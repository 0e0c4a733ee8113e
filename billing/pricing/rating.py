"""Rating: a plan and a period's usage in, invoice lines out, in whole minor units.

Every line is first computed exactly (fractions, no floats); the document is rounded once and the
rounding spread over its lines (``money.allocate``), so the lines always add up to the total and the
total is never more than half a minor unit from the exact amount, however many lines there are.

Included units come off the quantity first; tiers apply to what remains. Flat fees and the minimum
commitment follow the share of the period the plan covered (a plan changed mid-period is rated twice,
each with its share and the usage of its part); usage is never prorated: it is what was used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from andon.billing.pricing.money import allocate, unit_price_minor
from andon.billing.pricing.prices import FlatPrice, GraduatedPrice, PerUnitPrice, Plan, PlanItem, Tier, VolumePrice

MINIMUM = "minimum"


@dataclass(frozen=True, slots=True)
class Line:
    title: str
    meter: str
    quantity: int
    # The unit price as the price book states it (major units), or None for a fee.
    unit_price: str | None
    exact: Fraction  # minor units, exact
    amount: int = 0  # minor units, after the document's rounding


@dataclass(frozen=True, slots=True)
class Rated:
    currency: str
    lines: list[Line]

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


def _share(value: int, share: Fraction) -> Fraction:
    return value * share


def _tier_name(tiers: list[Tier], index: int) -> str:
    start = 1 if index == 0 else (tiers[index - 1].up_to or 0) + 1
    end = tiers[index].up_to
    return f"{start:,} and up" if end is None else f"{start:,} to {end:,}"


def item_lines(item: PlanItem, quantity: int, currency: str, share: Fraction = Fraction(1)) -> list[Line]:
    """The exact lines of one plan item for ``quantity`` units of its meter."""
    price = item.price
    if isinstance(price, FlatPrice):
        return [Line(item.title, item.meter, 1, None, _share(price.amount, share))]
    billable = max(0, quantity - price.included)
    if isinstance(price, PerUnitPrice):
        if not billable:
            return []
        exact = billable * unit_price_minor(price.unit_price, currency)
        return [Line(item.title, item.meter, billable, price.unit_price, exact)]
    lines: list[Line] = []
    if isinstance(price, GraduatedPrice):
        start = 0
        for index, tier in enumerate(price.tiers):
            end = tier.up_to if tier.up_to is not None else max(billable, start)
            in_tier = max(0, min(billable, end) - start)
            if in_tier:
                title = f"{item.title} ({_tier_name(price.tiers, index)})"
                lines.append(
                    Line(
                        title,
                        item.meter,
                        in_tier,
                        tier.unit_price,
                        in_tier * unit_price_minor(tier.unit_price, currency),
                    )
                )
                if tier.flat_fee:
                    lines.append(Line(f"{title}, tier fee", item.meter, 1, None, Fraction(tier.flat_fee)))
            start = end
        return lines
    assert isinstance(price, VolumePrice)
    if not billable:
        return []
    index = next(i for i, t in enumerate(price.tiers) if t.up_to is None or billable <= t.up_to)
    tier = price.tiers[index]
    title = f"{item.title} (volume {_tier_name(price.tiers, index)})"
    lines.append(
        Line(title, item.meter, billable, tier.unit_price, billable * unit_price_minor(tier.unit_price, currency))
    )
    if tier.flat_fee:
        lines.append(Line(f"{title}, tier fee", item.meter, 1, None, Fraction(tier.flat_fee)))
    return lines


def exact_lines(plan: Plan, usage: Mapping[str, int], share: Fraction = Fraction(1)) -> list[Line]:
    """A plan's exact lines for one period (or the ``share`` of it the plan covered), the minimum
    commitment's shortfall included."""
    if not 0 <= share <= 1:
        raise ValueError("a plan covers between none and all of a period")
    lines = [line for item in plan.items for line in item_lines(item, usage.get(item.meter, 0), plan.currency, share)]
    minimum = _share(plan.minimum, share)
    subtotal = sum((line.exact for line in lines), Fraction(0))
    if minimum > subtotal:
        lines.append(Line("Minimum commitment", MINIMUM, 1, None, minimum - subtotal))
    return lines


def rounded(currency: str, lines: list[Line]) -> Rated:
    """The document's lines with whole amounts that add up to its exact total rounded once."""
    amounts = allocate([line.exact for line in lines])
    return Rated(
        currency,
        [
            Line(line.title, line.meter, line.quantity, line.unit_price, line.exact, amount)
            for line, amount in zip(lines, amounts, strict=True)
        ],
    )


def rate(plan: Plan, usage: Mapping[str, int], share: Fraction = Fraction(1)) -> Rated:
    return rounded(plan.currency, exact_lines(plan, usage, share))


def period_share(covered_seconds: int, period_seconds: int) -> Fraction:
    """The share of a period a subscription covered (a plan change or a start mid-period)."""
    if period_seconds <= 0 or not 0 <= covered_seconds <= period_seconds:
        raise ValueError("a subscription covers between none and all of its period")
    return Fraction(covered_seconds, period_seconds)
