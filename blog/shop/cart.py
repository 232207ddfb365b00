"""Carts: adding, changing and removing lines, and merging a visitor's cart on login.

A member's cart is made in the registration transaction (the accounts domain announces the
new user with a signal; :func:`_create_member_cart` listens). A visitor's cart is found by
the hash of a random token kept in their signed session cookie, so a leaked database does
not hand out anyone's cart, and a visitor cannot guess another's.

Every change validates the whole request before writing and runs in one transaction, so a
bad product, variant or quantity leaves the cart exactly as it was.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask import session as web_session
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from blog.accounts.models import User
from blog.database_session import transaction
from blog.extensions import db
from blog.shop.errors import ShopError
from blog.shop.models import Cart, CartItem, Product, Variant

#: The signed-session key holding a visitor's cart token.
CART_TOKEN = "cart_token"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _guest_token() -> str | None:
    token = web_session.get(CART_TOKEN)
    return token if isinstance(token, str) and 0 < len(token) <= 100 else None


def create_member_cart(sender: Any, user: User, **extra: Any) -> None:
    """Give a new member their cart, inside the registration transaction (a listener of
    ``accounts.services.user_registered``, connected by ``blog.register_listeners``)."""
    db.session.add(Cart(user_id=user.id))


def _owner_clause() -> Any:
    """Which cart is the current visitor's: theirs as a member, else their token's."""
    if current_user.is_authenticated:
        return Cart.user_id == current_user.id
    token = _guest_token()
    return Cart.token_hash == _hash(token) if token else None


def _with_lines(stmt: Any) -> Any:
    return stmt.options(
        selectinload(Cart.items).joinedload(CartItem.variant).joinedload(Variant.product)
    )


def current_cart() -> Cart | None:
    """The visitor's cart with its lines, variants and products (two statements), or None."""
    clause = _owner_clause()
    if clause is None:
        return None
    return db.session.scalar(_with_lines(select(Cart).where(clause)))


def _fresh_cart(session: Session, clause: Any) -> Cart | None:
    """The cart ``clause`` names, with its lines, re-read inside the write transaction
    (objects loaded earlier in the request may be stale)."""
    if clause is None:
        return None
    return session.scalar(_with_lines(select(Cart).where(clause))
                          .execution_options(populate_existing=True))


def _cart_for_writing(session: Session) -> Cart:
    """The visitor's cart, made if missing (a visitor's first add, or a member who registered
    before the shop existed). Lines are read fresh: this runs inside the write transaction."""
    cart = _fresh_cart(session, _owner_clause())
    if cart is not None:
        return cart
    # items=[]: a new cart's lines are known empty, so they never need loading.
    if current_user.is_authenticated:
        cart = Cart(user_id=current_user.id, items=[])
    else:
        token = secrets.token_urlsafe(32)
        cart = Cart(token_hash=_hash(token), items=[])
        cart.new_token = token  # type: ignore[attr-defined]  # stored in the session after commit
    session.add(cart)
    session.flush()
    return cart


def _remember_guest_cart(cart: Cart) -> None:
    token = getattr(cart, "new_token", None)
    if token:
        web_session[CART_TOKEN] = token


def _max_line() -> int:
    return int(current_app.config["SHOP_MAX_LINE_QUANTITY"])


def _variant_to_buy(session: Session, product_id: int, variant_id: int | None) -> Variant:
    """The variant a shopper means, read fresh; ShopError when it is not for sale."""
    product = session.scalar(
        select(Product).where(Product.id == product_id, Product.active.is_(True))
        .options(selectinload(Product.variants)).execution_options(populate_existing=True)
    )
    if product is None or not product.variants:
        raise ShopError("That product is not for sale.", "product_id")
    if variant_id is None:
        if product.has_choice:
            raise ShopError(f"Please choose which {product.name} you want.", "variant_id")
        return product.variants[0]
    for variant in product.variants:
        if variant.id == variant_id:
            return variant
    raise ShopError(f"That option is not available for {product.name}.", "variant_id")


def _check_quantity(variant: Variant, quantity: int) -> None:
    """Refuse a line quantity that is not a whole number from 1 to the per-line maximum, or
    more than is in stock."""
    if not 1 <= quantity <= _max_line():
        raise ShopError(f"The quantity must be a whole number from 1 to {_max_line()}.", "quantity")
    if variant.stock <= 0:
        raise ShopError(f"{variant.display_name} is sold out.", "quantity")
    if quantity > variant.stock:
        raise ShopError(f"Only {variant.stock} of {variant.display_name} left; "
                        f"you asked for {quantity}.", "quantity")


def _retry_once_on_conflict(work: Any) -> Any:
    """Run ``work()``; if a concurrent request created the same cart or line first (a unique
    constraint), run it again, when it will find theirs."""
    try:
        return work()
    except IntegrityError:
        return work()


def add_item(product_id: int, variant_id: int | None, quantity: int) -> CartItem:
    """Add ``quantity`` of a product (its variant) to the visitor's cart; the line keeps the
    price seen now. Raises ShopError, changing nothing, when the request cannot be met."""

    def work() -> CartItem:
        with transaction() as session:
            variant = _variant_to_buy(session, product_id, variant_id)
            _check_quantity(variant, quantity)
            cart = _cart_for_writing(session)
            item = next((line for line in cart.items if line.variant_id == variant.id), None)
            _check_quantity(variant, quantity + (item.quantity if item else 0))
            if item is None:
                item = CartItem(variant=variant, quantity=quantity, unit_price=variant.price)
                cart.items.append(item)
            else:
                item.quantity += quantity
                item.unit_price = variant.price  # the shopper has now seen the current price
        _remember_guest_cart(cart)
        return item

    return _retry_once_on_conflict(work)


def _line_for(cart: Cart | None, product_id: int, variant_id: int | None) -> CartItem:
    lines = [item for item in (cart.items if cart else [])
             if item.variant.product_id == product_id
             and (variant_id is None or item.variant_id == variant_id)]
    if not lines:
        raise ShopError("That item is not in your cart.", "product_id")
    if len(lines) > 1:
        raise ShopError("Please say which option of that product you mean.", "variant_id")
    return lines[0]


def update_item(product_id: int, variant_id: int | None, quantity: int) -> None:
    """Set a line's quantity; 0 removes it."""
    if quantity == 0:
        remove_item(product_id, variant_id)
        return
    with transaction() as session:
        item = _line_for(_fresh_cart(session, _owner_clause()), product_id, variant_id)
        _check_quantity(item.variant, quantity)
        item.quantity = quantity
        item.unit_price = item.variant.price


def remove_item(product_id: int, variant_id: int | None) -> None:
    """Take a line out of the visitor's cart."""
    with transaction() as session:
        cart = _fresh_cart(session, _owner_clause())
        cart.items.remove(_line_for(cart, product_id, variant_id))  # type: ignore[union-attr]


@dataclass
class MergeResult:
    """What merging a visitor's cart did, for the message shown after login."""

    lines: int = 0
    reduced: int = 0


def merge_guest_cart(user: User) -> MergeResult | None:
    """Move the visitor's cart into ``user``'s, after they log in or register.

    Per variant the larger of the two quantities is kept, capped at what is in stock, so
    merging the same lines twice changes nothing. Lines of products no longer sold are
    dropped. The visitor's cart is deleted. Returns None when there was nothing to merge.
    """
    token = _guest_token()
    if token is None:
        return None
    result = MergeResult()
    with transaction() as session:
        guest = _fresh_cart(session, Cart.token_hash == _hash(token))
        if guest is not None:
            cart = _fresh_cart(session, Cart.user_id == user.id)
            if cart is None:
                cart = Cart(user_id=user.id)
                session.add(cart)
            mine = {item.variant_id: item for item in cart.items}
            for line in guest.items:
                variant = line.variant
                wanted = max(line.quantity, mine[variant.id].quantity if variant.id in mine else 0)
                available = min(variant.stock, _max_line()) if variant.product.active else 0
                quantity = min(wanted, available)
                result.lines += 1
                result.reduced += quantity < wanted
                if variant.id in mine:
                    if quantity:
                        mine[variant.id].quantity = quantity
                    else:
                        cart.items.remove(mine[variant.id])
                elif quantity:
                    cart.items.append(CartItem(variant=variant, quantity=quantity,
                                               unit_price=line.unit_price))
            session.delete(guest)
    web_session.pop(CART_TOKEN, None)
    return result if result.lines else None
