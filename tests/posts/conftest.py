"""What the posts tests share: posts made through the service, a cast of members with a
published post and a draft, and a row count."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from blog.accounts.models import User
from blog.extensions import db
from blog.posts import services
from blog.posts.models import Post
from tests.conftest import AuthActions


@pytest.fixture
def make_user(make_user):
    """The shared factory, but the blog's tests are about writing: its members are authors
    unless given other roles (``roles=()`` makes a plain reader)."""

    def factory(*args, roles=("author",), **kwargs):
        return make_user(*args, roles=roles, **kwargs)

    return factory


@pytest.fixture
def make_post(app):
    """Factory: ``make_post(author, "Title", tags="a, b", publish=False)`` through the service."""

    def factory(author: User, title: str = "Hello world", body: str = "Some *Markdown* text.",
                tags: str = "", publish: bool = True) -> Post:
        with app.app_context():
            return services.create_post(db.session.get(User, author.id), title, body, tags, publish)

    return factory


def count(app, model_or_table) -> int:
    """How many rows a model's table (or a plain table) has."""
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model_or_table))


@pytest.fixture
def cast(make_user, make_post):
    """alice (author), bob (another member), root (admin); a published post and a draft."""
    alice = make_user("alice")
    make_user("bob")
    make_user("root", admin=True)
    make_post(alice, "Public", publish=True)
    make_post(alice, "Secret", publish=False)
    return alice


def as_(client, who):
    """``client``, logged in as ``who`` unless ``who`` is None."""
    if who:
        AuthActions(client).login(who)
    return client
