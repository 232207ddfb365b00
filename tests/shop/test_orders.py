"""The order state machine: every (state, move) pair, and stock returned exactly once."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from blog.database import transaction
from blog.extensions import db
from blog.shop import orders
from blog.shop.models import Order, OrderStatus, Variant
from blog.shop.services import ShopError

ALLOWED = {
    ("pending", "paid"), ("pending", "cancelled"),
    ("paid", "shipped"), ("paid", "cancelled"),
    ("shipped", "delivered"),
}
PAIRS = [(old, new) for old in OrderStatus.ALL for new in OrderStatus.ALL]


@pytest.fixture
def placed(app: Flask, shop: Any, auth: Any, make_user: Any, make_product: Any,
           make_shipping: Any) -> dict[str, Any]:
    """An order for 2 of a mug (5 in stock before, 3 after)."""
    make_user("alice")
    mug = make_product("Mug", [("", "8.00", 5)])
    post = make_shipping()
    auth.login("alice")
    shop.add(mug, 2)
    shop.checkout(post)
    with app.app_context():
        order = db.session.scalars(select(Order)).one()
    return {"order": order, "variant_id": mug.variants[0].id}


def _force(app: Flask, order: Order, status: str) -> None:
    with app.app_context(), transaction() as session:
        session.execute(update(Order).where(Order.id == order.id).values(status=status))


def _state(app: Flask, placed: dict[str, Any]) -> tuple[str, int]:
    with app.app_context():
        status = db.session.scalar(select(Order.status).where(Order.id == placed["order"].id))
        stock = db.session.scalar(select(Variant.stock).where(Variant.id == placed["variant_id"]))
    return status, stock


def test_transitions_table_is_the_documented_one() -> None:
    assert {(old, new) for old, news in orders.TRANSITIONS.items() for new in news} == ALLOWED
    assert set(orders.TRANSITIONS) == set(OrderStatus.ALL)


@pytest.mark.parametrize(("old", "new"), PAIRS)
def test_every_state_and_move(app: Flask, placed: dict[str, Any], old: str, new: str) -> None:
    _force(app, placed["order"], old)
    with app.app_context():
        order = db.session.get(Order, placed["order"].id)
        if (old, new) in ALLOWED:
            orders.change_status(order, new)
            assert order.status == new
        else:
            with pytest.raises(ShopError, match="cannot be marked"):
                orders.change_status(order, new)
    status, stock = _state(app, placed)
    assert status == (new if (old, new) in ALLOWED else old)
    assert stock == (5 if (old, new) in ALLOWED and new == "cancelled" else 3)


def test_a_stale_order_cannot_be_moved_twice(app: Flask, placed: dict[str, Any]) -> None:
    """Two admins look at the same pending order; both press cancel. Stock comes back once."""
    with app.app_context():
        first = db.session.get(Order, placed["order"].id)
    with app.app_context():
        second = db.session.get(Order, placed["order"].id)
    with app.app_context():
        orders.change_status(first, "cancelled")
    with app.app_context(), pytest.raises(ShopError, match="changed by someone else"):
        orders.change_status(second, "cancelled")
    assert _state(app, placed) == ("cancelled", 5)


def test_status_changes_are_announced_in_the_transaction(app: Flask, placed: dict[str, Any]) -> None:
    seen: list[tuple[str, str]] = []

    def listener(sender: Any, order: Order, old: str, new: str, actor: Any, **extra: Any) -> None:
        seen.append((old, new))

    with orders.order_status_changed.connected_to(listener), app.app_context():
        orders.change_status(db.session.get(Order, placed["order"].id), "paid")
    assert seen == [("pending", "paid")]


def test_database_refuses_an_unknown_status(app: Flask, placed: dict[str, Any]) -> None:
    from sqlalchemy.exc import IntegrityError
    with pytest.raises(IntegrityError):
        _force(app, placed["order"], "lost")
