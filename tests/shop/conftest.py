"""What the shop's tests share: a buyer with a cart ready for checkout, and helpers that
read or change the database directly (stock, prices, cart lines, the last order)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from blog.accounts.models import User
from blog.database_session import transaction
from blog.extensions import db
from blog.shop.models import Cart, CartItem, Order, Product, Variant
from tests.conftest import create_product, csrf_token


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


def variant_stock(app: Flask, variant_id: int) -> int:
    """A variant's stock, read from the database."""
    with app.app_context():
        return db.session.scalar(select(Variant.stock).where(Variant.id == variant_id))


def cart_lines(app: Flask, username: str | None = None) -> dict[int, int]:
    """{variant id: quantity} of a member's cart, or of every visitor cart when None."""
    with app.app_context():
        stmt = select(CartItem.variant_id, CartItem.quantity).join(Cart)
        if username:
            stmt = stmt.join(User, User.id == Cart.user_id).where(User.username == username)
        else:
            stmt = stmt.where(Cart.user_id.is_(None))
        return dict(db.session.execute(stmt).all())


def set_stock(app: Flask, variant_id: int, stock: int) -> None:
    """Change a variant's stock behind the shop's back (a stock count, another sale)."""
    with app.app_context(), transaction() as session:
        session.get(Variant, variant_id).stock = stock


def set_price(app: Flask, variant_id: int, price: str) -> None:
    """Change a variant's price behind the shop's back."""
    with app.app_context(), transaction() as session:
        session.get(Variant, variant_id).price = Decimal(price)


def last_order(app: Flask, number: str | None = None) -> Order:
    """The newest order (or the one numbered ``number``) with its items, or None."""
    with app.app_context():
        stmt = select(Order).options(selectinload(Order.items)).order_by(Order.id.desc())
        if number:
            stmt = stmt.where(Order.number == number)
        return db.session.scalars(stmt).first()


def cart_token(client: Any) -> str:
    """A CSRF token from the cart page."""
    return csrf_token(client, "/shop/cart")


def fill_shop(count: int, variants: int, prefix: str = "Product") -> list[Product]:
    """``count`` products of ``variants`` variants each, in three categories (in an app context)."""
    return [create_product(f"{prefix} {n}", [(f"V{v}", f"{10 + v}.00", 5) for v in range(variants)],
                           category=f"Category {n % 3}")
            for n in range(count)]
