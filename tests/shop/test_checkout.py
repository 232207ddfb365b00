"""The shop through its pages: catalogue, product, cart, checkout and orders."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from blog.extensions import db
from blog.shop.models import Cart, CartItem, Order, OrderItem, Product, Variant
from tests.conftest import ADDRESS, PASSWORD, create_product, page_statements, text_of


def variant_stock(app: Flask, variant_id: int) -> int:
    with app.app_context():
        return db.session.scalar(select(Variant.stock).where(Variant.id == variant_id))


def cart_lines(app: Flask, username: str | None = None) -> dict[int, int]:
    """{variant id: quantity} of a member's cart, or of every visitor cart when None."""
    from blog.accounts.models import User

    with app.app_context():
        stmt = select(CartItem.variant_id, CartItem.quantity).join(Cart)
        if username:
            stmt = stmt.join(User, User.id == Cart.user_id).where(User.username == username)
        else:
            stmt = stmt.where(Cart.user_id.is_(None))
        return dict(db.session.execute(stmt).all())


# --- catalogue -----------------------------------------------------------------------------


def test_empty_shop(client: Any) -> None:
    response = client.get("/shop/")
    assert response.status_code == 200
    assert "Nothing for sale yet." in text_of(response)


def test_catalogue_lists_active_products_with_price_and_stock(client: Any, make_product: Any) -> None:
    make_product("Field Notes", [("", "12.50", 10)], category="Books")
    make_product("Harbour Print", [("A4 matte", "25.00", 2), ("A3 gloss", "40.00", 0)],
                 category="Prints")
    make_product("Old Mug", [("", "8.00", 3)], active=False)
    make_product("Sold Shirt", [("M", "20.00", 0), ("L", "20.00", 0)])
    page = text_of(client.get("/shop/"))
    assert "Field Notes" in page and "$12.50" in page and "In stock" in page
    assert "from $25.00" in page and "Only 2 left" in page
    assert "Old Mug" not in page
    assert "Sold out" in page
    assert "from $20.00" not in page  # equal prices: no "from"


@pytest.mark.parametrize(("query", "expected"), [
    ("q=notes", ["Field Notes"]),
    ("category=prints", ["Harbour Print"]),
    ("sort=price_asc", ["Cheap Pin", "Field Notes", "Harbour Print"]),
    ("sort=price_desc", ["Harbour Print", "Field Notes", "Cheap Pin"]),
    ("sort=name", ["Cheap Pin", "Field Notes", "Harbour Print"]),
    ("sort=newest", ["Harbour Print", "Field Notes", "Cheap Pin"]),
    ("sort=DROP TABLE", ["Harbour Print", "Field Notes", "Cheap Pin"]),  # unknown: newest
    ("q=100%25", []),
])
def test_catalogue_search_filter_and_sort(client: Any, make_product: Any, query: str,
                                          expected: list[str]) -> None:
    make_product("Cheap Pin", [("", "3.00", 10)])
    make_product("Field Notes", [("", "12.50", 10)], category="Books",
                 description="A pocket notebook.")
    make_product("Harbour Print", [("A4", "25.00", 2), ("A3", "40.00", 1)], category="Prints")
    page = text_of(client.get(f"/shop/?{query}"))
    names = [name for name in ("Cheap Pin", "Field Notes", "Harbour Print") if name in page]
    assert sorted(names, key=page.index) == expected


def test_unknown_category_is_404(client: Any) -> None:
    assert client.get("/shop/?category=nope").status_code == 404


def test_catalogue_pagination(app: Flask, client: Any, make_product: Any) -> None:
    app.config["PRODUCTS_PER_PAGE"] = 2
    for number in range(5):
        make_product(f"Thing {number}")
    assert client.get("/shop/?page=3").status_code == 200
    assert client.get("/shop/?page=4").status_code == 404
    assert client.get("/shop/?page=0").status_code == 404
    second = text_of(client.get("/shop/?page=2&sort=name"))
    assert "Thing 2" in second and "Thing 3" in second and "Thing 0" not in second
    assert "sort=name" in second  # pagination links keep the sort


# --- product page ----------------------------------------------------------------------------


def test_product_with_one_variant_has_no_choice(client: Any, make_product: Any) -> None:
    product = make_product("Field Notes", [("", "12.50", 2)])
    page = client.get(f"/shop/products/{product.slug}").get_data(as_text=True)
    assert 'name="variant_id"' not in page
    assert 'name="product_id"' in page and 'name="quantity"' in page
    assert "Only 2 left" in page and "$12.50" in page


def test_product_with_variants_offers_a_choice(client: Any, make_product: Any) -> None:
    product = make_product("Shirt", [("S", "20.00", 0), ("M", "20.00", 4), ("L", "22.00", 9)])
    page = text_of(client.get(f"/shop/products/{product.slug}"))
    assert '<select id="variant_id" name="variant_id"' in page
    assert page.count("<option") == 3
    assert "from $20.00" in page
    assert "disabled" in page.split("S —")[0].rsplit("<option", 1)[1]  # sold-out S is disabled


def test_sold_out_product_has_no_form(client: Any, make_product: Any) -> None:
    product = make_product("Gone", [("", "5.00", 0)])
    page = text_of(client.get(f"/shop/products/{product.slug}"))
    assert "Sold out" in page and "Add to cart" not in page


def test_inactive_product_is_404_but_admins_see_it(client: Any, auth: Any, make_user: Any,
                                                   make_product: Any) -> None:
    product = make_product("Retired", active=False)
    assert client.get(f"/shop/products/{product.slug}").status_code == 404
    make_user("bob")
    auth.login("bob")
    assert client.get(f"/shop/products/{product.slug}").status_code == 404
    auth.logout()
    make_user("root", admin=True)
    auth.login("root")
    assert "Not for sale" in text_of(client.get(f"/shop/products/{product.slug}"))


def test_unknown_product_is_404(client: Any) -> None:
    assert client.get("/shop/products/nothing").status_code == 404


# --- cart ------------------------------------------------------------------------------------


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
    ({"product_id": "abc"}, "Not a valid integer"),
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
    response = client.post("/shop/cart/add", data={"csrf_token": _token(client), **data})
    assert response.status_code == 302
    assert message in text_of(client.get("/shop/cart"))
    assert cart_lines(app) == before


def _token(client: Any) -> str:
    from tests.conftest import csrf_token
    return csrf_token(client, "/shop/cart")


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


def test_cart_warns_when_a_price_changed(app: Flask, client: Any, shop: Any, make_product: Any) -> None:
    product = make_product("Mug", [("", "8.00", 5)])
    shop.add(product, 2)
    _set_price(app, product.variants[0].id, "9.50")
    page = text_of(client.get("/shop/cart"))
    assert "changed from $8.00 to $9.50" in page
    assert "$19.00" in page  # the line at today's price


def _set_price(app: Flask, variant_id: int, price: str) -> None:
    from blog.database import transaction
    with app.app_context(), transaction() as session:
        session.get(Variant, variant_id).price = Decimal(price)


def test_visitors_carts_are_their_own(app: Flask, make_product: Any) -> None:
    product = make_product("Mug")
    first, second = app.test_client(), app.test_client()
    from tests.conftest import ShopActions
    ShopActions(first).add(product, 2)
    assert "Your cart is empty" in text_of(second.get("/shop/cart"))
    assert "Mug" in text_of(first.get("/shop/cart"))


# --- merging a visitor's cart on login -----------------------------------------------------


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
    _set_stock(app, mug.variants[0].id, 3)
    auth.login("alice")
    assert "lowered to what is in stock" in text_of(client.get("/shop/cart"))
    assert cart_lines(app, "alice") == {mug.variants[0].id: 3}
    auth.logout()
    shop.add(mug, 3)  # the same cart again
    auth.login("alice")
    assert cart_lines(app, "alice") == {mug.variants[0].id: 3}


def _set_stock(app: Flask, variant_id: int, stock: int) -> None:
    from blog.database import transaction
    with app.app_context(), transaction() as session:
        session.get(Variant, variant_id).stock = stock


def test_registering_keeps_the_visitors_cart(app: Flask, client: Any, shop: Any,
                                             make_product: Any) -> None:
    from tests.conftest import csrf_token
    mug = make_product("Mug")
    shop.add(mug, 2)
    client.post("/auth/register", data={
        "csrf_token": csrf_token(client, "/auth/register"), "username": "newbie",
        "email": "newbie@example.com", "password": PASSWORD, "confirm": PASSWORD})
    assert cart_lines(app, "newbie") == {mug.variants[0].id: 2}


# --- checkout ----------------------------------------------------------------------------


@pytest.fixture
def buyer(app: Flask, auth: Any, shop: Any, make_user: Any, make_product: Any,
          make_shipping: Any) -> dict[str, Any]:
    """alice, logged in, with 2 Mugs (8.00, 5 in stock) and 1 Shirt L (22.00) in her cart."""
    make_user("alice")
    mug = make_product("Mug", [("", "8.00", 5)], category="Kitchen")
    shirt = make_product("Shirt", [("M", "20.00", 4), ("L", "22.00", 9)])
    post = make_shipping("Post", "5.00")
    make_shipping("Courier", "15.00")
    auth.login("alice")
    shop.add(mug, 2)
    shop.add(shirt, 1, variant=shirt.variants[1])
    return {"mug": mug, "shirt": shirt, "post": post}


def _order(app: Flask, number: str | None = None) -> Order:
    from sqlalchemy.orm import selectinload
    with app.app_context():
        stmt = select(Order).options(selectinload(Order.items)).order_by(Order.id.desc())
        if number:
            stmt = stmt.where(Order.number == number)
        return db.session.scalars(stmt).first()


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
    order = _order(app)
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


def test_order_number_looks_human(app: Flask, shop: Any, buyer: Any) -> None:
    import re
    shop.checkout(buyer["post"])
    assert re.fullmatch(r"IW-[2-9A-HJKMNP-Z]{8}", _order(app).number)


def test_tax_is_charged_on_the_discounted_subtotal(app: Flask, shop: Any, buyer: Any) -> None:
    app.config["SHOP_TAX_RATE"] = "0.0825"
    _discount(app, "TENPC", percent="10")
    shop.checkout(buyer["post"], discount_code="tenpc")
    order = _order(app)
    # 38.00 - 3.80 = 34.20; tax 34.20 * 0.0825 = 2.8215 -> 2.82; 34.20 + 5.00 + 2.82 = 42.02
    assert (order.discount_amount, order.tax, order.total) == (
        Decimal("3.80"), Decimal("2.82"), Decimal("42.02"))
    assert order.discount_code == "TENPC"


def _discount(app: Flask, code: str, *, percent: str | None = None, amount: str | None = None,
              **fields: Any) -> int:
    from blog.database import transaction
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
    assert _order(app) is None
    assert variant_stock(app, buyer["mug"].variants[0].id) == 5


def test_unknown_discount_code(app: Flask, shop: Any, buyer: Any) -> None:
    response = shop.checkout(buyer["post"], discount_code="NOPE")
    assert "not valid" in text_of(response) and _order(app) is None


def test_fixed_discount_never_exceeds_the_subtotal(app: Flask, shop: Any, buyer: Any) -> None:
    _discount(app, "BIG", amount="100.00")
    shop.checkout(buyer["post"], discount_code="BIG")
    order = _order(app)
    assert (order.discount_amount, order.total) == (Decimal("38.00"), Decimal("5.00"))


@pytest.mark.parametrize(("fields", "field"), [
    ({"full_name": ""}, "full_name"), ({"address_line1": "  "}, "address_line1"),
    ({"city": ""}, "city"), ({"postal_code": "<script>"}, "postal_code"),
    ({"country": "x" * 101}, "country"), ({"shipping_method": "999999"}, "shipping_method"),
    ({"shipping_method": "abc"}, "shipping_method"), ({"checkout_token": ""}, "checkout_token"),
    ({"checkout_token": "x" * 65}, "checkout_token"),
])
def test_checkout_form_validation(app: Flask, client: Any, shop: Any, buyer: Any,
                                  fields: dict[str, str], field: str) -> None:
    token = fields.pop("checkout_token", None)
    response = shop.checkout(buyer["post"], **fields) if token is None else client.post(
        "/shop/checkout", data={"csrf_token": _token(client), "checkout_token": token,
                                "shipping_method": buyer["post"].id, **ADDRESS})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'class="errors"' in html or "form-errors" in html
    assert _order(app) is None
    assert variant_stock(app, buyer["mug"].variants[0].id) == 5


def test_inactive_shipping_method_is_refused(app: Flask, shop: Any, buyer: Any,
                                             make_shipping: Any) -> None:
    closed = make_shipping("Closed", "1.00", active=False)
    response = shop.checkout(closed)
    assert response.status_code == 200 and _order(app) is None


def test_out_of_stock_says_which_item_and_changes_nothing(app: Flask, shop: Any, buyer: Any) -> None:
    _set_stock(app, buyer["mug"].variants[0].id, 1)
    response = shop.checkout(buyer["post"])
    assert response.status_code == 200
    assert "Mug: only 1 left, you asked for 2" in text_of(response)
    assert _order(app) is None
    assert variant_stock(app, buyer["mug"].variants[0].id) == 1
    assert variant_stock(app, buyer["shirt"].variants[1].id) == 9  # taken, then rolled back
    assert len(cart_lines(app, "alice")) == 2


def test_deactivated_product_in_cart_blocks_checkout(app: Flask, shop: Any, buyer: Any) -> None:
    from blog.database import transaction
    with app.app_context(), transaction() as session:
        session.get(Product, buyer["mug"].id).active = False
    response = shop.checkout(buyer["post"])
    assert "no longer sold" in text_of(response) and _order(app) is None


def test_same_checkout_token_twice_gives_one_order(app: Flask, client: Any, shop: Any, buyer: Any) -> None:
    token = shop.checkout_token()
    first = shop.checkout(buyer["post"], token=token)
    second = shop.checkout(buyer["post"], token=token)
    assert first.headers["Location"] == second.headers["Location"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 1
    assert variant_stock(app, buyer["mug"].variants[0].id) == 3


def test_order_keeps_its_snapshot_when_the_product_changes(app: Flask, client: Any, shop: Any,
                                                           buyer: Any) -> None:
    from blog.database import transaction
    shop.checkout(buyer["post"])
    order = _order(app)
    with app.app_context(), transaction() as session:
        mug = session.get(Product, buyer["mug"].id)
        mug.name = "Renamed Mug"
        mug.active = False
        mug.variants[0].price = Decimal("99.00")
    page = text_of(client.get(f"/shop/orders/{order.number}"))
    assert "Renamed" not in page and "$99.00" not in page
    assert "Mug" in page and "$8.00" in page and "$43.00" in page


def test_price_at_purchase_is_the_current_price(app: Flask, client: Any, shop: Any, buyer: Any) -> None:
    _set_price(app, buyer["mug"].variants[0].id, "9.00")
    assert "Price changed from $8.00" in text_of(client.get("/shop/checkout"))
    shop.checkout(buyer["post"])
    order = _order(app)
    assert order.items[0].unit_price == Decimal("9.00") and order.subtotal == Decimal("40.00")


def test_database_refuses_a_total_that_does_not_add_up(app: Flask, buyer: Any, shop: Any) -> None:
    from sqlalchemy.exc import IntegrityError

    from blog.database import transaction
    shop.checkout(buyer["post"])
    order = _order(app)
    with app.app_context(), pytest.raises(IntegrityError), transaction() as session:
        session.get(Order, order.id).total = order.total + Decimal("0.01")


def test_database_refuses_negative_stock(app: Flask, make_product: Any) -> None:
    from sqlalchemy.exc import IntegrityError

    from blog.database import transaction
    product = make_product("Mug", [("", "8.00", 1)])
    with app.app_context(), pytest.raises(IntegrityError), transaction() as session:
        session.get(Variant, product.variants[0].id).stock = -1


# --- orders ------------------------------------------------------------------------------


def test_orders_list_is_the_members_own(app: Flask, client: Any, auth: Any, shop: Any, buyer: Any,
                                        make_user: Any) -> None:
    shop.checkout(buyer["post"])
    number = _order(app).number
    assert number in text_of(client.get("/shop/orders"))
    auth.logout()
    make_user("bob")
    auth.login("bob")
    page = text_of(client.get("/shop/orders"))
    assert number not in page and "not ordered anything yet" in page


def test_other_members_orders_are_404(app: Flask, client: Any, auth: Any, shop: Any, buyer: Any,
                                      make_user: Any) -> None:
    from tests.conftest import csrf_token
    shop.checkout(buyer["post"])
    number = _order(app).number
    auth.logout()
    assert client.get(f"/shop/orders/{number}").status_code == 302  # anonymous: log in first
    make_user("bob")
    auth.login("bob")
    assert client.get(f"/shop/orders/{number}").status_code == 404
    assert client.get("/shop/orders/IW-NOTHING").status_code == 404
    response = client.post(f"/shop/orders/{number}/cancel",
                           data={"csrf_token": csrf_token(client, "/shop/cart")})
    assert response.status_code == 404
    assert _order(app).status == "pending"
    auth.logout()
    make_user("root", admin=True)
    auth.login("root")
    assert client.get(f"/shop/orders/{number}").status_code == 200
    response = client.post(f"/shop/orders/{number}/cancel",
                           data={"csrf_token": csrf_token(client, "/shop/cart")})
    assert response.status_code == 403


def test_owner_cancels_a_pending_order_and_stock_returns_once(app: Flask, client: Any, shop: Any,
                                                              buyer: Any) -> None:
    from tests.conftest import csrf_token
    shop.checkout(buyer["post"])
    number = _order(app).number
    page = text_of(client.get(f"/shop/orders/{number}"))
    assert "Cancel this order" in page
    for _ in range(2):
        client.post(f"/shop/orders/{number}/cancel", data={"csrf_token": csrf_token(client, "/shop/cart")})
    assert _order(app).status == "cancelled"
    assert variant_stock(app, buyer["mug"].variants[0].id) == 5
    assert variant_stock(app, buyer["shirt"].variants[1].id) == 9
    assert "can no longer be cancelled" in text_of(client.get(f"/shop/orders/{number}"))


def test_owner_cannot_cancel_once_paid(app: Flask, client: Any, shop: Any, buyer: Any) -> None:
    from blog.shop import orders
    from tests.conftest import csrf_token
    shop.checkout(buyer["post"])
    order = _order(app)
    with app.app_context():
        orders.change_status(order, "paid")
    assert "Cancel this order" not in text_of(client.get(f"/shop/orders/{order.number}"))
    client.post(f"/shop/orders/{order.number}/cancel", data={"csrf_token": csrf_token(client, "/shop/cart")})
    assert _order(app).status == "paid"
    assert variant_stock(app, buyer["mug"].variants[0].id) == 3


def test_orders_pagination(app: Flask, client: Any, shop: Any, buyer: Any) -> None:
    app.config["ORDERS_PER_PAGE"] = 1
    shop.checkout(buyer["post"])
    shop.add(buyer["mug"], 1)
    shop.checkout(buyer["post"])
    assert client.get("/shop/orders?page=2").status_code == 200
    assert client.get("/shop/orders?page=3").status_code == 404


# --- statement counts ------------------------------------------------------------------------


def _fill_shop(count: int, variants: int, prefix: str = "Product") -> list[Product]:
    return [create_product(f"{prefix} {n}", [(f"V{v}", f"{10 + v}.00", 5) for v in range(variants)],
                           category=f"Category {n % 3}")
            for n in range(count)]


@pytest.mark.parametrize("path", ["/shop/", "/shop/?q=product&sort=price_desc",
                                  "/shop/?category=category-1&sort=name"])
def test_catalogue_statements_do_not_grow(app: Flask, client: Any, path: str) -> None:
    with app.app_context():
        _fill_shop(2, 1)
    small = page_statements(client, path).count
    with app.app_context():
        _fill_shop(12, 4, prefix="More product")
    assert page_statements(client, path).count == small == 3  # categories, count, products


def test_product_page_statements_do_not_grow(app: Flask, client: Any) -> None:
    with app.app_context():
        one = create_product("One")
        many = create_product("Many", [(f"V{v}", "10.00", 5) for v in range(15)])
    assert page_statements(client, f"/shop/products/{one.slug}").count == 2
    assert page_statements(client, f"/shop/products/{many.slug}").count == 2


def test_cart_checkout_and_order_statements_do_not_grow(app: Flask, client: Any, shop: Any,
                                                         buyer: Any) -> None:
    counts = {path: page_statements(client, path).count for path in ("/shop/cart", "/shop/checkout")}
    with app.app_context():
        products = _fill_shop(6, 2)
    for product in products:
        shop.add(product, 1, variant=product.variants[1])
    assert {path: page_statements(client, path).count for path in counts} == counts
    assert counts == {"/shop/cart": 3, "/shop/checkout": 4}  # + user, shipping methods
    shop.checkout(buyer["post"])
    order = _order(app)
    assert len(order.items) == 8
    assert page_statements(client, f"/shop/orders/{order.number}").count == 3  # user, order, lines
    assert page_statements(client, "/shop/orders").count == 3  # user, count, orders


def test_order_item_line_total_in_sql(app: Flask, shop: Any, buyer: Any) -> None:
    shop.checkout(buyer["post"])
    with app.app_context():
        total = db.session.scalar(select(func.sum(OrderItem.line_total)))
        cart_total = db.session.scalar(select(func.sum(CartItem.line_total)))
    assert total == Decimal("38.00") and cart_total is None


# --- edges of the services ---------------------------------------------------------------


def test_member_without_a_cart_gets_one_on_first_add(app: Flask, auth: Any, shop: Any,
                                                     make_user: Any, make_product: Any) -> None:
    """Members who registered before the shop existed (the migration gives them one too)."""
    from sqlalchemy import delete

    from blog.database import transaction
    user = make_user("alice")
    with app.app_context(), transaction() as session:
        session.execute(delete(Cart).where(Cart.user_id == user.id))
    mug = make_product("Mug")
    auth.login("alice")
    shop.add(mug, 2)
    assert cart_lines(app, "alice") == {mug.variants[0].id: 2}


def test_merge_drops_lines_no_longer_for_sale(app: Flask, client: Any, auth: Any, shop: Any,
                                              make_user: Any, make_product: Any) -> None:
    from blog.database import transaction
    make_user("alice")
    mug = make_product("Mug", [("", "8.00", 5)])
    pen = make_product("Pen", [("", "2.00", 5)])
    auth.login("alice")
    shop.add(mug, 1)
    auth.logout()
    shop.add(mug, 2)
    shop.add(pen, 1)
    _set_stock(app, mug.variants[0].id, 0)
    with app.app_context(), transaction() as session:
        session.get(Product, pen.id).active = False
    auth.login("alice")
    assert cart_lines(app, "alice") == {}
    assert "lowered to what is in stock" in text_of(client.get("/shop/cart"))


def test_update_needs_the_variant_when_two_are_in_the_cart(app: Flask, client: Any, shop: Any,
                                                            make_product: Any) -> None:
    shirt = make_product("Shirt", [("M", "20.00", 4), ("L", "22.00", 9)])
    shop.add(shirt, 1, variant=shirt.variants[0])
    shop.add(shirt, 1, variant=shirt.variants[1])
    shop.update(shirt, 3)
    assert "say which option" in text_of(client.get("/shop/cart"))
    assert cart_lines(app) == {shirt.variants[0].id: 1, shirt.variants[1].id: 1}


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


def test_empty_cart_checkout_post_is_refused(app: Flask, client: Any, shop: Any, buyer: Any) -> None:
    token = shop.checkout_token()
    shop.remove(buyer["mug"])
    shop.remove(buyer["shirt"])
    response = shop.checkout(buyer["post"], token=token)
    assert response.status_code == 200 and "Your cart is empty" in text_of(response)
