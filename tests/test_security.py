"""CSRF, safe redirects after login, security headers, error pages and session cookies."""

from __future__ import annotations

import io
import logging

import pytest
from flask import request
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from blog.accounts.models import User
from blog.extensions import db
from blog.security import CONTENT_SECURITY_POLICY, check_password, safe_next_url
from tests.conftest import PASSWORD, csrf_token

EXPECTED_CSP = ("default-src 'self'; object-src 'none'; base-uri 'none'; "
                "frame-ancestors 'none'; form-action 'self'")


def assert_security_headers(response) -> None:
    headers = response.headers
    assert headers["Content-Security-Policy"] == EXPECTED_CSP
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers.get("Referrer-Policy")
    assert headers["X-Frame-Options"] == "DENY"


def assert_error_page(response, code: int, text: str) -> None:
    """An HTML error page (never a traceback) with the status ``code`` and ``text``."""
    assert response.status_code == code
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert text in html
    assert "Traceback" not in html
    assert_security_headers(response)


def is_logged_in(client) -> bool:
    return client.get("/auth/password").status_code == 200


def user_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(User))


# --- CSRF ----------------------------------------------------------------------------------

# How a forged or stale form can carry its token: none at all, a made-up one, or a genuine
# token that belongs to somebody else's session.
BAD_TOKENS = ["missing", "garbage", "another session's"]


def bad_token(kind: str, app) -> dict[str, str]:
    if kind == "missing":
        return {}
    if kind == "garbage":
        return {"csrf_token": "not-a-real-token"}
    return {"csrf_token": csrf_token(app.test_client())}


def assert_form_expired(response) -> None:
    assert_error_page(response, 400, "Form expired")
    assert "This form has expired or did not come from this site." in response.get_data(as_text=True)


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_register_without_valid_csrf_token_is_refused(client, app, kind):
    csrf_token(client, "/auth/register")  # the visitor has a session with its own token
    response = client.post("/auth/register", data={
        **bad_token(kind, app),
        "username": "mallory", "email": "mallory@example.com",
        "password": PASSWORD, "confirm": PASSWORD,
    })
    assert_form_expired(response)
    assert user_count(app) == 0
    assert not is_logged_in(client)


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_login_without_valid_csrf_token_is_refused(client, app, make_user, kind):
    make_user("alice")
    csrf_token(client)
    response = client.post("/auth/login", data={
        **bad_token(kind, app), "username": "alice", "password": PASSWORD,
    })
    assert_form_expired(response)
    assert not is_logged_in(client)


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_logout_without_valid_csrf_token_is_refused(client, app, make_user, auth, kind):
    make_user("alice")
    auth.login()
    response = client.post("/auth/logout", data=bad_token(kind, app))
    assert_form_expired(response)
    assert is_logged_in(client)


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_password_change_without_valid_csrf_token_is_refused(client, app, make_user, auth, kind):
    make_user("alice")
    auth.login()
    response = client.post("/auth/password", data={
        **bad_token(kind, app),
        "current_password": PASSWORD, "new_password": "a brand new secret",
        "confirm": "a brand new secret",
    })
    assert_form_expired(response)
    assert is_logged_in(client)
    with app.app_context():
        assert check_password(db.session.scalar(select(User.password_hash)), PASSWORD)


def test_csrf_token_is_accepted_once_present(client, make_user, auth):
    """The control for the tests above: the same requests with the real token work."""
    make_user("alice")
    assert auth.login().status_code == 302
    assert auth.logout().status_code == 302
    assert not is_logged_in(client)


# --- ?next= after login --------------------------------------------------------------------

GOOD_NEXT = [
    "/auth/password",
    "/users/alice?page=2",
    "/?page=3",
    "/search?q=a%20b",
    "/posts/hello-world#comments",
]

BAD_NEXT = [
    "//evil.example",
    "//evil.example/path",
    "/\\evil.example",
    "/\\/evil.example",
    "\\\\evil.example",
    "https:evil.example",
    "http://evil.example/",
    "https://evil.example",
    "HTTPS://evil.example",
    "javascript:alert(1)",
    "/\tevil",                 # browsers drop tabs and newlines: "/\t/evil" would be "//evil"
    "/\t/evil.example",
    "/\nevil",
    "/\n/evil.example",
    "/\r/evil.example",
    "\x7f",
    "/\x7f",
    "/\x00",
    " //evil.example",         # and leading spaces
    "evil.example",
    "",
]


@pytest.mark.parametrize("target", GOOD_NEXT)
def test_safe_next_url_keeps_local_paths(target):
    assert safe_next_url(target) == target


@pytest.mark.parametrize("target", [*BAD_NEXT, None])
def test_safe_next_url_refuses_everything_else(target):
    assert safe_next_url(target) is None


def post_login(client, next_value: str):
    return client.post("/auth/login", query_string={"next": next_value}, data={
        "csrf_token": csrf_token(client), "username": "alice", "password": PASSWORD,
    })


def post_register(client, next_value: str):
    return client.post("/auth/register", query_string={"next": next_value}, data={
        "csrf_token": csrf_token(client, "/auth/register"), "username": "alice",
        "email": "alice@example.com", "password": PASSWORD, "confirm": PASSWORD,
    })


@pytest.mark.parametrize("target", GOOD_NEXT)
def test_login_follows_a_local_next(client, make_user, target):
    make_user("alice")
    response = post_login(client, target)
    assert response.status_code == 302
    assert response.headers["Location"] == target


# A NUL anywhere in the request is refused before any view runs (see test_nul_bytes_*).
REDIRECTABLE_BAD_NEXT = [target for target in BAD_NEXT if "\x00" not in target]


@pytest.mark.parametrize("target", REDIRECTABLE_BAD_NEXT)
def test_login_ignores_an_offsite_or_malformed_next(client, make_user, target):
    make_user("alice")
    response = post_login(client, target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert is_logged_in(client)


@pytest.mark.parametrize("target", GOOD_NEXT)
def test_register_follows_a_local_next(client, target):
    response = post_register(client, target)
    assert response.status_code == 302
    assert response.headers["Location"] == target


@pytest.mark.parametrize("target", REDIRECTABLE_BAD_NEXT)
def test_register_ignores_an_offsite_or_malformed_next(client, app, target):
    response = post_register(client, target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert user_count(app) == 1


@pytest.mark.parametrize("path", ["/auth/login", "/auth/register"])
def test_logged_in_visit_to_login_or_register_honours_next_the_same_way(client, make_user, auth, path):
    make_user("alice")
    auth.login()
    assert client.get(path, query_string={"next": "/auth/password"}).headers["Location"] == "/auth/password"
    for target in REDIRECTABLE_BAD_NEXT:
        assert client.get(path, query_string={"next": target}).headers["Location"] == "/", target


def test_login_required_round_trip_returns_to_the_page(client, make_user):
    make_user("alice")
    response = client.get("/auth/password")
    assert response.status_code == 302
    login_page = response.headers["Location"]
    assert login_page.startswith("/auth/login?next=")
    response = client.post(login_page, data={
        "csrf_token": csrf_token(client), "username": "alice", "password": PASSWORD,
    })
    assert response.headers["Location"] == "/auth/password"


# --- security headers ----------------------------------------------------------------------


def test_policy_constant_is_the_documented_policy():
    assert CONTENT_SECURITY_POLICY == EXPECTED_CSP


@pytest.mark.parametrize("path", ["/", "/auth/login", "/auth/register"])
def test_html_pages_carry_security_headers(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert_security_headers(response)


def test_redirects_carry_security_headers(client, make_user, auth):
    make_user("alice")
    assert_security_headers(client.get("/auth/password"))  # login required
    login = auth.login()
    assert login.status_code == 302
    assert_security_headers(login)
    logout = auth.logout()
    assert logout.status_code == 302
    assert_security_headers(logout)


def test_json_responses_carry_security_headers_too(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert_security_headers(response)


# --- error pages -----------------------------------------------------------------------------


def test_unknown_url_is_a_404_page(client):
    response = client.get("/no/such/page")
    assert_error_page(response, 404, "There is nothing here.")


def test_wrong_method_is_a_405_page(client):
    response = client.get("/auth/logout")
    assert_error_page(response, 405, "That page does not accept this kind of request.")


def test_405_page_keeps_the_allow_header(client):
    response = client.get("/auth/logout")
    assert response.status_code == 405
    assert "POST" in response.headers.get("Allow", "")


def test_error_page_shows_who_is_logged_in(client, make_user, auth):
    make_user("alice")
    auth.login()
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Log out" in response.get_data(as_text=True)


@pytest.mark.parametrize("config_overrides", [{"MAX_CONTENT_LENGTH": 1024}])
def test_too_large_request_is_a_413_page(client, app, make_user):
    make_user("alice")
    response = client.post("/auth/login", data={
        "csrf_token": csrf_token(client), "username": "alice", "password": "x" * 4096,
    })
    assert_error_page(response, 413, "What you sent is too large: this site accepts up to 1 KB "
                                     "at once, and images of up to 5 MB each.")
    assert not is_logged_in(client)
    # A request under the limit still works.
    assert client.post("/auth/login", data={
        "csrf_token": csrf_token(client), "username": "alice", "password": PASSWORD,
    }).status_code == 302


@pytest.mark.parametrize("config_overrides", [{"LOGIN_RATE_LIMIT": "2 per minute"}])
def test_too_many_requests_is_a_429_page(client):
    def attempt():
        return client.post("/auth/login", data={
            "csrf_token": csrf_token(client), "username": "nobody", "password": "wrong password",
        })

    assert attempt().status_code == 200
    assert attempt().status_code == 200
    response = attempt()
    assert_error_page(response, 429, "Too many requests. Please wait a little and try again.")
    assert int(response.headers["Retry-After"]) > 0
    # The limit is on POST only: the form can still be shown.
    assert client.get("/auth/login").status_code == 200


def flushed_then_failed():
    db.session.add(User(username="ghost", email="ghost@example.com", password_hash="x"))
    db.session.flush()
    raise RuntimeError("secret internal detail")


def failed_flush():
    """A flush the database refuses: on PostgreSQL this aborts the transaction, which must be
    rolled back before the error page can query anything (such as the current user)."""
    db.session.add(User(username="ghost", email="ghost@example.com", password_hash="x"))
    db.session.flush()
    db.session.add(User(username="GHOST", email="other@example.com", password_hash="x"))
    db.session.flush()  # IntegrityError: username_key is unique
    raise AssertionError("not reached")


@pytest.mark.parametrize("view, error", [(flushed_then_failed, RuntimeError),
                                         (failed_flush, IntegrityError)])
def test_unexpected_exception_is_a_500_page_and_rolls_back(app, client, make_user, auth, caplog,
                                                           view, error):
    app.add_url_rule("/boom", "boom", view)  # before the app's first request
    app.config["PROPAGATE_EXCEPTIONS"] = False  # TESTING would re-raise instead
    make_user("alice")
    auth.login()

    with caplog.at_level(logging.ERROR):
        response = client.get("/boom")

    assert_error_page(response, 500, "Something went wrong on our side.")
    html = response.get_data(as_text=True)
    for detail in ("RuntimeError", "IntegrityError", "secret internal detail", "ghost"):
        assert detail not in html
    assert "alice" in html, "the page renders with the logged-in member after the rollback"
    logged = [record.exc_info[0] for record in caplog.records if record.exc_info]
    assert logged == [error], "the exception is logged, with its traceback, once"

    with app.app_context():
        assert db.session.scalar(select(User).where(User.username_key == "ghost")) is None
        assert user_count(app) == 1
    assert client.get("/").status_code == 200
    assert is_logged_in(client)


# --- cookies -------------------------------------------------------------------------------


def cookie_attributes(response, name: str) -> set[str]:
    """The lower-cased attributes of the Set-Cookie header for ``name`` (``path=/`` etc.)."""
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(name + "="):
            return {part.strip().lower() for part in header.split(";")[1:]}
    raise AssertionError(f"no Set-Cookie for {name}")


def test_session_cookie_is_httponly_and_samesite_lax(client, make_user, auth):
    make_user("alice")
    response = auth.login()
    assert response.status_code == 302
    attributes = cookie_attributes(response, "session")
    assert "httponly" in attributes
    assert "samesite=lax" in attributes


def test_remember_cookie_is_httponly_and_samesite_lax(client, make_user, auth):
    make_user("alice")
    response = auth.login(remember=True)
    attributes = cookie_attributes(response, "remember_token")
    assert "httponly" in attributes
    assert "samesite=lax" in attributes


@pytest.mark.parametrize("config_overrides", [{"SESSION_COOKIE_SECURE": True}])
def test_cookies_are_secure_when_configured(client, make_user, auth):
    make_user("alice")
    response = auth.login(remember=True)
    assert "secure" in cookie_attributes(response, "session")
    assert "secure" in cookie_attributes(response, "remember_token")


@pytest.mark.parametrize("where", ["query", "form", "path"])
def test_nul_bytes_are_refused_with_a_400_page(client, make_user, app, where):
    """PostgreSQL cannot store or compare NUL; it is refused at the door, before any view."""
    make_user("alice")
    if where == "query":
        response = client.get("/users/alice", query_string={"page": "1\x00"})
    elif where == "path":
        response = client.get("/users/al%00ice")
    else:
        response = client.post("/auth/login", data={"csrf_token": csrf_token(client),
                                                     "username": "al\x00ice", "password": "x"})
    assert response.status_code == 400
    assert "could not be understood" in response.get_data(as_text=True)
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_uploaded_files_are_held_no_larger_than_the_image_limit(app) -> None:
    """However large the file in a body, the request keeps UPLOAD_MAX_BYTES + 1 bytes of it
    (enough to know it is too big), not the whole of it in memory or on disk."""
    app.config["UPLOAD_MAX_BYTES"] = 1000
    body = b"\x00\x01" * 200_000
    with app.test_request_context("/", method="POST", content_type="multipart/form-data",
                                  data={"name": "kept", "image": (io.BytesIO(body), "big.jpg")}):
        upload = request.files["image"]
        assert request.form["name"] == "kept"
        assert upload.read() == body[:1001]
        upload.stream.seek(0, io.SEEK_END)
        assert upload.stream.tell() == 1001
