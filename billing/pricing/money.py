"""Money without floats: amounts are integers in the currency's minor unit (cents); unit prices are
exact decimals (a price per event may be a fraction of a cent) and every amount before rounding is an
exact fraction (a prorated fee is a third of a cent, not 0.3333...); rounding happens once per
document, spread over its lines so that the lines always add up to the rounded total."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Annotated

import msgspec

# ISO 4217 minor-unit exponents of the currencies price books may use.
MINOR_UNITS: dict[str, int] = {
    "EUR": 2,
    "USD": 2,
    "GBP": 2,
    "CHF": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "PLN": 2,
    "CZK": 2,
    "CAD": 2,
    "AUD": 2,
    "MXN": 2,
    "BRL": 2,
    "INR": 2,
    "CNY": 2,
    "JPY": 0,
    "KRW": 0,
}

Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
# A unit price as exact decimal text in major units ("0.0025" EUR per event); never a float.
UnitPrice = Annotated[str, msgspec.Meta(pattern=r"^\d{1,12}(\.\d{1,10})?$")]


class CurrencyError(ValueError):
    pass


def exponent(currency: str) -> int:
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise CurrencyError(
            f"{currency} is not a currency price books may use ({', '.join(sorted(MINOR_UNITS))})"
        ) from None


def unit_price_minor(price: str, currency: str) -> Fraction:
    """A unit price in minor units, exactly ("0.0025" EUR → 1/4 cent)."""
    return Fraction(Decimal(price).scaleb(exponent(currency)))


def round_half_even(value: Fraction) -> int:
    return round(value)  # a Fraction rounds half to even


def allocate(exact: list[Fraction]) -> list[int]:
    """Whole minor units for each exact amount, adding up to the exact total rounded once.

    Each line is its exact amount rounded down, and the units still missing go to the lines with the
    largest remainders (ties to the earlier line), so no line is off by a whole unit and the total
    does not drift however many lines there are."""
    if not exact:
        return []
    target = round_half_even(sum(exact, Fraction(0)))
    floors = [math.floor(a) for a in exact]
    missing = target - sum(floors)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    # Each floor is at most one unit below its amount, so 0 <= missing <= the number of lines.
    assert 0 <= missing <= len(exact)
    result = list(floors)
    for i in order[:missing]:
        result[i] += 1
    return result


def format_minor(amount: int, currency: str) -> str:
    """``123456, "EUR"`` → ``"1,234.56 EUR"`` (for documents and pages; never parsed back)."""
    places = exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**places) if places else (abs(amount), 0)
    text = f"{whole:,}" + (f".{fraction:0{places}d}" if places else "")
    return f"{sign}{text} {currency}"
