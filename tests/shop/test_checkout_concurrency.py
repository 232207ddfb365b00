"""Checkout under real concurrency: threads, each with its own client, request context and
database session, against the real database (a SQLite file, or PostgreSQL in CI).

A barrier releases the requests together, so they overlap inside the checkout transaction;
on SQLite they queue on ``BEGIN IMMEDIATE``, on PostgreSQL on row locks.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from blog.accounts import services as accounts
from blog.database_session import transaction
from blog.extensions import db
from blog.shop.models import Cart, CartItem, Discount, Order, PercentageDiscount, Variant
from tests.conftest import ADDRESS, PASSWORD, AuthActions, create_product, create_shipping, csrf_token


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # Enough pooled connections for every thread at once on PostgreSQL; no rate limits.
    return {"DB_POOL_SIZE": 25, "DB_MAX_OVERFLOW": 5, "RATELIMIT_ENABLED": False}


def run_together(workers: list[Callable[[], Any]]) -> list[Any]:
    """Run ``workers`` in threads released at the same moment; return results or exceptions."""
    barrier = threading.Barrier(len(workers))
    results: list[Any] = [None] * len(workers)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = workers[index]()
        except BaseException as error:  # noqa: BLE001 - reported by the test, not lost in the thread
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a checkout never finished"
    return results


def _buyer(app: Flask, username: str, variant_id: int, quantity: int = 1) -> FlaskClient:
    """A logged-in client for a new member with ``quantity`` of the variant in their cart."""
    with app.app_context():
        user = accounts.create_user(username, f"{username}@example.com", PASSWORD)
        with transaction() as session:
            cart = session.scalar(select(Cart).where(Cart.user_id == user.id))
            session.add(CartItem(cart_id=cart.id, variant_id=variant_id, quantity=quantity,
                                 unit_price=session.get(Variant, variant_id).price))
    client = app.test_client()
    assert AuthActions(client).login(username).status_code == 302
    return client


def _checkout_form(client: FlaskClient, shipping_id: int, **fields: str) -> dict[str, Any]:
    page = client.get("/shop/checkout").get_data(as_text=True)
    token = re.search(r'name="checkout_token" type="hidden" value="([^"]+)"', page).group(1)
    return {"csrf_token": csrf_token(client, "/shop/cart"), "checkout_token": token,
            "shipping_method": shipping_id, "discount_code": "", **ADDRESS, **fields}


def _post(client: FlaskClient, form: dict[str, Any]) -> Callable[[], Any]:
    return lambda: client.post("/shop/checkout", data=form)


def _counts(app: Flask, variant_id: int) -> tuple[int, int]:
    with app.app_context():
        orders = db.session.scalar(select(func.count()).select_from(Order))
        stock = db.session.scalar(select(Variant.stock).where(Variant.id == variant_id))
    return orders, stock


def test_twenty_buyers_for_five_units(committed_app: Flask) -> None:
    app = committed_app
    with app.app_context():
        variant_id = create_product("Last Print", [("", "30.00", 5)]).variants[0].id
        shipping_id = create_shipping().id
    clients = [_buyer(app, f"buyer{n}", variant_id) for n in range(20)]
    forms = [_checkout_form(client, shipping_id) for client in clients]

    responses = run_together([_post(client, form) for client, form in zip(clients, forms, strict=True)])

    errors = [r for r in responses if isinstance(r, BaseException) or r.status_code >= 500]
    assert not errors, errors
    placed = [r for r in responses if r.status_code == 302]
    refused = [r for r in responses if r.status_code == 200]
    assert len(placed) == 5 and len(refused) == 15
    for response in refused:
        assert "Last Print: sold out" in response.get_data(as_text=True)
    assert _counts(app, variant_id) == (5, 0)


def test_one_token_submitted_five_times_at_once_gives_one_order(committed_app: Flask) -> None:
    app = committed_app
    with app.app_context():
        variant_id = create_product("Mug", [("", "8.00", 10)]).variants[0].id
        shipping_id = create_shipping().id
    first = _buyer(app, "alice", variant_id, quantity=2)
    form = _checkout_form(first, shipping_id)
    # Five tabs of one browser: the same session cookie, the same form.
    clients = [first] + [app.test_client() for _ in range(4)]
    for client in clients[1:]:
        client.set_cookie("session", first.get_cookie("session").value)

    responses = run_together([_post(client, form) for client in clients])

    errors = [r for r in responses if isinstance(r, BaseException) or r.status_code != 302]
    assert not errors, [getattr(r, "status_code", r) for r in errors]
    assert len({r.headers["Location"] for r in responses}) == 1
    assert "/shop/orders/IW-" in responses[0].headers["Location"]
    assert _counts(app, variant_id) == (1, 8)


def test_discount_limited_to_three_uses_is_used_three_times(committed_app: Flask) -> None:
    app = committed_app
    with app.app_context():
        variant_id = create_product("Zine", [("", "10.00", 100)]).variants[0].id
        shipping_id = create_shipping().id
        with transaction() as session:
            session.add(PercentageDiscount(code="THREE", percent=Decimal(50), usage_limit=3))
    clients = [_buyer(app, f"reader{n}", variant_id) for n in range(10)]
    forms = [_checkout_form(client, shipping_id, discount_code="three") for client in clients]

    responses = run_together([_post(client, form) for client, form in zip(clients, forms, strict=True)])

    errors = [r for r in responses if isinstance(r, BaseException) or r.status_code >= 500]
    assert not errors, errors
    assert sum(r.status_code == 302 for r in responses) == 3
    for response in (r for r in responses if r.status_code == 200):
        assert "has been used up" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Discount.times_used).where(Discount.code == "THREE")) == 3
        discounted = db.session.scalar(select(func.count()).select_from(Order)
                                       .where(Order.discount_code == "THREE"))
    assert discounted == 3
    assert _counts(app, variant_id) == (3, 97)


def test_one_customer_cannot_exceed_the_per_customer_limit(committed_app: Flask) -> None:
    """Five tabs of one member each add to the cart and check out with a code allowed once
    per customer, three rounds at once. The first checkout places the order; every later one
    finds the code used (the refusal keeps the cart, so the next add makes it non-empty)."""
    app = committed_app
    with app.app_context():
        product = create_product("Zine", [("", "10.00", 100)])
        product_id, variant_id = product.id, product.variants[0].id
        shipping_id = create_shipping().id
        with transaction() as session:
            session.add(PercentageDiscount(code="ONCE", percent=Decimal(50), per_customer_limit=1))
    first = _buyer(app, "alice", variant_id)
    clients = [first] + [app.test_client() for _ in range(4)]
    for client in clients[1:]:
        client.set_cookie("session", first.get_cookie("session").value)
    tokens = [csrf_token(client, "/shop/cart") for client in clients]

    def shopper(index: int) -> list[Any]:
        client, token = clients[index], tokens[index]
        responses = []
        for round_ in range(3):
            client.post("/shop/cart/add", data={"csrf_token": token, "product_id": product_id, "quantity": 1})
            responses.append(client.post("/shop/checkout", data={
                "csrf_token": token, "checkout_token": f"tab{index}-round{round_}",
                "shipping_method": shipping_id, "discount_code": "once", **ADDRESS}))
        return responses

    results = run_together([lambda i=i: shopper(i) for i in range(len(clients))])

    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    responses = [response for result in results for response in result]
    assert not [r for r in responses if r.status_code >= 500]
    assert sum(r.status_code == 302 for r in responses) == 1
    assert any("once per customer" in r.get_data(as_text=True) for r in responses)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)
                                 .where(Order.discount_code == "ONCE")) == 1
        assert db.session.scalar(select(Discount.times_used).where(Discount.code == "ONCE")) == 1
