"""Characters XML 1.0 cannot carry never reach the database through posts or comments, so the
Atom feed stays well-formed whatever members paste."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import select

from blog.extensions import db
from blog.posts import services
from blog.posts.models import Comment, Post
from blog.text import xml_safe
from tests.conftest import csrf_token, text_of
from tests.posts.conftest import as_

ATOM = "{http://www.w3.org/2005/Atom}"
#: Every control character XML refuses (tab, newline and carriage return are allowed), and the
#: two non-characters U+FFFE and U+FFFF.
BAD = "".join(chr(c) for c in range(1, 32) if chr(c) not in "\t\n\r") + "\ufffe\uffff"


def _feed(client) -> ET.Element:
    response = client.get("/feed.atom")
    assert response.status_code == 200
    return ET.fromstring(response.get_data())  # raises on invalid XML


def test_xml_safe_keeps_what_xml_carries() -> None:
    kept = "tab\there\nline\r\nend é 漢 😀 \ue000 \ufffd"
    assert xml_safe(kept) == kept
    assert xml_safe(f"a{BAD}b\ud800c\udfffd") == "abcd"


def test_a_post_with_control_characters_keeps_the_feed_valid(app, client, make_user) -> None:
    make_user("alice")
    as_(client, "alice")
    response = client.post("/posts/new", data={
        "csrf_token": csrf_token(client, "/posts/new"), "title": f"Pasted{BAD} title",
        "body": f"First\tline\n\nSecond{BAD} *para*", "tags": f"ta{BAD}g, other", "publish": "y"})
    assert response.status_code == 302
    with app.app_context():
        post = db.session.scalars(select(Post)).one()
        assert (post.title, post.body) == ("Pasted title", "First\tline\n\nSecond *para*")
    entry = _feed(client).find(f"{ATOM}entry")
    assert entry is not None
    assert entry.findtext(f"{ATOM}title") == "Pasted title"
    assert sorted(c.get("term") for c in entry.findall(f"{ATOM}category")) == ["other", "tag"]
    assert "Second <em>para</em>" in entry.findtext(f"{ATOM}content")


def test_the_service_drops_lone_surrogates_too(app, client, make_user) -> None:
    alice = make_user("alice")
    with app.test_request_context():
        post = services.create_post(alice, "Half\ud83d a smile", f"Body\udc00{BAD} text", "x\ud800y", True)
        services.update_post(post, "Half\ud83d a smile again", "Body\udfff", "\ufffez", True)
    root = _feed(client)
    assert [e.findtext(f"{ATOM}title") for e in root.iter(f"{ATOM}entry")] == ["Half a smile again"]
    with app.app_context():
        stored = db.session.scalars(select(Post)).one()
        assert stored.body == "Body"


def test_a_title_of_nothing_but_control_characters_is_refused(app, client, make_user) -> None:
    make_user("alice")
    as_(client, "alice")
    response = client.post("/posts/new", data={
        "csrf_token": csrf_token(client, "/posts/new"), "title": BAD, "body": "Text", "publish": "y"})
    assert response.status_code == 200
    assert "This field is required" in text_of(response)
    with app.app_context():
        assert db.session.scalars(select(Post)).all() == []


def test_comments_are_cleaned(app, client, make_user, make_post) -> None:
    alice = make_user("alice")
    make_post(alice, "Open")
    as_(client, "alice")

    def comment(body: str):
        return client.post("/posts/open/comments",
                           data={"csrf_token": csrf_token(client, "/posts/open"), "body": body})

    assert comment(f"Nice{BAD} one").status_code == 302
    assert comment(BAD).status_code == 400
    with app.app_context():
        assert db.session.scalars(select(Comment.body)).all() == ["Nice one"]
        with app.test_request_context():
            post = db.session.scalars(select(Post)).one()
            with pytest.raises(services.BlogError, match="Write a comment"):
                services.add_comment(post, alice, "\ud800")


def test_a_post_form_without_tags_is_still_saved(app, client, make_user) -> None:
    make_user("alice")
    as_(client, "alice")
    response = client.post("/posts/new", data={"csrf_token": csrf_token(client, "/posts/new"),
                                               "title": "No tags", "body": "Text."})
    assert response.status_code == 302
