"""Checkout: an order placed from the cart, totals with tax and discounts, what is refused
(and then changes nothing), the checkout token, order numbers, and statement counts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from blog.extensions import db
from blog.shop.models import Order, Product, Variant
from tests.conftest import ADDRESS, page_statements, text_of
from tests.shop.conftest import (
    cart_lines,
    cart_token,
    fill_shop,
    last_order,
    set_price,
    set_stock,
    variant_stock,
)

# --- placing the order ----------------------------------------------------------------------------


def test_checkout_needs_login(client: Any) -> None:
    response = client.get("/shop/checkout")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_checkout_with_empty_cart_goes_back_to_the_cart(client: Any, auth: Any, make_user: Any) -> None:
    make_user("alice")
    auth.login("alice")
    response = client.get("/shop/checkout")
    assert response.status_code == 302 and response.headers["Location"].endswith("/shop/cart")


def test_checkout_places_the_order(app: Flask, client: Any, shop: Any, buyer: Any) -> None:
    page = text_of(client.get("/shop/checkout"))
    for name in ("full_name", "address_line1", "address_line2", "city", "postal_code", "country",
                 "shipping_method", "discount_code", "checkout_token"):
        assert f'name="{name}"' in page
    assert "$38.00" in page  # subtotal
    response = shop.checkout(buyer["post"])
    assert response.status_code == 302
    order = last_order(app)
    assert response.headers["Location"].endswith(f"/shop/orders/{order.number}")
    assert order.status == "pending"
    assert (order.subtotal, order.discount_amount, order.shipping_price, order.tax, order.total) == (
        Decimal("38.00"), Decimal("0.00"), Decimal("5.00"), Decimal("0.00"), Decimal("43.00"))
    assert order.full_name == ADDRESS["full_name"] and order.shipping_method_name == "Post"
    assert [(i.product_name, i.variant_label, i.unit_price, i.quantity) for i in order.items] == [
        ("Mug", "", Decimal("8.00"), 2), ("Shirt", "L", Decimal("22.00"), 1)]
    assert variant_stock(app, buyer["mug"].variants[0].id) == 3
    assert variant_stock(app, buyer["shirt"].variants[1].id) == 8
    assert cart_lines(app, "alice") == {}
    page = text_of(client.get(f"/shop/orders/{order.number}"))
    assert order.number in page and "$43.00" in page and "Ada Lovelace" in page


def test_price_at_purchase_is_the_current_price(app: Flask, client: Any, shop: Any, buyer: Any) -> None:
    set_price(app, buyer["mug"].variants[0].id, "9.00")
    assert "Price changed from $8.00" in text_of(client.get("/shop/checkout"))
    shop.checkout(buyer["post"])
    order = last_order(app)
    assert order.items[0].unit_price == Decimal("9.00") and order.subtotal == Decimal("40.00")


# --- tax and discounts ----------------------------------------------------------------------------


def test_tax_is_charged_on_the_discounted_subtotal(app: Flask, shop: Any, buyer: Any) -> None:
    app.config["SHOP_TAX_RATE"] = "0.0825"
    _discount(app, "TENPC", percent="10")
    shop.checkout(buyer["post"], discount_code="tenpc")
    order = last_order(app)
    # 38.00 - 3.80 = 34.20; tax 34.20 * 0.0825 = 2.8215 -> 2.82; 34.20 + 5.00 + 2.82 = 42.02
    assert (order.discount_amount, order.tax, order.total) == (
        Decimal("3.80"), Decimal("2.82"), Decimal("42.02"))
    assert order.discount_code == "TENPC"


def _discount(app: Flask, code: str, *, percent: str | None = None, amount: str | None = None,
              **fields: Any) -> int:
    from blog.database_session import transaction
    from blog.shop.models import FixedAmountDiscount, PercentageDiscount
    with app.app_context(), transaction() as session:
        if percent is not None:
            discount = PercentageDiscount(code=code, percent=Decimal(percent), **fields)
        else:
            discount = FixedAmountDiscount(code=code, amount=Decimal(amount or "0"), **fields)
        session.add(discount)
        session.flush()
        return discount.id


@pytest.mark.parametrize(("fields", "message"), [
    ({"active": False}, "is not valid"),
    ({"usage_limit": 1, "times_used": 1}, "has been used up"),
    ({"min_subtotal": Decimal("50.00")}, "at least $50.00"),
    ({"ends_at": "past"}, "has expired"),
    ({"starts_at": "future"}, "is not valid"),
])
def test_discount_that_does_not_apply_is_refused(app: Flask, client: Any, shop: Any, buyer: Any,
                                                  fields: dict[str, Any], message: str) -> None:
    from datetime import timedelta

    from blog.database import utcnow
    when = {"past": utcnow() - timedelta(days=1), "future": utcnow() + timedelta(days=1)}
    fields = {key: when.get(value, value) if isinstance(value, str) else value
              for key, value in fields.items()}
    _discount(app, "FIVE", amount="5.00", **fields)
    response = shop.checkout(buyer["post"], discount_code="FIVE")
    assert response.status_code == 200
    assert message in text_of(response)
    assert last_order(app) is None
    assert variant_stock(app, buyer["mug"].variants[0].id) == 5


def test_unknown_discount_code(app: Flask, shop: Any, buyer: Any) -> None:
    response = shop.checkout(buyer["post"], discount_code="NOPE")
    assert "not valid" in text_of(response) and last_order(app) is None


def test_fixed_discount_never_exceeds_the_subtotal(app: Flask, shop: Any, buyer: Any) -> None:
    _discount(app, "BIG", amount="100.00")
    shop.checkout(buyer["post"], discount_code="BIG")
    order = last_order(app)
    assert (order.discount_amount, order.total) == (Decimal("38.00"), Decimal("5.00"))


# --- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "field"), [
    ({"full_name": ""}, "full_name"), ({"address_line1": "  "}, "address_line1"),
    ({"city": ""}, "city"), ({"postal_code": "<script>"}, "postal_code"),
    ({"country": "x" * 101}, "country"), ({"shipping_method": "999999"}, "shipping_method"),
    ({"shipping_method": "abc"}, "shipping_method"), ({"shipping_method": str(2**31)}, "shipping_method"),
    ({"shipping_method": str(2**63)}, "shipping_method"), ({"shipping_method": "9" * 30}, "shipping_method"),
    ({"checkout_token": ""}, "checkout_token"),
    ({"checkout_token": "x" * 65}, "checkout_token"),
])
def test_checkout_form_validation(app: Flask, client: Any, shop: Any, buyer: Any,
                                  fields: dict[str, str], field: str) -> None:
    token = fields.pop("checkout_token", None)
    response = shop.checkout(buyer["post"], **fields) if token is None else client.post(
        "/shop/checkout", data={"csrf_token": cart_token(client), "checkout_token": token,
                                "shipping_method": buyer["post"].id, **ADDRESS})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'class="errors"' in html or "form-errors" in html
    assert last_order(app) is None
    assert variant_stock(app, buyer["mug"].variants[0].id) == 5


def test_inactive_shipping_method_is_refused(app: Flask, shop: Any, buyer: Any,
                                             make_shipping: Any) -> None:
    closed = make_shipping("Closed", "1.00", active=False)
    response = shop.checkout(closed)
    assert response.status_code == 200 and last_order(app) is None


def test_out_of_stock_says_which_item_and_changes_nothing(app: Flask, shop: Any, buyer: Any) -> None:
    set_stock(app, buyer["mug"].variants[0].id, 1)
    response = shop.checkout(buyer["post"])
    assert response.status_code == 200
    assert "Mug: only 1 left, you asked for 2" in text_of(response)
    assert last_order(app) is None
    assert variant_stock(app, buyer["mug"].variants[0].id) == 1
    assert variant_stock(app, buyer["shirt"].variants[1].id) == 9  # taken, then rolled back
    assert len(cart_lines(app, "alice")) == 2


def test_deactivated_product_in_cart_blocks_checkout(app: Flask, shop: Any, buyer: Any) -> None:
    from blog.database_session import transaction
    with app.app_context(), transaction() as session:
        session.get(Product, buyer["mug"].id).active = False
    response = shop.checkout(buyer["post"])
    assert "no longer sold" in text_of(response) and last_order(app) is None


def test_database_refuses_negative_stock(app: Flask, make_product: Any) -> None:
    from sqlalchemy.exc import IntegrityError

    from blog.database_session import transaction
    product = make_product("Mug", [("", "8.00", 1)])
    with app.app_context(), pytest.raises(IntegrityError), transaction() as session:
        session.get(Variant, product.variants[0].id).stock = -1


def test_empty_cart_checkout_post_is_refused(app: Flask, client: Any, shop: Any, buyer: Any) -> None:
    token = shop.checkout_token()
    shop.remove(buyer["mug"])
    shop.remove(buyer["shirt"])
    response = shop.checkout(buyer["post"], token=token)
    assert response.status_code == 200 and "Your cart is empty" in text_of(response)


# --- checkout token and order numbers -------------------------------------------------------------


def test_same_checkout_token_twice_gives_one_order(app: Flask, client: Any, shop: Any, buyer: Any) -> None:
    token = shop.checkout_token()
    first = shop.checkout(buyer["post"], token=token)
    second = shop.checkout(buyer["post"], token=token)
    assert first.headers["Location"] == second.headers["Location"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 1
    assert variant_stock(app, buyer["mug"].variants[0].id) == 3


def test_checkout_token_of_another_member_is_refused(app: Flask, client: Any, auth: Any, shop: Any,
                                                     buyer: Any, make_user: Any) -> None:
    token = shop.checkout_token()
    shop.checkout(buyer["post"], token=token)
    auth.logout()
    make_user("bob")
    auth.login("bob")
    shop.add(buyer["mug"], 1)
    response = shop.checkout(buyer["post"], token=token)
    assert response.status_code == 200 and "has expired" in text_of(response)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 1


def test_order_number_looks_human(app: Flask, placed_order: dict[str, Any]) -> None:
    import re
    assert re.fullmatch(r"IW-[2-9A-HJKMNP-Z]{8}", last_order(app).number)


def test_colliding_order_numbers_are_drawn_again(app: Flask, shop: Any, buyer: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from blog.shop import checkout
    numbers = iter(["IW-SAME0000", "IW-SAME0000", "IW-OTHER000"])
    monkeypatch.setattr(checkout, "new_order_number", lambda: next(numbers))
    shop.checkout(buyer["post"])
    shop.add(buyer["mug"], 1)
    response = shop.checkout(buyer["post"])
    assert response.headers["Location"].endswith("/shop/orders/IW-OTHER000")
    assert variant_stock(app, buyer["mug"].variants[0].id) == 2  # 5 - 2 - 1, nothing twice


# --- statement counts -----------------------------------------------------------------------------


def test_cart_checkout_and_order_statements_do_not_grow(app: Flask, client: Any, shop: Any,
                                                         buyer: Any) -> None:
    counts = {path: page_statements(client, path).count for path in ("/shop/cart", "/shop/checkout")}
    with app.app_context():
        products = fill_shop(6, 2)
    for product in products:
        shop.add(product, 1, variant=product.variants[1])
    assert {path: page_statements(client, path).count for path in counts} == counts
    assert counts == {"/shop/cart": 3, "/shop/checkout": 4}  # + user, shipping methods
    shop.checkout(buyer["post"])
    order = last_order(app)
    assert len(order.items) == 8
    assert page_statements(client, f"/shop/orders/{order.number}").count == 3  # user, order, lines
    assert page_statements(client, "/shop/orders").count == 3  # user, count, orders
