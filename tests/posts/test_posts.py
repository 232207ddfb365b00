"""Posts: writing and editing, tags, Markdown and XSS safety, drafts, and who may see, edit
and delete a post."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from blog.accounts.models import User
from blog.extensions import db
from blog.posts import services
from blog.posts.models import Comment, Post, Tag, likes
from blog.rendering import render_markdown
from tests.conftest import AuthActions, csrf_token, text_of
from tests.posts.conftest import as_, count

# --- writing --------------------------------------------------------------------------------------


def write(client, **fields):
    data = {"csrf_token": csrf_token(client, "/posts/new"), "title": "A title", "body": "Body text",
            "tags": ""}
    data.update(fields)
    return client.post("/posts/new", data=data)


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
    untitled = make_post(alice, "???").slug  # no letters at all: a fingerprint, never "post"
    assert untitled != "post" and re.fullmatch(r"[0-9a-f]{10}", untitled)
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
        post = db.session.scalar(select(Post).options(selectinload(Post.tags)))
        assert [t.name for t in post.tags] == ["three", "two"]
        assert post.published is False  # unticked on edit: back to draft


def test_editing_without_a_tags_field_treats_it_as_empty(client, auth, make_user, make_post, app):
    """A request need not carry every field; a missing one is an empty one (not the post's
    Tag list, which the form would otherwise keep as the field's data)."""
    alice = make_user("alice")
    make_post(alice, "Tagged", tags="one, two")
    auth.login()
    response = client.post("/posts/tagged/edit", data={
        "csrf_token": csrf_token(client, "/posts/tagged/edit"), "title": "Tagged", "body": "b",
        "publish": "y"})
    assert response.status_code == 302
    with app.app_context():
        post = db.session.scalar(select(Post).options(selectinload(Post.tags)))
        assert post.tags == [] and post.body == "b"


def test_a_form_missing_every_field_is_a_form_error(client, auth, make_user, make_post, app):
    alice = make_user("alice")
    make_post(alice, "Tagged", tags="one, two")
    auth.login()
    response = client.post("/posts/tagged/edit",
                           data={"csrf_token": csrf_token(client, "/posts/tagged/edit")})
    assert response.status_code == 200 and "This field is required" in response.get_data(as_text=True)
    with app.app_context():
        post = db.session.scalar(select(Post).options(selectinload(Post.tags)))
        assert [t.name for t in post.tags] == ["one", "two"] and post.title == "Tagged"


@pytest.mark.parametrize("ident", [str(2**31), str(2**63), str(2**64)])
def test_comment_ids_past_the_column_range_are_404(client, auth, make_user, ident):
    make_user("alice")
    auth.login()
    response = client.post(f"/comments/{ident}/delete", data={"csrf_token": csrf_token(client, "/")})
    assert response.status_code == 404


def test_published_time_is_kept_when_republished(app, make_user, make_post):
    alice = make_user("alice")
    post = make_post(alice, "Keep time")
    with app.app_context():
        loaded = db.session.get(Post, post.id, options=[selectinload(Post.tags)])
        services.update_post(loaded, "Keep time", "edited", "", True)
        assert loaded.published_at == post.published_at


# --- Markdown and XSS -----------------------------------------------------------------------------


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


# --- drafts and the permission matrix -------------------------------------------------------------


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


@pytest.mark.parametrize(("title", "slug"), [
    ("日本語のタイトル", "日本語のタイトル"),
    ("Καλημέρα κόσμε", "καλημέρα-κόσμε"),
    ("Привет, мир!", "привет-мир"),
    ("हिन्दी शीर्षक", "हिन्दी-शीर्षक"),
    ("Crème brûlée, 2nd edition", "creme-brulee-2nd-edition"),  # Latin titles: ASCII as before
])
def test_titles_in_any_script_keep_their_words(app, make_user, make_post, client, title, slug):
    from urllib.parse import quote

    from flask import url_for
    post = make_post(make_user("alice"), title, body="In another script.")
    assert post.slug == slug
    with app.test_request_context():
        path = url_for("blog.post", slug=post.slug)
    assert path == "/posts/" + quote(slug)
    for url in (path, "/posts/" + slug):
        response = client.get(url)
        assert response.status_code == 200 and title in text_of(response)
    assert path in client.get("/").get_data(as_text=True)
    assert make_post(make_user("bob"), title).slug == slug + "-2"


def test_rerender_posts_brings_old_html_up_to_the_current_renderer(app, runner, make_user, make_post):
    """A post saved by an older version (here: a code block without its scroll box) gets the
    current HTML from `flask rerender-posts`; its version and updated_at stay; a second run
    finds nothing to do."""
    alice = make_user("alice")
    old = make_post(alice, "Old", "```\nwide code\n```")
    current = make_post(alice, "Current", "Plain *text*.")
    with app.app_context():
        db.session.execute(update(Post).where(Post.id == old.id).values(
            body_html="<pre><code>wide code\n</code></pre>", excerpt="stale",
            updated_at=Post.updated_at))
        db.session.commit()
        before = db.session.execute(select(Post.version, Post.updated_at).where(Post.id == old.id)).one()
        current_html = db.session.scalar(select(Post.body_html).where(Post.id == current.id))

    result = runner.invoke(args=["rerender-posts"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Re-rendered 1 post whose HTML changed."
    with app.app_context():
        post = db.session.get(Post, old.id)
        assert post.body_html == render_markdown(post.body)
        assert '<pre tabindex="0">' in post.body_html and post.excerpt == "wide code"
        assert (post.version, post.updated_at) == tuple(before)
        assert db.session.scalar(select(Post.body_html).where(Post.id == current.id)) == current_html
    assert runner.invoke(args=["rerender-posts"]).output.strip() == "Re-rendered 0 posts whose HTML changed."
