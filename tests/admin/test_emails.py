"""/admin/emails: the outbox as the owner sees it — list, filter, one message, its HTML kept
out of the admin page, and resending."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from blog.admin.models import AuditEvent
from blog.database import utcnow
from blog.database_session import transaction
from blog.extensions import db
from blog.mail.models import EmailMessage
from tests.conftest import csrf_token, page_statements, text_of
from tests.mail.conftest import eml_files


def add_messages(app: Flask, count: int, **values: Any) -> list[int]:
    """``count`` outbox rows written directly (no delivery runs for them)."""
    with app.app_context(), transaction() as session:
        rows = [EmailMessage(**{"kind": "order_confirmation", "recipient": f"reader{n}@example.com",
                                "subject": f"Your order IW-{n}", "text_body": f"Order {n}.",
                                "html_body": f"<p>Order {n}.</p>", "status": "sent",
                                "headers": {"Message-ID": f"<m{n}@ink.example>"},
                                "next_attempt_at": utcnow(), **values})
                for n in range(count)]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def test_only_admins_see_the_outbox(app: Flask, client: Any, auth: Any, make_user: Any) -> None:
    [message] = add_messages(app, 1)
    for path in ("/admin/emails", f"/admin/emails/{message}", f"/admin/emails/{message}/html"):
        response = client.get(path)
        assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    make_user("alice")
    auth.login("alice")
    for path in ("/admin/emails", f"/admin/emails/{message}", f"/admin/emails/{message}/html"):
        assert client.get(path).status_code == 403


def test_the_list_filters_and_searches_in_a_fixed_number_of_statements(
        app: Flask, client: Any, admin: Any) -> None:
    add_messages(app, 1)
    one = page_statements(client, "/admin/emails").count
    add_messages(app, 2, status="failed", last_error="The mail server answered 550 No such user")
    add_messages(app, 27)
    assert page_statements(client, "/admin/emails").count == one
    failed = text_of(client.get("/admin/emails?status=failed"))
    assert failed.count("The mail server answered 550 No such user") == 2
    assert "reader1@example.com" in failed and "reader5@example.com" not in failed
    found = text_of(client.get("/admin/emails?q=READER26@"))
    assert "reader26@example.com" in found and "reader2@example.com<" not in found
    assert client.get("/admin/emails?status=nonsense").status_code == 200  # ignored, not an error


def test_a_message_page_keeps_its_html_out_of_the_admin_page(app: Flask, client: Any, admin: Any) -> None:
    [message] = add_messages(
        app, 1, subject="A comment", text_body="He wrote <script>alert(1)</script>",
        html_body='<p>He wrote <script>alert(1)</script><img src=x onerror=alert(2)></p>')
    page = client.get(f"/admin/emails/{message}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page  # escaped wherever shown
    assert "He wrote &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert (f'<iframe class="email-preview" title="The HTML part of the message" sandbox '
            f'src="/admin/emails/{message}/html">') in page
    assert "&lt;m0@ink.example&gt;" in page  # the headers
    frame = client.get(f"/admin/emails/{message}/html")
    assert frame.mimetype == "text/html"
    policy = frame.headers["Content-Security-Policy"]
    assert policy.startswith("sandbox;") and "default-src 'none'" in policy and "script-src" not in policy
    assert frame.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_resending_a_failed_message_queues_it_again_and_it_goes(app: Flask, client: Any, admin: Any,
                                                                outbox: Path) -> None:
    [message] = add_messages(app, 1, status="failed", attempts=8,
                             last_error="Could not talk to the mail server")
    response = client.post(f"/admin/emails/{message}/resend",
                           data={"csrf_token": csrf_token(client, f"/admin/emails/{message}")})
    assert response.status_code == 302 and response.headers["Location"] == f"/admin/emails/{message}"
    with app.app_context():
        row = db.session.get(EmailMessage, message)
        assert (row.status, row.attempts, row.last_error) == ("sent", 1, "")  # delivered inline here
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.entity_type == "email")).one()
        assert (event.entity_id, event.action, event.changes, event.actor_name) == (
            str(message), "resend", {"status": ["failed", "queued"]}, "root")
    assert [m["Subject"] for m in eml_files(outbox)] == ["Your order IW-0"]


def test_resending_a_sent_message_sends_a_copy_with_its_own_message_id(app: Flask, client: Any, admin: Any,
                                                                       outbox: Path) -> None:
    [message] = add_messages(app, 1)
    response = client.post(f"/admin/emails/{message}/resend",
                           data={"csrf_token": csrf_token(client, f"/admin/emails/{message}")})
    copy = int(re.search(r"/admin/emails/(\d+)$", response.headers["Location"]).group(1))
    assert copy != message
    page = text_of(client.get(f"/admin/emails/{copy}"))
    assert "A copy of the message to reader0@example.com is queued." in page
    [sent] = eml_files(outbox)
    assert sent["Message-ID"] != "<m0@ink.example>"
    with app.app_context():
        assert db.session.get(EmailMessage, message).status == "sent"  # the original stays as it was


@pytest.mark.parametrize("status", ["sending"])
def test_a_message_being_sent_is_not_resent(app: Flask, client: Any, admin: Any, status: str,
                                            outbox: Path) -> None:
    [message] = add_messages(app, 1, status=status, claimed_at=utcnow())
    page = client.get(f"/admin/emails/{message}").get_data(as_text=True)
    assert "Send again" not in page and "Send a copy" not in page
    client.post(f"/admin/emails/{message}/resend", data={"csrf_token": csrf_token(client, "/admin/emails")})
    assert "A worker is sending this message right now" in text_of(client.get(f"/admin/emails/{message}"))
    assert eml_files(outbox) == []


def test_the_dashboard_points_at_waiting_and_failed_messages(app: Flask, client: Any, admin: Any) -> None:
    assert "waiting" not in text_of(client.get("/admin/"))
    add_messages(app, 2, status="queued")
    add_messages(app, 1, status="failed")
    page = text_of(client.get("/admin/"))
    assert "2 emails waiting" in page and "1 failed" in page
