"""Read replicas: list pages and feeds read from a streaming replica, writes stay on the primary.

With ``DATABASE_REPLICA_URL`` set, the app has a second engine (Flask-SQLAlchemy's bind key
``"replica"``, which no model uses) on a read-only copy of the primary database. The request's
session, a :class:`RoutingSession`, chooses the engine for each statement:

- the replica for the reads of a GET (or HEAD) request to a view marked
  :func:`reads_from_replica` (home, tag and profile pages, feeds, the sitemap, the catalogue),
  login check included;
- the primary for everything else: unmarked views, any POST, the CLI and jobs (no request),
  every flush, ``INSERT``/``UPDATE``/``DELETE`` and ``SELECT ... FOR UPDATE``, every statement
  of a service transaction (:func:`blog.database_session.transaction`), and the rest of a
  request once its session has written;
- the primary too, on marked views, for a browser that committed a write less than
  ``REPLICA_READ_YOUR_WRITES_SECONDS`` ago: when a request's transaction commits a write, the
  time goes into the browser's signed session cookie (when it has one: members, and visitors
  who filled in a form), so a member sees their new post, comment or login at once however
  far the replica lags.

A replica that cannot be connected to is passed by: the request reads from the primary, a
warning is logged, and the process leaves the replica alone for ``REPLICA_RETRY_SECONDS``.

Without ``DATABASE_REPLICA_URL`` nothing changes: :class:`RoutingSession` answers as
Flask-SQLAlchemy's own session does, no listener is connected and no cookie is touched.

Writes made outside the ORM's view (``text("UPDATE ...")`` in a marked view, outside a service
transaction) are not recognised; services own every write (DESIGN.md), so none exist.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask, current_app, has_request_context, request, session
from flask_sqlalchemy.session import Session
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import SessionTransaction
from sqlalchemy.sql.dml import UpdateBase

from blog.config import engine_options, normalize_database_url
from blog.database import begin_immediate, init_database

log = logging.getLogger("inkwell.replica")

#: Flask-SQLAlchemy's bind key of the replica's engine (``db.engines[REPLICA_BIND]``).
REPLICA_BIND = "replica"
#: Key in the browser's session cookie: when it last committed a write (Unix time, seconds).
WROTE_AT = "_wrote_at"

_MARK = "_inkwell_reads_from_replica"
#: ``request.environ`` key of the request's routing state (one per request, even when a test
#: sends several requests in one application context).
_STATE = "inkwell.replica"
#: ``Session.info`` key: the open transaction has written (reset when it ends).
_TRANSACTION_WROTE = "inkwell_replica_transaction_wrote"
#: ``app.extensions`` key of the process's memory of a replica that failed.
_HEALTH = "inkwell_replica"

F = TypeVar("F", bound=Callable[..., Any])


def reads_from_replica(view: F) -> F:
    """Mark a view whose GET requests may read from the replica (see the module's rules)."""
    setattr(view, _MARK, True)
    return view


# --- settings and wiring ---------------------------------------------------------------------


def configure(config: dict[str, Any]) -> None:
    """Give Flask-SQLAlchemy the replica's engine (before ``db.init_app``), with the same pool
    settings as the primary and a short connect timeout."""
    url = config.get("DATABASE_REPLICA_URL")
    if not url:
        return
    url = normalize_database_url(url)
    options = engine_options({**config, "SQLALCHEMY_DATABASE_URI": url})
    if make_url(url).get_backend_name() == "postgresql" and "connect_timeout" not in make_url(url).query:
        options.setdefault("connect_args", {})["connect_timeout"] = int(
            config["REPLICA_CONNECT_TIMEOUT_SECONDS"])
    config["SQLALCHEMY_BINDS"] = {**(config.get("SQLALCHEMY_BINDS") or {}),
                                  REPLICA_BIND: {"url": url, **options}}


@dataclass
class _Health:
    down_until: float = 0.0  # time.monotonic() before which the replica is not tried


def init_app(app: Flask, engines: Mapping[str | None, sa.engine.Engine]) -> None:
    """Hook the replica's engine (``db.engines``, in an app context) like the primary's:
    statement counting, slow log, SQLite pragmas; and watch sessions for writes. Nothing
    without a replica."""
    engine = engines.get(REPLICA_BIND)
    if engine is None:
        return
    init_database(app, engine)
    app.extensions[_HEALTH] = _Health()
    for name, listener in (("after_flush", _after_flush), ("after_commit", _after_commit),
                           ("after_transaction_end", _after_transaction_end)):
        if not event.contains(RoutingSession, name, listener):
            event.listen(RoutingSession, name, listener)


# --- routing ---------------------------------------------------------------------------------


@dataclass
class _RequestState:
    allowed: bool  # a GET to a marked view, from a browser that did not write just now
    wrote: bool = False  # this request's session has written: the primary from now on
    unreachable: bool = False  # the replica failed to connect in this request


class RoutingSession(Session):
    """Flask-SQLAlchemy's session, sending the reads of replica views to the replica."""

    def get_bind(self, mapper: Any | None = None, clause: Any | None = None,
                 bind: sa.engine.Engine | sa.engine.Connection | None = None,
                 **kwargs: Any) -> sa.engine.Engine | sa.engine.Connection:
        chosen = super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)
        if bind is not None or not has_request_context():
            return chosen
        engines = self._db.engines
        replica = engines.get(REPLICA_BIND)
        if replica is None or chosen is not engines.get(None):
            return chosen  # no replica, or a table of some other database
        state = _request_state()
        if self._may_read_replica(state, clause) and self._replica_answers(state, replica):
            return replica
        return chosen

    def _may_read_replica(self, state: _RequestState, clause: Any) -> bool:
        if self._flushing or isinstance(clause, UpdateBase):
            state.wrote = True
            self.info[_TRANSACTION_WROTE] = True
            return False
        return (state.allowed and not state.wrote and not state.unreachable
                and not begin_immediate.get()  # inside a service transaction
                and getattr(clause, "_for_update_arg", None) is None)

    def _replica_answers(self, state: _RequestState, replica: sa.engine.Engine) -> bool:
        """Whether this transaction has (or can now open) its connection to the replica."""
        health: _Health = current_app.extensions[_HEALTH]
        if health.down_until > time.monotonic():
            state.unreachable = True
            return False
        try:
            # What the statement would do next; done here, so a failure can fall back.
            self.connection(bind_arguments={"bind": replica})
        except OperationalError:
            state.unreachable = True  # tried once in this request, and not again
            retry = float(current_app.config["REPLICA_RETRY_SECONDS"])
            health.down_until = time.monotonic() + retry
            log.warning("the read replica cannot be reached; reading from the primary for the "
                        "next %g seconds", retry, exc_info=True)
            return False
        return True


def _has_replica() -> bool:
    return current_app.extensions.get(_HEALTH) is not None


def _request_state() -> _RequestState:
    state: _RequestState | None = request.environ.get(_STATE)
    if state is None:
        state = _RequestState(allowed=_replica_view() and not wrote_recently())
        request.environ[_STATE] = state
    return state


def _replica_view() -> bool:
    if request.method not in ("GET", "HEAD") or request.endpoint is None:
        return False
    return bool(getattr(current_app.view_functions.get(request.endpoint), _MARK, False))


def _has_session_cookie() -> bool:
    return bool(request.cookies.get(current_app.config["SESSION_COOKIE_NAME"]))


def wrote_recently() -> bool:
    """Whether this browser committed a write less than REPLICA_READ_YOUR_WRITES_SECONDS ago."""
    # Reading the session adds "Vary: Cookie" to the response: only when it came with one.
    if not _has_session_cookie():
        return False
    wrote_at = session.get(WROTE_AT)
    if not isinstance(wrote_at, (int, float)):
        return False
    return time.time() - wrote_at < float(current_app.config["REPLICA_READ_YOUR_WRITES_SECONDS"])


def read_from_replica() -> bool:
    """Whether this request may still read from the replica (for callers that keep what they
    read, such as a cache, and want to know it may lag behind the primary)."""
    if not has_request_context() or not _has_replica():
        return False
    state = _request_state()
    return state.allowed and not state.wrote and not state.unreachable


# --- noticing writes -------------------------------------------------------------------------


def _after_flush(db_session: RoutingSession, flush_context: Any) -> None:
    db_session.info[_TRANSACTION_WROTE] = True
    if has_request_context() and _has_replica():
        state = request.environ.get(_STATE)
        if state is None:  # wrote before reading anything: the primary throughout
            request.environ[_STATE] = _RequestState(allowed=False, wrote=True)
        else:
            state.wrote = True


def _after_commit(db_session: RoutingSession) -> None:
    if not db_session.info.pop(_TRANSACTION_WROTE, False) or not has_request_context():
        return
    if not _has_replica():
        return
    # Members and visitors who sent a form have a session; a visitor without one (a one-click
    # unsubscribe) is given no cookie just for this.
    if _has_session_cookie() or len(session) > 0:
        session[WROTE_AT] = round(time.time(), 3)


def _after_transaction_end(db_session: RoutingSession, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # committed (after _after_commit) or rolled back
        db_session.info.pop(_TRANSACTION_WROTE, None)
