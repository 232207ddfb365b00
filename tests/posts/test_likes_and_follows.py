"""Likes and follows."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from blog.database_session import transaction
from blog.posts import services
from blog.posts.models import follows, likes
from tests.conftest import AuthActions, csrf_token, text_of
from tests.posts.conftest import count


def test_like_toggles_and_counts(client, cast, app):
    AuthActions(client).login("bob")
    token = csrf_token(client, "/posts/public")
    assert "0 likes" in client.get("/posts/public").get_data(as_text=True)
    client.post("/posts/public/like", data={"csrf_token": token})
    page = client.get("/posts/public").get_data(as_text=True)
    assert "1 like" in page and "1 likes" not in page and "you like this" in page and "Unlike" in page
    assert "1 like (you)" in client.get("/").get_data(as_text=True)
    client.post("/posts/public/like", data={"csrf_token": token})
    assert "0 likes" in client.get("/posts/public").get_data(as_text=True)
    assert count(app, likes) == 0


def test_like_needs_login_and_a_visible_post(client, cast):
    assert client.post("/posts/public/like", data={"csrf_token": csrf_token(client)}).status_code == 302
    AuthActions(client).login("bob")
    token = csrf_token(client, "/posts/public")
    assert client.post("/posts/secret/like", data={"csrf_token": token}).status_code == 404
    assert client.post("/posts/public/like", data={}).status_code == 400


def test_like_redirects_to_a_local_next_only(client, cast):
    AuthActions(client).login("bob")
    token = csrf_token(client, "/posts/public")
    response = client.post("/posts/public/like", data={"csrf_token": token, "next": "/?page=1"})
    assert response.headers["Location"] == "/?page=1"
    response = client.post("/posts/public/like", data={"csrf_token": token, "next": "//evil.example"})
    assert response.headers["Location"] == "/posts/public"


def test_follow_and_unfollow(client, cast, app, make_post):
    AuthActions(client).login("bob")
    token = csrf_token(client, "/users/alice")
    assert "0 followers" in client.get("/users/alice").get_data(as_text=True)
    client.post("/users/alice/follow", data={"csrf_token": token})
    client.post("/users/alice/follow", data={"csrf_token": token})  # idempotent
    page = client.get("/users/alice").get_data(as_text=True)
    assert "1 follower" in page and "1 followers" not in page and "Unfollow" in page
    assert "Public" in client.get("/feed").get_data(as_text=True)
    assert count(app, follows) == 1
    client.post("/users/alice/unfollow", data={"csrf_token": token})
    assert count(app, follows) == 0
    assert "Public" not in client.get("/feed").get_data(as_text=True)


def test_nobody_follows_themselves(client, cast, app):
    AuthActions(client).login("alice")
    response = client.post("/users/alice/follow", data={"csrf_token": csrf_token(client, "/users/alice")})
    assert response.status_code == 302
    assert "You cannot follow yourself." in text_of(client.get(response.headers["Location"]))
    assert count(app, follows) == 0
    # and the database refuses it too
    with app.app_context(), pytest.raises(IntegrityError), transaction() as session:
        session.execute(follows.insert().values(follower_id=1, followed_id=1,
                                                    created_at=services.utcnow()))


def test_follow_unknown_member_is_404_and_feed_needs_login(client, cast):
    assert client.get("/feed").status_code == 302
    AuthActions(client).login("bob")
    response = client.post("/users/nobody/follow", data={"csrf_token": csrf_token(client, "/")})
    assert response.status_code == 404
