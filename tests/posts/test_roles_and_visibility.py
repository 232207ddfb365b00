"""Who may write, and who sees what: roles (reader, author, editor, admin), scheduled posts
and members-only posts, across every list, the Atom feed and the post's own page."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from blog.accounts.models import User
from blog.admin.models import AuditEvent
from blog.database import utcnow
from blog.extensions import db
from blog.posts import services
from blog.posts.models import Post
from tests.conftest import AuthActions, csrf_token, page_statements, text_of

STATES = ("draft", "scheduled", "members", "published")
#: Every list, every feed, the sitemap and the post's own page.
SURFACES = ("/", "/tags/marker", "/users/wendy", "/feed", "/search?q=Marker", "/feed.atom",
            "/tags/marker/feed.atom", "/users/wendy/feed.atom", "/sitemap.xml", "post")
#: What leaves the site (feeds, the sitemap) is always the visitor's view.
PUBLIC_VIEWS = ("/feed.atom", "/tags/marker/feed.atom", "/users/wendy/feed.atom", "/sitemap.xml")
#: A first paragraph long enough to be the whole excerpt, so the rest is not in it.
OPENING = "An opening paragraph that runs on. " * 12
ATOM = "{http://www.w3.org/2005/Atom}"
VIEWERS = ("visitor", "rita", "wendy", "otto", "eddie", "root")  # reader, own, other author, editor, admin


@pytest.fixture
def cast(app: Flask, make_user: Any) -> dict[str, Post]:
    """wendy (author) has one post in each state, tagged "marker"; everyone follows her."""
    make_user("rita", roles=())
    wendy = make_user("wendy")
    make_user("otto")
    make_user("eddie", roles=("editor",))
    make_user("root", roles=(), admin=True)
    made = {}
    with app.app_context():
        author = db.session.get(User, wendy.id)
        for state in STATES:
            made[state] = services.create_post(
                author, f"Marker {state}", f"{OPENING}\n\nBODY-{state} for those who read it all.",
                "marker",
                publish=state != "draft", members_only=state == "members",
                publish_at=utcnow() + timedelta(days=1) if state == "scheduled" else None)
        for name in ("rita", "otto", "eddie", "root"):
            follower = db.session.scalars(select(User).where(User.username == name)).one()
            services.follow(follower, author)
    return made


def expected(viewer: str, state: str, surface: str) -> bool:
    """Whether ``viewer`` finds the post in ``state`` on ``surface``."""
    may_edit = viewer in ("wendy", "eddie", "root")
    if surface == "/feed" and viewer in ("visitor", "wendy"):
        return False  # visitors have no follow feed; wendy does not follow herself
    if surface in PUBLIC_VIEWS:
        return state in ("members", "published")  # members-only: title and excerpt are public
    if state in ("members", "published"):
        return True
    if surface == "post":
        return may_edit  # drafts and scheduled posts: only those who may edit them
    if state == "scheduled":
        return may_edit  # marked "scheduled" in every list
    return may_edit and surface == "/users/wendy"  # drafts: only the author's own profile


@pytest.mark.parametrize("viewer", VIEWERS)
def test_the_visibility_matrix(app: Flask, client: Any, cast: dict[str, Post], viewer: str) -> None:
    if viewer != "visitor":
        AuthActions(client).login(viewer)
    for surface in SURFACES:
        for state, post in cast.items():
            path = f"/posts/{post.slug}" if surface == "post" else surface
            response = client.get(path)
            if surface == "post":
                shown = response.status_code == 200
                assert response.status_code in (200, 404), (viewer, state, path)
            elif surface == "/feed" and viewer == "visitor":
                shown = False
                assert response.status_code == 302  # the follow feed needs a login
            elif surface == "/sitemap.xml":
                assert response.status_code == 200
                shown = f"/posts/{post.slug}</loc>" in response.get_data(as_text=True)
            else:
                assert response.status_code == 200, (viewer, path)
                shown = f"Marker {state}" in text_of(response)
            assert shown == expected(viewer, state, surface), (viewer, state, surface)


@pytest.mark.parametrize("viewer", VIEWERS)
def test_members_only_posts_show_visitors_the_excerpt_and_an_invitation(
        client: Any, cast: dict[str, Post], viewer: str) -> None:
    if viewer != "visitor":
        AuthActions(client).login(viewer)
    page = text_of(client.get(f"/posts/{cast['members'].slug}"))
    assert "Marker members" in page
    html = client.get(f"/posts/{cast['members'].slug}").get_data(as_text=True)
    back = "next=/posts/" + cast["members"].slug
    if viewer == "visitor":
        assert "The rest of this post is for members." in page and "Register, it is free" in page
        assert "BODY-members" not in page and OPENING.strip()[:40] in page  # the excerpt
        # The invitation brings the visitor back to the post after registering or logging in.
        assert f'href="/auth/register?{back}"' in html and f'href="/auth/login?{back}"' in html
    else:
        assert "BODY-members" in page and "The rest of this post is for members." not in page
    # Every feed carries the excerpt of a members-only post, never its body.
    for path in ("/feed.atom", "/tags/marker/feed.atom", "/users/wendy/feed.atom"):
        feed = client.get(path).get_data(as_text=True)
        assert "BODY-published" in feed and "BODY-members" not in feed, path
        assert "The rest of this post is for members" in feed, path
        # Atom allows one summary and one content per entry, members-only or not.
        for entry in ET.fromstring(feed.encode()).iter(f"{ATOM}entry"):
            assert len(entry.findall(f"{ATOM}summary")) == len(entry.findall(f"{ATOM}content")) == 1


def test_lists_mark_scheduled_posts_and_members_only_ones(client: Any, cast: dict[str, Post]) -> None:
    AuthActions(client).login("eddie")
    home = text_of(client.get("/"))
    scheduled_item = home.split("Marker scheduled", 1)[1].split("</article>", 1)[0]
    assert "scheduled" in scheduled_item
    members_item = home.split("Marker members", 1)[1].split("</article>", 1)[0]
    assert '<span class="badge">members</span>' in members_item


def test_a_scheduled_post_takes_no_comment_or_like_until_its_time(app: Flask, cast: dict[str, Post]) -> None:
    with app.app_context():
        post = db.session.get(Post, cast["scheduled"].id)
        reader = db.session.scalars(select(User).where(User.username == "rita")).one()
        with pytest.raises(services.BlogError, match="Comments open"):
            services.add_comment(post, reader, "Too early")
        with pytest.raises(services.BlogError, match="Likes open"):
            services.toggle_like(reader, post)
        # Its time comes: no job needed, the next query sees it.
        db.session.execute(update(Post).where(Post.id == post.id)
                           .values(published_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert "Marker scheduled" in text_of(app.test_client().get("/"))


# --- roles ---------------------------------------------------------------------------------------


def test_readers_cannot_write(client: Any, auth: AuthActions, make_user: Any) -> None:
    make_user("rita", roles=())
    auth.login("rita")
    assert ">Write<" not in client.get("/").get_data(as_text=True)
    assert client.get("/posts/new").status_code == 403
    response = client.post("/posts/new", data={"csrf_token": csrf_token(client, "/"), "title": "Hi",
                                               "body": "Text", "tags": "", "publish": "y"})
    assert response.status_code == 403
    with client.application.app_context():
        assert db.session.scalar(select(Post.id)) is None


def test_authors_write_and_edit_their_own_only(client: Any, auth: AuthActions, make_user: Any,
                                               make_post: Any) -> None:
    make_user("wendy")
    otto = make_user("otto")
    theirs = make_post(otto, "Otto's post")
    auth.login("wendy")
    assert ">Write<" in client.get("/").get_data(as_text=True)
    assert client.get("/posts/new").status_code == 200
    assert client.get(f"/posts/{theirs.slug}/edit").status_code == 403
    assert client.post(f"/posts/{theirs.slug}/delete",
                       data={"csrf_token": csrf_token(client, "/")}).status_code == 403


def test_an_editor_unpublishes_and_edits_another_author_s_post(app: Flask, client: Any, auth: AuthActions,
                                                               make_user: Any, make_post: Any) -> None:
    otto = make_user("otto")
    make_user("eddie", roles=("editor",))
    post = make_post(otto, "Otto's post", body="First words.")
    auth.login("eddie")
    path = f"/posts/{post.slug}/edit"
    response = client.post(path, data={"csrf_token": csrf_token(client, path), "title": "Otto's post",
                                       "body": "Edited words.", "tags": ""})  # publish unticked
    assert response.status_code == 302
    with app.app_context():
        edited = db.session.get(Post, post.id)
        assert not edited.published and edited.body == "Edited words."
    # A visitor now gets 404; the editor still sees the draft.
    assert app.test_client().get(f"/posts/{post.slug}").status_code == 404
    assert client.get(f"/posts/{post.slug}").status_code == 200


def test_editors_moderate_comments_readers_do_not(app: Flask, client: Any, auth: AuthActions,
                                                  make_user: Any, make_post: Any) -> None:
    otto, rita = make_user("otto"), make_user("rita", roles=())
    make_user("ray", roles=())
    make_user("eddie", roles=("editor",))
    post = make_post(otto, "Otto's post")
    with app.app_context():
        comment = services.add_comment(db.session.get(Post, post.id), db.session.get(User, rita.id), "Hm.")
    auth.login("ray")
    path = f"/comments/{comment.id}/delete"
    assert client.post(path, data={"csrf_token": csrf_token(client, "/")}).status_code == 403
    auth.logout()
    auth.login("eddie")
    assert client.post(path, data={"csrf_token": csrf_token(client, "/")}).status_code == 302
    with app.app_context():
        assert services.get_comment(comment.id) is None


def test_roles_from_the_command_line_and_the_admin_page_are_audited(
        app: Flask, client: Any, auth: AuthActions, runner: Any, make_user: Any) -> None:
    make_user("rita", roles=())
    make_user("root", roles=(), admin=True)
    result = runner.invoke(args=["grant-role", "rita", "author"])
    assert result.exit_code == 0 and "rita now holds the author role." in result.output
    assert runner.invoke(args=["grant-role", "nobody", "author"]).exit_code == 1
    assert runner.invoke(args=["grant-role", "rita", "wizard"]).exit_code == 2
    revoke = runner.invoke(args=["revoke-role", "root", "admin"])
    assert revoke.exit_code == 1 and "last admin" in revoke.output
    auth.login("root")
    with app.app_context():
        rita = db.session.scalars(select(User).where(User.username == "rita")).one()
    response = client.post(f"/admin/users/{rita.id}/grant-editor",
                           data={"csrf_token": csrf_token(client, "/admin/users")})
    assert response.status_code == 302
    assert "Revoke editor" in text_of(client.get("/admin/users"))
    response = client.post(f"/admin/users/{rita.id}/revoke-author",
                           data={"csrf_token": csrf_token(client, "/admin/users")})
    assert response.status_code == 302
    assert client.post(f"/admin/users/{rita.id}/grant-wizard",
                       data={"csrf_token": csrf_token(client, "/admin/users")}).status_code == 404
    result = runner.invoke(args=["revoke-role", "rita", "editor"])
    assert result.exit_code == 0 and "rita no longer holds the editor role." in result.output
    # Revoking what she does not hold changes nothing and audits nothing.
    assert runner.invoke(args=["revoke-role", "rita", "editor"]).exit_code == 0
    with app.app_context():
        actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.entity_id == "rita")
                                     .order_by(AuditEvent.id)).all()
        assert db.session.scalar(select(User.id).where(User.roles.any())
                                 .where(User.id == rita.id)) is None
    assert actions == ["grant_author", "grant_editor", "revoke_author", "revoke_editor"]
    # A plain reader again: no Write link, 403 on /posts/new.
    auth.logout()
    auth.login("rita")
    assert ">Write<" not in client.get("/").get_data(as_text=True)
    assert client.get("/posts/new").status_code == 403


def test_the_cli_grants_admin_and_the_last_admin_guard_holds(app: Flask, runner: Any,
                                                             make_user: Any) -> None:
    make_user("root", roles=(), admin=True)
    make_user("rita", roles=())
    assert runner.invoke(args=["grant-role", "rita", "admin"]).exit_code == 0
    assert runner.invoke(args=["revoke-role", "root", "admin"]).exit_code == 0  # rita remains
    last = runner.invoke(args=["revoke-role", "rita", "admin"])
    assert last.exit_code == 1 and "rita is the last admin" in last.output
    with app.app_context():
        admins = db.session.scalars(select(User.username).where(User.roles.any(name="admin"))).all()
        actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert admins == ["rita"] and actions == ["grant_admin", "revoke_admin"]


# --- scheduling in the site's timezone -----------------------------------------------------------


@pytest.mark.parametrize("config_overrides", [{"SITE_TIMEZONE": "America/New_York"}])
def test_a_time_is_typed_and_shown_in_the_site_timezone(app: Flask, client: Any, auth: AuthActions,
                                                        make_user: Any) -> None:
    make_user("wendy")
    auth.login("wendy")
    form = {"csrf_token": csrf_token(client, "/posts/new"), "title": "Later", "body": "Soon.",
            "tags": "", "publish": "y", "publish_at": "2030-07-01T09:30"}
    response = client.post("/posts/new", data=form)
    assert response.status_code == 302
    with app.app_context():
        post = db.session.scalars(select(Post)).one()
        assert post.published_at == datetime(2030, 7, 1, 13, 30, tzinfo=UTC)  # EDT is UTC-4
    page = text_of(client.get("/posts/later"))
    assert "Scheduled for 1 July 2030, 09:30 EDT" in page
    assert 'value="2030-07-01T09:30"' in client.get("/posts/later/edit").get_data(as_text=True)
    assert app.test_client().get("/posts/later").status_code == 404  # not yet, for visitors
    # A time without "publish" is a mistake, said so; nothing changes.
    form.update(csrf_token=csrf_token(client, "/posts/new"), title="Other", publish="")
    response = client.post("/posts/new", data=form)
    assert response.status_code == 200 and "Tick “Publish” to schedule" in text_of(response)


LIST_PAGES = ("/", "/tags/marker", "/users/wendy", "/feed", "/search?q=Marker")


@pytest.mark.parametrize("viewer", ("visitor", "rita", "wendy", "eddie"))
def test_list_pages_with_scheduled_and_members_only_posts_keep_their_statement_count(
        app: Flask, client: Any, cast: dict[str, Post], viewer: str) -> None:
    """Badges, "scheduled" marks and the viewer's roles cost no statement per row: the roles
    come with the member (the user loader joins them) and the marks from the row itself."""
    if viewer != "visitor":
        AuthActions(client).login(viewer)
    pages = [path for path in LIST_PAGES if path != "/feed" or viewer != "visitor"]
    first = {path: page_statements(client, path).count for path in pages}
    with app.app_context():
        author = db.session.scalars(select(User).where(User.username == "wendy")).one()
        for n in range(6):
            services.create_post(author, f"Marker later {n}", "Soon.", "marker", n != 5,
                                 members_only=n % 2 == 0,
                                 publish_at=utcnow() + timedelta(hours=n + 1) if n < 3 else None)
    assert {path: page_statements(client, path).count for path in pages} == first
    if viewer in ("wendy", "eddie"):  # the new scheduled posts are there, and marked
        home = text_of(client.get("/"))
        assert "Marker later 0" in home and home.count(">scheduled</span>") == 4


def test_the_members_page_shows_roles_in_a_fixed_number_of_statements(
        app: Flask, client: Any, auth: AuthActions, make_user: Any) -> None:
    make_user("root", roles=(), admin=True)
    make_user("rita", roles=())
    auth.login("root")
    first = page_statements(client, "/admin/users").count
    for n, roles in enumerate((("author",), ("editor",), ("author", "editor"), (), ("admin",))):
        make_user(f"member{n}", roles=roles)
    counted = page_statements(client, "/admin/users")
    assert counted.count == first, counted.statements
    page = text_of(client.get("/admin/users"))
    assert page.count("Revoke editor") == 2 and page.count("Revoke author") == 2


def test_a_time_in_the_past_publishes_at_once_and_a_bad_time_is_a_message(
        app: Flask, client: Any, auth: AuthActions, make_user: Any) -> None:
    make_user("wendy")
    auth.login("wendy")
    form = {"csrf_token": csrf_token(client, "/posts/new"), "title": "Backdated", "body": "Then.",
            "tags": "", "publish": "y", "publish_at": "2020-02-03T04:05"}
    assert client.post("/posts/new", data=form).status_code == 302
    with app.app_context():
        post = db.session.scalars(select(Post)).one()
        assert post.published_at == datetime(2020, 2, 3, 4, 5, tzinfo=UTC)  # SITE_TIMEZONE: UTC
    assert "Backdated" in text_of(app.test_client().get("/"))  # public at once
    for typed in ("tomorrow", "2030-13-40T25:61", "2030-07-01"):
        form.update(csrf_token=csrf_token(client, "/posts/new"), title=f"Odd {typed}", publish_at=typed)
        response = client.post("/posts/new", data=form)
        assert response.status_code == 200, typed
        errors = text_of(response).split('id="publish_at-errors">', 1)[1].split("</ul>", 1)[0]
        assert "Not a valid datetime value." in errors, typed
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Post)) == 1
