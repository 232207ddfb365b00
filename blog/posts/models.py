"""Posts, comments, tags, likes and follows.

Relationship patterns: one-to-many with cascades (a post's comments), many-to-many through
association tables (tags, likes) and a self-referential many-to-many (members following
members). Collections are never loaded implicitly on list pages: queries say what they load.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, String, Table, Text, false, literal, text
from sqlalchemy.orm import Mapped, mapped_column, query_expression, relationship

from blog.accounts.models import User
from blog.database import TimestampMixin, UTCDateTime, utcnow
from blog.extensions import Model, db

post_tags = Table(
    "post_tags",
    db.metadata,
    Column("post_id", ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True),
)

#: One like per member and post: the primary key is the pair.
likes = Table(
    "likes",
    db.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("post_id", ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True, index=True),
    Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
)

#: Who follows whom: one row per pair, and nobody follows themselves.
follows = Table(
    "follows",
    db.metadata,
    Column("follower_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("followed_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
    Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    CheckConstraint("follower_id <> followed_id", name="not_self"),
)


class Tag(Model):
    """A topic; names are stored trimmed and lower-cased, so "Python" and "python " are one tag."""

    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)

    def __repr__(self) -> str:
        return f"<Tag {self.name}>"


class Post(TimestampMixin, Model):
    """A piece of writing. ``body`` is Markdown as written; ``body_html`` is rendered and
    sanitized once, when the post is saved; ``excerpt`` is plain text for list pages."""

    __tablename__ = "posts"
    __table_args__ = (
        # The home page, tag pages and feeds: published posts, newest first. The id ends
        # every list's sort key (ties), so keyset pages seek straight to their first row.
        Index("ix_posts_published_published_at_id", "published", "published_at", "id"),
        # Profile pages: one author's posts, newest first.
        Index("ix_posts_author_id_published_at_id", "author_id", "published_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(220), unique=True)
    body: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    excerpt: Mapped[str] = mapped_column(String(320), default="")
    published: Mapped[bool] = mapped_column(default=False)
    #: When the post becomes visible: a published post whose time is still to come is
    #: "scheduled", hidden from everyone but its author, editors and admins (decided when
    #: each query runs, so no job can miss the moment).
    published_at: Mapped[datetime | None] = mapped_column()
    #: Visitors see the title and excerpt and an invitation to register; members read it all.
    members_only: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: A stored image's name (:mod:`blog.images`): on top of the post, as a thumbnail in lists
    #: and as the picture of the post's social card. Its size is in the name, so a list
    #: shows it with width and height without opening a file or running a statement.
    cover: Mapped[str | None] = mapped_column(String(100))
    #: The author asked for the post to be emailed to the newsletter's subscribers when it
    #: becomes visible (once: blog.newsletter keeps the record of what was sent).
    send_newsletter: Mapped[bool] = mapped_column(default=False, server_default=false())
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    #: The post's tag names, space-separated: a copy of ``tags`` in the row itself, so the
    #: full-text index (blog.search: FTS5 triggers, PostgreSQL's generated column) can read
    #: them without a join. Written with the tags, by the post service.
    tag_names: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: Bumped by every UPDATE (``version_id_col``): an edit based on an older version fails
    #: instead of silently overwriting a concurrent one.
    version: Mapped[int] = mapped_column(default=1, server_default=text("1"))

    author: Mapped[User] = relationship()
    # Collections never load lazily: whoever lists posts says what it loads (selectinload).
    tags: Mapped[list[Tag]] = relationship(secondary=post_tags, order_by=Tag.name, lazy="raise_on_sql")
    comments: Mapped[list[Comment]] = relationship(
        back_populates="post", cascade="all, delete-orphan", passive_deletes=True, lazy="raise_on_sql",
        order_by="Comment.created_at, Comment.id",
    )

    # Filled per query with with_expression(), in the same SELECT as the post, so list pages
    # need no statement per post to show counts.
    comment_count: Mapped[int] = query_expression(literal(0))
    like_count: Mapped[int] = query_expression(literal(0))
    liked_by_viewer: Mapped[bool] = query_expression(literal(False))

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (read once by SQLAlchemy)

    def __repr__(self) -> str:
        return f"<Post {self.slug}>"


class Comment(TimestampMixin, Model):
    """A reader's plain-text comment; deleted with its post or its author."""

    __tablename__ = "comments"
    __table_args__ = (
        Index("ix_comments_post_id_created_at", "post_id", "created_at"),
        # The admin's recent comments, across all posts.
        Index("ix_comments_created_at_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)

    post: Mapped[Post] = relationship(back_populates="comments")
    author: Mapped[User] = relationship()


class Media(TimestampMixin, Model):
    """An image an author uploaded to their library, to show in posts (``/posts/media``).

    ``name`` is the stored file's name (:mod:`blog.images`), also what the post's Markdown
    points at; ``filename`` is what the file was called on the author's computer, shown in
    the library to find it again (never used as a path).
    """

    __tablename__ = "media"
    __table_args__ = (
        # An author's library, newest first.
        Index("ix_media_owner_id_created_at", "owner_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100), unique=True)
    filename: Mapped[str] = mapped_column(String(200), default="")

    owner: Mapped[User] = relationship()

    def __repr__(self) -> str:
        return f"<Media {self.name}>"
