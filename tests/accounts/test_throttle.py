"""Brute-force protection: failed logins are throttled per account and per client address,
in the database, so the throttle holds across gunicorn workers."""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from blog.accounts import services
from blog.accounts.models import LoginAttempt
from blog.database import utcnow
from blog.database_session import transaction
from blog.extensions import db
from tests.conftest import PASSWORD, TEST_REDIS_URL, csrf_token

REPOSITORY = Path(__file__).resolve().parents[2]
THROTTLED = "Too many failed login attempts."


def login_as(client, username, password, ip="127.0.0.1"):
    client.environ_base["REMOTE_ADDR"] = ip
    return client.post("/auth/login", data={"csrf_token": csrf_token(client), "username": username,
                                            "password": password})


@pytest.mark.parametrize("config_overrides", [{"LOGIN_MAX_FAILURES_PER_ACCOUNT": 3}])
def test_account_is_throttled_after_the_limit(client, make_user, app):
    make_user("alice")
    make_user("bob")
    for _ in range(3):
        response = login_as(client, "alice", "wrong password")
        assert response.status_code == 200
        assert services.INVALID_CREDENTIALS in response.get_data(as_text=True)
    response = login_as(client, "alice", "wrong password")
    assert response.status_code == 429
    assert THROTTLED in response.get_data(as_text=True)
    # Flask-Limiter re-states the header relative to its clock, so allow a second's rounding.
    window = app.config["LOGIN_THROTTLE_WINDOW_SECONDS"]
    assert window - 2 <= int(response.headers["Retry-After"]) <= window
    # While throttled, even the right password is refused: guessing gains nothing.
    assert login_as(client, "alice", PASSWORD).status_code == 429
    # Other accounts are unaffected, from the same address.
    assert login_as(client, "bob", PASSWORD).status_code == 302


@pytest.mark.parametrize("config_overrides", [{"LOGIN_MAX_FAILURES_PER_ACCOUNT": 4}])
def test_username_and_email_count_against_the_same_account(client, make_user):
    make_user("alice")
    for identifier in ("alice", "ALICE@example.com", "Alice", "alice@example.com"):
        assert login_as(client, identifier, "wrong password").status_code == 200
    assert login_as(client, "alice@example.com", "wrong password").status_code == 429


@pytest.mark.parametrize("config_overrides", [{"LOGIN_MAX_FAILURES_PER_ADDRESS": 4,
                                               "LOGIN_MAX_FAILURES_PER_ACCOUNT": 100}])
def test_address_is_throttled_across_accounts(client, make_user, app):
    make_user("alice")
    for name in ("a1", "a2", "a3", "a4"):
        assert login_as(client, name, "wrong password", ip="203.0.113.9").status_code == 200
    assert login_as(client, "alice", PASSWORD, ip="203.0.113.9").status_code == 429
    other = app.test_client()
    assert login_as(other, "alice", PASSWORD, ip="198.51.100.7").status_code == 302


@pytest.mark.parametrize("config_overrides", [{"LOGIN_MAX_FAILURES_PER_ACCOUNT": 2}])
def test_attempts_older_than_the_window_do_not_count(client, make_user, app):
    user = make_user("alice")
    window = app.config["LOGIN_THROTTLE_WINDOW_SECONDS"]
    with app.app_context(), transaction() as session:
        for _ in range(5):
            session.add(LoginAttempt(account_key=f"user:{user.id}", ip_address="127.0.0.1",
                                     created_at=utcnow() - timedelta(seconds=window + 60)))
    assert login_as(client, "alice", "wrong password").status_code == 200
    with app.app_context():  # the stale rows were purged on the way
        assert db.session.scalar(select(func.count()).select_from(LoginAttempt)) == 1


@pytest.mark.parametrize("config_overrides", [{"RATELIMIT_ENABLED": False,
                                               "LOGIN_MAX_FAILURES_PER_ACCOUNT": 1}])
def test_throttle_can_be_switched_off(client, make_user, app):
    make_user("alice")
    for _ in range(5):
        assert login_as(client, "alice", "wrong password").status_code == 200
    assert login_as(client, "alice", PASSWORD).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LoginAttempt)) == 0


@pytest.mark.parametrize("config_overrides", [{"LOGIN_RATE_LIMIT": "3 per minute",
                                               "LOGIN_MAX_FAILURES_PER_ACCOUNT": 100}])
def test_login_posts_are_rate_limited_per_address(client, make_user):
    make_user("alice")
    statuses = [login_as(client, "alice", "wrong password").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert client.get("/auth/login").status_code == 200  # only POSTs count


@pytest.mark.skipif(not TEST_REDIS_URL, reason="TEST_REDIS_URL not set (.ci/run sets it)")
def test_rate_limits_shared_through_redis_between_app_servers(database_url, make_user):
    """Two app instances (two hosts) with REDIS_URL share one limit."""
    from blog import create_app
    from tests.conftest import dispose, make_config

    prefix = f"inkwell-test-{uuid.uuid4().hex}"
    settings = make_config(database_url, REDIS_URL=TEST_REDIS_URL, RATELIMIT_STORAGE_URI=None,
                           RATELIMIT_KEY_PREFIX=prefix, LOGIN_RATE_LIMIT="2 per minute")
    first, second = create_app(settings), create_app(settings)
    try:
        assert first.config["RATELIMIT_STORAGE_URI"] == TEST_REDIS_URL
        statuses = [login_as(host.test_client(), "nobody", "wrong password").status_code
                    for host in (first, second, first)]
        assert statuses == [200, 200, 429]
    finally:
        dispose(first)
        dispose(second)


# --- several gunicorn workers ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Browser:
    """A minimal browser with its own cookie jar, speaking HTTP to a real server."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect())

    def request(self, path: str, data: dict | None = None) -> tuple[int, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with self.opener.open(self.base + path, body, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def login(self, username: str, password: str) -> int:
        _, html = self.request("/auth/login")
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
        status, _ = self.request("/auth/login", {"csrf_token": token, "username": username,
                                                 "password": password})
        return status


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def gunicorn(committed_app, database_url, tmp_path):
    """``gunicorn -w 4 wsgi:app`` on the test database, as in production (its instance folder,
    with the job queue and outbox, in the test's own directory)."""
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url, SECRET_KEY="gunicorn-test-secret-key-0123",
               INKWELL_INSTANCE_PATH=str(tmp_path / "instance"),
               FLASK_SESSION_COOKIE_SECURE="false", FLASK_BCRYPT_ROUNDS="4",
               FLASK_LOGIN_RATE_LIMIT='"1000 per minute"', FLASK_SQLITE_BUSY_TIMEOUT_MS="30000")
    env.pop("REDIS_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "4", "--bind", f"127.0.0.1:{port}",
         "--log-level", "warning", "wsgi:app"],
        cwd=REPOSITORY, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                output = server.stdout.read().decode() if server.poll() is not None else ""
                server.kill()
                pytest.fail(f"gunicorn did not start: {output}")
            time.sleep(0.2)
    yield base
    server.terminate()
    server.wait(20)
    server.stdout.close()


@pytest.mark.slow
def test_forty_guesses_from_four_workers_are_throttled(committed_app, gunicorn):
    with committed_app.app_context():
        services.create_user("victim", "victim@example.com", PASSWORD)
        services.create_user("bystander", "bystander@example.com", PASSWORD)
    limit = committed_app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]

    def guess_ten_times(worker: int) -> list[int]:
        browser = Browser(gunicorn)
        return [browser.login("victim", f"guess {worker}-{n}") for n in range(10)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = [status for batch in pool.map(guess_ten_times, range(4)) for status in batch]

    assert len(statuses) == 40
    assert set(statuses) <= {200, 429}, statuses  # wrong password or throttled, never a 500
    checked = statuses.count(200)
    assert 1 <= checked <= limit, f"{checked} guesses were checked against a limit of {limit}"
    assert statuses.count(429) >= 40 - limit
    # The victim's real password no longer helps during the lockout...
    assert Browser(gunicorn).login("victim", PASSWORD) == 429
    # ...while another member logs in from the same address.
    assert Browser(gunicorn).login("bystander", PASSWORD) == 302
