"""The outbox: a message is written in the transaction of its cause and only then delivered,
as an .eml file without a mail server or over real SMTP with one; temporary failures are
retried with backoff, permanent ones are not; links come from SITE_URL."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from blog.database import utcnow
from blog.database_session import transaction
from blog.extensions import db
from blog.mail import delivery
from blog.mail.models import EmailMessage, EmailStatus
from blog.mail.outbox import queue_email, resend
from blog.shop.models import Order, Variant
from tests.conftest import csrf_token
from tests.mail.conftest import SMTPServer, bodies, eml_files, outbox_rows, smtp_config

SITE = {"SITE_URL": "https://ink.example/shop-site"}
LINK = re.compile(r'https?://[^\s"<>]+')


def _links(text: str) -> list[str]:
    return LINK.findall(text)


@pytest.fixture
def ordered(app: Flask, auth: Any, shop: Any, make_user: Any, make_product: Any,
            make_shipping: Any) -> dict[str, Any]:
    """alice (with root an admin) ordered 2 mugs at 8.00 by Post at 5.00: 21.00; then root
    logs in."""
    make_user("alice")
    make_user("root", admin=True)
    mug, post = make_product("Mug", [("", "8.00", 5)]), make_shipping("Post", "5.00")
    auth.login("alice")
    shop.add(mug, 2)
    assert shop.checkout(post).status_code == 302
    auth.logout()
    auth.login("root")
    with app.app_context():
        return {"number": db.session.scalars(select(Order.number)).one(), "mug": mug, "post": post}


@pytest.mark.parametrize("config_overrides", [SITE])
def test_an_order_writes_its_emails_and_they_arrive_as_files(app: Flask, ordered: Any, outbox: Path) -> None:
    """The confirmation to the customer and the notice to the admin, written with the order
    and delivered (no MAIL_SERVER) as .eml files with text and HTML parts."""
    number = ordered["number"]
    assert [(r.kind, r.recipient, r.status, r.attempts) for r in outbox_rows(app)] == [
        ("order_confirmation", "alice@example.com", "sent", 1),
        ("new_order", "root@example.com", "sent", 1)]
    confirmation, notice = eml_files(outbox)
    assert confirmation["To"] == "alice@example.com"
    assert confirmation["Subject"] == f"Your order {number}"
    assert confirmation["From"] == "Inkwell <noreply@ink.example>"
    assert re.fullmatch(r"<[^@>]+@ink\.example>", confirmation["Message-ID"])
    assert abs(parsedate_to_datetime(confirmation["Date"]) - utcnow()) < timedelta(minutes=5)
    text, html = bodies(confirmation)
    for part in (text, html):
        assert "2 × Mug" in part and "$21.00" in part and "SW1Y 4JH" in part
        assert "Pay by bank transfer" in part
    order_url = f"https://ink.example/shop-site/shop/orders/{number}"
    assert order_url in text and f'href="{order_url}"' in html
    assert all(link.startswith("https://ink.example/shop-site/") for link in _links(html))
    assert notice["Subject"] == f"New order {number} (alice)"
    assert f"https://ink.example/shop-site/admin/orders/{number}" in bodies(notice)[0]


@pytest.mark.parametrize("config_overrides", [SITE])
def test_a_forged_host_header_never_reaches_a_link(app: Flask, client: Any, auth: Any, shop: Any,
                                                   make_user: Any, make_product: Any,
                                                   make_shipping: Any, outbox: Path) -> None:
    make_user("alice")
    make_user("root", admin=True)
    mug, post = make_product("Mug", [("", "8.00", 5)]), make_shipping("Post", "5.00")
    auth.login("alice")
    shop.add(mug, 1)
    client.environ_base["HTTP_HOST"] = "evil.example"
    assert shop.checkout(post).status_code == 302
    messages = eml_files(outbox)
    assert len(messages) == 2
    for message in messages:
        text, html = bodies(message)
        assert "evil.example" not in message.as_string()
        assert _links(text) and all(link.startswith("https://ink.example/shop-site/")
                                    for link in _links(text) + _links(html))


def test_an_out_of_stock_checkout_queues_nothing(app: Flask, client: Any, auth: Any, shop: Any,
                                                 make_user: Any, make_product: Any,
                                                 make_shipping: Any, outbox: Path) -> None:
    make_user("alice")
    make_user("root", admin=True)
    mug, post = make_product("Mug", [("", "8.00", 2)]), make_shipping("Post", "5.00")
    auth.login("alice")
    shop.add(mug, 2)
    with app.app_context():
        db.session.execute(update(Variant).values(stock=1))  # sold meanwhile
        db.session.commit()
    response = shop.checkout(post)
    assert response.status_code == 200 and "in stock" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Order.id)) is None
    assert outbox_rows(app) == [] and eml_files(outbox) == []


def test_the_message_and_its_cause_commit_or_roll_back_together(app: Flask, outbox: Path,
                                                                 make_user: Any) -> None:
    """A service that fails after writing its message leaves no row, sends nothing."""
    alice = make_user("alice")

    class Boom(Exception):
        pass

    with app.app_context(), pytest.raises(Boom), transaction():
        db.session.execute(update(Variant).values(stock=0))
        _queue_plain(alice.email, "Never sent")
        raise Boom
    assert outbox_rows(app) == [] and eml_files(outbox) == []

    with app.app_context(), transaction():
        _queue_plain(alice.email, "Sent once")
    assert [(r.subject, r.status) for r in outbox_rows(app)] == [("Sent once", "sent")]
    assert [m["Subject"] for m in eml_files(outbox)] == ["Sent once"]


def _queue_plain(recipient: str, subject: str) -> EmailMessage:
    """An order-cancelled note for a made-up order: enough to test the outbox itself."""
    order = Order(number="IW-TEST", full_name="Ada", address_line1="1 Road", address_line2="",
                  city="London", postal_code="N1", country="UK", shipping_method_name="Post",
                  total=Decimal("0.00"))
    return queue_email("test", recipient, subject, "order_status", order=order, lines=[],
                       new="cancelled", instructions="")


def test_status_changes_tell_the_customer(app: Flask, client: Any, ordered: Any, outbox: Path) -> None:
    number = ordered["number"]
    for status in ("paid", "shipped", "delivered"):
        client.post(f"/admin/orders/{number}", data={
            "csrf_token": csrf_token(client, f"/admin/orders/{number}"), "status": status})
    subjects = [(m["To"], m["Subject"]) for m in eml_files(outbox)]
    assert subjects == [("alice@example.com", f"Your order {number}"),
                        ("root@example.com", f"New order {number} (alice)"),
                        ("alice@example.com", f"Payment received for order {number}"),
                        ("alice@example.com", f"Order {number} is on its way")]  # delivered: no mail
    text, _ = bodies(eml_files(outbox)[3])
    assert "has shipped (Post)" in text and "SW1Y 4JH" in text


# --- SMTP ------------------------------------------------------------------------------------


@pytest.fixture
def config_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    smtp_server = request.getfixturevalue("smtp") if "smtp" in request.fixturenames else None
    return smtp_config(smtp_server) if smtp_server else {}


def test_messages_go_through_a_real_smtp_server(app: Flask, smtp: SMTPServer, ordered: Any,
                                                outbox: Path) -> None:
    message, _ = smtp.wait_for(2)
    assert smtp.envelopes == [("noreply@127.0.0.1", ["alice@example.com"]),
                              ("noreply@127.0.0.1", ["root@example.com"])]
    assert message["Subject"] == f"Your order {ordered['number']}"
    text, html = bodies(message)
    assert "2 × Mug" in text and "<table" in html
    assert eml_files(outbox) == []  # a server is set: no files
    row = outbox_rows(app)[0]
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, "")
    assert row.sent_at is not None and message["Message-ID"] == row.headers["Message-ID"]


def test_a_refused_message_is_retried_and_then_delivered(app: Flask, smtp: SMTPServer,
                                                         make_user: Any) -> None:
    alice = make_user("alice")
    smtp.refuse = ["451 4.3.0 Mailbox busy, try again later"]
    with app.app_context(), transaction():
        message_id = _queue_plain(alice.email, "Persistent").id
    [row] = outbox_rows(app)
    assert (row.status, row.attempts) == ("queued", 1)
    assert row.last_error == "The mail server answered 451 4.3.0 Mailbox busy, try again later"
    assert smtp.messages == []
    with app.app_context():
        assert delivery.deliver(message_id) is None  # not due yet: a minute from now
        db.session.execute(update(EmailMessage).values(next_attempt_at=utcnow()))
        db.session.commit()
        outcome = delivery.deliver(message_id)  # the retry job, when it is due
    assert outcome == delivery.Outcome("sent")
    [row] = outbox_rows(app)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, "")
    assert [m["Subject"] for m in smtp.wait_for(1)] == ["Persistent"]


def test_a_permanent_refusal_fails_at_once(app: Flask, smtp: SMTPServer, make_user: Any) -> None:
    alice = make_user("alice")
    smtp.refuse = ["550 5.1.1 No such user here"]
    with app.app_context(), transaction():
        message_id = _queue_plain(alice.email, "Bounced").id
    [row] = outbox_rows(app)
    assert (row.status, row.attempts) == ("failed", 1)
    assert "550 5.1.1 No such user here" in row.last_error
    with app.app_context():
        assert delivery.deliver(message_id) is None  # failed stays failed
    assert smtp.messages == []


@pytest.mark.parametrize("config_overrides", [{
    "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": 9, "MAIL_TIMEOUT": 2, "MAIL_MAX_ATTEMPTS": 3,
    "MAIL_RETRY_DELAY": 60, "MAIL_RETRY_MAX_DELAY": 90}])
def test_an_unreachable_server_backs_off_then_gives_up(app: Flask, make_user: Any) -> None:
    alice = make_user("alice")
    with app.app_context(), transaction():
        message_id = _queue_plain(alice.email, "Nobody listens").id
    [row] = outbox_rows(app)
    assert (row.status, row.attempts) == ("queued", 1)
    assert row.last_error.startswith("Could not talk to the mail server: ConnectionRefusedError")
    waits = [row.next_attempt_at - row.updated_at]
    with app.app_context():
        assert delivery.deliver(message_id) is None  # not due yet: nobody claims it
        for _ in range(2):
            db.session.execute(update(EmailMessage).values(next_attempt_at=utcnow()))
            db.session.commit()
            delivery.deliver(message_id)
            row = db.session.get(EmailMessage, message_id, populate_existing=True)
            waits.append(row.next_attempt_at - row.updated_at)
    assert (row.status, row.attempts) == ("failed", 3)
    # 60 s, then doubled to 120 but capped at 90; the third failure is final.
    assert [round(w.total_seconds()) for w in waits[:2]] == [60, 90]


def test_resend_copies_a_sent_message_with_a_new_message_id(app: Flask, smtp: SMTPServer,
                                                            make_user: Any) -> None:
    alice = make_user("alice")
    with app.app_context(), transaction():
        _queue_plain(alice.email, "Twice")
    with app.app_context():
        first = db.session.scalars(select(EmailMessage)).one()
        copy = resend(first)
        assert copy.id != first.id
    sent = smtp.wait_for(2)
    assert [m["Subject"] for m in sent] == ["Twice", "Twice"]
    assert sent[0]["Message-ID"] != sent[1]["Message-ID"]


def test_the_sweep_gives_back_stale_claims_and_sends_what_waits(app: Flask, smtp: SMTPServer,
                                                                make_user: Any) -> None:
    """A worker killed mid-send leaves its claim; an enqueue can be lost. The periodic sweep
    puts the first back in the queue and enqueues every message waiting too long."""
    alice = make_user("alice")
    smtp.refuse = ["451 later", "451 later"]  # both stay queued, their retry a minute away
    with app.app_context(), transaction():
        stale = _queue_plain(alice.email, "Claimed by a dead worker").id
        waiting = _queue_plain(alice.email, "Lost job").id
    long_ago = utcnow() - timedelta(hours=1)
    with app.app_context():
        db.session.execute(update(EmailMessage).where(EmailMessage.id == stale).values(
            status=EmailStatus.SENDING, claimed_at=long_ago, next_attempt_at=long_ago))
        db.session.execute(update(EmailMessage).where(EmailMessage.id == waiting).values(
            next_attempt_at=long_ago))
        db.session.commit()
        assert delivery.sweep() == 2  # both enqueued, and (inline here) delivered
    assert sorted(m["Subject"] for m in smtp.wait_for(2)) == ["Claimed by a dead worker", "Lost job"]
    assert {r.status for r in outbox_rows(app)} == {"sent"}


def test_a_subject_with_line_breaks_stays_one_header(app: Flask, outbox: Path, make_user: Any) -> None:
    alice = make_user("alice")
    with app.app_context(), transaction():
        _queue_plain(alice.email, "Hello\r\nBcc: everyone@example.com\n  there")
    [message] = eml_files(outbox)
    assert message["Subject"] == "Hello Bcc: everyone@example.com there"
    assert message["Bcc"] is None


def test_a_message_that_cannot_be_built_fails_with_its_reason(app: Flask, outbox: Path,
                                                             make_user: Any) -> None:
    """Not left claimed for the sweep to hand out forever: failed, with why."""
    alice = make_user("alice")
    with app.app_context(), transaction():
        row = _queue_plain(alice.email, "Broken")
        row.headers = {**row.headers, "X-Bad": "line\nbreak"}  # written before delivery runs
    [row] = outbox_rows(app)
    assert row.status == "failed" and row.last_error.startswith("ValueError:")
    assert eml_files(outbox) == []
