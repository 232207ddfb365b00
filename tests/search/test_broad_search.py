"""Searches that match more posts than SEARCH_RANKED_MATCHES: on SQLite, their best-match
pages list the title matches first (best first), then every other match newest first, and
their newest-first pages test posts one by one down the date index. Nothing is ranked as a
whole, every match stays reachable exactly once, and the visibility rules hold.

PostgreSQL ranks every match whatever their number (blog.search.matches_more_than): there
the same tests check that the results are the same sets, through its one path."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import parse_qsl

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from blog import search
from blog.accounts.models import User
from blog.database import utcnow
from blog.extensions import db
from blog.jobs import huey
from blog.posts.models import Post
from blog.search.maintenance import optimize_indexes, optimize_nightly
from tests.conftest import AuthActions, page_statements
from tests.search.conftest import found_titles
from tests.search.test_search import CORPUS, PARITY


def _dialect(app: Flask) -> str:
    with app.app_context():
        return db.engine.dialect.name


def _all_pages(client: FlaskClient, query: str, **args: str) -> list[list[str]]:
    """Every page of a search, following its "More results" (or "Older") link to the end."""
    pages: list[list[str]] = []
    arguments = {"q": query, **args}
    while True:
        response = client.get("/search", query_string=arguments)
        assert response.status_code == 200, arguments
        pages.append(found_titles(client, query, **{k: v for k, v in arguments.items() if k != "q"}))
        following = re.search(r'rel="next" href="[^"?]*\?([^"]+)"', response.get_data(as_text=True))
        if following is None:
            return pages
        arguments = dict(parse_qsl(html.unescape(following.group(1))))
        assert len(pages) < 50, "a search that never ends"


def _flat(pages: list[list[str]]) -> list[str]:
    return [title for page in pages for title in page]


@pytest.fixture
def harbour(app: Flask, make_user: Callable[..., User], make_post: Callable[..., Post]) -> None:
    """Nine posts about the harbour, three of them in the title, and hidden ones: eleven
    matches, more than the five ranked, and five title matches."""
    app.config.update(SEARCH_RANKED_MATCHES=5, POSTS_PER_PAGE=3)
    alice = make_user("alice")
    make_post(alice, "Harbour", "Boats by the harbour.")  # oldest; the shortest title ranks first
    make_post(alice, "Walk 0", "Down to the harbour.")
    make_post(alice, "The harbour at night, seen from the hill", "Lights.")
    make_post(alice, "Walk 1", "Down to the harbour.")
    make_post(alice, "Walk 2", "Down to the harbour.", tags="harbour")
    make_post(alice, "A harbour wall", "Stones.")
    make_post(alice, "Walk 3", "Down to the harbour.")
    make_post(alice, "Walk 4", "Down to the harbour.")
    make_post(alice, "Walk 5", "Down to the harbour.")  # newest
    make_post(alice, "Harbour draft", "harbour", publish=False)
    make_post(alice, "Harbour to come", "harbour", publish_at=utcnow() + timedelta(days=2))
    make_post(alice, "Inland", "Fields.")


TITLES_FIRST = [
    ["Harbour", "A harbour wall", "The harbour at night, seen from the hill"],
    ["Walk 5", "Walk 4", "Walk 3"],
    ["Walk 2", "Walk 1", "Walk 0"],
]


def test_title_matches_come_first_then_the_rest_newest_first(app: Flask, client: FlaskClient,
                                                             harbour: None) -> None:
    pages = _all_pages(client, "harbour")
    if _dialect(app) == "sqlite":
        assert pages == TITLES_FIRST
        # Past the last page: 404, as for any search.
        assert client.get("/search", query_string={"q": "harbour", "page": "4"}).status_code == 404
    else:  # every match ranked: titles first too, then body and tag matches
        assert _flat(pages)[:3] == TITLES_FIRST[0]
    assert sorted(_flat(pages)) == sorted(_flat(TITLES_FIRST))


def test_a_page_can_hold_titles_and_the_rest(app: Flask, client: FlaskClient, harbour: None) -> None:
    app.config["POSTS_PER_PAGE"] = 2
    pages = _all_pages(client, "harbour")
    flat = _flat(TITLES_FIRST)
    if _dialect(app) == "sqlite":
        assert pages == [flat[0:2], flat[2:4], flat[4:6], flat[6:8], flat[8:9]]
    assert sorted(_flat(pages)) == sorted(flat)


def test_only_the_newest_title_matches_are_ranked(app: Flask, client: FlaskClient, harbour: None) -> None:
    """SEARCH_RANKED_MATCHES bounds the titles ranked too: the older title match ("Harbour")
    falls among the rest, by date, and is still found."""
    if _dialect(app) != "sqlite":
        pytest.skip("PostgreSQL ranks every match")
    # The newest two of the three published title matches, plus the draft and the scheduled
    # post (the newest of all): the window counts posts of any state, the page shows what
    # the reader may see.
    app.config["SEARCH_RANKED_MATCHES"] = 4
    flat = _flat(_all_pages(client, "harbour"))
    assert flat == ["A harbour wall", "The harbour at night, seen from the hill",
                    "Walk 5", "Walk 4", "Walk 3", "Walk 2", "Walk 1", "Walk 0", "Harbour"]


def test_newest_first_is_the_same_broad_or_not(app: Flask, client: FlaskClient, harbour: None) -> None:
    broad = _all_pages(client, "harbour", sort="date")
    app.config["SEARCH_RANKED_MATCHES"] = 1000
    narrow = _all_pages(client, "harbour", sort="date")
    assert broad == narrow
    assert narrow[0] == ["Walk 5", "Walk 4", "Walk 3"]


def test_the_reader_sees_what_lists_show_them(app: Flask, client: FlaskClient, auth: AuthActions,
                                              harbour: None) -> None:
    """Drafts never; a scheduled post only to its author (and editors), in both orders."""
    for sort in ("rank", "date"):
        found = _flat(_all_pages(client, "harbour", sort=sort))
        assert "Harbour draft" not in found and "Harbour to come" not in found
    auth.login("alice")
    for sort in ("rank", "date"):
        found = _flat(_all_pages(client, "harbour", sort=sort))
        assert "Harbour to come" in found and "Harbour draft" not in found


def test_a_broad_search_reads_a_bounded_number_of_statements(app: Flask, client: FlaskClient,
                                                             harbour: None) -> None:
    """Whether it is broad, the titles, which of them the reader may see, the page's titles
    and the rest, and the snippets: never a count, and no more for a later page."""
    if _dialect(app) != "sqlite":
        pytest.skip("PostgreSQL ranks every match")
    counts = []
    for page in ("1", "2", "3"):
        counted = page_statements(client, f"/search?q=harbour&page={page}")
        assert not [sql for sql in counted.statements if sql.lower().startswith("select count(")]
        assert any("posts_title_fts" in sql for sql in counted.statements)
        counts.append(counted.count)
    assert max(counts) <= 6, counts
    counted = page_statements(client, "/search?q=harbour&sort=date")
    assert counted.count == 3, counted.statements  # broad?, the page, the snippets


@pytest.fixture
def corpus(app: Flask, make_user: Callable[..., User], make_post: Callable[..., Post]) -> None:
    alice = make_user("alice")
    for title, body, tags in CORPUS:
        make_post(alice, title, body, tags)


# "tea -whisked": "The tea ceremony" has tea in its title and "whisked" only in its body, so
# the title index alone would keep it.
BROAD_QUERIES = [*PARITY, ("tea -whisked", {"Wedding notes", "Coffee or tea?"})]


@pytest.mark.parametrize(("query", "expected"), BROAD_QUERIES, ids=[q for q, _ in BROAD_QUERIES])
def test_broad_searches_find_the_same_posts(app: Flask, client: FlaskClient, corpus: None, query: str,
                                            expected: set[str]) -> None:
    """The parity table again, every search broad (more than one match ranked): each match
    once, over all pages, in both orders."""
    app.config.update(SEARCH_RANKED_MATCHES=1, POSTS_PER_PAGE=2)
    for sort in ("rank", "date"):
        found = _flat(_all_pages(client, query, sort=sort))
        assert len(found) == len(set(found)), found
        assert set(found) == expected, sort


def test_title_matches_and_post_matches_on_both_databases(app: Flask, corpus: None) -> None:
    with app.app_context():
        titles = {post_id: title for post_id, title in db.session.execute(select(Post.id, Post.title))}
        query = search.parse("tea")
        assert query is not None
        ranked = search.title_matches(query, 10)
        assert {titles[post_id] for post_id, _ in ranked} == {"Coffee or tea?", "The tea ceremony"}
        assert [rank for _, rank in ranked] == sorted((rank for _, rank in ranked), reverse=True)
        assert len(search.title_matches(query, 1)) == 1
        matching = set(db.session.scalars(select(Post.title).where(search.post_matches(Post.id, query))))
        assert matching == {"The tea ceremony", "Wedding notes", "Coffee or tea?"}
        everything = search.parse("ceremony")
        assert everything is not None
        assert search.matches_more_than(1, everything) is (_dialect(app) == "sqlite")
        assert search.matches_more_than(2, everything) is False


def test_optimizing_the_indexes_changes_no_result(app: Flask, client: FlaskClient, corpus: None) -> None:
    before = {query: set(found_titles(client, query)) for query, _ in PARITY}
    with app.app_context():
        optimized = optimize_indexes()
    if _dialect(app) == "sqlite":
        assert optimized == ["posts_fts", "products_fts", "posts_title_fts"]
    else:
        assert optimized == []
    assert {query: set(found_titles(client, query)) for query, _ in PARITY} == before


def test_the_worker_optimizes_the_indexes_every_night(app: Flask) -> None:
    due = {task.name for task in huey.read_periodic(datetime(2026, 12, 8, 4, 17))}
    assert optimize_nightly.task_class.__name__ in due
    assert optimize_nightly.task_class.__name__ not in {
        task.name for task in huey.read_periodic(datetime(2026, 12, 8, 12, 17))}
    with app.app_context():
        optimize_nightly.call_local()
