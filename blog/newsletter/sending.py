"""Sending a post as the newsletter: once, to every confirmed subscriber, at a steady rate,
through one SMTP connection per batch, and resumable after a crash.

1. A post saved with ``send_newsletter`` gets a ``newsletter_sends`` row (unique per post), in
   the post's transaction (a listener of ``posts.services.post_saved``). It waits until the
   post is visible: at once, or when its ``publish_at`` comes (the worker looks every minute).
2. Dispatching writes one ``newsletter_deliveries`` row per confirmed subscriber in one
   ``INSERT … SELECT`` (unique per send and subscriber), and marks the send as sending.
3. A batch job claims up to ``NEWSLETTER_RATE_PER_MINUTE`` queued deliveries with a conditional
   update, sends them over one connection, and records each one as it goes: sent, failed (a
   5xx answer, which also marks the subscriber bounced), or queued again (a temporary error).
   Then it schedules the next batch a minute after this one started.
4. A worker killed mid-batch leaves claims behind; after ``NEWSLETTER_CLAIM_TIMEOUT`` the
   periodic sweep puts them back and starts a batch, so the rest go out, each once. (The one
   message the SMTP server had accepted when the worker died, before its row said so, would
   go again: the same limit as any mail queue.)
"""

from __future__ import annotations

import email.message
import email.utils
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from huey import crontab
from sqlalchemy import Select, delete, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from blog.accounts.models import User
from blog.database import affected_rows, utcnow
from blog.database_session import transaction
from blog.extensions import db
from blog.jobs import enqueue_after_commit, job, periodic
from blog.mail.delivery import DeliveryError, backend, sender
from blog.newsletter.models import (
    DeliveryStatus,
    NewsletterDelivery,
    NewsletterSend,
    SendStatus,
    Subscriber,
    SubscriberStatus,
)
from blog.newsletter.subscribers import unsubscribe_url
from blog.posts import services as posts
from blog.posts.models import Post
from blog.urls import site_host, site_name, site_url

log = logging.getLogger("inkwell.newsletter")

#: Stands for each subscriber's own unsubscribe address in the rendered message, so a post
#: is rendered twice (in full, and as its excerpt), not once per subscriber.
_UNSUBSCRIBE = "https://unsubscribe.invalid/%%TOKEN%%"


# --- 1. the post asks ---------------------------------------------------------------------------


def on_post_saved(sender: Any, post: Post, **extra: Any) -> None:
    """A listener of ``posts.services.post_saved`` (in the post's transaction, connected by
    ``blog.register_listeners``): a published post with ``send_newsletter`` gets its send; a
    send still waiting is dropped when the author changes their mind."""
    session = db.session
    send = session.scalar(select(NewsletterSend).where(NewsletterSend.post_id == post.id))
    if post.send_newsletter and post.published:
        if send is None:
            try:
                with session.begin_nested():
                    send = NewsletterSend(post_id=post.id, status=SendStatus.WAITING)
                    session.add(send)
            except IntegrityError:  # a concurrent save of the same post made it
                return
            session.flush()
        if send.status == SendStatus.WAITING and posts.is_public(post):
            enqueue_after_commit(start_send, send.id)
    elif send is not None and send.status == SendStatus.WAITING:
        session.execute(delete(NewsletterSend).where(NewsletterSend.id == send.id,
                                                     NewsletterSend.status == SendStatus.WAITING))


# --- 2. dispatching -----------------------------------------------------------------------------


def dispatch(send_id: int) -> bool:
    """Write the deliveries of a waiting send whose post is now visible, and start sending;
    whether it started (a second call, or one for a post not yet visible, does nothing)."""
    with transaction() as session:
        send = session.scalar(select(NewsletterSend).where(NewsletterSend.id == send_id).with_for_update())
        if send is None or send.status != SendStatus.WAITING:
            return False
        post = session.get(Post, send.post_id)
        if post is None or not post.send_newsletter or not posts.is_public(post):
            return False
        session.execute(insert(NewsletterDelivery).from_select(
            ["send_id", "subscriber_id", "status", "attempts", "error"],
            select(literal(send.id), Subscriber.id, literal(DeliveryStatus.QUEUED), literal(0), literal(""))
            .where(Subscriber.status == SubscriberStatus.CONFIRMED).order_by(Subscriber.id)))
        moved = affected_rows(session.execute(
            update(NewsletterSend)
            .where(NewsletterSend.id == send.id, NewsletterSend.status == SendStatus.WAITING)
            .values(status=SendStatus.SENDING, started_at=utcnow(), updated_at=utcnow())
            .execution_options(synchronize_session=False)))
        if moved:
            enqueue_after_commit(send_batch, send.id)
        return bool(moved)


@job()
def start_send(send_id: int) -> None:
    """The job enqueued when a post to send is saved visible: :func:`dispatch`."""
    dispatch(send_id)


# --- 3. batches ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    """A newsletter as sent to everyone, but for the unsubscribe address."""

    subject: str
    text: str
    html: str


def test_context(post: Post) -> dict[str, Any]:
    """What the admin's "send a test to me" renders (in full; the unsubscribe link leads to
    the subscribe page, since the admin may not be a subscriber)."""
    context = _context(post, full=True) | {"unsubscribe_url": site_url("newsletter.subscribe")}
    del context["subject"]  # the outbox sets it
    return context


def _context(post: Post, *, full: bool) -> dict[str, Any]:
    return {
        "post": post, "full": full, "site_name": site_name(), "subject": post.title,
        "post_url": site_url("blog.post", slug=post.slug),
        "cover_url": site_url("images.serve", name=post.cover) if post.cover else None,
        "body_html": email_html(post.body_html) if full else "",
        "body_text": _text_of(post.body_html) if full else post.excerpt,
        "unsubscribe_url": _UNSUBSCRIBE,
    }


def render(post: Post, *, full: bool) -> Rendered:
    """The email of ``post``: in ``full``, or its excerpt with a link (a members-only post
    for a subscriber who is not a member). Every link and image is absolute (``SITE_URL``)."""
    context = _context(post, full=full)
    # Straight from the environment, as the outbox renders: the pages' context processors
    # (the logged-in member...) have no business in an email written by a worker.
    env = current_app.jinja_env
    return Rendered(post.title, env.get_template("email/newsletter.txt").render(context),
                    env.get_template("email/newsletter.html").render(context))


_RESPONSIVE = re.compile(r'\s(?:srcset|sizes|loading|decoding)="[^"]*"')
_LOCAL = re.compile(r'(\s(?:src|href))="/(?!/)')
_IMG = re.compile(r"<img ")


def email_html(body_html: str) -> str:
    """A post's HTML made for mail programs: absolute addresses (``SITE_URL``), no responsive
    image attributes (few clients know them), images that fit the column."""
    root = site_url("blog.index").rstrip("/")
    html = _RESPONSIVE.sub("", body_html)
    html = _LOCAL.sub(lambda match: f'{match.group(1)}="{root}/', html)
    return _IMG.sub('<img style="max-width:100%;height:auto;" ', html)


def _text_of(body_html: str) -> str:
    from blog.rendering import excerpt_of

    return excerpt_of(body_html, length=1_000_000)


def message_for(rendered: Rendered, subscriber_id: int, address: str) -> email.message.EmailMessage:
    """The MIME message for one subscriber, with RFC 8058 one-click unsubscribe headers."""
    url = unsubscribe_url(subscriber_id)
    message = email.message.EmailMessage()
    message["From"] = newsletter_sender()
    message["To"] = address
    message["Subject"] = rendered.subject
    message["Date"] = email.utils.format_datetime(utcnow())
    message["Message-ID"] = email.utils.make_msgid(domain=site_host())
    message["List-Unsubscribe"] = f"<{url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["List-Id"] = f"{site_name()} <newsletter.{site_host()}>"
    message.set_content(rendered.text.replace(_UNSUBSCRIBE, url))
    message.add_alternative(rendered.html.replace(_UNSUBSCRIBE, url), subtype="html")
    return message


def newsletter_sender() -> str:
    """``NEWSLETTER_SENDER``, else the site's sender named after the site."""
    return str(current_app.config["NEWSLETTER_SENDER"] or sender())


def _claim(send_id: int, limit: int, now: datetime) -> list[tuple[int, int, str, int | None]]:
    """Claim up to ``limit`` queued deliveries; (delivery, subscriber, address, member id).

    The claim is a conditional update over the id range of the first ``limit`` queued rows
    (never a list of ten thousand ids), stamped with this batch's ``claimed_at``."""
    with transaction() as session:
        first = select(NewsletterDelivery.id).where(
            NewsletterDelivery.send_id == send_id, NewsletterDelivery.status == DeliveryStatus.QUEUED
        ).order_by(NewsletterDelivery.id).limit(limit).subquery()
        bounds = session.execute(select(func.min(first.c.id), func.max(first.c.id))).one()
        if bounds[0] is None:
            return []
        mine = (NewsletterDelivery.send_id == send_id, NewsletterDelivery.status == DeliveryStatus.SENDING,
                NewsletterDelivery.claimed_at == now)
        session.execute(update(NewsletterDelivery).where(
            NewsletterDelivery.send_id == send_id, NewsletterDelivery.status == DeliveryStatus.QUEUED,
            NewsletterDelivery.id.between(bounds[0], bounds[1]))
            .values(status=DeliveryStatus.SENDING, claimed_at=now, attempts=NewsletterDelivery.attempts + 1)
            .execution_options(synchronize_session=False))
        # Claimed for someone who unsubscribed or bounced since the send began: not sent.
        gone = select(Subscriber.id).where(Subscriber.status != SubscriberStatus.CONFIRMED)
        session.execute(update(NewsletterDelivery).where(*mine, NewsletterDelivery.subscriber_id.in_(gone))
                        .values(status=DeliveryStatus.FAILED, error="unsubscribed before it was sent")
                        .execution_options(synchronize_session=False))
        rows = session.execute(
            select(NewsletterDelivery.id, Subscriber.id, Subscriber.email, Subscriber.user_id)
            .join(Subscriber, Subscriber.id == NewsletterDelivery.subscriber_id)
            .where(*mine).order_by(NewsletterDelivery.id)).all()
    return [(row[0], row[1], row[2], row[3]) for row in rows]


def _requeue_claim(send_id: int, claimed_at: datetime, error: str) -> None:
    """Put every copy of this batch not yet sent back in the queue."""
    with transaction() as session:
        session.execute(update(NewsletterDelivery).where(
            NewsletterDelivery.send_id == send_id, NewsletterDelivery.status == DeliveryStatus.SENDING,
            NewsletterDelivery.claimed_at == claimed_at)
            .values(status=DeliveryStatus.QUEUED, claimed_at=None, error=error[:1000])
            .execution_options(synchronize_session=False))


def _record(delivery_id: int, claimed_at: datetime, **values: Any) -> None:
    with transaction() as session:
        session.execute(update(NewsletterDelivery).where(
            NewsletterDelivery.id == delivery_id, NewsletterDelivery.status == DeliveryStatus.SENDING,
            NewsletterDelivery.claimed_at == claimed_at).values(**values)
            .execution_options(synchronize_session=False))


def _bounce(delivery_id: int, subscriber_id: int, claimed_at: datetime, error: str) -> None:
    """A permanent refusal: this copy failed, and the address gets no more newsletters."""
    with transaction() as session:
        _record(delivery_id, claimed_at, status=DeliveryStatus.FAILED, error=error[:1000])
        session.execute(update(Subscriber).where(Subscriber.id == subscriber_id,
                                                 Subscriber.status == SubscriberStatus.CONFIRMED)
                        .values(status=SubscriberStatus.BOUNCED, bounced_at=utcnow(), updated_at=utcnow())
                        .execution_options(synchronize_session=False))


def run_batch(send_id: int) -> int:
    """Send one batch of a send; returns how many copies went out. Schedules the next batch
    (a minute after this one began, the rate's unit) while copies are left."""
    started = time.monotonic()
    send = db.session.get(NewsletterSend, send_id)
    if send is None or send.status != SendStatus.SENDING:
        return 0
    post = db.session.scalar(select(Post).where(Post.id == send.post_id).options(joinedload(Post.author)))
    if post is None:
        return 0
    versions = {True: render(post, full=True),
                False: render(post, full=not post.members_only)}
    members = _member_subscribers()
    now = utcnow()
    claimed = _claim(send_id, int(current_app.config["NEWSLETTER_RATE_PER_MINUTE"]), now)
    sent = 0
    if claimed:
        try:
            with backend() as mailer:
                for delivery_id, subscriber_id, address, _user_id in claimed:
                    message = message_for(versions[subscriber_id in members], subscriber_id, address)
                    try:
                        mailer.send(message, f"newsletter-{delivery_id}")
                    except DeliveryError as error:
                        if not error.temporary:
                            _bounce(delivery_id, subscriber_id, now, str(error))
                            continue
                        _requeue_claim(send_id, now, str(error))
                        break
                    _record(delivery_id, now, status=DeliveryStatus.SENT, sent_at=utcnow(), error="")
                    sent += 1
        except DeliveryError as error:  # the connection itself: every claimed copy waits
            log.warning("newsletter %s: could not connect: %s", send_id, error)
            _requeue_claim(send_id, now, str(error))
    _continue_or_finish(send_id, started)
    log.info("newsletter %s (%s): sent %s", send_id, post.slug, sent)
    return sent


def _member_subscribers() -> set[int]:
    """Subscribers whose address is an active member's (matched by address, so a reader who
    subscribed first and registered later counts too)."""
    return set(db.session.scalars(select(Subscriber.id).join(User, User.email_key == Subscriber.email_key)
                                  .where(User.active.is_(True))))


def _continue_or_finish(send_id: int, started: float) -> None:
    with transaction() as session:
        left = session.execute(select(
            func.count().filter(NewsletterDelivery.status == DeliveryStatus.QUEUED),
            func.count().filter(NewsletterDelivery.status == DeliveryStatus.SENDING),
        ).where(NewsletterDelivery.send_id == send_id)).one()
        if left[0]:
            # The next batch a minute after this one began (inline, in tests: at once).
            inline = current_app.config["JOBS_IMMEDIATE"]
            delay = None if inline else max(0.0, 60.0 - (time.monotonic() - started))
            enqueue_after_commit(send_batch, send_id, delay=delay)
        elif not left[1]:
            session.execute(update(NewsletterSend).where(NewsletterSend.id == send_id,
                                                         NewsletterSend.status == SendStatus.SENDING)
                            .values(status=SendStatus.DONE, finished_at=utcnow(), updated_at=utcnow())
                            .execution_options(synchronize_session=False))


@job()
def send_batch(send_id: int) -> None:
    """The job: one batch (:func:`run_batch`)."""
    run_batch(send_id)


# --- 4. the sweep -------------------------------------------------------------------------------


def sweep(now: datetime | None = None) -> int:
    """Every minute in the worker: start sends whose post became visible, put back copies
    claimed by a worker that died, and keep every unfinished send moving. Returns how many
    sends it touched."""
    now = now or utcnow()
    timeout = timedelta(seconds=int(current_app.config["NEWSLETTER_CLAIM_TIMEOUT"]))
    waiting = list(db.session.scalars(
        select(NewsletterSend.id).join(Post, Post.id == NewsletterSend.post_id)
        .where(NewsletterSend.status == SendStatus.WAITING, posts.public_condition())))
    db.session.rollback()
    touched = sum(dispatch(send_id) for send_id in waiting)
    with transaction() as session:
        session.execute(update(NewsletterDelivery).where(
            NewsletterDelivery.status == DeliveryStatus.SENDING,
            NewsletterDelivery.claimed_at < now - timeout)
            .values(status=DeliveryStatus.QUEUED, claimed_at=None)
            .execution_options(synchronize_session=False))
        stalled = list(session.scalars(select(NewsletterSend.id).where(
            NewsletterSend.status == SendStatus.SENDING,
            ~select(NewsletterDelivery.id).where(
                NewsletterDelivery.send_id == NewsletterSend.id,
                NewsletterDelivery.status == DeliveryStatus.SENDING).exists())))
        for send_id in stalled:
            enqueue_after_commit(send_batch, send_id)
    return touched + len(stalled)


@periodic(crontab(minute="*"))
def newsletter_sweep() -> None:
    """Every minute: :func:`sweep`."""
    sweep()
    db.session.remove()


# --- progress -----------------------------------------------------------------------------------


def progress() -> list[tuple[NewsletterSend, Post, dict[str, int]]]:
    """Every send, newest first, with its post and its copies per status (two statements)."""
    sends = db.session.execute(select(NewsletterSend, Post).join(Post, Post.id == NewsletterSend.post_id)
                               .order_by(NewsletterSend.id.desc()).limit(50)).all()
    ids = [send.id for send, _ in sends]
    tally: dict[int, dict[str, int]] = {send_id: dict.fromkeys(DeliveryStatus.ALL, 0) for send_id in ids}
    if ids:
        for send_id, status, number in db.session.execute(
                select(NewsletterDelivery.send_id, NewsletterDelivery.status, func.count())
                .where(NewsletterDelivery.send_id.in_(ids))
                .group_by(NewsletterDelivery.send_id, NewsletterDelivery.status)):
            tally[send_id][status] = number
    return [(send, post, tally[send.id]) for send, post in sends]


def deliveries_of(send: NewsletterSend, status: str = "") -> Select[Any]:
    """A send's copies with their subscriber's address, for the admin's per-recipient view."""
    stmt = (select(NewsletterDelivery).options(joinedload(NewsletterDelivery.subscriber))
            .where(NewsletterDelivery.send_id == send.id).order_by(NewsletterDelivery.id))
    return stmt.where(NewsletterDelivery.status == status) if status else stmt
