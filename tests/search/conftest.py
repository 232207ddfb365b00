"""What the search tests share: authors and posts made through the post service, and how
to read a search page's results."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from blog.accounts.models import User
from blog.extensions import db
from blog.posts import services
from blog.posts.models import Post

# The migration tests' fixtures (an empty database of its own, an app on it), shared with
# tests/search/test_search_migrations.py.
from tests.test_migrations import empty_database_url, fresh_app  # noqa: F401


@pytest.fixture
def make_user(make_user: Callable[..., User]) -> Callable[..., User]:
    """The shared factory; members are authors unless given other roles."""

    def factory(*args: Any, roles: tuple[str, ...] = ("author",), **kwargs: Any) -> User:
        return make_user(*args, roles=roles, **kwargs)

    return factory


@pytest.fixture
def make_post(app: Flask) -> Callable[..., Post]:
    """``make_post(author, "Title", "Body", tags="a, b", publish=False, publish_at=...)``."""

    def factory(author: User, title: str, body: str = "Some text.", tags: str = "",
                publish: bool = True, publish_at: datetime | None = None,
                members_only: bool = False) -> Post:
        with app.app_context():
            return services.create_post(db.session.get(User, author.id), title, body, tags, publish,
                                        publish_at=publish_at, members_only=members_only)

    return factory


_TITLE = re.compile(r'<h2><a href="/posts/[^"]+">([^<]*)</a></h2>')


def found_titles(client: FlaskClient, query: str, **args: str) -> list[str]:
    """The titles /search lists for ``query``, in order (first page)."""
    response = client.get("/search", query_string={"q": query, **args})
    assert response.status_code == 200, (query, response.status_code)
    return [html.unescape(title) for title in _TITLE.findall(response.get_data(as_text=True))]


def accents_folded(app: Flask) -> bool:
    """Whether "cafe" finds "café" here: always on SQLite (FTS5's remove_diacritics); on
    PostgreSQL when the unaccent extension could be installed by the migration."""
    with app.app_context():
        if db.session.get_bind().dialect.name != "postgresql":
            return True
        return bool(db.session.scalar(text("SELECT 1 FROM pg_extension WHERE extname = 'unaccent'")))
