"""The shop's emails: the order confirmation to the customer and a notice to the site's
admins when an order is placed, and a note to the customer when it is paid, shipped or
cancelled. Each is written to the outbox inside the transaction that makes the change."""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import select

from blog.accounts.models import ADMIN, Role, User
from blog.extensions import db
from blog.mail.outbox import queue_email
from blog.shop.models import Order, OrderItem, OrderStatus

#: The moves a customer hears about, with the subject line's wording.
STATUS_SUBJECTS = {
    OrderStatus.PAID: "Payment received for order {number}",
    OrderStatus.SHIPPED: "Order {number} is on its way",
    OrderStatus.CANCELLED: "Order {number} is cancelled",
}


def _lines(order: Order) -> list[OrderItem]:
    # Read, not order.items: the lines may not be loaded, and collections never load lazily.
    return list(db.session.scalars(select(OrderItem).where(OrderItem.order_id == order.id)
                                   .order_by(OrderItem.id)))


def payment_instructions(order: Order) -> str:
    """How to pay ``order``: the shop's words for manual payment, or the online window."""
    if order.payment_provider == "manual":
        return str(current_app.config["PAYMENT_INSTRUCTIONS"])
    minutes = int(current_app.config["PAYMENT_WINDOW_MINUTES"])
    return (f"Pay online by card within {minutes} minutes of placing the order (the order page "
            "has a “Pay now” button). An order not paid by then is cancelled.")


def admin_addresses() -> list[str]:
    """The addresses of the active admins, who hear of new orders and payment problems."""
    return list(db.session.scalars(
        select(User.email).join(User.roles).where(Role.name == ADMIN, User.active.is_(True))
        .order_by(User.id)))


def order_placed(order: Order, customer: User) -> None:
    """Queue the confirmation (lines, totals, address, how to pay) and the admins' notice."""
    lines = _lines(order)
    context: dict[str, Any] = {"order": order, "lines": lines, "customer": customer,
                               "instructions": payment_instructions(order)}
    queue_email("order_confirmation", customer.email, f"Your order {order.number}",
                "order_confirmation", **context)
    for address in admin_addresses():
        queue_email("new_order", address, f"New order {order.number} ({customer.username})",
                    "new_order", **context)


def order_status_changed(sender: Any, order: Order, old: str, new: str, **extra: Any) -> None:
    """Tell the customer their order was paid, shipped or cancelled (a listener of
    ``orders.order_status_changed``, connected by ``blog.register_listeners``)."""
    subject = STATUS_SUBJECTS.get(new)
    if subject is None or order.user_id is None:
        return
    customer = db.session.get(User, order.user_id)
    if customer is None or not customer.active:
        return
    queue_email(f"order_{new}", customer.email, subject.format(number=order.number),
                "order_status", order=order, lines=_lines(order), customer=customer, new=new,
                instructions=payment_instructions(order))
