"""Per-member rate limits on writing posts and comments (POST_RATE_LIMIT, COMMENT_RATE_LIMIT)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import csrf_token, text_of
from tests.posts.conftest import as_


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"POST_RATE_LIMIT": "2 per hour", "COMMENT_RATE_LIMIT": "2 per minute"}


def _write(client, title: str, path: str = "/posts/new") -> Any:
    return client.post(path, data={"csrf_token": csrf_token(client, path), "title": title,
                                   "body": "Text.", "tags": "", "publish": "y"})


def test_writing_posts_is_limited_per_member(app, client, make_user) -> None:
    make_user("alice")
    make_user("bob")
    as_(client, "alice")
    assert _write(client, "One").status_code == 302
    assert _write(client, "One again", "/posts/one/edit").status_code == 302  # edits count too
    refused = _write(client, "Three")
    assert refused.status_code == 429
    assert "Too many requests" in text_of(refused)
    assert client.get("/posts/three").status_code == 404  # nothing written
    assert client.get("/posts/new").status_code == 200  # reading the form is not limited

    # Another member behind the same address has a budget of their own.
    other = app.test_client()
    as_(other, "bob")
    assert _write(other, "Bob's").status_code == 302


def test_commenting_is_limited_per_member(app, client, make_user, make_post) -> None:
    alice = make_user("alice")
    make_user("bob")
    make_post(alice, "Open")
    as_(client, "bob")

    def comment(body: str) -> Any:
        return client.post("/posts/open/comments",
                           data={"csrf_token": csrf_token(client, "/posts/open"), "body": body})

    assert comment("first").status_code == 302
    assert comment("second").status_code == 302
    refused = comment("third")
    assert refused.status_code == 429
    assert "third" not in text_of(client.get("/posts/open"))

    other = app.test_client()
    as_(other, "alice")
    response = other.post("/posts/open/comments",
                          data={"csrf_token": csrf_token(other, "/posts/open"), "body": "mine"})
    assert response.status_code == 302
