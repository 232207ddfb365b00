"""Members, roles, login sessions and failed-login records."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from flask_login import UserMixin
from sqlalchemy import Column, ForeignKey, Index, String, Table, inspect, literal, select, true
from sqlalchemy.orm import InstanceState, Mapped, column_property, mapped_column, relationship, validates

from blog.database import TimestampMixin, joined_text, utcnow
from blog.extensions import Model, db

#: The roles a member may hold besides being a reader (every member is one; no row needed):
#: authors write and publish their own posts, editors anyone's (and moderate comments),
#: admins everything. Capabilities are decided in blog.security.
AUTHOR = "author"
EDITOR = "editor"
ADMIN = "admin"
ROLES = (AUTHOR, EDITOR, ADMIN)

DISPLAY_NAME_MAX = 60
BIO_MAX = 500
WEBSITE_MAX = 200


def lookup_key(value: str) -> str:
    """How usernames and emails are compared: trimmed and lower-cased."""
    return value.strip().lower()

user_roles = Table(
    "user_roles",
    db.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Role(Model):
    """A named capability set: ``admin`` (made by the first migration), ``author`` and
    ``editor`` (by 0009_roles)."""

    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")

    def __repr__(self) -> str:
        return f"<Role {self.name}>"


class User(UserMixin, TimestampMixin, Model):
    """A member. Username and email are unique without regard to case.

    ``username_key`` and ``email_key`` hold the lower-cased values and carry the unique
    constraints, so case-insensitive uniqueness holds in the database even under racing
    requests. The model keeps them in step whenever ``username`` or ``email`` is set (plain
    columns rather than database-generated ones, which SQLite's table rebuilds in migrations
    cannot copy).
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    username_key: Mapped[str] = mapped_column(String(32), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    email_key: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(default=True)
    #: When the member followed the link mailed to ``email``; None until then (nothing is
    #: refused to an unverified member; pages remind them).
    email_verified_at: Mapped[datetime | None] = mapped_column()

    # The public profile (/users/<username>), edited at /auth/profile.
    display_name: Mapped[str] = mapped_column(String(DISPLAY_NAME_MAX), default="", server_default="")
    bio: Mapped[str] = mapped_column(String(BIO_MAX), default="", server_default="")
    #: An http(s) address, checked by the form; shown with rel="nofollow ugc".
    website: Mapped[str] = mapped_column(String(WEBSITE_MAX), default="", server_default="")
    #: A stored image name from blog.images (re-encoded, metadata stripped), or None.
    avatar: Mapped[str | None] = mapped_column(String(100))
    #: Email me when someone comments on my post.
    notify_comments: Mapped[bool] = mapped_column(default=True, server_default=true())

    # Loaded only where needed (the admin's member pages); the user loader reads role_names instead.
    # Collections never load lazily (lazy="raise_on_sql"): a page that touches one it did not
    # eager-load fails in tests instead of costing a query per row.
    roles: Mapped[list[Role]] = relationship(secondary=user_roles, lazy="raise_on_sql")
    #: The names of the member's roles, comma-separated (no role name has one), or None: what
    #: the login lookup reads in its one statement. A correlated subquery is two index lookups;
    #: SQLite answered a joinedload of ``roles`` by materializing every member's roles (0.2 ms
    #: a request at 1,000 authors). Deferred, so other loads of a member skip it, and
    #: reloaded by its own query where a member expired by a rollback is asked again.
    role_names: Mapped[str | None] = column_property(
        select(joined_text(Role.name, literal(",")))
        .select_from(user_roles.join(Role, Role.id == user_roles.c.role_id))
        .where(user_roles.c.user_id == id)
        .correlate_except(Role, user_roles)
        .scalar_subquery(),
        deferred=True,
    )
    sessions: Mapped[list[UserSession]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    # The login token this request is authenticated by, set by the user loader. Deliberately
    # not annotated (SQLAlchemy would take an annotation for a column); the cast gives the
    # type checker its type.
    current_session_token = cast("str | None", None)

    @validates("username", "email")
    def _keep_key_in_step(self, name: str, value: str) -> str:
        setattr(self, f"{name}_key", lookup_key(value))
        return value

    def get_id(self) -> str:
        """Flask-Login stores this in the session and remember cookies: the login token,
        not the user id, so that deleting the login record revokes every copy of them."""
        if self.current_session_token is None:
            raise RuntimeError("user has no login session; use accounts.services.log_in")
        return self.current_session_token

    @property
    def is_active(self) -> bool:  # Flask-Login refuses to log in inactive users
        return self.active

    def has_role(self, name: str) -> bool:
        """Whether the member holds the role called ``name``."""
        return name in self._role_name_set()

    def has_any_role(self, *names: str) -> bool:
        """Whether the member holds at least one of the roles ``names``."""
        return not self._role_name_set().isdisjoint(names)

    def _role_name_set(self) -> frozenset[str]:
        # ``roles`` when it is loaded (it is what a change of roles changes, before the
        # commit that would refresh role_names); else the names, one query if not read yet.
        state: InstanceState[User] = inspect(self)
        if state.persistent and "roles" in state.unloaded:
            return frozenset(self.role_names.split(",")) if self.role_names else frozenset()
        return frozenset(role.name for role in self.roles)

    @property
    def is_admin(self) -> bool:
        return self.has_role(ADMIN)

    @property
    def shown_name(self) -> str:
        """The display name, or the username when there is none."""
        return self.display_name or self.username

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class UserSession(Model):
    """One login: the server-side record a session or remember cookie points at.

    Only a SHA-256 of the token is stored, so a copy of the database cannot be turned into
    working cookies. Deleting the row logs that browser out, wherever the cookie was copied.
    """

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    remember: Mapped[bool] = mapped_column(default=False)
    ip_address: Mapped[str] = mapped_column(String(45), default="")
    user_agent: Mapped[str] = mapped_column(String(200), default="")

    user: Mapped[User] = relationship(back_populates="sessions")


class LoginAttempt(Model):
    """A login attempt that has not (yet) succeeded, for throttling.

    Rows live in the database so that every worker process and host sees the same counts.
    ``account_key`` is ``user:<id>`` for a known member (whether they typed the username or
    the email) and ``name:<what was typed>`` otherwise.
    """

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_account_key_created_at", "account_key", "created_at"),
        Index("ix_login_attempts_ip_address_created_at", "ip_address", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_key: Mapped[str] = mapped_column(String(260))
    ip_address: Mapped[str] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
