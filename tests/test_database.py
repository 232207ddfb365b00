"""The database layer: naming convention, UTC timestamps, transactions, SQLite set-up,
statement counting and the slow-statement log."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import OperationalError, StatementError

from blog.accounts.models import LoginAttempt, User
from blog.database import count_statements, utcnow
from blog.database_session import transaction
from blog.extensions import db
from tests.conftest import TEST_DATABASE_URL

sqlite_only = pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="SQLite behaviour")


def attempt(key: str = "k") -> LoginAttempt:
    return LoginAttempt(account_key=key, ip_address="127.0.0.1")


def count_attempts() -> int:
    return db.session.scalar(select(func.count()).select_from(LoginAttempt))


# --- schema -----------------------------------------------------------------------------


def test_constraint_names_follow_the_convention_in_the_database(app):
    with app.app_context():
        inspector = inspect(db.session.connection())
        assert {uc["name"] for uc in inspector.get_unique_constraints("users")} == {
            "uq_users_username_key", "uq_users_email_key"}
        assert {fk["name"] for fk in inspector.get_foreign_keys("user_sessions")} == {
            "fk_user_sessions_user_id_users"}
        assert "ix_user_sessions_user_id" in {ix["name"] for ix in inspector.get_indexes("user_sessions")}
        assert inspector.get_pk_constraint("users")["name"] in ("pk_users", None)  # SQLite drops PK names


def test_foreign_keys_are_enforced(app):
    from blog.accounts.models import UserSession

    with app.app_context():
        db.session.add(UserSession(token_hash="x" * 64, user_id=999_999, expires_at=utcnow()))
        with pytest.raises(Exception) as error:
            db.session.flush()
        assert "foreign key" in str(error.value).lower()
        db.session.rollback()


# --- timestamps -------------------------------------------------------------------------------


def test_timestamps_are_aware_utc_on_the_way_back(app):
    berlin = timezone(timedelta(hours=2))
    with app.app_context():
        row = attempt()
        row.created_at = datetime(2026, 5, 1, 14, 30, tzinfo=berlin)
        db.session.add(row)
        db.session.flush()
        db.session.expire_all()
        loaded = db.session.get(LoginAttempt, row.id)
        assert loaded.created_at == datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
        assert loaded.created_at.tzinfo is not None
        assert loaded.created_at.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(app):
    with app.app_context():
        row = attempt()
        row.created_at = datetime(2026, 5, 1, 12, 0)
        db.session.add(row)
        with pytest.raises(StatementError, match="naive datetime"):
            db.session.flush()
        db.session.rollback()


def test_timestamp_defaults_are_evaluated_per_row(app, make_user):
    first = make_user("first")
    second = make_user("second")
    assert first.created_at < second.created_at
    assert utcnow() - second.created_at < timedelta(minutes=1)
    column = User.__table__.c.created_at
    assert column.default.is_callable


def test_updated_at_moves_on_update(app, make_user):
    user = make_user("alice")
    with app.app_context():
        loaded = db.session.get(User, user.id)
        before = loaded.updated_at
        with transaction():
            loaded.email = "new@example.com"
        assert loaded.updated_at > before
        assert loaded.created_at == user.created_at


# --- transactions -------------------------------------------------------------------------------


def test_transaction_commits_for_other_connections(committed_app):
    with committed_app.app_context(), transaction() as session:
        session.add(attempt("committed"))
    with committed_app.app_context():  # a new session, a new connection from the pool
        assert count_attempts() == 1


def test_transaction_rolls_back_and_reraises(app):
    with app.app_context():
        with pytest.raises(RuntimeError, match="boom"), transaction() as session:
            session.add(attempt())
            session.flush()
            raise RuntimeError("boom")
        assert count_attempts() == 0


def test_nested_transactions_join_the_outer_one(app):
    with app.app_context():
        with pytest.raises(RuntimeError), transaction() as session:
            with transaction():
                session.add(attempt("inner"))
            assert session.in_transaction()  # the inner block did not commit
            raise RuntimeError("outer fails")
        assert count_attempts() == 0


def test_changes_made_outside_a_service_transaction_are_refused(app):
    with app.app_context():
        db.session.add(attempt())
        with pytest.raises(RuntimeError, match="outside a service transaction"), transaction():
            pass
        db.session.rollback()


def test_each_app_context_gets_its_own_session_removed_at_teardown(app):
    with app.app_context():
        first = db.session()
        first.add(attempt("never flushed"))
    with app.app_context():
        assert db.session() is not first
        assert count_attempts() == 0


# --- SQLite ---------------------------------------------------------------------------------


@sqlite_only
def test_sqlite_connections_are_tuned(app):
    with app.app_context():
        connection = db.session.connection()
        pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("foreign_keys") == 1
        assert pragma("journal_mode") == "wal"
        assert pragma("busy_timeout") == app.config["SQLITE_BUSY_TIMEOUT_MS"]
        assert pragma("synchronous") == 1  # NORMAL


def _hold_write_lock(app, locked: threading.Event, release: threading.Event) -> None:
    with app.app_context(), transaction() as session:
        session.add(attempt("holder"))
        session.flush()
        locked.set()
        release.wait(10)


@sqlite_only
def test_read_then_write_without_begin_immediate_fails_at_once(committed_app):
    """The trap that transaction() avoids: a deferred transaction that has read, then tries
    to write after another connection committed, gets "database is locked" at once, whatever
    the busy timeout."""
    app = committed_app
    with app.app_context():
        assert count_attempts() == 0  # opens a deferred read transaction
        writer = threading.Thread(target=_write_one, args=(app,))
        writer.start()
        writer.join()
        db.session.add(attempt("late"))
        with pytest.raises(OperationalError, match="database is locked"):
            db.session.flush()
        db.session.rollback()


def _write_one(app) -> None:
    with app.app_context(), transaction() as session:
        session.add(attempt("other"))


@sqlite_only
def test_write_transactions_begin_immediate_and_queue(committed_app):
    """With transaction(), the second writer waits for the first instead of failing, even
    though its request had already read (and so held an older snapshot)."""
    app = committed_app
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(app, locked, release))
    holder.start()
    assert locked.wait(10)
    errors: list[BaseException] = []

    def second_writer() -> None:
        try:
            with app.app_context():
                count_attempts()  # the request reads first, as a real one does
                with transaction() as session:
                    session.add(attempt("second"))
        except BaseException as error:  # noqa: BLE001  # pragma: no cover - reported below
            errors.append(error)

    waiter = threading.Thread(target=second_writer)
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive(), "the second writer should be waiting for the lock"
    release.set()
    holder.join(10)
    waiter.join(10)
    assert errors == []
    with app.app_context():
        assert sorted(db.session.scalars(select(LoginAttempt.account_key))) == ["holder", "second"]


# --- instrumentation --------------------------------------------------------------------------


def test_count_statements_counts_queries_not_transaction_control(app):
    with app.app_context():
        with count_statements() as outer:
            db.session.execute(text("SELECT 1"))
            with count_statements() as inner, transaction() as session:
                session.add(attempt())
            db.session.execute(text("SELECT 2"))
        assert inner.count == 1  # the INSERT; BEGIN/SAVEPOINT/COMMIT are not counted
        assert outer.count == 3
        assert all(not s.upper().startswith(("BEGIN", "SAVEPOINT", "RELEASE", "COMMIT"))
                   for s in outer.statements)


@pytest.mark.parametrize("config_overrides", [{"SLOW_QUERY_MS": -1}])
def test_slow_statements_are_logged_with_parameters_masked(app, caplog):
    caplog.set_level(logging.WARNING, logger="inkwell.sql")
    with app.app_context():
        db.session.scalar(select(User).where(User.email_key == "secret@example.com"))
    messages = [r.getMessage() for r in caplog.records if r.name == "inkwell.sql"]
    message = next(m for m in messages if "FROM users" in m)
    assert message.startswith("slow statement (")
    assert "secret@example.com" not in message
    assert "?" in message


def test_fast_statements_are_not_logged(app, caplog):
    caplog.set_level(logging.WARNING, logger="inkwell.sql")
    with app.app_context():
        db.session.execute(text("SELECT 1"))
    assert not [r for r in caplog.records if r.name == "inkwell.sql"]


def test_request_statement_count_in_log_line(client, caplog, make_user):
    make_user("alice")
    caplog.set_level(logging.INFO, logger="inkwell.request")
    with count_statements() as counted:
        client.get("/users/alice")
    lines = [r.getMessage() for r in caplog.records if r.name == "inkwell.request"]
    assert lines[-1].startswith("GET /users/alice 200 ")
    assert lines[-1].endswith(f" {counted.count} sql")
    assert counted.count > 0
