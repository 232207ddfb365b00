"""Full-text search of posts and products, through the pages and the services.

The same corpus and the same expected result sets run on SQLite (FTS5) and on PostgreSQL
(tsvector): the suite runs on each, so passing on both is the parity check.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from blog import search
from blog.accounts.models import User
from blog.database import utcnow
from blog.extensions import db
from blog.posts import listing, services
from blog.posts.models import Post
from tests.conftest import AuthActions, page_statements, text_of
from tests.search.conftest import accents_folded, found_titles

# --- parity: one corpus, one table of queries, the same sets on both databases -----------------

CORPUS = [
    # title, body, tags
    ("Running shoes for beginners", "How to choose shoes when you start to run. Comfort first.",
     "sport, gear"),
    ("A quiet morning", "She runs every morning along the river before the café opens.", "diary"),
    ("Café culture in Paris", "Crème brûlée and espresso: the naïve tourist's guide.", "travel, food"),
    ("Cafe menu design", "Typography for a small cafe menu.", "design"),
    ("The tea ceremony", "Green tea, whisked slowly. A ceremony of patience.", "tea, japan"),
    ("Wedding notes", "We served tea after the ceremony.", "family"),
    ("Python generators explained", "Lazy iteration with yield; generators save memory.", "python, code"),
    ("Snakes of the world", "The python is a large snake; so is the boa.", "nature"),
    ("Baking bread at home", "Sourdough needs time. Knead, rest, bake.", "food, baking"),
    ("Coffee or tea?", "A debate as old as breakfast.", "drinks"),
    ("Espresso machines compared", "Pressure, temperature and grind.", "coffee, gear"),
    ("Gardening notes", "Tomatoes ripen in late summer; mail me at tomato@example.com.", "garden"),
    ("Writing a résumé", "Tips for a one-page CV, version 2.5 of my well-known template.", "career"),
]
HIDDEN = [
    # A draft and a scheduled post that would match "running": visitors never find them.
    ("Unfinished running diary", "running running running", "sport", "draft"),
    ("Future running plans", "running next year", "sport", "scheduled"),
]

PARITY = [
    ("running", {"Running shoes for beginners", "A quiet morning"}),  # stemmed: run, runs
    ("runs", {"Running shoes for beginners", "A quiet morning"}),
    ("generator", {"Python generators explained"}),
    ("PYTHON", {"Python generators explained", "Snakes of the world"}),
    ("snake", {"Snakes of the world"}),
    ("tea ceremony", {"The tea ceremony", "Wedding notes"}),  # any order, anywhere
    ("ceremony tea", {"The tea ceremony", "Wedding notes"}),
    ('"tea ceremony"', {"The tea ceremony"}),  # a phrase: next to each other
    ("tea-ceremony", {"The tea ceremony"}),  # joined by punctuation: a phrase too
    ('"running shoes"', {"Running shoes for beginners"}),
    ("python -snake", {"Python generators explained"}),
    ("tea -ceremony", {"Coffee or tea?"}),
    ('tea -"tea ceremony"', {"Wedding notes", "Coffee or tea?"}),
    ("sourdough or espresso",
     {"Baking bread at home", "Café culture in Paris", "Espresso machines compared"}),
    ("sourdough OR espresso -machines", {"Baking bread at home", "Café culture in Paris"}),
    ("gear", {"Running shoes for beginners", "Espresso machines compared"}),  # a tag
    ("japan", {"The tea ceremony"}),
    ("tomato", {"Gardening notes"}),  # inside an e-mail address: words on both databases
    ("example com", {"Gardening notes"}),
    ('"2 5"', {"Writing a résumé"}),  # a version number's parts
    ("known", {"Writing a résumé"}),  # part of a hyphenated word
    ("morning river", {"A quiet morning"}),
    ("breakfast coffee", {"Coffee or tea?"}),
    ("nothing-like-this", set()),
    ("-tea", set()),  # only an exclusion: nothing to look for
]
ACCENTS = [
    ("cafe", {"A quiet morning", "Café culture in Paris", "Cafe menu design"}),
    ("café", {"A quiet morning", "Café culture in Paris", "Cafe menu design"}),
    ("creme brulee", {"Café culture in Paris"}),
    ("naive", {"Café culture in Paris"}),
    ("resume", {"Writing a résumé"}),
]


@pytest.fixture
def corpus(app: Flask, make_user: Callable[..., User], make_post: Callable[..., Post]) -> None:
    alice = make_user("alice")
    for title, body, tags in CORPUS:
        make_post(alice, title, body, tags)
    for title, body, tags, state in HIDDEN:
        make_post(alice, title, body, tags, publish=state == "scheduled",
                  publish_at=utcnow() + timedelta(days=3) if state == "scheduled" else None)


@pytest.mark.parametrize(("query", "expected"), PARITY, ids=[q for q, _ in PARITY])
def test_parity(client: FlaskClient, corpus: None, query: str, expected: set[str]) -> None:
    assert set(found_titles(client, query)) == expected


@pytest.mark.parametrize(("query", "expected"), ACCENTS, ids=[q for q, _ in ACCENTS])
def test_accents_are_ignored(app: Flask, client: FlaskClient, corpus: None, query: str,
                             expected: set[str]) -> None:
    if not accents_folded(app):
        pytest.skip("PostgreSQL without the unaccent extension: search is accent-sensitive")
    assert set(found_titles(client, query)) == expected


def test_the_service_agrees_with_the_page(app: Flask, corpus: None) -> None:
    with app.app_context():
        found = listing.fetch(services.search_posts("ceremony tea"))
        assert {post.title for post in found} == {"The tea ceremony", "Wedding notes"}
        assert listing.fetch(services.search_posts("?!")) == []


def _dialect(app: Flask) -> str:
    with app.app_context():
        return db.engine.dialect.name


# --- ranking and order ------------------------------------------------------------------------


def test_a_title_match_ranks_above_a_body_match(client: FlaskClient, make_user: Callable[..., User],
                                                make_post: Callable[..., Post]) -> None:
    alice = make_user("alice")
    make_post(alice, "Lighthouse keepers", "A life on the rocks.")
    make_post(alice, "Tags and more", "Nothing but words.", tags="lighthouse")
    make_post(alice, "On the coast", "We walked to the lighthouse at dawn.")  # newest
    assert found_titles(client, "lighthouse") == ["Lighthouse keepers", "On the coast", "Tags and more"]
    assert found_titles(client, "lighthouse", sort="date") == [
        "On the coast", "Tags and more", "Lighthouse keepers"]
    assert found_titles(client, "lighthouse", sort="nonsense")[0] == "Lighthouse keepers"


def test_equal_matches_come_newest_first(client: FlaskClient, make_user: Callable[..., User],
                                         make_post: Callable[..., Post]) -> None:
    alice = make_user("alice")
    for number in range(3):
        make_post(alice, f"Twin {number}", "identical words here")
    assert found_titles(client, "identical") == ["Twin 2", "Twin 1", "Twin 0"]


def test_results_are_paginated_by_rank(app: Flask, client: FlaskClient, make_user: Callable[..., User],
                                       make_post: Callable[..., Post]) -> None:
    app.config["POSTS_PER_PAGE"] = 2
    alice = make_user("alice")
    make_post(alice, "Harbour", "x")
    for number in range(3):
        make_post(alice, f"Walk {number}", "to the harbour")
    page = client.get("/search", query_string={"q": "harbour"}).get_data(as_text=True)
    assert ">Harbour</a>" in page and "page=2" in page and "More results" in page
    second = client.get("/search", query_string={"q": "harbour", "page": "2"}).get_data(as_text=True)
    assert found_titles(client, "harbour", page="2") == ["Walk 1", "Walk 0"]
    # The last page: a way back, none forward, and no page numbers (nothing is counted).
    assert "page=1" in second and "Better matches" in second and 'rel="next"' not in second
    assert "<ul>" not in second.split('class="pagination"')[1]
    assert client.get("/search", query_string={"q": "harbour", "page": "3"}).status_code == 404


def test_results_by_date_are_keyset_pages(app: Flask, client: FlaskClient, make_user: Callable[..., User],
                                          make_post: Callable[..., Post]) -> None:
    """Newest first, a search walks Older and Newer by cursor like every list sorted by date,
    and an old numbered link is redirected to its cursor."""
    app.config["POSTS_PER_PAGE"] = 2
    alice = make_user("alice")
    for number in range(5):
        make_post(alice, f"Walk {number}", "along the harbour")
    make_post(alice, "Elsewhere", "inland")
    pages, args = [], {"q": "harbour", "sort": "date"}
    while True:
        response = client.get("/search", query_string=args)
        assert response.status_code == 200
        body = response.get_data(as_text=True)
        pages.append(found_titles(client, "harbour", **args))
        older = re.search(r'rel="next" href="\?([^"]+)"', body)
        if older is None:
            break
        args = dict(parse_qsl(html.unescape(older.group(1))))
        assert args["q"] == "harbour" and args["sort"] == "date" and "cursor" in args
    assert pages == [["Walk 4", "Walk 3"], ["Walk 2", "Walk 1"], ["Walk 0"]]
    numbered = client.get("/search", query_string={"q": "harbour", "sort": "date", "page": "2"})
    assert numbered.status_code == 302 and "cursor=" in numbered.location
    assert found_titles(client, "harbour", sort="date", cursor=args["cursor"]) == ["Walk 0"]


def test_a_search_counts_nothing(app: Flask, client: FlaskClient, make_user: Callable[..., User],
                                 make_post: Callable[..., Post]) -> None:
    """No page of results counts the matches (a count over a full-text join cost 35 times the
    page at 100,000 posts on SQLite): the posts (with their tags) and the page's snippets, and
    on SQLite first whether more than SEARCH_RANKED_MATCHES match (tests/search/
    test_broad_search.py), which reads one row past them."""
    alice = make_user("alice")
    for number in range(3):
        make_post(alice, f"Walk {number}", "along the harbour", tags="sea")
    sqlite = _dialect(app) == "sqlite"
    for sort in ("rank", "date"):
        counted = page_statements(client, f"/search?q=harbour&sort={sort}")
        assert counted.count == (3 if sqlite else 2), counted.statements
        assert not [sql for sql in counted.statements if sql.lower().startswith("select count(")]


# --- snippets ---------------------------------------------------------------------------------


def test_snippets_highlight_the_matched_words_and_escape_the_rest(
        client: FlaskClient, make_user: Callable[..., User], make_post: Callable[..., Post]) -> None:
    alice = make_user("alice")
    make_post(alice, "Careful", "Beware <script>alert(1)</script> & the needles we found in the hay.")
    page = client.get("/search", query_string={"q": "needle"}).get_data(as_text=True)
    assert "<mark>needles</mark>" in page
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the text as written, escaped
    assert "&amp; the" in page


def test_snippets_of_the_service(app: Flask, make_user: Callable[..., User],
                                 make_post: Callable[..., Post]) -> None:
    alice = make_user("alice")
    body = make_post(alice, "Plain title", "A long walk by the <sea> & sand.")
    title = make_post(alice, "Sea views", "Nothing matches here.")
    query = search.parse("sea")
    assert query is not None
    with app.app_context():
        found = search.snippets([body.id, title.id, 10**9], query)
    assert set(found) == {body.id}  # the title-only match has no body snippet
    assert "<mark>sea</mark>" in found[body.id]
    assert "&amp;" in found[body.id] and "<sea>" not in found[body.id].replace("<mark>sea</mark>", "")
    with app.app_context():
        assert search.snippets([], query) == {}


def test_highlighted_balances_stray_markers() -> None:
    start, stop = search.sql.START, search.sql.STOP
    assert search.highlighted("no marks <b>") is None
    assert search.highlighted(f"a {start}b{stop} <i>") == "a <mark>b</mark> &lt;i&gt;"
    assert search.highlighted(f"{stop}x{start}{start}y") == "x<mark>y</mark>"


def test_members_only_bodies_are_not_shown_to_visitors(
        client: FlaskClient, make_user: Callable[..., User], make_post: Callable[..., Post]) -> None:
    alice = make_user("alice")
    make_user("reader", roles=())
    body = "An opening anyone may read.\n\n" + "More words. " * 60 + "The secret needs saffron."
    make_post(alice, "Members post", body, members_only=True)
    page = client.get("/search", query_string={"q": "saffron"}).get_data(as_text=True)
    # Visitors see what lists show them: the title and the excerpt, not the matching passage.
    assert ">Members post</a>" in page and "An opening anyone may read." in page
    assert "<mark>" not in page and "The secret needs" not in page
    AuthActions(client).login("reader")
    page = client.get("/search", query_string={"q": "saffron"}).get_data(as_text=True)
    assert "<mark>saffron</mark>" in page


# --- any input is safe --------------------------------------------------------------------------

HOSTILE = [
    '"', "'", "*", "NEAR(", "NEAR(a b)", "AND", "OR", "OR OR", "NOT", "-", "--", "(((", ")))",
    "col:term", "title:python", "^", "^python", "python*", "a AND OR b", '"unclosed phrase', '""',
    "'; DROP TABLE posts; --", "%", "_", "\\", "😀", "🐍 python 🐍",
    "x" * 5000, "word " * 500, '"' * 300, "-" * 300, "{}[]<>|&!~:", "<script>alert(1)</script>",
    "ｐｙｔｈｏｎ", "\u202e\u200b", "\ue000\ue001", "a" + "\u0301" * 50, "0x00 1e308 -0",
]


@pytest.mark.parametrize("query", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_queries_answer_200(client: FlaskClient, make_user: Callable[..., User],
                                    make_post: Callable[..., Post], query: str) -> None:
    make_post(make_user("alice"), "Python", "A python.")
    for path in ("/search", "/shop/"):
        response = client.get(path, query_string={"q": query})
        assert response.status_code == 200, (path, query)
    assert "<script>alert(1)</script>" not in client.get(
        "/search", query_string={"q": query}).get_data(as_text=True)


@pytest.mark.parametrize("query", ["\x00", "py\x00thon"])
def test_nul_characters_are_refused_before_search(client: FlaskClient, query: str) -> None:
    """The site answers 400 to any NUL character in a request (blog.security), search too;
    the parser would survive them anyway (tests/search/test_query.py)."""
    for path in ("/search", "/shop/"):
        assert client.get(path, query_string={"q": query}).status_code == 400


def test_python_survives_the_noise(client: FlaskClient, make_user: Callable[..., User],
                                   make_post: Callable[..., Post]) -> None:
    make_post(make_user("alice"), "Python", "A python.")
    for query in ("python*", "^python", "(((python)))", "🐍python🐍", '"python',
                  "python OR", "OR python", "AND python", "python -", "python -(((", "python!!!"):
        assert found_titles(client, query) == ["Python"], query
    # Words joined by punctuation are a phrase (as both databases index them): no match here.
    for query in ("title:python", "NEAR(python", "python.org"):
        assert found_titles(client, query) == [], query


# --- visibility and freshness -------------------------------------------------------------------


def test_drafts_and_scheduled_posts_are_never_found_by_visitors(
        client: FlaskClient, corpus: None) -> None:
    assert not {"Unfinished running diary", "Future running plans"} & set(found_titles(client, "running"))


def test_the_author_finds_their_scheduled_post(client: FlaskClient, corpus: None) -> None:
    AuthActions(client).login("alice")
    found = set(found_titles(client, "running"))
    assert "Future running plans" in found and "Unfinished running diary" not in found


def _edit(app: Flask, post: Post, title: str, body: str, tags: str) -> None:
    with app.app_context():
        loaded = db.session.get(Post, post.id, options=[selectinload(Post.tags)])
        assert loaded is not None
        services.update_post(loaded, title, body, tags, True)


def test_edits_show_in_results_at_once(app: Flask, client: FlaskClient, make_user: Callable[..., User],
                                       make_post: Callable[..., Post]) -> None:
    post = make_post(make_user("alice"), "Alpine lakes", "Cold water.", tags="mountains")
    assert found_titles(client, "alpine") == ["Alpine lakes"]
    assert found_titles(client, "mountains") == ["Alpine lakes"]
    _edit(app, post, "Desert roads", "Hot sand.", "travel, deserts")
    assert found_titles(client, "alpine") == []
    assert found_titles(client, "cold") == []
    assert found_titles(client, "mountains") == []
    assert found_titles(client, "desert") == ["Desert roads"]
    assert found_titles(client, "sand") == ["Desert roads"]
    assert found_titles(client, "travel") == ["Desert roads"]
    _edit(app, post, "Desert roads", "Hot sand.", "")  # every tag taken off
    assert found_titles(client, "travel") == []
    with app.app_context():
        assert db.session.scalar(select(Post.tag_names).where(Post.id == post.id)) == ""


def test_tag_names_follow_the_tags(app: Flask, make_user: Callable[..., User],
                                   make_post: Callable[..., Post]) -> None:
    post = make_post(make_user("alice"), "Tagged", tags="Zebra, apple, Machine Learning")
    with app.app_context():
        assert db.session.scalar(select(Post.tag_names).where(Post.id == post.id)) == \
            "apple machine learning zebra"


def test_deleted_posts_are_gone_from_results(app: Flask, client: FlaskClient,
                                             make_user: Callable[..., User],
                                             make_post: Callable[..., Post]) -> None:
    alice = make_user("alice")
    post = make_post(alice, "Ephemeral thoughts", "Soon gone.")
    make_post(alice, "Lasting thoughts", "Still here.")
    assert set(found_titles(client, "thoughts")) == {"Ephemeral thoughts", "Lasting thoughts"}
    with app.app_context():
        services.delete_post(db.session.get(Post, post.id))
    assert found_titles(client, "thoughts") == ["Lasting thoughts"]
    assert found_titles(client, "ephemeral") == []


def test_rendering_again_keeps_the_index(app: Flask, client: FlaskClient, make_user: Callable[..., User],
                                         make_post: Callable[..., Post]) -> None:
    """rerender_posts writes body_html only: the index (SQLite: its trigger fires on title,
    body or tags only) still finds the post."""
    make_post(make_user("alice"), "Rendered", "Some *markdown* here.")
    with app.app_context():
        db.session.execute(Post.__table__.update().values(body_html=""))
        db.session.commit()
        services.rerender_posts()
    assert found_titles(client, "markdown") == ["Rendered"]


# --- the parser -----------------------------------------------------------------------------


def test_search_page_shows_the_form_and_sort_links(client: FlaskClient, make_user: Callable[..., User],
                                                   make_post: Callable[..., Post]) -> None:
    alice = make_user("alice")
    make_post(alice, "Owl one", "owls")
    make_post(alice, "Owl two", "owls")
    page = text_of(client.get("/search", query_string={"q": "owl"}))
    assert "Results for “owl”" in page and "sort=date" in page and "best match" in page
    dated = text_of(client.get("/search", query_string={"q": "owl", "sort": "date"}))
    assert 'name="sort" value="date"' in dated
    assert "No posts match." in text_of(client.get("/search", query_string={"q": "?"}))


# --- the shop -------------------------------------------------------------------------------------


@pytest.fixture
def products(make_product: Callable[..., Any]) -> None:
    make_product("Field Notes", description="A pocket notebook with squared paper.", category="Books")
    make_product("Pocket Knife", description="Steel, wood and brass.", category="Tools")
    make_product("Harbour Print", description="Giclée print of the harbour at dawn, in a notebook size.",
                 category="Prints")
    make_product("Old Notebook", description="Retired.", active=False)
    make_product("Notebook Cover", description="Leather.", category="Books")


def _names(client: FlaskClient, query: str) -> list[str]:
    page = text_of(client.get(f"/shop/?{query}"))
    names = ("Field Notes", "Pocket Knife", "Harbour Print", "Old Notebook", "Notebook Cover")
    return sorted((name for name in names if f">{name}</a>" in page), key=page.index)


@pytest.mark.parametrize(("query", "expected"), [
    ("q=pocket", ["Pocket Knife", "Field Notes"]),
    ("q=prints", ["Harbour Print"]),  # stemmed
    ("q=harbour+-dawn", []),
    ("q=steel+or+paper&sort=name", ["Field Notes", "Pocket Knife"]),
    ("q=notebook&sort=name", ["Field Notes", "Harbour Print", "Notebook Cover"]),
    ("q=notebook&category=prints", ["Harbour Print"]),
    ("q=notebook&sort=newest", ["Notebook Cover", "Harbour Print", "Field Notes"]),
    ("q=%22pocket+notebook%22", ["Field Notes"]),
    ("q=%25%25", []),
])
def test_shop_search(client: FlaskClient, products: None, query: str, expected: list[str]) -> None:
    assert _names(client, query) == expected


def test_shop_search_ranks_names_first(client: FlaskClient, products: None) -> None:
    found = _names(client, "q=notebook")
    assert found[0] == "Notebook Cover"  # the name; the inactive "Old Notebook" never
    assert set(found[1:]) == {"Field Notes", "Harbour Print"}  # descriptions


def test_shop_search_defaults_to_best_match(client: FlaskClient, products: None) -> None:
    page = client.get("/shop/?q=notebook").get_data(as_text=True)
    assert '<option value="" selected>Best match</option>' in page
    assert '<option value="newest">Newest</option>' in page
    page = client.get("/shop/").get_data(as_text=True)
    assert '<option value="" selected>Newest</option>' in page and "Best match" not in page


def test_shop_search_follows_product_edits(app: Flask, client: FlaskClient, products: None) -> None:
    from blog.database_session import transaction
    from blog.shop.models import Product

    with app.app_context(), transaction() as session:
        knife = session.scalars(select(Product).where(Product.name == "Pocket Knife")).one()
        knife.description = "Carbon steel and a notebook clip."
    assert _names(client, "q=clip") == ["Pocket Knife"]
    assert _names(client, "q=brass") == []
