"""Keyset pages (blog.pagination): "Newer" and "Older" links carrying a cursor walk every
post exactly once in order, ties included; a deep page costs what the first does and is
served by the index; damaged cursors are a clear 400; old ``?page=N`` links still work."""

from __future__ import annotations

import base64
import html
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select, update

from blog.accounts.models import User
from blog.extensions import db
from blog.posts import fragments, services
from blog.posts.models import Post
from tests.conftest import AuthActions, page_statements

PER_PAGE = 4


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"POSTS_PER_PAGE": PER_PAGE, "ADMIN_PER_PAGE": PER_PAGE}


SLUG = re.compile(r'<h2><a href="/posts/([^"]+)">')


def _link(body: str, rel: str) -> str | None:
    match = re.search(rf'rel="{rel}" href="([^"]*)"', body)
    return html.unescape(match.group(1)) if match else None


def walk(client: FlaskClient, path: str, rel: str = "next") -> tuple[list[list[str]], str]:
    """Follow ``rel`` links from ``path`` to the end: the slugs of every page, and the last
    page's address."""
    pages = []
    url = path
    for _ in range(100):
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.get_data(as_text=True)
        pages.append(SLUG.findall(body))
        following = _link(body, rel)
        if following is None:
            return pages, url
        url = path.split("?")[0] + following
    raise AssertionError("the links never end")


@pytest.fixture
def twenty_two(app: Flask, make_user: Any, make_post: Any) -> list[str]:
    """22 posts, eight of them published at the very same instant (ties the id must break);
    returns the slugs in the order the list must show them."""
    alice = make_user("alice")
    for number in range(22):
        make_post(alice, f"Post {number:02d}", tags="even" if number % 2 == 0 else "odd")
    with app.app_context():
        same = datetime(2026, 1, 1, 12, tzinfo=UTC)
        db.session.execute(update(Post).where(Post.title.in_([f"Post {n:02d}" for n in range(5, 13)]))
                           .values(published_at=same))
        db.session.commit()
        return list(db.session.scalars(select(Post.slug).order_by(Post.published_at.desc(), Post.id.desc())))


def test_older_links_walk_every_post_once_in_order_and_newer_links_walk_back(client, twenty_two):
    pages, last = walk(client, "/")
    assert [len(page) for page in pages] == [4, 4, 4, 4, 4, 2]
    assert [slug for page in pages for slug in page] == twenty_two
    back, _ = walk(client, last, rel="prev")
    assert back == pages[::-1]


def test_the_first_page_has_no_newer_link_and_the_last_no_older(client, twenty_two):
    first = client.get("/").get_data(as_text=True)
    assert _link(first, "prev") is None and _link(first, "next") is not None
    assert "Newest" not in first
    _, last = walk(client, "/")
    body = client.get(last).get_data(as_text=True)
    assert _link(body, "next") is None and _link(body, "prev") is not None and "Newest" in body


def test_a_tag_page_walks_only_its_posts_and_keeps_its_address(client, twenty_two):
    pages, _ = walk(client, "/tags/even")
    assert [slug for page in pages for slug in page] == [s for s in twenty_two if int(s[-2:]) % 2 == 0]


def test_a_new_post_does_not_shift_the_page_a_reader_is_on(client, app, make_post, twenty_two):
    second_url = "/" + _link(client.get("/").get_data(as_text=True), "next")
    before = SLUG.findall(client.get(second_url).get_data(as_text=True))
    with app.app_context():
        alice = db.session.scalar(select(User).where(User.username == "alice"))
    make_post(alice, "Breaking news")
    assert SLUG.findall(client.get(second_url).get_data(as_text=True)) == before
    assert SLUG.findall(client.get("/").get_data(as_text=True))[0] == "breaking-news"


def test_a_deep_page_runs_the_same_statements_as_the_first(client, auth, twenty_two):
    auth.login("alice")  # a member's lists are never served from the cache
    _, last = walk(client, "/")
    first = page_statements(client, "/")
    deep = page_statements(client, last)
    assert deep.count == first.count == 2  # the member, the page (tags included)
    assert not any(statement.lower().startswith("select count(") for statement in deep.statements)


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("cursor", [
    "garbage!", "%%%", "AAAA", _cursor(["o"]), _cursor(["x", "2026-01-01T00:00:00+00:00", 1]),
    _cursor(["o", 1, 1]), _cursor(["o", "2026-01-01T00:00:00", 1]),  # a naive time
    _cursor(["o", "2026-01-01T00:00:00+00:00", True]), _cursor(["o", "2026-01-01T00:00:00+00:00", 2**70]),
    _cursor(["o", "not a time", 1]), _cursor({"o": 1}), _cursor("o"),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
])
def test_a_damaged_cursor_is_a_clear_400(client, twenty_two, cursor):
    response = client.get(f"/?cursor={cursor}")
    assert response.status_code == 400
    assert "page link is damaged" in response.get_data(as_text=True)


def test_a_cursor_past_the_end_is_an_empty_page_not_an_error(client, twenty_two):
    ancient = _cursor(["o", "1990-01-01T00:00:00+00:00", 1])
    response = client.get(f"/?cursor={ancient}")
    assert response.status_code == 200 and SLUG.findall(response.get_data(as_text=True)) == []


def test_old_numbered_links_redirect_to_the_same_posts(client, twenty_two):
    for number in (2, 6):
        response = client.get(f"/tags/odd?page={number}&utm=x")
        if number == 6:
            assert response.status_code == 404  # 11 odd posts fill 3 pages
            continue
        assert response.status_code == 302
        location = response.headers["Location"]
        assert location.startswith("/tags/odd?") and "utm=x" in location and "page=" not in location
        odd = [s for s in twenty_two if int(s[-2:]) % 2 == 1]
        assert SLUG.findall(client.get(location).get_data(as_text=True)) == odd[4:8]


def test_the_owner_s_profile_walks_drafts_first_then_the_rest(client, app, make_user, make_post):
    alice = make_user("alice")
    for number in range(5):
        make_post(alice, f"Draft {number}", publish=False)
    for number in range(6):
        make_post(alice, f"Live {number}")
    AuthActions(client).login("alice")
    pages, last = walk(client, "/users/alice")
    slugs = [slug for page in pages for slug in page]
    assert slugs == [f"draft-{n}" for n in range(4, -1, -1)] + [f"live-{n}" for n in range(5, -1, -1)]
    back, _ = walk(client, last, rel="prev")
    assert back == pages[::-1]
    # A visitor sees only the live posts.
    client.post("/auth/logout", data={"csrf_token": ""})
    visitor = app.test_client()
    assert [s for page in walk(visitor, "/users/alice")[0] for s in page] == [
        f"live-{n}" for n in range(5, -1, -1)]


def _posts_selects(app: Flask, client: FlaskClient, path: str) -> list[tuple[str, Any]]:
    """Each SELECT of a page of posts that ``path`` runs, with its real parameters (captured
    at the driver)."""
    captured: list[tuple[str, Any]] = []
    with app.app_context():
        engine = db.engines[None]
        fragments.forget()  # so the page is read from the database, not the cache

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM posts" in statement and "LIMIT" in statement:
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert captured
    return captured


def _plans(app: Flask, client: FlaskClient, path: str) -> list[str]:
    """The database's plan for each SELECT of posts that ``path`` runs, with its real
    parameters."""
    captured = _posts_selects(app, client, path)
    plans = []
    with app.app_context():
        connection = db.session.connection()
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            # A handful of rows would be read and sorted whole; ask for the plan a large table gets.
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        for statement, parameters in captured:
            prefix = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            rows = connection.exec_driver_sql(prefix + statement, parameters).all()
            plans.append("\n".join(str(row[-1]) for row in rows))
    return plans


def test_a_deep_page_is_read_in_index_order_without_sorting(client, app, twenty_two):
    _, last = walk(client, "/")
    for plan in _plans(app, client, last):
        assert "TEMP B-TREE FOR ORDER BY" not in plan, plan  # SQLite
        assert not re.search(r"^\s*(->\s*)?Sort\b", plan, re.MULTILINE), plan  # PostgreSQL
        assert "ix_posts_published_published_at_id" in plan, plan
        if "Index Cond" in plan:  # PostgreSQL seeks to the cursor inside the index
            assert re.search(r"Index Cond: .*ROW\(published_at, id\) <", plan), plan


def test_admin_lists_page_by_keyset(client, app, make_user, make_post):
    alice = make_user("alice")
    make_user("root", admin=True)
    post = make_post(alice, "Talked about")
    with app.app_context():
        reader = db.session.get(User, alice.id)
        target = db.session.get(Post, post.id)
        for number in range(9):
            services.add_comment(target, reader, f"Comment number {number}")
    AuthActions(client).login("root")
    seen: list[str] = []
    url = "/admin/comments"
    while url:
        body = client.get(url).get_data(as_text=True)
        seen += re.findall(r"Comment number (\d)", body)
        following = _link(body, "next")
        url = "/admin/comments" + following if following else ""
    assert seen == [str(n) for n in range(8, -1, -1)]
    for path in ("/admin/orders", "/admin/audit"):
        assert client.get(path).status_code == 200
        assert client.get(path + "?cursor=bad").status_code == 400


def test_timestamps_in_cursors_survive_the_round_trip(app, twenty_two):
    """A cursor holds the time to the microsecond, so the next page starts exactly after it."""
    with app.test_request_context("/"):
        post = db.session.scalars(services.published_posts().limit(1)).first()
        cursor = services.NEWEST.encode("o", post)
        direction, values = services.NEWEST.decode(cursor)
        assert direction == "o" and values == [post.published_at, post.id]
        assert values[0] - post.published_at == timedelta(0)


def test_a_member_s_list_is_read_in_index_order_too(client, app, auth, twenty_two):
    """A member's list adds their own scheduled posts; written with `published` outside the OR
    it still walks the index (the other form sorted every post: 1.6 s at 100,000)."""
    auth.login("alice")
    for plan in _plans(app, client, "/"):
        assert "TEMP B-TREE FOR ORDER BY" not in plan, plan
        assert not re.search(r"^\s*(->\s*)?Sort\b", plan, re.MULTILINE), plan


def _sqlite_steps(app: Flask, statement: str, parameters: Any) -> int:
    """How many virtual-machine instructions SQLite runs for ``statement``: a measure of the
    rows it visits that does not depend on the machine's speed."""
    with app.app_context():
        raw = db.session.connection().connection.driver_connection
        steps = 0

        def tick() -> int:
            nonlocal steps
            steps += 1
            return 0

        raw.set_progress_handler(tick, 1)
        try:
            raw.execute(statement, parameters).fetchall()
        finally:
            raw.set_progress_handler(None, 1)
    return steps


def test_a_deep_page_seeks_from_its_cursor_not_from_now(client, app, make_user, make_post):
    """SQLite seeks the index from the first bound it finds on a column. The list's own bound
    ("published no later than now") came first, so a deep page read every newer entry before
    reaching its cursor (3 times page 1 at 100,000 posts); going older, the bound is lowered to
    the cursor's time, and the last page visits about as many rows as the first."""
    with app.app_context():
        if db.engine.dialect.name != "sqlite":  # PostgreSQL: the plan test shows its seek
            pytest.skip("SQLite's seek")
    alice = make_user("alice")
    for number in range(60):
        make_post(alice, f"Post {number:02d}")
    _, last = walk(client, "/")
    (first_page,) = _posts_selects(app, client, "/")
    (last_page,) = _posts_selects(app, client, last)
    first, deep = _sqlite_steps(app, *first_page), _sqlite_steps(app, *last_page)
    assert deep < 1.5 * first, (first, deep)


def test_lowering_the_bound_to_the_cursor_keeps_scheduled_posts_where_they_belong(
        client, app, auth, make_user, make_post):
    """The bound a page going older lowers is "now" only for other people's posts: a member
    walking their home page still sees their own scheduled post (later than now) once, at the
    top, and never someone else's, on every page; an editor sees both."""
    alice, bob = make_user("alice", roles=("author",)), make_user("bob", roles=("author",))
    make_user("ed", roles=("editor",))
    for number in range(9):
        make_post(bob if number % 2 else alice, f"Live {number}")
    later = datetime.now(UTC) + timedelta(days=3)
    for author, title in ((alice, "Alice later"), (bob, "Bob later")):
        post = make_post(author, title)
        with app.app_context():
            db.session.execute(update(Post).where(Post.id == post.id).values(published_at=later))
            db.session.commit()
    live = [f"live-{n}" for n in range(8, -1, -1)]
    auth.login("alice")
    assert [slug for page in walk(client, "/")[0] for slug in page] == ["alice-later", *live]
    auth.logout()
    auth.login("ed")
    assert [slug for page in walk(client, "/")[0] for slug in page] == ["bob-later", "alice-later", *live]


def test_a_lasting_list_statement_gets_its_page_statements_built_once(client, app, auth, twenty_two):
    """The home page's list statement is built once per process, and so are its pages'
    statements (SQLAlchemy then computes their cache keys once): every request runs the
    very same statement object. A statement made for one request leaves nothing behind."""
    import gc

    from blog import pagination

    auth.login("alice")  # a member's lists are never served from the cache
    older = _link(client.get("/").get_data(as_text=True), "next")
    assert older is not None
    executed: list[Any] = []

    def listener(state: Any) -> None:
        if state.is_select and state.statement._limit_clause is not None:
            executed.append(state.statement)

    event.listen(db.session, "do_orm_execute", listener)
    try:
        for _ in range(3):
            assert client.get("/").status_code == 200
            assert client.get("/" + older).status_code == 200
    finally:
        event.remove(db.session, "do_orm_execute", listener)
    assert len(executed) == 6
    assert len({id(statement) for statement in executed}) == 2  # the first page's, the older one's

    with app.test_request_context("/"):
        once = services.listed_posts().where(Post.id > 0)
        pagination._page_statement(once, services.NEWEST, PER_PAGE, None)
    assert once in pagination._PAGE_STATEMENTS
    count = len(pagination._PAGE_STATEMENTS)
    del once
    gc.collect()
    assert len(pagination._PAGE_STATEMENTS) == count - 1


def _posts_statements(client: FlaskClient, path: str) -> tuple[int, list[str]]:
    """``path``'s status and the statements it ran that read posts (a member's session check
    left out)."""
    from blog.database import count_statements

    with count_statements() as counted:
        status = client.get(path).status_code
    return status, [sql for sql in counted.statements if "posts" in sql]


def test_a_page_past_the_end_runs_no_query_once_the_list_is_counted(client, auth, twenty_two):
    """The first old link counts the list (11 odd posts: 3 pages of 4); from then on every
    page past the end is 404 with no query, and a page within it still redirects."""
    auth.login("alice")  # a member's lists are never served from the cache
    status, first = _posts_statements(client, "/tags/odd?page=9")
    assert status == 404 and len(first) == 1 and "count(" in first[0].lower()
    for number in (4, 9, 50, 4000):
        assert _posts_statements(client, f"/tags/odd?page={number}") == (404, [])
    status, within = _posts_statements(client, "/tags/odd?page=3")
    assert status == 302 and len(within) == 1  # the cursor's query alone: the count is kept
    # Another list has its own length: the whole home page has 6 pages.
    assert _posts_statements(client, "/?page=6")[0] == 302
    assert _posts_statements(client, "/?page=7")[0] == 404


def test_a_write_forgets_the_lengths(client, app, auth, make_user, make_post, twenty_two):
    auth.login("alice")
    assert client.get("/tags/odd?page=4").status_code == 404  # 11 posts: counted
    make_post(make_user("bob"), "One more odd", tags="odd")  # 12
    make_post(make_user("carol"), "And another", tags="odd")  # 13: page 4 begins
    assert client.get("/tags/odd?page=4").status_code == 302


def test_a_kept_length_counts_scheduled_posts_so_time_cannot_make_it_wrong(
        client, app, auth, make_user, make_post, twenty_two):
    """A scheduled post falls due with no write to forget the length: the length counted
    before counts it already, so the page it opens is found, not 404."""
    import time

    bob = make_user("bob")
    make_post(bob, "Now", tags="odd")  # 12 odd posts listed: 3 full pages
    post = make_post(bob, "Soon", tags="odd")
    due = datetime.now(UTC) + timedelta(seconds=1.5)
    with app.app_context():
        db.session.execute(update(Post).where(Post.id == post.id).values(published_at=due))
        db.session.commit()
    auth.login("alice")
    assert client.get("/tags/odd?page=4").status_code == 404  # 12 listed: counted as 13
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.2)
    response = client.get("/tags/odd?page=4")
    assert response.status_code == 302
    oldest_odd = [slug for slug in twenty_two if int(slug[-2:]) % 2 == 1][-1]
    assert SLUG.findall(client.get(response.headers["Location"]).get_data(as_text=True)) == [oldest_odd]


def test_a_length_counted_while_a_write_commits_is_not_kept_past_that_write(app):
    """The length is kept under the version read before counting: a write that commits
    meanwhile forgets it with the rest, and the next request counts again."""
    with app.test_request_context("/"):
        def count_while_a_write_commits() -> int:
            fragments.forget()  # what another request's commit does
            return 3

        assert fragments.LENGTHS.length("a list", count_while_a_write_commits) == 3
        assert fragments.LENGTHS.length("a list", lambda: 7) == 7
        assert fragments.LENGTHS.length("a list", lambda: 9) == 7  # kept from here on
