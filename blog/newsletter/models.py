"""Subscribers, and the record of what was sent to whom.

``newsletter_deliveries`` has one row per post and subscriber (a unique constraint): however
often a send is started (a job run twice, two workers, a post saved again), nobody is written
to twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from blog.database import TimestampMixin, status_check
from blog.extensions import Model


class SubscriberStatus:
    PENDING = "pending"  # asked, not yet confirmed from the emailed link
    CONFIRMED = "confirmed"  # gets every newsletter
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"  # the mail server refused the address for good
    ALL = (PENDING, CONFIRMED, UNSUBSCRIBED, BOUNCED)


class Subscriber(TimestampMixin, Model):
    """An address that asked for the newsletter. ``email_key`` is the address lower-cased, so
    one address is one row whatever its spelling."""

    __tablename__ = "subscribers"
    __table_args__ = (
        status_check(SubscriberStatus.ALL),
        Index("ix_subscribers_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    email_key: Mapped[str] = mapped_column(String(254), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=SubscriberStatus.PENDING)
    #: Where the subscription came from: "form", "profile", "import".
    source: Mapped[str] = mapped_column(String(20), default="form")
    #: The member with this address, when there is one (members-only posts are sent in full).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    confirmed_at: Mapped[datetime | None] = mapped_column()
    unsubscribed_at: Mapped[datetime | None] = mapped_column()
    bounced_at: Mapped[datetime | None] = mapped_column()
    #: The last confirmation link sent (to throttle sending them again).
    confirmation_sent_at: Mapped[datetime | None] = mapped_column()


class SendStatus:
    WAITING = "waiting"  # the post is scheduled: sent when it becomes visible
    SENDING = "sending"
    DONE = "done"
    ALL = (WAITING, SENDING, DONE)


class NewsletterSend(TimestampMixin, Model):
    """A post to be sent, or sent, as the newsletter: one per post."""

    __tablename__ = "newsletter_sends"
    __table_args__ = (
        status_check(SendStatus.ALL),
        Index("ix_newsletter_sends_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=SendStatus.WAITING)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()

    deliveries: Mapped[list[NewsletterDelivery]] = relationship(
        back_populates="send", lazy="raise_on_sql", passive_deletes=True)


class DeliveryStatus:
    QUEUED = "queued"
    SENDING = "sending"  # claimed by a worker
    SENT = "sent"
    FAILED = "failed"
    ALL = (QUEUED, SENDING, SENT, FAILED)


class NewsletterDelivery(Model):
    """One copy of one newsletter for one subscriber."""

    __tablename__ = "newsletter_deliveries"
    __table_args__ = (
        UniqueConstraint("send_id", "subscriber_id", name="uq_newsletter_deliveries_send_id_subscriber_id"),
        status_check(DeliveryStatus.ALL),
        Index("ix_newsletter_deliveries_send_id_status", "send_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    send_id: Mapped[int] = mapped_column(ForeignKey("newsletter_sends.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str] = mapped_column(String(1000), default="")
    claimed_at: Mapped[datetime | None] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()

    send: Mapped[NewsletterSend] = relationship(back_populates="deliveries")
    subscriber: Mapped[Subscriber] = relationship(lazy="raise_on_sql")
