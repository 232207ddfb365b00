"""Defences added after review: each test names the hole it keeps closed."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from blog.accounts import services
from blog.accounts.models import LoginAttempt
from blog.database_session import transaction
from blog.extensions import db, login_manager
from tests.conftest import PASSWORD, csrf_token, dispose, make_config


def change_password(client, current):
    return client.post("/auth/password", data={
        "csrf_token": csrf_token(client, "/auth/password"), "current_password": current,
        "new_password": "a new password", "confirm": "a new password"})


@pytest.mark.parametrize("config_overrides", [{"LOGIN_MAX_FAILURES_PER_ACCOUNT": 3}])
def test_password_change_guesses_are_throttled(client, make_user, auth):
    """A stolen session must not become an unlimited oracle for the current password."""
    make_user("alice")
    auth.login()
    for _ in range(3):
        assert change_password(client, "guess guess").status_code == 200
    response = change_password(client, "guess guess")
    assert response.status_code == 429
    assert change_password(client, PASSWORD).status_code == 429  # even the right one, for now


def test_successful_password_change_clears_attempts(client, make_user, auth, app):
    make_user("alice")
    auth.login()
    change_password(client, "wrong wrong")
    assert change_password(client, PASSWORD).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LoginAttempt)) == 0


@pytest.mark.parametrize("address, key", [
    ("203.0.113.5", "203.0.113.5"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
    ("::ffff:198.51.100.1", "198.51.100.1"),
    ("not an address", "not an address"),
    ("", "unknown"),
])
def test_throttle_counts_ipv6_by_network(address, key):
    assert services.client_key(address) == key


@pytest.mark.parametrize("query", ["endpoint=x", "_method=DELETE", "_anchor=top&_external=1",
                                   "page=1&endpoint=y&_scheme=https"])
def test_pagination_links_ignore_reserved_query_arguments(client, app, query):
    from tests.test_templates import add_attempts, render_pager

    add_attempts(app, 5)
    _, html = render_pager(app, f"/?{query}")
    assert 'href="/?' in html and 'href="http' not in html  # kept as data, never a URL part


def test_anonymous_pages_set_no_session_cookie(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def test_writes_flushed_outside_a_service_are_refused(app):
    """Autoflush hides pending writes from session.dirty; transaction() still notices."""
    with app.app_context():
        db.session.add(LoginAttempt(account_key="sneaky", ip_address="x"))
        db.session.scalar(select(func.count()).select_from(LoginAttempt))  # autoflushes the insert
        assert not db.session.new
        with pytest.raises(RuntimeError, match="outside a service transaction"), transaction():
            pass
        db.session.rollback()
        with transaction() as session:  # after the rollback, services work again
            session.add(LoginAttempt(account_key="fine", ip_address="x"))


@pytest.mark.parametrize("config_overrides", [{"REMEMBER_COOKIE_SECURE": False}])
def test_explicit_remember_cookie_setting_is_kept(app):
    assert app.config["SESSION_COOKIE_SECURE"] is False
    assert app.config["REMEMBER_COOKIE_SECURE"] is False


def test_remember_cookie_follows_the_session_cookie(database_url):
    from blog import create_app

    settings = make_config(database_url, SESSION_COOKIE_SECURE=True)
    settings.pop("REMEMBER_COOKIE_SECURE", None)
    app = create_app(settings)
    try:
        assert app.config["REMEMBER_COOKIE_SECURE"] is True
    finally:
        dispose(app)


def test_error_page_survives_a_database_failure_while_logged_in(client, make_user, auth, app,
                                                                monkeypatch):
    """The layout loads the current user; when the database is what failed, the error page
    falls back to plain HTML instead of a bare server error without headers."""
    make_user("alice")
    auth.login()
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def database_down(token):
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(login_manager, "_user_callback", database_down)
    response = client.get("/users/alice")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "Something went wrong on our side" in html
    assert "Traceback" not in html and "OperationalError" not in html
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
