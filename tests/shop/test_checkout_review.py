"""The checkout page shows what the order will cost, and never charges anything else: "Review
order" prices the exact order (shipping choice and discount code) without placing it, and an
order whose total moved since the customer last saw it is shown again instead of placed."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from flask import Flask

from blog.database_session import transaction
from blog.shop.models import PercentageDiscount
from tests.conftest import ADDRESS, text_of
from tests.shop.conftest import cart_lines, cart_token, last_order, set_price, variant_stock


def _seen_total(html: str) -> str:
    match = re.search(r'name="seen_total" type="hidden" value="([^"]*)"', html)
    assert match, "no seen_total on the checkout page"
    return match.group(1)


def _token(html: str) -> str:
    match = re.search(r'name="checkout_token" type="hidden" value="([^"]+)"', html)
    assert match
    return match.group(1)


def _form(client: Any, page: str, shipping: Any, **fields: Any) -> dict[str, Any]:
    return {"csrf_token": cart_token(client), "checkout_token": _token(page),
            "seen_total": _seen_total(page), "shipping_method": shipping.id, "discount_code": "",
            **ADDRESS, **fields}


def _percent(app: Flask, code: str, percent: str) -> None:
    with app.app_context(), transaction() as session:
        session.add(PercentageDiscount(code=code, percent=Decimal(percent)))


def test_first_page_shows_the_exact_total_of_the_default_choice(app: Flask, client: Any, shop: Any,
                                                                buyer: Any) -> None:
    app.config["SHOP_TAX_RATE"] = "0.0825"
    page = client.get("/shop/checkout").get_data(as_text=True)
    # 38.00 + 5.00 shipping (cheapest, preselected) + 3.14 tax (8.25% of 38.00, half-up)
    assert "$46.14" in text_of(client.get("/shop/checkout"))
    assert _seen_total(page) == "46.14"
    assert 'name="action"' in page and 'value="review"' in page
    response = client.post("/shop/checkout", data=_form(client, page, buyer["post"]))
    assert response.status_code == 302
    assert last_order(app).total == Decimal("46.14")


def test_review_prices_shipping_and_code_without_placing(app: Flask, client: Any, buyer: Any,
                                                         make_shipping: Any) -> None:
    app.config["SHOP_TAX_RATE"] = "0.0825"
    _percent(app, "TENPC", "10")
    courier = make_shipping("Express", "15.00")
    page = client.get("/shop/checkout").get_data(as_text=True)
    # A review needs no address: only what the price depends on.
    response = client.post("/shop/checkout", data={
        "csrf_token": cart_token(client), "checkout_token": _token(page), "seen_total": _seen_total(page),
        "shipping_method": courier.id, "discount_code": "tenpc", "action": "review"})
    assert response.status_code == 200
    reviewed = response.get_data(as_text=True)
    # 38.00 - 3.80 = 34.20; tax 2.82; + 15.00 shipping = 52.02
    assert "-$3.80" in text_of(response) and "$52.02" in text_of(response)
    assert _seen_total(reviewed) == "52.02"
    assert 'class="errors"' not in reviewed and "form-errors" not in reviewed
    assert last_order(app) is None and len(cart_lines(app, "alice")) == 2
    assert variant_stock(app, buyer["mug"].variants[0].id) == 5

    response = client.post("/shop/checkout", data=_form(client, reviewed, courier, discount_code="tenpc"))
    assert response.status_code == 302
    order = last_order(app)
    assert (order.discount_amount, order.shipping_price, order.total) == (
        Decimal("3.80"), Decimal("15.00"), Decimal("52.02"))


def test_review_of_a_bad_code_says_so_and_places_nothing(app: Flask, client: Any, buyer: Any) -> None:
    page = client.get("/shop/checkout").get_data(as_text=True)
    response = client.post("/shop/checkout", data=_form(client, page, buyer["post"], discount_code="NOPE",
                                                        action="review"))
    assert response.status_code == 200
    assert "not valid" in text_of(response) and last_order(app) is None


def test_price_changed_since_the_page_was_shown_is_not_charged(app: Flask, client: Any,
                                                               buyer: Any) -> None:
    page = client.get("/shop/checkout").get_data(as_text=True)
    assert _seen_total(page) == "43.00"
    set_price(app, buyer["mug"].variants[0].id, "9.50")  # 2 x 9.50 + 22.00 + 5.00 = 46.00
    response = client.post("/shop/checkout", data=_form(client, page, buyer["post"]))
    assert response.status_code == 200
    text = text_of(response)
    assert "The total changed to $46.00; please check it and place the order again." in text
    assert last_order(app) is None
    assert variant_stock(app, buyer["mug"].variants[0].id) == 5 and len(cart_lines(app, "alice")) == 2
    again = response.get_data(as_text=True)
    assert _seen_total(again) == "46.00" and _token(again) == _token(page)
    response = client.post("/shop/checkout", data=_form(client, again, buyer["post"]))
    assert response.status_code == 302 and last_order(app).total == Decimal("46.00")


def test_code_typed_without_review_shows_the_new_total_first(app: Flask, client: Any, buyer: Any) -> None:
    _percent(app, "TENPC", "10")
    page = client.get("/shop/checkout").get_data(as_text=True)
    response = client.post("/shop/checkout", data=_form(client, page, buyer["post"], discount_code="TENPC"))
    assert response.status_code == 200
    assert "The total changed to $39.20" in text_of(response) and last_order(app) is None
    response = client.post("/shop/checkout", data=_form(client, response.get_data(as_text=True),
                                                        buyer["post"], discount_code="TENPC"))
    assert response.status_code == 302 and last_order(app).total == Decimal("39.20")


def test_mangled_seen_total_is_not_charged(app: Flask, client: Any, buyer: Any) -> None:
    page = client.get("/shop/checkout").get_data(as_text=True)
    for bad in ("abc", "-1", "43.001", "1e400", "43.00" * 50):
        response = client.post("/shop/checkout", data=_form(client, page, buyer["post"], seen_total=bad))
        assert response.status_code == 200 and "The total changed to $43.00" in text_of(response)
    assert last_order(app) is None
