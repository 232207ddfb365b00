"""Writing messages into the outbox, inside the transaction of the event that causes them."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from blog.database import utcnow
from blog.database_session import transaction
from blog.extensions import db
from blog.jobs import enqueue_after_commit
from blog.mail.delivery import deliver_email
from blog.mail.models import EmailMessage, EmailStatus
from blog.urls import site_host, site_name

#: Header names a caller may add (List-Unsubscribe for the newsletter, Reply-To ...); the
#: rest (From, To, Subject, Date, Message-ID) are the outbox's own.
_OWN_HEADERS = {"from", "to", "subject", "date", "message-id", "cc", "bcc"}


def queue_email(kind: str, recipient: str, subject: str, template: str, *,
                headers: dict[str, str] | None = None, **context: Any) -> EmailMessage:
    """Write a message to the outbox: ``templates/email/<template>.txt`` and ``.html``,
    rendered with ``context``. It is delivered by a job once the current transaction
    commits, and never if it rolls back. Call it inside the service's ``transaction()``.

    Links in the templates come from ``site_url(...)`` (``SITE_URL``), never the request.
    """
    extra = {name: _one_line(value) for name, value in (headers or {}).items()}
    if any(name.lower() in _OWN_HEADERS for name in extra):
        raise ValueError(f"headers may not set {sorted(extra)}")
    subject = _one_line(subject)[:300]
    context.setdefault("site_name", site_name())
    context.setdefault("subject", subject)
    message = EmailMessage(
        kind=kind, recipient=recipient, subject=subject,
        text_body=_render(f"email/{template}.txt", context),
        html_body=_render(f"email/{template}.html", context),
        headers={"Message-ID": email.utils.make_msgid(domain=site_host()),
                 "Date": email.utils.format_datetime(utcnow()), **extra},
        status=EmailStatus.QUEUED, next_attempt_at=utcnow())
    session = db.session()
    session.add(message)
    session.flush()  # its id, for the job
    enqueue_after_commit(deliver_email, message.id)
    return message


@dataclass(frozen=True)
class Backlog:
    """What waits in the outbox: messages not yet sent (queued or being sent), when the
    oldest of them was written, and messages given up on."""

    waiting: int
    oldest: datetime | None
    failed: int


def backlog() -> Backlog:
    """The outbox's backlog in one statement over the index on status (the sent messages,
    most rows, are not read): for /healthz and the admin dashboard."""
    waiting = EmailMessage.status.in_((EmailStatus.QUEUED, EmailStatus.SENDING))
    count, oldest, failed = db.session.execute(
        select(func.count().filter(waiting), func.min(EmailMessage.created_at).filter(waiting),
               func.count().filter(EmailMessage.status == EmailStatus.FAILED))
        .where(EmailMessage.status.in_((EmailStatus.QUEUED, EmailStatus.SENDING,
                                        EmailStatus.FAILED)))).one()
    return Backlog(count, oldest, failed)


def _one_line(value: str) -> str:
    """A header value on one line: a title with a line break would otherwise be refused by
    the email library, or worse, add a header of its own."""
    return " ".join(value.split())


def _render(name: str, context: dict[str, Any]) -> str:
    """A template straight from the environment: the site's context processors (the logged-in
    member, the logout form) belong to pages, and an email may be written with no request."""
    return current_app.jinja_env.get_template(name).render(context)


def resend(message: EmailMessage) -> EmailMessage:
    """Send a message again (the admin's "resend"). A failed or still queued one goes back
    to the queue as it is, its attempts counted from zero; a sent one is copied as a new
    message (a new Message-ID: the receiving server would drop a repeated one)."""
    with transaction() as session:
        if message.status == EmailStatus.SENT:
            copy = EmailMessage(
                kind=message.kind, recipient=message.recipient, subject=message.subject,
                text_body=message.text_body, html_body=message.html_body,
                headers={**message.headers,
                         "Message-ID": email.utils.make_msgid(domain=site_host()),
                         "Date": email.utils.format_datetime(utcnow())},
                status=EmailStatus.QUEUED, next_attempt_at=utcnow())
            session.add(copy)
            session.flush()
            enqueue_after_commit(deliver_email, copy.id)
            return copy
        if message.status != EmailStatus.SENDING:
            message.status, message.attempts = EmailStatus.QUEUED, 0
            message.next_attempt_at, message.last_error = utcnow(), ""
            session.add(message)
            session.flush()
            enqueue_after_commit(deliver_email, message.id)
        return message
