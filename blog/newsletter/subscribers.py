"""Subscribing (double opt-in), confirming and unsubscribing.

Whatever address is typed, the answer is the same ("check your inbox"): nobody learns whether
an address was already subscribed. One address is one row (``email_key`` is unique): a second
subscription of the same address, or a member's own, updates that row. The confirmation link is
signed (itsdangerous) and carries the row and the address; the unsubscribe link is a signature
of the row's id, so it works for as long as the site's ``SECRET_KEY`` does, with nothing stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, Signer, URLSafeTimedSerializer
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError

from blog.accounts.models import User, lookup_key
from blog.database import contains_pattern, utcnow
from blog.database_session import transaction
from blog.errors import ServiceError
from blog.extensions import db
from blog.mail.outbox import queue_email
from blog.newsletter.models import Subscriber, SubscriberStatus
from blog.urls import site_name, site_url

S = SubscriberStatus


class NewsletterError(ServiceError):
    """A newsletter request that cannot be carried out."""


# --- tokens ------------------------------------------------------------------------------------


def _confirm_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="inkwell.newsletter-confirm")


def confirm_token(subscriber: Subscriber) -> str:
    return _confirm_serializer().dumps([subscriber.id, subscriber.email_key])


def _unsubscribe_signer() -> Signer:
    return Signer(current_app.config["SECRET_KEY"], salt="inkwell.newsletter-unsubscribe")


def unsubscribe_token(subscriber_id: int) -> str:
    """The token in a subscriber's unsubscribe link (the same in every newsletter)."""
    return _unsubscribe_signer().sign(str(subscriber_id)).decode()


def unsubscribe_url(subscriber_id: int) -> str:
    return site_url("newsletter.unsubscribe", token=unsubscribe_token(subscriber_id))


def subscriber_for_unsubscribe(token: str) -> Subscriber | None:
    """The subscriber an unsubscribe token names, or None for a token that is not ours."""
    try:
        value = _unsubscribe_signer().unsign(token.encode()).decode()
    except (BadSignature, UnicodeError):
        return None
    return db.session.get(Subscriber, int(value)) if value.isdigit() and len(value) < 12 else None


# --- subscribing -------------------------------------------------------------------------------


def subscribe(address: str, *, source: str = "form") -> None:
    """Ask for the newsletter for ``address``: a confirmation link is emailed, unless the
    address is confirmed already or was sent one a moment ago. The caller says the same thing
    whatever happened here."""
    key = lookup_key(address)
    now = utcnow()
    resend_after = timedelta(seconds=int(current_app.config["NEWSLETTER_CONFIRM_RESEND_SECONDS"]))
    try:
        with transaction() as session:
            row = session.scalar(select(Subscriber).where(Subscriber.email_key == key).with_for_update())
            if row is None:
                row = Subscriber(email=address.strip(), email_key=key, status=S.PENDING, source=source,
                                 user_id=_member_id(key))
                session.add(row)
                session.flush()
            elif row.status == S.CONFIRMED:
                return  # nothing to do, and nothing said about it
            elif row.confirmation_sent_at is not None and row.confirmation_sent_at > now - resend_after:
                return  # a link went out a moment ago
            else:
                row.status, row.email = S.PENDING, address.strip()
            row.confirmation_sent_at = now
            queue_email("newsletter_confirm", row.email, f"Confirm your subscription to {site_name()}",
                        "newsletter_confirm", confirm_url=site_url("newsletter.confirm",
                                                                   token=confirm_token(row)))
    except IntegrityError:
        return  # the same address subscribed at the same moment: that request sends the link


def _member_id(key: str) -> int | None:
    return db.session.scalar(select(User.id).where(User.email_key == key))


def confirm(token: str) -> Subscriber | None:
    """Confirm the subscription a link names; None for a link that is broken, expired or for
    an address that has since unsubscribed again."""
    max_age = int(current_app.config["NEWSLETTER_CONFIRM_MAX_AGE"])
    try:
        values = _confirm_serializer().loads(token, max_age=max_age)
    except BadSignature:
        return None
    if not (isinstance(values, list) and len(values) == 2 and isinstance(values[0], int)):
        return None
    with transaction() as session:
        row = session.get(Subscriber, values[0], with_for_update=True)
        if row is None or row.email_key != values[1] or row.status == S.UNSUBSCRIBED:
            return None
        if row.status != S.CONFIRMED:
            row.status, row.confirmed_at, row.bounced_at = S.CONFIRMED, utcnow(), None
    return row


def unsubscribe(subscriber: Subscriber) -> None:
    """Stop sending to ``subscriber`` (idempotent)."""
    with transaction() as session:
        row = session.get(Subscriber, subscriber.id, with_for_update=True)
        if row is not None and row.status != S.UNSUBSCRIBED:
            row.status, row.unsubscribed_at = S.UNSUBSCRIBED, utcnow()


def member_subscription(user: User) -> Subscriber | None:
    return db.session.scalar(select(Subscriber).where(Subscriber.email_key == user.email_key))


def set_member_subscription(user: User, wanted: bool) -> str:
    """A member subscribes or unsubscribes from their profile. An address the member has
    confirmed (verified) needs no second confirmation; otherwise a link is emailed. Returns
    what to tell them."""
    if not wanted:
        current = member_subscription(user)
        if current is not None:
            unsubscribe(current)
        return "You will no longer get the newsletter."
    if user.email_verified_at is None:
        subscribe(user.email, source="profile")
        return f"We have sent a link to {user.email}: the newsletter starts when you follow it."
    try:
        with transaction() as session:
            row = session.scalar(select(Subscriber).where(Subscriber.email_key == user.email_key)
                                 .with_for_update())
            if row is None:
                row = Subscriber(email=user.email, email_key=user.email_key, source="profile")
                session.add(row)
            row.status, row.confirmed_at, row.user_id = S.CONFIRMED, utcnow(), user.id
    except IntegrityError:
        return set_member_subscription(user, wanted)
    return "You will get every post by email."


# --- the admin's view --------------------------------------------------------------------------


def counts() -> dict[str, int]:
    """Subscribers per status, zeros included (one statement)."""
    found = {status: count for status, count in db.session.execute(
        select(Subscriber.status, func.count()).group_by(Subscriber.status))}
    return {status: int(found.get(status, 0)) for status in S.ALL}


def subscriber_list(status: str = "", q: str = "") -> Select[Any]:
    stmt = select(Subscriber).order_by(Subscriber.id.desc())
    if status:
        stmt = stmt.where(Subscriber.status == status)
    if q:
        stmt = stmt.where(Subscriber.email_key.like(contains_pattern(q.lower()), escape="\\"))
    return stmt


def valid_address(address: str) -> str:
    """The address, checked (the same rules as accounts); raises NewsletterError."""
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise NewsletterError("Enter a valid email address.", "email") from error


# --- import and export -------------------------------------------------------------------------

EXPORT_COLUMNS = ("email", "status", "source", "created_at", "confirmed_at")


def export_rows() -> Any:
    """Every subscriber as CSV rows (a generator over the table, in id order, in chunks)."""
    yield EXPORT_COLUMNS
    after = 0
    while True:
        rows = db.session.scalars(select(Subscriber).where(Subscriber.id > after)
                                  .order_by(Subscriber.id).limit(1000)).all()
        if not rows:
            return
        for row in rows:
            yield (row.email, row.status, row.source, row.created_at.isoformat(),
                   row.confirmed_at.isoformat() if row.confirmed_at else "")
        after = rows[-1].id


@dataclass(frozen=True)
class ImportResult:
    added: int
    updated: int
    skipped: list[tuple[int, str]]  # (line, why)


def import_rows(rows: list[dict[str, str]], *, opted_in: bool) -> ImportResult:
    """Add subscribers from CSV rows (``email``, optionally ``status``). A row is confirmed only
    when it says ``confirmed`` and the admin confirms these people opted in (``opted_in``);
    otherwise it is pending and gets nothing until it confirms. An address that unsubscribed or
    bounced stays so: an import never overrides that choice. One transaction."""
    added = updated = 0
    skipped: list[tuple[int, str]] = []
    seen: set[str] = set()
    with transaction() as session:
        for line, row in enumerate(rows, start=2):
            raw = (row.get("email") or "").strip()
            try:
                address = valid_address(raw)
            except NewsletterError:
                skipped.append((line, f"not an email address: {raw[:60]!r}"))
                continue
            key = lookup_key(address)
            if key in seen:
                skipped.append((line, "the same address again"))
                continue
            seen.add(key)
            wanted = (row.get("status") or "").strip().lower()
            confirmed = wanted == S.CONFIRMED and opted_in
            existing = session.scalar(select(Subscriber).where(Subscriber.email_key == key))
            if existing is None:
                session.add(Subscriber(email=address, email_key=key, source="import",
                                       status=S.CONFIRMED if confirmed else S.PENDING,
                                       confirmed_at=utcnow() if confirmed else None,
                                       user_id=_member_id(key)))
                added += 1
            elif existing.status in (S.UNSUBSCRIBED, S.BOUNCED):
                skipped.append((line, f"{existing.status}: left as it is"))
            elif confirmed and existing.status != S.CONFIRMED:
                existing.status, existing.confirmed_at = S.CONFIRMED, utcnow()
                updated += 1
    return ImportResult(added, updated, skipped)
