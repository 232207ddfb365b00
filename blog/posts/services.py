"""Blog use cases: writing, reading lists, comments, likes and follows.

List pages read their rows in one statement through :mod:`blog.posts.listing`. A single
post (its page, the feeds) is a mapped object with its author by join, tags by one
``selectin`` query, and comment/like counts as scalar subqueries (``with_expression``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from blinker import Namespace
from flask import current_app
from flask_login import current_user
from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    delete,
    exists,
    false,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload, with_expression
from sqlalchemy.orm.exc import StaleDataError

from blog.accounts.models import User
from blog.database import affected_rows, utcnow
from blog.database_session import transaction, unique_slug
from blog.errors import ServiceError
from blog.extensions import db
from blog.images import delete_image
from blog.mail.outbox import queue_email
from blog.pagination import (
    Key,
    KeysetPage,
    Ordering,
    UncountedPage,
    keyset_page,
    numbered_page,
    page_number,
    uncounted_page,
)
from blog.posts import fragments, listing
from blog.posts.listing import ListedPost
from blog.posts.models import Comment, Post, Tag, follows, likes
from blog.rendering import excerpt_of, render_markdown
from blog.search import SearchQuery, matches_more_than, parse, post_matches, post_search, title_matches
from blog.security import can_edit_post
from blog.text import slugify, xml_safe


class BlogError(ServiceError):
    """A blog request that cannot be carried out; ``field`` names the form field."""


_signals = Namespace()
#: Sent inside the transaction that wrote a post (new or edited), as
#: ``post_saved.send(app, post=post)``; the newsletter listens (a post to email).
post_saved = _signals.signal("post-saved")


def _announce(post: Post) -> None:
    post_saved.send(current_app._get_current_object(), post=post)  # type: ignore[attr-defined]


#: Slugs a post never gets: the addresses /posts/new and /posts/media are pages of their own.
RESERVED_SLUGS = frozenset({"new", "media"})


# --- helpers ----------------------------------------------------------------------------


def normalize_tag(name: str) -> str:
    """How a tag is stored and looked up: trimmed, lower-cased, inner spaces collapsed."""
    return " ".join(name.split()).lower()


def parse_tags(text: str) -> list[str]:
    """Comma-separated tags, each normalized, de-duplicated in order."""
    names: list[str] = []
    for raw in (text or "").split(","):
        name = normalize_tag(raw)
        if name and name not in names:
            names.append(name)
    return names


# --- reading ----------------------------------------------------------------------------


def _with_counts(stmt: Select[Any], viewer_id: int | None) -> Select[Any]:
    liked = exists().where(likes.c.post_id == Post.id, likes.c.user_id == viewer_id)
    return stmt.options(
        joinedload(Post.author),
        selectinload(Post.tags),
        with_expression(Post.comment_count, listing.COMMENT_COUNT),
        with_expression(Post.like_count, listing.LIKE_COUNT),
        with_expression(Post.liked_by_viewer, liked if viewer_id is not None else false()),
    )


def is_public(post: Post | ListedPost, now: datetime | None = None) -> bool:
    """Whether everyone may see ``post``: published, and its time has come."""
    return (post.published and post.published_at is not None
            and post.published_at <= (now or utcnow()))


def is_scheduled(post: Post | ListedPost, now: datetime | None = None) -> bool:
    """Published, but for a time still to come."""
    return post.published and post.published_at is not None and post.published_at > (now or utcnow())


def _listed(public_only: bool) -> ColumnElement[bool]:
    """Which posts a list shows the current viewer (:func:`blog.posts.listing.visible`)."""
    return listing.visible(listing.viewer_kind(public_only))


#: Every public list of posts: newest first (ix_posts_published_published_at_id serves it).
NEWEST = Ordering(Key(Post.published_at), Key(Post.id), until=listing.LISTED_UNTIL)
#: An author's own profile: drafts first (newest written first), then the rest newest first.
#: A draft has no publication time yet, so it sorts by when it was written.
_OWN_POSTS = Ordering(
    Key(Post.published, descending=False),
    Key(func.coalesce(Post.published_at, Post.created_at),
        read=lambda post: post.published_at or post.created_at),
    Key(Post.id),
)


def published_posts(*, public_only: bool = False) -> Select[Any]:
    """Published posts as mapped objects, newest first, with their author, tags and counts;
    ``public_only`` for what leaves the site (feeds, the sitemap): never a scheduled post,
    whoever asks. Pages list :func:`listed_posts` instead."""
    stmt = select(Post).where(_listed(public_only)).order_by(*NEWEST.clauses())
    return _with_counts(stmt, listing.viewer_id())


def listed_posts() -> Select[Any]:
    """The posts a list shows the current viewer, as the columns of a list item
    (:mod:`blog.posts.listing`; run it with :func:`newest_page`)."""
    return listing.list_select(listing.viewer_kind())


def newest_page(stmt: Select[Any], *, keep_length: bool = True) -> KeysetPage:
    """The requested keyset page of a list of posts, newest first (:mod:`blog.pagination`),
    as :class:`~blog.posts.listing.ListedPost` items. An old ``?page=N`` link counts the list
    once until it changes (:data:`blog.posts.fragments.LENGTHS`), so a page past the end
    costs no query; not ``keep_length``: never counted (a search, whose count costs more
    than its pages)."""
    return keyset_page(stmt, NEWEST, "POSTS_PER_PAGE", listing.fetch,
                       fragments.LENGTHS if keep_length else None)


def posts_tagged(tag: Tag) -> Select[Any]:
    return listed_posts().where(Post.tags.any(Tag.id == tag.id))


def posts_by(author: User) -> Select[Any]:
    """An author's posts, newest first; the author, editors and admins also see the drafts
    (first) and the scheduled ones."""
    if _sees_drafts_of(author):
        return listing.list_select(with_viewer=True).where(Post.author_id == author.id)
    return listed_posts().where(Post.author_id == author.id)


def profile_page(author: User) -> KeysetPage:
    """The requested keyset page of :func:`posts_by`."""
    ordering = _OWN_POSTS if _sees_drafts_of(author) else NEWEST
    return keyset_page(posts_by(author), ordering, "POSTS_PER_PAGE", listing.fetch, fragments.LENGTHS)


def _sees_drafts_of(author: User) -> bool:
    viewer = current_user
    return bool(viewer.is_authenticated and can_edit_post(viewer, author.id))


def feed_for(user: User) -> Select[Any]:
    """Published posts by the members ``user`` follows."""
    followed = select(follows.c.followed_id).where(follows.c.follower_id == user.id)
    return listed_posts().where(Post.author_id.in_(followed))


#: The orders search results come in: best match first, or newest first.
SEARCH_ORDERS = ("rank", "date")


def search_posts(query: str | SearchQuery, order: str = "rank") -> Select[Any]:
    """Published posts matching the full-text ``query`` (:mod:`blog.search`: words in any
    order, stemming, "phrases", -exclusions, ``or``), with the visibility rules of every
    list, as list items' columns (:func:`listed_posts`). ``order="rank"``: best match first
    (a title match above a body match), ties newest first; ``"date"``: newest first.
    ``query`` is the reader's text or already parsed; text with nothing to search for
    matches no post."""
    parsed = parse(query) if isinstance(query, str) else query
    stmt = listed_posts().order_by(*NEWEST.clauses())
    if parsed is None:
        return stmt.where(false())
    matches = post_search(parsed)
    if order == "date":
        # IN, not a join: SQLite would walk the posts' date index probing the full-text index
        # once a row (16 s for a word no post has, at 100,000 posts); with IN it first collects
        # the matches and walks the index against that set. (That costs 50 ms for 68,000
        # matches: search_page walks with post_matches() when that many match.)
        return stmt.where(Post.id.in_(select(matches.c.id)))
    stmt = stmt.join(matches, matches.c.id == Post.id)
    return stmt.order_by(None).order_by(matches.c.rank.desc(), Post.published_at.desc(), Post.id.desc())


def search_page(query: str | SearchQuery, order: str = "rank") -> KeysetPage | UncountedPage:
    """The request's page of search results, never counted: newest first by keyset
    (``cursor``), or best match first by number (``?page=``; relevance has no index to seek).

    A search that matches more than ``SEARCH_RANKED_MATCHES`` posts (two common words can
    match most of the blog) is not ranked as a whole: see :func:`_titles_first_page`. Its
    newest-first pages walk the date index testing each post, which stops after a page;
    a narrower search collects its matches first, which is cheaper when they are few.
    """
    parsed = parse(query) if isinstance(query, str) else query
    if parsed is not None and matches_more_than(current_app.config["SEARCH_RANKED_MATCHES"], parsed):
        if order == "date":
            return newest_page(listed_posts().where(post_matches(Post.id, parsed)), keep_length=False)
        return _titles_first_page(parsed)
    stmt = search_posts(parsed if parsed is not None else "", order)
    if order == "date":
        return newest_page(stmt, keep_length=False)
    return uncounted_page(stmt, "POSTS_PER_PAGE", listing.fetch)


def _titles_first_page(query: SearchQuery) -> UncountedPage:
    """Best match first for a search too broad to rank every match: the posts whose title
    matches (the newest ``SEARCH_RANKED_MATCHES`` of them, best first), then every other
    match newest first. Ranking every match is what this avoids: on SQLite ``bm25()`` over
    68,000 matches of two common words costs 150 ms, the page 5 ms. When nearly every post
    matches, a title match is what still tells the better ones apart; every match stays
    reachable, page after page.

    At most five statements whatever the size: the titles (blog.search), which of them this
    reader may see, the page's share of them, and of the rest (each only when needed)."""
    limit: int = current_app.config["SEARCH_RANKED_MATCHES"]
    per_page: int = current_app.config["POSTS_PER_PAGE"]
    number = page_number()
    start, wanted = (number - 1) * per_page, per_page + 1  # one more: is there a next page?
    ranked = [post_id for post_id, _ in title_matches(query, limit)]
    titled: list[int] = []
    if ranked:
        allowed = [listing.visible(listing.viewer_kind()), Post.id.in_(ranked)]
        if query.excludes:
            allowed.append(post_matches(Post.id, query))  # "-word" was only kept out of titles
        shown = set(db.session.scalars(select(Post.id).where(*allowed)))
        titled = [post_id for post_id in ranked if post_id in shown]
    head = titled[start:start + wanted]
    rows: list[ListedPost] = []
    if head:
        position = {post_id: index for index, post_id in enumerate(head)}
        found = listing.fetch(listed_posts().where(Post.id.in_(head)))
        rows = sorted(found, key=lambda post: position[post.id])
    if len(rows) < wanted:
        rest = listed_posts().where(post_matches(Post.id, query)).order_by(*NEWEST.clauses())
        if titled:
            rest = rest.where(Post.id.not_in(titled))
        rest = rest.offset(max(0, start - len(titled))).limit(wanted - len(rows))
        rows += listing.fetch(rest)
    return numbered_page(rows, number, per_page)


def get_tag(name: str) -> Tag | None:
    return db.session.scalar(select(Tag).where(Tag.name == normalize_tag(name)))


def get_post(slug: str) -> Post | None:
    """A post with its author, tags, comments (with their authors) and counts."""
    stmt = _with_counts(select(Post).where(Post.slug == slug), listing.viewer_id()).options(
        selectinload(Post.comments).joinedload(Comment.author)
    )
    return db.session.scalars(stmt).first()


def get_post_for_update(slug: str) -> Post | None:
    return db.session.scalar(select(Post).where(Post.slug == slug).options(selectinload(Post.tags)))


def latest_published(limit: int = 20, *, tag: Tag | None = None,
                     author: User | None = None) -> list[Post]:
    """The newest posts everyone may see, all or of one tag or author (the Atom feeds)."""
    stmt = published_posts(public_only=True)
    if tag is not None:
        stmt = stmt.where(Post.tags.any(Tag.id == tag.id))
    if author is not None:
        stmt = stmt.where(Post.author_id == author.id)
    return list(db.session.scalars(stmt.limit(limit)))


def public_condition() -> ColumnElement[bool]:
    """The posts everyone may see now, as a condition (the sitemap's queries)."""
    return _listed(public_only=True)


def follow_counts(user: User) -> tuple[int, int]:
    """(followers, following) of ``user`` in one statement."""
    followers = select(func.count()).select_from(follows).where(follows.c.followed_id == user.id)
    following = select(func.count()).select_from(follows).where(follows.c.follower_id == user.id)
    counts = db.session.execute(select(followers.scalar_subquery(), following.scalar_subquery())).one()
    return counts[0], counts[1]


def is_following(follower_id: int, followed_id: int) -> bool:
    return bool(db.session.scalar(select(exists().where(
        follows.c.follower_id == follower_id, follows.c.followed_id == followed_id))))


# --- writing ----------------------------------------------------------------------------


def _tags_named(names: list[str]) -> list[Tag]:
    """The tags called ``names``, creating missing ones; a tag created concurrently by another
    request is picked up instead of failing (savepoint around each insert)."""
    if not names:
        return []
    session = db.session
    existing = {tag.name: tag for tag in session.scalars(select(Tag).where(Tag.name.in_(names)))}
    for name in names:
        if name in existing:
            continue
        try:
            with session.begin_nested():
                tag = Tag(name=name)
                session.add(tag)
        except IntegrityError:
            tag = session.scalars(select(Tag).where(Tag.name == name)).one()
        existing[name] = tag
    return [existing[name] for name in names]


#: What an edit that lost a race with another edit of the same post says.
CHANGED_MEANWHILE = "This post was changed meanwhile; please reload and try again."


@dataclass(frozen=True)
class PostContent:
    """A post's new content, with its Markdown already rendered: rendering a large post takes a
    while, and done inside the write transaction it would hold SQLite's write lock that long."""

    title: str
    body: str
    body_html: str
    excerpt: str
    tag_names: list[str]
    publish: bool
    #: When a published post becomes visible (UTC); None: now, or as it was.
    publish_at: datetime | None = None
    members_only: bool = False
    #: Email the post to the newsletter's subscribers when it becomes visible.
    send_newsletter: bool = False
    #: A newly stored cover image's name (saved before the transaction), or None.
    cover: str | None = None
    #: Take the cover away (when no new one is given).
    remove_cover: bool = False


def prepare_post(title: str, body: str, tags: str, publish: bool, *,
                 publish_at: datetime | None = None, members_only: bool = False,
                 cover: str | None = None, remove_cover: bool = False,
                 send_newsletter: bool = False) -> PostContent:
    """Render and normalize what a post form gave, outside any transaction. Characters XML
    cannot carry are dropped (they would break the Atom feed); raises BlogError when nothing
    of the title or body is left, or for a time without "publish"."""
    title, body = xml_safe(title).strip(), xml_safe(body)
    if not title:
        raise BlogError("Give the post a title.", "title")
    if not body.strip():
        raise BlogError("Write the post's text.", "body")
    if publish_at is not None and not publish:
        raise BlogError("Tick “Publish” to schedule the post for that time.", "publish_at")
    body_html = render_markdown(body)
    tag_names = parse_tags(xml_safe(tags or ""))  # a form without the field gives None
    return PostContent(title, body, body_html, excerpt_of(body_html), tag_names, publish,
                       publish_at, members_only, send_newsletter, cover, remove_cover)


def _apply(post: Post, content: PostContent, tags: list[Tag]) -> None:
    """Set the post's fields; ``tags`` are looked up (or made) first, by :func:`_tags_named`,
    so its autoflush runs before the post changes and the row is written once."""
    post.title = content.title
    post.body = content.body
    post.body_html = content.body_html
    post.excerpt = content.excerpt
    post.tags = tags
    # The search index reads the tags from the row (blog.search): kept with them, here only.
    post.tag_names = " ".join(sorted(tag.name for tag in tags))
    if content.publish:
        now = utcnow()
        if content.publish_at is not None:
            post.published_at = content.publish_at
        elif not post.published or post.published_at is None or post.published_at > now:
            # Published now: a draft, or a scheduled post whose time was cleared.
            post.published_at = now
    post.published = content.publish
    post.members_only = content.members_only
    post.send_newsletter = content.send_newsletter
    if content.cover is not None:
        post.cover = content.cover
    elif content.remove_cover:
        post.cover = None
    # Always an UPDATE of the row, so its version moves even when only the tags changed.
    post.updated_at = utcnow()


def rerender_posts(batch_size: int = 200) -> int:
    """Render every post's Markdown again with the current renderer; return how many posts'
    HTML changed.

    For an upgrade that changes the rendering (code blocks and tables in their own scroll
    box, say): posts saved before keep their old HTML until then. Each batch is rendered
    outside any transaction and written in a short one. A post edited meanwhile (its version
    moved) is left alone: that save rendered it with the current code already. The post's
    ``updated_at`` and ``version`` stay as they were, since its content did not change.
    """
    changed, after = 0, 0
    while True:
        rows = db.session.execute(
            select(Post.id, Post.version, Post.body, Post.body_html, Post.excerpt)
            .where(Post.id > after).order_by(Post.id).limit(batch_size)).all()
        db.session.rollback()  # end the read before rendering: no lock held meanwhile
        if not rows:
            return changed
        after = rows[-1].id
        rendered = [(row, render_markdown(row.body)) for row in rows]
        stale = [(row, html, excerpt_of(html)) for row, html in rendered
                 if html != row.body_html or excerpt_of(html) != row.excerpt]
        if not stale:
            continue
        with transaction() as session:
            for row, html, excerpt in stale:
                changed += affected_rows(session.execute(
                    update(Post).where(Post.id == row.id, Post.version == row.version)
                    .values(body_html=html, excerpt=excerpt, updated_at=Post.updated_at)
                    .execution_options(synchronize_session=False)))


def create_post(author: User, title: str, body: str, tags: str, publish: bool, *,
                publish_at: datetime | None = None, members_only: bool = False,
                cover: str | None = None, send_newsletter: bool = False) -> Post:
    """Write a new post (a draft unless ``publish``; scheduled when ``publish_at`` is still
    to come); its slug comes from the title and is made unique with a numeric suffix.
    ``cover`` is a stored image's name (:func:`blog.images.save_image`); when the post cannot
    be written, the image is deleted again."""
    try:
        content = prepare_post(title, body, tags, publish, publish_at=publish_at,
                               members_only=members_only, cover=cover, send_newsletter=send_newsletter)
        return _insert_post(author, content)
    except BaseException:
        delete_image(cover)
        raise


def _insert_post(author: User, content: PostContent) -> Post:
    for attempt in range(3):
        try:
            with transaction() as session:
                named = _tags_named(content.tag_names)
                # tags=[]: known empty, so replacing them below loads nothing
                post = Post(author_id=author.id, tags=[],
                            slug=unique_slug(Post.slug, slugify(content.title), reserved=RESERVED_SLUGS))
                session.add(post)
                _apply(post, content, named)
                session.flush()
                _announce(post)
            return post
        except IntegrityError as error:
            # Another request took the same slug between our check and insert: try again.
            if "slug" not in str(error.orig) or attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def update_post(post: Post, title: str, body: str, tags: str, publish: bool, *,
                publish_at: datetime | None = None, members_only: bool = False,
                cover: str | None = None, remove_cover: bool = False,
                send_newsletter: bool = False) -> None:
    """Edit a post; its slug stays the same so links keep working.

    The edit applies to the version of the post this request read. Another edit committed
    since then wins, and this one raises BlogError (``CHANGED_MEANWHILE``) and changes
    nothing: writing on top of it would mix the two (its tags with our title) or fail on
    rows it already removed.
    """
    try:
        content = prepare_post(title, body, tags, publish, publish_at=publish_at,
                               members_only=members_only, cover=cover, remove_cover=remove_cover,
                               send_newsletter=send_newsletter)
        old_cover = _write_edit(post, content)
    except BaseException:
        delete_image(cover)
        raise
    if old_cover is not None and old_cover != post.cover:
        delete_image(old_cover)  # replaced or removed: no committed row names it any more


def _write_edit(post: Post, content: PostContent) -> str | None:
    """Apply the edit to the latest committed row; returns the cover it had before."""
    seen = post.version
    try:
        with transaction() as session:
            # Re-read the row (and lock it on PostgreSQL; SQLite's BEGIN IMMEDIATE already
            # serializes writers), so the check below sees every committed edit.
            current = session.scalar(
                select(Post).where(Post.id == post.id).options(selectinload(Post.tags))
                .execution_options(populate_existing=True).with_for_update())
            if current is None:
                raise BlogError("This post was deleted meanwhile.")
            if current.version != seen:
                raise BlogError(CHANGED_MEANWHILE)
            old_cover = current.cover
            _apply(current, content, _tags_named(content.tag_names))
            session.flush()
            _announce(current)
    except StaleDataError as error:  # the versioned UPDATE itself found a newer row
        raise BlogError(CHANGED_MEANWHILE) from error
    return old_cover


def delete_post(post: Post) -> None:
    """Delete a post; its comments, likes and tag links go with it (database cascades).
    An edit committed since the post was read does not stop the deletion."""
    with transaction() as session:
        cover = session.scalar(delete(Post).where(Post.id == post.id).returning(Post.cover))
    delete_image(cover)


def add_comment(post: Post, author: User, body: str) -> Comment:
    if not is_public(post):
        raise BlogError("Comments open when the post is published.", "body")
    body = xml_safe(body).strip()
    if not body:
        raise BlogError("Write a comment.", "body")
    with transaction() as session:
        comment = Comment(post_id=post.id, author_id=author.id, body=body)
        session.add(comment)
        session.flush()
        _tell_post_author(post, comment, author)
    return comment


def _tell_post_author(post: Post, comment: Comment, commenter: User) -> None:
    """Mail the post's author about a comment by someone else, unless they switched it off
    (in the comment's transaction: no mail for a comment that did not commit)."""
    if post.author_id == commenter.id:
        return
    author = db.session.get(User, post.author_id)
    if author is None or not author.active or not author.notify_comments:
        return
    queue_email("new_comment", author.email, f"{commenter.shown_name} commented on “{post.title}”",
                "new_comment", user=author, post=post, comment=comment, commenter=commenter)


def get_comment(comment_id: int) -> Comment | None:
    return db.session.scalar(
        select(Comment).where(Comment.id == comment_id).options(joinedload(Comment.post))
    )


def delete_comment(comment: Comment) -> None:
    with transaction() as session:
        session.delete(comment)


def _insert_once(table: Table, **values: Any) -> None:
    """Insert a row into an association table whose primary key is the pair; a concurrent
    request that inserted it first is no error (the savepoint keeps the transaction usable)."""
    session = db.session
    try:
        with session.begin_nested():
            session.execute(insert(table).values(**values))
    except IntegrityError:
        pass


def toggle_like(user: User, post: Post) -> bool:
    """Like the post, or take the like back; returns whether it is now liked.

    Two clicks racing each other cannot make two likes: the pair is the primary key, and a
    lost race reads as "already liked". A post not yet public takes no likes.
    """
    if not is_public(post):
        raise BlogError("Likes open when the post is published.")
    with transaction() as session:
        removed = affected_rows(session.execute(
            delete(likes).where(likes.c.user_id == user.id, likes.c.post_id == post.id)))
        if removed:
            return False
        _insert_once(likes, user_id=user.id, post_id=post.id)
        return True


def follow(follower: User, followed: User) -> None:
    """Follow a member (idempotent); following yourself is refused."""
    if follower.id == followed.id:
        raise BlogError("You cannot follow yourself.")
    with transaction():
        _insert_once(follows, follower_id=follower.id, followed_id=followed.id)


def unfollow(follower: User, followed: User) -> None:
    with transaction() as session:
        session.execute(delete(follows).where(and_(follows.c.follower_id == follower.id,
                                                   follows.c.followed_id == followed.id)))
