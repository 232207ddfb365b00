"""Orders: the state machine (every (state, move) pair, stock returned exactly once) and the
member's order pages (their own list, cancelling, a snapshot that does not change)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from blog.database_session import transaction
from blog.extensions import db
from blog.shop import orders
from blog.shop.errors import ShopError
from blog.shop.models import CartItem, Order, OrderItem, OrderStatus, Product, Variant
from tests.conftest import text_of
from tests.shop.conftest import last_order, variant_stock

ALLOWED = {
    ("pending", "paid"), ("pending", "cancelled"),
    ("paid", "shipped"), ("paid", "cancelled"),
    ("shipped", "delivered"),
}
PAIRS = [(old, new) for old in OrderStatus.ALL for new in OrderStatus.ALL]


def _force(app: Flask, order: Order, status: str) -> None:
    with app.app_context(), transaction() as session:
        session.execute(update(Order).where(Order.id == order.id).values(status=status))


def _state(app: Flask, placed_order: dict[str, Any]) -> tuple[str, int]:
    with app.app_context():
        status = db.session.scalar(select(Order.status).where(Order.id == placed_order["order"].id))
        stock = db.session.scalar(select(Variant.stock).where(Variant.id == placed_order["variant_id"]))
    return status, stock


def test_transitions_table_is_the_documented_one() -> None:
    assert {(old, new) for old, news in orders.TRANSITIONS.items() for new in news} == ALLOWED
    assert set(orders.TRANSITIONS) == set(OrderStatus.ALL)


@pytest.mark.parametrize(("old", "new"), PAIRS)
def test_every_state_and_move(app: Flask, placed_order: dict[str, Any], old: str, new: str) -> None:
    _force(app, placed_order["order"], old)
    with app.app_context():
        order = db.session.get(Order, placed_order["order"].id)
        if (old, new) in ALLOWED:
            orders.change_status(order, new)
            assert order.status == new
        else:
            with pytest.raises(ShopError, match="cannot be marked"):
                orders.change_status(order, new)
    status, stock = _state(app, placed_order)
    assert status == (new if (old, new) in ALLOWED else old)
    assert stock == (5 if (old, new) in ALLOWED and new == "cancelled" else 3)


def test_a_stale_order_cannot_be_moved_twice(app: Flask, placed_order: dict[str, Any]) -> None:
    """Two admins look at the same pending order; both press cancel. Stock comes back once."""
    with app.app_context():
        first = db.session.get(Order, placed_order["order"].id)
    with app.app_context():
        second = db.session.get(Order, placed_order["order"].id)
    with app.app_context():
        orders.change_status(first, "cancelled")
    with app.app_context(), pytest.raises(ShopError, match="changed by someone else"):
        orders.change_status(second, "cancelled")
    assert _state(app, placed_order) == ("cancelled", 5)


def test_status_changes_are_announced_in_the_transaction(app: Flask, placed_order: dict[str, Any]) -> None:
    seen: list[tuple[str, str]] = []

    def listener(sender: Any, order: Order, old: str, new: str, actor: Any, **extra: Any) -> None:
        seen.append((old, new))

    with orders.order_status_changed.connected_to(listener), app.app_context():
        orders.change_status(db.session.get(Order, placed_order["order"].id), "paid")
    assert seen == [("pending", "paid")]


def test_database_refuses_an_unknown_status(app: Flask, placed_order: dict[str, Any]) -> None:
    from sqlalchemy.exc import IntegrityError
    with pytest.raises(IntegrityError):
        _force(app, placed_order["order"], "lost")


# --- the member's order pages ---------------------------------------------------------------------


def test_orders_list_is_the_members_own(client: Any, auth: Any, placed_order: dict[str, Any],
                                        make_user: Any) -> None:
    number = placed_order["number"]
    assert number in text_of(client.get("/shop/orders"))
    auth.logout()
    make_user("bob")
    auth.login("bob")
    page = text_of(client.get("/shop/orders"))
    assert number not in page and "not ordered anything yet" in page


def test_other_members_orders_are_404(app: Flask, client: Any, auth: Any, placed_order: dict[str, Any],
                                      make_user: Any) -> None:
    from tests.conftest import csrf_token
    number = placed_order["number"]
    auth.logout()
    assert client.get(f"/shop/orders/{number}").status_code == 302  # anonymous: log in first
    make_user("bob")
    auth.login("bob")
    assert client.get(f"/shop/orders/{number}").status_code == 404
    assert client.get("/shop/orders/IW-NOTHING").status_code == 404
    response = client.post(f"/shop/orders/{number}/cancel",
                           data={"csrf_token": csrf_token(client, "/shop/cart")})
    assert response.status_code == 404
    assert last_order(app).status == "pending"
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
    number = last_order(app).number
    page = text_of(client.get(f"/shop/orders/{number}"))
    assert "Cancel this order" in page
    for _ in range(2):
        client.post(f"/shop/orders/{number}/cancel", data={"csrf_token": csrf_token(client, "/shop/cart")})
    assert last_order(app).status == "cancelled"
    assert variant_stock(app, buyer["mug"].variants[0].id) == 5
    assert variant_stock(app, buyer["shirt"].variants[1].id) == 9
    assert "can no longer be cancelled" in text_of(client.get(f"/shop/orders/{number}"))


def test_owner_cannot_cancel_once_paid(app: Flask, client: Any, placed_order: dict[str, Any]) -> None:
    from blog.shop import orders
    from tests.conftest import csrf_token
    order = placed_order["order"]
    with app.app_context():
        orders.change_status(order, "paid")
    assert "Cancel this order" not in text_of(client.get(f"/shop/orders/{order.number}"))
    client.post(f"/shop/orders/{order.number}/cancel", data={"csrf_token": csrf_token(client, "/shop/cart")})
    assert last_order(app).status == "paid"
    assert variant_stock(app, placed_order["mug"].variants[0].id) == 3


def test_orders_pagination(app: Flask, client: Any, shop: Any, placed_order: dict[str, Any]) -> None:
    app.config["ORDERS_PER_PAGE"] = 1
    shop.add(placed_order["mug"], 1)
    shop.checkout(placed_order["post"])
    assert client.get("/shop/orders?page=2").status_code == 200
    assert client.get("/shop/orders?page=3").status_code == 404


def test_order_keeps_its_snapshot_when_the_product_changes(app: Flask, client: Any, shop: Any,
                                                           buyer: Any) -> None:
    from blog.database_session import transaction
    shop.checkout(buyer["post"])
    order = last_order(app)
    with app.app_context(), transaction() as session:
        mug = session.get(Product, buyer["mug"].id, options=[selectinload(Product.variants)])
        mug.name = "Renamed Mug"
        mug.active = False
        mug.variants[0].price = Decimal("99.00")
    page = text_of(client.get(f"/shop/orders/{order.number}"))
    assert "Renamed" not in page and "$99.00" not in page
    assert "Mug" in page and "$8.00" in page and "$43.00" in page


def test_database_refuses_a_total_that_does_not_add_up(app: Flask, placed_order: dict[str, Any]) -> None:
    from sqlalchemy.exc import IntegrityError

    from blog.database_session import transaction
    order = placed_order["order"]
    with app.app_context(), pytest.raises(IntegrityError), transaction() as session:
        session.get(Order, order.id).total = order.total + Decimal("0.01")


def test_order_item_line_total_in_sql(app: Flask, shop: Any, buyer: Any) -> None:
    shop.checkout(buyer["post"])
    with app.app_context():
        total = db.session.scalar(select(func.sum(OrderItem.line_total)))
        cart_total = db.session.scalar(select(func.sum(CartItem.line_total)))
    assert total == Decimal("38.00") and cart_total is None
