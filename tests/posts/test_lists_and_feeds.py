"""Lists of posts: home, tags, search, the Atom feed; pagination, and a fixed number of SQL
statements per list page."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import select

from blog.accounts.models import User
from blog.extensions import db
from blog.posts import listing, services
from blog.posts.models import Post
from tests.conftest import AuthActions, page_statements, text_of
from tests.posts.conftest import count

# --- lists, pagination, search --------------------------------------------------------------------


def test_home_is_newest_first_and_paginated(client, app, make_user, make_post):
    alice = make_user("alice")
    for number in range(12):
        make_post(alice, f"Post number {number:02d}")
    first = client.get("/").get_data(as_text=True)
    assert first.index("Post number 11") < first.index("Post number 02")
    assert "Post number 01" not in first
    # An old numbered link lands on the same posts, through a redirect to its cursor.
    old_link = client.get("/?page=2")
    assert old_link.status_code == 302 and "cursor=" in old_link.headers["Location"]
    second = client.get(old_link.headers["Location"]).get_data(as_text=True)
    assert "Post number 01" in second and "Post number 00" in second and "Post number 11" not in second


@pytest.mark.parametrize("query, status", [
    ("page=abc", 200), ("page=", 200), ("page=1.5", 200), ("page=1", 200), ("page=0", 404), ("page=-1", 404),
    ("page=2", 404), ("page=99", 404), ("page=999999999999999999999", 404),
])
def test_page_argument_edges(client, app, make_user, make_post, query, status):
    make_post(make_user("alice"), "Only one")
    assert client.get(f"/?{query}").status_code == status


def test_tag_page(client, make_user, make_post):
    alice = make_user("alice")
    make_post(alice, "Tagged post", tags="Prints")
    make_post(alice, "Other post", tags="essays")
    page = client.get("/tags/prints").get_data(as_text=True)
    assert "Tagged post" in page and "Other post" not in page
    assert client.get("/tags/PRINTS").status_code == 200
    assert client.get("/tags/unknown").status_code == 404


# Full-text search (blog.search; its own tests are in tests/search): punctuation separates
# words and is never a wildcard, and text with no word in it finds nothing.
@pytest.mark.parametrize("query, expected", [
    ("needle", {"Needle in title", "Body match"}),
    ("NEEDLE", {"Needle in title", "Body match"}),
    ("100%", {"Percent post"}),
    ("a_b", {"Underscore post", "Decoy"}),  # the words "a" and "b" side by side: "a-b" too
    ("C:\\temp", {"Backslash post"}),
    ("%", set()),
    ("_", set()),
    ("'; DROP TABLE posts; --", set()),
    ("\\", set()),
])
def test_search_is_case_insensitive_and_literal(client, app, make_user, make_post, query, expected):
    alice = make_user("alice")
    make_post(alice, "Needle in title", body="plain")
    make_post(alice, "Body match", body="there is a needle here")
    make_post(alice, "Percent post", body="growth of 100% this year")
    make_post(alice, "Underscore post", body="snake a_b case")
    make_post(alice, "Backslash post", body="path C:\\temp")
    make_post(alice, "Decoy", body="a-b aXb 1000 percent")
    response = client.get("/search", query_string={"q": query})
    assert response.status_code == 200
    html = text_of(response)
    found = {title for title in ("Needle in title", "Body match", "Percent post", "Underscore post",
                                 "Backslash post", "Decoy") if f">{title}</a>" in html}
    assert found == expected
    assert count(app, Post) == 6


def test_empty_search_shows_the_form(client):
    response = client.get("/search")
    assert response.status_code == 200 and 'name="q"' in response.get_data(as_text=True)


# --- Atom -----------------------------------------------------------------------------------------


ATOM = "{http://www.w3.org/2005/Atom}"


def test_atom_feed_is_valid_and_absolute(client, make_user, make_post):
    alice = make_user("alice")
    for number in range(22):
        make_post(alice, f"Entry {number} & <friends>", body="Text with <b>html</b> & **md**",
                  tags="a")
    make_post(alice, "Unpublished", publish=False)
    response = client.get("/feed.atom", headers={"Host": "evil.example"})
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    assert b"evil.example" not in response.data
    root = ET.fromstring(response.data)
    assert root.tag == f"{ATOM}feed"
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 20
    assert entries[0].find(f"{ATOM}title").text == "Entry 21 & <friends>"
    for entry in entries:
        for name in ("id", "title", "updated", "published", "author", "content"):
            assert entry.find(f"{ATOM}{name}") is not None, name
        # From SITE_URL, never the Host the request came with.
        assert entry.find(f"{ATOM}id").text.startswith("http://127.0.0.1:5000/posts/")
        assert entry.find(f"{ATOM}link").get("href").startswith("http://127.0.0.1:5000/posts/")
        assert "<strong>md</strong>" in entry.find(f"{ATOM}content").text
    assert root.find(f"{ATOM}updated").text.endswith("Z")
    assert b"Unpublished" not in response.data


def test_atom_feed_when_empty(client):
    root = ET.fromstring(client.get("/feed.atom").data)
    assert root.findall(f"{ATOM}entry") == [] and root.find(f"{ATOM}updated") is not None


# --- statement counts -----------------------------------------------------------------------------


@pytest.fixture
def busy_blog(app, make_user, make_post):
    """Builds ``n`` published posts, each with 3 tags, 2 comments and 2 likes, by alice; bob
    follows alice. Returns a function so a test can compare sizes."""
    alice = make_user("alice")
    bob = make_user("bob")
    carol = make_user("carol")

    def build(n: int) -> None:
        with app.app_context():
            readers = [db.session.get(User, bob.id), db.session.get(User, carol.id)]
            author = db.session.get(User, alice.id)
            for number in range(n):
                post = services.create_post(author, f"Busy {number}", "body needle",
                                            f"tag{number}, common, t{number % 3}", True)
                for reader in readers:
                    services.add_comment(post, reader, "comment")
                    services.toggle_like(reader, post)
            if not services.is_following(bob.id, alice.id):
                services.follow(readers[0], author)

    return build


LIST_PAGES = ["/", "/tags/common", "/users/alice", "/feed", "/search?q=needle"]


@pytest.mark.parametrize("logged_in", [False, True])
def test_list_pages_run_a_fixed_number_of_statements(client, busy_blog, logged_in, app):
    busy_blog(3)
    if logged_in:
        AuthActions(client).login("bob")
    small = {}
    for path in LIST_PAGES:
        if path == "/feed" and not logged_in:
            continue
        small[path] = page_statements(client, path).count
    busy_blog(app.config["POSTS_PER_PAGE"] - 3 + 2)  # a full first page, and a second page
    for path, statements in small.items():
        counted = page_statements(client, path)
        assert counted.count == statements, (path, counted.statements)
        assert "Busy" in client.get(path).get_data(as_text=True)


def test_post_page_runs_a_fixed_number_of_statements(client, app, make_user, make_post):
    alice = make_user("alice")
    readers = [make_user(f"reader{i}") for i in range(6)]
    make_post(alice, "Quiet", tags="a")
    make_post(alice, "Busy", tags="a, b, c, d")
    with app.app_context():
        busy = db.session.scalar(select(Post).where(Post.slug == "busy"))
        for reader in readers:
            user = db.session.get(User, reader.id)
            services.add_comment(busy, user, "hello")
            services.toggle_like(user, busy)
    quiet = page_statements(client, "/posts/quiet").count
    assert page_statements(client, "/posts/busy").count == quiet
    assert "6 likes" in client.get("/posts/busy").get_data(as_text=True)
    assert "6 comments" in client.get("/posts/busy").get_data(as_text=True)


def test_list_page_statement_budget(client, busy_blog):
    busy_blog(3)
    # A visitor's first look: items (author joined, counts and tag names as subqueries) and
    # when the next scheduled post is due (how long the rendered list may be kept); no count
    # of the whole table. The next visitor is served the rendered list: no statement at all.
    assert page_statements(client, "/").count == 2
    assert page_statements(client, "/").count == 0
    assert page_statements(client, "/tags/common").count == 3  # plus the tag
    assert page_statements(client, "/tags/common").count == 1


# --- cookies --------------------------------------------------------------------------------------


def test_public_pages_set_no_cookie_for_anonymous_visitors(client, cast):
    for path in ("/posts/public", "/users/alice", "/tags/none", "/search?q=x", "/feed.atom"):
        response = client.get(path)
        assert "Set-Cookie" not in response.headers, path


def test_a_list_shows_each_posts_tags_by_name_from_its_own_statement(client, app, make_user, make_post):
    """The tag names come in the page's statement (one joined column), split and sorted by
    name: spaces, accents and punctuation inside a name survive, and a post with no tags
    shows none."""
    alice = make_user("alice")
    make_post(alice, "Tagged", tags="zebra crossing, Été, c++, apple")
    make_post(alice, "Bare")
    page = client.get("/").get_data(as_text=True)
    assert page.index(">Bare<") < page.index(">Tagged<")  # newest first
    tagged = page[page.index(">Tagged<"):]
    shown = [name for name in ("#apple", "#c++", "#zebra crossing", "#été") if name in tagged]
    assert shown == ["#apple", "#c++", "#zebra crossing", "#été"]
    assert [tagged.index(name) for name in shown] == sorted(tagged.index(name) for name in shown)
    assert 'href="/tags/zebra%20crossing"' in tagged and 'href="/tags/%C3%A9t%C3%A9"' in tagged
    with app.test_request_context("/"):
        posts = {post.title: post for post in listing.fetch(services.listed_posts())}
    assert [tag.name for tag in posts["Tagged"].tags] == ["apple", "c++", "zebra crossing", "été"]
    assert posts["Bare"].tags == []
