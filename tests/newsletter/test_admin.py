"""/admin/newsletter: counts, the list and its search, export and import (never confirming
anyone who did not opt in, never resubscribing anyone who left), a send's progress, a test
sent to the admin, and a fixed number of statements however many subscribers there are."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from blog.database_session import transaction
from blog.extensions import db
from blog.mail.models import EmailMessage
from blog.newsletter.models import Subscriber
from tests.conftest import AuthActions, csrf_token, page_statements, text_of


@pytest.fixture
def admin(auth: AuthActions, make_user: Any) -> Any:
    user = make_user("root", admin=True)
    auth.login("root")
    return user


def add(app: Flask, *rows: tuple[str, str]) -> None:
    with app.app_context(), transaction() as session:
        for address, status in rows:
            session.add(Subscriber(email=address, email_key=address.lower(), status=status))


def test_counts_list_search_and_export(app: Flask, client: Any, admin: Any) -> None:
    add(app, ("a@example.com", "confirmed"), ("b@example.com", "pending"), ("c@other.example", "bounced"))
    page = text_of(client.get("/admin/newsletter"))
    assert "<dt>Confirmed</dt><dd>1</dd>" in page and "<dt>Bounced</dt><dd>1</dd>" in page
    found = text_of(client.get("/admin/newsletter?q=other"))
    assert "c@other.example" in found and "a@example.com" not in found
    assert "b@example.com" in text_of(client.get("/admin/newsletter?status=pending"))
    export = client.get("/admin/newsletter/export.csv")
    assert export.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert [(r["email"], r["status"]) for r in rows] == [
        ("a@example.com", "confirmed"), ("b@example.com", "pending"), ("c@other.example", "bounced")]


def _import(client: Any, text: str, opted_in: bool) -> Any:
    data: dict[str, Any] = {"csrf_token": csrf_token(client, "/admin/newsletter"),
                            "file": (io.BytesIO(text.encode()), "list.csv")}
    if opted_in:
        data["opted_in"] = "y"
    return client.post("/admin/newsletter/import", data=data, content_type="multipart/form-data",
                       follow_redirects=True)


@pytest.mark.parametrize("opted_in", [False, True])
def test_import_confirms_only_who_opted_in_and_never_who_left(app: Flask, client: Any, admin: Any,
                                                             opted_in: bool) -> None:
    add(app, ("left@example.com", "unsubscribed"))
    response = _import(client, "email,status\nnew@example.com,confirmed\nplain@example.com,\n"
                               "left@example.com,confirmed\nnot-an-address,confirmed\nNEW@example.com,\n",
                       opted_in)
    said = text_of(response)
    assert "2 added, 0 updated, 3 skipped" in said and "line 5: not an email address" in said
    with app.app_context():
        found = {s.email: (s.status, s.source) for s in db.session.scalars(select(Subscriber))}
    assert found["new@example.com"] == ("confirmed" if opted_in else "pending", "import")
    assert found["plain@example.com"] == ("pending", "import")
    assert found["left@example.com"][0] == "unsubscribed"
    with app.app_context():  # an import sends nothing by itself
        assert db.session.scalars(select(EmailMessage)).all() == []


def test_a_test_send_goes_to_the_admin_with_absolute_links(app: Flask, client: Any, admin: Any,
                                                           make_post: Any) -> None:
    post = make_post(admin, "A letter", "See [the shop](/shop/).")
    response = client.post("/admin/newsletter/test", data={
        "csrf_token": csrf_token(client, "/admin/newsletter"), "post_id": str(post.id)})
    assert response.status_code == 302
    with app.app_context():
        mail = db.session.scalars(select(EmailMessage).where(EmailMessage.kind == "newsletter_test")).one()
    assert mail.recipient == "root@example.com" and mail.subject == "[Test] A letter"
    assert 'href="http://127.0.0.1:5000/shop/"' in mail.html_body
    assert ' href="/' not in mail.html_body and ' src="/' not in mail.html_body


def test_the_page_runs_a_fixed_number_of_statements(app: Flask, client: Any, admin: Any,
                                                    make_post: Any) -> None:
    add(app, ("one@example.com", "confirmed"))
    few = page_statements(client, "/admin/newsletter").count
    add(app, *[(f"s{i}@example.com", "confirmed") for i in range(40)])
    make_post(admin, "Another")
    assert page_statements(client, "/admin/newsletter").count == few


def test_each_send_shows_each_recipient(app: Flask, client: Any, admin: Any) -> None:
    from blog.accounts.models import User
    from blog.newsletter.models import NewsletterSend
    from blog.posts import services as posts

    add(app, ("one@example.com", "confirmed"), ("two@example.com", "confirmed"),
        ("three@example.com", "pending"))
    with app.app_context():
        author = db.session.get(User, admin.id)
        posts.create_post(author, "Sent letter", "Words.", "", True, send_newsletter=True)
        send_id = db.session.scalar(select(NewsletterSend.id))
    overview = text_of(client.get("/admin/newsletter"))
    assert "Sent letter" in overview
    page = text_of(client.get(f"/admin/newsletter/sends/{send_id}"))
    assert "one@example.com" in page and "two@example.com" in page and "three@example.com" not in page
    assert page.count('status-sent">sent<') == 2
    assert "two@example.com" not in text_of(client.get(f"/admin/newsletter/sends/{send_id}?status=failed"))
