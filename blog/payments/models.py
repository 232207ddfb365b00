"""The payment ledger: what was asked for and paid (``payments``), given back (``refunds``
and their lines) and what the provider told us (``payment_events``).

Amounts are integer minor units in the database (the Money type). The database itself keeps
the ledger honest: a payment's ``refunded`` never exceeds its ``amount``, a line's refunded
quantity never exceeds what was bought, and a provider's event is stored once.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from blog.database import TimestampMixin, status_check, utcnow
from blog.extensions import Model


class PaymentStatus:
    """Where a payment stands: asked for (``pending``), money received (``succeeded``), or
    never to be paid (``failed``: refused or expired at the provider)."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ALL = (PENDING, SUCCEEDED, FAILED)


class Payment(TimestampMixin, Model):
    """One attempt to be paid for an order (a Checkout Session), or a payment recorded by hand."""

    __tablename__ = "payments"
    __table_args__ = (
        status_check(PaymentStatus.ALL),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        # Never more given back than was paid: the last word, whatever races above it.
        CheckConstraint("refunded >= 0 AND refunded <= amount", name="refunded_within_amount"),
        UniqueConstraint("provider", "reference", name="uq_payments_provider_reference"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(20))
    #: The provider's id of the attempt (a Checkout Session's ``cs_…``); for manual payments a
    #: reference of our own.
    reference: Mapped[str] = mapped_column(String(255))
    #: What the money itself is called at the provider (a PaymentIntent ``pi_…``): refunds go to it.
    charge_reference: Mapped[str | None] = mapped_column(String(255))
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    refunded: Mapped[Decimal] = mapped_column(default=Decimal(0), server_default=text("0"))
    status: Mapped[str] = mapped_column(String(20), default=PaymentStatus.PENDING)
    #: Where the customer pays (the provider's page), while the attempt is open.
    url: Mapped[str | None] = mapped_column(String(2000))
    paid_at: Mapped[datetime | None] = mapped_column()

    refunds: Mapped[list[Refund]] = relationship(back_populates="payment", lazy="raise_on_sql",
                                                 order_by="Refund.id")


class RefundStatus:
    """``pending``: asked of the provider, answer unknown; ``succeeded``; ``failed``: the
    provider refused, nothing was given back."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ALL = (PENDING, SUCCEEDED, FAILED)


class Refund(TimestampMixin, Model):
    """Money given back for an order: lines and quantities, shipping, why, whether the stock
    went back."""

    __tablename__ = "refunds"
    __table_args__ = (
        status_check(RefundStatus.ALL),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("shipping >= 0 AND shipping <= amount", name="shipping_within_amount"),
        Index("ix_refunds_order_id_created_at", "order_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    amount: Mapped[Decimal]
    #: The part of ``amount`` that is shipping.
    shipping: Mapped[Decimal] = mapped_column(default=Decimal(0), server_default=text("0"))
    reason: Mapped[str] = mapped_column(String(500), default="")
    restock: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(20), default=RefundStatus.PENDING)
    #: Sent with the provider's refund call, so a retry never refunds twice.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    #: The provider's id of the refund (``re_…``).
    provider_reference: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str] = mapped_column(String(500), default="")
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    payment: Mapped[Payment] = relationship(back_populates="refunds")
    lines: Mapped[list[RefundLine]] = relationship(
        back_populates="refund", cascade="all, delete-orphan", passive_deletes=True,
        lazy="raise_on_sql", order_by="RefundLine.id")


class RefundLine(Model):
    """How many of one order line a refund gave back, and for how much."""

    __tablename__ = "refund_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    refund_id: Mapped[int] = mapped_column(ForeignKey("refunds.id", ondelete="CASCADE"), index=True)
    order_item_id: Mapped[int] = mapped_column(ForeignKey("order_items.id", ondelete="CASCADE"), index=True)
    quantity: Mapped[int]
    amount: Mapped[Decimal]

    refund: Mapped[Refund] = relationship(back_populates="lines")


class PaymentEvent(Model):
    """An event a provider sent (a webhook), stored once by its id: the same event delivered
    again, or ten times at once, finds its row and changes nothing."""

    __tablename__ = "payment_events"
    __table_args__ = (
        UniqueConstraint("provider", "event_id", name="uq_payment_events_provider_event_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(100))
    order_number: Mapped[str | None] = mapped_column(String(20), index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: What it did: "paid", "duplicate", "ignored", "amount mismatch", "refunded (late)" …
    outcome: Mapped[str] = mapped_column(String(100), default="")
