"""Discount codes and their limits: a cancelled order gives its use of the code back (once),
and an optional per-customer limit counts the member's orders with the code that are not
cancelled."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from blog.database_session import transaction
from blog.extensions import db
from blog.shop import orders
from blog.shop.models import Discount, Order, PercentageDiscount
from tests.conftest import csrf_token, text_of
from tests.shop.conftest import last_order


def _code(app: Flask, **fields: Any) -> None:
    with app.app_context(), transaction() as session:
        session.add(PercentageDiscount(code="SAVE", percent=Decimal(10), **fields))


def _times_used(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(Discount.times_used).where(Discount.code == "SAVE"))


def _coded_orders(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Order).where(Order.discount_code == "SAVE"))


def _cancel(client: Any, number: str) -> Any:
    return client.post(f"/shop/orders/{number}/cancel", data={"csrf_token": csrf_token(client, "/shop/cart")})


def test_cancelling_gives_the_use_back_once(app: Flask, client: Any, shop: Any, buyer: Any,
                                            auth: Any, make_user: Any) -> None:
    _code(app, usage_limit=1)
    assert shop.checkout(buyer["post"], discount_code="save").status_code == 302
    number = last_order(app).number
    assert _times_used(app) == 1
    for _ in range(2):  # the second press changes nothing
        _cancel(client, number)
    assert last_order(app).status == "cancelled" and _times_used(app) == 0
    # The one use is free again: another customer may have it.
    auth.logout()
    make_user("bob")
    auth.login("bob")
    shop.add(buyer["mug"], 1)
    assert shop.checkout(buyer["post"], discount_code="SAVE").status_code == 302
    assert _times_used(app) == 1 and last_order(app).discount_code == "SAVE"


def test_admin_cancel_of_a_paid_order_gives_the_use_back(app: Flask, shop: Any, buyer: Any) -> None:
    _code(app)
    shop.checkout(buyer["post"], discount_code="save")
    order = last_order(app)
    with app.app_context():
        orders.change_status(order, "paid")
        orders.change_status(order, "cancelled")
    assert _times_used(app) == 0


def test_per_customer_limit(app: Flask, client: Any, shop: Any, buyer: Any) -> None:
    _code(app, per_customer_limit=1)
    assert shop.checkout(buyer["post"], discount_code="save").status_code == 302
    first = last_order(app).number
    shop.add(buyer["mug"], 1)
    response = shop.checkout(buyer["post"], discount_code="save")
    assert response.status_code == 200
    assert "The code SAVE can be used once per customer, and you have used it already." in text_of(response)
    assert _coded_orders(app) == 1 and _times_used(app) == 1
    # A review says so too, before anything is placed.
    page = client.get("/shop/checkout").get_data(as_text=True)
    assert "once per customer" not in page
    response = shop.checkout(buyer["post"], discount_code="save", action="review")
    assert "once per customer" in text_of(response)
    # A cancelled order does not count against the customer.
    _cancel(client, first)
    assert shop.checkout(buyer["post"], discount_code="save").status_code == 302
    assert _coded_orders(app) == 2 and _times_used(app) == 1


def test_per_customer_limit_leaves_other_customers_alone(app: Flask, shop: Any, buyer: Any, auth: Any,
                                                         make_user: Any) -> None:
    _code(app, per_customer_limit=2)
    for _ in range(2):
        shop.add(buyer["mug"], 1)
        assert shop.checkout(buyer["post"], discount_code="save").status_code == 302
    shop.add(buyer["mug"], 1)
    assert "2 times per customer" in text_of(shop.checkout(buyer["post"], discount_code="save"))
    auth.logout()
    make_user("bob")
    auth.login("bob")
    shop.add(buyer["mug"], 1)
    assert shop.checkout(buyer["post"], discount_code="save").status_code == 302
    assert _coded_orders(app) == 3


def test_database_refuses_a_per_customer_limit_below_one(app: Flask) -> None:
    import pytest
    from sqlalchemy.exc import IntegrityError
    with app.app_context(), pytest.raises(IntegrityError), transaction() as session:
        session.add(PercentageDiscount(code="ZERO", percent=Decimal(10), per_customer_limit=0))
