"""Payments: starting one for an order, settling what the provider reports, expiring unpaid
orders, and the ledger entries that go with each.

Exactly once, whoever reports first. The webhook and the customer's return page may both
learn that an order was paid, at the same moment. Both go through :func:`settle`, whose
first write is a conditional update of the payment row (``status`` from pending to
succeeded); only the request that made that change moves the order to ``paid``, so there is
one transition, one receipt and one audit entry. A webhook event is stored under its
provider's id first (a unique constraint), so the same event delivered again changes nothing.

Provider calls (network) are never made inside a database transaction: a slow provider would
hold the database's write lock. Money going back to a customer is written as a pending refund
first, then asked of the provider with an idempotency key, then recorded as done or failed;
a crash in between leaves a pending refund that a retry completes with the same key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError

from blog.accounts.models import User
from blog.database import affected_rows, utcnow
from blog.database_session import transaction
from blog.errors import ServiceError
from blog.extensions import db
from blog.jobs import enqueue_after_commit, job
from blog.payments.models import Payment, PaymentEvent, PaymentStatus
from blog.payments.providers import (
    BadEvent,
    OrderToPay,
    PaymentState,
    ProviderError,
    provider,
)
from blog.shop import orders
from blog.shop.errors import ShopError
from blog.shop.models import Order, OrderStatus
from blog.urls import site_url

log = logging.getLogger("inkwell.payments")

__all__ = ["BadEvent", "PaymentError", "ProviderError"]


class PaymentError(ServiceError):
    """A payment that cannot be started or settled; the message says why."""


# --- reading --------------------------------------------------------------------------------


def payments_of(order: Order) -> list[Payment]:
    """An order's payment attempts, oldest first."""
    return list(db.session.scalars(select(Payment).where(Payment.order_id == order.id)
                                   .order_by(Payment.id)))


def events_of(order: Order, limit: int = 50) -> list[PaymentEvent]:
    """What providers reported about an order, newest first (the admin's order page)."""
    return list(db.session.scalars(select(PaymentEvent).where(PaymentEvent.order_number == order.number)
                                   .order_by(PaymentEvent.id.desc()).limit(limit)))


def is_online(order: Order) -> bool:
    """Whether the customer pays this order on a provider's page."""
    return order.payment_provider != "manual"


def in_window(order: Order, now: datetime | None = None) -> bool:
    """Whether an unpaid online order may still be paid."""
    return (order.status == OrderStatus.PENDING and order.payment_due_at is not None
            and order.payment_due_at > (now or utcnow()))


# --- starting -------------------------------------------------------------------------------


def start_payment(order: Order) -> str:
    """The address of the provider's page where the customer pays ``order``.

    An attempt still open is reused (two clicks make one Checkout Session: the provider is
    asked with the same idempotency key, and the payment's reference is unique). Raises
    PaymentError when the order is not waiting for an online payment, ProviderError when the
    provider cannot be reached (nothing is recorded then; the customer may try again).
    """
    if not is_online(order):
        raise PaymentError("This order is paid by bank transfer or on delivery.")
    if not in_window(order):
        raise PaymentError(_closed_message(order))
    attempts = payments_of(order)
    db.session.rollback()  # end the read: the provider call below may take seconds
    open_attempt = next((p for p in reversed(attempts) if p.status == PaymentStatus.PENDING and p.url),
                        None)
    if open_attempt is not None and open_attempt.url:
        return open_attempt.url
    checkout = provider(order.payment_provider).start(OrderToPay(
        number=order.number, total=order.total, currency=_currency(), email=_email(order),
        description=f"Order {order.number}",
        return_url=site_url("payments.returned", number=order.number) + "?session_id={CHECKOUT_SESSION_ID}",
        cancel_url=site_url("shop.order", number=order.number),
        expires_at=order.payment_due_at,
        idempotency_key=f"{order.checkout_token}-{len(attempts)}",
    ))
    try:
        with transaction() as session:
            session.add(Payment(order_id=order.id, provider=order.payment_provider,
                                reference=checkout.reference, url=checkout.url, amount=order.total,
                                currency=_currency(), status=PaymentStatus.PENDING))
    except IntegrityError:
        pass  # the same attempt, recorded by the other click
    return checkout.url


def _closed_message(order: Order) -> str:
    if order.status == OrderStatus.PENDING:
        return (f"The time to pay order {order.number} has run out; it will be cancelled and "
                "its items put back.")
    return f"Order {order.number} is {order.status}; there is nothing to pay."


def _currency() -> str:
    return str(current_app.config["SHOP_CURRENCY"]).upper()


def _email(order: Order) -> str | None:
    """The customer's address, for the provider's page."""
    user = db.session.get(User, order.user_id) if order.user_id is not None else None
    return user.email if user is not None else None


# --- settling -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settled:
    """What settling a provider's report did."""

    outcome: str
    order_number: str | None = None
    #: A payment that arrived for an order no longer payable: to be refunded (after the commit).
    refund_payment_id: int | None = None


def settle(state: PaymentState, provider_name: str) -> Settled:
    """Apply what the provider says of an attempt, in the caller's transaction (or its own).

    Paid, for the amount and currency of the order: the payment is recorded as succeeded
    (once: a conditional update) and the order moves to ``paid`` (once: the state machine's
    conditional update), which sends the receipt and writes the audit entry in the same
    transaction. Paid for an order no longer pending (expired, cancelled, already paid by
    another attempt): the payment is recorded and marked for a refund. Paid for another
    amount: nothing moves; the outcome says so, for the admins. Expired: the attempt fails.
    """
    with transaction() as session:
        order = session.scalar(select(Order).where(Order.number == state.order_number)
                               .with_for_update()) if state.order_number else None
        if order is None:
            return Settled("unknown order", state.order_number)
        payment = session.scalar(select(Payment).where(
            Payment.provider == provider_name, Payment.reference == state.reference))
        if payment is None:
            # Paid through an attempt we never recorded (a crash between the provider's
            # answer and our insert): record it now.
            payment = Payment(order_id=order.id, provider=provider_name, reference=state.reference,
                              amount=order.total, currency=_currency(), status=PaymentStatus.PENDING)
            session.add(payment)
            session.flush()
        if payment.order_id != order.id:
            return Settled("order mismatch", order.number)
        if not state.paid:
            if state.closed or state.failed:
                session.execute(update(Payment).where(Payment.id == payment.id,
                                                      Payment.status == PaymentStatus.PENDING)
                                .values(status=PaymentStatus.FAILED, url=None, updated_at=utcnow())
                                .execution_options(synchronize_session=False))
                return Settled("expired", order.number)
            return Settled("not paid yet", order.number)
        if state.amount != order.total or (state.currency or "").upper() != _currency():
            log.warning("payment %s for order %s: %s %s, but the order is %s %s", state.reference,
                        order.number, state.amount, state.currency, order.total, _currency())
            return Settled("amount mismatch", order.number)
        recorded = affected_rows(session.execute(
            update(Payment).where(Payment.id == payment.id, Payment.status != PaymentStatus.SUCCEEDED)
            .values(status=PaymentStatus.SUCCEEDED, amount=state.amount, paid_at=utcnow(),
                    charge_reference=state.charge_reference, url=None, updated_at=utcnow())
            .execution_options(synchronize_session=False)))
        if not recorded:
            return Settled("already recorded", order.number)
        if order.status == OrderStatus.PENDING:
            # The order row is locked above, so no other request moves it meanwhile.
            orders.change_status(order, OrderStatus.PAID, expected=OrderStatus.PENDING)
            return Settled("paid", order.number)
        return Settled("refund due", order.number, refund_payment_id=payment.id)


def handle_webhook(provider_name: str, payload: bytes, signature: str | None) -> Settled:
    """Verify and apply a provider's webhook. Raises BadEvent (answer 400) for a bad
    signature or body. The event is stored under its id in the same transaction as what it
    caused, so a repeated event finds it and changes nothing."""
    event = provider(provider_name).parse_event(payload, signature)
    state = event.state
    number = state.order_number if state is not None else None
    try:
        with transaction() as session:
            row = PaymentEvent(provider=provider_name, event_id=event.id, type=event.type,
                               order_number=number[:20] if number else None)
            session.add(row)
            session.flush()
            if state is None or event.type not in HANDLED_EVENTS:
                settled = Settled("ignored", number)
            else:
                settled = settle(state, provider_name)
            row.outcome = settled.outcome
    except IntegrityError:
        db.session.rollback()
        return Settled("duplicate", number)
    _after_settling(settled)
    return settled


#: The Checkout Session events that say something about a payment.
HANDLED_EVENTS = frozenset({
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
})


def check_return(order: Order, reference: str) -> Settled:
    """The customer came back from the provider's page: ask the provider about the attempt
    (it may be quicker than the webhook) and settle what it says."""
    payment = db.session.scalar(select(Payment).where(Payment.order_id == order.id,
                                                      Payment.reference == reference))
    if payment is None or payment.status != PaymentStatus.PENDING:
        return Settled("nothing to check", order.number)
    db.session.rollback()
    state = provider(payment.provider).status(reference)
    if state.order_number != order.number:
        return Settled("order mismatch", order.number)
    settled = settle(state, payment.provider)
    _after_settling(settled)
    return settled


def _after_settling(settled: Settled) -> None:
    if settled.refund_payment_id is not None:
        from blog.payments import refunds

        refunds.refund_late_payment(settled.refund_payment_id)


# --- closing attempts -----------------------------------------------------------------------


def close_attempts_on_cancel(sender: Any, order: Order, old: str, new: str, **extra: Any) -> None:
    """An online order cancelled (by its customer, an admin or the window): once the
    cancellation commits, close its open payment pages at the provider, so nobody pays for
    it afterwards (a payment that slips through anyway is refunded). A listener of
    ``shop.orders.order_status_changed``, connected by ``blog.register_listeners``."""
    if new != OrderStatus.CANCELLED or order.payment_provider == "manual":
        return
    open_ids = list(db.session.scalars(select(Payment.id).where(
        Payment.order_id == order.id, Payment.status == PaymentStatus.PENDING)))
    db.session.execute(update(Payment).where(Payment.id.in_(open_ids))
                       .values(status=PaymentStatus.FAILED, url=None, updated_at=utcnow())
                       .execution_options(synchronize_session=False))
    for payment_id in open_ids:
        enqueue_after_commit(close_attempt, payment_id)


@job(retries=5, retry_delay=60)
def close_attempt(payment_id: int) -> None:
    """Close one payment page at its provider (a job: the provider may be slow or down)."""
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.provider == "manual":
        return
    reference, name = payment.reference, payment.provider
    db.session.rollback()
    provider(name).close(reference)


# --- manual payments ------------------------------------------------------------------------


def record_manual_payment(sender: Any, order: Order, old: str, new: str, **extra: Any) -> None:
    """An order marked paid by an admin (manual provider) gets its payment in the ledger, in
    the same transaction (a listener of ``shop.orders.order_status_changed``, connected by
    ``blog.register_listeners``). An online payment records itself before the move."""
    if new != OrderStatus.PAID:
        return
    paid = db.session.scalar(select(func.count()).select_from(Payment).where(
        Payment.order_id == order.id, Payment.status == PaymentStatus.SUCCEEDED))
    if paid:
        return
    db.session.add(Payment(order_id=order.id, provider="manual", reference=f"manual-{order.number}",
                           amount=order.total, currency=_currency(), status=PaymentStatus.SUCCEEDED,
                           paid_at=utcnow()))


# --- the payment window ---------------------------------------------------------------------


def expire_unpaid(now: datetime | None = None, batch: int = 100) -> int:
    """Cancel (and restock, through the state machine) every online order still unpaid after
    its window; returns how many. Each order moves in its own transaction through the
    conditional update, so a run racing another run, or a payment, moves it at most once."""
    now = now or utcnow()
    expired = 0
    while True:
        due = list(db.session.scalars(_due(now).limit(batch)))
        db.session.rollback()
        if not due:
            return expired
        for order in due:
            try:
                with transaction():
                    # The cancellation's listener closes the open payment pages.
                    orders.change_status(order, OrderStatus.CANCELLED, expected=OrderStatus.PENDING)
            except ShopError:
                continue  # paid or cancelled meanwhile
            expired += 1
        if len(due) < batch:
            return expired


def _due(now: datetime) -> Select[Any]:
    return (select(Order).where(Order.status == OrderStatus.PENDING, Order.payment_provider != "manual",
                                Order.payment_due_at <= now)
            .order_by(Order.payment_due_at, Order.id))


def amount_paid(order: Order) -> Decimal:
    """What the customer has paid for ``order`` and not had back."""
    row = db.session.execute(select(func.coalesce(func.sum(Payment.amount - Payment.refunded), 0))
                             .where(Payment.order_id == order.id,
                                    Payment.status == PaymentStatus.SUCCEEDED)).scalar()
    return Decimal(row or 0)
