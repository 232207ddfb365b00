"""Helpers over the request's database session, one floor above :mod:`blog.database`.

- ``transaction()``: how a service function owns its unit of work.
- ``paginate()``: one page of a list for the request's ``?page=``.
- ``unique_slug()``: a slug no row holds yet.

:mod:`blog.database` imports nothing of Inkwell (types, ``Base``, engine hooks), so
:mod:`blog.extensions` can build ``db`` on it; this module uses ``db`` and so lives above both.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from flask import abort, current_app, request
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import Select, event, or_, select
from sqlalchemy.orm import Session

from blog.database import begin_immediate, escape_like
from blog.extensions import db

# Session.info keys: inside a service transaction; the open transaction has flushed writes.
_IN_SERVICE = "inkwell_in_service_transaction"
_WROTE = "inkwell_transaction_wrote"


@event.listens_for(Session, "after_flush")
def _remember_write(session: Session, flush_context: Any) -> None:
    session.info[_WROTE] = True


@event.listens_for(Session, "after_transaction_end")
def _forget_write(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the outermost transaction ended: committed or rolled back
        session.info.pop(_WROTE, None)


@contextmanager
def transaction() -> Iterator[Session]:
    """Run a service's unit of work: commit on success, roll back and re-raise on failure.

    A read-only transaction the request already has open (loading the current user, say) is
    ended first, so the write transaction starts fresh. On SQLite it then begins with
    ``BEGIN IMMEDIATE``: a transaction that reads and later writes would otherwise fail at
    once with "database is locked" when another connection wrote in between, ignoring the
    busy timeout. With the write lock taken up front, concurrent writers queue instead.

    Nested calls join the outer transaction, so services can call each other.
    """
    session = db.session()  # the request's Session itself, not the scoped proxy
    if session.info.get(_IN_SERVICE):
        yield session
        return
    if session.in_transaction():
        # Writes already flushed (autoflush included) began without the write lock: refuse
        # rather than commit them as if they were part of this unit of work.
        if session.new or session.dirty or session.deleted or session.info.get(_WROTE):
            raise RuntimeError("changes were made outside a service transaction")
        session.commit()
    immediate = begin_immediate.set(True)
    session.info[_IN_SERVICE] = True
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.info.pop(_IN_SERVICE, None)
        begin_immediate.reset(immediate)


#: Pages beyond this are 404 without asking the database (a huge OFFSET is a slow query).
MAX_PAGE = 100_000


def paginate(stmt: Select[Any], per_page_setting: str) -> Pagination:
    """One page of ``stmt`` for the request's ``?page=``, sized by the setting named
    ``per_page_setting``. Text that is not a number means page 1; zero, negative, absurdly
    large or past-the-end pages are 404."""
    page = request.args.get("page", 1, type=int)
    if not 1 <= page <= MAX_PAGE:
        abort(404)
    return db.paginate(stmt, page=page, per_page=current_app.config[per_page_setting],
                       error_out=True, count=True)


def unique_slug(column: Any, base: str, reserved: Collection[str] = ()) -> str:
    """``base``, or ``base-2``, ``base-3``… whichever ``column`` does not hold yet (one query)
    and is not ``reserved`` (a slug some other page's address already uses). A concurrent
    insert can still take it first; the column's unique constraint decides."""
    taken = set(db.session.scalars(select(column).where(
        or_(column == base, column.like(escape_like(base) + "-%", escape="\\"))))) | set(reserved)
    if base not in taken:
        return base
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"
