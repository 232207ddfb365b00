"""Lists of posts as pages show them: plain rows, not mapped objects.

A list item shows a few columns of a post, its author's name, its tags and three counts. The
list statements select exactly those columns in one statement (the author's name, counts
and tag names as scalar subqueries) and :func:`fetch` turns the rows into :class:`ListedPost`
records. Nothing is hydrated into the identity map: on a page of 20 posts the ORM objects,
their joined authors and ``selectinload`` of their tags (a second statement) cost more than
the SQL.

The statements are built once per process, one for each kind of viewer, and everything
that changes between requests is a bound parameter evaluated as the statement runs (the
viewer's id, "now"): a request takes a prepared statement instead of constructing one, with
its subqueries and options, every time.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from flask import has_request_context
from flask_login import current_user
from sqlalchemy import ColumnElement, Select, and_, bindparam, exists, false, func, literal, or_, select

from blog.accounts.models import User
from blog.database import joined_text, utcnow
from blog.extensions import db
from blog.posts.models import Comment, Post, Tag, likes, post_tags
from blog.security import can_edit_any_post

#: The bound parameter of a list's "published no later than now" (a keyset page going older
#: lowers it to its cursor's time: blog.pagination.Ordering.until).
LISTED_UNTIL = "listed_until"
#: The bound parameter of the viewer's id (their likes, their own scheduled posts).
VIEWER_ID = "viewer_id"
#: Between a post's tag names in the list statement's one column of them: a control
#: character, which no tag name has (blog.text.xml_safe drops it from the form's text).
_TAG_SEPARATOR = "\x1f"


class Byline(NamedTuple):
    """The author of a listed post, as the byline shows them."""

    username: str


class TagName(NamedTuple):
    """A listed post's tag (``tag.name``, as a :class:`~blog.posts.models.Tag` has it)."""

    name: str


@dataclass(slots=True)
class ListedPost:
    """A post as a list shows it: what ``macros/posts.html`` reads, and its sort keys."""

    id: int
    title: str
    slug: str
    excerpt: str
    published: bool
    published_at: datetime | None
    created_at: datetime
    members_only: bool
    cover: str | None
    author_id: int
    author: Byline
    comment_count: int
    like_count: int
    liked_by_viewer: bool
    tags: list[TagName]


def viewer() -> Any:
    """The logged-in member, or None (no request: a command, a job)."""
    if has_request_context() and current_user.is_authenticated:
        return current_user
    return None


def viewer_id() -> int | None:
    """The logged-in member's id, or None."""
    member = viewer()
    return member.id if member is not None else None


#: A post's comments and likes, counted in the SELECT that reads the post (lists, and the
#: mapped posts of blog.posts.services through with_expression).
COMMENT_COUNT = (
    select(func.count(Comment.id)).where(Comment.post_id == Post.id).correlate(Post).scalar_subquery()
)
LIKE_COUNT = (
    select(func.count()).select_from(likes).where(likes.c.post_id == Post.id)
    .correlate(Post).scalar_subquery()
)


def _columns(with_viewer: bool) -> list[Any]:
    tag_names = (select(joined_text(Tag.name, literal(_TAG_SEPARATOR)))
                 .select_from(post_tags.join(Tag, Tag.id == post_tags.c.tag_id))
                 .where(post_tags.c.post_id == Post.id).correlate(Post).scalar_subquery())
    # A subquery, not a join: the list's statement then reads posts alone, so the narrow
    # query an old ``?page=N`` link runs on its key columns (blog.pagination) walks the index
    # and nothing else (with a join to users it read every listed row: 300 ms at 100,000).
    username = (select(User.username).where(User.id == Post.author_id)
                .correlate(Post).scalar_subquery())
    liked: ColumnElement[bool] = false()
    if with_viewer:
        liked = exists().where(likes.c.post_id == Post.id,
                               likes.c.user_id == bindparam(VIEWER_ID, callable_=viewer_id))
    # In ListedPost's order.
    return [Post.id, Post.title, Post.slug, Post.excerpt, Post.published, Post.published_at,
            Post.created_at, Post.members_only, Post.cover, Post.author_id, username.label("username"),
            COMMENT_COUNT.label("comment_count"), LIKE_COUNT.label("like_count"),
            liked.label("liked_by_viewer"),
            tag_names.label("tag_names")]


def due() -> ColumnElement[bool]:
    """"Published no later than now", the now bound as the statement runs."""
    return Post.published_at <= bindparam(LISTED_UNTIL, callable_=utcnow, type_=Post.published_at.type)


#: The kinds of viewer whose lists differ: visitors (and what leaves the site), members
#: (their own scheduled posts too), editors and admins (every scheduled post).
PUBLIC, MEMBER, EDITOR = "public", "member", "editor"


def viewer_kind(public_only: bool = False) -> str:
    """Which of the three lists the current viewer sees (``public_only``: always PUBLIC)."""
    member = None if public_only else viewer()
    if member is None:
        return PUBLIC
    return EDITOR if can_edit_any_post(member) else MEMBER


def visible(kind: str) -> ColumnElement[bool]:
    """Which posts a list shows to ``kind``. Everyone: the published ones whose time has
    come. A member their own scheduled posts too; editors and admins every scheduled post
    (the templates mark them). Drafts are never listed but on the author's own profile."""
    public = and_(Post.published.is_(True), due())
    if kind == PUBLIC:
        return public
    if kind == EDITOR:
        return Post.published.is_(True)
    # The same set as "public, or published and mine", written with `published` outside the
    # OR: SQLite then walks the (published, published_at, id) index in order and stops after
    # one page, where the other form read and sorted every post (1.6 s at 100,000 posts).
    return and_(Post.published.is_(True),
                or_(due(), Post.author_id == bindparam(VIEWER_ID, callable_=viewer_id)))


@functools.cache
def _listing(with_viewer: bool) -> Select[Any]:
    return select(*_columns(with_viewer))


def list_select(kind: str | None = None, *, with_viewer: bool | None = None) -> Select[Any]:
    """The columns of a list item, unfiltered; ``kind`` adds :func:`visible` (built once per
    process for each kind). ``with_viewer`` (default: a member is viewing) reads the viewer's
    likes."""
    if with_viewer is None:
        with_viewer = viewer() is not None
    if kind is None:
        return _listing(with_viewer)
    return _filtered(kind, with_viewer)


@functools.cache
def _filtered(kind: str, with_viewer: bool) -> Select[Any]:
    return _listing(with_viewer).where(visible(kind))


def _tags(joined: str | None) -> list[TagName]:
    # By name, as Post.tags is ordered (the aggregate keeps no order).
    return [TagName(name) for name in sorted(joined.split(_TAG_SEPARATOR))] if joined else []


def fetch(stmt: Select[Any], params: dict[str, Any] | None = None) -> list[ListedPost]:
    """The rows of a list statement (from :func:`list_select`) as :class:`ListedPost`."""
    rows: Sequence[Any] = db.session.execute(stmt, params or {}).all()
    return [ListedPost(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9],
                       Byline(row[10]), row[11], row[12], bool(row[13]), _tags(row[14])) for row in rows]
