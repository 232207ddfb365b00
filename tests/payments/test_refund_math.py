"""The refund arithmetic: however an order is split into partial refunds, no refund is
negative, the refunded total never passes the order's total, and refunding everything gives
back the order's total to the cent."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from blog.shop.pricing import ZERO, compute_totals, line_shares, refund_for_units

prices = st.integers(min_value=0, max_value=50_000).map(lambda cents: Decimal(cents) / 100)
lines = st.lists(st.tuples(prices, st.integers(min_value=1, max_value=6)), min_size=1, max_size=6)
rates = st.sampled_from([Decimal(0), Decimal("0.07"), Decimal("0.2"), Decimal("0.255")])


@st.composite
def orders_and_refunds(draw: st.DrawFn) -> tuple[list[tuple[Decimal, int]], Decimal, Decimal, Decimal,
                                                 list[tuple[int, int]]]:
    order_lines = draw(lines)
    subtotal = sum((price * quantity for price, quantity in order_lines), ZERO)
    discount = draw(st.integers(min_value=0, max_value=int(subtotal * 100))) / Decimal(100)
    shipping = draw(prices)
    rate = draw(rates)
    # A random sequence of partial refunds: (line index, units), until every unit is refunded.
    left = [quantity for _, quantity in order_lines]
    sequence = []
    while any(left):
        index = draw(st.sampled_from([i for i, units in enumerate(left) if units]))
        units = draw(st.integers(min_value=1, max_value=left[index]))
        left[index] -= units
        sequence.append((index, units))
    return order_lines, discount, shipping, rate, sequence


@given(orders_and_refunds())
def test_partial_refunds_never_pass_the_total_and_add_up_to_it(case: tuple) -> None:  # type: ignore[type-arg]
    order_lines, discount, shipping, rate, sequence = case
    totals = compute_totals(order_lines, shipping, discount, rate)
    shares = line_shares([price * quantity for price, quantity in order_lines], totals.discount, totals.tax)
    assert sum(shares, ZERO) == totals.total - totals.shipping
    assert all(share >= 0 for share in shares)
    refunded = [0] * len(order_lines)
    given_back = ZERO
    for index, units in sequence:
        amount = refund_for_units(shares[index], order_lines[index][1], refunded[index], units)
        assert amount >= 0 and amount == amount.quantize(Decimal("0.01"))
        refunded[index] += units
        given_back += amount
        assert given_back <= totals.total - totals.shipping
    assert given_back + totals.shipping == totals.total  # and the shipping refunded last


def test_more_units_than_are_left_are_refused() -> None:
    import pytest

    with pytest.raises(ValueError):
        refund_for_units(Decimal("10.00"), 2, 1, 2)
    with pytest.raises(ValueError):
        refund_for_units(Decimal("10.00"), 2, 0, 0)
