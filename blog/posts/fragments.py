"""The post lists visitors see, rendered once and served from the cache until the blog changes.

A visitor's home page or tag page is the same for every visitor, so its list of posts is
rendered once and kept in the cache (``blog.extensions.cache``: Redis, or files every worker
of the machine shares) under the blog's current *version*. A hit runs no SQL at all.

The version is a random token in the cache. Any committed write to what a list shows (a post,
its tags, a comment, a like, an author's name) replaces it: the session listeners below notice
such writes as they are flushed or executed and, once the transaction commits, forget the
version, so every host's next request renders afresh. A rolled-back write changes nothing.
Time changes lists too (a scheduled post becomes visible at its ``published_at``), so a
cached list is only used until the next scheduled post is due.

A list read from a lagging replica (blog.replica) is kept only for the read-your-writes window.
Members never get a cached list: theirs shows their likes and their own scheduled posts.
A cache that fails (Redis down) is passed by: the list is rendered from the database.

The lists' lengths (:data:`LENGTHS`, counted for old ``?page=N`` links: blog.pagination) are
kept the same way under a version of their own, forgotten by the same writes. They are
upper bounds that time cannot make wrong, so they are kept for members too.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import abort, current_app, g, redirect, request
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import event, func, select
from sqlalchemy.orm import ORMExecuteState, Session
from werkzeug.exceptions import HTTPException

from blog.accounts.models import User
from blog.database import utcnow
from blog.extensions import cache, db
from blog.posts.models import Comment, Post, Tag
from blog.replica import read_from_replica

log = logging.getLogger(__name__)

_VERSION_KEY = "posts:version"
#: The lengths' version (a name of its own: bench.cache keeps lengths but never lists).
_LENGTHS_VERSION_KEY = "lengths:version"
#: Session.info key: the open transaction wrote something a list shows.
_CHANGED = "inkwell_post_lists_changed"
#: What a list shows, as mapped classes (flushed objects) and tables (bulk and Core writes);
#: follows too, which make a member's feed (only its length is kept, but with the lists').
_CLASSES = (Post, Comment, Tag, User)
_TABLES = frozenset({"posts", "comments", "tags", "post_tags", "likes", "users", "follows"})


@dataclass(frozen=True)
class Fragment:
    """A rendered list, when it was rendered, and until when it may be shown (the next
    scheduled post's time; None: until the blog changes). A request that ended without a list
    (an old ``?page=N`` link: a redirect to its cursor, or 404 past the end) is kept too, as
    its ``status`` and ``location``, so asking again costs no query either."""

    html: str
    rendered_at: datetime
    valid_until: datetime | None
    status: int = 200
    location: str | None = None

    def replay(self) -> Markup:
        """The list, or the redirect or 404 it ended in (raised, as the render did)."""
        if self.status == 404:
            abort(404)
        if self.location is not None:
            abort(redirect(self.location, self.status))
        return Markup(self.html)


def visitor_list(render: Callable[[], str]) -> Markup:
    """The list ``render`` draws for this request: from the cache for a visitor, else drawn
    now (and kept for the next visitor). ``render`` may abort (a redirect, a 404): nothing is
    kept then. Sets ``g.content_rendered_at`` (the page's Last-Modified) for a visitor."""
    if current_user.is_authenticated:
        return Markup(render())
    version = _version()
    key = f"posts:list:{version}:{request.endpoint}:{_arguments()}" if version else None
    cached = _get(key) if key else None
    fragment = cached if isinstance(cached, Fragment) else None
    now = utcnow()
    if fragment is None or (fragment.valid_until is not None and fragment.valid_until <= now):
        try:
            html, status, location = render(), 200, None
        except HTTPException as ended:
            if key is None or not _replayable(ended):
                raise
            html, status, location = "", 404, None
            if ended.response is not None:  # abort(redirect(...))
                status, location = ended.response.status_code, ended.response.location
        due = db.session.scalar(select(func.min(Post.published_at)).where(
            Post.published.is_(True), Post.published_at > now))
        if read_from_replica():
            # Read from a replica that may lag the commit that dropped the last version: keep
            # it no longer than the replica is trusted to catch up, not until the next write.
            caught_up = now + timedelta(seconds=current_app.config["REPLICA_READ_YOUR_WRITES_SECONDS"])
            due = caught_up if due is None else min(due, caught_up)
        fragment = Fragment(html, now.replace(microsecond=0), due, status, location)
        if key:
            _set(key, fragment)
    if fragment.status == 200:
        g.content_rendered_at = fragment.rendered_at
    return fragment.replay()


def _replayable(ended: HTTPException) -> bool:
    """A 404, or a redirect within the site (an old numbered link's cursor)."""
    if ended.code == 404:
        return True
    response = ended.response
    return (response is not None and response.status_code in (301, 302)
            and bool(response.location) and response.location.startswith("/"))


def _arguments() -> str:
    view_args = sorted((request.view_args or {}).items())
    return repr((view_args, sorted(request.args.items(multi=True))))


def forget() -> None:
    """Drop every cached list (the next request renders afresh). Called after a commit that
    changed what lists show; safe to call when the cache is down."""
    try:
        cache.delete_many(_VERSION_KEY, _LENGTHS_VERSION_KEY)
    except Exception:
        log.warning("the cache cannot be cleared; visitors see the old lists until "
                    "CACHE_DEFAULT_TIMEOUT passes", exc_info=True)


def _version(name: str = _VERSION_KEY) -> str | None:
    try:
        version = cache.get(name)
        if not isinstance(version, str):
            fresh = secrets.token_hex(8)
            # add, not set: two hosts missing at once agree on the first one's version.
            if cache.add(name, fresh):
                return fresh
            version = cache.get(name)
            if not isinstance(version, str):
                # The file cache's add refuses while an expired entry's file is still there,
                # so once the version outlived CACHE_DEFAULT_TIMEOUT no list was ever cached
                # again until the next write. Nobody else holds a version: take this one.
                version = fresh if cache.set(name, fresh) else None
        return version if isinstance(version, str) else None
    except Exception:
        log.warning("the cache cannot be read; rendering the list from the database", exc_info=True)
        return None


class _Lengths:
    """The post lists' lengths (:class:`blog.pagination.Lengths`), under the lengths' version.

    A length is kept under the version read before it was counted: one counted while a write
    commits goes with that write's lists, never under the version the next request makes.
    A length counted on a lagging replica may miss posts the primary has: it is kept no
    longer than the replica is trusted to catch up. Without a cache nothing is kept."""

    def length(self, key: str, count: Callable[[], int]) -> int:
        version = _version(_LENGTHS_VERSION_KEY)
        if version is None:
            return count()
        name = f"lengths:{version}:{key}"
        kept = _get(name)
        if isinstance(kept, int):
            return kept
        length = count()
        if not read_from_replica():
            _set(name, length)
            return length
        window = float(current_app.config["REPLICA_READ_YOUR_WRITES_SECONDS"])
        # Whole seconds, rounded up: Redis's SETEX takes no fraction. Not kept at all for a
        # window of 0, which the cache would read as "never expires".
        if window > 0:
            _set(name, length, math.ceil(window))
        return length


#: Where the post lists keep their lengths.
LENGTHS = _Lengths()


def _get(key: str) -> Any:
    """What the cache holds under ``key`` (None when it holds nothing or cannot be read)."""
    try:
        return cache.get(key)
    except Exception:
        log.warning("the cache cannot be read", exc_info=True)
        return None


def _set(key: str, value: Any, timeout: int | None = None) -> None:
    try:
        cache.set(key, value, timeout=timeout)
    except Exception:
        log.warning("the cache cannot be written", exc_info=True)


# --- noticing writes ---------------------------------------------------------------------------


def _after_flush(session: Session, context: Any) -> None:
    if not session.info.get(_CHANGED) and any(
            isinstance(instance, _CLASSES)
            for instance in (*session.new, *session.dirty, *session.deleted)):
        session.info[_CHANGED] = True


def _on_execute(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in _TABLES:
            state.session.info[_CHANGED] = True


def _after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        forget()


def _after_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)


def register_listeners() -> None:
    """Watch every session for writes to what lists show (called once by the factory)."""
    for name, listener in (("after_flush", _after_flush), ("do_orm_execute", _on_execute),
                           ("after_commit", _after_commit), ("after_rollback", _after_rollback)):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)
