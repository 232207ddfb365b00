"""Full-text search: SQLite FTS5 and PostgreSQL tsvector behind one API.

    from blog import search

    query = search.parse(request.args.get("q", ""))      # None: nothing to search for
    matches = search.post_search(query)                   # subquery of (id, rank)
    stmt = select(Post).join(matches, matches.c.id == Post.id).order_by(matches.c.rank.desc())
    excerpts = search.snippets([post.id for post in page.items], query)

- :mod:`blog.search.query`: the reader's text parsed into words, "phrases", -exclusions and
  ``or`` (never raises), rendered for each database from the parsed words only;
- :mod:`blog.search.sql`: matching, ranking (title above body) and ``<mark>`` snippets;
- :mod:`blog.search.schema`: the DDL the migrations run (FTS5 tables and triggers; generated
  tsvector columns, GIN indexes and the text search configuration) and Alembic's filters.

Like :mod:`blog.mail` or :mod:`blog.jobs`, this package imports no domain: it names the
tables it indexes.
"""

from blog.search.query import Clause, SearchQuery, Term, parse
from blog.search.sql import (
    highlighted,
    matches_more_than,
    post_matches,
    post_search,
    product_search,
    snippets,
    title_matches,
)

__all__ = [
    "Clause",
    "SearchQuery",
    "Term",
    "highlighted",
    "matches_more_than",
    "parse",
    "post_matches",
    "post_search",
    "product_search",
    "snippets",
    "title_matches",
]
