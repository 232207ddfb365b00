"""``GET /healthz``: the database check, its failure mode, headers, rate limits, request log."""

from __future__ import annotations

import logging
import re

import flask_migrate
import pytest

from blog import create_app
from blog.extensions import db, limiter
from blog.security import CONTENT_SECURITY_POLICY
from tests.conftest import dispose, make_config

#: Where the database file cannot be created: its directory does not exist.
UNREACHABLE_DATABASE = "sqlite:////nonexistent-dir/x/y.sqlite3"

REQUEST_LINE = re.compile(
    r"^(?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) (?P<ms>\d+\.\d)ms (?P<sql>\d+) sql$"
)


@pytest.fixture
def broken_app():
    """An app whose database cannot be opened (nothing connects until a request needs it)."""
    app = create_app(make_config(UNREACHABLE_DATABASE))
    yield app
    dispose(app)


@pytest.fixture
def tiny_limits(monkeypatch):
    """Settings that give every rate-limited page a limit of 2 requests per minute.

    ``blog.extensions.limiter`` is one object for every app in the process, and Flask-Limiter
    keeps the first default and application limits it is given. Its lists are swapped for
    copies here, and put back afterwards, so the tiny limits do not outlive the test.
    """
    manager = limiter.limit_manager
    monkeypatch.setattr(manager, "_default_limits", list(manager._default_limits))
    monkeypatch.setattr(manager, "_application_limits", list(manager._application_limits))
    return {"RATELIMIT_DEFAULT": "2 per minute", "RATELIMIT_APPLICATION": "2 per minute"}


def request_lines(caplog) -> list[re.Match[str]]:
    lines = [record.getMessage() for record in caplog.records if record.name == "inkwell.request"]
    matches = [REQUEST_LINE.match(line) for line in lines]
    assert all(matches), lines
    return matches  # type: ignore[return-value]


# --- the check -----------------------------------------------------------------------------


def test_healthz_reports_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == {
        "status": "ok", "database": "ok",
        "jobs": {"storage": "inline", "pending": 0,
                 "mail": {"waiting": 0, "oldest_seconds": 0, "failed": 0}}}


def test_healthz_reports_mail_waiting_and_failed(app, client):
    """A message no worker has sent for 90 s shows as waiting that long: the sign that no
    worker runs. Failed ones are counted apart."""
    from datetime import timedelta

    from blog.database import utcnow
    from blog.mail.models import EmailMessage

    long_ago = utcnow() - timedelta(seconds=90)
    with app.app_context():
        for status in ("queued", "queued", "failed", "sent"):
            db.session.add(EmailMessage(kind="test", recipient="a@example.com", subject="s",
                                        text_body="t", headers={}, status=status,
                                        created_at=long_ago if status == "queued" else utcnow()))
        db.session.commit()
    mail = client.get("/healthz").get_json()["jobs"]["mail"]
    assert mail["waiting"] == 2 and mail["failed"] == 1
    assert 90 <= mail["oldest_seconds"] < 120


def test_healthz_without_redis_url_says_nothing_of_redis(client, app):
    """No REDIS_URL, no Redis to report on (tests/test_redis_down.py covers "ok" and "down")."""
    assert not app.config["REDIS_URL"]
    assert "redis" not in client.get("/healthz").get_json()


def test_healthz_needs_no_login_and_no_session(client):
    """Load balancers call it without cookies; it must not start a session either."""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def test_healthz_answers_503_when_database_unreachable(broken_app, caplog):
    response = broken_app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["status"] == "error"
    assert body["database"] != "ok"
    text = response.get_data(as_text=True)
    for leak in ("Traceback", "OperationalError", "nonexistent-dir", "sqlite"):
        assert leak not in text
    failures = [record for record in caplog.records if record.name == "inkwell.health"]
    assert len(failures) == 1
    assert failures[0].levelno == logging.ERROR
    assert failures[0].exc_info is not None  # the traceback goes to the log, not the client


def test_healthz_recovers_when_the_database_comes_back(tmp_path):
    """A failed check leaves nothing broken behind: once the database can be opened (here,
    its directory is created), the next request answers 200."""
    directory = tmp_path / "not-yet"
    app = create_app(make_config("sqlite:///" + str(directory / "inkwell.sqlite3")))
    try:
        client = app.test_client()
        assert client.get("/healthz").status_code == 503
        directory.mkdir()
        with app.app_context():
            flask_migrate.upgrade()
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.get_json()["database"] == "ok"
    finally:
        dispose(app)


# --- headers -------------------------------------------------------------------------------


def test_healthz_carries_security_headers(client):
    response = client.get("/healthz")
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_failed_healthz_carries_security_headers(broken_app):
    response = broken_app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- rate limits ---------------------------------------------------------------------------


def test_healthz_is_exempt_from_rate_limits(database_url, tiny_limits):
    """With default and application-wide limits of 2 per minute, other pages answer 429 on the
    third request while /healthz keeps answering 200."""
    app = create_app(make_config(database_url, **tiny_limits))
    try:
        client = app.test_client()
        statuses = [client.get("/healthz").status_code for _ in range(100)]
        assert statuses == [200] * 100
        # The control: the same limits do stop an ordinary page.
        pages = [client.get("/auth/login").status_code for _ in range(3)]
        assert pages == [200, 200, 429]
        assert client.get("/healthz").status_code == 200
    finally:
        dispose(app)


def test_healthz_has_no_rate_limit_headers(client):
    """No limit applies to it, so it advertises none."""
    response = client.get("/healthz")
    assert not any(name.startswith("X-RateLimit") for name, _value in response.headers)


# --- request log ---------------------------------------------------------------------------


def test_each_request_writes_one_log_line(client, caplog):
    caplog.set_level(logging.INFO, logger="inkwell.request")
    client.get("/healthz")
    (line,) = request_lines(caplog)
    assert line["method"] == "GET"
    assert line["path"] == "/healthz"
    assert line["status"] == "200"
    assert float(line["ms"]) >= 0
    # The migration version, and the outbox's counts; transaction control is not counted.
    assert int(line["sql"]) == 2


def test_request_log_counts_per_request(client, caplog):
    caplog.set_level(logging.INFO, logger="inkwell.request")
    for _ in range(3):
        client.get("/healthz")
    client.get("/no-such-page")
    client.get("/no-such-page")
    lines = request_lines(caplog)
    # The first page read the site's settings and linked pages into the cache; the next
    # one found them there.
    assert [(line["path"], line["status"], line["sql"]) for line in lines] == [
        ("/healthz", "200", "2"), ("/healthz", "200", "2"), ("/healthz", "200", "2"),
        ("/no-such-page", "404", "2"), ("/no-such-page", "404", "0"),
    ]


def test_request_log_line_for_a_failed_health_check(broken_app, caplog):
    caplog.set_level(logging.INFO, logger="inkwell.request")
    broken_app.test_client().get("/healthz")
    (line,) = request_lines(caplog)
    assert (line["method"], line["path"], line["status"]) == ("GET", "/healthz", "503")


def test_request_log_line_is_info_on_inkwell_request(client, caplog):
    caplog.set_level(logging.INFO, logger="inkwell.request")
    client.get("/healthz")
    records = [record for record in caplog.records if record.name == "inkwell.request"]
    assert [record.levelno for record in records] == [logging.INFO]
