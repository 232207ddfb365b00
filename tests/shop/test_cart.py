"""The cart: adding, changing and removing lines, what is refused (and then changes nothing),
price changes, and a visitor's cart merged into the member's on login or registration."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from blog.extensions import db
from blog.shop.models import Cart, Product
from tests.conftest import PASSWORD, text_of
from tests.shop.conftest import cart_lines, cart_token, set_price, set_stock

# --- cart -----------------------------------------------------------------------------------------


def test_registration_creates_the_members_cart(app: Flask, make_user: Any) -> None:
    user = make_user("alice")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Cart)
                                 .where(Cart.user_id == user.id)) == 1


def test_visitor_adds_updates_and_removes(app: Flask, client: Any, shop: Any, make_product: Any) -> None:
    product = make_product("Field Notes", [("", "12.50", 10)])
    variant = product.variants[0]
    response = shop.add(product, 2)
    assert response.status_code == 302 and response.headers["Location"].endswith("/shop/cart")
    assert cart_lines(app) == {variant.id: 2}
    shop.add(product, 3)
    assert cart_lines(app) == {variant.id: 5}
    page = text_of(client.get("/shop/cart"))
    assert "$62.50" in page  # line total and cart total
    shop.update(product, 1)
    assert cart_lines(app) == {variant.id: 1}
    shop.update(product, 0)
    assert cart_lines(app) == {}
    shop.add(product, 1)
    shop.remove(product)
    assert cart_lines(app) == {}
    assert "Your cart is empty" in text_of(client.get("/shop/cart"))


def test_choosing_a_variant(app: Flask, shop: Any, make_product: Any) -> None:
    product = make_product("Shirt", [("M", "20.00", 4), ("L", "22.00", 9)])
    medium, large = product.variants
    shop.add(product, 1, variant=large)
    shop.add(product, 2, variant=medium)
    assert cart_lines(app) == {large.id: 1, medium.id: 2}
    shop.update(product, 3, variant=large)
    shop.remove(product, variant=medium)
    assert cart_lines(app) == {large.id: 3}


BAD_ADDS = [
    ({"quantity": "0"}, "at least 1"),
    ({"quantity": "-2"}, "at least 1"),
    ({"quantity": "1.5"}, "Not a valid integer"),
    ({"quantity": "lots"}, "Not a valid integer"),
    ({"quantity": ""}, "Say how many"),
    ({"quantity": "21"}, "from 1 to 20"),
    ({"quantity": "99999999999999999999"}, "from 1 to 20"),
    ({"quantity": "6"}, "Only 5 of Shirt — M left"),
    ({"product_id": "999999"}, "not for sale"),
    ({"product_id": "abc"}, "Not a valid id"),
    # Ids past the INTEGER column (and past SQLite's 64 bits) are form errors, not 500s.
    ({"product_id": str(2**31)}, "Not a valid id"),
    ({"product_id": str(2**63)}, "Not a valid id"),
    ({"product_id": "9" * 30}, "Not a valid id"),
    ({"product_id": "0"}, "Not a valid id"),
    ({"product_id": "\u0661"}, "Not a valid id"),
    ({"variant_id": str(2**31)}, "Not a valid id"),
    ({"variant_id": str(2**64)}, "Not a valid id"),
    ({"product_id": ""}, "Which product?"),
    ({"variant_id": ""}, "Please choose which Shirt"),
    ({"variant_id": "999999"}, "not available for Shirt"),
    ({"variant_id": "other-product"}, "not available for Shirt"),
    ({"variant_id": "sold-out"}, "sold out"),
]


@pytest.mark.parametrize(("change", "message"), BAD_ADDS)
def test_bad_add_is_refused_with_a_message_and_changes_nothing(
        app: Flask, client: Any, shop: Any, make_product: Any, change: dict[str, str],
        message: str) -> None:
    shirt = make_product("Shirt", [("M", "20.00", 5), ("XL", "20.00", 0)])
    other = make_product("Mug", [("", "8.00", 5)])
    shop.add(shirt, 1, variant=shirt.variants[0])
    before = cart_lines(app)
    data = {"product_id": str(shirt.id), "variant_id": str(shirt.variants[0].id), "quantity": "1"}
    data.update(change)
    data["variant_id"] = {"other-product": str(other.variants[0].id),
                          "sold-out": str(shirt.variants[1].id)}.get(data["variant_id"], data["variant_id"])
    if data["quantity"] == "6":
        data["quantity"] = "5"  # 1 already in the cart: 6 in all, 5 in stock
    response = client.post("/shop/cart/add", data={"csrf_token": cart_token(client), **data})
    assert response.status_code == 302
    assert message in text_of(client.get("/shop/cart"))
    assert cart_lines(app) == before


def test_add_without_csrf_token_is_refused(app: Flask, client: Any, make_product: Any) -> None:
    product = make_product("Mug")
    response = client.post("/shop/cart/add", data={"product_id": product.id, "quantity": 1})
    assert response.status_code == 400
    assert cart_lines(app) == {}


@pytest.mark.parametrize(("quantity", "message"), [
    ("6", "Only 5 of Mug left"), ("-1", "cannot be negative"), ("x", "Not a valid integer"),
    ("21", "from 1 to 20")])
def test_bad_update_changes_nothing(app: Flask, client: Any, shop: Any, make_product: Any,
                                    quantity: str, message: str) -> None:
    product = make_product("Mug", [("", "8.00", 5)])
    shop.add(product, 2)
    shop.update(product, quantity)
    assert message in text_of(client.get("/shop/cart"))
    assert cart_lines(app) == {product.variants[0].id: 2}


def test_update_or_remove_of_something_not_in_the_cart(app: Flask, client: Any, shop: Any,
                                                       make_product: Any) -> None:
    mug = make_product("Mug")
    pen = make_product("Pen")
    shop.add(mug, 1)
    shop.update(pen, 2)
    assert "not in your cart" in text_of(client.get("/shop/cart"))
    shop.remove(pen)
    assert "not in your cart" in text_of(client.get("/shop/cart"))
    assert cart_lines(app) == {mug.variants[0].id: 1}


def test_update_needs_the_variant_when_two_are_in_the_cart(app: Flask, client: Any, shop: Any,
                                                            make_product: Any) -> None:
    shirt = make_product("Shirt", [("M", "20.00", 4), ("L", "22.00", 9)])
    shop.add(shirt, 1, variant=shirt.variants[0])
    shop.add(shirt, 1, variant=shirt.variants[1])
    shop.update(shirt, 3)
    assert "say which option" in text_of(client.get("/shop/cart"))
    assert cart_lines(app) == {shirt.variants[0].id: 1, shirt.variants[1].id: 1}


def test_cart_warns_when_a_price_changed(app: Flask, client: Any, shop: Any, make_product: Any) -> None:
    product = make_product("Mug", [("", "8.00", 5)])
    shop.add(product, 2)
    set_price(app, product.variants[0].id, "9.50")
    page = text_of(client.get("/shop/cart"))
    assert "changed from $8.00 to $9.50" in page
    assert "$19.00" in page  # the line at today's price


def test_visitors_carts_are_their_own(app: Flask, make_product: Any) -> None:
    product = make_product("Mug")
    first, second = app.test_client(), app.test_client()
    from tests.conftest import ShopActions
    ShopActions(first).add(product, 2)
    assert "Your cart is empty" in text_of(second.get("/shop/cart"))
    assert "Mug" in text_of(first.get("/shop/cart"))


def test_member_without_a_cart_gets_one_on_first_add(app: Flask, auth: Any, shop: Any,
                                                     make_user: Any, make_product: Any) -> None:
    """Members who registered before the shop existed (the migration gives them one too)."""
    from sqlalchemy import delete

    from blog.database_session import transaction
    user = make_user("alice")
    with app.app_context(), transaction() as session:
        session.execute(delete(Cart).where(Cart.user_id == user.id))
    mug = make_product("Mug")
    auth.login("alice")
    shop.add(mug, 2)
    assert cart_lines(app, "alice") == {mug.variants[0].id: 2}


# --- merging a visitor's cart on login ------------------------------------------------------------


def test_login_merges_the_visitors_cart(app: Flask, client: Any, auth: Any, shop: Any,
                                        make_user: Any, make_product: Any) -> None:
    make_user("alice")
    mug = make_product("Mug", [("", "8.00", 10)])
    pen = make_product("Pen", [("", "2.00", 3)])
    auth.login("alice")
    shop.add(mug, 4)
    shop.add(pen, 1)
    auth.logout()
    shop.add(mug, 2)   # smaller than the member's 4: the member's stays
    shop.add(pen, 3)   # larger: taken
    response = auth.login("alice")
    assert response.status_code == 302
    assert "are now in your cart" in text_of(client.get("/shop/cart"))
    assert cart_lines(app, "alice") == {mug.variants[0].id: 4, pen.variants[0].id: 3}
    assert cart_lines(app) == {}  # the visitor's cart is gone


def test_merge_caps_at_stock_and_twice_changes_nothing(app: Flask, client: Any, auth: Any,
                                                       shop: Any, make_user: Any,
                                                       make_product: Any) -> None:
    make_user("alice")
    mug = make_product("Mug", [("", "8.00", 5)])
    shop.add(mug, 5)
    set_stock(app, mug.variants[0].id, 3)
    auth.login("alice")
    assert "lowered to what is in stock" in text_of(client.get("/shop/cart"))
    assert cart_lines(app, "alice") == {mug.variants[0].id: 3}
    auth.logout()
    shop.add(mug, 3)  # the same cart again
    auth.login("alice")
    assert cart_lines(app, "alice") == {mug.variants[0].id: 3}


def test_merge_drops_lines_no_longer_for_sale(app: Flask, client: Any, auth: Any, shop: Any,
                                              make_user: Any, make_product: Any) -> None:
    from blog.database_session import transaction
    make_user("alice")
    mug = make_product("Mug", [("", "8.00", 5)])
    pen = make_product("Pen", [("", "2.00", 5)])
    auth.login("alice")
    shop.add(mug, 1)
    auth.logout()
    shop.add(mug, 2)
    shop.add(pen, 1)
    set_stock(app, mug.variants[0].id, 0)
    with app.app_context(), transaction() as session:
        session.get(Product, pen.id).active = False
    auth.login("alice")
    assert cart_lines(app, "alice") == {}
    assert "lowered to what is in stock" in text_of(client.get("/shop/cart"))


def test_registering_keeps_the_visitors_cart(app: Flask, client: Any, shop: Any,
                                             make_product: Any) -> None:
    from tests.conftest import csrf_token
    mug = make_product("Mug")
    shop.add(mug, 2)
    client.post("/auth/register", data={
        "csrf_token": csrf_token(client, "/auth/register"), "username": "newbie",
        "email": "newbie@example.com", "password": PASSWORD, "confirm": PASSWORD})
    assert cart_lines(app, "newbie") == {mug.variants[0].id: 2}
