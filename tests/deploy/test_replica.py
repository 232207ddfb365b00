"""Read replicas against a real PostgreSQL streaming replica (``streaming_replica``: a hot
standby made with ``pg_basebackup`` on a loopback port; see tests/deploy/conftest.py).

The app runs on the real engines (``committed_app``): the primary commits, the replica replays
it, and a log of each engine's statements shows where every request read. Pausing the
replica's replay makes it lag on purpose, so what a page shows tells where it was read too.
Skipped unless TEST_DATABASE_URL is PostgreSQL and pg_basebackup is installed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InternalError, OperationalError

from blog import create_app
from blog.accounts import services as accounts
from blog.accounts.models import AUTHOR
from blog.extensions import db
from blog.posts import services as posts
from blog.replica import REPLICA_BIND
from tests.conftest import PASSWORD, AuthActions, csrf_token, dispose, make_config, text_of
from tests.deploy.conftest import StreamingReplica, engine_log, free_port

pytestmark = pytest.mark.slow

WRITES = ("INSERT", "UPDATE", "DELETE")


@pytest.fixture
def config_overrides(streaming_replica: StreamingReplica) -> dict[str, Any]:
    # No cache: every page reads the database, so the log shows where it read.
    return {"DATABASE_REPLICA_URL": streaming_replica.url, "REPLICA_READ_YOUR_WRITES_SECONDS": 30,
            "CACHE_TYPE": "NullCache", "CACHE_NO_NULL_WARNING": True}


def _author(app: Flask, username: str = "alice") -> Any:
    with app.app_context():
        return accounts.create_user(username, f"{username}@example.com", PASSWORD, roles=(AUTHOR,))


def _write(client: Any, title: str) -> Any:
    return client.post("/posts/new", data={"csrf_token": csrf_token(client, "/posts/new"),
                                           "title": title, "body": "Written just now.", "tags": "",
                                           "publish": "y"})


def _writes(statements: list[str]) -> list[str]:
    return [sql for sql in statements if sql.lstrip().upper().startswith(WRITES)]


def test_the_replica_is_a_hot_standby(committed_app, streaming_replica):
    with committed_app.app_context():
        with db.engines[REPLICA_BIND].connect() as connection:
            assert connection.scalar(text("SELECT pg_is_in_recovery()")) is True
            # Read-only: a write there fails, so none can slip through unnoticed.
            with pytest.raises((InternalError, OperationalError), match="read-only"):
                connection.execute(text("CREATE TEMPORARY TABLE nope (id int)"))
        with db.engines[None].connect() as connection:
            assert connection.scalar(text("SELECT pg_is_in_recovery()")) is False


def test_a_list_page_reads_from_the_replica(committed_app, streaming_replica):
    alice = _author(committed_app)
    with committed_app.app_context():
        posts.create_post(alice, "Replicated", "Body.", "news", True)
    streaming_replica.catch_up()
    client = committed_app.test_client()
    for path in ("/", "/tags/news", "/users/alice", "/feed.atom", "/sitemap.xml", "/shop/"):
        with engine_log(committed_app) as log:
            response = client.get(path)
        assert response.status_code == 200, path
        assert log.replica and not log.primary, (path, log.entries)
        assert all(sql.lstrip().upper().startswith("SELECT") for sql in log.replica)
    assert "Replicated" in text_of(client.get("/"))
    with engine_log(committed_app) as log:
        assert client.get("/posts/replicated").status_code == 200  # not a list: the primary
    assert log.primary and not log.replica


def test_a_member_sees_their_post_at_once_while_visitors_read_the_lagging_replica(
        committed_app, streaming_replica):
    _author(committed_app)
    streaming_replica.catch_up()
    member, visitor = committed_app.test_client(), committed_app.test_client()
    auth = AuthActions(member)
    with streaming_replica.paused():  # the replica lags from here on
        with engine_log(committed_app) as log:
            assert auth.login("alice").status_code == 302
            written = _write(member, "Hot off the press")
        assert written.status_code == 302
        # Writes ran on the primary only; the replica (read-only) saw no statement at all.
        assert _writes(log.primary) and not log.replica

        with engine_log(committed_app) as log:
            page = member.get(written.headers["Location"])
            home = member.get("/")
        assert "Hot off the press" in text_of(page)
        assert "Hot off the press" in text_of(home) and "Log out" in text_of(home)
        assert log.primary and not log.replica

        with engine_log(committed_app) as log:
            seen = visitor.get("/")
        assert seen.status_code == 200
        assert "Hot off the press" not in text_of(seen)  # the replica has not replayed it yet
        assert log.replica and not log.primary
    streaming_replica.catch_up()
    assert "Hot off the press" in text_of(visitor.get("/"))


def test_a_member_reads_the_replica_again_after_the_window(committed_app, streaming_replica):
    committed_app.config["REPLICA_READ_YOUR_WRITES_SECONDS"] = 1
    _author(committed_app)
    member = committed_app.test_client()
    AuthActions(member).login("alice")
    assert _write(member, "Soon everywhere").status_code == 302
    with engine_log(committed_app) as log:
        member.get("/")
    assert log.primary and not log.replica
    streaming_replica.catch_up()
    time.sleep(1.1)
    with engine_log(committed_app) as log:
        home = text_of(member.get("/"))
    # The login check and the list, both from the replica, which has replayed both writes.
    assert "Soon everywhere" in home and "Log out" in home
    assert log.replica and not log.primary


def test_a_replica_that_is_down_is_passed_by(streaming_replica, database_url, outbox, caplog):
    """Nothing listens on the replica's port: pages are served from the primary, with one
    warning, and the process leaves the replica alone for REPLICA_RETRY_SECONDS."""
    down = make_url(streaming_replica.url).set(port=free_port()).render_as_string(hide_password=False)
    app = create_app(make_config(database_url, MAIL_OUTBOX_FOLDER=str(outbox), DATABASE_REPLICA_URL=down,
                                 CACHE_TYPE="NullCache", CACHE_NO_NULL_WARNING=True))
    try:
        client = app.test_client()
        with caplog.at_level(logging.WARNING, logger="inkwell.replica"):
            for _ in range(3):
                with engine_log(app) as log:
                    assert client.get("/").status_code == 200
                assert log.primary and not log.replica
        assert len([record for record in caplog.records if record.name == "inkwell.replica"]) == 1
    finally:
        dispose(app)
