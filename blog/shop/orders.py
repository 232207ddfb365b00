"""Orders after checkout: listing, showing, and moving them through their states.

The state machine lives here and only here; the shop's cancel button and the admin screens
both go through :func:`change_status`::

    pending -> paid -> shipped -> delivered
    pending -> cancelled,  paid -> cancelled

The move itself is a conditional update (``... WHERE id = :id AND status = :old``), so of
two requests racing to move the same order only one succeeds, and a cancelled order's stock
(and the use of its discount code) is returned exactly once.
"""

from __future__ import annotations

from typing import Any

from blinker import Namespace
from flask import current_app
from sqlalchemy import Select, select, update
from sqlalchemy.orm import selectinload

from blog.accounts.models import User
from blog.database import affected_rows, utcnow
from blog.database_session import transaction
from blog.extensions import db
from blog.shop.errors import ShopError
from blog.shop.models import Discount, Order, OrderItem, OrderStatus, Variant

S = OrderStatus
#: Every allowed move, from each state. Anything not listed is refused.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    S.PENDING: (S.PAID, S.CANCELLED),
    S.PAID: (S.SHIPPED, S.CANCELLED),
    S.SHIPPED: (S.DELIVERED,),
    S.DELIVERED: (),
    S.CANCELLED: (),
}

_signals = Namespace()
#: Sent inside the transaction that moved an order, as
#: ``order_status_changed.send(app, order=order, old=..., new=..., actor=...)``.
order_status_changed = _signals.signal("order-status-changed")
#: Sent (outside any transaction) when a customer is to pay an order online now, as
#: ``order_awaits_payment.send(app, order=order)``; the payments domain answers with the
#: address of the provider's page (see :func:`payment_page`).
order_awaits_payment = _signals.signal("order-awaits-payment")


def payment_page(order: Order) -> str | None:
    """Where the customer pays ``order`` online, as the payments domain answers; None for an
    order paid by hand. Raises the listener's ServiceError when the provider cannot start."""
    if order.payment_provider == "manual" or order.status != S.PENDING:
        return None
    answers = order_awaits_payment.send(current_app._get_current_object(),  # type: ignore[attr-defined]
                                        order=order)
    return next((url for _receiver, url in answers if url), None)


def can_move(old: str, new: str) -> bool:
    """Whether an order may go from state ``old`` to ``new``."""
    return new in TRANSITIONS.get(old, ())


def orders_of(user: User) -> Select[Any]:
    """A member's orders, newest first."""
    return select(Order).where(Order.user_id == user.id).order_by(Order.created_at.desc(),
                                                                   Order.id.desc())


def get_order(number: str) -> Order | None:
    """An order with its lines (two statements)."""
    return db.session.scalar(
        select(Order).where(Order.number == number).options(selectinload(Order.items))
    )


def change_status(order: Order, new: str, *, actor: User | None = None,
                  expected: str | None = None) -> None:
    """Move ``order`` to state ``new``; cancelling puts its stock and its code's use back.

    ``expected``: move only from that state (the payment window cancels pending orders,
    never one paid a moment ago, even if paid orders may be cancelled by an admin).

    Raises ShopError, changing nothing, when the move is not allowed or another request
    moved the order first.
    """
    old = expected or order.status
    if not can_move(old, new):
        raise ShopError(f"An order that is {old} cannot be marked {new}.")
    with transaction() as session:
        moved = affected_rows(session.execute(
            update(Order).where(Order.id == order.id, Order.status == old)
            .values(status=new, updated_at=utcnow())
            .execution_options(synchronize_session=False)))
        if moved != 1:
            raise ShopError(f"Order {order.number} was changed by someone else; please look again.")
        if new == S.CANCELLED:
            # Only the request whose conditional update moved the order gets here, so the
            # stock and the code's use go back exactly once.
            _restock(order)
            _release_discount_use(order)
        order_status_changed.send(current_app._get_current_object(),  # type: ignore[attr-defined]
                                  order=order, old=old, new=new, actor=actor)
    order.status = new


def _restock(order: Order) -> None:
    lines = db.session.execute(
        select(OrderItem.variant_id, OrderItem.quantity)
        .where(OrderItem.order_id == order.id, OrderItem.variant_id.is_not(None))
        .order_by(OrderItem.variant_id)
    ).all()
    for variant_id, quantity in lines:
        db.session.execute(
            update(Variant).where(Variant.id == variant_id)
            .values(stock=Variant.stock + quantity)
            .execution_options(synchronize_session=False)
        )


def _release_discount_use(order: Order) -> None:
    """Give back the use of a code that a cancelled order counted, so it does not use up
    the code's limit. ``times_used > 0`` keeps the count from going negative whatever
    happened to the code since."""
    if order.discount_id is None:
        return
    db.session.execute(
        update(Discount).where(Discount.id == order.discount_id, Discount.times_used > 0)
        .values(times_used=Discount.times_used - 1)
        .execution_options(synchronize_session=False)
    )


def cancel_own_order(user: User, order: Order) -> None:
    """The customer cancels their order, which they may while it is pending."""
    if order.user_id != user.id:
        raise ShopError("Only the customer can cancel their order here.")
    if order.status != S.PENDING:
        raise ShopError(f"Order {order.number} is {order.status} and can no longer be cancelled "
                        "here; please contact us.")
    change_status(order, S.CANCELLED, actor=user)
