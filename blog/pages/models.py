"""Pages an admin writes, and the site settings stored in the database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from blog.database import TimestampMixin, utcnow
from blog.extensions import Model

#: Where a page is linked from: nowhere (reachable by its address), the navigation bar at the
#: top of every page, or the footer.
PLACES = ("none", "nav", "footer")


class Page(TimestampMixin, Model):
    """A static page at ``/pages/<slug>``. ``body`` is Markdown as written; ``body_html`` is
    rendered and sanitized once, when the page is saved (as posts are)."""

    __tablename__ = "pages"
    __table_args__ = (
        CheckConstraint("place IN ('none', 'nav', 'footer')", name="place"),
        # The links of the navigation and the footer, in their order.
        Index("ix_pages_place_position", "place", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    #: Plain text of the start of the body: the page's meta description.
    excerpt: Mapped[str] = mapped_column(String(320), default="")
    place: Mapped[str] = mapped_column(String(10), default="none", server_default="none")
    #: Order among the links of the same place (smaller first, then by title).
    position: Mapped[int] = mapped_column(default=0, server_default="0")

    def __repr__(self) -> str:
        return f"<Page {self.slug}>"


class SiteSetting(Model):
    """One setting an admin changed (``title``, ``tagline``...): settings never changed have
    no row, and their value comes from the configuration."""

    __tablename__ = "site_settings"

    key: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
