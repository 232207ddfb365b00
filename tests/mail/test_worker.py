"""Real `flask worker` processes on a real queue (the SQLite file, or Redis) and a real SMTP server: an
order placed through the pages reaches the customer and the admin, a refused message is
retried until it goes, and two workers handed the same messages deliver each exactly once."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from blog import jobs
from blog.accounts import services as accounts
from blog.accounts.models import ADMIN
from blog.database_session import transaction
from blog.extensions import db
from blog.mail import delivery
from blog.mail.models import EmailMessage
from tests.conftest import PASSWORD, AuthActions, ShopActions, create_product, create_shipping, csrf_token
from tests.mail.conftest import WORKER_SECRET, SMTPServer, outbox_rows, smtp_config, worker_processes
from tests.mail.test_outbox import _queue_plain
from tests.test_redis_down import REDIS_SERVER, RedisServer

pytestmark = pytest.mark.slow

SECRET = WORKER_SECRET


@pytest.fixture(params=["sqlite", "redis"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Where the jobs wait: the SQLite file (no REDIS_URL) or a Redis server of the test's own."""
    if request.param == "sqlite":
        yield {"JOBS_DATABASE": str(tmp_path / "jobs.sqlite3"), "REDIS_URL": None}
        return
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer()
    try:
        yield {"JOBS_DATABASE": None, "REDIS_URL": server.url, "RATELIMIT_STORAGE_URI": None}
    finally:
        server.kill()


@pytest.fixture
def config_overrides(smtp: SMTPServer, queue: dict[str, Any]) -> dict[str, Any]:
    """The test's app enqueues into the workers' queue, sending to ``smtp``."""
    return smtp_config(smtp, JOBS_IMMEDIATE=False, MAIL_RETRY_DELAY=1,
                       SITE_URL="https://ink.example", SECRET_KEY=SECRET, **queue)


@pytest.fixture
def start_worker(committed_app: Flask, database_url: str,
                 tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    """``start_worker()`` runs `flask worker` on the test's database, queue and SMTP server."""
    with worker_processes(committed_app, database_url, tmp_path, FLASK_MAIL_RETRY_DELAY="1") as start:
        yield start


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_worker_delivers_an_order_s_emails_retrying_a_refusal(
        committed_app: Flask, smtp: SMTPServer, start_worker: Any) -> None:
    app = committed_app
    with app.app_context():
        accounts.create_user("alice", "alice@example.com", PASSWORD)
        accounts.create_user("root", "root@example.com", PASSWORD, roles=(ADMIN,))
        mug, post = create_product("Mug", [("", "8.00", 5)]), create_shipping("Post", "5.00")
    client = app.test_client()
    AuthActions(client).login("alice")
    shop = ShopActions(client)
    shop.add(mug, 2)
    smtp.refuse = ["421 4.7.0 Too busy, come back later"]  # the first message, once
    start_worker()
    assert shop.checkout(post).status_code == 302  # in the queue file once this commits

    messages = smtp.wait_for(2)
    assert sorted(m["To"] for m in messages) == ["alice@example.com", "root@example.com"]
    wait_until(lambda: all(row.status == "sent" for row in outbox_rows(app)))
    rows = outbox_rows(app)
    assert sorted(row.attempts for row in rows) == [1, 2]  # one was refused, then sent
    assert all(row.last_error == "" for row in rows)
    assert all("https://ink.example/shop/orders/" in m.get_body(("plain",)).get_content()
               for m in messages if m["To"] == "alice@example.com")


def test_two_workers_deliver_each_message_once(committed_app: Flask, smtp: SMTPServer,
                                               start_worker: Any) -> None:
    """Each message's job is in the queue four times, and two worker processes (two threads
    each) take jobs at once: the claim lets exactly one send each message."""
    app = committed_app
    with app.app_context():
        alice = accounts.create_user("alice", "alice@example.com", PASSWORD)
        with transaction():
            ids = [_queue_plain(alice.email, f"Message {n}").id for n in range(12)]
        for _ in range(3):
            for message_id in ids:
                delivery.deliver_email(message_id)  # not inline: into the queue file
        assert jobs.huey.pending_count() == 48
    start_worker()
    start_worker()
    smtp.wait_for(12)
    wait_until(lambda: jobs.huey.pending_count() == 0)
    time.sleep(1)  # any second delivery would have arrived by now
    assert sorted(m["Subject"] for m in smtp.messages) == sorted(f"Message {n}" for n in range(12))
    with app.app_context():
        rows = db.session.execute(select(EmailMessage.status, EmailMessage.attempts)).all()
    assert [tuple(row) for row in rows] == [("sent", 1)] * 12


def test_the_reset_journey_through_the_pages_and_a_worker(committed_app: Flask, smtp: SMTPServer,
                                                          start_worker: Any) -> None:
    """Register, log out, ask for a reset on the page, get the link by SMTP from the worker,
    follow it, set a password, log in with it."""
    start_worker()
    client = committed_app.test_client()
    data = {"csrf_token": csrf_token(client, "/auth/register"), "username": "newbie",
            "email": "newbie@example.com", "password": PASSWORD, "confirm": PASSWORD}
    assert client.post("/auth/register", data=data).status_code == 302
    AuthActions(client).logout()
    assert client.post("/auth/reset", data={"csrf_token": csrf_token(client, "/auth/reset"),
                                            "email": "newbie@example.com"}).status_code == 302
    # Two threads deliver: in either order.
    by_subject = {str(m["Subject"]): m for m in smtp.wait_for(2)}
    assert sorted(by_subject) == ["Confirm your email address for Inkwell", "Reset your password"]
    reset = by_subject["Reset your password"]
    link = re.search(r"https://ink\.example(/auth/reset/\S+)", reset.get_body(("plain",)).get_content())
    assert link
    new_password = "a quiet lighthouse at dusk"
    response = client.post(link.group(1), data={"csrf_token": csrf_token(client, link.group(1)),
                                                 "new_password": new_password, "confirm": new_password})
    assert response.status_code == 302
    AuthActions(client).logout()
    assert AuthActions(client).login("newbie", new_password).status_code == 302
    assert smtp.wait_for(3)[2]["Subject"] == "Your password was changed"
