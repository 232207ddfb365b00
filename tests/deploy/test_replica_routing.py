"""Which database each request reads, with DATABASE_REPLICA_URL (blog/replica.py).

No real replica here: the "primary" and the "replica" are two SQLite files, both copies of the
migrated schema, so the replica is a snapshot that never sees what the primary commits after it.
A page read from the replica therefore shows the old state, and a page read from the primary
the new one; a log of every statement each engine ran tells the rest. The same rules against a
real PostgreSQL streaming replica: tests/deploy/test_replica.py.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
from flask import Flask, jsonify
from sqlalchemy import func, select

from blog import create_app
from blog.accounts import services as accounts
from blog.accounts.models import AUTHOR
from blog.database_session import transaction
from blog.extensions import db
from blog.posts import fragments
from blog.posts import services as posts
from blog.posts.models import Post, Tag
from blog.replica import REPLICA_BIND, WROTE_AT, RoutingSession, read_from_replica, reads_from_replica
from tests.conftest import TEST_REDIS_URL, AuthActions, csrf_token, dispose, make_config, text_of
from tests.deploy.conftest import engine_log, snapshot_sqlite
from tests.deploy.hosts import forget_keys


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database with the schema, whatever database the suite runs on."""
    path = tmp_path_factory.mktemp("replica-routing") / "migrated.sqlite3"
    app = create_app(make_config(f"sqlite:///{path}"))
    with app.app_context():
        flask_migrate.upgrade()
    dispose(app)
    return path


class Site:
    """A site whose replica is a snapshot of its primary."""

    def __init__(self, app: Flask, primary: Path, replica: Path) -> None:
        self.app, self.primary, self.replica = app, primary, replica

    def catch_up(self) -> None:
        """Let the replica catch up with everything the primary has committed."""
        with self.app.app_context():
            db.engines[REPLICA_BIND].dispose()
        snapshot_sqlite(self.primary, self.replica)

    def member(self, username: str = "alice") -> Any:
        with self.app.app_context():
            return accounts.create_user(username, f"{username}@example.com", "correct horse battery",
                                        roles=(AUTHOR,))

    def post(self, author: Any, title: str) -> Post:
        with self.app.app_context():
            return posts.create_post(author, title, "Some text.", "", True)

    def client(self) -> Any:
        return self.app.test_client()


def _probe_routes(app: Flask) -> None:
    """Views for what no page of the site does yet: a service transaction inside a replica view."""

    @app.route("/_probe/tags", methods=["GET", "POST"])
    @reads_from_replica
    def probe_tags() -> Any:
        def tags() -> int | None:
            return db.session.scalar(select(func.count()).select_from(Tag))

        before = tags()
        with transaction() as session:
            inside = tags()  # a service reads, then writes: both on the primary
            session.add(Tag(name=f"probe-{time.monotonic_ns()}"))
        return jsonify(before=before, inside=inside, after=tags())

    @app.route("/_probe/count", methods=["GET", "POST"])
    @reads_from_replica
    def probe_count() -> Any:
        return jsonify(tags=db.session.scalar(select(func.count()).select_from(Tag)))


@pytest.fixture
def make_site(migrated: Path, tmp_path: Path, outbox: Path) -> Iterator[Callable[..., Site]]:
    apps: list[Flask] = []

    def factory(replica_url: str | None = None, **overrides: Any) -> Site:
        primary, replica = tmp_path / f"primary{len(apps)}.sqlite3", tmp_path / f"replica{len(apps)}.sqlite3"
        snapshot_sqlite(migrated, primary)
        snapshot_sqlite(migrated, replica)
        config = make_config(f"sqlite:///{primary}", MAIL_OUTBOX_FOLDER=str(outbox),
                             DATABASE_REPLICA_URL=replica_url or f"sqlite:///{replica}",
                             REPLICA_READ_YOUR_WRITES_SECONDS=60,
                             CACHE_TYPE="NullCache", CACHE_NO_NULL_WARNING=True)
        config.update(overrides)
        app = create_app(config)
        _probe_routes(app)
        apps.append(app)
        return Site(app, primary, replica)

    yield factory
    for app in apps:
        dispose(app)


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    return make_site()


def test_a_replica_view_reads_the_replica_and_an_other_view_the_primary(site):
    alice = site.member()
    site.post(alice, "Fresh news")  # on the primary only: the replica is older
    client = site.client()
    with engine_log(site.app) as log:
        home = client.get("/")
    assert home.status_code == 200
    assert "Fresh news" not in text_of(home)  # the replica's (stale) copy
    assert log.replica and not log.primary
    assert all(sql.lstrip().upper().startswith("SELECT") for sql in log.replica)

    with engine_log(site.app) as log:
        page = client.get("/posts/fresh-news")  # not a replica view
    assert page.status_code == 200 and "Fresh news" in text_of(page)
    assert log.primary and not log.replica

    site.catch_up()
    assert "Fresh news" in text_of(client.get("/"))


@pytest.mark.parametrize("path", ["/", "/feed.atom", "/tags/anything", "/users/alice",
                                  "/users/alice/feed.atom", "/sitemap.xml", "/shop/",
                                  "/shop/products/nothing"])
def test_every_marked_view_reads_the_replica(site, path):
    site.member()
    site.catch_up()
    with engine_log(site.app) as log:
        response = site.client().get(path)
    assert response.status_code in (200, 404)
    assert log.replica and not log.primary


def test_writes_and_reads_after_them_go_to_the_primary(site):
    site.member()
    site.catch_up()  # alice exists on the replica too: logging in needs no fresh data
    client = site.client()
    token = csrf_token(client, "/auth/login")
    with engine_log(site.app) as log:
        response = client.post("/auth/login", data={"csrf_token": token, "username": "alice",
                                                      "password": "correct horse battery"})
    assert response.status_code == 302
    assert log.primary and not log.replica  # a POST never touches the replica

    token = csrf_token(client, "/posts/new")
    with engine_log(site.app) as log:
        response = client.post("/posts/new", data={"csrf_token": token, "title": "Mine", "body": "Text",
                                                   "tags": "", "publish": "y"})
    assert response.status_code == 302
    assert any(sql.lstrip().upper().startswith("INSERT") for sql in log.primary)
    assert not log.replica

    with client.session_transaction() as cookie:
        assert isinstance(cookie[WROTE_AT], float)
    with engine_log(site.app) as log:
        home = client.get("/")  # a replica view, but alice has just written
    assert "Mine" in text_of(home)
    assert log.primary and not log.replica


def test_read_your_writes_ends_after_its_window(site):
    site.member()
    client = site.client()
    AuthActions(client).login("alice")  # a write: the login record
    # The window is read on each request: a long one first, so a slow machine cannot end it
    # before this read; then one already past.
    site.app.config["REPLICA_READ_YOUR_WRITES_SECONDS"] = 60
    with engine_log(site.app) as log:
        assert "Log out" in text_of(client.get("/"))
    assert log.primary and not log.replica
    site.app.config["REPLICA_READ_YOUR_WRITES_SECONDS"] = 0.3
    time.sleep(0.35)
    with engine_log(site.app) as log:
        home = text_of(client.get("/"))
    assert log.replica and not log.primary
    # The snapshot predates her login: on the replica, her login record does not exist yet.
    assert "Log out" not in home
    site.catch_up()
    assert "Log out" in text_of(client.get("/"))


def test_a_visitor_without_a_session_gets_no_cookie_from_routing(site):
    site.member()
    site.catch_up()
    response = site.client().get("/")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def test_a_service_transaction_in_a_replica_view_runs_on_the_primary(site):
    with site.app.app_context(), transaction() as session:
        session.add(Tag(name="only-on-the-primary"))
    client = site.client()
    with engine_log(site.app) as log:
        answer = client.get("/_probe/tags").get_json()
    # Before the service: the stale replica; in it and after its write: the primary.
    assert answer == {"before": 0, "inside": 1, "after": 2}
    select_on_replica, *rest = log.entries
    assert select_on_replica[0] == "replica"
    assert [engine for engine, _ in rest] == ["primary"] * len(rest)
    assert any(sql.lstrip().upper().startswith("INSERT") for sql in log.primary)
    with engine_log(site.app) as log:
        assert client.get("/_probe/count").get_json() == {"tags": 0}  # the next request: the replica
    assert not log.primary


def test_a_post_to_a_replica_view_reads_the_primary(site):
    with site.app.app_context(), transaction() as session:
        session.add(Tag(name="only-on-the-primary"))
    client = site.client()
    token = csrf_token(client, "/auth/login")
    with engine_log(site.app) as log:
        assert client.post("/_probe/count", data={"csrf_token": token}).get_json() == {"tags": 1}
    assert log.primary and not log.replica


def test_outside_a_request_everything_is_the_primary(site):
    with site.app.app_context():
        session = db.session()
        assert isinstance(session, RoutingSession)
        assert session.get_bind() is db.engines[None]
        assert session.get_bind(mapper=Post) is db.engines[None]
    with site.app.test_request_context("/"):  # a replica view, outside the CLI
        assert db.session.get_bind(mapper=Post) is db.engines[REPLICA_BIND]


def test_a_replica_that_is_down_is_passed_by(make_site, tmp_path, caplog):
    site = make_site(f"sqlite:///{tmp_path / 'no-such-folder' / 'replica.sqlite3'}")
    site.post(site.member(), "Still here")
    client = site.client()
    with caplog.at_level(logging.WARNING, logger="inkwell.replica"):
        for _ in range(3):
            with engine_log(site.app) as log:
                home = client.get("/")
            assert home.status_code == 200 and "Still here" in text_of(home)
            assert log.primary and not log.replica
    # One warning, then the process leaves the replica alone for REPLICA_RETRY_SECONDS.
    assert len([r for r in caplog.records if r.name == "inkwell.replica"]) == 1


def test_a_replica_that_is_down_is_tried_once_per_request(make_site, tmp_path, caplog):
    site = make_site(f"sqlite:///{tmp_path / 'gone' / 'replica.sqlite3'}", REPLICA_RETRY_SECONDS=0)
    client = site.client()
    with caplog.at_level(logging.WARNING, logger="inkwell.replica"):
        for _ in range(2):
            assert client.get("/").status_code == 200  # several statements each
    assert len([r for r in caplog.records if r.name == "inkwell.replica"]) == 2


def test_the_replica_is_tried_again_after_the_retry_delay(make_site, tmp_path, caplog):
    missing = tmp_path / "later"
    site = make_site(f"sqlite:///{missing / 'replica.sqlite3'}", REPLICA_RETRY_SECONDS=0.2)
    client = site.client()
    with caplog.at_level(logging.WARNING, logger="inkwell.replica"):
        assert client.get("/").status_code == 200
    missing.mkdir()
    snapshot_sqlite(site.replica, missing / "replica.sqlite3")
    time.sleep(0.25)
    with engine_log(site.app) as log:
        assert client.get("/").status_code == 200
    assert log.replica and not log.primary


def test_callers_can_ask_whether_the_request_reads_the_replica(site):
    with site.app.test_request_context("/"):
        assert read_from_replica()
        with transaction() as session:
            session.add(Tag(name="written"))
        assert not read_from_replica()  # it wrote: the primary from now on
    with site.app.test_request_context("/posts/anything"):
        assert not read_from_replica()
    with site.app.app_context():
        assert not read_from_replica()


def test_without_a_replica_nothing_changes(database_url, outbox):
    """No second engine, Flask-SQLAlchemy's own choice of engine, no cookie written."""
    app = create_app(make_config(database_url, MAIL_OUTBOX_FOLDER=str(outbox)))
    try:
        with app.app_context():
            assert list(db.engines) == [None]
            with app.test_request_context("/"):
                assert db.session.get_bind(mapper=Post) is db.engines[None]
    finally:
        dispose(app)


def test_without_a_replica_a_write_leaves_the_cookie_alone(app, client, make_user):
    make_user("alice", roles=(AUTHOR,))
    AuthActions(client).login("alice")
    response = client.post("/posts/new", data={"csrf_token": csrf_token(client, "/posts/new"),
                                               "title": "Mine", "body": "Text", "tags": "", "publish": "y"})
    assert response.status_code == 302
    with client.session_transaction() as cookie:
        assert WROTE_AT not in cookie


def test_a_visitor_s_list_read_from_a_lagging_replica_is_kept_only_briefly(make_site):
    """The post-list cache (blog.posts.fragments) must not keep a stale replica read until the
    next write: only for the read-your-writes window, after which the replica has caught up.

    The stale copy can only be asserted when both reads fall inside the window, which a busy
    machine does not promise; so a round too slow for its window is repeated with a longer one
    rather than read as a failure."""
    site = make_site(CACHE_TYPE="SimpleCache")
    author = site.member()
    client = site.client()
    for round_, window in enumerate((0.5, 2.0, 8.0)):
        site.app.config["REPLICA_READ_YOUR_WRITES_SECONDS"] = window
        title = f"Fresh news {round_}"
        site.post(author, title)  # drops the cached version; the replica lags
        started = time.monotonic()
        assert title not in text_of(client.get("/"))  # rendered from the stale replica
        site.catch_up()
        second = text_of(client.get("/"))
        elapsed = time.monotonic() - started
        if elapsed >= window:
            continue  # the copy may rightly have expired: this round proves nothing
        assert title not in second  # still the kept copy, within the window
        time.sleep(window - elapsed + 0.1)
        assert title in text_of(client.get("/"))
        return
    pytest.fail("even an 8 s window passed between two page loads")


def test_a_like_counts_as_a_write_for_reading_it_back(site):
    """A like is a Core INSERT (no ORM flush): it too must send the member's next reads to the
    primary, or the page after the click would show the replica's count without it."""
    alice = site.member()
    site.post(alice, "Likeable")
    site.member("bob")
    site.catch_up()
    client = site.client()
    AuthActions(client).login("bob")
    time.sleep(0.01)
    site.app.config["REPLICA_READ_YOUR_WRITES_SECONDS"] = 60
    with client.session_transaction() as cookie:
        cookie.pop(WROTE_AT, None)  # forget the login's write: only the like may count
    token = csrf_token(client, "/posts/likeable")
    assert client.post("/posts/likeable/like", data={"csrf_token": token}).status_code == 302
    with client.session_transaction() as cookie:
        assert isinstance(cookie.get(WROTE_AT), float)
    with engine_log(site.app) as log:
        home = client.get("/")
    assert "1 like (you)" in text_of(home)
    assert log.primary and not log.replica


def test_taking_a_like_back_counts_as_a_write_too(site):
    """Taking a like back is a bare Core DELETE, with no savepoint and no flush around it."""
    alice = site.member()
    site.post(alice, "Likeable")
    site.member("bob")
    site.catch_up()
    client = site.client()
    AuthActions(client).login("bob")
    token = csrf_token(client, "/posts/likeable")
    client.post("/posts/likeable/like", data={"csrf_token": token})
    site.catch_up()
    with client.session_transaction() as cookie:
        cookie.pop(WROTE_AT, None)
    assert client.post("/posts/likeable/like", data={"csrf_token": token}).status_code == 302
    with client.session_transaction() as cookie:
        assert isinstance(cookie.get(WROTE_AT), float)
    with engine_log(site.app) as log:
        home = client.get("/")
    assert "0 likes" in text_of(home)
    assert log.primary and not log.replica


@pytest.mark.skipif(not TEST_REDIS_URL, reason="TEST_REDIS_URL not set (.ci/run sets it)")
def test_a_length_counted_on_the_replica_is_kept_in_redis_for_the_window_rounded_up(make_site):
    """Redis keeps whole seconds only: a fractional read-your-writes window must still keep a
    length counted on the replica (rounded up), not fail to store it and count on every link."""
    prefix = f"inkwell-test-{uuid.uuid4().hex}:"
    site = make_site(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=TEST_REDIS_URL, CACHE_KEY_PREFIX=prefix,
                     REPLICA_READ_YOUR_WRITES_SECONDS=0.5)
    try:
        with site.app.test_request_context("/"):
            assert read_from_replica()
            assert fragments.LENGTHS.length("a list", lambda: 3) == 3
            assert fragments.LENGTHS.length("a list", lambda: 4) == 3  # kept
        time.sleep(1.2)  # ceil(0.5) = 1 s: gone, counted afresh
        with site.app.test_request_context("/"):
            assert fragments.LENGTHS.length("a list", lambda: 5) == 5
    finally:
        forget_keys(TEST_REDIS_URL, f"{prefix}*")


def test_a_window_of_zero_keeps_no_replica_length(make_site):
    """The cache reads a timeout of 0 as "never expires": a zero window keeps nothing."""
    site = make_site(CACHE_TYPE="SimpleCache", REPLICA_READ_YOUR_WRITES_SECONDS=0)
    with site.app.test_request_context("/"):
        assert read_from_replica()
        assert fragments.LENGTHS.length("a list", lambda: 3) == 3
        assert fragments.LENGTHS.length("a list", lambda: 4) == 4
