"""The newsletter through the real pages and a real SMTP server (aiosmtpd): double opt-in,
no address revealed, one copy per confirmed subscriber per post whatever happens, one-click
unsubscribe with no session, bounces, members-only posts, scheduled posts."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from blog.database import utcnow
from blog.extensions import db
from blog.mail.models import EmailMessage
from blog.newsletter import sending
from blog.newsletter.models import NewsletterDelivery, NewsletterSend, Subscriber
from blog.newsletter.subscribers import subscribe, unsubscribe_token
from blog.posts.models import Post
from tests.conftest import AuthActions, csrf_token, text_of
from tests.mail.conftest import SMTPServer, bodies, smtp, smtp_config  # noqa: F401 (the fixture)

SITE = "https://letters.example"


@pytest.fixture
def config_overrides(smtp: SMTPServer) -> dict[str, Any]:  # noqa: F811
    return smtp_config(smtp, SITE_URL=SITE)


def confirm_link(app: Flask, address: str) -> str:
    with app.app_context():
        row = db.session.scalars(select(EmailMessage).where(EmailMessage.kind == "newsletter_confirm",
                                                            EmailMessage.recipient == address)
                                 .order_by(EmailMessage.id.desc())).first()
    assert row is not None, f"no confirmation mail to {address}"
    match = re.search(r"https://letters\.example(/newsletter/confirm/\S+)", row.text_body)
    assert match
    return match.group(1)


def subscribed(app: Flask, client: Any, *addresses: str) -> None:
    """Subscribe and confirm each address through the pages."""
    for address in addresses:
        assert client.post("/newsletter/subscribe", data={"email": address}).status_code == 302
        assert client.get(confirm_link(app, address)).status_code == 200


def statuses(app: Flask) -> dict[str, str]:
    with app.app_context():
        return {row.email: row.status for row in db.session.scalars(select(Subscriber))}


PICTURE = "/uploads/0123456789abcdef0123456789abcdef-40x30.webp"


def write(client: Any, title: str, body: str = f"Hello **readers**. ![a picture]({PICTURE})",
          **fields: Any) -> Any:
    data = {"csrf_token": csrf_token(client, "/posts/new"), "title": title, "body": body, "tags": "",
            "publish": "y", "send_newsletter": "y"} | fields
    return client.post("/posts/new", data=data)


@pytest.fixture
def author(make_user: Any) -> Any:
    return make_user("wanda", roles=("author",))


# --- subscribing -------------------------------------------------------------------------------


def test_double_opt_in(app: Flask, client: Any, smtp: SMTPServer) -> None:  # noqa: F811
    response = client.post("/newsletter/subscribe", data={"email": "Reader@Example.com", "next": "/"})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "Set-Cookie" not in response.headers or "session" in response.headers["Set-Cookie"]
    assert statuses(app) == {"Reader@Example.com": "pending"}
    page = client.get(confirm_link(app, "Reader@Example.com"))
    assert "You are subscribed" in text_of(page)
    assert statuses(app) == {"Reader@Example.com": "confirmed"}
    assert client.get("/newsletter/confirm/nonsense").status_code == 404


def test_subscribing_twice_makes_one_row_and_says_the_same(app: Flask, client: Any) -> None:
    first = client.post("/newsletter/subscribe", data={"email": "a@example.com"}, follow_redirects=True)
    again = client.post("/newsletter/subscribe", data={"email": " A@EXAMPLE.com "}, follow_redirects=True)
    unknown = client.post("/newsletter/subscribe", data={"email": "b@example.com"}, follow_redirects=True)
    says = [re.findall(r'class="flash[^"]*">([^<]+)<', text_of(r)) for r in (first, again, unknown)]
    assert says[0] == says[1] == says[2] and says[0], says
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 2
        # The second ask within minutes sends no second link.
        assert db.session.scalar(select(func.count()).select_from(EmailMessage)
                                 .where(EmailMessage.kind == "newsletter_confirm")) == 2


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}])
def test_a_subscribe_form_on_another_site_is_refused(app: Flask, client: Any,
                                                     headers: dict[str, str]) -> None:
    response = client.post("/newsletter/subscribe", data={"email": "victim@example.com"}, headers=headers)
    assert response.status_code == 400
    assert statuses(app) == {}


def test_a_bad_address_is_refused(app: Flask, client: Any) -> None:
    response = client.post("/newsletter/subscribe", data={"email": "not an address"})
    assert response.status_code == 400 and "Invalid email address" in text_of(response)
    assert statuses(app) == {}


def test_a_member_subscribes_from_the_profile(app: Flask, client: Any, auth: AuthActions,
                                              make_user: Any) -> None:
    make_user("mia")
    auth.login("mia")
    page = text_of(client.get("/auth/profile"))
    assert "Get every new post by email." in page
    token = csrf_token(client, "/auth/profile")
    client.post("/newsletter/profile", data={"csrf_token": token, "newsletter": "y"})
    # mia's address is not verified yet: a confirmation link first.
    assert statuses(app) == {"mia@example.com": "pending"}
    client.get(confirm_link(app, "mia@example.com"))
    assert statuses(app) == {"mia@example.com": "confirmed"}
    assert "You get every new post by email" in text_of(client.get("/auth/profile"))
    client.post("/newsletter/profile", data={"csrf_token": token, "newsletter": ""})
    assert statuses(app) == {"mia@example.com": "unsubscribed"}


# --- sending -----------------------------------------------------------------------------------


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [value or "" for name, value in attrs if name in ("href", "src")]


def test_three_confirmed_subscribers_get_one_copy_each(app: Flask, client: Any, auth: AuthActions,
                                                       author: Any, smtp: SMTPServer) -> None:  # noqa: F811
    subscribed(app, client, "one@example.com", "two@example.com", "three@example.com")
    client.post("/newsletter/subscribe", data={"email": "pending@example.com"})
    confirmations = len(smtp.messages)
    auth.login("wanda")
    response = write(client, "First letter")
    assert response.status_code == 302
    letters = smtp.wait_for(confirmations + 3)[confirmations:]
    assert sorted(m["To"] for m in letters) == ["one@example.com", "three@example.com", "two@example.com"]
    message = letters[0]
    assert message["Subject"] == "First letter"
    unsubscribe = re.fullmatch(r"<(https://letters\.example/newsletter/unsubscribe/\S+)>",
                               message["List-Unsubscribe"])
    assert unsubscribe and message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = bodies(message)
    assert "Hello readers." in text and unsubscribe.group(1) in text
    parser = Links()
    parser.feed(html)
    assert parser.found and all(urlsplit(link).scheme == "https" for link in parser.found), parser.found
    assert f"{SITE}{PICTURE}" in parser.found
    assert unsubscribe.group(1) in parser.found
    # Saving the post again, or the sweep, sends nothing more.
    edit = client.post("/posts/first-letter/edit", data={
        "csrf_token": csrf_token(client, "/posts/first-letter/edit"), "title": "First letter",
        "body": "Edited.", "publish": "y", "send_newsletter": "y"})
    assert edit.status_code == 302
    with app.app_context():
        sending.sweep()
        assert db.session.scalar(select(NewsletterSend.status)) == "done"
        assert db.session.scalar(select(func.count()).select_from(NewsletterDelivery)) == 3
    assert len(smtp.messages) == confirmations + 3


def test_one_click_unsubscribe_with_no_session_stops_the_next_post(
        app: Flask, client: Any, auth: AuthActions, author: Any, smtp: SMTPServer) -> None:  # noqa: F811
    subscribed(app, client, "stay@example.com", "leave@example.com")
    with app.app_context():
        leaver = db.session.scalars(select(Subscriber).where(Subscriber.email == "leave@example.com")).one()
        token = unsubscribe_token(leaver.id)
    blind = app.test_client()  # a mail program: no cookies, no CSRF token
    page = blind.get(f"/newsletter/unsubscribe/{token}")
    assert "Yes, unsubscribe" in text_of(page)
    response = blind.post(f"/newsletter/unsubscribe/{token}", data="List-Unsubscribe=One-Click",
                          content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and "You are unsubscribed" in text_of(response)
    assert statuses(app)["leave@example.com"] == "unsubscribed"
    assert blind.post("/newsletter/unsubscribe/forged.token").status_code == 404
    before = len(smtp.messages)
    auth.login("wanda")
    write(client, "Second letter")
    letters = smtp.wait_for(before + 1)[before:]
    assert [m["To"] for m in letters] == ["stay@example.com"]


def test_a_permanent_refusal_marks_the_subscriber_bounced(app: Flask, client: Any, auth: AuthActions,
                                                          author: Any, smtp: SMTPServer) -> None:  # noqa: F811
    subscribed(app, client, "gone@example.com", "here@example.com")
    before = len(smtp.messages)
    smtp.refuse.append("550 No such user")  # the first recipient of the send
    auth.login("wanda")
    write(client, "Third letter")
    smtp.wait_for(before + 1)
    assert sorted(statuses(app).values()) == ["bounced", "confirmed"]
    with app.app_context():
        failed = db.session.scalars(select(NewsletterDelivery)
                                    .where(NewsletterDelivery.status == "failed")).one()
        assert "550" in failed.error


def test_a_scheduled_post_is_sent_when_its_time_comes(app: Flask, client: Any, auth: AuthActions,
                                                      author: Any, smtp: SMTPServer) -> None:  # noqa: F811
    subscribed(app, client, "later@example.com")
    before = len(smtp.messages)
    auth.login("wanda")
    response = write(client, "Tomorrow's letter", publish_at="2099-01-01T09:00")
    assert response.status_code == 302
    with app.app_context():
        assert sending.sweep() == 0
        assert db.session.scalar(select(NewsletterSend.status)) == "waiting"
        db.session.execute(update(Post).values(published_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()
        assert sending.sweep() >= 1
    assert [m["To"] for m in smtp.wait_for(before + 1)[before:]] == ["later@example.com"]


def test_unticking_before_the_time_cancels_the_send(app: Flask, client: Any, auth: AuthActions,
                                                    author: Any) -> None:
    auth.login("wanda")
    write(client, "Maybe", publish_at="2099-01-01T09:00")
    client.post("/posts/maybe/edit", data={"csrf_token": csrf_token(client, "/posts/maybe/edit"),
                                           "title": "Maybe", "body": "b", "publish": "y",
                                           "publish_at": "2099-01-01T09:00"})
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(NewsletterSend)) == 0


def test_members_only_posts_go_in_full_to_members_only(app: Flask, client: Any, auth: AuthActions,
                                                       author: Any, make_user: Any,
                                                       smtp: SMTPServer) -> None:  # noqa: F811
    make_user("max")
    with app.app_context():
        db.session.execute(update(type(author)).where(type(author).username == "max")
                           .values(email_verified_at=utcnow()))
        db.session.commit()
    auth.login("max")
    client.post("/newsletter/profile",
                data={"csrf_token": csrf_token(client, "/auth/profile"), "newsletter": "y"})
    auth.logout()
    with app.app_context():
        subscribe("visitor@example.com")
    client.get(confirm_link(app, "visitor@example.com"))
    before = len(smtp.messages)
    auth.login("wanda")
    write(client, "For members", body="The secret recipe is patience. " * 30, members_only="y")
    letters = {m["To"]: bodies(m)[0] for m in smtp.wait_for(before + 2)[before:]}
    assert letters["max@example.com"].count("The secret recipe") == 30
    assert "The rest of this post is for members" in letters["visitor@example.com"]
    assert letters["visitor@example.com"].count("The secret recipe") < 30
