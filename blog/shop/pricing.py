"""Money arithmetic and display, in one place and free of the database.

The rules, which the README repeats:

- Amounts are ``Decimal`` with exactly two places (cents); nothing here uses float.
- A percentage discount is rounded half-up to the cent, once, on the subtotal; no discount
  exceeds the subtotal.
- Tax is charged on the discounted subtotal (shipping is not taxed), at ``SHOP_TAX_RATE``,
  rounded half-up to the cent once for the whole order, never per line.
- total = subtotal - discount + shipping + tax, exact to the cent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from blog.database import CENT

ZERO = Decimal("0.00")

#: Symbols for common currencies with two decimal places; others show their code.
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$",
                    "NZD": "NZ$", "CHF": "CHF ", "SEK": "SEK ", "NOK": "NOK ", "DKK": "DKK "}


def round_cents(amount: Decimal) -> Decimal:
    """``amount`` rounded half-up to a whole cent."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_money(text: str | int | Decimal) -> Decimal:
    """An amount typed by a person or read from a file: "12", "12.5", "1,234.50".

    Raises ``ValueError`` for anything else, including negative amounts and fractions of a
    cent (a price of 1.999 is a typo, not something to round silently).
    """
    cleaned = str(text).strip().replace(",", "").lstrip("$€£")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount of money") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{text!r} is not an amount of money")
    if amount >= Decimal(10000000):
        raise ValueError(f"{text!r} is too large")
    if amount != amount.quantize(CENT):
        raise ValueError(f"{text!r} has fractions of a cent")
    return amount.quantize(CENT)


def parse_rate(value: object) -> Decimal:
    """A tax rate setting as a ``Decimal`` fraction from 0 up to (not including) 1."""
    try:
        rate = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"SHOP_TAX_RATE {value!r} is not a number") from None
    if not rate.is_finite() or not 0 <= rate < 1:
        raise ValueError(f"SHOP_TAX_RATE must be a fraction from 0 to below 1 (0.2 is 20%), not {value!r}")
    return rate


def format_money(amount: Decimal | None, currency: str = "USD", *, cents: bool = True) -> str:
    """"$1,234.50"; a negative amount as "-$5.00"; a currency without a symbol as "PLN 5.00".

    ``cents=False`` leaves ".00" off a whole amount ("$1,200", for a chart's scale).
    """
    if amount is None:
        return ""
    symbol = CURRENCY_SYMBOLS.get(currency.upper(), currency.upper() + " ")
    sign = "-" if amount < 0 else ""
    amount = abs(amount).quantize(CENT)
    if not cents and amount == amount.to_integral_value():
        return f"{sign}{symbol}{amount:,.0f}"
    return f"{sign}{symbol}{amount:,.2f}"


def tax_on(taxable: Decimal, rate: Decimal) -> Decimal:
    """The tax on ``taxable`` at ``rate``, rounded half-up to the cent."""
    return round_cents(taxable * rate)


@dataclass(frozen=True)
class Totals:
    """An order's amounts. ``total`` is always exactly the sum of the others."""

    subtotal: Decimal
    discount: Decimal
    shipping: Decimal
    tax: Decimal

    @property
    def total(self) -> Decimal:
        return self.subtotal - self.discount + self.shipping + self.tax


def compute_totals(lines: Iterable[tuple[Decimal, int]], shipping: Decimal,
                   discount: Decimal, tax_rate: Decimal) -> Totals:
    """Totals for ``lines`` of (unit price, quantity), given the shipping price, a discount
    already worked out by the discount itself, and the tax rate."""
    subtotal = sum((price * quantity for price, quantity in lines), ZERO)
    discount = min(discount, subtotal)
    return Totals(subtotal=subtotal, discount=discount, shipping=shipping,
                  tax=tax_on(subtotal - discount, tax_rate))


# --- refunds ---------------------------------------------------------------------------------


def line_shares(line_totals: list[Decimal], discount: Decimal, tax: Decimal) -> list[Decimal]:
    """What each line of an order cost the customer: its total, less its share of the
    discount, plus its share of the tax, both in proportion to the line's total. The shares
    are rounded to the cent so that they add up exactly to ``subtotal - discount + tax`` (the
    largest remainders get the odd cents, earlier lines first on a tie)."""
    subtotal = sum(line_totals, ZERO)
    goods = subtotal - discount + tax
    if subtotal == 0:
        exact = [ZERO for _ in line_totals]
        if exact:
            exact[0] = goods
        return exact
    cents = int(goods * 100)
    raw = [Decimal(cents) * total / subtotal for total in line_totals]
    floors = [int(value) for value in raw]  # raw >= 0, so int() is the floor
    left = cents - sum(floors)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - floors[i]), i))
    for index in order[:left]:
        floors[index] += 1
    return [(Decimal(value) / 100).quantize(CENT) for value in floors]


def refund_for_units(share: Decimal, bought: int, refunded_before: int, now: int) -> Decimal:
    """The amount to give back for ``now`` more units of a line of ``bought`` units whose
    share (:func:`line_shares`) is ``share``, ``refunded_before`` of them refunded already.

    Each refund pays the difference of the cumulative amounts ``share * units / bought``
    rounded down to the cent, the last unit settling the rest: however the units are split
    across refunds, all of them together give back exactly ``share``."""
    if not 0 < now <= bought - refunded_before:
        raise ValueError(f"cannot refund {now} of {bought - refunded_before} units left")

    def upto(units: int) -> Decimal:
        if units == bought:
            return share
        return (share * units / bought).quantize(CENT, rounding="ROUND_FLOOR")

    return upto(refunded_before + now) - upto(refunded_before)
