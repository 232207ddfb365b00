"""Editing one post from several places at once, with real threads and real commits (a
SQLite file, or PostgreSQL): every edit either wins whole or is told the post changed
meanwhile; none fails with a 500, and the stored post is exactly one of the edits."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from blog.accounts import services as accounts
from blog.accounts.models import AUTHOR
from blog.extensions import db
from blog.posts import services
from blog.posts.models import Post
from tests.conftest import PASSWORD, AuthActions, csrf_token, text_of
from tests.shop.test_checkout_concurrency import run_together

EDITORS = 8


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"DB_POOL_SIZE": 25, "DB_MAX_OVERFLOW": 5, "RATELIMIT_ENABLED": False}


def _stored(app: Flask, slug: str) -> tuple[str, str, list[str], int]:
    with app.app_context():
        post = db.session.scalars(select(Post).where(Post.slug == slug)
                                  .options(selectinload(Post.tags))).one()
        return post.title, post.body, [tag.name for tag in post.tags], post.version


def test_concurrent_edits_of_one_post_never_fail(committed_app: Flask) -> None:
    app = committed_app
    with app.app_context():
        author = accounts.create_user("alice", "alice@example.com", PASSWORD, roles=(AUTHOR,))
        slug = services.create_post(author, "Shared", "First draft.", "start, common", True).slug
    first_version = _stored(app, slug)[3]
    clients = []
    for _ in range(EDITORS):
        client = app.test_client()
        assert AuthActions(client).login("alice").status_code == 302
        clients.append(client)
    forms = [{"csrf_token": csrf_token(client, f"/posts/{slug}/edit"), "title": f"Version {n}",
              "body": f"Body of version {n}.\n\n" + "Long text. " * 2000,
              "tags": f"only-{n}, common, extra-{n}", "publish": "y"}
             for n, client in enumerate(clients)]

    responses = run_together([
        (lambda client=client, form=form: client.post(f"/posts/{slug}/edit", data=form))
        for client, form in zip(clients, forms, strict=True)])

    errors = [r for r in responses if isinstance(r, BaseException) or r.status_code >= 500]
    assert not errors, errors
    saved = [n for n, r in enumerate(responses) if r.status_code == 302]
    for response in responses:
        if response.status_code != 302:
            assert response.status_code == 409
            assert "This post was changed meanwhile; please reload and try again." in text_of(response)
    assert saved, "at least one edit wins"
    title, body, tags, version = _stored(app, slug)
    winner = int(title.removeprefix("Version "))
    assert winner in saved
    assert body == forms[winner]["body"]
    assert tags == sorted(["common", f"only-{winner}", f"extra-{winner}"])
    assert version > first_version


def test_an_edit_of_an_outdated_post_changes_nothing(committed_app: Flask) -> None:
    """The service side: a post object read before another edit committed is refused."""
    app = committed_app
    with app.app_context():
        author = accounts.create_user("alice", "alice@example.com", PASSWORD, roles=(AUTHOR,))
        slug = services.create_post(author, "Shared", "First.", "a", True).slug
    first_version = _stored(app, slug)[3]
    with app.app_context():
        stale = services.get_post_for_update(slug)
        with app.app_context():  # another request edits and commits meanwhile
            services.update_post(services.get_post_for_update(slug), "Theirs", "Their body.", "b", True)
        with pytest.raises(services.BlogError, match="changed meanwhile"):
            services.update_post(stale, "Mine", "My body.", "c", True)
    assert _stored(app, slug) == ("Theirs", "Their body.", ["b"], first_version + 1)
