"""The CSRF token changes when the member behind the browser changes (#10 item 11).

Flask-WTF keeps one raw token per session; a token read before logging in (from a page left
open, a shared computer) must not keep working after it, nor a member's token after logout.
"""

from __future__ import annotations

from tests.accounts.conftest import is_logged_in, register
from tests.conftest import PASSWORD, csrf_token


def raw_token(client) -> str | None:
    with client.session_transaction() as session:
        return session.get("csrf_token")


def logout_with(client, token: str):
    return client.post("/auth/logout", data={"csrf_token": token})


def test_login_gives_a_new_csrf_token(client, make_user, auth):
    make_user("alice")
    before = csrf_token(client, "/auth/login")
    raw_before = raw_token(client)
    assert raw_before
    assert auth.login("alice", PASSWORD).status_code == 302
    assert raw_token(client) != raw_before
    # The token from before the login no longer passes the check...
    assert logout_with(client, before).status_code == 400
    assert is_logged_in(client)
    # ...and the one on the member's pages does.
    assert logout_with(client, csrf_token(client, "/")).status_code == 302
    assert not is_logged_in(client)


def test_logout_gives_a_new_csrf_token(client, make_user, auth):
    make_user("alice")
    auth.login("alice", PASSWORD)
    member_token = csrf_token(client, "/")
    raw_member = raw_token(client)
    assert logout_with(client, member_token).status_code == 302
    assert raw_token(client) != raw_member
    # The member's token is dead for the next person at this browser.
    response = client.post("/auth/login", data={"csrf_token": member_token, "username": "alice",
                                                "password": PASSWORD})
    assert response.status_code == 400
    assert not is_logged_in(client)


def test_registration_gives_a_new_csrf_token(client):
    csrf_token(client, "/auth/register")
    raw_before = raw_token(client)
    assert register(client).status_code == 302
    assert raw_token(client) != raw_before


def test_password_change_gives_a_new_csrf_token(client, make_user, auth):
    """Changing the password starts a new login (other sessions end), so a new token too."""
    make_user("alice")
    auth.login("alice", PASSWORD)
    token = csrf_token(client, "/auth/password")
    raw_before = raw_token(client)
    response = client.post("/auth/password", data={
        "csrf_token": token, "current_password": PASSWORD,
        "new_password": "a brand new secret", "confirm": "a brand new secret"})
    assert response.status_code == 302
    assert raw_token(client) != raw_before
    assert logout_with(client, token).status_code == 400
