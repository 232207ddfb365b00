"""Money: the custom column type, the arithmetic rules, and orders that add up exactly."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.orm import selectinload

from blog.database_session import transaction
from blog.extensions import db
from blog.shop.models import Cart, CartItem, FixedAmountDiscount, OrderItem, PercentageDiscount, Variant
from blog.shop.pricing import (
    Totals,
    compute_totals,
    format_money,
    parse_money,
    parse_rate,
    round_cents,
    tax_on,
)

cents = st.integers(min_value=0, max_value=10_000_000)
amounts = cents.map(lambda c: Decimal(c).scaleb(-2).quantize(Decimal("0.01")))
rates = st.integers(min_value=0, max_value=9999).map(lambda bp: Decimal(bp).scaleb(-4))


# --- the column type -----------------------------------------------------------------------


def test_money_is_stored_as_whole_cents(app: Flask, make_product: Any) -> None:
    product = make_product("Mug", [("", "1234.50", 1)])
    with app.app_context():
        raw = db.session.execute(text("SELECT price FROM variants WHERE id = :id"),
                                 {"id": product.variants[0].id}).scalar()
        loaded = db.session.scalar(select(Variant.price).where(Variant.id == product.variants[0].id))
    assert raw == 123450 and isinstance(raw, int)
    assert loaded == Decimal("1234.50") and isinstance(loaded, Decimal)
    assert str(loaded) == "1234.50"


@pytest.mark.parametrize("value", [1.5, "1.50", Decimal("1.005"), Decimal("NaN"), Decimal("Infinity")])
def test_money_refuses_floats_strings_and_fractions_of_a_cent(app: Flask, make_product: Any,
                                                              value: Any) -> None:
    product = make_product("Mug")
    with app.app_context(), pytest.raises(Exception) as caught, transaction() as session:
        session.get(Variant, product.variants[0].id).price = value
    assert isinstance(caught.value.__cause__ or caught.value, (TypeError, ValueError))


def test_sql_aggregates_come_back_as_money(app: Flask, make_product: Any) -> None:
    make_product("A", [("", "0.10", 1), ("B", "0.20", 1)])
    with app.app_context():
        total, lowest = db.session.execute(select(func.sum(Variant.price), func.min(Variant.price))).one()
    assert (total, lowest) == (Decimal("0.30"), Decimal("0.10"))  # not 0.30000000000000004


# --- the rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "text_"), [
    (Decimal("1234.5"), "$1,234.50"), (Decimal(0), "$0.00"), (Decimal(-5), "-$5.00"),
    (Decimal("1000000.01"), "$1,000,000.01"), (None, "")])
def test_format_money(amount: Decimal | None, text_: str) -> None:
    assert format_money(amount) == text_


def test_format_money_other_currencies() -> None:
    assert format_money(Decimal("3.5"), "EUR") == "€3.50"
    assert format_money(Decimal("3.5"), "pln") == "PLN 3.50"


def test_money_filter_uses_the_shop_currency(app: Flask) -> None:
    app.config["SHOP_CURRENCY"] = "GBP"
    with app.test_request_context():
        assert app.jinja_env.from_string("{{ x|money }}").render(x=Decimal("1234.5")) == "£1,234.50"


@pytest.mark.parametrize(("text_", "amount"), [
    ("12", Decimal("12.00")), ("12.5", Decimal("12.50")), ("1,234.50", Decimal("1234.50")),
    (" $3.10 ", Decimal("3.10")), (7, Decimal("7.00"))])
def test_parse_money(text_: Any, amount: Decimal) -> None:
    assert parse_money(text_) == amount


@pytest.mark.parametrize("text_", ["", "abc", "-1", "1.999", "NaN", "inf", "1e400", "10000000"])
def test_parse_money_refuses(text_: str) -> None:
    with pytest.raises(ValueError):
        parse_money(text_)


@pytest.mark.parametrize(("value", "rate"), [(0, Decimal(0)), ("0.2", Decimal("0.2")),
                                             (0.0825, Decimal("0.0825"))])
def test_parse_rate(value: Any, rate: Decimal) -> None:
    assert parse_rate(value) == rate


@pytest.mark.parametrize("value", ["1", "-0.1", "twenty", "NaN"])
def test_parse_rate_refuses(value: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(value)


def test_rounding_is_half_up_once() -> None:
    assert round_cents(Decimal("0.125")) == Decimal("0.13")
    assert round_cents(Decimal("0.135")) == Decimal("0.14")  # not banker's rounding
    assert tax_on(Decimal("34.20"), Decimal("0.0825")) == Decimal("2.82")
    # Three lines whose per-line tax would each round up: once per order is a cent less.
    lines = [(Decimal("0.10"), 1)] * 3
    assert compute_totals(lines, Decimal(0), Decimal(0), Decimal("0.05")).tax == Decimal("0.02")


@given(lines=st.lists(st.tuples(amounts, st.integers(1, 20)), min_size=1, max_size=10),
       shipping=amounts, discount=amounts, rate=rates)
def test_totals_always_add_up(lines: list[tuple[Decimal, int]], shipping: Decimal,
                              discount: Decimal, rate: Decimal) -> None:
    totals = compute_totals(lines, shipping, discount, rate)
    subtotal = sum(price * quantity for price, quantity in lines)
    assert totals.subtotal == subtotal
    assert 0 <= totals.discount <= subtotal
    assert totals.tax == round_cents((subtotal - totals.discount) * rate)
    assert totals.total == totals.subtotal - totals.discount + totals.shipping + totals.tax
    for amount in (totals.subtotal, totals.discount, totals.tax, totals.total):
        assert amount == amount.quantize(Decimal("0.01")) and amount >= 0


@given(subtotal=amounts, percent=st.integers(1, 10000).map(lambda p: Decimal(p).scaleb(-2)))
def test_percentage_discount_is_whole_cents_within_the_subtotal(subtotal: Decimal,
                                                                 percent: Decimal) -> None:
    off = PercentageDiscount(code="X", percent=percent).amount_off(subtotal)
    assert off == off.quantize(Decimal("0.01")) and 0 <= off <= subtotal
    assert off == round_cents(subtotal * percent / 100)


@given(subtotal=amounts, amount=amounts.filter(lambda a: a > 0))
def test_fixed_discount_never_exceeds_the_subtotal(subtotal: Decimal, amount: Decimal) -> None:
    assert FixedAmountDiscount(code="X", amount=amount).amount_off(subtotal) == min(subtotal, amount)


# --- orders placed through checkout add up, on the database ------------------------------------

_names = itertools.count()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(st.tuples(st.integers(1, 500_000), st.integers(1, 20)), min_size=1, max_size=6),
       shipping=st.integers(0, 5000), rate=rates,
       discount=st.one_of(st.none(), st.tuples(st.just("percent"), st.integers(1, 100)),
                          st.tuples(st.just("fixed"), st.integers(1, 100_000))))
def test_placed_orders_add_up_exactly(app: Flask, make_user: Any, lines: list[tuple[int, int]],
                                      shipping: int, rate: Decimal, discount: Any) -> None:
    from blog.accounts.models import User
    from blog.shop import checkout
    from blog.shop.models import Product, ShippingMethod
    from tests.conftest import ADDRESS

    n = next(_names)
    app.config["SHOP_TAX_RATE"] = str(rate)
    user = make_user(f"buyer{n}")
    with app.test_request_context():
        with transaction() as session:
            cart = session.scalar(select(Cart).where(Cart.user_id == user.id)
                                  .options(selectinload(Cart.items)))
            for index, (price_cents, quantity) in enumerate(lines):
                product = Product(name=f"P{n}-{index}", slug=f"p{n}-{index}", variants=[])
                variant = Variant(price=Decimal(price_cents).scaleb(-2), stock=quantity)
                product.variants.append(variant)
                session.add(product)
                cart.items.append(CartItem(variant=variant, quantity=quantity,
                                           unit_price=variant.price))
            method = ShippingMethod(name=f"Ship {n}", price=Decimal(shipping).scaleb(-2))
            session.add(method)
            code = ""
            if discount:
                code = f"CODE{n}"
                kind, value = discount
                session.add(PercentageDiscount(code=code, percent=Decimal(value)) if kind == "percent"
                            else FixedAmountDiscount(code=code, amount=Decimal(value).scaleb(-2)))
            session.flush()
            method_id = method.id
        order = checkout.place_order(db.session.get(User, user.id), checkout.CheckoutDetails(
            shipping_method_id=method_id, discount_code=code,
            checkout_token=checkout.new_checkout_token(), **ADDRESS))
        line_sum = db.session.scalar(select(func.sum(OrderItem.line_total))
                                     .where(OrderItem.order_id == order.id))
    expected_subtotal = sum(Decimal(p).scaleb(-2) * q for p, q in lines)
    assert order.subtotal == line_sum == expected_subtotal
    assert line_sum + order.shipping_price + order.tax - order.discount_amount == order.total
    assert order.shipping_price == Decimal(shipping).scaleb(-2)
    assert order.tax == round_cents((order.subtotal - order.discount_amount) * rate)
    assert isinstance(Totals(order.subtotal, order.discount_amount, order.shipping_price,
                             order.tax).total, Decimal)
