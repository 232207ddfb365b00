"""Common, breached-style and guessable passwords are refused with advice (#10 item 12).

The check is zxcvbn's (its shipped lists: the most common passwords of public breaches,
English words, names, keyboard patterns); it applies to registration, the change-password form
and ``flask create-admin``, and takes the username and email into account.
"""

from __future__ import annotations

import random
import string
import time

import pytest
from sqlalchemy import func, select

from blog.accounts.forms import weak_password_reason
from blog.accounts.models import User
from blog.extensions import db
from blog.security import check_password
from tests.accounts.conftest import field_errors, is_logged_in, register
from tests.conftest import PASSWORD, csrf_token

TOO_EASY = "This password is too easy to guess."

#: Long enough for the length rule, and all among the most common breached passwords or
#: shaped like them.
WEAK = ["password", "password1", "12345678", "iloveyou", "qwertyuiop", "sunshine1",
        "Password123!", "letmein123", "trustno1!", "abcd1234"]


def user_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(User))


def too_easy(response) -> list[str]:
    return [error for error in field_errors(response) if error.startswith(TOO_EASY)]


@pytest.mark.parametrize("password", WEAK)
def test_registration_refuses_common_passwords(client, app, password):
    response = register(client, password=password)
    assert response.status_code == 200
    (message,) = too_easy(response)
    assert len(message) > len(TOO_EASY) + 10  # says why, or what would be better
    assert user_count(app) == 0
    assert not is_logged_in(client)


def test_the_message_helps(client):
    (message,) = too_easy(register(client, password="password1"))
    assert "common password" in message
    assert "Add another word or two" in message


@pytest.mark.parametrize("password", ["vorpalwug1", "vorpalwug2024", "wug-mail-42"])
def test_registration_refuses_passwords_made_of_the_username_or_email(client, app, password):
    """Each would pass for someone else (score 3 or 4 on its own): it is the username or email
    it is made of that makes it easy to guess."""
    with app.test_request_context():
        assert weak_password_reason(password) is None
    response = register(client, username="vorpalwug", email="wug-mail-42@example.com", password=password)
    assert too_easy(response)
    assert user_count(app) == 0


@pytest.mark.parametrize("password", [PASSWORD, "inkwell-demo", "a brand new secret",
                                      "naïve café 密码 🔑🔑🔑"])
def test_good_passwords_pass(client, app, password):
    """The tests' password and the demo data's pass (seeded members log in with it)."""
    assert register(client, password=password).status_code == 302
    assert user_count(app) == 1


def test_change_password_refuses_common_passwords(client, app, make_user, auth):
    make_user("alice")
    auth.login()
    response = client.post("/auth/password", data={
        "csrf_token": csrf_token(client, "/auth/password"), "current_password": PASSWORD,
        "new_password": "password123", "confirm": "password123"})
    assert response.status_code == 200
    assert too_easy(response)
    with app.app_context():
        user = db.session.scalar(select(User))
        assert check_password(user.password_hash, PASSWORD)  # unchanged


def test_change_password_refuses_the_members_own_name(client, make_user, auth):
    make_user("zebediah")
    auth.login("zebediah")
    response = client.post("/auth/password", data={
        "csrf_token": csrf_token(client, "/auth/password"), "current_password": PASSWORD,
        "new_password": "zebediah2", "confirm": "zebediah2"})
    assert too_easy(response)


def test_create_admin_refuses_common_passwords(runner, app):
    result = runner.invoke(args=["create-admin", "--username", "root", "--email", "root@example.com",
                                 "--password", "password1"])
    assert result.exit_code != 0
    assert f"--password: {TOO_EASY}" in result.output
    assert "Traceback" not in result.output
    assert user_count(app) == 0


@pytest.mark.parametrize("config_overrides", [{"PASSWORD_MIN_SCORE": 0}])
def test_the_check_can_be_switched_off(client, app):
    assert register(client, password="password1").status_code == 302


def test_long_passwords_are_judged_quickly(app):
    """zxcvbn slows down sharply with length; only the start is judged, so a 10 KB password
    (random, or repeating a weak one) takes no noticeable time."""
    rng = random.Random(7)
    strong = "".join(rng.choice(string.ascii_letters + string.digits + string.punctuation)
                     for _ in range(10_000))
    with app.test_request_context():
        started = time.perf_counter()
        assert weak_password_reason(strong) is None
        assert weak_password_reason("password" * 1000) is not None
        assert time.perf_counter() - started < 5
