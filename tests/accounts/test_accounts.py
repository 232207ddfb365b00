"""Registration, login, logout, password change, profiles."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from blog.accounts import services
from blog.accounts.models import LoginAttempt, User, UserSession
from blog.extensions import db
from tests.accounts.conftest import field_errors, is_logged_in, register
from tests.conftest import PASSWORD, csrf_token
from tests.mail.conftest import bodies, eml_files

# --- registration ------------------------------------------------------------------------


def test_register_page_renders(client):
    response = client.get("/auth/register")
    assert response.status_code == 200
    for name in ("username", "email", "password", "confirm", "csrf_token"):
        assert f'name="{name}"' in response.get_data(as_text=True)


def test_register_logs_in_and_redirects(client, app):
    response = register(client)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert is_logged_in(client)
    home = client.get("/").get_data(as_text=True)
    assert "alice" in home and "Log out" in home
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "alice")
                                 .options(selectinload(User.roles)))
        assert user.email == "alice@example.com"
        assert user.roles == []
        assert user.created_at.tzinfo is not None


def test_password_is_stored_as_bcrypt_hash_never_plain(client, app):
    register(client)
    with app.app_context():
        user = db.session.scalar(select(User))
        assert user.password_hash.startswith("$2b$04$")  # bcrypt at the test cost
        assert PASSWORD not in user.password_hash
        row = db.session.execute(select(User.__table__)).mappings().one()
        assert all(PASSWORD not in str(value) for value in row.values())


@pytest.mark.parametrize("username", ["ALICE", "Alice", "alice"])
def test_username_unique_without_regard_to_case(client, make_user, username):
    make_user("alice")
    response = register(client, username=username, email="other@example.com")
    assert response.status_code == 200
    assert "That username is taken." in field_errors(response)


def test_a_taken_email_is_not_revealed_its_owner_is_mailed(client, make_user, app, outbox):
    """Unique without regard to case, and the registering person is only told to check the
    inbox (a new member is told that too): whoever owns the address hears of it."""
    make_user("alice", email="alice@example.com")
    response = register(client, username="alice2", email="ALICE@Example.COM")
    assert response.status_code == 302 and response.headers["Location"] == "/auth/login"
    page = client.get("/auth/login").get_data(as_text=True)
    assert "We have sent a message to ALICE@Example.COM: check your inbox" in page
    assert "already" not in page and not is_logged_in(client)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 1
    [note] = eml_files(outbox)
    assert note["To"] == "alice@example.com"
    assert note["Subject"] == "Someone tried to register with your address at Inkwell"
    assert "/auth/reset" in bodies(note)[0]


def test_race_lost_to_unique_constraint_is_a_form_error(client, make_user, monkeypatch, app):
    """The friendly pre-check can pass while a concurrent request inserts the same name; the
    database's unique constraint then decides, and the loser gets a form error, not a 500."""
    make_user("alice")
    monkeypatch.setattr(services, "_duplicate_field", lambda username, email: None)
    response = register(client, username="ALICE", email="new@example.com")
    assert response.status_code == 200
    assert "That username is taken." in field_errors(response)
    response = register(client, username="carol", email="ALICE@example.com")
    assert response.status_code == 302 and not is_logged_in(client)  # "check your inbox"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 1


@pytest.mark.parametrize("data, message", [
    ({"username": "al"}, "Field must be between 3 and 32 characters long."),
    ({"username": "bad name!"}, "Use letters, digits, '-' and '_' only."),
    ({"email": "not-an-email"}, "Invalid email address."),
    ({"password": "short", "confirm": "short"}, "Use at least 8 characters."),
    ({"confirm": "something else"}, "The passwords do not match."),
])
def test_register_validation(client, app, data, message):
    fields = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    fields.update(data)
    response = register(client, **fields)
    assert response.status_code == 200
    assert message in field_errors(response)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_registration_signal_runs_inside_the_transaction(app, make_user):
    seen = []

    def listener(sender, user):
        seen.append((user.id, db.session().in_transaction()))

    services.user_registered.connect(listener)
    try:
        user = make_user("dora")
    finally:
        services.user_registered.disconnect(listener)
    assert seen == [(user.id, True)]


# --- passwords of any length or shape ------------------------------------------------------


# Long ones start with a strong phrase: the strength check refuses "pppp...".
@pytest.mark.parametrize("password", [
    (PASSWORD + " ") * 5,                        # 110 bytes: past bcrypt's 72
    (PASSWORD + " " + "x" * 10 * 1024),           # 10 KB
    "naïve café 密码 🔑🔑🔑",                    # multi-byte characters
])
def test_long_or_strange_passwords_register_and_log_in(client, auth, password):
    response = register(client, password=password)
    assert response.status_code == 302
    auth.logout()
    assert auth.login("alice", password).status_code == 302
    assert is_logged_in(client)


def test_every_character_of_a_long_password_counts(client, auth):
    password = (PASSWORD + " ") * 4 + "1"
    assert register(client, password=password).status_code == 302
    auth.logout()
    response = auth.login("alice", (PASSWORD + " ") * 4 + "2")  # same first 72 bytes and more
    assert response.status_code == 200
    assert services.INVALID_CREDENTIALS in response.get_data(as_text=True)


def test_huge_password_at_login_is_not_a_500(client, make_user, auth):
    make_user("alice")
    response = auth.login("alice", "y" * 10 * 1024)
    assert response.status_code == 200
    assert services.INVALID_CREDENTIALS in response.get_data(as_text=True)


def test_password_hash_helpers_accept_any_string(app):
    from blog.security import check_password, hash_password

    odd = "\ud800 unpaired surrogate" + "z" * 500
    hashed = hash_password(odd, rounds=4)
    assert check_password(hashed, odd)
    assert not check_password(hashed, odd + "!")
    assert not check_password("not a bcrypt hash", odd)


# --- login -------------------------------------------------------------------------------


@pytest.mark.parametrize("identifier", ["alice", "ALICE", "alice@example.com", "Alice@Example.com"])
def test_login_by_username_or_email_any_case(client, make_user, auth, identifier):
    make_user("alice")
    response = auth.login(identifier)
    assert response.status_code == 302
    assert is_logged_in(client)


def test_unknown_user_and_wrong_password_get_the_same_answer(client, make_user, auth, monkeypatch):
    make_user("alice")
    import bcrypt

    calls = []
    real_checkpw = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda *args: calls.append(1) or real_checkpw(*args))

    wrong = auth.login("alice", "wrong password")
    unknown = auth.login("nobody", "wrong password")
    for response in (wrong, unknown):
        assert response.status_code == 200
        assert services.INVALID_CREDENTIALS in response.get_data(as_text=True)
    # Both paths pay for one bcrypt check, so neither answers faster.
    assert len(calls) == 2


def test_inactive_member_cannot_log_in(client, make_user, auth):
    make_user("alice", active=False)
    response = auth.login("alice")
    assert response.status_code == 200
    assert services.INVALID_CREDENTIALS in response.get_data(as_text=True)
    assert not is_logged_in(client)


def test_deactivated_account_with_the_right_password_looks_like_a_wrong_password(
        client, make_user, auth, monkeypatch):
    """The right password of a deactivated account must not be confirmed (nor the account's
    existence): same status, same message, one bcrypt check each, as a wrong password."""
    make_user("alice", active=False)
    make_user("bob")
    import bcrypt

    calls = []
    real_checkpw = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda *args: calls.append(1) or real_checkpw(*args))

    deactivated = auth.login("alice", PASSWORD)
    deactivated_calls = len(calls)
    wrong = auth.login("bob", "wrong password")
    assert deactivated.status_code == wrong.status_code == 200
    for response in (deactivated, wrong):
        assert services.INVALID_CREDENTIALS in response.get_data(as_text=True)
    assert "deactivated" not in deactivated.get_data(as_text=True).lower()
    assert deactivated_calls == len(calls) - deactivated_calls == 1
    assert not is_logged_in(client)


def test_login_form_validation(client, auth):
    response = client.post("/auth/login", data={"csrf_token": csrf_token(client), "username": "",
                                                 "password": ""})
    assert response.status_code == 200
    assert "This field is required." in field_errors(response)


def test_logged_in_member_is_sent_away_from_login_and_register(client, make_user, auth):
    make_user("alice")
    auth.login()
    assert client.get("/auth/login").status_code == 302
    assert client.get("/auth/register").status_code == 302


def test_remember_me_sets_a_remember_cookie(client, make_user, auth):
    make_user("alice")
    auth.login(remember=True)
    assert client.get_cookie("remember_token") is not None


def test_remember_cookie_alone_logs_in(app, make_user):
    make_user("alice")
    first = app.test_client()
    from tests.conftest import AuthActions

    AuthActions(first).login(remember=True)
    remember = first.get_cookie("remember_token")
    browser_restarted = app.test_client()
    browser_restarted.set_cookie("remember_token", remember.value)
    assert is_logged_in(browser_restarted)


def test_rehash_when_cost_setting_changes(app, make_user, auth, client):
    make_user("alice")
    app.config["BCRYPT_ROUNDS"] = 5
    auth.login()
    with app.app_context():
        assert db.session.scalar(select(User.password_hash)).startswith("$2b$05$")


def test_successful_login_clears_failed_attempts(app, make_user, auth):
    make_user("alice")
    auth.login("alice", "wrong password")
    auth.login("alice")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LoginAttempt)) == 0


# --- logout and revocation --------------------------------------------------------------------


def test_logout_is_post_only(client, make_user, auth):
    make_user("alice")
    auth.login()
    assert client.get("/auth/logout").status_code == 405
    assert is_logged_in(client)
    assert auth.logout().status_code == 302
    assert not is_logged_in(client)


def copy_of(client, app):
    """Another browser holding a copy of ``client``'s cookies (as a thief would)."""
    other = app.test_client()
    for name in ("session", "remember_token"):
        cookie = client.get_cookie(name)
        if cookie is not None:
            other.set_cookie(name, cookie.value)
    return other


def test_cookie_copied_before_logout_no_longer_authenticates(app, client, make_user, auth):
    make_user("alice")
    auth.login(remember=True)
    stolen = copy_of(client, app)
    assert is_logged_in(stolen)
    auth.logout()
    assert not is_logged_in(stolen)
    remember_only = app.test_client()
    remember_only.set_cookie("remember_token", stolen.get_cookie("remember_token").value)
    assert not is_logged_in(remember_only)


def test_cookie_copied_before_password_change_no_longer_authenticates(app, client, make_user, auth):
    make_user("alice")
    auth.login()
    stolen = copy_of(client, app)
    response = client.post("/auth/password", data={
        "csrf_token": csrf_token(client, "/auth/password"),
        "current_password": PASSWORD, "new_password": "a brand new secret", "confirm": "a brand new secret",
    })
    assert response.status_code == 302
    assert is_logged_in(client), "the member who changed it stays logged in"
    assert not is_logged_in(stolen)
    auth.logout()
    assert auth.login("alice", PASSWORD).status_code == 200
    assert auth.login("alice", "a brand new secret").status_code == 302


def test_deactivation_ends_existing_sessions(app, client, make_user, auth):
    user = make_user("alice")
    auth.login(remember=True)
    with app.app_context():
        services.set_active(db.session.get(User, user.id), False)
        assert db.session.scalar(select(func.count()).select_from(UserSession)) == 0
    assert not is_logged_in(client)


def test_expired_login_record_does_not_authenticate(app, client, make_user, auth):
    from datetime import timedelta

    from blog.database import utcnow

    make_user("alice")
    auth.login()
    with app.app_context():
        record = db.session.scalar(select(UserSession))
        record.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert not is_logged_in(client)


# --- change password -------------------------------------------------------------------------


def test_change_password_requires_login(client):
    response = client.get("/auth/password")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login?next=")


@pytest.mark.parametrize("data, message", [
    ({"current_password": "wrong one!"}, "Your current password is not correct."),
    ({"new_password": "short", "confirm": "short"}, "Use at least 8 characters."),
    ({"confirm": "does not match"}, "The passwords do not match."),
    ({"new_password": PASSWORD, "confirm": PASSWORD}, "The new password must differ from the current one."),
])
def test_change_password_validation(client, make_user, auth, app, data, message):
    make_user("alice")
    auth.login()
    fields = {"current_password": PASSWORD, "new_password": "new password 1", "confirm": "new password 1"}
    fields.update(data)
    response = client.post("/auth/password",
                           data={"csrf_token": csrf_token(client, "/auth/password"), **fields})
    assert response.status_code == 200
    assert message in field_errors(response)
    with app.app_context():
        from blog.security import check_password

        assert check_password(db.session.scalar(select(User.password_hash)), PASSWORD)


# --- profile ---------------------------------------------------------------------------------


def test_profile_page(client, make_user):
    make_user("Alice")
    for path in ("/users/Alice", "/users/alice"):
        response = client.get(path)
        assert response.status_code == 200
        assert "Alice" in response.get_data(as_text=True)


def test_profile_of_unknown_or_deactivated_member_is_404(client, make_user, auth):
    make_user("gone", active=False)
    assert client.get("/users/nobody").status_code == 404
    assert client.get("/users/gone").status_code == 404
    make_user("root", admin=True)
    auth.login("root")
    assert client.get("/users/gone").status_code == 200


def test_nul_in_a_password_is_refused_not_a_500(client, app):
    response = register(client, password="with\x00nul\x00bytes")
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 0


# --- roles as the login lookup reads them ---------------------------------------------------


def test_a_member_s_roles_come_with_the_login_lookup_and_survive_a_rollback(app, client, auth, make_user):
    """The user loader reads the roles' names in its one statement; a member expired by a
    rolled-back transaction reads them again (they are not a collection that cannot load)."""
    from blog.database import count_statements

    def roles_after_rollback() -> str:
        from flask_login import current_user

        before = current_user.has_role("editor")
        db.session.rollback()  # expires the member
        return f"{before} {current_user.has_role('editor')} {current_user.has_any_role('admin', 'author')}"

    app.add_url_rule("/roles-after-rollback", "roles_after_rollback", roles_after_rollback)
    make_user("ed", roles=("editor", "author"))
    auth.login("ed")
    with count_statements() as counted:
        body = client.get("/roles-after-rollback").get_data(as_text=True)
    assert body == "True True True"
    # The login lookup (roles included); after the rollback, the member's row, then the names.
    assert counted.count == 3


def test_roles_changed_in_the_open_transaction_are_seen_before_the_commit(app, make_user):
    make_user("ed")
    with app.app_context():
        from blog.accounts.models import EDITOR, Role

        plain = db.session.scalar(select(User).where(User.username == "ed"))
        assert plain is not None and not plain.has_role(EDITOR)  # read by role_names
        db.session.expire_all()
        with_roles = select(User).where(User.username == "ed").options(selectinload(User.roles))
        member = db.session.scalar(with_roles)
        assert member is not None
        member.roles.append(db.session.scalar(select(Role).where(Role.name == EDITOR)))
        assert member.has_role(EDITOR) and member.has_any_role("admin", EDITOR)
        db.session.commit()
        assert member.has_role(EDITOR)
        db.session.expire_all()
        assert db.session.scalar(select(User).where(User.username == "ed")).has_role(EDITOR)
