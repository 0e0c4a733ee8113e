"""Prices as a price book states them: a flat fee, a price per unit, graduated or volume tiers, with
units included before any is charged; plans bundle prices per meter with a minimum commitment."""

from __future__ import annotations

import itertools
from typing import Annotated

import msgspec

from andon.billing.pricing.money import Currency, UnitPrice

Quantity = Annotated[int, msgspec.Meta(ge=0)]
MinorAmount = Annotated[int, msgspec.Meta(ge=0)]
# A meter's key, or "" for a flat fee that depends on no usage (one pattern: msgspec cannot decode a
# union of a constrained str and a str literal, so it would refuse the "").
MeterKey = Annotated[str, msgspec.Meta(pattern=r"^([a-z][a-z0-9_.]{0,62})?$")]


class Tier(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # The last unit of this tier (inclusive); None: without end (the last tier).
    up_to: Quantity | None
    unit_price: UnitPrice = "0"
    # Charged once when any unit falls in this tier (graduated) / when the quantity ends here (volume).
    flat_fee: MinorAmount = 0


def _check_tiers(tiers: list[Tier]) -> None:
    if not tiers:
        raise ValueError("at least one tier")
    bounds = [t.up_to for t in tiers]
    if bounds[-1] is not None or any(b is None for b in bounds[:-1]):
        raise ValueError("only the last tier is without end (up_to: null)")
    ends = [b for b in bounds if b is not None]
    if any(b <= a for a, b in itertools.pairwise(ends)):
        raise ValueError("tiers end at increasing quantities")


class FlatPrice(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, tag="flat"):
    """A fixed amount per period (a platform fee, a seat pack)."""

    amount: MinorAmount


class PerUnitPrice(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, tag="per_unit"):
    unit_price: UnitPrice
    included: Quantity = 0


class GraduatedPrice(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, tag="graduated"):
    """Each unit at the price of the tier it falls in (the first 1,000 at 0.01, the next at 0.008...)."""

    tiers: list[Tier]
    included: Quantity = 0

    def __post_init__(self) -> None:
        _check_tiers(self.tiers)


class VolumePrice(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, tag="volume"):
    """Every unit at the price of the tier the whole quantity reaches."""

    tiers: list[Tier]
    included: Quantity = 0

    def __post_init__(self) -> None:
        _check_tiers(self.tiers)


Price = FlatPrice | PerUnitPrice | GraduatedPrice | VolumePrice


class PlanItem(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # The meter it prices; "" for a flat fee that depends on no usage.
    meter: MeterKey
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    price: Price


class Plan(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    key: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    currency: Currency
    items: Annotated[list[PlanItem], msgspec.Meta(min_length=1, max_length=50)]
    # The least a period costs: a shortfall is charged as its own line.
    minimum: MinorAmount = 0
    trial_days: Annotated[int, msgspec.Meta(ge=0, le=365)] = 0
