"""The outbox: one row per email, from the moment its cause commits to its delivery."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from blog.database import TimestampMixin, utcnow
from blog.extensions import Model


class EmailStatus:
    """Where a message is. ``sending`` is a worker's claim on it while it talks to the
    server; a claim older than ``MAIL_CLAIM_TIMEOUT`` (a worker killed mid-send) is given
    back to ``queued`` by the sweep."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    ALL = (QUEUED, SENDING, SENT, FAILED)


class EmailMessage(TimestampMixin, Model):
    """One email. Everything needed to send it again is kept: recipient, subject, both
    bodies and its headers (``Message-ID`` and ``Date`` fixed when it was written, so a
    retry is the same message to the receiving server)."""

    __tablename__ = "email_messages"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'sending', 'sent', 'failed')", name="status_known"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # The sweep's "what is due", and the admin list's filter, newest first.
        Index("ix_email_messages_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_email_messages_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: What the message is ("password_reset", "order_confirmation" ...), for the admin list.
    kind: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(320), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text, default="")
    #: Message-ID, Date and any extra header, as written into the message.
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(10), default=EmailStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(String(1000), default="")
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()

    def __repr__(self) -> str:
        return f"<EmailMessage {self.id} {self.kind} to {self.recipient} {self.status}>"
