"""Comments: plain text, who may delete one, validation, and login."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from blog.accounts.models import User
from blog.extensions import db
from blog.posts import services
from blog.posts.models import Comment, Post
from tests.conftest import AuthActions, csrf_token, text_of
from tests.posts.conftest import as_, count


def test_comments_are_plain_text_with_line_breaks(client, auth, make_user, make_post):
    make_post(make_user("alice"), "Talk")
    auth.login()
    client.post("/posts/talk/comments", data={"csrf_token": csrf_token(client, "/posts/talk"),
                                              "body": "line one\nline *two*"})
    html = client.get("/posts/talk").get_data(as_text=True)
    assert "line one\nline *two*" in html  # kept as typed; CSS pre-wrap shows the break
    assert "<em>two</em>" not in html


@pytest.fixture
def discussion(cast, app, make_user):
    """A comment by bob and one by carol on alice's public post."""
    make_user("carol")
    with app.app_context():
        post = db.session.scalar(select(Post).where(Post.slug == "public"))
        ids = {}
        for name in ("bob", "carol"):
            user = db.session.scalar(select(User).where(User.username == name))
            ids[name] = services.add_comment(post, user, f"{name} says hi").id
    return ids


@pytest.mark.parametrize("who, target, status", [
    (None, "bob", 302), ("carol", "bob", 403), ("bob", "bob", 302),
    ("alice", "bob", 302), ("root", "carol", 302), ("bob", "carol", 403),
])
def test_who_may_delete_a_comment(client, discussion, app, who, target, status):
    as_(client, who)
    response = client.post(f"/comments/{discussion[target]}/delete",
                           data={"csrf_token": csrf_token(client, "/posts/public")})
    assert response.status_code == status
    with app.app_context():
        gone = db.session.get(Comment, discussion[target]) is None
    assert gone is (status == 302 and who is not None)


def test_comment_validation_and_login(client, cast, app):
    assert client.post("/posts/public/comments", data={}).status_code == 400  # no CSRF token
    AuthActions(client).login("bob")
    response = client.post("/posts/public/comments", data={
        "csrf_token": csrf_token(client, "/posts/public"), "body": "   "})
    assert response.status_code == 400 and "This field is required." in text_of(response)
    assert count(app, Comment) == 0
    assert client.post("/posts/secret/comments", data={
        "csrf_token": csrf_token(client, "/posts/public"), "body": "hi"}).status_code == 404
