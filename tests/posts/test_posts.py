"""The blog: writing, drafts, Markdown safety, comments, tags, likes, follows, lists, search,
the Atom feed, and a fixed number of SQL statements per list page."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from blog.accounts.models import User
from blog.database import transaction
from blog.extensions import db
from blog.posts import services
from blog.posts.models import Comment, Post, Tag, follows, likes
from tests.conftest import AuthActions, csrf_token, page_statements, text_of


@pytest.fixture
def make_post(app):
    """Factory: ``make_post(author, "Title", tags="a, b", publish=False)`` through the service."""

    def factory(author: User, title: str = "Hello world", body: str = "Some *Markdown* text.",
                tags: str = "", publish: bool = True) -> Post:
        with app.app_context():
            return services.create_post(db.session.get(User, author.id), title, body, tags, publish)

    return factory


def write(client, **fields):
    data = {"csrf_token": csrf_token(client, "/posts/new"), "title": "A title", "body": "Body text",
            "tags": ""}
    data.update(fields)
    return client.post("/posts/new", data=data)


def count(app, model_or_table) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model_or_table))


# --- writing ----------------------------------------------------------------------------------


def test_write_publish_and_read(client, auth, make_user):
    make_user("alice")
    auth.login()
    response = write(client, title="My First Post", body="Hello **world**", tags="Art, art , prints",
                     publish="y")
    assert response.status_code == 302
    assert response.headers["Location"] == "/posts/my-first-post"
    page = client.get("/posts/my-first-post").get_data(as_text=True)
    assert "<strong>world</strong>" in page
    assert "#art" in page and "#prints" in page
    assert "My First Post" in client.get("/").get_data(as_text=True)


def test_unchecked_publish_saves_a_draft(client, auth, make_user, app):
    make_user("alice")
    auth.login()
    write(client, title="Draft thoughts")
    with app.app_context():
        post = db.session.scalar(select(Post))
        assert post.published is False and post.published_at is None
    assert "Draft thoughts" not in client.get("/").get_data(as_text=True)
    assert client.get("/posts/draft-thoughts").status_code == 200  # the author sees it


def test_writing_requires_login(client):
    response = client.get("/posts/new")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


@pytest.mark.parametrize("fields, message", [
    ({"title": ""}, "This field is required."),
    ({"title": "   "}, "This field is required."),
    ({"body": ""}, "This field is required."),
    ({"title": "x" * 201}, "Field cannot be longer than 200 characters."),
    ({"tags": ",".join(f"t{i}" for i in range(11))}, "Use at most 10 tags."),
])
def test_post_form_validation(client, auth, make_user, app, fields, message):
    make_user("alice")
    auth.login()
    response = write(client, **fields)
    assert response.status_code == 200
    assert message in text_of(response)
    assert count(app, Post) == 0


def test_slugs_are_unique_and_stable_across_edits(app, make_user, make_post, client, auth):
    alice = make_user("alice")
    first = make_post(alice, "Same Title")
    second = make_post(alice, "Same Title")
    third = make_post(alice, "Same title!")
    assert (first.slug, second.slug, third.slug) == ("same-title", "same-title-2", "same-title-3")
    assert make_post(alice, "Ünïcode & Co!").slug == "unicode-co"
    assert make_post(alice, "???").slug == "post"
    auth.login()
    response = client.post("/posts/same-title/edit", data={
        "csrf_token": csrf_token(client, "/posts/same-title/edit"), "title": "A New Title",
        "body": "changed", "tags": "", "publish": "y"})
    assert response.headers["Location"] == "/posts/same-title"
    assert "A New Title" in client.get("/posts/same-title").get_data(as_text=True)


def test_tags_are_normalised_and_shared(app, make_user, make_post):
    alice = make_user("alice")
    make_post(alice, "One", tags=" Python ,python,  Web   Dev ,")
    make_post(alice, "Two", tags="WEB dev")
    with app.app_context():
        assert db.session.scalars(select(Tag.name).order_by(Tag.name)).all() == ["python", "web dev"]
    assert services.parse_tags("a, A ,b,, ") == ["a", "b"]


def test_edit_form_shows_current_values_and_updates_tags(client, auth, make_user, make_post, app):
    alice = make_user("alice")
    make_post(alice, "Tagged", tags="one, two")
    auth.login()
    page = client.get("/posts/tagged/edit").get_data(as_text=True)
    assert 'name="tags" type="text" value="one, two"' in page
    assert '<input checked id="publish" name="publish"' in page
    client.post("/posts/tagged/edit", data={"csrf_token": csrf_token(client, "/posts/tagged/edit"),
                                            "title": "Tagged", "body": "b", "tags": "two, three"})
    with app.app_context():
        post = db.session.scalar(select(Post))
        assert [t.name for t in post.tags] == ["three", "two"]
        assert post.published is False  # unticked on edit: back to draft


def test_published_time_is_kept_when_republished(app, make_user, make_post):
    alice = make_user("alice")
    post = make_post(alice, "Keep time")
    with app.app_context():
        loaded = db.session.get(Post, post.id)
        services.update_post(loaded, "Keep time", "edited", "", True)
        assert loaded.published_at == post.published_at


# --- Markdown and XSS -------------------------------------------------------------------------


XSS_BODIES = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "![x](data:image/svg+xml;base64,PHN2Zz4=)",
    '<iframe src="https://evil.example"></iframe>',
    "<div onclick=alert(1)>hi</div>",
    "[x](JaVaScRiPt:alert(1))",
]


class Elements(HTMLParser):
    """The elements and attributes a browser would build from some HTML."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


@pytest.mark.parametrize("body", XSS_BODIES)
def test_markdown_output_is_sanitized(body):
    html = services.render_markdown(body)
    for tag, attrs in Elements(html).found:
        assert tag not in ("script", "iframe", "div", "object", "embed"), html
        assert not [name for name in attrs if name.startswith("on")], html
        for name in ("href", "src"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("javascript:", "data:", "vbscript:")), html


def test_links_get_nofollow_and_allowed_markup_survives():
    html = services.render_markdown("[site](https://example.com) *em* `code`\n\n> quote\n\n- item")
    assert '<a href="https://example.com" rel="nofollow noopener">site</a>' in html
    for tag in ("<em>", "<code>", "<blockquote>", "<li>"):
        assert tag in html


def test_markdown_is_rendered_once_on_save_and_lists_show_the_excerpt(app, make_user, make_post,
                                                                      client, monkeypatch):
    alice = make_user("alice")
    make_post(alice, "Rendered", body="# Heading\n\nSome **bold** words.")
    with app.app_context():
        post = db.session.scalar(select(Post))
        assert "<strong>bold</strong>" in post.body_html
        assert post.excerpt == "Heading Some bold words."

    def fail(*args):
        raise AssertionError("Markdown rendered on a read")

    monkeypatch.setattr(services, "render_markdown", fail)
    home = client.get("/").get_data(as_text=True)
    assert "Heading Some bold words." in home and "<strong>" not in home
    assert client.get("/posts/rendered").status_code == 200


def test_xss_in_titles_tags_and_comments_is_escaped(client, auth, make_user, make_post):
    alice = make_user("alice")
    make_post(alice, "<script>alert('t')</script>", tags="<b>x</b>")
    auth.login()
    slug = "script-alert-t-script"
    client.post(f"/posts/{slug}/comments", data={"csrf_token": csrf_token(client, f"/posts/{slug}"),
                                                 "body": "<img src=x onerror=alert(1)>"})
    for path in ("/", f"/posts/{slug}", "/tags/<b>x</b>"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in html and "<img src=x" not in html and "<b>x</b>" not in html


def test_comments_are_plain_text_with_line_breaks(client, auth, make_user, make_post):
    make_post(make_user("alice"), "Talk")
    auth.login()
    client.post("/posts/talk/comments", data={"csrf_token": csrf_token(client, "/posts/talk"),
                                              "body": "line one\nline *two*"})
    html = client.get("/posts/talk").get_data(as_text=True)
    assert "line one\nline *two*" in html  # kept as typed; CSS pre-wrap shows the break
    assert "<em>two</em>" not in html


# --- drafts and the permission matrix -----------------------------------------------------------


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
    if who:
        AuthActions(client).login(who)
    return client


@pytest.mark.parametrize("who, public, draft", [
    (None, 200, 404), ("bob", 200, 404), ("alice", 200, 200), ("root", 200, 200),
])
def test_who_sees_what(client, cast, who, public, draft):
    as_(client, who)
    assert client.get("/posts/public").status_code == public
    assert client.get("/posts/secret").status_code == draft


@pytest.mark.parametrize("who, public, draft", [
    (None, 302, 302), ("bob", 403, 404), ("alice", 200, 200), ("root", 200, 200),
])
def test_who_may_edit(client, cast, who, public, draft):
    as_(client, who)
    assert client.get("/posts/public/edit").status_code == public
    assert client.get("/posts/secret/edit").status_code == draft


@pytest.mark.parametrize("who, status, deleted", [
    (None, 302, False), ("bob", 403, False), ("alice", 302, True), ("root", 302, True),
])
def test_who_may_delete(client, cast, app, who, status, deleted):
    as_(client, who)
    token = csrf_token(client, "/posts/public")
    response = client.post("/posts/public/delete", data={"csrf_token": token})
    assert response.status_code == status
    if who is None:
        assert "/auth/login" in response.headers["Location"]
    with app.app_context():
        exists = db.session.scalar(select(Post).where(Post.slug == "public")) is not None
    assert exists is not deleted


def test_drafts_hidden_from_lists_search_tags_profiles_and_feeds(client, app, make_user, make_post):
    alice = make_user("alice")
    make_post(alice, "Hidden draft", body="needle", tags="secret", publish=False)
    bob = make_user("bob")
    with app.app_context():
        services.follow(db.session.get(User, bob.id), db.session.get(User, alice.id))
    for path in ("/", "/search?q=needle", "/users/alice", "/feed.atom"):
        assert "Hidden draft" not in client.get(path).get_data(as_text=True), path
    assert client.get("/tags/secret").status_code == 200
    assert "Hidden draft" not in client.get("/tags/secret").get_data(as_text=True)
    AuthActions(client).login("bob")
    assert "Hidden draft" not in client.get("/feed").get_data(as_text=True)
    AuthActions(client).logout()
    AuthActions(client).login("alice")
    assert "Hidden draft" in client.get("/users/alice").get_data(as_text=True)  # her own drafts


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


def test_deleting_a_post_removes_its_comments_likes_and_tag_links(app, make_user, make_post):
    from blog.posts.models import post_tags

    alice = make_user("alice")
    bob = make_user("bob")
    post = make_post(alice, "Doomed", tags="x, y")
    with app.app_context():
        loaded = db.session.get(Post, post.id)
        reader = db.session.get(User, bob.id)
        services.add_comment(loaded, reader, "nice")
        services.toggle_like(reader, loaded)
        services.delete_post(loaded)
    for table in (Post, Comment, likes, post_tags):
        assert count(app, table) == 0
    assert count(app, Tag) == 2  # tags stay for other posts


# --- likes and follows ----------------------------------------------------------------------


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


# --- lists, pagination, search ---------------------------------------------------------------


def test_home_is_newest_first_and_paginated(client, app, make_user, make_post):
    alice = make_user("alice")
    for number in range(12):
        make_post(alice, f"Post number {number:02d}")
    first = client.get("/").get_data(as_text=True)
    assert first.index("Post number 11") < first.index("Post number 02")
    assert "Post number 01" not in first
    second = client.get("/?page=2").get_data(as_text=True)
    assert "Post number 01" in second and "Post number 00" in second and "Post number 11" not in second


@pytest.mark.parametrize("query, status", [
    ("page=abc", 200), ("page=", 200), ("page=1.5", 200), ("page=1", 200), ("page=0", 404), ("page=-1", 404),
    ("page=99", 404), ("page=999999999999999999999", 404),
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


@pytest.mark.parametrize("query, expected", [
    ("needle", {"Needle in title", "Body match"}),
    ("NEEDLE", {"Needle in title", "Body match"}),
    ("100%", {"Percent post"}),
    ("a_b", {"Underscore post"}),
    ("%", {"Percent post"}),
    ("_", {"Underscore post"}),
    ("'; DROP TABLE posts; --", set()),
    ("\\", {"Backslash post"}),
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


# --- Atom ---------------------------------------------------------------------------------------

ATOM = "{http://www.w3.org/2005/Atom}"


def test_atom_feed_is_valid_and_absolute(client, make_user, make_post):
    alice = make_user("alice")
    for number in range(22):
        make_post(alice, f"Entry {number} & <friends>", body="Text with <b>html</b> & **md**",
                  tags="a")
    make_post(alice, "Unpublished", publish=False)
    response = client.get("/feed.atom")
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    root = ET.fromstring(response.data)
    assert root.tag == f"{ATOM}feed"
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 20
    assert entries[0].find(f"{ATOM}title").text == "Entry 21 & <friends>"
    for entry in entries:
        for name in ("id", "title", "updated", "published", "author", "content"):
            assert entry.find(f"{ATOM}{name}") is not None, name
        assert entry.find(f"{ATOM}id").text.startswith("http://localhost/posts/")
        assert entry.find(f"{ATOM}link").get("href").startswith("http://")
        assert "<strong>md</strong>" in entry.find(f"{ATOM}content").text
    assert root.find(f"{ATOM}updated").text.endswith("Z")
    assert b"Unpublished" not in response.data


def test_atom_feed_when_empty(client):
    root = ET.fromstring(client.get("/feed.atom").data)
    assert root.findall(f"{ATOM}entry") == [] and root.find(f"{ATOM}updated") is not None


# --- statement counts ---------------------------------------------------------------------------


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
    # count + items (author joined, counts as subqueries) + tags: three statements for a list.
    assert page_statements(client, "/").count == 3
    assert page_statements(client, "/tags/common").count == 4  # plus the tag


def test_public_pages_set_no_cookie_for_anonymous_visitors(client, cast):
    for path in ("/posts/public", "/users/alice", "/tags/none", "/search?q=x", "/feed.atom"):
        response = client.get(path)
        assert "Set-Cookie" not in response.headers, path
