"""``/healthz`` for load balancers and uptime checks."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from blog.extensions import db, limiter

bp = Blueprint("health", __name__)
log = logging.getLogger("inkwell.health")


@bp.route("/healthz")
@limiter.exempt
def healthz() -> tuple[Response, int]:
    """200 when the database answers, 503 when it does not.

    It reads the migration version rather than ``SELECT 1``: SQLite would answer that even
    from a freshly created empty file where the real database has gone missing.
    """
    try:
        db.session.execute(text("SELECT version_num FROM alembic_version"))
    except (SQLAlchemyError, OSError):
        log.exception("health check: database unreachable")
        db.session.rollback()
        return jsonify(status="error", database="unreachable"), 503
    return jsonify(status="ok", database="ok"), 200
