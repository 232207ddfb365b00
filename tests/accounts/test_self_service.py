"""Accounts self-service by email: confirming the address, resetting a forgotten password,
changing the address, the profile, and the notice of a new comment. Every message is read
from the outbox folder (.eml files, no mail server), its links followed like a person would."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from blog.accounts import tokens
from blog.accounts.models import User
from blog.extensions import db
from blog.mail.models import EmailMessage
from blog.posts import services as posts
from tests.accounts.conftest import field_errors, is_logged_in, register
from tests.conftest import PASSWORD, AuthActions, csrf_token, png, text_of
from tests.mail.conftest import bodies, eml_files

NEW_PASSWORD = "a quiet lighthouse at dusk"
SITE = "https://ink.example"


@pytest.fixture
def config_overrides(uploads: Path) -> dict[str, Any]:
    return {"SITE_URL": SITE, "UPLOAD_FOLDER": str(uploads)}


def link_in(message: Any, path: str) -> str:
    """The one link to ``path`` in a message's text, which must be the same in its HTML."""
    text, html = bodies(message)
    links = set(re.findall(rf"{re.escape(SITE)}{re.escape(path)}[^\s\"<]*", text))
    assert len(links) == 1, (path, text)
    link = links.pop()
    assert f'href="{link}"' in html
    return link.removeprefix(SITE)


def user_named(app: Flask, username: str) -> User:
    with app.app_context():
        return db.session.scalars(select(User).where(User.username == username)).one()


def ask_reset(client: Any, email: str) -> Any:
    return client.post("/auth/reset", data={"csrf_token": csrf_token(client, "/auth/reset"),
                                            "email": email})


def set_password(client: Any, path: str, password: str = NEW_PASSWORD) -> Any:
    return client.post(path, data={"csrf_token": csrf_token(client, path), "new_password": password,
                                   "confirm": password})


# --- verifying the address --------------------------------------------------------------------


def test_registration_mails_a_link_that_confirms_the_address(app: Flask, client: Any, outbox: Path) -> None:
    assert register(client).status_code == 302
    assert user_named(app, "alice").email_verified_at is None
    assert "is not confirmed yet" in text_of(client.get("/auth/profile"))
    [message] = eml_files(outbox)
    assert (message["To"], message["Subject"]) == ("alice@example.com",
                                                   "Confirm your email address for Inkwell")
    response = client.get(link_in(message, "/auth/verify/"))
    assert response.status_code == 302 and response.headers["Location"] == "/auth/profile"
    assert user_named(app, "alice").email_verified_at is not None
    assert "is not confirmed yet" not in text_of(client.get("/auth/profile"))


def test_a_new_confirmation_link_on_request_and_old_links_die_with_the_address(
        app: Flask, client: Any, outbox: Path) -> None:
    register(client)
    form = client.get("/auth/profile").get_data(as_text=True)
    token = re.search(r'action="/auth/verify".*?value="([^"]+)"', form, re.DOTALL)
    assert token
    response = client.post("/auth/verify", data={"csrf_token": token.group(1)})
    assert response.status_code == 302
    first, second = eml_files(outbox)
    assert second["Subject"] == first["Subject"]
    link = link_in(second, "/auth/verify/")
    with app.app_context():
        user = db.session.scalars(select(User)).one()
        user.email = "elsewhere@example.com"
        db.session.commit()
    assert client.get(link).status_code == 400  # sent to an address no longer the member's
    assert user_named(app, "alice").email_verified_at is None
    assert client.get("/auth/verify/not-a-token").status_code == 400


# --- resetting a forgotten password ------------------------------------------------------------


def test_the_reset_journey_end_to_end(app: Flask, client: Any, make_user: Any, outbox: Path) -> None:
    make_user("alice")
    laptop, phone = app.test_client(), app.test_client()
    AuthActions(laptop).login("alice")
    AuthActions(phone).login("alice")
    assert is_logged_in(laptop) and is_logged_in(phone)

    # A forged Host header changes nothing in the link: it comes from SITE_URL.
    client.environ_base["HTTP_HOST"] = "evil.example"
    response = ask_reset(client, "ALICE@example.com")
    assert response.status_code == 302 and response.headers["Location"] == "/auth/login"
    del client.environ_base["HTTP_HOST"]
    login_page = text_of(client.get("/auth/login"))
    assert "If an account uses ALICE@example.com, we have sent it a link" in login_page
    [message] = eml_files(outbox)
    assert message["To"] == "alice@example.com" and message["Subject"] == "Reset your password"
    assert "evil.example" not in message.as_string()
    link = link_in(message, "/auth/reset/")
    assert "works once, for 60 minutes" in bodies(message)[1]

    assert "Choose a new password" in text_of(client.get(link))
    assert "too easy to guess" in " ".join(field_errors(set_password(client, link, "alice12345")))
    response = set_password(client, link)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert is_logged_in(client)
    assert not is_logged_in(laptop) and not is_logged_in(phone)  # every other session ended
    assert AuthActions(app.test_client()).login("alice", PASSWORD).status_code == 200  # old one fails
    assert AuthActions(app.test_client()).login("alice", NEW_PASSWORD).status_code == 302
    assert user_named(app, "alice").email_verified_at is not None  # the link proved the inbox

    changed = eml_files(outbox)[1]
    assert changed["Subject"] == "Your password was changed"
    assert link_in(changed, "/auth/reset") == "/auth/reset"
    # The link worked once.
    assert client.get(link).status_code == 400
    assert set_password(app.test_client(), link, "another quiet lighthouse").status_code == 400


def test_unknown_and_deactivated_addresses_get_the_same_answer_and_no_mail(
        app: Flask, client: Any, make_user: Any, outbox: Path) -> None:
    make_user("gone", active=False)
    answers = []
    for address in ("nobody@example.com", "gone@example.com"):
        response = ask_reset(client, address)
        answers.append((response.status_code, response.headers["Location"]))
        assert f"If an account uses {address}, we have sent it a link" in text_of(client.get("/auth/login"))
    assert answers == [(302, "/auth/login")] * 2
    assert eml_files(outbox) == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(EmailMessage)) == 0


def test_a_password_change_kills_the_reset_link(app: Flask, client: Any, auth: AuthActions,
                                                make_user: Any, outbox: Path) -> None:
    make_user("alice")
    ask_reset(client, "alice@example.com")
    link = link_in(eml_files(outbox)[0], "/auth/reset/")
    auth.login("alice")
    client.post("/auth/password", data={"csrf_token": csrf_token(client, "/auth/password"),
                                        "current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                        "confirm": NEW_PASSWORD})
    assert eml_files(outbox)[1]["Subject"] == "Your password was changed"
    auth.logout()
    response = client.get(link)
    assert response.status_code == 400 and "expired or has already been used" in text_of(response)


@pytest.mark.parametrize("config_overrides", [{"PASSWORD_RESET_MAX_AGE": -1, "SITE_URL": SITE}])
def test_an_expired_reset_link_is_refused(client: Any, make_user: Any, outbox: Path) -> None:
    make_user("alice")
    ask_reset(client, "alice@example.com")
    link = link_in(eml_files(outbox)[0], "/auth/reset/")
    assert client.get(link).status_code == 400
    assert set_password(client, link).status_code == 400


def test_tokens_are_for_one_purpose_and_cannot_be_forged(app: Flask, client: Any, make_user: Any) -> None:
    alice = make_user("alice")
    with app.test_request_context():
        verify = tokens.make(tokens.VERIFY, alice.id, "alice@example.com")
        forged = tokens.make(tokens.RESET, alice.id, "0" * 32)
    assert client.get(f"/auth/reset/{verify}").status_code == 400
    assert client.get(f"/auth/reset/{forged}").status_code == 400
    assert client.get(f"/auth/reset/{verify[:-2]}xx").status_code == 400


@pytest.mark.parametrize("config_overrides", [{"RESET_RATE_LIMIT_PER_ADDRESS": "2 per hour",
                                               "SITE_URL": SITE}])
def test_reset_requests_are_throttled_per_address(client: Any, make_user: Any, outbox: Path) -> None:
    make_user("alice")
    statuses = [ask_reset(client, "alice@example.com").status_code for _ in range(3)]
    assert statuses == [302, 302, 429]
    assert len(eml_files(outbox)) == 2
    assert ask_reset(client, "bob@example.com").status_code == 302  # another address is counted apart


# --- the profile -------------------------------------------------------------------------------


def save_profile(client: Any, **fields: Any) -> Any:
    data = {"csrf_token": csrf_token(client, "/auth/profile"), "display_name": "", "bio": "",
            "website": "", "email": "alice@example.com", "notify_comments": "y", **fields}
    data = {name: value for name, value in data.items() if value is not None}
    if isinstance(data.get("avatar"), bytes):
        data["avatar"] = (io.BytesIO(data["avatar"]), "me.png")
    return client.post("/auth/profile", data=data, content_type="multipart/form-data")


def test_the_profile_shows_on_the_member_page(app: Flask, client: Any, auth: AuthActions,
                                              make_user: Any, uploads: Path) -> None:
    make_user("alice")
    auth.login("alice")
    response = save_profile(client, display_name="Alice Liddell", bio="Writes about <rabbits>.\nAnd tea.",
                            website="https://alice.example/blog", avatar=png("red"))
    assert response.status_code == 302
    page = client.get("/users/alice").get_data(as_text=True)
    assert "Alice Liddell" in page and "@alice" in page
    assert "Writes about &lt;rabbits&gt;." in page
    assert '<a href="https://alice.example/blog" rel="nofollow ugc noopener">' in page
    first = user_named(app, "alice").avatar
    assert first and re.search(rf'src="/uploads/{first[:-5]}-thumb\.webp" width="\d+" height="\d+"', page)
    # A new picture replaces the old one's files; removing it deletes them.
    save_profile(client, avatar=png("blue"))
    second = user_named(app, "alice").avatar
    assert second and second != first and not (uploads / first).exists() and (uploads / second).exists()
    save_profile(client, remove_avatar="y")
    assert user_named(app, "alice").avatar is None and not (uploads / second).exists()


@pytest.mark.parametrize(("fields", "message"), [
    ({"website": "javascript:alert(1)"}, "Enter a web address starting with https:// or http://."),
    ({"website": "alice.example"}, "Enter a web address starting with https:// or http://."),
    ({"bio": "x" * 501}, "Field cannot be longer than 500 characters."),
    ({"display_name": "Alice" + "x" * 56}, "Field cannot be longer than 60 characters."),
    ({"avatar": b"not an image"}, "The file is not a JPEG, PNG or WebP image."),
    ({"email": "not an address"}, "Invalid email address."),
])
def test_the_profile_refuses_bad_values_and_keeps_the_rest(app: Flask, client: Any, auth: AuthActions,
                                                           make_user: Any, fields: dict[str, Any],
                                                           message: str, uploads: Path) -> None:
    make_user("alice")
    auth.login("alice")
    response = save_profile(client, **{"display_name": "Alice", **fields})
    assert response.status_code == 200
    assert message in text_of(response)
    assert 'value="Alice' in response.get_data(as_text=True)
    assert user_named(app, "alice").display_name == ""  # nothing saved
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_changing_the_address_takes_a_link_to_the_new_one(app: Flask, client: Any, auth: AuthActions,
                                                          make_user: Any, outbox: Path) -> None:
    make_user("alice")
    auth.login("alice")
    save_profile(client, email="alice@new.example")
    assert user_named(app, "alice").email == "alice@example.com"  # not yet
    confirm, notice = eml_files(outbox)
    assert (confirm["To"], confirm["Subject"]) == ("alice@new.example", "Confirm your new email address")
    assert notice["To"] == "alice@example.com" and "alice@new.example" in bodies(notice)[0]
    link = link_in(confirm, "/auth/email/")
    response = client.get(link)
    assert response.status_code == 302
    user = user_named(app, "alice")
    assert user.email == "alice@new.example" and user.email_verified_at is not None
    assert client.get(link).status_code == 400  # the old address is no longer hers: used up


def test_an_address_of_another_account_is_answered_alike_and_mails_nobody(
        app: Flask, client: Any, auth: AuthActions, make_user: Any, outbox: Path) -> None:
    make_user("alice")
    make_user("bob")
    auth.login("alice")
    response = save_profile(client, email="BOB@example.com")
    assert response.status_code == 302
    assert "We have sent a link to BOB@example.com" in text_of(client.get("/auth/profile"))
    assert eml_files(outbox) == []
    assert user_named(app, "alice").email == "alice@example.com"


# --- a new comment on your post ----------------------------------------------------------------


def test_authors_hear_of_comments_unless_they_switch_it_off(app: Flask, client: Any, auth: AuthActions,
                                                            make_user: Any, outbox: Path) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    with app.app_context():
        post = posts.create_post(db.session.get(User, alice.id), "On tea", "Body.", "", True)
        posts.add_comment(post, db.session.get(User, bob.id), "Milk first?")
        posts.add_comment(post, db.session.get(User, alice.id), "Never.")  # her own: no mail
    [message] = eml_files(outbox)
    assert message["To"] == "alice@example.com"
    assert message["Subject"] == "bob commented on “On tea”"
    assert "Milk first?" in bodies(message)[0]
    assert re.search(r"/posts/on-tea#comment-\d+", link_in(message, "/posts/on-tea"))

    auth.login("alice")
    save_profile(client, notify_comments=None)  # the box unticked: absent from the form
    assert user_named(app, "alice").notify_comments is False
    with app.app_context():
        posts.add_comment(db.session.get(type(post), post.id), db.session.get(User, bob.id), "Sugar?")
    assert len(eml_files(outbox)) == 1


@pytest.mark.parametrize("config_overrides", [{"RESET_RATE_LIMIT_PER_ADDRESS": "2 per hour",
                                               "SITE_URL": SITE}])
def test_new_confirmation_links_are_counted_per_member_across_logins(client: Any, auth: AuthActions,
                                                                    outbox: Path) -> None:
    register(client)  # the first link, at registration
    statuses = []
    for _ in range(3):
        statuses.append(client.post("/auth/verify", data={"csrf_token": csrf_token(client, "/")})
                        .status_code)
        auth.logout()  # a new login is still the same member
        auth.login("alice")
    assert statuses == [302, 302, 429]
    assert len(eml_files(outbox)) == 3
