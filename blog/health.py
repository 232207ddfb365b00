"""``/healthz`` for load balancers and uptime checks."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import redis
from flask import Blueprint, Flask, current_app, jsonify
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from blog import jobs
from blog.config import redis_options
from blog.database import utcnow
from blog.extensions import db, limiter
from blog.mail import outbox

bp = Blueprint("health", __name__)
log = logging.getLogger("inkwell.health")

_REDIS_CLIENT = "inkwell.health.redis"


def _redis_client(app: Flask) -> redis.Redis:
    """One client (one connection pool) per app, made on the first check.

    No retries: a health check answers what it sees now, within ``REDIS_TIMEOUT_SECONDS``.
    """
    client = app.extensions.get(_REDIS_CLIENT)
    if client is None:
        client = redis.Redis.from_url(app.config["REDIS_URL"], retry=Retry(NoBackoff(), 0),
                                      **redis_options(app.config))
        app.extensions[_REDIS_CLIENT] = client
    return client


def redis_state() -> str | None:
    """``"ok"`` or ``"down"`` for the configured Redis; None when ``REDIS_URL`` is unset."""
    if not current_app.config.get("REDIS_URL"):
        return None
    try:
        _redis_client(current_app).ping()
    except (redis.RedisError, OSError) as error:
        # The URL may carry a password: only the kind of failure is logged.
        log.warning("health check: Redis unreachable (%s)", type(error).__name__)
        return "down"
    return "ok"


def queue_state() -> dict[str, Any]:
    """The jobs and the outbox: jobs waiting in the queue, messages waiting to go (and how
    long the oldest has waited), and messages given up on. A growing ``oldest_seconds``
    means no worker is running."""
    state: dict[str, Any] = {"storage": jobs.storage_name()}
    try:
        state["pending"] = jobs.huey.pending_count()
    except (redis.RedisError, OSError, sqlite3.Error) as error:  # Redis or the file unreachable
        log.warning("health check: job queue unreadable (%s)", type(error).__name__)
        state["pending"] = None
    waiting = outbox.backlog()
    age = (utcnow() - waiting.oldest).total_seconds() if waiting.oldest is not None else 0
    state["mail"] = {"waiting": waiting.waiting, "oldest_seconds": round(age),
                     "failed": waiting.failed}
    return state


@bp.route("/healthz")
@limiter.exempt
def healthz() -> tuple[Response, int]:
    """200 when the database answers, 503 when it does not.

    It reads the migration version rather than ``SELECT 1``: SQLite would answer that even
    from a freshly created empty file where the real database has gone missing.

    With ``REDIS_URL`` set, ``"redis"`` says ``"ok"`` or ``"down"``; a Redis that is down
    still answers 200, since the site keeps serving without it (rate limits count in memory).
    ``"jobs"`` describes the queue and the outbox (:func:`queue_state`).
    """
    redis_seen = redis_state()
    extra: dict[str, Any] = {} if redis_seen is None else {"redis": redis_seen}
    try:
        db.session.execute(text("SELECT version_num FROM alembic_version"))
        extra["jobs"] = queue_state()
    except (SQLAlchemyError, OSError):
        log.exception("health check: database unreachable")
        db.session.rollback()
        return jsonify(status="error", database="unreachable", **extra), 503
    return jsonify(status="ok", database="ok", **extra), 200
