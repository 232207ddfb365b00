"""The site keeps serving when Redis goes away (DESIGN.md, "Databases and services").

A real ``redis-server`` is started on a free port for each test and killed in the middle of
it: login and registration must keep working (rate limits fall back to this process's
memory, the database-backed login throttle still holds) and ``/healthz`` must say so.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import delete

from blog import create_app
from blog.accounts.models import LoginAttempt
from blog.extensions import db, limiter
from tests.accounts.conftest import is_logged_in, register
from tests.conftest import PASSWORD, csrf_token, dispose, make_config

REDIS_SERVER = shutil.which("redis-server")

pytestmark = pytest.mark.skipif(REDIS_SERVER is None,
                                reason="redis-server is not installed (apt-get install redis-server)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A throwaway redis-server of this test's own, which the test may kill."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        self.kill()
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(autouse=True)
def limiter_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """``blog.extensions.limiter`` is one object per process: whether it thinks its storage is
    dead is put back afterwards, so later tests' apps start from a live storage."""
    monkeypatch.setattr(limiter, "_storage_dead", limiter._storage_dead)


@pytest.fixture
def extra_settings() -> dict[str, object]:
    """Parametrize to add settings to the app's."""
    return {}


@pytest.fixture
def config_overrides(redis_server: RedisServer, extra_settings: dict[str, object]) -> dict[str, object]:
    # RATELIMIT_STORAGE_URI None: derived from REDIS_URL, as in production.
    return {"REDIS_URL": redis_server.url, "RATELIMIT_STORAGE_URI": None, **extra_settings}


def logout(client) -> None:
    assert client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/")}).status_code == 302


def login(client, username: str, password: str = PASSWORD):
    return client.post("/auth/login", data={"csrf_token": csrf_token(client), "username": username,
                                            "password": password})


def test_login_and_registration_survive_redis_going_away(app, client, redis_server):
    assert app.config["RATELIMIT_STORAGE_URI"] == redis_server.url
    health = client.get("/healthz").get_json()
    assert (health["status"], health["database"], health["redis"]) == ("ok", "ok", "ok")
    # With Redis up, the limits are counted there.
    assert register(client, "bob", "bob@example.com").status_code == 302
    logout(client)
    assert login(client, "bob").status_code == 302
    logout(client)
    assert redis.Redis.from_url(redis_server.url).keys("*"), "no rate-limit counters in Redis"

    redis_server.kill()

    response = client.get("/healthz")
    assert response.status_code == 200
    health = response.get_json()
    assert (health["status"], health["database"], health["redis"]) == ("ok", "ok", "down")
    response = register(client, "carol", "carol@example.com")
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    assert is_logged_in(client)
    logout(client)
    assert login(client, "bob").status_code == 302
    assert is_logged_in(client)
    logout(client)
    assert login(client, "carol").status_code == 302
    assert client.get("/healthz").get_json()["redis"] == "down"


@pytest.mark.parametrize("extra_settings", [{"LOGIN_RATE_LIMIT": "3 per minute",
                                             "LOGIN_MAX_FAILURES_PER_ACCOUNT": 100}])
def test_rate_limits_fall_back_to_memory(app, client, redis_server):
    """Redis is gone, yet login POSTs are still limited: counted in this process's memory."""
    assert app.config["RATELIMIT_STORAGE_URI"] == redis_server.url
    redis_server.kill()
    statuses = [login(client, "nobody", "wrong password").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


@pytest.mark.parametrize("extra_settings", [{"LOGIN_MAX_FAILURES_PER_ACCOUNT": 2}])
def test_database_login_throttle_holds_without_redis(app, client, make_user, redis_server):
    make_user("alice")
    redis_server.kill()
    statuses = [login(client, "alice", "wrong password").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_the_site_starts_and_serves_with_redis_already_down(database_url):
    """A Redis that is down when the app starts: pages, login form posts and /healthz answer."""
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app = create_app(make_config(database_url, REDIS_URL=url, RATELIMIT_STORAGE_URI=None))
    try:
        client = app.test_client()
        assert client.get("/auth/login").status_code == 200
        assert login(client, "nobody", "wrong password").status_code == 200
        response = client.get("/healthz")
        assert response.status_code == 200
        health = response.get_json()
        assert (health["status"], health["database"], health["redis"]) == ("ok", "ok", "down")
    finally:
        # This app commits for real: remove the login attempt it recorded.
        with app.app_context():
            db.session.execute(delete(LoginAttempt).where(LoginAttempt.account_key == "name:nobody"))
            db.session.commit()
        dispose(app)


@pytest.mark.parametrize("extra_settings", [{"JOBS_IMMEDIATE": False}])
def test_an_order_is_placed_when_the_job_queue_is_gone(app, client, redis_server, caplog, make_user,
                                                        make_product, make_shipping):
    """Jobs wait in Redis; with Redis killed the order still commits with its email in the
    outbox (queued), the lost enqueue is logged for the sweep to make good, and /healthz
    answers 200 saying it cannot read the queue."""
    from sqlalchemy import select

    from blog.mail.models import EmailMessage
    from tests.conftest import ShopActions

    make_user("alice")
    mug, post = make_product("Mug", [("", "8.00", 5)]), make_shipping("Post", "5.00")
    assert login(client, "alice").status_code == 302
    shop = ShopActions(client)
    shop.add(mug, 1)
    redis_server.kill()
    assert shop.checkout(post).status_code == 302
    with app.app_context():
        rows = db.session.execute(select(EmailMessage.kind, EmailMessage.status)).all()
    assert [tuple(row) for row in rows] == [("order_confirmation", "queued")]
    assert any("could not enqueue" in record.getMessage() for record in caplog.records)
    response = client.get("/healthz")
    assert response.status_code == 200
    jobs = response.get_json()["jobs"]
    assert jobs["pending"] is None and jobs["mail"]["waiting"] == 1
