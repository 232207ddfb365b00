"""Refunds: per line and quantity, shipping, a reason, restock or not; and the automatic
refund of a payment that arrived for an order no longer payable.

Three steps, so money and ledger never disagree:

1. **Reserve** (one transaction): conditional updates add the amount to the payment's
   ``refunded`` (never past what was paid: ``refunded + x <= amount``, and a database check),
   the quantities to the lines' ``refunded_quantity`` (from the quantity this request priced,
   so two admins refunding the same line cannot both succeed), and the shipping to the order;
   a ``pending`` refund row with a fresh idempotency key is written.
2. **Ask the provider** (no transaction open) with that key: a retry can never refund twice.
3. **Record** (one transaction): ``succeeded`` with the provider's id, the stock put back if
   asked, the customer's email and the audit entry; or ``failed`` with the reason, and the
   reservation undone, so a provider failure leaves a clear "not refunded", never half of one.

A crash between 2 and 3 leaves a ``pending`` refund; :func:`retry` asks the provider again
with the same key and records the answer.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from blinker import Namespace
from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from blog.accounts.models import User
from blog.database import affected_rows, utcnow
from blog.database_session import transaction
from blog.errors import ServiceError
from blog.extensions import db
from blog.mail.outbox import queue_email
from blog.payments.models import Payment, PaymentStatus, Refund, RefundLine, RefundStatus
from blog.payments.providers import ProviderError, provider
from blog.shop.emails import admin_addresses
from blog.shop.models import Order, OrderItem, Variant
from blog.shop.pricing import ZERO, format_money, line_shares, refund_for_units

log = logging.getLogger("inkwell.payments")

_signals = Namespace()
#: Sent inside the transaction that settled a refund (succeeded or failed), as
#: ``refund_settled.send(app, refund=refund, order=order, actor=actor)``; the admin's audit
#: trail listens.
refund_settled = _signals.signal("refund-settled")

#: The words of the automatic refund of a payment for an order no longer payable.
LATE_REASON = "Paid after the order had expired or been cancelled"


class RefundError(ServiceError):
    """A refund that cannot be made; nothing was refunded. ``field`` names the form field."""


@dataclass(frozen=True)
class RefundRequest:
    """What the admin's refund form asks: units per order line, shipping, why, restock."""

    quantities: dict[int, int]
    shipping: Decimal
    reason: str
    restock: bool


@dataclass(frozen=True)
class LineQuote:
    """One order line's refund: units and amount."""

    item_id: int
    quantity: int
    amount: Decimal


@dataclass(frozen=True)
class Quote:
    """What a refund request gives back, computed by the pricing rules."""

    lines: tuple[LineQuote, ...]
    shipping: Decimal

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO) + self.shipping


def refundable_lines(order: Order) -> list[tuple[OrderItem, Decimal]]:
    """The order's lines with each one's share of what the customer paid for goods (line
    total less its share of the discount plus its share of the tax, the shares adding up to
    the order's total without shipping)."""
    items = list(db.session.scalars(select(OrderItem).where(OrderItem.order_id == order.id)
                                    .order_by(OrderItem.id)))
    shares = line_shares([item.unit_price * item.quantity for item in items],
                         order.discount_amount, order.tax)
    return list(zip(items, shares, strict=True))


def quote(order: Order, request: RefundRequest,
          lines: list[tuple[OrderItem, Decimal]] | None = None) -> Quote:
    """The amounts ``request`` gives back (``lines``: the order's :func:`refundable_lines`,
    when the caller has them already). Raises RefundError for more units than are left on a
    line, a line of another order, more shipping than is left, or nothing at all."""
    if lines is None:
        lines = refundable_lines(order)
    unknown = set(request.quantities) - {item.id for item, _ in lines}
    if unknown:
        raise RefundError("That line is not part of this order.")
    quoted = []
    for item, share in lines:
        units = request.quantities.get(item.id, 0)
        if units < 0:
            raise RefundError("Quantities cannot be negative.", f"qty-{item.id}")
        if units == 0:
            continue
        left = item.quantity - item.refunded_quantity
        if units > left:
            raise RefundError(f"{item.description}: only {left} left to refund.", f"qty-{item.id}")
        quoted.append(LineQuote(item.id, units, refund_for_units(share, item.quantity,
                                                                 item.refunded_quantity, units)))
    shipping_left = order.shipping_price - order.refunded_shipping
    if request.shipping < 0 or request.shipping > shipping_left:
        raise RefundError(f"At most {shipping_left} of shipping is left to refund.", "shipping")
    result = Quote(tuple(quoted), request.shipping)
    if result.total <= 0:
        raise RefundError("Choose lines or shipping to refund.")
    return result


def refund_order(order: Order, request: RefundRequest, actor: User | None) -> Refund:
    """Refund part or all of an order, as the admin's form asks (see the module's steps).

    Raises RefundError (nothing refunded, nothing changed) for a request beyond what is left,
    an order with nothing paid, or a provider that refused (the message says so; the failed
    attempt stays in the history).
    """
    lines = refundable_lines(order)
    priced = quote(order, request, lines)
    # The quantities this price was computed from: the reservation holds only if they stand.
    seen = {item.id: item.refunded_quantity for item, _ in lines}
    refund = _reserve(order, priced, seen, request.reason, request.restock, actor)
    return _ask_provider(refund, order, actor)


def refund_late_payment(payment_id: int) -> Refund | None:
    """Give back all of a payment that arrived for an order no longer payable, and tell the
    customer and the admins. Returns None when nothing is left to give back."""
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.status != PaymentStatus.SUCCEEDED:
        return None
    amount = payment.amount - payment.refunded
    if amount <= 0:
        return None
    order = db.session.get(Order, payment.order_id)
    assert order is not None
    key = secrets.token_hex(16)
    with transaction() as session:
        if not _take(session, payment, amount):
            return None  # refunded meanwhile
        refund = Refund(order_id=order.id, payment_id=payment.id, amount=amount, shipping=ZERO,
                        reason=LATE_REASON, restock=False, status=RefundStatus.PENDING,
                        idempotency_key=key)
        session.add(refund)
    refund = _ask_provider(refund, order, None, late=True)
    return refund


def retry(refund: Refund, actor: User | None) -> Refund:
    """Ask the provider again about a refund left pending (a crash after asking): the same
    idempotency key, so the provider refunds at most once."""
    if refund.status != RefundStatus.PENDING:
        raise RefundError("Only a pending refund can be retried.")
    order = db.session.get(Order, refund.order_id)
    assert order is not None
    return _ask_provider(refund, order, actor, late=refund.reason == LATE_REASON)


# --- the steps -------------------------------------------------------------------------------


def _take(session: Any, payment: Payment, amount: Decimal) -> bool:
    """Add ``amount`` to what was given back of ``payment``, unless that would pass what was
    paid; whether it was added."""
    return affected_rows(session.execute(
        update(Payment).where(Payment.id == payment.id, Payment.status == PaymentStatus.SUCCEEDED,
                              Payment.refunded + amount <= Payment.amount)
        .values(refunded=Payment.refunded + amount, updated_at=utcnow())
        .execution_options(synchronize_session=False))) == 1


def _reserve(order: Order, priced: Quote, seen: dict[int, int], reason: str, restock: bool,
             actor: User | None) -> Refund:
    with transaction() as session:
        payment = session.scalar(
            select(Payment).where(Payment.order_id == order.id, Payment.status == PaymentStatus.SUCCEEDED,
                                  Payment.refunded + priced.total <= Payment.amount)
            .order_by(Payment.id).limit(1))
        if payment is None:
            raise RefundError("Nothing paid for this order is left to refund for that amount.")
        if not _take(session, payment, priced.total):
            raise RefundError("This order was refunded meanwhile; please look again.")
        for line in priced.lines:
            moved = affected_rows(session.execute(
                update(OrderItem).where(OrderItem.id == line.item_id,
                                        OrderItem.refunded_quantity == seen[line.item_id])
                .values(refunded_quantity=OrderItem.refunded_quantity + line.quantity)
                .execution_options(synchronize_session=False)))
            if moved != 1:
                raise RefundError("This order was refunded meanwhile; please look again.")
        moved = affected_rows(session.execute(
            update(Order).where(Order.id == order.id,
                                Order.refunded_shipping + priced.shipping <= Order.shipping_price,
                                Order.refunded_total + priced.total <= Order.total)
            .values(refunded_total=Order.refunded_total + priced.total,
                    refunded_shipping=Order.refunded_shipping + priced.shipping,
                    updated_at=utcnow())
            .execution_options(synchronize_session=False)))
        if moved != 1:
            raise RefundError("This order was refunded meanwhile; please look again.")
        refund = Refund(order_id=order.id, payment_id=payment.id, amount=priced.total,
                        shipping=priced.shipping, reason=reason.strip()[:500], restock=restock,
                        status=RefundStatus.PENDING, idempotency_key=secrets.token_hex(16),
                        actor_id=actor.id if actor is not None else None,
                        lines=[RefundLine(order_item_id=line.item_id, quantity=line.quantity,
                                          amount=line.amount) for line in priced.lines])
        session.add(refund)
    return refund


def _ask_provider(refund: Refund, order: Order, actor: User | None, *, late: bool = False) -> Refund:
    payment = db.session.get(Payment, refund.payment_id)
    assert payment is not None
    db.session.rollback()  # no transaction open while the provider answers
    try:
        reference = provider(payment.provider).refund(
            payment.charge_reference or payment.reference, refund.amount, payment.currency,
            idempotency_key=refund.idempotency_key, reason=refund.reason)
    except ProviderError as error:
        _record_failure(refund, order, actor, error.message)
        raise RefundError(f"Not refunded: {error.message}") from error
    _record_success(refund, order, actor, reference, late=late)
    return refund


def _record_success(refund: Refund, order: Order, actor: User | None, reference: str, *,
                    late: bool) -> None:
    with transaction() as session:
        done = affected_rows(session.execute(
            update(Refund).where(Refund.id == refund.id, Refund.status == RefundStatus.PENDING)
            .values(status=RefundStatus.SUCCEEDED, provider_reference=reference, updated_at=utcnow())
            .execution_options(synchronize_session=False)))
        if not done:
            return  # recorded by an earlier retry
        refund.status, refund.provider_reference = RefundStatus.SUCCEEDED, reference
        lines = list(session.scalars(select(RefundLine).where(RefundLine.refund_id == refund.id)
                                     .order_by(RefundLine.id)))
        if refund.restock:
            _restock(session, lines)
        _tell(refund, order, lines, late=late)
        refund_settled.send(current_app._get_current_object(),  # type: ignore[attr-defined]
                            refund=refund, order=order, actor=actor)


def _record_failure(refund: Refund, order: Order, actor: User | None, message: str) -> None:
    """The provider refused: the refund is failed and what it reserved is given back."""
    with transaction() as session:
        done = affected_rows(session.execute(
            update(Refund).where(Refund.id == refund.id, Refund.status == RefundStatus.PENDING)
            .values(status=RefundStatus.FAILED, error=message[:500], updated_at=utcnow())
            .execution_options(synchronize_session=False)))
        if not done:
            return
        refund.status, refund.error = RefundStatus.FAILED, message[:500]
        session.execute(update(Payment).where(Payment.id == refund.payment_id)
                        .values(refunded=Payment.refunded - refund.amount, updated_at=utcnow())
                        .execution_options(synchronize_session=False))
        lines = list(session.scalars(select(RefundLine).where(RefundLine.refund_id == refund.id)))
        for line in lines:
            session.execute(update(OrderItem).where(OrderItem.id == line.order_item_id)
                            .values(refunded_quantity=OrderItem.refunded_quantity - line.quantity)
                            .execution_options(synchronize_session=False))
        if refund.reason != LATE_REASON:
            session.execute(update(Order).where(Order.id == order.id)
                            .values(refunded_total=Order.refunded_total - refund.amount,
                                    refunded_shipping=Order.refunded_shipping - refund.shipping,
                                    updated_at=utcnow())
                            .execution_options(synchronize_session=False))
        refund_settled.send(current_app._get_current_object(),  # type: ignore[attr-defined]
                            refund=refund, order=order, actor=actor)
    log.warning("refund %s of order %s failed: %s", refund.id, order.number, message)


def _restock(session: Any, lines: list[RefundLine]) -> None:
    items = {item.id: item for item in session.scalars(
        select(OrderItem).where(OrderItem.id.in_([line.order_item_id for line in lines])))}
    for line in sorted(lines, key=lambda line: items[line.order_item_id].variant_id or 0):
        variant_id = items[line.order_item_id].variant_id
        if variant_id is None:
            continue  # the product was deleted since: nothing to put back
        session.execute(update(Variant).where(Variant.id == variant_id)
                        .values(stock=Variant.stock + line.quantity)
                        .execution_options(synchronize_session=False))


def _tell(refund: Refund, order: Order, lines: list[RefundLine], *, late: bool) -> None:
    """The customer's email (and, for a late payment, the admins'), in the transaction that
    recorded the refund."""
    customer = db.session.get(User, order.user_id) if order.user_id is not None else None
    items = {item.id: item for item in db.session.scalars(
        select(OrderItem).where(OrderItem.order_id == order.id))}
    payment = db.session.get(Payment, refund.payment_id)
    context: dict[str, Any] = {"order": order, "refund": refund,
                               "refund_lines": [(items[line.order_item_id], line) for line in lines],
                               "late": late, "by_card": payment is not None and payment.provider != "manual"}
    if customer is not None and customer.active:
        amount = format_money(refund.amount, str(current_app.config["SHOP_CURRENCY"]))
        queue_email("refund", customer.email, f"Refund of {amount} for order {order.number}",
                    "refund", customer=customer, **context)
    if late:
        for address in admin_addresses():
            queue_email("late_payment", address, f"Late payment for order {order.number} refunded",
                        "late_payment", **context)


def refunds_of(order: Order) -> list[Refund]:
    """An order's refunds with their lines, oldest first (two statements)."""
    return list(db.session.scalars(select(Refund).where(Refund.order_id == order.id)
                                   .options(selectinload(Refund.lines)).order_by(Refund.id)))
