"""Checkout: turn a member's cart into an order, once, without overselling.

One transaction does everything, or nothing:

1. Lock the member's cart row (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite the
   transaction itself began with ``BEGIN IMMEDIATE``), so two submissions by the same member
   queue. Then look for an order already placed with this form's one-time token: a second
   submission of the same form returns that order instead of placing another.
2. Read the lines fresh and price them at the variants' current prices.
3. Take each line's stock with a conditional update,
   ``UPDATE variants SET stock = stock - :q WHERE id = :id AND stock >= :q``, checking that
   it changed one row. Concurrent checkouts cannot both take the last unit: the database
   re-checks the condition against the committed row. Rows are updated in id order, so two
   checkouts never wait for each other in a circle.
   If the form carries the total the customer last saw (``seen_total``) and the order now
   costs something else (a price or a code changed meanwhile), stop here: nothing is charged
   that the customer has not seen.
4. Count a discount use the same way (``times_used < usage_limit``).
5. Insert the order (``flush()`` for its id) and its lines, copying name, label, SKU and
   price, and empty the cart.

If any line is short, the error says which and how many are left; the rollback undoes the
stock already taken for other lines. The token is also unique in the database, the last
word if all else raced.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from blog.accounts.models import User
from blog.database import affected_rows, utcnow
from blog.database_session import transaction
from blog.extensions import db
from blog.shop import emails
from blog.shop.errors import ShopError
from blog.shop.models import Cart, CartItem, Discount, Order, OrderItem, OrderStatus, ShippingMethod, Variant
from blog.shop.pricing import ZERO, Totals, compute_totals, format_money, parse_money, parse_rate

#: Order numbers use this alphabet: no 0/O or 1/I/L to misread over the phone.
ORDER_NUMBER_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


class OutOfStock(ShopError):
    """Some lines cannot be had in the quantity asked; ``shortages`` says what is left."""

    def __init__(self, shortages: list[tuple[str, int, int]]) -> None:
        self.shortages = shortages  # (item, asked, left)
        parts = [f"{name}: only {left} left, you asked for {asked}" if left else f"{name}: sold out"
                 for name, asked, left in shortages]
        super().__init__("Not enough in stock. " + "; ".join(parts) + ". Nothing was charged.")


@dataclass(frozen=True)
class CheckoutDetails:
    """What the checkout form collects."""

    full_name: str
    address_line1: str
    address_line2: str
    city: str
    postal_code: str
    country: str
    shipping_method_id: int
    discount_code: str
    checkout_token: str
    #: The total the checkout page last showed; empty when the form did not carry one.
    seen_total: str = ""


class TotalChanged(ShopError):
    """The order would cost something other than the total the customer last saw."""

    def __init__(self, totals: Totals) -> None:
        self.totals = totals
        super().__init__(f"The total changed to {format_money(totals.total, currency())}; "
                         "please check it and place the order again.")


def new_checkout_token() -> str:
    """A one-time token for a checkout form."""
    return secrets.token_urlsafe(32)


def new_order_number() -> str:
    """A random, human-friendly order number such as ``IW-7K3F9Q2M``."""
    return "IW-" + "".join(secrets.choice(ORDER_NUMBER_ALPHABET) for _ in range(8))


def tax_rate() -> Decimal:
    """The shop's tax rate (``SHOP_TAX_RATE``) as a fraction."""
    return parse_rate(current_app.config["SHOP_TAX_RATE"])


def currency() -> str:
    """The shop's currency code (``SHOP_CURRENCY``)."""
    return str(current_app.config["SHOP_CURRENCY"])


def shipping_methods() -> list[ShippingMethod]:
    """The active shipping methods, cheapest first."""
    return list(db.session.scalars(
        select(ShippingMethod).where(ShippingMethod.active.is_(True))
        .order_by(ShippingMethod.price, ShippingMethod.name)
    ))


def find_discount(code: str, session: Session | None = None) -> Discount | None:
    """The discount with ``code`` (any case, spaces around ignored), reloaded from the
    database; ``session`` defaults to the request's."""
    if session is None:
        session = db.session()  # the Session itself, not the scoped proxy
    return session.scalar(select(Discount).where(Discount.code == code.strip().upper())
                          .execution_options(populate_existing=True))


def quote(cart: Cart | None, shipping: ShippingMethod | None, discount: Discount | None = None) -> Totals:
    """What the cart would cost now with ``shipping`` and ``discount``, priced by the same
    rule as :func:`place_order` (for the checkout page's summary)."""
    lines = [(item.variant.price, item.quantity) for item in (cart.items if cart else [])]
    return _totals(lines, shipping.price if shipping else ZERO, discount)


def _totals(lines: list[tuple[Decimal, int]], shipping_price: Decimal, discount: Discount | None) -> Totals:
    """The one pricing rule: the page's summary, the review and the order all come from here."""
    subtotal = sum((price * quantity for price, quantity in lines), ZERO)
    return compute_totals(lines, shipping_price, discount.amount_off(subtotal) if discount else ZERO,
                          tax_rate())


def review(user: User, cart: Cart | None, shipping_method_id: int | None, discount_code: str) -> Totals:
    """Price ``user``'s order exactly as :func:`place_order` would now (shipping choice and
    discount code included) without placing it; writes nothing.

    Raises :class:`ShopError` when the shipping method or the code cannot be used.
    """
    session = db.session()
    shipping = _active_shipping(session, shipping_method_id)
    lines = [(item.variant.price, item.quantity) for item in (cart.items if cart else [])]
    subtotal = sum((price * quantity for price, quantity in lines), ZERO)
    discount = _usable_discount(session, user, discount_code, subtotal)
    return _totals(lines, shipping.price, discount)


def order_for_token(user: User, token: str) -> Order | None:
    """The member's order placed with checkout form ``token``, if any."""
    return db.session.scalar(select(Order).where(Order.checkout_token == token,
                                                 Order.user_id == user.id))


def place_order(user: User, details: CheckoutDetails) -> Order:
    """Place ``user``'s cart as an order; return it (the same one for a repeated token).

    Raises :class:`OutOfStock` or :class:`ShopError` with nothing written.
    """
    if not details.checkout_token or len(details.checkout_token) > 64:
        raise ShopError("This checkout form has expired; please check your order and try again.")
    for attempt in range(3):
        try:
            return _place_order(user, details)
        except IntegrityError as error:
            # The token's unique constraint: a simultaneous submission of the same form won.
            existing = order_for_token(user, details.checkout_token)
            if existing is not None:
                return existing
            if "number" in str(error.orig) and attempt < 2:
                continue  # two orders drew the same random number; draw again
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _place_order(user: User, details: CheckoutDetails) -> Order:
    """The five steps of the module's docstring, in one transaction."""
    with transaction() as session:
        cart, placed = _lock_cart(session, user, details.checkout_token)
        if placed is not None:
            return placed  # the same form submitted again: its order, not a second one
        priced = _read_and_price(session, user, cart, details)
        if details.seen_total and not _same_amount(details.seen_total, priced.totals.total):
            raise TotalChanged(priced.totals)  # before anything is written
        _take_stock(session, priced.items)
        if priced.discount is not None:
            _count_discount_use(session, priced.discount)
        order = _record_order(session, user, details, priced)
        emails.order_placed(order, user)  # in the outbox only if the order commits
        return order


@dataclass(frozen=True)
class _Priced:
    """A cart read fresh and checked, with what the order will cost."""

    cart: Cart
    items: list[CartItem]  # in variant id order, the order stock is taken in
    shipping: ShippingMethod
    discount: Discount | None
    lines: list[tuple[Decimal, int]]  # (unit price, quantity)
    subtotal: Decimal
    totals: Totals


def _lock_cart(session: Session, user: User, token: str) -> tuple[Cart | None, Order | None]:
    """Step 1: lock ``user``'s cart row, then find the order already placed with checkout
    form ``token``, if any (refused if another member placed it)."""
    cart = session.scalar(select(Cart).where(Cart.user_id == user.id).with_for_update())
    placed = session.scalar(select(Order).where(Order.checkout_token == token)
                            .execution_options(populate_existing=True))
    if placed is not None and placed.user_id != user.id:
        raise ShopError("This checkout form has expired; please try again.")
    return cart, placed


def _read_and_price(session: Session, user: User, cart: Cart | None, details: CheckoutDetails) -> _Priced:
    """Step 2: read the cart's lines fresh and price them at the variants' current prices,
    with the chosen shipping method and discount code; refuse what cannot be ordered."""
    items = _fresh_items(session, cart) if cart is not None else []
    if cart is None or not items:
        raise ShopError("Your cart is empty.")
    for item in items:
        if not item.variant.product.active:
            raise ShopError(f"{item.variant.display_name} is no longer sold; "
                            "please remove it from your cart.")

    shipping = _active_shipping(session, details.shipping_method_id)
    lines = [(item.variant.price, item.quantity) for item in items]
    subtotal = sum((price * quantity for price, quantity in lines), ZERO)
    discount = _usable_discount(session, user, details.discount_code, subtotal)
    return _Priced(cart=cart, items=items, shipping=shipping, discount=discount,
                   lines=lines, subtotal=subtotal, totals=_totals(lines, shipping.price, discount))


def _active_shipping(session: Session, method_id: int | None) -> ShippingMethod:
    """The active shipping method ``method_id``, or ShopError."""
    shipping = session.scalar(
        select(ShippingMethod).where(ShippingMethod.id == method_id, ShippingMethod.active.is_(True))
    ) if method_id is not None else None
    if shipping is None:
        raise ShopError("Please choose a shipping method.", "shipping_method")
    return shipping


def _same_amount(seen: str, total: Decimal) -> bool:
    """Whether ``seen`` (the form's hidden total) is ``total``; a mangled value is not."""
    try:
        return parse_money(seen) == total
    except ValueError:
        return False


def _fresh_items(session: Session, cart: Cart) -> list[CartItem]:
    """The cart's lines with their variants and products, reloaded (another request may have
    changed them since they were last read), in variant id order."""
    return list(session.scalars(
        select(CartItem).where(CartItem.cart_id == cart.id)
        .options(joinedload(CartItem.variant).joinedload(Variant.product))
        .order_by(CartItem.variant_id)
        .execution_options(populate_existing=True)
    ))


def _usable_discount(session: Session, user: User, code: str, subtotal: Decimal) -> Discount | None:
    """The discount ``code`` names (None for no code), if ``user`` can use it on ``subtotal``.

    The per-customer limit counts the member's orders with the code that are not cancelled.
    Inside checkout the member's cart row is locked first, so two of their checkouts cannot
    both count the same number of uses."""
    if not code.strip():
        return None
    discount = find_discount(code, session)
    if discount is None:
        raise ShopError("That discount code is not valid.", "discount_code")
    problem = discount.problem_with(subtotal, currency=currency())
    if problem:
        raise ShopError(problem, "discount_code")
    if discount.per_customer_limit is not None:
        used = session.scalar(select(func.count()).select_from(Order).where(
            Order.user_id == user.id, Order.discount_id == discount.id,
            Order.status != OrderStatus.CANCELLED))
        if (used or 0) >= discount.per_customer_limit:
            times = "once" if discount.per_customer_limit == 1 else f"{discount.per_customer_limit} times"
            raise ShopError(f"The code {discount.code} can be used {times} per customer, "
                            "and you have used it already.", "discount_code")
    return discount


def _record_order(session: Session, user: User, details: CheckoutDetails, priced: _Priced) -> Order:
    """Step 5: insert the order (flushed, for its id) and its lines, copying each product's
    name, label, SKU and price as sold, then empty the cart."""
    discount, totals = priced.discount, priced.totals
    order = Order(
        number=new_order_number(), checkout_token=details.checkout_token, user_id=user.id,
        status=OrderStatus.PENDING,
        full_name=details.full_name.strip(), address_line1=details.address_line1.strip(),
        address_line2=details.address_line2.strip(), city=details.city.strip(),
        postal_code=details.postal_code.strip(), country=details.country.strip(),
        shipping_method_id=priced.shipping.id, shipping_method_name=priced.shipping.name,
        discount_id=discount.id if discount else None,
        discount_code=discount.code if discount else None,
        subtotal=totals.subtotal, discount_amount=totals.discount,
        shipping_price=totals.shipping, tax=totals.tax, total=totals.total,
    )
    _choose_payment(order)
    order.items = [
        OrderItem(variant_id=item.variant_id, product_id=item.variant.product_id,
                  product_name=item.variant.product.name, variant_label=item.variant.label,
                  sku=item.variant.sku, unit_price=item.variant.price, quantity=item.quantity)
        for item in priced.items
    ]
    session.add(order)
    session.flush()
    session.execute(delete(CartItem).where(CartItem.cart_id == priced.cart.id))
    session.expire(priced.cart, ["items"])
    return order


def _choose_payment(order: Order) -> None:
    """How the order is paid: the configured provider. An online one gives the customer
    ``PAYMENT_WINDOW_MINUTES`` to pay, after which the order is cancelled and its stock comes
    back. An order that costs nothing has nothing to pay online."""
    config = current_app.config
    provider = str(config["PAYMENT_PROVIDER"])
    if provider == "manual" or order.total <= 0:
        order.payment_provider = "manual"
        return
    order.payment_provider = provider
    order.payment_due_at = utcnow() + timedelta(minutes=int(config["PAYMENT_WINDOW_MINUTES"]))


def _take_stock(session: Session, items: list[CartItem]) -> None:
    """Step 3: take each line's stock atomically, or raise OutOfStock naming every short line."""
    short: list[CartItem] = []
    for item in items:  # in variant id order
        taken = affected_rows(session.execute(
            update(Variant)
            .where(Variant.id == item.variant_id, Variant.stock >= item.quantity)
            .values(stock=Variant.stock - item.quantity)
            .execution_options(synchronize_session=False)
        ))
        if taken != 1:
            short.append(item)
    if short:
        left = dict(session.execute(select(Variant.id, Variant.stock)
                                    .where(Variant.id.in_([item.variant_id for item in short]))).all())
        raise OutOfStock([(item.variant.display_name, item.quantity, left.get(item.variant_id, 0))
                          for item in short])


def _count_discount_use(session: Session, discount: Discount) -> None:
    """Step 4: count one use of ``discount`` if one is left, atomically (like stock)."""
    now = utcnow()
    counted = affected_rows(session.execute(
        update(Discount)
        .where(Discount.id == discount.id, Discount.active.is_(True),
               or_(Discount.usage_limit.is_(None), Discount.times_used < Discount.usage_limit),
               or_(Discount.ends_at.is_(None), Discount.ends_at > now))
        .values(times_used=Discount.times_used + 1)
        .execution_options(synchronize_session=False)
    ))
    if counted != 1:
        raise ShopError(f"The code {discount.code} has been used up.", "discount_code")

