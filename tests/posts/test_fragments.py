"""Visitors' lists from the cache (blog.posts.fragments): a hit runs no SQL, and every change
a list shows (a new post, an edit, a comment, a like, a deletion, an author's new name, a
scheduled post's time coming) shows at once; members always get a fresh list."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from blog.accounts.models import User
from blog.database import utcnow
from blog.extensions import db
from blog.posts import services
from blog.posts.models import Post
from tests.conftest import AuthActions, page_statements, text_of


@pytest.fixture
def blog(app: Flask, make_user: Any, make_post: Any) -> dict[str, Any]:
    alice = make_user("alice")
    bob = make_user("bob")
    make_post(alice, "First words", tags="news")
    return {"alice": alice, "bob": bob}


def _with_session(app: Flask, work: Any) -> None:
    with app.app_context():
        work()


def test_a_second_visitor_is_served_without_sql(client, blog):
    assert page_statements(client, "/").count > 0
    assert page_statements(client, "/").count == 0
    assert "First words" in text_of(client.get("/"))


def test_a_new_post_shows_at_once(client, app, blog, make_post):
    assert "Fresh news" not in text_of(client.get("/"))
    make_post(blog["alice"], "Fresh news", tags="news")
    assert "Fresh news" in text_of(client.get("/"))
    assert "Fresh news" in text_of(client.get("/tags/news"))


def test_edits_comments_likes_and_deletions_show_at_once(client, app, blog):
    client.get("/")
    with app.app_context():
        post = db.session.scalar(select(Post).where(Post.slug == "first-words"))
        bob = db.session.get(User, blog["bob"].id)
        services.add_comment(post, bob, "Nice")
    assert "1 comment" in text_of(client.get("/"))
    with app.app_context():
        post = db.session.scalar(select(Post).where(Post.slug == "first-words"))
        services.toggle_like(db.session.get(User, blog["bob"].id), post)  # a Core INSERT
    assert "1 like" in text_of(client.get("/"))
    with app.app_context():
        db.session.execute(update(User).where(User.username == "alice").values(username="alicia"))
        db.session.commit()
    assert "alicia" in text_of(client.get("/"))
    with app.app_context():
        post = db.session.scalar(select(Post).where(Post.slug == "first-words"))
        services.delete_post(post)
    assert "First words" not in text_of(client.get("/"))


def test_a_rolled_back_write_keeps_the_cached_list(client, app, blog):
    client.get("/")
    with app.app_context():
        db.session.execute(update(Post).values(title="Never shown"))
        db.session.rollback()
    assert page_statements(client, "/").count == 0


def test_a_scheduled_post_shows_when_its_time_comes(client, app, blog, make_post):
    post = make_post(blog["alice"], "Soon")
    with app.app_context():
        db.session.execute(update(Post).where(Post.id == post.id)
                           .values(published_at=utcnow() + timedelta(seconds=1.5)))
        db.session.commit()
    assert "Soon" not in text_of(client.get("/"))
    assert page_statements(client, "/").count == 0  # kept until then
    time.sleep(1.6)
    assert "Soon" in text_of(client.get("/"))


def test_members_get_their_own_fresh_list(client, app, blog):
    client.get("/")  # a visitor's copy is cached
    AuthActions(client).login("bob")
    assert page_statements(client, "/").count == page_statements(client, "/").count > 0


def test_a_visitor_s_list_carries_last_modified_and_answers_304(client, blog):
    first = client.get("/")
    assert first.last_modified is not None and first.headers["ETag"]
    again = client.get("/", headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert again.status_code == 304


def test_the_cache_down_is_passed_by(app, client, blog, monkeypatch):
    from blog.extensions import cache

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("the cache is down")

    with app.app_context():
        for name in ("get", "set", "add", "delete"):
            monkeypatch.setattr(cache, name, broken)
    response = client.get("/")
    assert response.status_code == 200 and "First words" in text_of(response)


def test_old_numbered_links_are_answered_from_the_cache_too(client, app, blog, make_post):
    """``?page=N`` redirects to its cursor, or is 404 past the end; a visitor asking again is
    answered without SQL, and a new post (which moves where pages start) is seen at once."""
    from blog.database import count_statements
    from tests.conftest import warm_site_cache

    app.config["POSTS_PER_PAGE"] = 1
    make_post(blog["alice"], "Second words")

    def ask(path: str) -> tuple[int, str | None, int]:
        warm_site_cache(app)
        with count_statements() as counted:
            response = client.get(path)
        return response.status_code, response.headers.get("Location"), counted.count

    status, location, first = ask("/?page=2")
    assert status == 302 and location and "cursor=" in location and first > 0
    assert ask("/?page=2") == (302, location, 0)
    assert ask("/?page=3")[0] == 404
    assert ask("/?page=3") == (404, None, 0)

    make_post(blog["bob"], "Third words")
    status, _, counted = ask("/?page=3")
    assert status == 302 and counted > 0
    assert ask("/?page=2")[1] != location  # page 2 now starts a post later
