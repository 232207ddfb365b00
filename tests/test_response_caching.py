"""Members' pages are never stored by a cache; secure sites send HSTS (#10 item 10)."""

from __future__ import annotations

import pytest

from blog import create_app
from tests.conftest import PASSWORD, dispose, make_config


def no_store(response) -> bool:
    return "no-store" in (response.headers.get("Cache-Control") or "")


# --- Cache-Control ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/auth/password", "/shop/cart", "/users/alice", "/no-such-page"])
def test_members_pages_are_not_stored(client, make_user, auth, path):
    make_user("alice")
    auth.login()
    response = client.get(path)
    assert response.status_code in (200, 404)
    assert response.headers["Cache-Control"] == "no-store"


def test_the_login_response_itself_is_not_stored(client, make_user, auth):
    make_user("alice")
    response = auth.login()
    assert response.status_code == 302
    assert no_store(response)


@pytest.mark.parametrize("path", ["/", "/auth/login", "/shop/", "/healthz"])
def test_visitors_pages_may_be_cached(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert not no_store(response)


def test_after_logout_pages_are_cacheable_again(client, make_user, auth):
    make_user("alice")
    auth.login()
    assert no_store(client.get("/"))
    auth.logout()
    assert not no_store(client.get("/"))


def test_a_member_back_through_the_remember_cookie_is_not_cached_either(client, make_user, auth):
    make_user("alice")
    auth.login("alice", PASSWORD, remember=True)
    client.delete_cookie("session")  # the browser was closed: only the remember cookie is left
    response = client.get("/")
    assert "alice" in response.get_data(as_text=True)
    assert no_store(response)


def test_public_files_keep_their_own_cache_headers(client, make_user, auth):
    """Static files are the same for everyone: a member gets them cacheable too."""
    make_user("alice")
    auth.login()
    response = client.get("/static/style.css")
    assert response.status_code == 200
    assert not no_store(response)
    response.close()


# --- Strict-Transport-Security -------------------------------------------------------------


@pytest.fixture
def build(database_url):
    apps = []

    def factory(**settings):
        app = create_app(make_config(database_url, **settings))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        dispose(app)


@pytest.mark.parametrize("path", ["/", "/healthz", "/no-such-page"])
def test_hsts_with_secure_cookies(build, path):
    app = build(SESSION_COOKIE_SECURE=True, DEBUG=False)
    response = app.test_client().get(path, base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_hsts_max_age_is_a_setting(build):
    app = build(SESSION_COOKIE_SECURE=True, DEBUG=False, HSTS_MAX_AGE=600)
    response = app.test_client().get("/", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"] == "max-age=600"


@pytest.mark.parametrize("settings", [
    {"SESSION_COOKIE_SECURE": False},                       # make run's plain http
    {"SESSION_COOKIE_SECURE": True, "DEBUG": True},          # debug turns secure cookies off
    {"SESSION_COOKIE_SECURE": True, "HSTS_MAX_AGE": 0},      # switched off
])
def test_no_hsts_without_secure_cookies_or_when_switched_off(build, settings):
    app = build(**settings)
    assert "Strict-Transport-Security" not in app.test_client().get("/").headers


def test_make_run_environment_sends_no_hsts(database_url, monkeypatch):
    """`make run` sets FLASK_SESSION_COOKIE_SECURE=false for plain http."""
    monkeypatch.setenv("FLASK_SESSION_COOKIE_SECURE", "false")
    settings = make_config(database_url)
    del settings["SESSION_COOKIE_SECURE"]
    app = create_app(settings)
    try:
        assert app.config["SESSION_COOKIE_SECURE"] is False
        assert "Strict-Transport-Security" not in app.test_client().get("/").headers
    finally:
        dispose(app)


# --- conditional GET for visitors -------------------------------------------------------------


def test_a_visitor_s_page_answers_304_until_it_changes(app, client, make_user):
    from blog.accounts.models import User
    from blog.extensions import db
    from blog.posts import services as posts

    alice = make_user("alice", roles=("author",))
    first = client.get("/")
    etag = first.headers["ETag"]
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-cache"
    again = client.get("/", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert "Content-Security-Policy" in again.headers
    with app.app_context():
        posts.create_post(db.session.get(User, alice.id), "Something new", "Text.", "", True)
    changed = client.get("/", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and "Something new" in changed.get_data(as_text=True)
    assert changed.headers["ETag"] != etag


def test_members_and_visitors_with_a_session_always_get_the_page(client, make_user, auth):
    etag = client.get("/shop/").headers["ETag"]
    make_user("alice")
    auth.login()
    response = client.get("/shop/", headers={"If-None-Match": etag})
    assert response.status_code == 200 and "ETag" not in response.headers


@pytest.mark.parametrize("path", ["/auth/login", "/no-such-page", "/shop/cart"])
def test_pages_that_are_not_the_same_for_everyone_carry_no_etag(client, path):
    assert "ETag" not in client.get(path).headers
