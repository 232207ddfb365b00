"""Keeping the full-text indexes fast to read: SQLite's FTS5 segments merged into one.

FTS5 adds every write to a new small segment and merges them only now and then
("automerge"), so a busy index holds a few dozen segments, and every lookup of a word seeks
it in each of them. That is nothing for one query that reads a whole doclist, but a search
that tests posts one by one (:func:`blog.search.post_matches`, the broad searches' date
walk) pays it on every post: at 100,000 posts written one at a time (20 segments), a page
walked that way cost 2.4 ms, 0.5 ms after ``'optimize'``.

:func:`optimize_indexes` runs FTS5's ``'optimize'`` on every index: nightly in ``flask
worker``, and at the end of ``flask seed``. It takes the write lock for about 1.6 s at
100,000 posts. PostgreSQL needs nothing of the kind: autovacuum merges a GIN index's
pending entries.
"""

from __future__ import annotations

import logging

from huey import crontab
from sqlalchemy import text

from blog.database_session import transaction
from blog.extensions import db
from blog.jobs import periodic
from blog.search.schema import SQLITE_INDEXED

log = logging.getLogger("inkwell.search")


def optimize_indexes() -> list[str]:
    """Merge each FTS5 index's segments into one (SQLite; nothing on PostgreSQL), in one
    transaction; returns the indexes optimized. Results never change, only their speed."""
    if db.session.get_bind().dialect.name != "sqlite":
        return []
    names = [target.fts for target in SQLITE_INDEXED]
    with transaction() as session:
        for name in names:
            # A table name cannot be a bound parameter; these are our own constants.
            session.execute(text(f"INSERT INTO {name}({name}) VALUES ('optimize')"))
    return names


@periodic(crontab(hour="4", minute="17"))
def optimize_nightly() -> None:
    """At 04:17 every night in ``flask worker`` (an hour most readers sleep through):
    :func:`optimize_indexes`."""
    names = optimize_indexes()
    if names:
        log.info("search indexes optimized: %s", ", ".join(names))
    db.session.remove()
