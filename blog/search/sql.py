"""Full-text matching, ranking and highlighting, one API over SQLite FTS5 and PostgreSQL.

Domains hand over a parsed :class:`~blog.search.query.SearchQuery` and get back SQL they
can use in their own queries, so their visibility rules (published, active…) stay theirs:

- :func:`post_search` / :func:`product_search`: a subquery of ``(id, rank)`` rows, one per
  matching row, ``rank`` higher for better matches, to join on the table's id and order by;
- :func:`snippets`: highlighted excerpts of a few posts' bodies (a page of results), as
  safe HTML with ``<mark>`` around the matched words;
- for searches that match a large part of the blog, where ranking every match costs more
  than the page (SQLite's ``bm25()`` over 68,000 matches: 150 ms): :func:`matches_more_than`
  tells them apart cheaply, :func:`post_matches` tests one post at a time (walk the date
  index, stop after a page) and :func:`title_matches` ranks the newest title matches alone.

This module names tables, never imports models: :mod:`blog.search` sits below the domains.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from markupsafe import Markup, escape
from sqlalchemy import Float, Integer, Subquery, column, exists, func, literal, literal_column, select, table
from sqlalchemy.dialects.postgresql import TSQUERY, TSVECTOR
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from blog.extensions import db
from blog.search.query import SearchQuery
from blog.search.schema import POST_TITLES, POSTS, PRODUCTS, SEARCH_CONFIG, VECTOR_COLUMN, Indexed

#: Private-use characters the databases put around matched words. They are turned into
#: ``<mark>`` only after the text around them has been escaped, so a post's own "<" or "&"
#: can never become markup.
START, STOP = "\ue000", "\ue001"
#: PostgreSQL's parser reads ``<word>`` as an HTML tag, which ``ts_headline`` blanks out (and
#: never highlights); "<" goes in as this character instead and is put back afterwards.
_LESS_THAN = "\ue002"
#: Words in a snippet (SQLite: one fragment of this many tokens; PostgreSQL: at most two
#: fragments of half as many).
SNIPPET_WORDS = 32
ELLIPSIS = "…"

#: ``ts_rank``'s weights for D, C, B, A (tags are C, bodies B, titles A): title matches
#: count most, as bm25's column weights make them count on SQLite.
_TS_RANK_WEIGHTS = "{0.05, 0.2, 0.4, 1.0}"
#: ``ts_headline``'s options: the markers, and fragments the size of an FTS5 snippet.
_HEADLINE_OPTIONS = (
    f'StartSel="{START}", StopSel="{STOP}", MaxFragments=2, MaxWords={SNIPPET_WORDS // 2}, '
    f'MinWords={SNIPPET_WORDS // 4}, FragmentDelimiter=" {ELLIPSIS} "'
)


def _dialect() -> str:
    """The dialect of the connection the request's session uses."""
    return db.session.get_bind().dialect.name


def _ts_query(query: SearchQuery) -> ColumnElement[object]:
    """The PostgreSQL tsquery for ``query``, normalized by the same configuration (stemming,
    unaccent) as the documents. Its text is rebuilt from parsed words (a bound parameter)."""
    return func.websearch_to_tsquery(
        literal_column(f"'{SEARCH_CONFIG}'::regconfig"), literal(query.websearch()), type_=TSQUERY)


def _search(target: Indexed, query: SearchQuery) -> Subquery:
    if _dialect() == "postgresql":
        rows = table(target.table, column("id", Integer), column(VECTOR_COLUMN, TSVECTOR)).alias(
            f"{target.table}_matched")
        tsquery = _ts_query(query)
        weights: ColumnElement[object] = literal_column(f"'{_TS_RANK_WEIGHTS}'::float4[]")
        rank: ColumnElement[float] = func.ts_rank(weights, rows.c[VECTOR_COLUMN], tsquery, type_=Float)
        stmt = select(rows.c.id.label("id"), rank.label("rank")).where(
            rows.c[VECTOR_COLUMN].bool_op("@@")(tsquery))
    else:
        fts = table(target.fts, column("rowid", Integer))
        # bm25() is lower for better matches: negated, so rank means the same on both.
        rank = -func.bm25(literal_column(target.fts), *target.bm25_weights, type_=Float)
        stmt = select(fts.c.rowid.label("id"), rank.label("rank")).where(
            literal_column(target.fts).bool_op("MATCH")(literal(query.fts5())))
    return stmt.subquery(f"{target.table}_search")


def post_search(query: SearchQuery) -> Subquery:
    """Posts whose title, body or tags match ``query``, as ``(id, rank)`` rows (any post:
    join it to a query that applies the visibility rules). A title match ranks above a body
    match, a body match above a tag match."""
    return _search(POSTS, query)


def product_search(query: SearchQuery) -> Subquery:
    """Products whose name or description matches ``query``, as ``(id, rank)`` rows; a name
    match ranks above a description match."""
    return _search(PRODUCTS, query)


def matches_more_than(limit: int, query: SearchQuery) -> bool:
    """Whether more than ``limit`` posts match ``query`` (any post, as :func:`post_search`).

    SQLite reads at most ``limit + 1`` entries of the index (FTS5 walks its doclists lazily),
    so asking costs the same however many match (0.2 ms for 1,000). PostgreSQL is never
    asked and answers False without a statement: there ``ts_rank`` over everything the GIN
    index finds is cheap (1.5× the home page for 68,000 matches of 100,000 posts), so every
    match is always ranked."""
    if _dialect() == "postgresql":
        return False
    fts = table(POSTS.fts, column("rowid", Integer))
    # Is there a match after the first `limit`? Nothing is counted.
    beyond = (select(fts.c.rowid).where(literal_column(POSTS.fts).bool_op("MATCH")(literal(query.fts5())))
              .limit(1).offset(limit))
    return db.session.scalar(beyond) is not None


def post_matches(post_id: ColumnElement[int] | InstrumentedAttribute[int],
                 query: SearchQuery) -> ColumnElement[bool]:
    """A condition on one post (``post_id``: the outer query's posts.id) that it matches
    ``query``, tested row by row. Made for a walk down an index in the page's order that stops
    after a page: when most posts match, that reads a page and a few more, where collecting
    every match first reads them all. (When few match, the walk would test every post it
    passes: use :func:`post_search` then.)"""
    if _dialect() == "postgresql":
        vector = literal_column(f"{POSTS.table}.{VECTOR_COLUMN}", TSVECTOR)
        return vector.bool_op("@@")(_ts_query(query))
    fts = table(POSTS.fts, column("rowid", Integer))
    return exists().where(literal_column(POSTS.fts).bool_op("MATCH")(literal(query.fts5())),
                          fts.c.rowid == post_id)


def title_matches(query: SearchQuery, limit: int) -> list[tuple[int, float]]:
    """The newest ``limit`` posts (by id) whose title alone matches ``query``, best match first
    (ties: newest first), as ``(id, rank)``; any post, as :func:`post_search`. An excluded
    word is looked for in the title only: callers check the whole post when that matters.

    On SQLite this reads the titles' own index (``posts_title_fts``), whose doclists are
    short, and ranks at most ``limit`` rows; PostgreSQL filters the vector to its title
    weight."""
    if _dialect() == "postgresql":
        rows = table(POSTS.table, column("id", Integer), column(VECTOR_COLUMN, TSVECTOR))
        titles = func.ts_filter(rows.c[VECTOR_COLUMN], literal_column("'{a}'::\"char\"[]"), type_=TSVECTOR)
        tsquery = _ts_query(query)
        rank: ColumnElement[float] = func.ts_rank(titles, tsquery, type_=Float)
        stmt = (select(rows.c.id, rank).where(titles.bool_op("@@")(tsquery))
                .order_by(rows.c.id.desc()).limit(limit))
    else:
        fts = table(POST_TITLES.fts, column("rowid", Integer))
        rank = -func.bm25(literal_column(POST_TITLES.fts), type_=Float)
        stmt = (select(fts.c.rowid, rank)
                .where(literal_column(POST_TITLES.fts).bool_op("MATCH")(literal(query.fts5())))
                .order_by(fts.c.rowid.desc()).limit(limit))
    found = [(int(post_id), float(score)) for post_id, score in db.session.execute(stmt)]
    return sorted(found, key=lambda match: (-match[1], -match[0]))


def highlighted(text: str) -> Markup | None:
    """``text`` with the database's markers around matched words, as HTML: everything
    escaped, each marked run in ``<mark>``. None when nothing is marked (the snippet then
    shows nothing the plain excerpt would not).

    Markers are read as a toggle that cannot nest or stay open, so a stray marker character
    in a post's own text gives at worst an extra highlight, never broken markup.
    """
    html: list[str] = []
    opened = marked = False
    for piece in re.split(f"([{START}{STOP}])", text):
        if piece == START:
            if not opened:
                html.append("<mark>")
                opened = marked = True
        elif piece == STOP:
            if opened:
                html.append("</mark>")
                opened = False
        elif piece:
            html.append(str(escape(piece)))
    if opened:
        html.append("</mark>")
    return Markup("".join(html)) if marked else None


def snippets(post_ids: Iterable[int], query: SearchQuery) -> dict[int, Markup]:
    """Highlighted excerpts of the bodies of ``post_ids`` (one page of results) around the
    words of ``query``, in one statement; posts whose body has no match (only their title
    or tags did) are left out. Callers decide whose bodies a reader may see."""
    ids = sorted(set(post_ids))
    if not ids:
        return {}
    postgresql = _dialect() == "postgresql"
    if postgresql:
        posts = table(POSTS.table, column("id", Integer), column("body"))
        body = func.replace(posts.c.body, "<", _LESS_THAN)
        headline = func.ts_headline(literal_column(f"'{SEARCH_CONFIG}'::regconfig"), body,
                                    _ts_query(query), literal(_HEADLINE_OPTIONS))
        stmt = select(posts.c.id, headline).where(posts.c.id.in_(ids))
    else:
        fts = table(POSTS.fts, column("rowid", Integer))
        snippet = func.snippet(literal_column(POSTS.fts), POSTS.columns.index("body"), START, STOP,
                               ELLIPSIS, SNIPPET_WORDS)
        stmt = select(fts.c.rowid, snippet).where(
            literal_column(POSTS.fts).bool_op("MATCH")(literal(query.fts5())), fts.c.rowid.in_(ids))
    found: dict[int, Markup] = {}
    for post_id, text in db.session.execute(stmt):
        text = text or ""
        html = highlighted(text.replace(_LESS_THAN, "<") if postgresql else text)
        if html is not None:
            found[post_id] = html
    return found
