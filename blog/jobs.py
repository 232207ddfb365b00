"""Background jobs: one Huey queue, its tasks registered by the domains with :func:`job`.

Storage is a SQLite file (``JOBS_DATABASE``, default ``instance/jobs.sqlite3``: its own file,
so a queued job never waits for the site's write lock), or Redis when ``REDIS_URL`` is set,
so several app servers and workers share one queue. ``flask worker`` runs the consumer and
its periodic tasks. ``JOBS_IMMEDIATE`` runs every job inline, where it is enqueued (tests).

A job is enqueued only once the transaction that asked for it commits
(:func:`enqueue_after_commit`): a rolled-back checkout sends no receipt, and a worker never
looks for a row that is not there yet.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from flask import Flask, current_app, has_app_context
from flask.ctx import AppContext
from huey import Huey, MemoryHuey
from huey.api import TaskWrapper
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage
from redis import ConnectionPool
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from blog.extensions import db

log = logging.getLogger("inkwell.jobs")

P = ParamSpec("P")
R = TypeVar("R")

#: The one queue. Bound to its storage by :func:`init_app`; until then jobs run inline
#: (in memory), which is what a script importing the package without an app would want.
huey: Huey = MemoryHuey("inkwell", results=False, immediate=True)

_app: Flask | None = None
_PENDING = "inkwell.jobs.pending"


def init_app(app: Flask) -> None:
    """Point the queue at ``app``'s storage and remember ``app`` for the jobs' app context."""
    global _app
    _app = app
    config = app.config
    if config["JOBS_IMMEDIATE"]:
        huey.storage_class, huey.storage_kwargs = MemoryStorage, {}
    elif config["REDIS_URL"]:
        # A worker waits on the queue up to read_timeout; the socket must wait longer. A
        # request enqueueing on a Redis that went away waits no more than the socket timeout
        # (then the job is left to the sweep).
        read_timeout = 1
        huey.storage_class = RedisStorage
        huey.storage_kwargs = {"read_timeout": read_timeout, "connection_pool": ConnectionPool.from_url(
            config["REDIS_URL"], socket_connect_timeout=float(config["REDIS_TIMEOUT_SECONDS"]),
            socket_timeout=float(config["REDIS_TIMEOUT_SECONDS"]) + read_timeout + 1)}
    else:
        path = config["JOBS_DATABASE"] or os.path.join(app.instance_path, "jobs.sqlite3")
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        huey.storage_class = SqliteStorage
        huey.storage_kwargs = {"filename": path, "timeout": 10}
    huey.immediate = bool(config["JOBS_IMMEDIATE"])
    # Several apps in one process (tests) each bind the queue anew.
    huey.storage = huey.create_storage()


def storage_name() -> str:
    """What holds the queue, for ``/healthz`` and the worker's banner."""
    if huey.immediate:
        return "inline"
    return "redis" if isinstance(huey.storage, RedisStorage) else "sqlite"


def _app_context() -> AppContext:
    """A new application context for a job: of the app that enqueued it when it runs inline,
    else of the app :func:`init_app` bound (a worker's threads have none)."""
    app = current_app._get_current_object() if has_app_context() else _app  # type: ignore[attr-defined]
    if app is None:
        raise RuntimeError("jobs.init_app() was never called")
    return app.app_context()


def job(**options: Any) -> Callable[[Callable[P, R]], TaskWrapper]:
    """Register a function as a job (``retries``, ``retry_delay``... as Huey's ``task``).

    The function runs inside an application context of its own, with its own database
    session: in a worker thread there is none, and inline (``JOBS_IMMEDIATE``) it runs while
    the request's session is finishing its commit.
    """

    def decorator(func: Callable[P, R]) -> TaskWrapper:
        @functools.wraps(func)
        def in_app(*args: P.args, **kwargs: P.kwargs) -> R:
            with _app_context():
                return func(*args, **kwargs)

        # Huey names the task after the wrapped function's module and name.
        return huey.task(**options)(in_app)

    return decorator


def periodic(schedule: Callable[[Any], bool], **options: Any) -> Callable[[Callable[[], R]], TaskWrapper]:
    """Register a function to run on a schedule (``huey.crontab(...)``) in ``flask worker``."""

    def decorator(func: Callable[[], R]) -> TaskWrapper:
        @functools.wraps(func)
        def in_app() -> R:
            with _app_context():
                return func()

        return huey.periodic_task(schedule, **options)(in_app)

    return decorator


# --- after commit --------------------------------------------------------------------------


def enqueue_after_commit(task: TaskWrapper, *args: Any, delay: float | None = None) -> None:
    """Enqueue ``task(*args)`` when the current database transaction commits; forget it if
    the transaction rolls back. Call it inside the service's ``transaction()``."""
    pending = db.session().info.setdefault(_PENDING, [])
    pending.append((task, args, delay))


def _after_commit(session: Session) -> None:
    for task, args, delay in session.info.pop(_PENDING, ()):
        try:
            if delay:
                task.schedule(args=args, delay=delay)
            else:
                task(*args)
        except Exception:
            # The change is committed; a lost enqueue (the queue's storage unreachable) is
            # picked up by the job's periodic sweep, never a failed request.
            log.exception("could not enqueue %s%r after commit", task.name, args)


def _after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    # A savepoint rolled back inside a transaction that goes on keeps what came before it.
    if not previous_transaction.nested:
        session.info.pop(_PENDING, None)


def register_listeners() -> None:
    """Connect the commit and rollback hooks (once; called by the factory)."""
    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_soft_rollback", _after_rollback)
