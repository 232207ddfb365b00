"""Delivering the outbox: SMTP (``MAIL_SERVER``) or ``.eml`` files (without one), one job per
message, retried with exponential backoff on temporary failures, never sent twice at once.

A worker first *claims* a message with one conditional UPDATE (queued and due, to sending);
of two workers handed the same message only one wins the claim, so only one talks to the
server. The outcome is written in a second short transaction. Nothing is held open while the
server answers.
"""

from __future__ import annotations

import email.message
import email.utils
import logging
import os
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self

from flask import current_app
from huey import crontab
from sqlalchemy import select, update

from blog.database import affected_rows, utcnow
from blog.database_session import transaction
from blog.extensions import db
from blog.jobs import enqueue_after_commit, job, periodic
from blog.mail.models import EmailMessage, EmailStatus
from blog.urls import site_host, site_name

log = logging.getLogger("inkwell.mail")

# The longest error text kept (the column's size).
_ERROR_MAX = 1000


class DeliveryError(Exception):
    """Sending failed. ``temporary``: worth trying again later (connection refused, a 4xx
    answer); otherwise the server refused this message for good (a 5xx answer)."""

    def __init__(self, message: str, *, temporary: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.code = code


def classify(error: Exception) -> DeliveryError:
    """What an exception from ``smtplib`` (or the network) means for the message."""
    if isinstance(error, DeliveryError):
        return error
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(error.recipients.values()), (451, b""))
        return _answer(code, text)
    if isinstance(error, smtplib.SMTPAuthenticationError):
        # The site's credentials, not the message: retried, and the admin sees why.
        return DeliveryError(f"The mail server refused the login: {error.smtp_code} "
                             f"{_text(error.smtp_error)}", temporary=True, code=error.smtp_code)
    if isinstance(error, smtplib.SMTPResponseException):
        return _answer(error.smtp_code, error.smtp_error)
    if isinstance(error, smtplib.SMTPException | OSError):
        return DeliveryError(f"Could not talk to the mail server: {type(error).__name__}: {error}",
                             temporary=True)
    raise error


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _answer(code: int, text: bytes | str) -> DeliveryError:
    return DeliveryError(f"The mail server answered {code} {_text(text)}".strip(),
                         temporary=not 500 <= code < 600, code=code)


# --- building the message ----------------------------------------------------------------


def sender() -> str:
    """``MAIL_DEFAULT_SENDER``, or "<site name> <noreply@<SITE_URL's host>>"."""
    config = current_app.config
    if config["MAIL_DEFAULT_SENDER"]:
        return str(config["MAIL_DEFAULT_SENDER"])
    return email.utils.formataddr((site_name(), f"noreply@{site_host()}"))


def build(row: EmailMessage) -> email.message.EmailMessage:
    """The MIME message for an outbox row: plain text, with the HTML as its alternative."""
    message = email.message.EmailMessage()
    message["From"] = sender()
    message["To"] = row.recipient
    message["Subject"] = row.subject
    for name, value in row.headers.items():
        message[name] = value
    message.set_content(row.text_body)
    if row.html_body:
        message.add_alternative(row.html_body, subtype="html")
    return message


# --- backends ------------------------------------------------------------------------------


class Backend(Protocol):
    """Where messages go: opened once for a batch, then ``send`` per message."""

    def __enter__(self) -> Self: ...

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None: ...

    def send(self, message: email.message.EmailMessage, name: str) -> None: ...


class SMTPBackend:
    """Any SMTP server: ``MAIL_SERVER``, ``MAIL_PORT``, STARTTLS (``MAIL_USE_TLS``) or TLS from
    the start (``MAIL_USE_SSL``), a login when ``MAIL_USERNAME`` is set."""

    def __init__(self) -> None:
        config = current_app.config
        self.host, self.port = config["MAIL_SERVER"], int(config["MAIL_PORT"])
        self.use_ssl, self.use_tls = bool(config["MAIL_USE_SSL"]), bool(config["MAIL_USE_TLS"])
        self.username, self.password = config["MAIL_USERNAME"], config["MAIL_PASSWORD"]
        self.timeout = float(config["MAIL_TIMEOUT"])
        self.connection: smtplib.SMTP | None = None

    def __enter__(self) -> Self:
        try:
            if self.use_ssl:
                self.connection = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                   context=ssl.create_default_context())
            else:
                self.connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.use_tls:
                    self.connection.starttls(context=ssl.create_default_context())
            if self.username:
                self.connection.login(self.username, self.password or "")
        except Exception as error:
            self._close()
            raise classify(error) from error
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._close()

    def _close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.quit()
            except (smtplib.SMTPException, OSError):
                self.connection.close()
            self.connection = None

    def send(self, message: email.message.EmailMessage, name: str) -> None:
        assert self.connection is not None, "send() outside `with`"
        try:
            self.connection.send_message(message)
        except Exception as error:
            raise classify(error) from error


class FileBackend:
    """No mail server: each message becomes ``<folder>/<name>.eml`` (``MAIL_OUTBOX_FOLDER``,
    default ``instance/outbox``), openable in any mail program."""

    def __init__(self) -> None:
        self.folder = current_app.config["MAIL_OUTBOX_FOLDER"] or os.path.join(
            current_app.instance_path, "outbox")

    def __enter__(self) -> Self:
        os.makedirs(self.folder, exist_ok=True)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        return None

    def send(self, message: email.message.EmailMessage, name: str) -> None:
        path = os.path.join(self.folder, f"{name}.eml")
        partial = path + ".part"
        try:
            with open(partial, "wb") as handle:
                handle.write(message.as_bytes())
            os.replace(partial, path)  # a reader never sees half a message
        except OSError as error:
            raise DeliveryError(f"Could not write {path}: {error}", temporary=True) from error


def backend() -> Backend:
    """SMTP when ``MAIL_SERVER`` is set, else files."""
    return SMTPBackend() if current_app.config["MAIL_SERVER"] else FileBackend()


def file_name(row: EmailMessage) -> str:
    """``20261122-093000-0000000042-password_reset``: sorts by time, then by row (the id
    zero-padded, so 10 sorts after 9), and names its kind."""
    return f"{row.created_at:%Y%m%d-%H%M%S}-{row.id:010d}-{row.kind}"


# --- the job -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt did, for the caller (and the tests)."""

    status: str
    error: str = ""


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: ``MAIL_RETRY_DELAY``
    doubled each time, at most ``MAIL_RETRY_MAX_DELAY``."""
    config = current_app.config
    return float(min(config["MAIL_RETRY_DELAY"] * 2 ** max(attempts - 1, 0),
                     config["MAIL_RETRY_MAX_DELAY"]))


def _claim(message_id: int, now: datetime) -> EmailMessage | None:
    with transaction() as session:
        claimed = affected_rows(session.execute(
            update(EmailMessage)
            .where(EmailMessage.id == message_id, EmailMessage.status == EmailStatus.QUEUED,
                   EmailMessage.next_attempt_at <= now)
            .values(status=EmailStatus.SENDING, claimed_at=now, updated_at=now,
                    attempts=EmailMessage.attempts + 1)
            .execution_options(synchronize_session=False)))
        if not claimed:
            return None
        return session.scalars(select(EmailMessage).where(EmailMessage.id == message_id)
                               .execution_options(populate_existing=True)).one()


def _finish(row: EmailMessage, claimed_at: datetime, **values: object) -> None:
    with transaction() as session:
        session.execute(
            update(EmailMessage)
            .where(EmailMessage.id == row.id, EmailMessage.status == EmailStatus.SENDING,
                   EmailMessage.claimed_at == claimed_at)
            .values(updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False))
        if values.get("status") == EmailStatus.QUEUED:
            enqueue_after_commit(deliver_email, row.id, delay=retry_delay(row.attempts))


def deliver(message_id: int) -> Outcome | None:
    """Try to send one outbox message now; None when it is not this worker's to send
    (already sent or failed, another worker has it, or its next try is not due)."""
    now = utcnow()
    row = _claim(message_id, now)
    if row is None:
        return None
    try:
        with backend() as mailer:
            mailer.send(build(row), file_name(row))
    except DeliveryError as error:
        text = str(error)[:_ERROR_MAX]
        final = not error.temporary or row.attempts >= current_app.config["MAIL_MAX_ATTEMPTS"]
        if final:
            log.error("email %s to %s failed for good after %s attempts: %s",
                      row.id, row.recipient, row.attempts, text)
            _finish(row, now, status=EmailStatus.FAILED, last_error=text)
            return Outcome(EmailStatus.FAILED, text)
        log.warning("email %s to %s: attempt %s failed, will retry: %s",
                    row.id, row.recipient, row.attempts, text)
        _finish(row, now, status=EmailStatus.QUEUED, last_error=text,
                next_attempt_at=utcnow() + timedelta(seconds=retry_delay(row.attempts)))
        return Outcome(EmailStatus.QUEUED, text)
    except Exception as error:
        # A message that cannot even be built (a bug, a header it refuses) would fail the
        # same way every time: mark it failed with the reason instead of leaving it claimed
        # for the sweep to hand out again and again.
        log.exception("email %s to %s could not be sent", row.id, row.recipient)
        text = f"{type(error).__name__}: {error}"[:_ERROR_MAX]
        _finish(row, now, status=EmailStatus.FAILED, last_error=text)
        return Outcome(EmailStatus.FAILED, text)
    _finish(row, now, status=EmailStatus.SENT, sent_at=utcnow(), last_error="")
    log.info("email %s (%s) sent to %s", row.id, row.kind, row.recipient)
    return Outcome(EmailStatus.SENT)


@job()
def deliver_email(message_id: int) -> None:
    """The job: :func:`deliver`, its errors recorded on the row rather than raised."""
    deliver(message_id)


def sweep(now: datetime | None = None) -> int:
    """Give stale claims back and enqueue messages due for a while that no job picked up (a
    worker killed mid-send, a queue that lost its job); returns how many were enqueued."""
    config = current_app.config
    now = now or utcnow()
    with transaction() as session:
        session.execute(
            update(EmailMessage)
            .where(EmailMessage.status == EmailStatus.SENDING,
                   EmailMessage.claimed_at < now - timedelta(seconds=config["MAIL_CLAIM_TIMEOUT"]))
            .values(status=EmailStatus.QUEUED, updated_at=now,
                    last_error="The worker sending it stopped; trying again.")
            .execution_options(synchronize_session=False))
        due = list(session.scalars(
            select(EmailMessage.id)
            .where(EmailMessage.status == EmailStatus.QUEUED,
                   EmailMessage.next_attempt_at <= now - timedelta(seconds=config["MAIL_SWEEP_AFTER"]))
            .order_by(EmailMessage.next_attempt_at).limit(500)))
        for message_id in due:
            enqueue_after_commit(deliver_email, message_id)
    return len(due)


@periodic(crontab(minute="*"))
def sweep_outbox() -> None:
    """Every minute in ``flask worker``: :func:`sweep`."""
    count = sweep()
    if count:
        log.info("outbox sweep: enqueued %s waiting messages", count)
    db.session.remove()
